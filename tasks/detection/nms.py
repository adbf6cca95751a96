"""Batched multi-label non-max suppression with static shapes (`keras.ops` only).

Runs under `jax.jit` and inside a `tf.function` / exported SavedModel: the candidate set is a
fixed `pre_nms_topk`, and greedy suppression is a `keras.ops.fori_loop` of `max_detections`
steps that each pick the best surviving candidate (an iterative masked argmax).
"""

from __future__ import annotations

from keras import ops

from tasks.detection.box_ops import box_iou


def _gather_rows(values, indices):
    """values (B, N, D), indices (B, K) -> (B, K, D)."""
    depth = values.shape[-1]
    return ops.take_along_axis(values, ops.repeat(ops.expand_dims(indices, -1), depth, axis=-1), axis=1)


def non_max_suppression(boxes, scores, max_detections: int = 100, iou_threshold: float = 0.7,
                        score_threshold: float = 0.001, pre_nms_topk: int = 1000,
                        class_agnostic: bool = False) -> dict:
    """Greedy NMS over the top (anchor, class) pairs, per image.

    Args:
        boxes: (B, N, 4) xyxy.
        scores: (B, N, C) class probabilities. Every (anchor, class) pair with
            score > score_threshold is a candidate (multi-label, as YOLOv8 evaluates).
        max_detections: K, the number of output slots.
        iou_threshold: a candidate is suppressed by a kept one of the same class (any class
            when class_agnostic) when their IoU is > iou_threshold.
        pre_nms_topk: only the best this many pairs per image enter suppression.

    Returns:
        dict with boxes (B, K, 4), scores (B, K), classes (B, K) int32 and
        num_detections (B,) int32; detections sorted by score, padded with zeros / class -1.

    Class-aware suppression masks the IoU by "same class" instead of offsetting boxes by
    class * large constant: the same result, but exact in float32.
    """
    boxes = ops.cast(boxes, "float32")
    scores = ops.cast(scores, "float32")
    num_anchors, num_classes = scores.shape[-2], scores.shape[-1]
    if num_anchors is None or num_classes is None:
        raise ValueError(f"scores needs static (N, C) dimensions. Received: shape={tuple(scores.shape)}")
    num_candidates = min(pre_nms_topk, num_anchors * num_classes)

    flat_scores = ops.reshape(scores, (-1, num_anchors * num_classes))
    # argsort, not top_k: JAX lowers top_k to a StableHLO composite that TensorFlow's
    # XlaCallModule (TF 2.21) cannot load, which would break the SavedModel export from JAX.
    flat_indices = ops.cast(ops.argsort(-flat_scores, axis=-1)[:, :num_candidates], "int32")
    candidate_scores = ops.take_along_axis(flat_scores, flat_indices, axis=-1)  # sorted, (B, K0)
    candidate_classes = flat_indices % num_classes
    candidate_boxes = _gather_rows(boxes, flat_indices // num_classes)  # (B, K0, 4)

    slots = ops.arange(max_detections, dtype="int32")

    def step(slot, state):
        alive, selected, valid = state
        masked = ops.where(alive, candidate_scores, float("-inf"))
        best = ops.cast(ops.argmax(masked, axis=-1), "int32")  # (B,)
        found = ops.take_along_axis(alive, best[:, None], axis=1)[:, 0]  # (B,)
        best_box = _gather_rows(candidate_boxes, best[:, None])  # (B, 1, 4)
        overlap = box_iou(best_box, candidate_boxes)[:, 0, :] > iou_threshold  # (B, K0)
        if not class_agnostic:
            best_class = ops.take_along_axis(candidate_classes, best[:, None], axis=1)
            overlap = ops.logical_and(overlap, ops.equal(candidate_classes, best_class))
        is_best = ops.equal(ops.arange(num_candidates, dtype="int32")[None, :], best[:, None])
        alive = ops.logical_and(alive, ops.logical_not(ops.logical_or(overlap, is_best)))
        this_slot = ops.equal(slots, slot)[None, :]  # (1, K)
        selected = ops.where(this_slot, best[:, None], selected)
        valid = ops.where(this_slot, found[:, None], valid)
        return alive, selected, valid

    batch = ops.shape(scores)[0]
    initial = (
        candidate_scores > score_threshold,
        ops.zeros((batch, max_detections), dtype="int32"),
        ops.zeros((batch, max_detections), dtype="bool"),
    )
    _, selected, valid = ops.fori_loop(0, max_detections, step, initial)

    valid_float = ops.cast(valid, "float32")
    out_boxes = _gather_rows(candidate_boxes, selected) * valid_float[..., None]
    out_scores = ops.take_along_axis(candidate_scores, selected, axis=1) * valid_float
    out_classes = ops.where(valid, ops.take_along_axis(candidate_classes, selected, axis=1), -1)
    return {
        "boxes": out_boxes,
        "scores": out_scores,
        "classes": ops.cast(out_classes, "int32"),
        "num_detections": ops.cast(ops.sum(ops.cast(valid, "int32"), axis=-1), "int32"),
    }
