"""Evaluate stage: 10-fold verification, ROC, one-shot identification and open-set rejection
on the evaluation people, the eigenfaces and whitened-LBP baselines on the same pairs; writes
evaluation/results.json and evaluation/scores.npz (per-pair distances, for the report)."""

from __future__ import annotations

import time

import numpy as np

from shared.io import atomic_file, atomic_write_json
from shared.task import Run
from tasks.faces import data as data_lib
from tasks.faces import models, whitening
from tasks.faces import verification as V
from tasks.faces.training import read_threshold


def _scores(distances, pairs, threshold: float | None) -> dict:
    result = {"kfold_accuracy": V.kfold_accuracy(distances, pairs.same, pairs.fold),
              **{k: v for k, v in V.roc(distances, pairs.same).items()}}
    if threshold is not None:
        result["accuracy_at_deployed_threshold"] = V.accuracy_at(distances, pairs.same, threshold)
        same = pairs.same.astype(bool)
        result["false_accept_rate_at_deployed"] = float((distances[~same] <= threshold).mean())
        result["false_reject_rate_at_deployed"] = float((distances[same] > threshold).mean())
    return result


def _identification(vectors, labels, gallery, probes, distance, threshold=None) -> dict:
    if distance == "cosine":
        unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        matrix = 1.0 - unit[probes] @ unit[gallery].T
    else:
        matrix = np.linalg.norm(vectors[probes][:, None] - vectors[gallery][None], axis=-1)
    return V.identification(matrix, labels[probes], labels[gallery], threshold)


def _whitened_lbp(config, splits) -> tuple[np.ndarray, dict]:
    """The LBP baseline: uniform LBP histograms (local ternary patterns with `model.lbp_threshold`,
    `model.lbp_cells` cells) at each of `model.lbp_radii` (the size's default radius when there
    are none), each whitened by a fit on the training images (shrinkage
    `model.whitening`, 0.1 when that is off), side by side, mirrored images averaged in with
    `eval.flip_average`: the model's LBP blocks on their own, no network."""
    faces, size = splits.faces, config.data.image_size
    radii = config.model.lbp_radii or (V.LocalBinaryPatterns.for_size(size).radius,)
    shrinkage = config.model.whitening or 0.1
    blocks, fits = [], []

    def views(lbp, images):
        mirrored = [images[:, :, ::-1]] if config.eval.flip_average else []
        return [whitening.in_chunks(lbp.transform, view) for view in [images, *mirrored]]

    for radius in radii:
        lbp = V.LocalBinaryPatterns.for_size(size, radius, config.model.lbp_cells, config.model.lbp_threshold)
        fits.append(whitening.fit(whitening.averaged(views(lbp, faces.images[splits.train])), shrinkage))
        blocks.append(views(lbp, faces.images[splits.eval]))
    histograms = np.zeros((len(faces), sum(block[0].shape[1] for block in blocks)), np.float32)
    histograms[splits.eval] = whitening.combined(blocks, fits)
    return histograms, {"radii": list(radii), "cells": lbp.cells, "threshold": lbp.threshold, "whitening": shrinkage,
                        "flip_average": config.eval.flip_average}


def evaluate(run: Run) -> dict:
    config = run.config
    splits = data_lib.load_splits(config, run.data_root)
    faces, pairs = splits.faces, splits.eval_pairs
    deployed = read_threshold(run)["threshold"]
    model = models.load_embedding_model(run.dir.require_model())
    started = time.perf_counter()
    vectors = np.zeros((len(faces), model.output.shape[-1]), np.float32)
    vectors[splits.eval] = models.embed(model, faces.images[splits.eval], config.eval.batch_size,
                                        config.eval.flip_average)
    seconds = time.perf_counter() - started
    distances = V.distances_of(vectors, pairs.first, pairs.second)
    ours = _scores(distances, pairs, deployed)
    gallery, probes = V.gallery_split(faces.labels[splits.eval], config.seed)
    gallery, probes = splits.eval[gallery], splits.eval[probes]
    ours["identification"] = _identification(vectors, faces.labels, gallery, probes, "euclidean", deployed)

    pca = V.Eigenfaces(config.eval.pca_components).fit(faces.images[splits.train])
    projected = np.zeros((len(faces), pca.basis.shape[0]))
    projected[splits.eval] = pca.transform(faces.images[splits.eval])
    pca_distances = V.cosine_distances_of(projected, pairs.first, pairs.second)
    baseline = _scores(pca_distances, pairs, None)
    baseline["identification"] = _identification(projected, faces.labels, gallery, probes, "cosine")
    baseline["components"] = int(pca.basis.shape[0])
    histograms, lbp_settings = _whitened_lbp(config, splits)
    lbp_scores = _scores(V.distances_of(histograms, pairs.first, pairs.second), pairs, None)
    lbp_scores["identification"] = _identification(histograms, faces.labels, gallery, probes, "euclidean")
    lbp_scores["settings"] = lbp_settings

    results = {"auc": ours["auc"],  # top level: Task.tune_test_key, the test twin of val_auc
               "ours": ours, "eigenfaces": baseline, "lbp": lbp_scores, "deployed_threshold": deployed,
               "data": splits.counts(),
               "folds": int(len(np.unique(pairs.fold))), "flip_average": config.eval.flip_average,
               "embeddings_per_second": len(splits.eval) * (2 if config.eval.flip_average else 1) / max(seconds, 1e-9),
               "pairs_protocol": "LFW pairs.txt (View 2)" if config.data.pairs else
               "all same-person pairs of the evaluation people + as many different-person pairs",
               "skipped": splits.skipped}
    run.dir.evaluation.mkdir(parents=True, exist_ok=True)
    with atomic_file(run.dir.evaluation / "scores.npz", suffix=".npz") as tmp:
        np.savez(tmp, first=pairs.first, second=pairs.second, same=pairs.same, fold=pairs.fold,
                 distances=distances, pca_distances=pca_distances)
    atomic_write_json(run.dir.evaluation / "results.json", results)
    acc, pca_acc = ours["kfold_accuracy"], baseline["kfold_accuracy"]
    print(f"faces: {results['folds']}-fold accuracy {acc['mean']:.2%} +- {acc['std']:.2%}, AUC {ours['auc']:.4f}, "
          f"EER {ours['eer']:.2%}, rank-1 {ours['identification']['rank1']:.2%}, open-set rejection "
          f"{ours['identification']['open_set_rejection']:.2%} at {deployed:.3f}; eigenfaces "
          f"{pca_acc['mean']:.2%} +- {pca_acc['std']:.2%}, AUC {baseline['auc']:.4f}; whitened LBP histograms "
          f"{lbp_scores['kfold_accuracy']['mean']:.2%}, AUC {lbp_scores['auc']:.4f}")
    return results
