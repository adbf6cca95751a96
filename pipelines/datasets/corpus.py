"""Text corpora for word embeddings: token streams in, an encoded `Corpus` out.

Sources (each yields sentences as lists of tokens):

- `nltk_sentences(names, data_root)`: NLTK's corpus readers over `<data root>/nltk_data`
  (brown, abc, movie_reviews, state_union, webtext, inaugural; the zips are read as they
  are). Each corpus's `words()` stream is split into sentences at the tokens . ! ?
- `text_file_sentences(path, layout)`: `layout="lines"`: one sentence per line;
  `layout="raw"`: running text split into sentences at . ! ? (a one-line text8-style file
  is read in chunks, never whole, and cut into pieces of at most `MAX_SENTENCE_WORDS`).
  Lines that are not UTF-8 are decoded with U+FFFD replacements and counted.
- any iterable of token lists.

`build_corpus(sentences, ...)` reads the stream once: lower-casing and punctuation-token
filtering (`TextOptions`), word counts, a vocabulary with `min_count` / `max_vocab` (most
frequent first, ties by word), and the in-vocabulary tokens as one int32 array with
sentence offsets (out-of-vocabulary tokens are dropped, as word2vec does). An empty corpus,
or a vocabulary empty after `min_count`, is a ValueError saying what to change.
"""

from __future__ import annotations

import codecs
import dataclasses
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

NLTK_CORPORA = ("brown", "abc", "movie_reviews", "state_union", "webtext", "inaugural")
SENTENCE_END = frozenset({".", "!", "?"})
MAX_SENTENCE_WORDS = 10_000  # longer sentences are cut (gensim and word2vec do the same)
CHUNK_BYTES = 1 << 20
_TOKEN = re.compile(r"\w+(?:['\u2019-]\w+)*|[^\w\s]+")


def is_punctuation(token: str) -> bool:
    """A token without a single letter or digit ("," "--" "``" "...")."""
    return not any(ch.isalnum() for ch in token)


def tokenize(text: str) -> list[str]:
    """Words (with inner ' or -) and runs of punctuation as separate tokens."""
    return _TOKEN.findall(text)


def split_sentences(tokens: Iterable[str]) -> Iterator[list[str]]:
    """Cuts a token stream after each . ! ? token (kept, so filtering decides) and every
    MAX_SENTENCE_WORDS tokens."""
    sentence: list[str] = []
    for token in tokens:
        sentence.append(token)
        if token in SENTENCE_END or len(sentence) >= MAX_SENTENCE_WORDS:
            yield sentence
            sentence = []
    if sentence:
        yield sentence


def nltk_reader(name: str, data_root: str | os.PathLike):
    """The NLTK corpus reader `name`, reading from `<data_root>/nltk_data`."""
    if name not in NLTK_CORPORA:
        raise ValueError(f"Unknown NLTK corpus {name!r}. Expected some of: {', '.join(NLTK_CORPORA)}")
    folder = Path(data_root) / "nltk_data"
    if not (folder / "corpora" / f"{name}.zip").exists() and not (folder / "corpora" / name).is_dir():
        raise FileNotFoundError(f"NLTK corpus {name!r} not found under {folder}/corpora (expected {name}.zip "
                                "or a folder). Fetch it with `kts data fetch nltk-corpora` (needs a network), or set "
                                "--data-root to the folder holding nltk_data/.")
    import nltk

    if str(folder) not in nltk.data.path:
        nltk.data.path.insert(0, str(folder))
    import nltk.corpus

    return getattr(nltk.corpus, name)


def nltk_sentences(names: Iterable[str], data_root: str | os.PathLike) -> Iterator[list[str]]:
    """Sentences of the named NLTK corpora, file by file (a sentence never spans files)."""
    for name in names:
        reader = nltk_reader(name, data_root)
        for fileid in reader.fileids():
            yield from split_sentences(reader.words(fileid))


@dataclasses.dataclass
class ReadStats:
    """What a text reader met: lines read, lines with bytes that are not UTF-8."""

    lines: int = 0
    bad_lines: list[int] = dataclasses.field(default_factory=list)  # 1-based line numbers


def _pieces(path: Path, stats: ReadStats) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, line ends here) pieces of a file read CHUNK_BYTES at a time; a
    line longer than a chunk comes in pieces cut at a space. Not UTF-8: replaced, counted."""
    number = 1
    pending = b""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(CHUNK_BYTES)
            data = pending + chunk
            if not data:
                break
            lines = data.split(b"\n")
            pending = lines.pop() if chunk else b""
            if chunk and not lines and len(pending) >= CHUNK_BYTES:  # one long line: cut at a space
                cut = pending.rfind(b" ")
                cut = cut if cut > 0 else len(pending)
                yield number, _decode(pending[:cut], number, stats), False
                pending = pending[cut:]
                continue
            for raw in lines:
                yield number, _decode(raw, number, stats), True
                number += 1
            if not chunk:
                break
    stats.lines = number - 1


def _decode(raw: bytes, number: int, stats: ReadStats) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        if not stats.bad_lines or stats.bad_lines[-1] != number:
            stats.bad_lines.append(number)
        return codecs.decode(raw, "utf-8", errors="replace")


def text_file_sentences(path: str | os.PathLike, layout: str = "lines",
                        stats: ReadStats | None = None) -> Iterator[list[str]]:
    """Sentences of a plain text file. `layout`: "lines" (one sentence per line) or "raw"
    (running text, sentences end at . ! ?). `stats` (optional) receives line counts and the
    numbers of lines that were not UTF-8 (decoded with replacement characters)."""
    path = Path(path)
    if layout not in ("lines", "raw"):
        raise ValueError(f"Unknown text layout {layout!r}. Expected 'lines' or 'raw'.")
    if not path.is_file():
        raise FileNotFoundError(f"Text file {path} not found.")
    stats = stats if stats is not None else ReadStats()
    if layout == "lines":
        partial: list[str] = []
        for _, text, ends in _pieces(path, stats):
            partial.extend(tokenize(text))
            if ends or len(partial) >= MAX_SENTENCE_WORDS:
                while partial:
                    yield partial[:MAX_SENTENCE_WORDS]
                    partial = partial[MAX_SENTENCE_WORDS:]
        return
    yield from split_sentences(token for _, text, _ in _pieces(path, stats) for token in tokenize(text))


@dataclasses.dataclass
class TextOptions:
    lowercase: bool = True
    drop_punctuation: bool = True  # drop tokens without a letter or digit


@dataclasses.dataclass
class Corpus:
    """A vocabulary and the corpus encoded with it.

    `words[i]` has `counts[i]` occurrences (most frequent first); `tokens` holds the ids of
    every in-vocabulary token in corpus order; sentence s is
    `tokens[offsets[s]:offsets[s + 1]]` (sentences left empty are dropped)."""

    words: list[str]
    counts: np.ndarray  # int64 [vocab]
    tokens: np.ndarray  # int32 [tokens]
    offsets: np.ndarray  # int64 [sentences + 1]
    raw_words: int = 0  # tokens read, after filtering, before the vocabulary cut
    dropped_punctuation: int = 0
    distinct_words: int = 0  # before min_count / max_vocab

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    @property
    def num_sentences(self) -> int:
        return len(self.offsets) - 1

    def index(self) -> dict[str, int]:
        return {word: i for i, word in enumerate(self.words)}

    def sentences(self) -> Iterator[list[str]]:
        """The encoded corpus as word lists (what another library would train on)."""
        words = np.asarray(self.words, dtype=object)
        for start, end in zip(self.offsets[:-1], self.offsets[1:]):
            yield words[self.tokens[start:end]].tolist()

    def save(self, path: str | os.PathLike) -> None:
        from shared.io import atomic_file

        with atomic_file(path, suffix=".npz") as tmp:
            np.savez(tmp, words=np.asarray(self.words), counts=self.counts, tokens=self.tokens,
                     offsets=self.offsets, info=np.asarray([self.raw_words, self.dropped_punctuation,
                                                            self.distinct_words]))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Corpus:
        with np.load(path, allow_pickle=False) as data:
            raw, dropped, distinct = (int(v) for v in data["info"])
            return cls(data["words"].tolist(), data["counts"], data["tokens"], data["offsets"], raw, dropped,
                       distinct)


def build_corpus(sentences: Iterable[Iterable[str]], *, min_count: int = 5, max_vocab: int = 0,
                 options: TextOptions | None = None, what: str = "the corpus") -> Corpus:
    """One pass over `sentences`: filter, count, cut the vocabulary, encode. `max_vocab` > 0
    keeps only that many most frequent words (after `min_count`). `what` names the source
    in error messages."""
    options = options or TextOptions()
    provisional: dict[str, int] = {}
    chunks: list[np.ndarray] = []
    lengths: list[int] = []
    dropped = 0
    buffer: list[int] = []
    for sentence in sentences:
        ids = []
        for token in sentence:
            if options.drop_punctuation and is_punctuation(token):
                dropped += 1
                continue
            if options.lowercase:
                token = token.lower()
            index = provisional.get(token)
            if index is None:
                index = provisional[token] = len(provisional)
            ids.append(index)
        if ids:
            buffer.extend(ids)
            lengths.append(len(ids))
        if len(buffer) >= 1 << 20:
            chunks.append(np.asarray(buffer, np.int32))
            buffer = []
    chunks.append(np.asarray(buffer, np.int32))
    stream = np.concatenate(chunks)
    if stream.size == 0:
        raise ValueError(f"{what} has no words" + (" (every token was punctuation)" if dropped else "")
                         + "; check the data source and its path.")
    counts = np.bincount(stream, minlength=len(provisional)).astype(np.int64)
    words = np.asarray(list(provisional), dtype=object)
    keep = np.flatnonzero(counts >= min_count)
    if keep.size == 0:
        raise ValueError(f"The vocabulary of {what} is empty: none of its {len(provisional):,} distinct words "
                         f"occurs min_count={min_count} times (the most frequent occurs {counts.max():,} "
                         "times). Lower data.min_count or give a larger corpus.")
    order = sorted(keep.tolist(), key=lambda i: (-counts[i], words[i]))
    if max_vocab > 0:
        order = order[:max_vocab]
    order = np.asarray(order, np.int64)
    remap = np.full(len(provisional), -1, np.int32)
    remap[order] = np.arange(len(order), dtype=np.int32)
    encoded = remap[stream]
    inside = encoded >= 0
    sentence_ids = np.repeat(np.arange(len(lengths)), lengths)
    kept_per_sentence = np.bincount(sentence_ids[inside], minlength=len(lengths))
    kept_per_sentence = kept_per_sentence[kept_per_sentence > 0]
    offsets = np.concatenate([[0], np.cumsum(kept_per_sentence)]).astype(np.int64)
    return Corpus(words=words[order].tolist(), counts=counts[order], tokens=encoded[inside],
                  offsets=offsets, raw_words=int(stream.size), dropped_punctuation=dropped,
                  distinct_words=len(provisional))
