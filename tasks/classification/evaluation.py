"""Evaluate stage: whole-test-split metrics (accuracy, top-k, per-class P/R/F1, confusion)."""

from __future__ import annotations

import json

import numpy as np

from shared.io import atomic_file, atomic_write_json
from shared.task import Run
from tasks.classification.layers import load_model


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def predict_probabilities(model, stream, tta_flip: bool = False):
    """(probabilities, plain_probabilities, labels) over a finite stream of (image, one_hot,
    weight) batches; with `tta_flip` the first averages the image and its mirror, the second
    is the image alone (the same as the first without TTA)."""
    probabilities, plain, labels = [], [], []
    for images, one_hot, _ in stream:
        images = np.asarray(images, np.float32)
        probs = softmax(np.asarray(model.predict_on_batch(images), np.float32))
        plain.append(probs)
        if tta_flip:
            flipped = np.asarray(model.predict_on_batch(images[:, :, ::-1]), np.float32)
            probs = 0.5 * (probs + softmax(flipped))
        probabilities.append(probs)
        labels.append(np.argmax(one_hot, axis=-1))
    return np.concatenate(probabilities), np.concatenate(plain), np.concatenate(labels)


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray, class_names,
                           top_k: int = 5) -> dict:
    num_classes = len(class_names)
    predicted = probabilities.argmax(axis=-1)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    true_positive = np.diag(confusion).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.nan_to_num(true_positive / confusion.sum(axis=0))
        recall = np.nan_to_num(true_positive / confusion.sum(axis=1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    k = min(top_k, num_classes)
    top = np.argsort(-probabilities, axis=-1)[:, :k]
    return {
        "accuracy": float((predicted == labels).mean()),
        f"top{k}_accuracy": float((top == labels[:, None]).any(axis=1).mean()),
        "macro_f1": float(f1.mean()),
        "num_samples": int(len(labels)),
        "per_class": [{"class": name, "precision": float(p), "recall": float(r),
                       "f1": float(f), "support": int(s)}
                      for name, p, r, f, s in zip(class_names, precision, recall, f1,
                                                  confusion.sum(axis=1))],
        "confusion_matrix": confusion.tolist(),
    }


def evaluate(run: Run) -> dict:
    from tasks.classification import data as data_lib  # the grain pipeline; `predict` needs
    # only `softmax` from here and starts faster without it

    config = run.config
    model = load_model(run.dir.require_model())
    splits = data_lib.load_splits(config, run.data_root)
    stream = data_lib.eval_stream(config, splits.test, len(splits.class_names),
                                  config.eval.batch_size)
    probabilities, plain, labels = predict_probabilities(model, stream, config.eval.tta_flip)
    results = classification_metrics(probabilities, labels, splits.class_names,
                                     config.eval.top_k)
    results.update(class_names=splits.class_names, tta_flip=config.eval.tta_flip,
                   skipped=len(splits.skipped))
    if config.eval.tta_flip:  # how much the flip averaging bought
        results["accuracy_without_tta"] = float((plain.argmax(-1) == labels).mean())
    atomic_write_json(run.dir.evaluation / "results.json", results)
    with atomic_file(run.dir.evaluation / "predictions.npz", suffix=".npz") as tmp:
        np.savez_compressed(tmp, probabilities=probabilities, labels=labels)
    headline = {k: v for k, v in results.items() if isinstance(v, float)}
    print("classification evaluate:", json.dumps(headline))
    return results
