"""Evaluate stage: COCO mAP (pycocotools), per-class AP, PR curves, confusion matrix, speed.

The data pipeline, pycocotools and the training module are imported inside the functions
that use them: `predict` imports `unletterbox` from here and starts faster without them."""

from __future__ import annotations

import json
import time

import keras
import numpy as np

from shared.io import atomic_write_json
from shared.task import Run


def unletterbox(boxes: np.ndarray, letterbox: np.ndarray, orig_size: np.ndarray) -> np.ndarray:
    """Boxes in network-input pixels -> original image pixels (clipped)."""
    scale, pad_x, pad_y = (float(v) for v in letterbox)
    out = (boxes - np.array([pad_x, pad_y, pad_x, pad_y], np.float32)) / scale
    height, width = (float(v) for v in orig_size)
    return np.clip(out, 0, [width, height, width, height]).astype(np.float32)


def detect(model, config, source, postprocess=None) -> tuple[list[dict], dict[str, list[float]]]:
    """Final detections per image of `source` (original pixels) and per-image timings (ms).
    Without `postprocess` (a `compiled_postprocess(model)` kept by a caller that detects
    again), it is compiled and warmed up here, outside the timings."""
    from tasks.detection import data as data_lib

    detections, timings = [], {"preprocess": [], "model": [], "nms": []}
    if postprocess is None:
        postprocess = compiled_postprocess(model)
        size = config.data.image_size  # warm up (tracing/compilation) outside the timings
        warm = np.zeros((config.eval.batch_size, size, size, 3), np.float32)
        postprocess(model.network.predict_on_batch(warm))
    iterator = iter(data_lib.eval_stream(config, source, config.eval.batch_size,
                                         with_targets=False))
    index = 0
    while True:
        started = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            break
        size = len(batch["image"])
        preprocessed = time.perf_counter()
        raw = model.network.predict_on_batch(batch["image"].astype(np.float32))
        predicted = time.perf_counter()
        result = {k: keras.ops.convert_to_numpy(v) for k, v in postprocess(raw).items()}
        finished = time.perf_counter()
        for name, seconds in (("preprocess", preprocessed - started),
                              ("model", predicted - preprocessed), ("nms", finished - predicted)):
            timings[name].extend([1000 * seconds / size] * size)
        for row in range(size):
            count = int(result["num_detections"][row])
            detections.append({
                "image_id": int(source.image_ids[index]),
                "boxes": unletterbox(result["boxes"][row, :count], batch["letterbox"][row],
                                     batch["orig_size"][row]),
                "scores": result["scores"][row, :count].astype(np.float32),
                "classes": result["classes"][row, :count].astype(np.int32)})
            index += 1
    return detections, timings


def compiled_postprocess(model):
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(model.postprocess)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(model.postprocess, jit_compile=False)
    return model.postprocess


def ground_truth(source) -> list[dict]:
    return [{"image_id": int(a["image_id"]), "boxes": a["boxes"], "classes": a["classes"]}
            for a in (source.annotations(i) for i in range(len(source)))]


def epoch_metric(config, source):
    """`compute(model) -> {"val_map50", "val_map", "map_seconds"}` (COCO mAP@0.5 and
    @[.5:.95] on `source`, and the seconds it took) for `shared.training.fit(epoch_metrics=)`:
    the evaluate stage's detection (forward pass + decoding + NMS) and pycocotools scoring;
    NaN where there is nothing to score."""
    from tasks.detection import metrics

    truth, compiled = ground_truth(source), {}

    def compute(model) -> dict[str, float]:
        started = time.perf_counter()
        if "postprocess" not in compiled:  # traced once, reused every epoch
            compiled["postprocess"] = compiled_postprocess(model)
        detections, _ = detect(model, config, source, compiled["postprocess"])
        result = metrics.coco_evaluate(truth, detections, source.class_names)
        values = {name: result[key] if result[key] >= 0 else float("nan")  # -1: nothing to average
                  for name, key in (("val_map50", "map50"), ("val_map", "map"))}
        return {**values, "map_seconds": time.perf_counter() - started}

    return compute


def evaluate(run: Run) -> dict:
    from tasks.detection import data as data_lib
    from tasks.detection import metrics
    from tasks.detection.training import load

    config = run.config
    model = load(run.dir.require_model())
    source = data_lib.load_splits(config, run.data_root)["eval"]
    detections, timings = detect(model, config, source)
    truth = ground_truth(source)
    result = metrics.coco_evaluate(truth, detections, source.class_names)
    confusion = metrics.confusion_matrix(truth, detections, len(source.class_names),
                                         score_threshold=config.eval.confusion_score_threshold)
    speed = metrics.speed_summary(timings)
    summary = {key: result[key] for key in ("map", "map50", "map75", "mar100")}
    results = {**summary, "per_class": result["per_class"], "stats": result["stats"],
               "summary": result["summary"], "confusion_matrix": confusion.tolist(),
               "speed_ms_per_image": speed, "class_names": list(source.class_names),
               "split": config.data.evaluate_on, "images": len(source),
               "pr_curves": {name: [np.asarray(r).tolist(), np.asarray(p).tolist()]
                             for name, (r, p) in result["pr_curves"].items()}}
    atomic_write_json(run.dir.evaluation / "results.json", results)
    atomic_write_json(run.dir.evaluation / "detections.json", [
        {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()}
        for d in detections])
    print("detection evaluate:", json.dumps({k: round(v, 4) for k, v in summary.items()}))
    return results
