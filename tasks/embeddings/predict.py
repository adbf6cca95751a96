"""`kts embeddings similar WORD...` (nearest neighbours) and `kts embeddings analogy A B C`
(A is to B as C is to ?) on a trained run; `predict` is `similar`."""

from __future__ import annotations

from pathlib import Path

from shared.io import atomic_write_json
from shared.task import Run
from tasks.embeddings.training import load_vectors


def _check(vectors, words: list[str]) -> list[str]:
    words = [w.lower() for w in words] if vectors.words and vectors.words[0].islower() else list(words)
    unknown = [w for w in words if w not in vectors]
    if unknown:
        raise ValueError(f"Not in the vocabulary ({len(vectors):,} words): {', '.join(unknown)}")
    return words


def similar(run: Run, words: list[str], out: Path | None = None, count: int = 10) -> dict:
    vectors = load_vectors(run)
    results = {word: vectors.most_similar(word, count) for word in _check(vectors, words)}
    for word, found in results.items():
        print(f"{word}: " + ", ".join(f"{w} {s:.3f}" for w, s in found))
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
