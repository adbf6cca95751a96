"""The task's corpus: read once by `train` (cached as corpus.npz in the run folder) and the
vocabulary (vocab.tsv: word, count), which every later stage reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.datasets import corpus as corpus_lib
from shared.io import atomic_write_text
from tasks.embeddings.config import EmbeddingsConfig


def read_corpus(config: EmbeddingsConfig, data_root: Path) -> tuple[corpus_lib.Corpus, dict]:
    """The encoded corpus and what reading it met (non-UTF-8 lines, punctuation dropped)."""
    data = config.data
    options = corpus_lib.TextOptions(lowercase=data.lowercase, drop_punctuation=data.drop_punctuation)
    stats = corpus_lib.ReadStats()
    if data.source == "nltk":
        sentences = corpus_lib.nltk_sentences(data.corpora, data_root)
        what = f"NLTK corpora {', '.join(data.corpora)}"
    else:
        sentences = corpus_lib.text_file_sentences(data.path, data.layout, stats)
        what = f"text file {data.path}"
    corpus = corpus_lib.build_corpus(sentences, min_count=data.min_count, max_vocab=data.max_vocab,
                                     options=options, what=what)
    if data.max_words:
        corpus = _first_words(corpus, data.max_words)
    info = {"source": what, "raw_words": corpus.raw_words, "training_words": int(corpus.tokens.size),
            "sentences": corpus.num_sentences, "vocab_size": corpus.vocab_size,
            "distinct_words": corpus.distinct_words, "dropped_punctuation": corpus.dropped_punctuation,
            "lines": stats.lines, "non_utf8_lines": len(stats.bad_lines),
            "non_utf8_line_numbers": stats.bad_lines[:100]}
    if stats.bad_lines:
        print(f"warning: {len(stats.bad_lines)} line(s) of {data.path} are not UTF-8 (first: line "
              f"{stats.bad_lines[0]}); their bad bytes were replaced by U+FFFD")
    return corpus, info


def _first_words(corpus: corpus_lib.Corpus, limit: int) -> corpus_lib.Corpus:
    """The first `limit` in-vocabulary words (whole sentences), the vocabulary unchanged."""
    end = int(np.searchsorted(corpus.offsets, limit, side="right")) - 1
    end = max(end, 1)
    offsets = corpus.offsets[: end + 1]
    fraction = offsets[-1] / max(1, corpus.tokens.size)
    return corpus_lib.Corpus(corpus.words, corpus.counts, corpus.tokens[: offsets[-1]], offsets,
                             int(round(corpus.raw_words * fraction)), corpus.dropped_punctuation,
                             corpus.distinct_words)


def vocab_path(run_dir) -> Path:
    return Path(run_dir.root) / "vocab.tsv"


def save_vocab(run_dir, words: list[str], counts) -> Path:
    lines = [f"{word}\t{int(count)}" for word, count in zip(words, counts)]
    return atomic_write_text(vocab_path(run_dir), "\n".join(lines) + "\n")


def load_vocab(run_dir) -> tuple[list[str], np.ndarray]:
    path = vocab_path(run_dir)
    if not path.exists():
        raise FileNotFoundError(f"No vocabulary at {path}; train first (kts embeddings train --workdir "
                                f"{run_dir.root}).")
    words, counts = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        word, count = line.rsplit("\t", 1)
        words.append(word)
        counts.append(int(count))
    return words, np.asarray(counts, np.int64)
