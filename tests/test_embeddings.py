"""Word embeddings: corpora, example sampling, the negative-sampling gradients, scores, the
word2vec file formats (read back by gensim), and the task end to end on the smoke preset."""

import json

import numpy as np
import pytest

from pipelines.datasets import corpus as corpus_lib
from pipelines.datasets.corpus import TextOptions, build_corpus, text_file_sentences
from shared.cli import main
from shared.testing import run_cli, train_killed_then_resumed
from shared.training import read_history
from tasks.embeddings import sampling
from tasks.embeddings.scores import analogy_accuracy, similarity_correlation
from tasks.embeddings.vectors import WordVectors


# Corpora ------------------------------------------------------------------------------------
def test_text_lines_are_lowercased_punctuation_dropped_and_bad_bytes_counted(tmp_path):
    path = tmp_path / "text.txt"
    path.write_bytes(b"The cat sat , on the mat .\nthe DOG -- sat\n\xff\xfe the cat\n")
    stats = corpus_lib.ReadStats()
    sentences = list(text_file_sentences(path, "lines", stats))
    assert sentences[0] == ["The", "cat", "sat", ",", "on", "the", "mat", "."]
    assert stats.lines == 3 and stats.bad_lines == [3]
    corpus = build_corpus(sentences, min_count=2)
    assert corpus.words == ["the", "cat", "sat"]  # most frequent first, ties by word
    assert corpus.counts.tolist() == [4, 2, 2]
    assert corpus.dropped_punctuation == 4 and corpus.raw_words == 11  # "\ufffd\ufffd" is punctuation
    assert corpus.num_sentences == 3 and corpus.tokens.tolist() == [0, 1, 2, 0, 0, 2, 0, 1]
    kept = build_corpus(sentences, min_count=1, max_vocab=2, options=TextOptions(lowercase=False))
    assert kept.words == ["the", "cat"] and kept.counts.tolist() == [3, 2]


def test_raw_text_is_split_at_sentence_ends_and_a_one_line_file_is_read_in_chunks(tmp_path, monkeypatch):
    path = tmp_path / "raw.txt"
    path.write_text("One dog ran. Two cats sat! Why? " * 3, encoding="utf-8")
    sentences = list(text_file_sentences(path, "raw"))
    assert sentences[:3] == [["One", "dog", "ran", "."], ["Two", "cats", "sat", "!"], ["Why", "?"]]
    text8 = tmp_path / "text8"
    words = [f"w{i % 50}" for i in range(5000)]
    text8.write_text(" " + " ".join(words), encoding="utf-8")
    monkeypatch.setattr(corpus_lib, "CHUNK_BYTES", 256)
    monkeypatch.setattr(corpus_lib, "MAX_SENTENCE_WORDS", 1000)
    pieces = list(text_file_sentences(text8, "raw"))
    assert [w for sentence in pieces for w in sentence] == words  # no word cut at a chunk edge
    assert max(len(s) for s in pieces) == 1000


def test_empty_corpus_and_empty_vocabulary_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="has no words .every token was punctuation"):
        build_corpus([[",", "."]], what="the test corpus")
    with pytest.raises(ValueError, match="vocabulary of the test corpus is empty.*min_count=5.*Lower data.min_count"):
        build_corpus([["a", "b", "a"]], min_count=5, what="the test corpus")
    (tmp_path / "empty.txt").write_text("\n\n")
    code = main(["embeddings", "train", "--preset", "smoke", "--workdir", str(tmp_path / "run"),
                 "--set", "data.source=text", "--set", f"data.path={tmp_path / 'empty.txt'}"])
    assert code == 2


def test_nltk_corpora_are_read_from_the_kit(data_root):
    corpus = build_corpus(corpus_lib.nltk_sentences(["inaugural"], data_root), min_count=5)
    assert corpus.raw_words == 138438  # inaugural words() without punctuation tokens
    assert corpus.words[0] == "the" and corpus.num_sentences > 4000
    with pytest.raises(FileNotFoundError, match="set --data-root"):
        next(corpus_lib.nltk_sentences(["brown"], data_root / "nowhere"))


# Sampling -------------------------------------------------------------------------------------
def _batches(sg=True, **kwargs):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50, 3000).astype(np.int32)
    offsets = np.asarray([0, 7, 400, 401, 1500, 3000])
    counts = np.bincount(tokens, minlength=50) + 1
    settings = dict(sg=sg, window=3, negative=4, sample=1e-2, alpha=0.025, min_alpha=1e-4, epochs=2,
                    words_per_batch=256, seed=3)
    settings.update(kwargs)
    return tokens, offsets, sampling.Word2VecBatches(tokens, offsets, counts, **settings)


def test_batches_are_a_pure_function_of_seed_and_step_and_cover_the_corpus():
    tokens, offsets, batches = _batches()
    starts = batches.batch_starts
    assert starts[0] == 0 and starts[-1] == 3000 and np.all(np.diff(starts) > 0)
    again = _batches()[2]
    for step in (0, 5, batches.steps_per_epoch + 1):
        a, b = batches(step), again(step)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(batches(0)["out_index"], batches(batches.steps_per_epoch)["out_index"])
    lrs = [batches.learning_rate(s) for s in range(2 * batches.steps_per_epoch)]
    assert lrs[0] == 0.025 and all(x > y for x, y in zip(lrs, lrs[1:])) and lrs[-1] >= 1e-4


def test_skip_gram_pairs_stay_in_the_window_and_inside_sentences():
    tokens = np.arange(20, dtype=np.int32)  # word i at position i: distance is id difference
    segment = np.repeat([0, 1], 10).astype(np.int32)
    _, _, batches = _batches()
    windows = np.full(20, 3)
    windows[5] = 1
    contexts, _, centres = batches._skip_gram(tokens, segment, windows)
    contexts = contexts[:, 0]
    distance = np.abs(contexts - centres)
    assert distance.min() >= 1 and distance.max() <= 3
    assert np.all(segment[contexts] == segment[centres])
    assert set(contexts[centres == 5]) == {4, 6}  # centre 5 has a window of 1
    assert len(centres) == 2 * (2 * (1 + 2 + 3 * 7)) - 4  # 2 sentences of 10, minus centre 5's 4


def test_cbow_examples_mask_their_context_and_negatives_skip_the_target():
    _, _, batches = _batches(sg=False, sample=0)
    batch = batches(0)
    weight = batch["in_weight"]
    assert weight.shape[1] == 6 and set(np.unique(weight)) <= {0.0, 1.0}
    real = batch["weight"][:, 0] > 0
    assert np.all(weight[real].sum(axis=1) >= 1) and np.all(weight[~real] == 0)
    out_ids = batch["out_rows"][batch["out_index"]]
    noise_is_target = out_ids[:, 1:] == out_ids[:, :1]
    assert np.all(batch["weight"][:, 1:][noise_is_target] == 0)
    in_ids = batch["in_rows"][batch["in_index"]]
    assert np.all(in_ids[weight == 0] == 50)  # masked slots point at the padding row


def test_subsampling_and_noise_follow_word2vec():
    counts = np.asarray([1000, 100, 10, 1])
    keep = sampling.keep_probabilities(counts, 1e-2)
    threshold = 1e-2 * counts.sum()
    np.testing.assert_allclose(keep[0], (np.sqrt(1000 / threshold) + 1) * threshold / 1000, rtol=1e-6)
    assert keep[-1] == 1.0 and np.all(np.diff(keep) >= 0)
    noise = sampling.NoiseSampler(counts)
    want = counts**0.75 / (counts**0.75).sum()
    np.testing.assert_allclose(noise.probabilities(), want, rtol=1e-6)
    draws = noise.draw(np.random.default_rng(0), (200000,))
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / draws.size, want, atol=4e-3)
    zipf = sampling.NoiseSampler(np.arange(1, 30001)[::-1] * 7)
    np.testing.assert_allclose(zipf.probabilities(), (np.arange(1, 30001)[::-1] * 7.0) ** 0.75
                               / ((np.arange(1, 30001) * 7.0) ** 0.75).sum(), rtol=1e-5)
    assert sampling.bucket(1000) == 1024 and sampling.bucket(1025) == 1152 and sampling.bucket(3) == 64


@pytest.mark.backend
def test_negative_sampling_gradients_match_finite_differences():
    from keras import ops

    from tasks.embeddings.models import negative_sampling

    rng = np.random.default_rng(1)
    in_rows, out_rows = rng.normal(0, 0.5, (4, 3)), rng.normal(0, 0.5, (5, 3))
    batch = {"in_index": np.asarray([[0, 1], [2, 2], [3, 0]]), "in_weight": np.asarray([[1., 1.], [1., 0.], [1., 1.]]),
             "out_index": np.asarray([[0, 1, 2], [3, 4, 4], [1, 0, 3]]),
             "weight": np.asarray([[1., 1., 0.], [1., 1., 1.], [0., 0., 0.]])}

    def loss(a, b):
        return float(ops.convert_to_numpy(negative_sampling(ops.convert_to_tensor(a, "float32"),
                                                            ops.convert_to_tensor(b, "float32"), batch)[2]))

    d_in, d_out, _, examples = (ops.convert_to_numpy(t) for t in negative_sampling(
        ops.convert_to_tensor(in_rows, "float32"), ops.convert_to_tensor(out_rows, "float32"), batch))
    assert float(examples) == 2.0
    eps = 1e-2
    numeric_out = np.zeros_like(out_rows)
    for i in np.ndindex(out_rows.shape):
        plus, minus = out_rows.copy(), out_rows.copy()
        plus[i] += eps
        minus[i] -= eps
        numeric_out[i] = (loss(in_rows, plus) - loss(in_rows, minus)) / (2 * eps)
    np.testing.assert_allclose(d_out, numeric_out, atol=2e-3)
    # inputs: word2vec gives every context word the gradient of the mean, not of its share
    numeric_in = np.zeros_like(in_rows)
    for i in np.ndindex(in_rows.shape):
        plus, minus = in_rows.copy(), in_rows.copy()
        plus[i] += eps
        minus[i] -= eps
        numeric_in[i] = (loss(plus, out_rows) - loss(minus, out_rows)) / (2 * eps)
    example_1_only = d_in[2]  # row 2 appears only in example 1, alone (count 1): exact gradient
    np.testing.assert_allclose(example_1_only, numeric_in[2], atol=2e-3)



@pytest.mark.backend
@pytest.mark.parametrize("width", [7, 32, 64, 100, 300])
def test_lane_sum_is_the_sum_over_the_last_axis(width):
    from keras import ops

    from tasks.embeddings.models import lane_sum

    x = np.random.default_rng(width).normal(size=(5, 3, width)).astype(np.float32)
    np.testing.assert_allclose(ops.convert_to_numpy(lane_sum(ops.convert_to_tensor(x))), x.sum(-1),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.backend
def test_negative_sampling_at_word2vec_width_matches_the_formulas():
    """dim 100 (the folded dot products and the re-gathered targets): loss and gradients
    against a numpy loop over the examples."""
    from keras import ops

    from tasks.embeddings.models import negative_sampling

    rng = np.random.default_rng(2)
    in_rows, out_rows = rng.normal(0, 0.3, (6, 100)), rng.normal(0, 0.3, (9, 100))
    batch = {"in_index": rng.integers(0, 6, (20, 1)), "in_weight": np.ones((20, 1)),
             "out_index": rng.integers(0, 9, (20, 6)), "weight": (rng.random((20, 6)) < 0.9).astype(float)}
    d_in, d_out, loss, _ = (ops.convert_to_numpy(t) for t in negative_sampling(
        ops.convert_to_tensor(in_rows, "float32"), ops.convert_to_tensor(out_rows, "float32"), batch))
    want_in, want_out, want_loss = np.zeros_like(in_rows), np.zeros_like(out_rows), 0.0
    for p in range(20):
        h = in_rows[batch["in_index"][p, 0]]
        for k in range(6):
            u, w, label = out_rows[batch["out_index"][p, k]], batch["weight"][p, k], float(k == 0)
            s = h @ u
            want_loss += w * np.log1p(np.exp(-s if label else s))
            g = w * (1 / (1 + np.exp(-s)) - label)
            want_in[batch["in_index"][p, 0]] += g * u
            want_out[batch["out_index"][p, k]] += g * h
    np.testing.assert_allclose(loss, want_loss, rtol=1e-4)
    np.testing.assert_allclose(d_in, want_in, atol=1e-4)
    np.testing.assert_allclose(d_out, want_out, atol=1e-4)


@pytest.mark.backend
@pytest.mark.parametrize("sg", [True, False])
def test_a_word2vec_step_adds_each_rows_summed_gradient_where_it_is(sg):
    """Word2Vec adds the examples' gradient rows to its tables in place (`AddRows`): the same
    tables as summing the gradients of the rows the batch names and writing those rows back."""
    from keras import ops

    from tasks.embeddings.models import Word2Vec, apply_update, negative_sampling

    _, _, batches = _batches(sg=sg)
    batch = batches(2)
    model = Word2Vec(50, 8, seed=1)
    rng = np.random.default_rng(4)
    tables = {"input_vectors": rng.normal(0, 0.3, (51, 8)).astype(np.float32),
              "output_vectors": rng.normal(0, 0.3, (51, 8)).astype(np.float32)}
    values = {k: ops.convert_to_tensor(v) for k, v in tables.items()}
    tensors = {k: ops.convert_to_tensor(v) for k, v in batch.items()}
    updates, loss, examples = model.sparse_update(values, tensors)
    d_in, d_out, want_loss, want_examples = (ops.convert_to_numpy(t) for t in negative_sampling(
        ops.take(values["input_vectors"], batch["in_rows"], axis=0),
        ops.take(values["output_vectors"], batch["out_rows"], axis=0), tensors))
    lr = batch["lr"][0]
    for name, rows, gradient in (("input_vectors", batch["in_rows"], d_in),
                                 ("output_vectors", batch["out_rows"], d_out)):
        want = tables[name].copy()
        distinct = np.unique(rows, return_index=True)[1]  # the padding row is repeated (its gradient is 0)
        want[rows[distinct]] -= lr * gradient[distinct]
        np.testing.assert_allclose(ops.convert_to_numpy(apply_update(values[name], updates[name])), want, atol=1e-6)
    np.testing.assert_allclose(float(loss), want_loss, rtol=1e-5)
    assert float(examples) == float(want_examples) > 0


# Scores and files ------------------------------------------------------------------------------
def _toy_vectors():
    words = ["man", "woman", "king", "queen", "apple", "pear"]
    vectors = np.asarray([[1, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1], [0, 0, -1], [0, 0.1, -1]], np.float32)
    return WordVectors(words, vectors)


def test_analogies_and_similarity_count_what_they_skip(tmp_path):
    questions = tmp_path / "q.txt"
    questions.write_text(": family\nman woman king queen\nMan King Woman Queen\nman woman king prince\n"
                         "broken line\n: gram1-adjective-to-adverb\napple pear man queen\n")
    result = analogy_accuracy(_toy_vectors(), questions)
    assert result["malformed_lines"] == 1 and result["skipped"] == 1 and result["answered"] == 3
    assert result["semantic"] == 1.0 and result["syntactic"] == 0.0
    assert result["accuracy"] == pytest.approx(2 / 3)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("# header\nking\tqueen\t9\nman\tapple\t1\nwoman\tpear\t2\nking\tunicorn\t5\nbad line\n")
    sim = similarity_correlation(_toy_vectors(), pairs)
    assert sim["pairs"] == 3 and sim["oov_pairs"] == 1 and sim["malformed_lines"] == 1
    assert sim["spearman"] == pytest.approx(1.0)
    assert similarity_correlation(_toy_vectors(), tmp_path / "q.txt")["spearman"] is None


def test_analogy_halves_are_a_fixed_stratified_split_of_each_section(data_root):
    from tasks.embeddings.scores import EVAL_FILES, eval_file, read_analogies, split_analogies

    sections, _ = read_analogies(eval_file(EVAL_FILES["analogy"], data_root))
    validation, test = split_analogies(sections)
    assert validation == split_analogies(sections)[0]  # the same halves in every run
    for (name, questions), (v_name, v), (t_name, t) in zip(sections, validation, test):
        assert name == v_name == t_name and abs(len(v) - len(t)) <= 1  # half of every section
        assert not set(v) & set(t) and sorted(v + t) == sorted(questions)
    assert validation != split_analogies(sections, seed=1)[0]


def test_word2vec_formats_are_read_by_gensim_and_a_bad_header_is_named(tmp_path):
    from gensim.models import KeyedVectors

    vectors = _toy_vectors()
    for binary in (False, True):
        path = vectors.save_word2vec(tmp_path / f"v{binary}", binary=binary)
        loaded = KeyedVectors.load_word2vec_format(str(path), binary=binary)
        assert loaded.index_to_key == vectors.words
        np.testing.assert_allclose(loaded.vectors, vectors.vectors, atol=1e-5)
        ours = WordVectors.load_word2vec(path, binary=binary)
        np.testing.assert_allclose(ours.vectors, vectors.vectors, atol=1e-5)
    bad = tmp_path / "bad.txt"
    bad.write_text("3 3\nman 1 0 0\nwoman 1 1\n")
    with pytest.raises(ValueError, match="bad.txt: line 3 has 2 numbers, the header says dimension 3"):
        WordVectors.load_word2vec(bad)
    with pytest.raises(ValueError, match="cannot hold the word"):
        WordVectors(["two words"], np.zeros((1, 2))).save_word2vec(tmp_path / "x.txt")
    assert [w for w, _ in vectors.analogy("man", "king", "woman", 1)] == ["queen"]


# End to end --------------------------------------------------------------------------------------
TINY = ("--preset", "smoke", "--set", "data.max_words=20000", "--set", "eval.plot_words=20")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("emb") / "run"
    assert run_cli("embeddings", "run", workdir, *TINY) == 0
    return workdir


@pytest.mark.backend
def test_run_writes_every_artifact(tiny_run):
    for name in ("config.json", "vocab.tsv", "model.keras", "training.json", "logs/history.csv",
                 "evaluation/results.json", "export/vectors.txt", "export/vectors.bin",
                 "export/projector/vectors.tsv", "export/projector/metadata.tsv",
                 "report/report.json", "report/index.html", "report/pca.png"):
        assert (tiny_run / name).exists(), name
    # one epoch: its loss and words/s in a table, no one-dot plots
    assert not (tiny_run / "report/loss.png").exists()
    assert "Training (one epoch)" in (tiny_run / "report/index.html").read_text()
    training = json.loads((tiny_run / "training.json").read_text())
    assert len(training["loss"]) == 1 and 0 < training["loss"][0] < 5 * np.log(2) + np.log(2)
    assert training["mean_words_per_second"] > 0
    results = json.loads((tiny_run / "evaluation/results.json").read_text())
    assert results["analogy"]["answered"] + results["analogy"]["skipped"] == 19544
    # the tune objective: val_analogy (validation half) each epoch; the test half apart
    halves = results["analogy_halves"]
    assert halves["validation"]["answered"] + halves["test"]["answered"] == results["analogy"]["answered"]
    assert results["test_analogy"] == halves["test"]["accuracy"]
    val_analogy = read_history(tiny_run / "logs/history.csv")["val_analogy"]
    assert len(val_analogy) == 1 and 0.0 <= val_analogy[0] <= 1.0
    assert results["similarity"]["wordsim353"]["oov_pairs"] > 0
    assert "king" not in results["neighbours_not_in_vocabulary"]


@pytest.mark.backend
def test_exports_load_in_gensim_and_tensorflow(tiny_run):
    from gensim.models import KeyedVectors

    words = (tiny_run / "vocab.tsv").read_text().splitlines()
    loaded = KeyedVectors.load_word2vec_format(str(tiny_run / "export/vectors.bin"), binary=True)
    assert len(loaded) == len(words) and loaded.index_to_key[0] == words[0].split("\t")[0]
    tf = pytest.importorskip("tensorflow")
    served = tf.saved_model.load(str(tiny_run / "export/saved_model")).signatures["lookup"](
        tokens=tf.constant(["the", "<never-seen>"]))
    np.testing.assert_allclose(served["vectors"].numpy()[0], loaded["the"], atol=1e-5)
    assert served["known"].numpy().tolist() == [True, False] and not served["vectors"].numpy()[1].any()


@pytest.mark.backend
def test_similar_and_analogy_commands(tiny_run, tmp_path, capsys):
    assert run_cli("embeddings", "similar", tiny_run, "King", "people", "--out", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "king:" in out and "people:" in out
    assert len(json.loads((tmp_path / "similar.json").read_text())["king"]) == 10
    a, b, c = (line.split("\t")[0] for line in (tiny_run / "vocab.tsv").read_text().splitlines()[20:23])
    assert run_cli("embeddings", "analogy", tiny_run, a, b, c) == 0
    assert f"{a} : {b} :: {c} :" in capsys.readouterr().out
    assert main(["embeddings", "analogy", "man", "king", "--workdir", str(tiny_run)]) == 2
    assert "three words" in capsys.readouterr().err
    assert main(["embeddings", "similar", "zzzqqq", "--workdir", str(tiny_run)]) == 2
    assert "Not in the vocabulary" in capsys.readouterr().err


@pytest.mark.backend
def test_training_is_deterministic_for_a_seed(tiny_run, tmp_path):
    import keras

    import tasks.embeddings.models  # noqa: F401 - registers the model class

    assert run_cli("embeddings", "train", tmp_path / "again", *TINY) == 0
    first = keras.models.load_model(tiny_run / "model.keras").vectors()
    second = keras.models.load_model(tmp_path / "again/model.keras").vectors()
    np.testing.assert_allclose(first, second, atol=1e-6)


# GloVe --------------------------------------------------------------------------------------------
def test_cooccurrence_counts_match_a_plain_loop_and_merge_in_chunks():
    from tasks.embeddings.glove import cooccurrence

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 7, 300).astype(np.int32)
    offsets = np.asarray([0, 50, 51, 200, 300])
    expected = {}
    for s, e in zip(offsets[:-1], offsets[1:]):
        for p in range(s, e):
            for d in range(1, 4):
                if p + d < e:
                    for a, b in ((tokens[p], tokens[p + d]), (tokens[p + d], tokens[p])):
                        expected[(a, b)] = expected.get((a, b), 0.0) + 1.0 / d
    rows, columns, values = cooccurrence(tokens, offsets, 7, 3, chunk_words=16, max_pending=40)
    assert len(values) == len(expected)
    for r, c, v in zip(rows, columns, values):
        assert v == pytest.approx(expected[(r, c)], rel=1e-5)


@pytest.mark.backend
def test_glove_step_follows_adagrad_on_the_weighted_squared_error():
    """One entry: the update GloVe's C code makes (step on the old squared sum, then add)."""
    from keras import ops

    from tasks.embeddings.models import GloVe

    model = GloVe(4, 3, seed=1)
    before = {name: ops.convert_to_numpy(v).copy() for name, v in model.tables().items()}
    batch = {"row_ids": np.asarray([1, 4], np.int32), "column_ids": np.asarray([2, 4], np.int32),
             "row_index": np.asarray([0], np.int32), "column_index": np.asarray([0], np.int32),
             "log_x": np.asarray([np.log(3.0)], np.float32), "weight": np.asarray([0.5], np.float32),
             "lr": np.asarray([0.05], np.float32)}
    rows, loss_sum, count = model.sparse_update({k: ops.convert_to_tensor(v) for k, v in before.items()}, batch)
    w, c = before["word_vectors"][1], before["context_vectors"][2]
    difference = w @ c + before["word_bias"][1, 0] + before["context_bias"][2, 0] - np.log(3.0)
    assert float(loss_sum) == pytest.approx(0.5 * 0.5 * difference**2, rel=1e-4) and float(count) == 1
    # GloVe's C code (glove.c): temp = eta * f(x) * diff * c; w -= temp / sqrt(G); G += temp^2; G starts at 1
    update = 0.05 * 0.5 * difference * c
    new_w = ops.convert_to_numpy(rows["word_vectors"][1])[0]
    np.testing.assert_allclose(new_w, w - update / np.sqrt(1.0), rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(rows["word_vectors_g2"][1])[0], 1.0 + update**2, rtol=1e-6)
    bias = ops.convert_to_numpy(rows["context_bias"][1])[0, 0]
    assert bias == pytest.approx(before["context_bias"][2, 0] - 0.05 * 0.5 * difference, rel=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(rows["word_vectors"][1])[1], before["word_vectors"][4])


@pytest.mark.backend
def test_glove_trains_end_to_end(tmp_path):
    assert run_cli("embeddings", "run", tmp_path / "glove", *TINY, "--set", "model.algorithm=glove",
                   "--set", "train.epochs=2") == 0
    training = json.loads((tmp_path / "glove/training.json").read_text())
    assert len(training["loss"]) == 2 and training["loss"][1] < training["loss"][0]
    assert len(training["val_analogy"]) == 2  # the same tune metric as word2vec, from W + W~
    assert (tmp_path / "glove/export/vectors.txt").exists()


@pytest.mark.backend
def test_resume_after_a_kill_is_exact(tmp_path, monkeypatch):
    import keras

    import tasks.embeddings.models  # noqa: F401 - registers the model class

    args = (*TINY, "--set", "train.epochs=2")
    train_killed_then_resumed("embeddings", tmp_path, args, monkeypatch)
    straight = keras.models.load_model(tmp_path / "straight/model.keras").vectors()
    resumed = keras.models.load_model(tmp_path / "killed/model.keras").vectors()
    np.testing.assert_allclose(straight, resumed, atol=1e-6)
    assert json.loads((tmp_path / "killed/training.json").read_text())["resumed_from_step"] > 0


def test_every_preset_is_valid_documented_and_round_trips(tmp_path):
    from shared import config as config_lib
    from shared.config import ConfigError
    from tasks.embeddings.config import PRESETS, EmbeddingsConfig

    assert {"smoke", "demo", "nltk-sg", "nltk-cbow", "nltk-glove"} <= set(PRESETS)
    for name, factory in PRESETS.items():
        cfg = factory()
        config_lib.validate(cfg)
        doc = factory.__doc__ or ""
        assert "Command:" in doc and "Expect" in doc, f"preset {name} lacks command/expectation"
        assert config_lib.load(EmbeddingsConfig, config_lib.save(cfg, tmp_path / f"{name}.json")) == cfg
    with pytest.raises(ConfigError, match="Unknown data.corpora"):
        config_lib.apply_overrides(PRESETS["smoke"](), ["data.corpora=brown,reuters"])
    with pytest.raises(ConfigError, match="data.source=text needs data.path"):
        config_lib.apply_overrides(PRESETS["smoke"](), ["data.source=text"])
