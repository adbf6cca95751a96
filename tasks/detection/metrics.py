"""Detection evaluation: COCO mAP with pycocotools, a detection confusion matrix, speed summary.

numpy + pycocotools only. Boxes are float `[x_min, y_min, x_max, y_max]` in original image
pixels; classes are ints 0..C-1.

    result = coco_evaluate(ground_truth, predictions, class_names)
    result["map"], result["map50"], result["per_class"], result["pr_curves"]["person"]

pycocotools details this module relies on:
- COCO category id = class + 1 and annotation ids start at 1: `COCOeval.evaluateImg` marks a
  detection matched to the gt with id 0 as *unmatched* (`gtm > 0` tests), so id 0 silently
  turns a true positive into a false positive.
- `COCOeval` overwrites a gt's `ignore` flag with `iscrowd`, so "difficult" (VOC) boxes are
  passed as `iscrowd=1`: they are not counted as objects to find, and detections on them are
  neither TP nor FP. Their IoU is COCO's crowd IoU (intersection / detection area).
- Classes without any (non-crowd) gt get precision -1; like COCO's own mean we skip them and
  report their AP as nan. Detections per image are capped at 100 (COCO's maxDets).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

STAT_NAMES = (
    "map", "map50", "map75", "map_small", "map_medium", "map_large",
    "mar1", "mar10", "mar100", "mar_small", "mar_medium", "mar_large",
)


def _boxes(boxes: Any) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _xywh(boxes: np.ndarray) -> np.ndarray:
    """[x_min, y_min, x_max, y_max] -> COCO [x, y, w, h] (negative sizes clipped to 0)."""
    sizes = np.maximum(boxes[:, 2:] - boxes[:, :2], 0.0)
    return np.concatenate([boxes[:, :2], sizes], axis=1)


def _ignored(gt: dict) -> np.ndarray:
    """True for gts flagged `difficult` or `iscrowd` (either key optional)."""
    count = len(_boxes(gt["boxes"]))
    flags = np.zeros(count, dtype=bool)
    for key in ("difficult", "iscrowd"):
        if gt.get(key) is not None:
            flags |= np.asarray(gt[key], dtype=bool).reshape(count)
    return flags


def _predictions_by_image(predictions: Sequence[dict], image_ids: set[int]) -> dict[int, dict[str, np.ndarray]]:
    """Concatenates prediction dicts per image id; rejects ids that have no ground-truth entry."""
    grouped: dict[int, list[dict]] = {}
    for pred in predictions:
        image_id = int(pred["image_id"])
        if image_id not in image_ids:
            raise ValueError(f"Prediction for an image missing from ground_truth. Received: image_id={image_id}")
        grouped.setdefault(image_id, []).append(pred)
    return {
        image_id: {
            "boxes": np.concatenate([_boxes(p["boxes"]) for p in preds]),
            "scores": np.concatenate([np.asarray(p["scores"], np.float64).reshape(-1) for p in preds]),
            "classes": np.concatenate([np.asarray(p["classes"], np.int64).reshape(-1) for p in preds]),
        }
        for image_id, preds in grouped.items()
    }


def _coco_ground_truth(ground_truth: Sequence[dict], class_names: Sequence[str],
                       image_sizes: Sequence[tuple[int, int]] | None) -> COCO:
    images, annotations = [], []
    for index, gt in enumerate(ground_truth):
        image = {"id": int(gt["image_id"])}
        if image_sizes is not None:
            image["height"], image["width"] = (int(v) for v in image_sizes[index])
        images.append(image)
        boxes = _xywh(_boxes(gt["boxes"]))
        classes = np.asarray(gt["classes"], dtype=np.int64).reshape(-1)
        for box, cls, crowd in zip(boxes, classes, _ignored(gt)):
            if not 0 <= cls < len(class_names):
                raise ValueError(f"Ground-truth class out of range 0..{len(class_names) - 1}. Received: {cls}")
            annotations.append({
                "id": len(annotations) + 1, "image_id": image["id"], "category_id": int(cls) + 1,
                "bbox": [float(v) for v in box], "area": float(box[2] * box[3]), "iscrowd": int(crowd),
            })
    coco = COCO()
    categories = [{"id": k + 1, "name": str(name)} for k, name in enumerate(class_names)]
    coco.dataset = {"images": images, "annotations": annotations, "categories": categories}
    coco.createIndex()
    return coco


def _coco_detections(coco_gt: COCO, by_image: dict[int, dict[str, np.ndarray]]) -> COCO:
    """Rows [image_id, x, y, w, h, score, category_id] through `loadRes`; an empty result by hand
    (`loadRes` indexes `anns[0]` and crashes on an empty list)."""
    rows = [
        np.column_stack([np.full(len(p["scores"]), image_id), _xywh(p["boxes"]), p["scores"], p["classes"] + 1])
        for image_id, p in by_image.items()
    ]
    rows = np.concatenate(rows) if rows else np.zeros((0, 7))
    if len(rows):
        return coco_gt.loadRes(rows)
    coco = COCO()
    coco.dataset = {"images": list(coco_gt.dataset["images"]), "annotations": [],
                    "categories": list(coco_gt.dataset["categories"])}
    coco.createIndex()
    return coco


def coco_evaluate(
    ground_truth: Sequence[dict],
    predictions: Sequence[dict],
    class_names: Sequence[str],
    image_sizes: Sequence[tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """COCO bbox evaluation with pycocotools (the reference implementation).

    `ground_truth[i] = {"image_id", "boxes" (N, 4), "classes" (N,), optional "difficult"/"iscrowd"}`
    lists every evaluated image (empty boxes allowed); `predictions[i] = {"image_id", "boxes",
    "scores", "classes"}` (images may be absent). `image_sizes[i]` is (height, width) of image i.

    Returns the 12 COCO stats by name (`map` = AP@[.5:.95], `map50`, `map75`, `map_small`, ...,
    `mar100`; -1 where COCO has nothing to average), `stats` (the 12 numbers), `per_class`
    (`class`, `ap`, `ap50`, `num_gt`; AP nan for classes without gt), `pr_curves`
    (`{name: (recall (101,), precision (101,))}` at IoU 0.5, all areas, 100 dets; classes with
    gt only) and `summary` (pycocotools' printed table).
    """
    if image_sizes is not None and len(image_sizes) != len(ground_truth):
        raise ValueError(f"One image size per ground-truth image. Received: {len(image_sizes)} sizes, "
                         f"{len(ground_truth)} images")
    image_ids = [int(gt["image_id"]) for gt in ground_truth]
    if len(set(image_ids)) != len(image_ids):
        raise ValueError("ground_truth image ids must be unique.")
    by_image = _predictions_by_image(predictions, set(image_ids))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = _coco_ground_truth(ground_truth, class_names, image_sizes)
        evaluator = COCOeval(coco_gt, _coco_detections(coco_gt, by_image), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        evaluator.summarize()
    stats = [float(s) for s in evaluator.stats]
    # precision: [T iou thresholds, R=101 recall thresholds, K classes, A areas (all first), M maxDets]
    precision = evaluator.eval["precision"]
    recall_thresholds = np.asarray(evaluator.params.recThrs, dtype=np.float64)
    per_class, pr_curves = [], {}
    for k, name in enumerate(class_names):
        num_gt = len(coco_gt.getAnnIds(catIds=[k + 1], iscrowd=False))
        pr_all, pr_50 = precision[:, :, k, 0, -1], precision[0, :, k, 0, -1]
        valid = pr_all > -1
        per_class.append({
            "class": str(name),
            "ap": float(pr_all[valid].mean()) if valid.any() else float("nan"),
            "ap50": float(pr_50[pr_50 > -1].mean()) if (pr_50 > -1).any() else float("nan"),
            "num_gt": num_gt,
        })
        if valid.any():
            pr_curves[str(name)] = (recall_thresholds.copy(), np.asarray(pr_50, dtype=np.float64))
    return {
        **dict(zip(STAT_NAMES, stats)),
        "per_class": per_class,
        "pr_curves": pr_curves,
        "stats": stats,
        "summary": summary.getvalue(),
    }


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU (len(a), len(b)) of [x_min, y_min, x_max, y_max] boxes."""
    a, b = _boxes(boxes_a), _boxes(boxes_b)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _greedy_match(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """One-to-one (row, column) pairs with IoU > threshold, highest IoU first."""
    rows, cols = np.nonzero(iou > threshold)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_rows, used_cols, pairs = set(), set(), []
    for r, c in zip(rows[order].tolist(), cols[order].tolist()):
        if r not in used_rows and c not in used_cols:
            used_rows.add(r)
            used_cols.add(c)
            pairs.append((r, c))
    return pairs


def confusion_matrix(
    ground_truth: Sequence[dict],
    predictions: Sequence[dict],
    num_classes: int,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.25,
) -> np.ndarray:
    """(C+1, C+1) counts: rows = true class, columns = predicted class; index C = background.

    Per image, detections with score > `score_threshold` are matched to gts class-agnostically
    and greedily by IoU (> `iou_threshold`, highest first, one-to-one), as in Ultralytics'
    ConfusionMatrix (which dedups in two passes; this is the plain greedy). A pair counts at
    [true, predicted] (a class confusion is off-diagonal), an unmatched gt at [true, C] (missed),
    an unmatched detection at [C, predicted] (false positive; Ultralytics skips these when an
    image has no match at all). Difficult/crowd gts are not counted, and a leftover detection on
    one is not a false positive.
    """
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    by_image = _predictions_by_image(predictions, {int(gt["image_id"]) for gt in ground_truth})
    empty = {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "classes": np.zeros(0, np.int64)}
    for gt in ground_truth:
        gt_boxes = _boxes(gt["boxes"])
        gt_classes = np.asarray(gt["classes"], dtype=np.int64).reshape(-1)
        ignored = _ignored(gt)
        pred = by_image.get(int(gt["image_id"]), empty)
        keep = pred["scores"] > score_threshold
        det_boxes, det_classes = pred["boxes"][keep], pred["classes"][keep]
        regular = np.flatnonzero(~ignored)
        pairs = _greedy_match(box_iou(gt_boxes[regular], det_boxes), iou_threshold)
        matched_dets = {d for _, d in pairs}
        for g, d in pairs:
            matrix[gt_classes[regular[g]], det_classes[d]] += 1
        for g in set(range(len(regular))) - {g for g, _ in pairs}:
            matrix[gt_classes[regular[g]], num_classes] += 1
        leftover = np.array(sorted(set(range(len(det_boxes))) - matched_dets), dtype=np.int64)
        crowd = np.flatnonzero(ignored)
        on_crowd = {leftover[d] for _, d in _greedy_match(box_iou(gt_boxes[crowd], det_boxes[leftover]), iou_threshold)}
        for d in leftover:
            if d not in on_crowd:
                matrix[num_classes, det_classes[d]] += 1
    return matrix


def speed_summary(timings: dict[str, Sequence[float]]) -> dict[str, dict[str, float]]:
    """Per stage (e.g. preprocess, model, nms) `mean_ms`, `p50_ms`, `p95_ms`, `count` from
    per-image milliseconds; plus `total` (sum of stages, per image when all stages have
    the same count, else the sum of means only)."""
    def stats(values: np.ndarray) -> dict[str, float]:
        if values.size == 0:
            return {"mean_ms": float("nan"), "p50_ms": float("nan"), "p95_ms": float("nan"), "count": 0}
        return {"mean_ms": float(values.mean()), "p50_ms": float(np.percentile(values, 50)),
                "p95_ms": float(np.percentile(values, 95)), "count": int(values.size)}

    arrays = {stage: np.asarray(values, dtype=np.float64).reshape(-1) for stage, values in timings.items()}
    summary = {stage: stats(values) for stage, values in arrays.items()}
    sizes = {values.size for values in arrays.values()}
    if len(sizes) == 1 and 0 not in sizes:
        summary["total"] = stats(np.sum(list(arrays.values()), axis=0))
    elif arrays:
        nan = float("nan")
        summary["total"] = {"mean_ms": float(sum(s["mean_ms"] for s in summary.values())),
                            "p50_ms": nan, "p95_ms": nan, "count": 0}
    return summary
