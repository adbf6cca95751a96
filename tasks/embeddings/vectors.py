"""Word vectors as a plain object: nearest neighbours, 3CosAdd analogies, and the word2vec
text and binary formats (what `gensim.models.KeyedVectors.load_word2vec_format` reads)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from shared.io import atomic_file, atomic_write_text


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

    def save_projector(self, folder: str | os.PathLike) -> Path:
        """TensorBoard projector files: vectors.tsv (one row of tab-separated numbers per
        word) and metadata.tsv (the words, one a line, same order; one column, no header)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        rows = "\n".join("\t".join(f"{v:.6g}" for v in vector) for vector in self.vectors)
        atomic_write_text(folder / "vectors.tsv", rows + "\n")
        # a word that is empty or holds a tab / newline would shift the rows: written escaped
        atomic_write_text(folder / "metadata.tsv", "\n".join(
            (word.replace("\t", "\\t").replace("\n", "\\n") or "<empty>") for word in self.words) + "\n")
        return folder

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
                    parts = f.readline().decode("utf-8", errors="replace").rstrip().split(" ")
                    if len(parts) != dim + 1:
                        raise ValueError(f"{path}: line {row + 2} has {len(parts) - 1} numbers, the header says "
                                         f"dimension {dim}" + (" (the file ends early)" if parts == [""] else ""))
                    words.append(parts[0])
                    vectors[row] = _numbers(parts[1:], path, row + 2)
            if not binary and f.read().strip():
                raise ValueError(f"{path}: the header says {count} words, the file has more lines after line "
                                 f"{count + 1}")
        return cls(words, vectors)

    @classmethod
    def load_glove(cls, path: str | os.PathLike) -> WordVectors:
        """GloVe's text format: 'word v1 ... vd' per line, no header; every line must have
        the first line's count of numbers (a ValueError names the file and line)."""
        path = Path(path)
        words, rows, dim = [], [], None
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                parts = raw.decode("utf-8", errors="replace").rstrip().split(" ")
                if parts == [""]:
                    continue
                dim = len(parts) - 1 if dim is None else dim
                if len(parts) - 1 != dim or dim == 0:
                    raise ValueError(f"{path}: line {number} has {len(parts) - 1} numbers, the first line has {dim}")
                words.append(parts[0])
                rows.append(_numbers(parts[1:], path, number))
        if not rows:
            raise ValueError(f"{path}: no vectors in the file")
        return cls(words, np.stack(rows))

    @classmethod
    def load(cls, path: str | os.PathLike, kind: str = "auto") -> WordVectors:
        """`kind`: word2vec (text), word2vec-binary, glove, or auto: .bin is word2vec binary,
        a first line of two integers is word2vec text, anything else GloVe."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Vectors file {path} not found.")
        if kind == "auto":
            with open(path, "rb") as f:
                first = f.readline().split()
            header = len(first) == 2 and all(token.isdigit() for token in first)
            kind = "word2vec-binary" if path.suffix == ".bin" else "word2vec" if header else "glove"
        if kind == "glove":
            return cls.load_glove(path)
        if kind in ("word2vec", "word2vec-binary"):
            return cls.load_word2vec(path, binary=kind == "word2vec-binary")
        raise ValueError(f"Unknown vectors format {kind!r}. Expected auto, word2vec, word2vec-binary or glove.")


def _numbers(fields: list[str], path: Path, line: int) -> np.ndarray:
    try:
        return np.asarray(fields, np.float32)
    except ValueError:
        bad = next(x for x in fields if not _is_number(x))
        raise ValueError(f"{path}: line {line} holds {bad[:30]!r} where a number was expected") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
