"""Detection metrics against hand-computed values and an independent all-point AP."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from tasks.detection.metrics import box_iou, coco_evaluate, confusion_matrix, speed_summary
from tasks.detection.plots import (
    TRUTH_COLOR,
    class_color,
    confusion_png,
    detections_grid_png,
    draw_detections,
    pr_curves_png,
)

NAMES = ["cat", "dog", "bird"]
PNG = b"\x89PNG\r\n\x1a\n"


def _gt(image_id, boxes, classes, **flags):
    return {"image_id": image_id, "boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
            "classes": np.asarray(classes, np.int64), **flags}


def _pred(image_id, boxes, classes, scores):
    return {"image_id": image_id, "boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
            "classes": np.asarray(classes, np.int64), "scores": np.asarray(scores, np.float32)}


GROUND_TRUTH = [
    _gt(1, [[10, 10, 60, 60], [100, 100, 180, 160]], [0, 1]),
    _gt(2, [[20, 30, 120, 90]], [0]),
    _gt(3, [], []),  # an image without objects
]


def _perfect():
    return [_pred(g["image_id"], g["boxes"], g["classes"], np.full(len(g["classes"]), 0.9)) for g in GROUND_TRUTH]


def test_perfect_predictions_score_one():
    result = coco_evaluate(GROUND_TRUTH, _perfect(), NAMES)
    assert result["map"] == pytest.approx(1.0) and result["map50"] == pytest.approx(1.0)
    assert result["mar100"] == pytest.approx(1.0)
    assert [c["num_gt"] for c in result["per_class"]] == [2, 1, 0]
    # "bird" has no gt: AP nan, skipped in the mean (as COCO does), no PR curve.
    assert math.isnan(result["per_class"][2]["ap"]) and set(result["pr_curves"]) == {"cat", "dog"}
    recall, precision = result["pr_curves"]["cat"]
    assert recall.shape == precision.shape == (101,) and np.all(precision == 1.0)
    assert len(result["stats"]) == 12 and "Average Precision" in result["summary"]


def test_shift_keeps_map50_but_lowers_map():
    # A 10x10 box shifted 2 px right: intersection 8*10 = 80, union 100 + 100 - 80 = 120, IoU = 2/3.
    assert box_iou(np.array([[0, 0, 10, 10]]), np.array([[2, 0, 12, 10]]))[0, 0] == pytest.approx(2 / 3)
    gt = [_gt(1, [[0, 0, 10, 10], [50, 50, 60, 60]], [0, 0])]
    pred = [_pred(1, [[2, 0, 12, 10], [52, 50, 62, 60]], [0, 0], [0.9, 0.8])]
    result = coco_evaluate(gt, pred, NAMES[:1])
    # IoU 2/3 passes thresholds 0.50, 0.55, 0.60, 0.65 (4 of 10): AP 1 there, 0 above.
    assert result["map50"] == pytest.approx(1.0)
    assert result["map75"] == pytest.approx(0.0)
    assert result["map"] == pytest.approx(0.4)


def test_missed_object_halves_recall():
    # One of two objects found with precision 1: recall tops at 0.5. COCO samples the precision
    # envelope at recall 0, 0.01, ..., 1: 51 of 101 points have precision 1 -> 51/101 (not 0.5).
    gt = [_gt(1, [[0, 0, 40, 40]], [0]), _gt(2, [[10, 10, 50, 50]], [0])]
    pred = [_pred(1, [[0, 0, 40, 40]], [0], [0.9])]  # image 2 has no prediction entry at all
    result = coco_evaluate(gt, pred, NAMES[:1])
    assert result["map50"] == pytest.approx(51 / 101) and result["map"] == pytest.approx(51 / 101)
    assert result["mar100"] == pytest.approx(0.5)


def test_no_predictions_is_zero():
    for predictions in ([], [_pred(1, np.zeros((0, 4)), [], [])]):
        result = coco_evaluate(GROUND_TRUTH, predictions, NAMES)
        assert result["map"] == 0.0 and result["map50"] == 0.0
        assert result["per_class"][0]["ap"] == 0.0 and math.isnan(result["per_class"][2]["ap"])


def test_crowd_gt_is_not_required():
    gt = [_gt(1, [[0, 0, 40, 40], [60, 60, 90, 90]], [0, 0], iscrowd=np.array([False, True]))]
    result = coco_evaluate(gt, [_pred(1, [[0, 0, 40, 40]], [0], [0.9])], NAMES[:1])
    assert result["map"] == pytest.approx(1.0) and result["per_class"][0]["num_gt"] == 1


def test_rejects_unknown_image():
    with pytest.raises(ValueError, match="image_id=7"):
        coco_evaluate(GROUND_TRUTH, [_pred(7, [[0, 0, 1, 1]], [0], [0.5])], NAMES)


def _all_point_ap50(gt, pred, cls):
    """VOC-style AP: area under the precision envelope over every recall step (no sampling)."""
    records, num_gt = [], 0
    truths = {g["image_id"]: g["boxes"][g["classes"] == cls] for g in gt}
    num_gt = sum(len(b) for b in truths.values())
    for p in pred:
        for box, c, s in zip(p["boxes"], p["classes"], p["scores"]):
            if c == cls:
                records.append((s, p["image_id"], box))
    records.sort(key=lambda r: -r[0])
    used = {image_id: np.zeros(len(b), bool) for image_id, b in truths.items()}
    hits = []
    for _, image_id, box in records:
        iou = box_iou(box[None], truths[image_id])[0] if len(truths[image_id]) else np.zeros(0)
        best = int(np.argmax(iou)) if iou.size else -1
        hit = best >= 0 and iou[best] >= 0.5 and not used[image_id][best]
        if hit:
            used[image_id][best] = True
        hits.append(hit)
    tp = np.cumsum(hits)
    recall = np.concatenate([[0.0], tp / num_gt])
    precision = np.concatenate([[1.0], tp / np.arange(1, len(tp) + 1)])
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(recall) * envelope[1:]))


def test_hand_case_matches_all_point_ap():
    # Scores 0.9 TP(A), 0.8 FP (image without gt), 0.7 TP(C), 0.6 duplicate of A (FP); B missed.
    # Precision/recall: (1, 1/3) (1/2, 1/3) (2/3, 2/3) (1/2, 2/3).
    # All-point: 1/3 * 1 + 1/3 * 2/3 = 5/9. COCO's 101 points: recall 0..0.33 (34 points) at 1,
    # 0.34..0.66 (33 points) at 2/3, 0.67..1 at 0 -> (34 + 22) / 101. The two differ by < 1/101
    # per precision step, so the tolerance against the independent code is 0.01 per step.
    gt = [_gt(1, [[0, 0, 50, 50], [100, 0, 150, 50]], [0, 0]), _gt(2, [[0, 0, 80, 80]], [0]), _gt(3, [], [])]
    pred = [
        _pred(1, [[0, 0, 50, 50], [1, 1, 51, 51]], [0, 0], [0.9, 0.6]),
        _pred(3, [[10, 10, 40, 40]], [0], [0.8]),
        _pred(2, [[2, 2, 80, 80]], [0], [0.7]),
    ]
    result = coco_evaluate(gt, pred, NAMES[:1])
    assert _all_point_ap50(gt, pred, 0) == pytest.approx(5 / 9)
    assert result["map50"] == pytest.approx(56 / 101)
    assert result["map50"] == pytest.approx(5 / 9, abs=0.01)


def test_random_separated_case_matches_all_point_ap():
    # Objects on a grid (no overlaps between gts) so greedy matching is unambiguous in both codes.
    rng = np.random.default_rng(0)
    gt, pred = [], []
    for image_id in range(6):
        cells = rng.choice(16, size=5, replace=False)
        boxes = np.stack([(cells % 4) * 100 + 10, (cells // 4) * 100 + 10, (cells % 4) * 100 + 70,
                          (cells // 4) * 100 + 70], axis=1).astype(np.float32)
        classes = rng.integers(0, 2, size=5)
        gt.append(_gt(image_id, boxes, classes))
        keep = rng.random(5) < 0.8
        jitter = rng.normal(0, 6, size=(5, 4)).astype(np.float32)
        wrong = np.where(rng.random(5) < 0.15, 1 - classes, classes)
        extra = np.array([[420, 420, 470, 470]], np.float32)
        pred.append(_pred(image_id, np.concatenate([(boxes + jitter)[keep], extra]),
                          np.concatenate([wrong[keep], [image_id % 2]]),
                          np.concatenate([rng.random(keep.sum()), rng.random(1)])))
    result = coco_evaluate(gt, pred, NAMES[:2])
    for k in range(2):
        reference = _all_point_ap50(gt, pred, k)
        assert 0.2 < reference < 0.95
        assert result["per_class"][k]["ap50"] == pytest.approx(reference, abs=0.03)


def test_confusion_matrix_hand_case():
    gt = [_gt(1, [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], [0, 1, 0]), _gt(2, [], [])]
    pred = [
        _pred(1, [[0, 0, 10, 10], [21, 20, 31, 30], [60, 60, 70, 70], [40, 40, 50, 50]],
              [0, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]),  # TP, dog called cat, FP, below score threshold
        _pred(2, [[0, 0, 5, 5]], [1], [0.5]),  # FP on an image without objects
    ]
    expected = np.array([
        [1, 0, 1],  # cat: 1 correct, 1 missed (the 0.1 detection is filtered out)
        [1, 0, 0],  # dog: predicted as cat
        [0, 2, 0],  # background: two false "dog"s
    ])
    np.testing.assert_array_equal(confusion_matrix(gt, pred, num_classes=2), expected)
    assert confusion_png(expected, NAMES[:2]).startswith(PNG)


def test_speed_summary():
    summary = speed_summary({"preprocess": [1.0, 2.0, 3.0], "model": [10.0, 10.0, 40.0], "nms": [0.5] * 3})
    assert summary["model"]["mean_ms"] == pytest.approx(20.0) and summary["model"]["p50_ms"] == 10.0
    assert summary["total"]["mean_ms"] == pytest.approx(22.5) and summary["total"]["count"] == 3


def test_draw_detections_and_figures():
    image = np.zeros((64, 80, 3), np.uint8)
    drawn = draw_detections(image, np.array([[10, 20, 50, 60]]), np.array([1]), np.array([0.87]), NAMES,
                            true_boxes=np.array([[60, 5, 75, 30]]), true_classes=np.array([0]))
    assert drawn.shape == (64, 80, 3) and drawn.dtype == np.uint8
    assert tuple(drawn[40, 10]) == class_color(1)  # left edge of the predicted box
    assert tuple(drawn[40, 30]) == (0, 0, 0)  # inside stays untouched
    assert tuple(drawn[5, 60]) == TRUTH_COLOR  # dashed true box starts with a dash
    assert image.max() == 0  # the input is not modified
    grey = draw_detections(np.zeros((30, 30), np.uint8), np.zeros((0, 4)), [], [], NAMES)
    assert grey.shape == (30, 30, 3)
    grid = detections_grid_png([drawn, grey], ["a", "b"])
    assert Image.open(io.BytesIO(grid)).size[0] > 0
    result = coco_evaluate(GROUND_TRUTH, _perfect(), NAMES)
    assert pr_curves_png(result).startswith(PNG)
