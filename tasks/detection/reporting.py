"""Report stage: mAP cards, per-class AP, PR curves, confusion matrix, drawn test images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from shared import config as config_lib
from shared import plots as shared_plots
from shared.report import Report, update_index
from shared.runtime import environment
from shared.task import Run
from shared.training import read_history
from tasks.detection import data as data_lib
from tasks.detection import plots


def report(run: Run) -> Path:
    results = run.dir.evaluation_results()
    training = json.loads(run.dir.training_json.read_text())
    config = run.config
    names = results["class_names"]
    scored = scored_on(results["split"], results["images"])
    rep = Report("detection", f"Object detection: {config.data.source} / YOLOv8-"
                              f"{config.model.variant} at {config.data.image_size} px, scored on "
                              f"{scored}")
    speed = results["speed_ms_per_image"]
    headline = {"mAP@[.5:.95]": results["map"], "mAP@0.5": results["map50"],
                "mAP@0.75": results["map75"], "scored on": scored,
                "ms / image": speed.get("total", {}).get("mean_ms", float("nan"))}
    rep.add_metrics(headline)
    if results["split"] == "train":
        rep.add_text("Scored on training images", (
            f"These metrics are measured on the {results['images']} images the model was trained "
            "on: they show that training works (the model can fit them), not how well it "
            "detects cells in new images. Set data.evaluate_on=test for held-out images."))
    if training.get("stopped_reason"):
        rep.add_text("Training stopped early", training["stopped_reason"])
    history = read_history(run.dir.history_csv)
    if history:
        rep.add_figure("training_curves", shared_plots.training_curves(history),
                       "Total loss and its box / class / DFL parts per epoch.")
    curves = {name: (np.array(r), np.array(p)) for name, (r, p) in results["pr_curves"].items()}
    if curves:
        rep.add_figure("pr_curves", shared_plots.pr_curves(curves),
                       "Precision-recall per class at IoU 0.5 (COCO 101-point recall grid).")
    rep.add_figure("confusion_matrix", plots.confusion_png(np.array(results["confusion_matrix"]),
                                                           names),
                   f"Matched at IoU 0.5, score > {config.eval.confusion_score_threshold}; "
                   "last row/column: background (false positives / missed objects).")
    rep.add_table("Per-class AP (pycocotools)", ["class", "AP@[.5:.95]", "AP@0.5", "objects"],
                  [[c["class"], f"{c['ap']:.3f}", f"{c['ap50']:.3f}", c["num_gt"]]
                   for c in results["per_class"]])
    rep.add_table("Speed (ms per image)", ["stage", "mean", "p50", "p95"],
                  [[stage, f"{v['mean_ms']:.2f}", f"{v.get('p50_ms', float('nan')):.2f}",
                    f"{v.get('p95_ms', float('nan')):.2f}"] for stage, v in speed.items()])
    rep.add_text("pycocotools summary", results["summary"])
    _examples(run, rep, names)
    rep.add_skipped(training.get("skipped", []))
    rep.set_run_info(config_lib.to_dict(config), environment(), run.dir.timings())
    index_html = rep.write(run.dir.report)
    update_index(run.reports_dir, "detection", run.dir.report, headline)
    print(f"detection report: {index_html}")
    return index_html


def scored_on(split: str, images: int) -> str:
    """Which images the metrics come from, in words for the title and the headline."""
    if split == "train":
        return f"its own {images} training images (not held out)"
    return f"{images} held-out {split} images"


def _examples(run: Run, rep: Report, names: list[str]) -> None:
    detections = json.loads((run.dir.evaluation / "detections.json").read_text())
    source = data_lib.load_splits(run.config, run.data_root)["eval"]
    count = min(run.config.eval.examples, len(source))
    images, captions = [], []
    for index in range(count):
        element, truth, found = source[index], source.annotations(index), detections[index]
        keep = np.array(found["scores"]) >= run.config.eval.confusion_score_threshold
        images.append(plots.draw_detections(
            element["image"], np.array(found["boxes"]).reshape(-1, 4)[keep],
            np.array(found["classes"], int)[keep], np.array(found["scores"])[keep], names,
            true_boxes=truth["boxes"], true_classes=truth["classes"]))
        captions.append(f"{Path(source.paths[index]).name}\n{int(keep.sum())} found / "
                        f"{len(truth['boxes'])} true")
    if images:
        split = "training" if run.config.data.evaluate_on == "train" else run.config.data.evaluate_on
        rep.add_figure("examples", plots.detections_grid_png(images, captions,
                                                             legend=plots.legend_entries(names)),
                       f"The first {len(images)} {split} images. Predictions: solid boxes in the "
                       "class colour, labelled with class and score (score >= "
                       f"{run.config.eval.confusion_score_threshold}); ground truth: dashed cyan "
                       "boxes.")
