"""Intrinsic scores of word vectors: Google analogies (3CosAdd) and Spearman correlation with
human similarity judgements (WordSim353, SimLex-999). Pure numpy/scipy, tested alone.

Malformed lines are counted and skipped; questions or pairs with a word outside the
vocabulary are counted (`skipped` / `oov_pairs`), as gensim's evaluators do.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tasks.embeddings.vectors import WordVectors

SEMANTIC_SECTIONS = 5  # questions-words.txt: the first five sections are semantic, the rest "gram*"
EVAL_FILES = {"analogy": "questions-words.txt", "wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}


def eval_file(name: str, data_root: str | os.PathLike) -> Path:
    """<data root>/word-eval/<name>, else the copy inside gensim (gensim/test/test_data)."""
    path = Path(data_root) / "word-eval" / name
    if path.is_file():
        return path
    try:
        from gensim.test.utils import datapath

        if Path(datapath(name)).is_file():
            return Path(datapath(name))
    except ImportError:
        pass
    raise FileNotFoundError(f"Evaluation file {name} not found in {path.parent} (nor in gensim's test data).")


def read_analogies(path: str | os.PathLike) -> tuple[list[tuple[str, list[tuple[str, ...]]]], int]:
    """[(section, [(a, b, c, d), ...]), ...] lower-cased, and the number of malformed lines."""
    sections: list[tuple[str, list]] = []
    malformed = 0
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        if line.startswith(":"):
            sections.append((line[1:].strip(), []))
            continue
        words = line.lower().split()
        if len(words) != 4 or not sections:
            malformed += 1
            continue
        sections[-1][1].append(tuple(words))
    return sections, malformed


ANALOGY_SPLIT_SEED = 0  # the validation / test halves of the analogies: the same for every run


def split_analogies(sections: list, fraction: float = 0.5, seed: int = ANALOGY_SPLIT_SEED) -> tuple[list, list]:
    """(validation, test) sections: in each section, a seeded `fraction` of its questions (in
    file order) is the validation part and the rest the test part; a pure function of the
    file and the seed, so every run and every search trial sees the same halves."""
    validation, test = [], []
    for number, (section, questions) in enumerate(sections):
        order = np.random.default_rng([seed, number]).permutation(len(questions))
        chosen = set(order[:round(len(questions) * fraction)].tolist())
        validation.append((section, [q for i, q in enumerate(questions) if i in chosen]))
        test.append((section, [q for i, q in enumerate(questions) if i not in chosen]))
    return validation, test


def analogy_accuracy(vectors: WordVectors, path: str | os.PathLike, restrict: int = 30000,
                     batch_size: int = 2048) -> dict:
    """3CosAdd over the `restrict` most frequent words; questions with a word outside them
    are skipped (counted). Accuracy = correct / answered, overall, semantic and syntactic."""
    sections, malformed = read_analogies(path)
    return {**score_analogies(vectors, sections, restrict, batch_size), "malformed_lines": malformed}


def score_analogies(vectors: WordVectors, sections: list, restrict: int = 30000, batch_size: int = 2048) -> dict:
    """`analogy_accuracy` of questions already read (`read_analogies`, `split_analogies`)."""
    unit = vectors.unit[:restrict]
    index = {w: i for w, i in vectors.index.items() if i < restrict}
    table, totals = [], {"all": [0, 0], "semantic": [0, 0], "syntactic": [0, 0]}
    skipped = 0
    for number, (section, questions) in enumerate(sections):
        ids = np.asarray([[index[w] for w in q] for q in questions if all(w in index for w in q)], np.int64)
        skipped += len(questions) - len(ids)
        correct = 0
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]
            query = unit[chunk[:, 1]] - unit[chunk[:, 0]] + unit[chunk[:, 2]]
            scores = query @ unit.T
            rows = np.arange(len(chunk))[:, None]
            scores[rows, chunk[:, :3]] = -np.inf
            correct += int(np.sum(np.argmax(scores, axis=1) == chunk[:, 3]))
        kind = "semantic" if number < SEMANTIC_SECTIONS and not section.startswith("gram") else "syntactic"
        for key in ("all", kind):
            totals[key][0] += correct
            totals[key][1] += len(ids)
        table.append({"section": section, "correct": correct, "answered": len(ids),
                      "skipped": len(questions) - len(ids)})
    accuracy = {k: (c / n if n else None) for k, (c, n) in totals.items()}
    return {"accuracy": accuracy["all"], "semantic": accuracy["semantic"], "syntactic": accuracy["syntactic"],
            "answered": totals["all"][1], "skipped": skipped, "sections": table, "restrict_vocab": restrict}


def read_pairs(path: str | os.PathLike) -> tuple[list[tuple[str, str, float]], int]:
    """(word1, word2, human score) from a tab-separated file ('#' lines are comments), and the
    number of malformed lines."""
    pairs, malformed = [], 0
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        try:
            pairs.append((fields[0].strip().lower(), fields[1].strip().lower(), float(fields[2])))
        except (IndexError, ValueError):
            malformed += 1
    return pairs, malformed


def similarity_correlation(vectors: WordVectors, path: str | os.PathLike) -> dict:
    """Spearman's rho between cosine similarity and the human scores, over the pairs whose
    words are both in the vocabulary (rho None when fewer than 3 are)."""
    from scipy.stats import spearmanr

    pairs, malformed = read_pairs(path)
    known = [(a, b, s) for a, b, s in pairs if a in vectors and b in vectors]
    rho = None
    if len(known) >= 3:
        ours = [vectors.similarity(a, b) for a, b, _ in known]
        rho = float(spearmanr(ours, [s for _, _, s in known]).statistic)
    return {"spearman": rho, "pairs": len(known), "oov_pairs": len(pairs) - len(known),
            "malformed_lines": malformed}
