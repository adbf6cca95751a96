"""`kts embeddings similar WORD...` (nearest neighbours) and `kts embeddings analogy A B C`
(A is to B as C is to ?) on a trained run; `predict` is `similar`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.io import atomic_write_json
from shared.task import Run
from tasks.embeddings.training import load_vectors


def _check(vectors, words: list[str], subword_ok: bool = False) -> list[str]:
    """The words as the vocabulary spells them; unknown ones are an error, except for a subword
    run's `similar` (`subword_ok`): those get the mean of their character n-gram rows."""
    words = [w.lower() for w in words] if vectors.words and vectors.words[0].islower() else list(words)
    known = (lambda w: w in vectors or vectors.oov_vector(w) is not None) if subword_ok and _subword(vectors) \
        else (lambda w: w in vectors)
    unknown = [w for w in words if not known(w)]
    if unknown:
        hint = " (a subword run answers them in `similar`)" if _subword(vectors) else ""
        raise ValueError(f"Not in the vocabulary ({len(vectors):,} words){hint}: {', '.join(unknown)}")
    return words


def _subword(vectors) -> bool:
    return hasattr(vectors, "oov_vector")


def similar(run: Run, words: list[str], out: Path | None = None, count: int = 10) -> dict:
    vectors = load_vectors(run)
    results, oov = {}, []
    for word in _check(vectors, words, subword_ok=True):
        if word in vectors:
            results[word] = vectors.most_similar(word, count)
            continue
        query = vectors.oov_vector(word)
        results[word] = vectors.nearest(query / max(float(np.linalg.norm(query)), 1e-12), count)
        oov.append(word)
    for word, found in results.items():
        note = " (not in the vocabulary: its vector is the mean of its character n-grams)" if word in oov else ""
        print(f"{word}{note}: " + ", ".join(f"{w} {s:.3f}" for w, s in found))
    if oov:
        results = {**results, "_oov_from_ngrams": oov}
    if out is not None:
        atomic_write_json(Path(out) / "similar.json", results)
    return results


def analogy(run: Run, words: list[str], out: Path | None = None, count: int = 5) -> dict:
    if len(words) != 3:
        raise ValueError(f"analogy needs three words, A B C (A is to B as C is to ?). Received {len(words)}: "
                         f"{' '.join(words)}")
    vectors = load_vectors(run)
    a, b, c = _check(vectors, words)
    found = vectors.analogy(a, b, c, count)
    print(f"{a} : {b} :: {c} : " + ", ".join(f"{w} {s:.3f}" for w, s in found))
    result = {"question": [a, b, c], "answers": found}
    if out is not None:
        atomic_write_json(Path(out) / "analogy.json", result)
    return result
