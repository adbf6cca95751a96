"""Word embeddings, beyond the core: epochs padded to whole compiled calls, batch-shape
buckets, vectors files (GloVe, word2vec, TensorBoard projector) and initial / frozen
vectors, the movie_reviews sentiment check, bad evaluation input."""

import json

import numpy as np
import pytest

from shared.testing import run_cli
from tasks.embeddings import sampling
from tasks.embeddings.scores import analogy_accuracy, similarity_correlation
from tasks.embeddings.training import padded_stream
from tasks.embeddings.vectors import WordVectors

TINY = ("--preset", "smoke", "--set", "data.max_words=20000", "--set", "eval.plot_words=20")


def _batches(**kwargs):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50, 3000).astype(np.int32)
    counts = np.bincount(tokens, minlength=50) + 1
    settings = dict(sg=True, window=3, negative=4, sample=1e-2, alpha=0.025, min_alpha=1e-4, epochs=2,
                    words_per_batch=256, seed=3)
    settings.update(kwargs)
    return sampling.Word2VecBatches(tokens, np.asarray([0, 7, 400, 401, 1500, 3000]), counts, **settings)


def test_epochs_are_padded_to_whole_compiled_calls_with_empty_batches():
    batches = _batches()
    real = batches.steps_per_epoch
    make_batch, steps = padded_stream(batches, 4)
    assert steps % 4 == 0 and real <= steps < real + 4
    for step in (0, real - 1, steps + 2):  # epoch 2 starts at `steps`: its batch k is the real batch k
        epoch, k = divmod(step, steps)
        np.testing.assert_array_equal(make_batch(step)["out_index"], batches(epoch * real + k)["out_index"])
    if steps > real:
        empty = make_batch(real)
        assert not empty["weight"].any() and not empty["in_weight"].any() and empty["kept_words"][0] == 0
    assert padded_stream(batches, 1) == (batches, real)


def test_fewer_sizes_per_octave_mean_fewer_batch_shapes():
    assert [sampling.bucket(n, per_octave=2) for n in (208, 1000, 1025, 1537, 4600)] == [256, 1024, 1536, 2048, 6144]
    shapes = {}
    for per_octave in (8, 2):
        batches = _batches(sizes_per_octave=per_octave)
        shapes[per_octave] = {tuple(len(v) for v in batches(s).values()) for s in range(batches.steps_per_epoch)}
    assert len(shapes[2]) <= len(shapes[8])


# Vectors files ------------------------------------------------------------------------------------
def test_glove_and_word2vec_files_load_and_disagreements_name_file_and_line(tmp_path):
    glove = tmp_path / "glove.6B.3d.txt"
    glove.write_text("the 0.1 0.2 0.3\nking 1 0 0.5\n\nqueen 1 1 0.5\n")
    vectors = WordVectors.load(glove)
    assert vectors.words == ["the", "king", "queen"] and vectors.vectors.shape == (3, 3)
    glove.write_text("the 0.1 0.2 0.3\nking 1 0\n")
    with pytest.raises(ValueError, match=r"glove.6B.3d.txt: line 2 has 2 numbers, the first line has 3"):
        WordVectors.load(glove)
    glove.write_text("the 0.1 0.2 0.3\nking 1 zero 2\n")
    with pytest.raises(ValueError, match=r"line 2 holds 'zero' where a number was expected"):
        WordVectors.load(glove, "glove")
    text = tmp_path / "w2v.txt"
    text.write_text("2 2\nman 1 0 \nwoman 1 1\nextra 0 0\n")  # a trailing space is fine (word2vec's C tool)
    with pytest.raises(ValueError, match=r"w2v.txt: the header says 2 words, the file has more lines after line 3"):
        WordVectors.load(text)
    binary = WordVectors(["a", "b"], np.ones((2, 4))).save_word2vec(tmp_path / "v.bin", binary=True)
    binary.write_bytes(binary.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"v.bin: the header says 2 words, the file ends at word 2"):
        WordVectors.load(binary)
    with pytest.raises(FileNotFoundError, match="nowhere.txt not found"):
        WordVectors.load(tmp_path / "nowhere.txt")


def test_projector_files_have_one_row_per_word(tmp_path):
    vectors = WordVectors(["king", "queen"], np.asarray([[1, 0.5], [0, -2]]))
    folder = vectors.save_projector(tmp_path / "projector")
    assert (folder / "metadata.tsv").read_text() == "king\nqueen\n"
    rows = [line.split("\t") for line in (folder / "vectors.tsv").read_text().splitlines()]
    np.testing.assert_allclose(np.asarray(rows, float), vectors.vectors)


@pytest.mark.backend
def test_frozen_initial_vectors_stay(tmp_path, capsys):
    words = ["the", "of", "and", "zzz-not-in-corpus"]
    start = np.random.default_rng(0).normal(size=(4, 32)).astype(np.float32)
    path = WordVectors(words, start).save_word2vec(tmp_path / "start.txt")
    workdir = tmp_path / "run"
    assert run_cli("embeddings", "train", workdir, *TINY, "--set", f"model.init_vectors={path}",
                   "--set", "model.freeze_vectors=true") == 0
    training = json.loads((workdir / "training.json").read_text())
    assert training["initial_vectors"]["vocabulary_words_found"] == 3
    import keras

    vocab = [line.split("\t")[0] for line in (workdir / "vocab.tsv").read_text().splitlines()]
    trained = WordVectors(vocab, keras.models.load_model(workdir / "model.keras").vectors())
    for i, word in enumerate(words[:3]):
        np.testing.assert_allclose(trained.vectors[trained.index[word]], start[i], atol=1e-5)  # the file: 6 digits
    from shared.cli import main

    assert main(["embeddings", "train", "--workdir", str(tmp_path / "bad"), *TINY, "--set",
                 f"model.init_vectors={path}", "--set", "model.dim=16"]) == 2
    assert "holds 32-dimensional vectors; model.dim is 16" in capsys.readouterr().err


# Sentiment ------------------------------------------------------------------------------------------
def test_sentiment_reviews_are_read_split_and_encoded(data_root, tmp_path):
    from tasks.embeddings.downstream import encode, load_reviews

    reviews = load_reviews(data_root, per_class=6)
    assert len(reviews["train"][0]) == 12 and reviews["train"][1].sum() == 6 and len(reviews["test"][0]) == 12
    assert all(w == w.lower() and any(ch.isalnum() for ch in w) for w in reviews["train"][0][0])
    ids, kept, dropped = encode([["the", "zzz", "film", "the"], []], {"the": 0, "film": 1}, 2)
    assert ids.tolist() == [[1, 2], [0, 0]] and (kept, dropped) == (2, 1)  # id + 1; 0 pads; cut at 2
    with pytest.raises(FileNotFoundError, match="kts data fetch nltk-corpora"):
        load_reviews(tmp_path)


@pytest.mark.slow
@pytest.mark.backend
def test_sentiment_check_reports_three_classifiers_on_the_fixed_split(data_root):
    from tasks.embeddings.downstream import sentiment

    words = ["the", "film", "good", "bad", "movie", "great", "worst", "plot"]
    vectors = WordVectors(words, np.random.default_rng(0).normal(size=(len(words), 8)))
    result = sentiment(vectors, data_root, epochs=2, max_length=40, per_class=6)
    assert set(result["accuracy"]) == {"frozen", "fine-tuned", "random"}
    assert all(0 <= a <= 1 for a in result["accuracy"].values()) and result["test_reviews"] == 12
    assert result["train_tokens_out_of_vocabulary"] > result["train_tokens_kept"] > 0


# Bad evaluation input --------------------------------------------------------------------------------
def test_evaluation_words_all_out_of_vocabulary_are_counted_not_errors(tmp_path):
    vectors = WordVectors(["alpha", "beta", "gamma"], np.eye(3))
    questions = tmp_path / "q.txt"
    questions.write_text(": capital\nathens greece paris france\nbroken\n: gram1\nbad good worse better\n")
    result = analogy_accuracy(vectors, questions)
    assert result["accuracy"] is None and result["answered"] == 0 and result["skipped"] == 2
    assert result["malformed_lines"] == 1
    pairs = tmp_path / "pairs.tsv"
    pairs.write_bytes(b"king\tqueen\t9\nman\twoman\tnot-a-number\n\xff\xfe\tx\t1\n")
    sim = similarity_correlation(vectors, pairs)
    assert sim == {"spearman": None, "pairs": 0, "oov_pairs": 2, "malformed_lines": 1}


@pytest.mark.slow
@pytest.mark.backend
def test_training_with_xla_is_deterministic(tmp_path):
    import keras

    import tasks.embeddings.models  # noqa: F401 - registers the model class

    args = (*TINY, "--set", "data.max_words=8000", "--set", "train.jit_compile=true")
    for name in ("a", "b"):
        assert run_cli("embeddings", "train", tmp_path / name, *args) == 0
    first, second = (keras.models.load_model(tmp_path / name / "model.keras").vectors() for name in ("a", "b"))
    np.testing.assert_array_equal(first, second)


# Hierarchical softmax ------------------------------------------------------------------------------
def test_huffman_tree_is_prefix_free_and_optimal():
    import heapq

    from tasks.embeddings.huffman import huffman_tree

    counts = np.asarray([50, 30, 30, 12, 9, 5, 5, 1, 1, 1])
    points, codes, lengths = huffman_tree(counts)
    words = ["".join(map(str, codes[w, :lengths[w]])) for w in range(len(counts))]
    assert len(set(words)) == len(words)
    assert not any(a != b and b.startswith(a) for a in words for b in words)  # prefix-free
    heap, merged = counts.tolist(), 0  # reference: the optimal cost is the sum of every merge
    heapq.heapify(heap)
    while len(heap) > 1:
        total = heapq.heappop(heap) + heapq.heappop(heap)
        merged += total
        heapq.heappush(heap, total)
    assert int((counts * lengths).sum()) == merged
    assert np.all(points[:, 0] == len(counts) - 2)  # every path starts at the root (the last node made)
    pairs = range(len(counts))
    assert all(lengths[a] <= lengths[b] for a in pairs for b in pairs if counts[a] > counts[b])  # frequent: short
    assert np.all(points[np.arange(points.shape[1]) >= lengths[:, None]] == 10)  # padding: the pad id
    with pytest.raises(ValueError, match="at least 2 words"):
        huffman_tree([5])


@pytest.mark.backend
def test_hierarchical_softmax_probabilities_sum_to_one_and_training_lowers_the_loss(tmp_path):
    from keras import ops

    from tasks.embeddings.huffman import huffman_tree
    from tasks.embeddings.models import negative_sampling

    counts = np.asarray([40, 20, 9, 7, 3, 2, 1])
    points, codes, lengths = huffman_tree(counts)
    rng = np.random.default_rng(0)
    hidden, nodes = rng.normal(size=(1, 4)), rng.normal(size=(len(counts) - 1 + 2, 4))  # + unused + pad row
    mask = (np.arange(points.shape[1])[None, :] < lengths[:, None]).astype(np.float32)
    probability = 0.0
    for word in range(len(counts)):
        batch = {"in_index": np.zeros((1, 1), np.int32), "in_weight": np.ones((1, 1), np.float32),
                 "out_index": points[word:word + 1], "weight": mask[word:word + 1],
                 "out_label": (1 - codes[word:word + 1]).astype(np.float32)}
        loss = negative_sampling(ops.convert_to_tensor(hidden, "float32"), ops.convert_to_tensor(nodes, "float32"),
                                 batch)[2]
        probability += np.exp(-float(ops.convert_to_numpy(loss)))
    assert probability == pytest.approx(1.0, abs=1e-4)
    assert run_cli("embeddings", "train", tmp_path / "hs", *TINY, "--set", "model.objective=hierarchical",
                   "--set", "train.epochs=2", "--set", "data.max_words=8000") == 0
    loss = json.loads((tmp_path / "hs/training.json").read_text())["loss"]
    assert len(loss) == 2 and loss[1] < loss[0]


@pytest.mark.backend
def test_initial_vectors_without_a_shared_word_or_of_another_dimension_are_clear_errors(tmp_path):
    from tasks.embeddings.config import PRESETS
    from tasks.embeddings.models import Word2Vec
    from tasks.embeddings.training import load_initial_vectors

    path = WordVectors(["Alpha", "Beta"], np.ones((2, 4))).save_word2vec(tmp_path / "v.txt")
    config = PRESETS["smoke"]()
    config.model.dim, config.model.init_vectors = 4, str(path)
    model = Word2Vec(3, 4)
    with pytest.raises(ValueError, match=r"None of the 3 vocabulary words is in .*v.txt .*Alpha, Beta.*lowercase"):
        load_initial_vectors(model, config, ["alpha", "beta", "gamma"])
    config.model.dim = 8
    with pytest.raises(ValueError, match=r"holds 4-dimensional vectors; model.dim is 8"):
        load_initial_vectors(Word2Vec(3, 8), config, ["Alpha", "beta", "gamma"])
    found = load_initial_vectors(model, _with(config, dim=4), ["Alpha", "x", "y"])
    assert found["vocabulary_words_found"] == 1


def _with(config, **model):
    for key, value in model.items():
        setattr(config.model, key, value)
    return config
