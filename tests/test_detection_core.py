"""Detection core: box ops, task-aligned assigner, YOLOv8 loss and static-shape NMS."""

from __future__ import annotations

import functools
import math

import keras
import numpy as np
import pytest
from keras import ops

from tasks.detection.assigner import TaskAlignedAssigner
from tasks.detection.box_ops import (
    box_iou,
    boxes_to_dist,
    ciou,
    decode_predictions,
    dfl_expectation,
    dist_to_boxes,
    make_anchors,
)
from tasks.detection.losses import YoloLoss
from tasks.detection.nms import non_max_suppression

pytestmark = pytest.mark.backend

SIZE = 64  # anchors: 8*8 + 4*4 + 2*2 = 84
NUM_ANCHORS = 84
SMALL_GT = [16.0, 16.0, 32.0, 32.0]  # strictly contains anchors 18, 19, 26, 27 (stride 8), 69 (stride 16)
SMALL_GT_ANCHORS = [18, 19, 26, 27, 69]


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


# ----------------------------------------------------------------------------- box ops

def test_anchor_count_and_order():
    points, strides = make_anchors(640)
    assert points.shape == (8400, 2) and strides.shape == (8400, 1)
    np.testing.assert_allclose(points[:3], [[4, 4], [12, 4], [20, 4]])  # row-major: x varies fastest
    np.testing.assert_allclose(points[80], [4, 12])
    np.testing.assert_allclose(points[6400], [8, 8])  # first stride-16 anchor
    np.testing.assert_allclose(points[8000], [16, 16])  # first stride-32 anchor
    np.testing.assert_allclose(points[-1], [624, 624])
    assert strides[0, 0] == 8 and strides[6400, 0] == 16 and strides[-1, 0] == 32
    assert make_anchors(SIZE)[0].shape == (NUM_ANCHORS, 2)
    with pytest.raises(ValueError, match="divisible"):
        make_anchors(100)


def test_iou_and_ciou_hand_values():
    a = np.array([[0, 0, 2, 2]], "float32")
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]], "float32")
    np.testing.assert_allclose(np_(box_iou(a, b)), [[1 / 7, 1.0, 0.0]], atol=1e-6)
    # Same aspect ratio: v = 0; IoU 1/7, centre distance^2 = 2, enclosing diagonal^2 = 18.
    np.testing.assert_allclose(np_(ciou(a[0], b[0])), 1 / 7 - 2 / 18, atol=1e-6)
    np.testing.assert_allclose(np_(ciou(a[0], a[0])), 1.0, atol=1e-6)
    # 4x2 vs 2x2 sharing a corner: IoU 0.5, rho^2 = 1, c^2 = 20, v = 4/pi^2 (atan 1 - atan 2)^2.
    v = 4 / math.pi**2 * (math.atan(1.0) - math.atan(2.0)) ** 2
    expected = 0.5 - 1 / 20 - v / (1 - 0.5 + v) * v
    np.testing.assert_allclose(np_(ciou(np.array([0, 0, 4, 2], "float32"), np.array([0, 0, 2, 2], "float32"))),
                               expected, atol=1e-5)


def test_dist_box_round_trip_and_dfl_expectation():
    points, _ = make_anchors(SIZE)
    rng = np.random.default_rng(0)
    distances = rng.uniform(0, 14, (2, NUM_ANCHORS, 4)).astype("float32")
    boxes = dist_to_boxes(distances, points)
    np.testing.assert_allclose(np_(boxes_to_dist(boxes, points, reg_max=16)), distances, atol=1e-4)
    clipped = np_(boxes_to_dist(dist_to_boxes(np.full((NUM_ANCHORS, 4), 20.0, "float32"), points), points, 16))
    np.testing.assert_allclose(clipped, 14.99, atol=1e-5)

    bins = np.array([3, 0, 15, 7])
    logits = np.full((1, 1, 4, 16), -1e4, "float32")
    logits[0, 0, np.arange(4), bins] = 0.0
    np.testing.assert_allclose(np_(dfl_expectation(logits.reshape(1, 1, 64), 16)), [[bins]], atol=1e-5)

    raw = np.concatenate([logits.reshape(1, 1, 64).repeat(NUM_ANCHORS, 1), np.zeros((1, NUM_ANCHORS, 2))], -1)
    decoded, probabilities = decode_predictions(raw.astype("float32"), SIZE, num_classes=2)
    np.testing.assert_allclose(np_(decoded)[0, 0], [4 - 3 * 8, 4 - 0, 4 + 15 * 8, 4 + 7 * 8], atol=1e-4)
    np.testing.assert_allclose(np_(probabilities), 0.5)
    with pytest.raises(ValueError, match="channels"):
        decode_predictions(raw.astype("float32"), SIZE, num_classes=3)


# ----------------------------------------------------------------------------- assigner

def assign(gt_boxes, gt_classes, pred_boxes, num_classes=2, topk=10, scores=0.5):
    points, _ = make_anchors(SIZE)
    pred_boxes = np.broadcast_to(np.asarray(pred_boxes, "float32"), (1, NUM_ANCHORS, 4))
    pred_scores = np.full((1, NUM_ANCHORS, num_classes), scores, "float32")
    outputs = TaskAlignedAssigner(num_classes, topk=topk)(
        pred_scores, pred_boxes, points, np.array([gt_classes], "int32"), np.array([gt_boxes], "float32"))
    return [np_(x)[0] for x in outputs]


def test_assigner_small_gt_takes_its_candidates_only():
    boxes, scores, foreground = assign([SMALL_GT, [0, 0, 0, 0]], [1, -1], SMALL_GT)
    assert sorted(np.flatnonzero(foreground)) == SMALL_GT_ANCHORS
    np.testing.assert_allclose(boxes[SMALL_GT_ANCHORS], np.tile(SMALL_GT, (5, 1)))
    np.testing.assert_allclose(scores[SMALL_GT_ANCHORS], np.tile([0.0, 1.0], (5, 1)), atol=1e-5)
    assert scores[~foreground.astype(bool)].max() == 0


def test_assigner_takes_exactly_topk_best_aligned():
    best = [3, 17, 40, 63, 64, 70, 79, 80, 81, 83]
    pred = np.tile(np.array([0, 0, 32, 32], "float32"), (NUM_ANCHORS, 1))
    pred[best] = [0, 0, 64, 64]
    _, scores, foreground = assign([[0, 0, 64, 64]], [0], pred[None], topk=10)
    assert sorted(np.flatnonzero(foreground)) == best
    np.testing.assert_allclose(scores[best, 0], 1.0, atol=1e-5)


def test_assigner_padding_never_assigns():
    _, scores, foreground = assign([[0, 0, 64, 64], [0, 0, 64, 64]], [-1, -1], [0, 0, 64, 64])
    assert not foreground.any() and scores.max() == 0


@pytest.mark.parametrize("winner", [0, 1])
def test_assigner_overlapping_gts_resolve_by_iou(winner):
    gts = [[0, 0, 40, 40], [16, 16, 56, 56]]  # IoU 576 / 2624; anchor 18 (20, 20) lies in both
    boxes, scores, foreground = assign(gts, [0, 1], gts[winner], topk=100)
    assert foreground[[0, 18, 54]].all() and not foreground[63]  # (4, 4), (20, 20), (52, 52); (60, 60) in none
    np.testing.assert_allclose(boxes[[0, 18, 54]], [gts[0], gts[winner], gts[1]])
    assert (scores > 0).sum(-1).max() == 1  # one class per anchor
    np.testing.assert_allclose(scores[18, winner], 1.0, atol=1e-5)
    loser_only = 0 if winner == 1 else 54  # (4, 4) is only in gt 0; (52, 52) only in gt 1
    np.testing.assert_allclose(scores[loser_only, 1 - winner], 576 / 2624, atol=1e-4)


# ----------------------------------------------------------------------------- loss

def perfect_raw(num_classes=3, gt_class=1, reg_max=16):
    """Raw head output whose DFL distributions decode exactly to SMALL_GT at every anchor and whose
    class logits are +-20 (the gt class on SMALL_GT's candidate anchors); also the DFL optimum."""
    points, strides = make_anchors(SIZE)
    grid = points / strides
    targets = np_(boxes_to_dist(np.array(SMALL_GT, "float32") / strides, grid, reg_max))  # (A, 4)
    left = np.floor(targets).astype(int)
    left_weight = left + 1 - targets
    logits = np.full((NUM_ANCHORS, 4, reg_max), -30.0)
    rows, sides = np.arange(NUM_ANCHORS)[:, None], np.arange(4)[None, :]
    logits[rows, sides, left] = np.log(np.maximum(left_weight, 1e-12))
    logits[rows, sides, left + 1] = np.log(np.maximum(1 - left_weight, 1e-12))
    classes = np.full((NUM_ANCHORS, num_classes), -20.0)
    classes[SMALL_GT_ANCHORS, gt_class] = 20.0
    raw = np.concatenate([logits.reshape(NUM_ANCHORS, -1), classes], -1)[None].astype("float32")
    entropy = -(left_weight * np.log(np.maximum(left_weight, 1e-12))
                + (1 - left_weight) * np.log(np.maximum(1 - left_weight, 1e-12)))
    return raw, entropy[SMALL_GT_ANCHORS].mean()


def small_loss():
    return YoloLoss(num_classes=3, image_size=SIZE), np.array([[SMALL_GT, [0, 0, 0, 0]]], "float32"), \
        np.array([[1, -1]], "int32")


def test_loss_is_minimal_for_perfect_predictions():
    loss, gt_boxes, gt_classes = small_loss()
    raw, mean_entropy = perfect_raw()
    total, parts = loss(gt_boxes, gt_classes, raw)
    parts = {name: float(np_(value)) for name, value in parts.items()}
    assert parts["num_foreground"] == 5
    assert parts["box"] < 1e-4 and parts["class"] < 1e-4
    np.testing.assert_allclose(parts["dfl"], 1.5 * mean_entropy, rtol=1e-3)  # the DFL optimum
    np.testing.assert_allclose(float(np_(total)), parts["box"] + parts["class"] + parts["dfl"], rtol=1e-6)
    random_raw = np.random.default_rng(0).normal(size=raw.shape).astype("float32")
    assert float(np_(loss(gt_boxes, gt_classes, random_raw)[0])) > float(np_(total)) + 1.0
    # Target score sums >= 1 (no clamping): a doubled batch has the same mean, times 2 when scaled.
    doubled, _ = YoloLoss(3, image_size=SIZE, scale_by_batch_size=True)(
        np.repeat(gt_boxes, 2, 0), np.repeat(gt_classes, 2, 0), np.repeat(raw, 2, 0))
    np.testing.assert_allclose(float(np_(doubled)), 2 * float(np_(total)), rtol=1e-4)


def value_and_grad(function):
    """Backend-specific gradients (allowed in tests only)."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(jax.value_and_grad(function))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        @tf.function
        def tf_value_and_grad(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = function(x)
            return value, tape.gradient(value, x)

        return lambda x: tf_value_and_grad(tf.convert_to_tensor(x))
    pytest.skip(f"no gradient helper for backend {keras.backend.backend()}")


def test_loss_has_gradients_and_sgd_lowers_it():
    loss, _, _ = small_loss()
    gt_boxes = np.array([[SMALL_GT, [30, 8, 60, 40]], [[4, 4, 60, 60], [0, 0, 0, 0]]], "float32")
    gt_classes = np.array([[1, 2], [0, -1]], "int32")
    step = value_and_grad(lambda raw: loss(gt_boxes, gt_classes, raw)[0])
    raw = np.random.default_rng(1).normal(scale=0.1, size=(2, NUM_ANCHORS, 67)).astype("float32")
    first, gradient = step(raw)
    gradient = np_(gradient)
    assert np.isfinite(float(np_(first))) and np.isfinite(gradient).all() and np.abs(gradient).max() > 0
    for _ in range(20):
        value, gradient = step(raw)
        raw = raw - 1.0 * np_(gradient)
    assert float(np_(value)) < 0.7 * float(np_(first))



def test_box_weight_floor_regresses_assigned_anchors_with_tiny_iou():
    """At initialisation (uniform DFL bins: ~7.5 stride units per side) a 16 px object is
    assigned 5 anchors whose boxes have IoU ~0.02 with it. YOLOv8's IoU-normalised weights
    (floor 0) leave those boxes ~no gradient (the fixed point that kept BCCD platelets at 0
    AP); with the default floor each assigned anchor is regressed with weight 1."""
    _, gt_boxes, gt_classes = small_loss()
    raw = np.zeros((1, NUM_ANCHORS, 4 * 16 + 3), "float32")
    raw[..., 64:] = -10.0  # class probabilities ~5e-5, as after the class logits collapse

    def box_gradient(floor):
        loss = YoloLoss(num_classes=3, image_size=SIZE, box_weight_floor=floor)
        parts = loss(gt_boxes, gt_classes, raw)[1]
        assert float(np_(parts["num_foreground"])) == 5
        step = value_and_grad(lambda x: (lambda p: p["box"] + p["dfl"])(loss(gt_boxes, gt_classes, x)[1]))
        value, gradient = step(raw)
        return float(np_(value)), np.abs(np_(gradient)[0, SMALL_GT_ANCHORS, :64]).sum()

    yolov8_value, yolov8_gradient = box_gradient(0.0)
    value, gradient = box_gradient(1.0)
    assert yolov8_value < 1e-3 and yolov8_gradient < 1e-3  # not regressed
    assert value > 7.5 and gradient > 1.0  # (1 - CIoU) ~ 1 per anchor, times box_weight 7.5
    assert gradient > 1e3 * yolov8_gradient
    with pytest.raises(ValueError, match="box_weight_floor"):
        YoloLoss(num_classes=3, image_size=SIZE, box_weight_floor=2.0)

# ----------------------------------------------------------------------------- NMS

def numpy_iou(a, b):
    width, height = np.maximum(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0)
    intersection = width * height
    return intersection / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - intersection)


def reference_nms(boxes, scores, max_detections, iou_threshold, score_threshold, pre_nms_topk, class_agnostic):
    """Plain greedy NMS on one image, (anchor, class) pairs, in numpy: the kept flat indices."""
    num_classes = scores.shape[1]
    flat = scores.reshape(-1)
    order = np.argsort(-flat, kind="stable")[:pre_nms_topk]
    kept = []
    for index in order[flat[order] > score_threshold]:
        box, label = boxes[index // num_classes], index % num_classes
        if all(not ((class_agnostic or label == other % num_classes)
                    and numpy_iou(box, boxes[other // num_classes]) > iou_threshold)
               for other in kept):
            kept.append(index)
        if len(kept) == max_detections:
            break
    return np.array(kept, dtype=int)


def random_detections(batch=2, num_boxes=40, num_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(20, 80, (batch, num_boxes, 2))
    sizes = rng.uniform(10, 40, (batch, num_boxes, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], -1).astype("float32")
    return boxes, rng.uniform(0, 1, (batch, num_boxes, num_classes)).astype("float32")


def check_against_reference(result, boxes, scores, **settings):
    num_classes = scores.shape[-1]
    result = {name: np_(value) for name, value in result.items()}
    for image in range(boxes.shape[0]):
        kept = reference_nms(boxes[image], scores[image], **settings)
        count = len(kept)
        assert 0 < count < (scores[image] > settings["score_threshold"]).sum()  # something was suppressed
        assert result["num_detections"][image] == count
        np.testing.assert_array_equal(result["classes"][image, :count], kept % num_classes)
        np.testing.assert_allclose(result["boxes"][image, :count], boxes[image][kept // num_classes])
        np.testing.assert_allclose(result["scores"][image, :count], scores[image].reshape(-1)[kept])
        assert (result["classes"][image, count:] == -1).all() and not result["scores"][image, count:].any()


@pytest.mark.parametrize("settings", [
    dict(max_detections=30, iou_threshold=0.5, score_threshold=0.2, pre_nms_topk=1000, class_agnostic=False),
    dict(max_detections=5, iou_threshold=0.3, score_threshold=0.001, pre_nms_topk=50, class_agnostic=False),
    dict(max_detections=50, iou_threshold=0.4, score_threshold=0.5, pre_nms_topk=60, class_agnostic=True),
])
def test_nms_matches_numpy_reference(settings):
    boxes, scores = random_detections()
    result = non_max_suppression(boxes, scores, **settings)
    assert result["boxes"].shape == (2, settings["max_detections"], 4)
    assert keras.backend.standardize_dtype(result["classes"].dtype) == "int32"
    assert keras.backend.standardize_dtype(result["num_detections"].dtype) == "int32"
    check_against_reference(result, boxes, scores, **settings)


def test_nms_compiles_under_jit():
    settings = dict(max_detections=20, iou_threshold=0.5, score_threshold=0.3, pre_nms_topk=100,
                    class_agnostic=False)
    boxes, scores = random_detections(seed=1)
    nms = functools.partial(non_max_suppression, **settings)
    if keras.backend.backend() == "jax":
        import jax

        compiled = jax.jit(nms)
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(nms, input_signature=[tf.TensorSpec((None, 40, 4), tf.float32),
                                                     tf.TensorSpec((None, 40, 3), tf.float32)])
    else:
        pytest.skip(f"no jit helper for backend {keras.backend.backend()}")
    check_against_reference(compiled(boxes, scores), boxes, scores, **settings)
