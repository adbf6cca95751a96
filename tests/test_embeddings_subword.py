"""Subword (fastText) vectors: n-gram hashing (fastText's ids, the same at training and query
time, in numpy and in the SavedModel's graph), vectors as means of rows, a training step, and
a smoke run end to end (loss falls, OOV queries answered, exports, resume exact)."""

import json

import numpy as np
import pytest

from shared.testing import run_cli, train_killed_then_resumed
from tasks.embeddings import subword
from tasks.embeddings.sampling import Word2VecBatches

WORDS = ["where", "héllo", "a", "日本語テキスト", "😀x", "internationalization"]
# fastText's (and gensim's ft_ngram_hashes) ids of "where", minn 3, maxn 6, 2M buckets:
# <wh <whe <wher <where whe wher where where> her here here> ere ere> re>
WHERE_IDS = [167652, 989715, 1526707, 1071586, 420941, 312621, 969176, 121234, 1473420, 1540811, 114991,
             1529033, 1568469, 867498]


def test_ngram_ids_are_fasttexts():
    ids, offsets = subword.ngram_ids(["where"], 3, 6, 2_000_000)
    assert ids.tolist() == WHERE_IDS and offsets.tolist() == [0, 14]
    ft_ngram_hashes = pytest.importorskip("gensim.models.fasttext").ft_ngram_hashes
    for minn, maxn in ((3, 6), (1, 3), (2, 5)):
        ids, offsets = subword.ngram_ids(WORDS + [""], minn, maxn, 50_000, chunk=4)  # chunks agree too
        for i, word in enumerate(WORDS + [""]):
            assert ids[offsets[i]:offsets[i + 1]].tolist() == list(ft_ngram_hashes(word, minn, maxn, 50_000)), word


def test_vocabulary_rows_are_the_word_then_its_ngrams():
    rows, offsets = subword.vocabulary_rows(["where", "a"], 3, 6, 1000)
    ids, ngram_offsets = subword.ngram_ids(["where", "a"], 3, 6, 1000)
    assert offsets.tolist() == [0, 15, 17]  # "<a>" is the one n-gram of "a"
    assert rows[0] == 0 and rows[1:15].tolist() == (ids[:14] + 2).tolist()
    assert rows[15] == 1 and rows[16] == ids[14] + 2


@pytest.mark.backend
def test_vectors_are_means_of_rows_and_oov_words_the_mean_of_their_ngrams():
    import keras

    words = ["where", "here", "a"]
    rows, _ = subword.vocabulary_rows(words, 3, 6, 64)
    model = subword.SubwordWord2Vec(3, 4, minn=3, maxn=6, buckets=64, entries=len(rows), seed=1)
    model.set_vocabulary(words)
    table = np.random.default_rng(0).normal(size=(3 + 64 + 1, 4)).astype(np.float32)
    model.input_vectors.assign(table)
    ids, _ = subword.ngram_ids(["here"], 3, 6, 64)
    np.testing.assert_allclose(model.vectors()[1], np.concatenate([table[[1]], table[3 + ids]]).mean(0), atol=1e-6)
    vectors = subword.SubwordVectors.from_model(model, words)
    oov, _ = subword.ngram_ids(["wherever"], 3, 6, 64)
    np.testing.assert_allclose(vectors.oov_vector("wherever"), table[3 + oov].mean(0), atol=1e-6)
    np.testing.assert_allclose(vectors.vector("here"), vectors.vectors[1])
    assert subword.SubwordVectors(words, vectors.vectors, vectors.ngrams, 9, 9).oov_vector("ab") is None
    assert keras.ops.convert_to_numpy(model.vocab_rows).tolist() == rows.tolist()


@pytest.mark.backend
@pytest.mark.parametrize("sg", [True, False], ids=["skipgram", "cbow"])
def test_a_step_scores_composed_words_and_gives_each_row_the_hidden_gradient(sg):
    from keras import ops

    from tasks.embeddings.models import negative_sampling

    rng = np.random.default_rng(0)
    words = [f"w{i}x" for i in range(20)]
    tokens = rng.integers(0, 20, 400).astype(np.int32)
    counts = np.bincount(tokens, minlength=20) + 1
    rows, offsets = subword.vocabulary_rows(words, 3, 4, 50)
    settings = dict(sg=sg, window=2, negative=3, sample=0, alpha=0.025, min_alpha=1e-4, epochs=1,
                    words_per_batch=64, seed=0)
    batches = subword.SubwordBatches(tokens, np.asarray([0, 400]), counts, rows=rows, offsets=offsets, buckets=50,
                                     **settings)
    plain = Word2VecBatches(tokens, np.asarray([0, 400]), counts, **settings)(0)
    batch = batches(0)
    np.testing.assert_array_equal(batch["out_index"], plain["out_index"])  # word2vec's examples, unchanged
    model = subword.SubwordWord2Vec(20, 8, minn=3, maxn=4, buckets=50, entries=len(rows), seed=0)
    model.set_vocabulary(words)
    values = {"input_vectors": ops.convert_to_tensor(rng.normal(0, 0.3, (71, 8)).astype(np.float32)),
              "output_vectors": ops.convert_to_tensor(rng.normal(0, 0.3, (21, 8)).astype(np.float32))}
    updates, loss_sum, examples = model.sparse_update(values, batch)
    composed = np.concatenate([model.vectors() * 0, np.zeros((1, 8), np.float32)])
    table = ops.convert_to_numpy(values["input_vectors"])
    for w in range(20):
        composed[w] = table[rows[offsets[w]:offsets[w + 1]]].mean(0)
    outputs = ops.convert_to_numpy(values["output_vectors"])
    # fastText's hidden vector: the mean over every row of every input word (a word weighs its row count)
    sizes = np.append(np.diff(offsets), 0)[plain["in_rows"]]
    weighted = {**plain, "in_weight": plain["in_weight"] * sizes[plain["in_index"]]}
    expected = negative_sampling(composed[plain["in_rows"]], outputs[plain["out_rows"]], weighted)
    assert float(loss_sum) == pytest.approx(float(expected[2]), rel=1e-5)
    assert float(examples) == float(expected[3])
    # each row of a word moves by lr x the summed gradient of the hidden vectors it is in (not a
    # share of it; negative_sampling's word gradient is that times the word's weight, its row count)
    ids, new = (ops.convert_to_numpy(x) for x in updates["input_vectors"])
    d_word = ops.convert_to_numpy(expected[0])
    lr = float(batch["lr"][0])
    for slot, word in enumerate(plain["in_rows"]):
        if word < 20:
            at = int(np.flatnonzero(ids == word)[0])
            np.testing.assert_allclose(table[word] - new[at], lr * d_word[slot] / sizes[slot], atol=1e-6)
    assert np.abs(d_word).max() > 0


def test_hot_row_uses_scales_down_the_rows_a_batch_uses_most():
    rng = np.random.default_rng(0)
    words = [f"w{i}x" for i in range(20)]
    tokens = rng.integers(0, 20, 400).astype(np.int32)
    rows, offsets = subword.vocabulary_rows(words, 3, 4, 50)
    settings = dict(sg=True, window=2, negative=3, sample=0, alpha=0.025, min_alpha=1e-4, epochs=1,
                    words_per_batch=64, seed=0, rows=rows, offsets=offsets, buckets=50)
    args = (tokens, np.asarray([0, 400]), np.bincount(tokens, minlength=20) + 1)
    assert np.all(subword.SubwordBatches(*args, **settings)(0)["row_scale"] == 1)  # off by default
    batch = subword.SubwordBatches(*args, hot_row_uses=4, **settings)(0)
    scale = batch["row_scale"]
    uses = np.bincount(batch["in_index"][batch["in_weight"] > 0], minlength=len(batch["word_count"]))
    row_uses = np.bincount(batch["sub_index"], weights=uses[batch["sub_word"]], minlength=len(scale))
    np.testing.assert_allclose(scale, 1 / np.maximum(1, row_uses / 4), rtol=1e-6)
    assert scale.min() < 1


def test_subword_settings_are_checked():
    from shared import config as config_lib
    from shared.config import ConfigError
    from tasks.embeddings.config import PRESETS

    assert PRESETS["nltk-subword"]().model.subword
    with pytest.raises(ConfigError, match="model.subword=true is for skipgram and cbow"):
        config_lib.apply_overrides(PRESETS["smoke"](), ["model.subword=true", "model.algorithm=glove"])
    with pytest.raises(ConfigError, match="model.hot_row_uses must be >= 0"):
        config_lib.apply_overrides(PRESETS["smoke"](), ["model.subword=true", "model.hot_row_uses=-1"])
    with pytest.raises(ConfigError, match="1 <= model.minn <= model.maxn"):
        config_lib.apply_overrides(PRESETS["smoke"](), ["model.subword=true", "model.minn=5", "model.maxn=3"])


# End to end on the smoke preset ------------------------------------------------------------------
SUBWORD = ("--preset", "smoke", "--set", "data.max_words=10000", "--set", "eval.plot_words=20",
           "--set", "model.subword=true", "--set", "model.buckets=5000", "--set", "model.sizes_per_octave=1",
           "--set", "train.epochs=2")


@pytest.fixture(scope="module")
def subword_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("subword") / "run"
    assert run_cli("embeddings", "run", workdir, *SUBWORD) == 0
    return workdir


@pytest.mark.backend
def test_subword_run_trains_and_answers_words_outside_the_vocabulary(subword_run, tmp_path, capsys):
    training = json.loads((subword_run / "training.json").read_text())
    assert len(training["loss"]) == 2 and training["loss"][1] < training["loss"][0]
    exported = subword.load_export(subword_run / "export")  # vectors.txt + ngrams.npy + subword.json
    assert exported.buckets == 5000 and (exported.minn, exported.maxn) == (3, 6)
    assert "governmentalities" not in exported
    assert run_cli("embeddings", "similar", subword_run, "governmentalities", "the", "--out", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "governmentalities (not in the vocabulary: its vector is the mean of its character n-grams):" in out
    assert json.loads((tmp_path / "similar.json").read_text())["_oov_from_ngrams"] == ["governmentalities"]
    results = json.loads((subword_run / "evaluation/results.json").read_text())
    for name in ("wordsim353", "simlex999"):  # every pair scored: the vocabulary's and the n-grams'
        similarity = results["similarity"][name]
        assert results["similarity_with_ngrams"][name]["pairs"] == similarity["pairs"] + similarity["oov_pairs"]
    info = json.loads((subword_run / "export/export.json").read_text())
    assert info["subword"]["buckets"] == 5000 and info["words"] == len(exported)


@pytest.mark.backend
def test_the_hashing_at_query_time_is_the_trainings(subword_run):
    import keras

    words = [line.split("\t")[0] for line in (subword_run / "vocab.tsv").read_text().splitlines()]
    model = keras.models.load_model(subword_run / "model.keras")
    rows, offsets = subword.vocabulary_rows(words, 3, 6, 5000)
    assert keras.ops.convert_to_numpy(model.vocab_rows).tolist() == rows.tolist()
    exported = subword.load_export(subword_run / "export")
    np.testing.assert_allclose(exported.vectors, model.vectors(), atol=1e-5)  # in-vocabulary: as before
    ids, _ = subword.ngram_ids(["unpresidential"], 3, 6, 5000)
    np.testing.assert_allclose(exported.oov_vector("unpresidential"), model.ngram_table()[ids].mean(0), atol=1e-6)
    tf = pytest.importorskip("tensorflow")
    served = tf.saved_model.load(str(subword_run / "export/saved_model")).signatures["lookup"](
        tokens=tf.constant(["the", "unpresidential", "日本語"]))
    assert served["known"].numpy().tolist() == [True, False, False]
    assert served["from_ngrams"].numpy().tolist() == [False, True, True]
    np.testing.assert_allclose(served["vectors"].numpy()[1], exported.oov_vector("unpresidential"), atol=1e-5)
    np.testing.assert_allclose(served["vectors"].numpy()[2], exported.oov_vector("日本語"), atol=1e-5)
    np.testing.assert_allclose(served["vectors"].numpy()[0], exported.vector("the"), atol=1e-5)


@pytest.mark.backend
def test_subword_resume_after_a_kill_is_exact(tmp_path, monkeypatch):
    import keras

    train_killed_then_resumed("embeddings", tmp_path, SUBWORD, monkeypatch)
    straight = keras.models.load_model(tmp_path / "straight/model.keras").vectors()
    resumed = keras.models.load_model(tmp_path / "killed/model.keras").vectors()
    np.testing.assert_allclose(straight, resumed, atol=1e-6)
