"""Word vectors as a plain object: nearest neighbours, 3CosAdd analogies, and the word2vec
text and binary formats (what `gensim.models.KeyedVectors.load_word2vec_format` reads)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from shared.io import atomic_file


class WordVectors:
    """`words[i]` has vector `vectors[i]`; words are ordered most frequent first."""

    def __init__(self, words: list[str], vectors: np.ndarray):
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or len(words) != len(vectors):
            raise ValueError(f"Expected one vector per word. Received: {len(words)} words, vectors "
                             f"{vectors.shape}")
        self.words, self.vectors = list(words), vectors
        self.index = {word: i for i, word in enumerate(self.words)}
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.unit = vectors / np.maximum(norms, 1e-12)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def similarity(self, a: str, b: str) -> float:
        return float(self.unit[self.index[a]] @ self.unit[self.index[b]])

    def nearest(self, query: np.ndarray, count: int, exclude=(), restrict: int | None = None):
        """The `count` words whose unit vectors have the largest dot product with `query`."""
        unit = self.unit[:restrict] if restrict else self.unit
        scores = unit @ query
        for i in exclude:
            if i < len(scores):
                scores[i] = -np.inf
        top = np.argpartition(-scores, min(count, len(scores) - 1))[:count]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.words[i], float(scores[i])) for i in top]

    def most_similar(self, word: str, count: int = 10):
        i = self.index[word]
        return self.nearest(self.unit[i], count, exclude=(i,))

    def analogy(self, a: str, b: str, c: str, count: int = 5, restrict: int | None = None):
        """a is to b as c is to ? (3CosAdd: nearest to b - a + c, a b c excluded)."""
        ia, ib, ic = self.index[a], self.index[b], self.index[c]
        query = self.unit[ib] - self.unit[ia] + self.unit[ic]
        return self.nearest(query / max(np.linalg.norm(query), 1e-12), count, (ia, ib, ic), restrict)

    def save_word2vec(self, path: str | os.PathLike, binary: bool = False) -> Path:
        """word2vec format: a "count dim" header, then one word and its vector per line
        (text), or the word, a space and dim little-endian float32s (binary)."""
        path = Path(path)
        for word in self.words:
            if not word or any(ch.isspace() for ch in word):
                raise ValueError(f"The word2vec format cannot hold the word {word!r} (empty or with "
                                 "whitespace).")
        with atomic_file(path) as tmp, open(tmp, "wb") as f:
            f.write(f"{len(self.words)} {self.vectors.shape[1]}\n".encode())
            for word, vector in zip(self.words, self.vectors):
                if binary:
                    f.write(word.encode("utf-8") + b" " + vector.astype("<f4").tobytes() + b"\n")
                else:
                    f.write((word + " " + " ".join(f"{v:.6g}" for v in vector) + "\n").encode("utf-8"))
        return path

    @classmethod
    def load_word2vec(cls, path: str | os.PathLike, binary: bool = False) -> WordVectors:
        """Reads either format; a header that disagrees with the rows is a ValueError naming
        the file and line."""
        path = Path(path)
        with open(path, "rb") as f:
            header = f.readline().split()
            try:
                count, dim = int(header[0]), int(header[1])
            except (IndexError, ValueError):
                raise ValueError(f"{path}: the first line must be '<word count> <dimension>'. Received: "
                                 f"{b' '.join(header)[:60]!r}") from None
            words, vectors = [], np.zeros((count, dim), np.float32)
            for row in range(count):
                if binary:
                    word = b""
                    while (ch := f.read(1)) not in (b" ", b""):
                        if ch != b"\n":
                            word += ch
                    data = f.read(4 * dim)
                    if len(data) < 4 * dim:
                        raise ValueError(f"{path}: the header says {count} words, the file ends at word {row + 1}")
                    vectors[row] = np.frombuffer(data, "<f4")
                    words.append(word.decode("utf-8", errors="replace"))
                else:
                    parts = f.readline().decode("utf-8", errors="replace").rstrip("\n").split(" ")
                    if len(parts) != dim + 1:
                        raise ValueError(f"{path}: line {row + 2} has {len(parts) - 1} numbers, the header says "
                                         f"dimension {dim}" + (" (the file ends early)" if parts == [""] else ""))
                    words.append(parts[0])
                    vectors[row] = np.asarray(parts[1:], np.float32)
        return cls(words, vectors)
