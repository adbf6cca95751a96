"""Evaluate stage: analogies, WordSim353, SimLex-999, nearest neighbours, a 2-D PCA of frequent
words; writes evaluation/results.json (the report reads it)."""

from __future__ import annotations

import numpy as np

from shared.io import atomic_write_json
from shared.task import Run
from tasks.embeddings.scores import (
    EVAL_FILES,
    analogy_accuracy,
    eval_file,
    read_analogies,
    score_analogies,
    similarity_correlation,
    split_analogies,
)
from tasks.embeddings.training import load_vectors


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    centred = vectors - vectors.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    return centred @ components[:2].T


def evaluate(run: Run) -> dict:
    config = run.config
    vectors = load_vectors(run)
    analogy_file = eval_file(EVAL_FILES["analogy"], run.data_root)
    analogy = analogy_accuracy(vectors, analogy_file, restrict=config.eval.analogy_vocab)
    # the halves: validation (val_analogy, what `tune` selects on) and test (never seen by it)
    halves = dict(zip(("validation", "test"), split_analogies(read_analogies(analogy_file)[0])))
    halves = {name: score_analogies(vectors, sections, config.eval.analogy_vocab)
              for name, sections in halves.items()}
    similarity = {name: similarity_correlation(vectors, eval_file(EVAL_FILES[name], run.data_root))
                  for name in ("wordsim353", "simlex999")}
    neighbours = {word: vectors.most_similar(word, 8) for word in config.eval.neighbours if word in vectors}
    missing = [word for word in config.eval.neighbours if word not in vectors]
    plotted = min(config.eval.plot_words, len(vectors))
    points = pca_2d(vectors.vectors[:plotted]) if plotted >= 3 else np.zeros((0, 2))
    results = {"analogy": analogy, "analogy_halves": halves, "test_analogy": halves["test"]["accuracy"],
               "similarity": similarity, "neighbours": neighbours,
               "neighbours_not_in_vocabulary": missing, "vocab_size": len(vectors),
               "pca": {"words": vectors.words[:len(points)], "points": np.round(points, 4).tolist()}}
    if hasattr(vectors, "oov_vector"):  # subword: the pairs out of the vocabulary scored from their n-grams
        from tasks.embeddings.subword import similarity_with_oov

        results["similarity_with_ngrams"] = {
            name: similarity_with_oov(vectors.vector, eval_file(EVAL_FILES[name], run.data_root))
            for name in ("wordsim353", "simlex999")}
    if config.eval.sentiment:
        results["sentiment"] = _sentiment(vectors, run)
    run.dir.evaluation.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run.dir.evaluation / "results.json", results)
    print(f"embeddings: analogy {_percent(analogy['accuracy'])} ({analogy['answered']} answered, "
          f"{analogy['skipped']} skipped; test half {_percent(halves['test']['accuracy'])}), "
          f"WordSim353 {_fmt(similarity['wordsim353']['spearman'])}, "
          f"SimLex-999 {_fmt(similarity['simlex999']['spearman'])}")
    return results


def _sentiment(vectors, run: Run) -> dict:
    from tasks.embeddings.downstream import sentiment

    config = run.config
    try:
        result = sentiment(vectors, run.data_root, epochs=config.eval.sentiment_epochs,
                           max_length=config.eval.sentiment_max_length, seed=config.seed,
                           lowercase=config.data.lowercase, drop_punctuation=config.data.drop_punctuation)
    except FileNotFoundError as error:  # the kit lacks movie_reviews: the other scores still count
        print(f"embeddings: sentiment check skipped: {error}")
        return {"skipped": str(error)}
    print("embeddings: movie_reviews sentiment accuracy " + ", ".join(
        f"{name} {value:.1%}" for name, value in result["accuracy"].items()))
    return result


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _percent(value) -> str:
    return "n/a" if value is None else f"{value:.2%}"
