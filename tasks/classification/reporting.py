"""Report stage: report.json + a self-contained HTML page with plots, and the index entry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from shared import config as config_lib
from shared import plots
from shared.report import Report, update_index
from shared.runtime import environment
from shared.task import Run
from shared.training import read_history
from tasks.classification import data as data_lib


def _history(run: Run) -> dict:
    """Training curves across phases (frozen backbone, then fine-tuning) when there are two."""
    history = read_history(run.dir.history_csv)
    for phase in ("frozen", "fine_tune"):
        for key, values in read_history(run.dir.logs / phase / "history.csv").items():
            history.setdefault(key, []).extend(values)
    return history


def report(run: Run) -> Path:
    results = run.dir.evaluation_results()
    training = json.loads(run.dir.training_json.read_text()) if run.dir.training_json.exists() \
        else {}
    class_names = results["class_names"]
    config = run.config
    rep = Report("classification", f"Image classification: {config.data.source} / "
                                   f"{config.model.name}")
    top_key = next(k for k in results if k.startswith("top") and k.endswith("_accuracy"))
    headline = {"test accuracy": results["accuracy"], top_key.replace("_", " "): results[top_key],
                "macro F1": results["macro_f1"], "test samples": results["num_samples"]}
    if "accuracy_without_tta" in results:
        headline["accuracy without flip TTA"] = results["accuracy_without_tta"]
    if training.get("stopped_reason"):
        rep.add_text("Training stopped early", training["stopped_reason"])
    rep.add_metrics(headline)

    history = _history(run)
    if history:
        rep.add_figure("training_curves", plots.training_curves(history),
                       curves_caption(history))
    confusion = np.array(results["confusion_matrix"])
    rep.add_figure("confusion_matrix", plots.confusion_matrix(confusion, class_names),
                   "Rows: true class; columns: predicted class. The numbers are test-image "
                   "counts; the colour is the share of the row (the recall of the true class).")
    per_class = results["per_class"]
    rep.add_figure("per_class_f1", plots.bar_chart({c["class"]: c["f1"] for c in per_class},
                                                   "F1 per class", "F1"))
    rep.add_table("Per-class metrics", ["class", "precision", "recall", "F1", "support"],
                  [[c["class"], f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}",
                    c["support"]] for c in per_class])
    _misclassified(run, rep, class_names)
    rep.add_skipped(training.get("skipped", []))
    env = environment()
    rep.set_run_info(config_lib.to_dict(config), env,
                     {**run.dir.timings(), **_train_info(training)})
    index_html = rep.write(run.dir.report)
    update_index(run.reports_dir, "classification", run.dir.report, headline)
    print(f"classification report: {index_html}")
    return index_html


def curves_caption(history: dict) -> str:
    """The training-curves caption, true to what is plotted: validation curves only when the
    history holds validation numbers (a run without a validation split has none)."""
    validation = any(key.startswith("val_") and np.isfinite(np.asarray(values, float)).any()
                     for key, values in history.items())
    if validation:
        return ("Loss and accuracy per epoch: train (solid) and validation (dashed; the "
                "validation split, not the test split).")
    return ("Loss and accuracy per epoch on the training data only: this run has no "
            "validation split (data.val_fraction adds one carved from the training data).")


def _train_info(training: dict) -> dict:
    info = {}
    for name, phase in training.get("phases", {}).items():
        info[f"fit seconds ({name})"] = round(phase.get("seconds", 0.0), 2)
    return info


def _misclassified(run: Run, rep: Report, class_names) -> None:
    predictions = np.load(run.dir.evaluation / "predictions.npz")
    probabilities, labels = predictions["probabilities"], predictions["labels"]
    predicted = probabilities.argmax(-1)
    wrong = np.flatnonzero(predicted != labels)
    if not len(wrong):
        rep.add_text("Misclassified examples", "None: every test image was classified "
                                               "correctly.")
        return
    wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][
        :run.config.eval.misclassified]
    test = data_lib.load_splits(run.config, run.data_root).test
    images = data_lib.load_images(test, wrong, max(32, run.config.data.image_size))
    captions = [f"true {class_names[labels[i]]}\npred {class_names[predicted[i]]} "
                f"({probabilities[i, predicted[i]]:.2f})" for i in wrong]
    rep.add_figure("misclassified", plots.image_grid(images, captions),
                   f"The {len(wrong)} most confident mistakes on the test split.")
