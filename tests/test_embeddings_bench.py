"""benchmarks/embeddings.py's C-tool peers (benchmarks/c_tools.py): the corpus and vocabulary
files the C tools read, their text vectors read back, the commands, and (slow tier) the real
word2vec C tool built with gcc and trained on a tiny corpus."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import c_tools
from benchmarks import embeddings as bench
from pipelines.datasets import corpus as corpus_lib
from tasks.embeddings.config import PRESETS

SENTENCES = [["The", "cat", "sat", "."], ["A", "dog", ",", "the", "cat", "!"], [",", "..."], ["the", "dog", "ran"]]


def tiny_corpus(min_count=1):
    return corpus_lib.build_corpus(SENTENCES, min_count=min_count, options=corpus_lib.TextOptions(), what="test")


def test_corpus_file_is_the_encoded_corpus_one_sentence_per_line(tmp_path):
    corpus = tiny_corpus(min_count=2)  # the, cat, dog: the rest is out of vocabulary, as gensim gets it
    stats = c_tools.write_corpus(corpus.sentences(), tmp_path / "corpus.txt")
    text = (tmp_path / "corpus.txt").read_text(encoding="utf-8")
    assert text == "the cat\ndog the cat\nthe dog\n"
    assert stats == {"lines": 3, "words": 7, "long_words": 0, "long_sentences": 0}
    counts = c_tools.corpus_counts(corpus)
    assert dict(zip(corpus.words, counts.tolist())) == {"the": 3, "cat": 2, "dog": 2}
    c_tools.write_vocab(corpus.words, counts, stats["lines"], tmp_path / "vocab.txt")
    assert (tmp_path / "vocab.txt").read_text().splitlines() == ["</s> 3", "the 3", "cat 2", "dog 2"]


def test_corpus_file_counts_what_the_c_tool_cuts_and_refuses_what_it_cannot_hold(tmp_path):
    long_word, long_sentence = "x" * 120, ["w"] * (c_tools.C_MAX_SENTENCE + 1)
    stats = c_tools.write_corpus([[long_word, "a"], [], long_sentence], tmp_path / "c.txt")
    assert stats == {"lines": 2, "words": 2 + len(long_sentence), "long_words": 1, "long_sentences": 1}
    with pytest.raises(ValueError, match=r"Sentence 2 holds the word 'new york'"):
        c_tools.write_corpus([["a"], ["new york"]], tmp_path / "bad.txt")
    with pytest.raises(ValueError, match="corpus is empty"):
        c_tools.write_corpus([[], []], tmp_path / "empty.txt")


def write_c_vectors(path: Path, words, vectors):
    """word2vec.c's text output: "%lf " per number (a trailing space), "</s>" first."""
    lines = [f"{len(words)} {vectors.shape[1]}"]
    lines += [word + " " + "".join(f"{v:f} " for v in row) for word, row in zip(words, vectors)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_c_tool_text_vectors_are_read_without_the_sentence_token(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(4, 3)).astype(np.float32)
    write_c_vectors(tmp_path / "v.txt", ["</s>", "the", "cat", "dog"], vectors)
    loaded = c_tools.read_vectors(tmp_path / "v.txt")
    assert loaded.words == ["the", "cat", "dog"]
    np.testing.assert_allclose(loaded.vectors, vectors[1:], atol=1e-6)
    (tmp_path / "glove.txt").write_text("the 1 2\n<unk> 0 0\ncat 3 4\n")
    assert c_tools.read_vectors(tmp_path / "glove.txt", kind="glove").words == ["the", "cat"]
    (tmp_path / "short.txt").write_text("3 2\n</s> 0 0 \nthe 1 2 \n")
    with pytest.raises(ValueError, match="short.txt"):
        c_tools.read_vectors(tmp_path / "short.txt")


def test_word2vec_command_carries_the_preset_settings(tmp_path):
    config = PRESETS["nltk-sg"]()
    argv = c_tools.word2vec_command(Path("w2v"), Path("c.txt"), Path("v.txt"), Path("o.txt"), config, threads=2)
    settings = dict(zip(argv[1::2], argv[2::2]))
    assert settings == {"-train": "c.txt", "-read-vocab": "v.txt", "-output": "o.txt", "-cbow": "0", "-size": "100",
                        "-window": "5", "-negative": "5", "-hs": "0", "-sample": "0.001", "-min-count": "5",
                        "-iter": "5", "-alpha": "0.025", "-threads": "2", "-binary": "0", "-debug": "2"}
    config = PRESETS["nltk-cbow"]()
    config.model.objective = "hierarchical"
    argv = c_tools.word2vec_command(Path("w"), Path("c"), Path("v"), Path("o"), config, threads=4)
    settings = dict(zip(argv[1::2], argv[2::2]))
    assert (settings["-cbow"], settings["-hs"], settings["-negative"], settings["-alpha"]) == ("1", "1", "0", "0.025")


def test_missing_gcc_or_glove_is_a_one_line_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(c_tools.ToolUnavailable, match="gcc not found"):
        c_tools.build_word2vec(tmp_path)
    with pytest.raises(c_tools.ToolUnavailable, match="lacks the GloVe program"):
        c_tools.glove_binaries(tmp_path)
    (tmp_path / "w2v.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(c_tools.ToolUnavailable, match="not a readable tarball"):
        c_tools.word2vec_source(tmp_path / "w2v.tar.gz", tmp_path)


def test_flags():
    args = bench.parse_args(["--preset", "demo", "--no-ours", "--c-tool", "--tools-dir", "t", "--glove-tool", "g"])
    assert (args.no_ours, args.c_tool, args.tools_dir, args.glove_tool, args.workers) == (True, True, Path("t"),
                                                                                        Path("g"), 2)


def test_repeat_alternates_ours_and_gensim_and_takes_the_median_round(monkeypatch, tmp_path, capsys):
    """--repeat N: ours then gensim N times; time = the median round, scores from the first,
    a speed ratio per round (adjacent runs: the same minutes of a shared machine)."""
    calls, times = [], iter([10.0, 2.0, 30.0, 3.0, 20.0, 5.0])  # ours, gensim, ours, gensim, ...

    class Corpus:
        tokens = np.zeros(1000, np.int32)

    vectors = object()
    monkeypatch.setattr(bench, "run_ours", lambda args, workdir, settings=(): calls.append("ours") or {
        "seconds": next(times), "vocab": 7, "training_words": 1000, "vectors": vectors, "backend": "tensorflow"})
    monkeypatch.setattr(bench, "run_gensim", lambda config, corpus, workers: calls.append("gensim") or {
        "seconds": next(times), "vocab": 7, "vectors": vectors})
    monkeypatch.setattr(bench, "scores", lambda v, root: calls.append("score") or {
        "analogy": 0.1, "analogy_answered": 3, "wordsim353": 0.2, "simlex999": 0.3})
    from tasks.embeddings import data as data_lib

    monkeypatch.setattr(data_lib, "read_corpus", lambda config, root: (Corpus(), {}))
    result = bench.main(["--preset", "smoke", "--repeat", "3", "--data-root", str(tmp_path)])
    assert calls == ["ours", "score", "gensim", "score", "ours", "gensim", "ours", "gensim"]
    assert result["ours"]["round_seconds"] == [10.0, 30.0, 20.0] and result["ours"]["seconds"] == 20.0
    assert result["gensim"]["seconds"] == 3.0 and result["ours"]["words_per_second"] == 1000 / 20.0
    assert result["round_speed_ratios"] == {"ours / gensim": [0.2, 0.1, 0.25]}
    assert result["ratios"]["speed (ours / gensim)"] == pytest.approx(3.0 / 20.0)
    assert result["ours"]["analogy"] == 0.1 and "round by round: 0.200, 0.100, 0.250" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.parse_args(["--repeat", "0"])


def fake_tool(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\nimport sys\nargs = sys.argv[1:]\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


FAKE_WORD2VEC = """
settings = dict(zip(args[::2], args[1::2]))
rows = [line.split() for line in open(settings["-read-vocab"], encoding="utf-8")]
words = [word for word, count in rows if word == "</s>" or int(count) >= int(settings["-min-count"])]
dim = int(settings["-size"])
with open(settings["-output"], "w", encoding="utf-8") as f:
    f.write(f"{len(words)} {dim}\\n")
    for i, word in enumerate(words):
        f.write(word + " " + "".join(f"{((i * 7 + j * 3) % 11) / 10 - 0.5:f} " for j in range(dim)) + "\\n")
"""


def test_the_script_runs_the_c_peers_and_reports_them(tmp_path, monkeypatch, data_root):
    """The plumbing with stand-in tools (scripts that write vectors): the corpus and vocabulary
    files, the scoring, the JSON keys and the ratios; the real tools are the slow test's."""
    fake = tmp_path / "tools"
    fake.mkdir()
    binary = fake_tool(fake / "word2vec", FAKE_WORD2VEC)
    (fake / "build.txt").write_text("gcc word2vec.c -o word2vec\n")
    monkeypatch.setattr(c_tools, "build_word2vec", lambda *args, **kwargs: binary)
    glove = tmp_path / "glove"
    glove.mkdir()
    fake_tool(glove / "vocab_count", "from collections import Counter\n"
              "minimum = int(args[args.index('-min-count') + 1])\n"
              "counts = Counter(sys.stdin.read().split()).most_common()\n"
              "sys.stdout.write(''.join(f'{w} {n}\\n' for w, n in counts if n >= minimum))\n")
    for stage in ("cooccur", "shuffle"):
        fake_tool(glove / stage, "sys.stdout.write(sys.stdin.read())\n")
    fake_tool(glove / "glove", "words = [line.split()[0] for line in open(args[args.index('-vocab-file') + 1])]\n"
              "open(args[args.index('-save-file') + 1] + '.txt', 'w').write(''.join(\n"
              "    f'{w} {i % 5} {i % 3 + 1}\\n' for i, w in enumerate(words + ['<unk>'])))\n")
    rng = np.random.default_rng(0)
    words = ["king", "queen", "man", "woman", "good", "bad", "day", "night", "war", "money"]
    (tmp_path / "text.txt").write_text("\n".join(" ".join(rng.choice(words, 8)) for _ in range(300)) + "\nrare\n")

    def tiny():
        config = PRESETS["smoke"]()
        config.data.source, config.data.path, config.model.dim = "text", str(tmp_path / "text.txt"), 8
        return config

    monkeypatch.setitem(PRESETS, "tiny", tiny)
    result = bench.main(["--preset", "tiny", "--no-ours", "--no-peer", "--c-tool", "--glove-tool", str(glove),
                         "--data-root", str(data_root), "--json", str(tmp_path / "r.json")])
    corpus_words = result["c_corpus_file"]["words"]
    assert (corpus_words, result["c_corpus_file"]["lines"], result["epochs"]) == (2400, 300, 1)
    for key in ("word2vec_c_peer", "glove_c_peer"):
        peer = result[key]
        assert peer["words_per_second"] == pytest.approx(corpus_words / peer["seconds"])
        assert {"analogy", "wordsim353", "simlex999", "vocab", "threads"} <= set(peer)
    assert result["word2vec_c_peer"]["vocab"] == result["glove_c_peer"]["vocab"] == len(words)
    assert "-read-vocab" in result["word2vec_c_peer"]["command"]
    assert set(result["glove_c_peer"]["stage_seconds"]) == set(c_tools.GLOVE_STAGES)
    assert "ratios" not in result and (tmp_path / "r.json").is_file()


@pytest.mark.slow
def test_word2vec_c_tool_builds_and_trains_on_a_tiny_corpus(tmp_path):
    """The real tool: downloaded (pip) and built (gcc) into a fresh folder, or $KTS_TOOLS_DIR's
    build; skipped where either is not to be had."""
    tools = Path(os.environ["KTS_TOOLS_DIR"]) if os.environ.get("KTS_TOOLS_DIR") else tmp_path / "tools"
    try:
        binary = c_tools.build_word2vec(tools)
    except c_tools.ToolUnavailable as error:
        pytest.skip(str(error))
    rng = np.random.default_rng(0)
    topics = (["cat", "dog", "cow", "pig"], ["car", "bus", "train", "truck"])
    sentences = [[str(word) for word in rng.choice(topics[i % 2], 6)] for i in range(3000)]
    corpus = corpus_lib.build_corpus(sentences, min_count=5, options=corpus_lib.TextOptions(), what="test")
    stats = c_tools.write_corpus(corpus.sentences(), tmp_path / "corpus.txt")
    vocab = c_tools.write_vocab(corpus.words, c_tools.corpus_counts(corpus), stats["lines"], tmp_path / "vocab.txt")
    config = PRESETS["smoke"]()
    config.model.dim, config.model.sample, config.train.epochs = 16, 0.0, 3
    run = c_tools.run_word2vec(binary, tmp_path / "corpus.txt", vocab, config, threads=1, workdir=tmp_path)
    vectors = run["vectors"]
    assert sorted(vectors.words) == sorted(corpus.words) and vectors.vectors.shape == (8, 16)
    assert np.isfinite(vectors.vectors).all() and run["seconds"] > 0
    # words of one topic (sentences never mix topics) end up nearer each other than to the other's
    assert vectors.similarity("cat", "dog") > vectors.similarity("cat", "car") + 0.2
