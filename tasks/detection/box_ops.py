"""Anchor and box operations of the anchor-free (YOLOv8-style) detector, in `keras.ops` only.

Boxes are `[x_min, y_min, x_max, y_max]` in pixels of the square network input of side S
(or in stride units where a function says so). Anchors are feature-cell centres, row-major
per stride, strides concatenated in order (8, 16, 32): A = sum (S / s)^2 (8400 for S=640).
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

DEFAULT_STRIDES = (8, 16, 32)


def make_anchors(image_size: int, strides=DEFAULT_STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Anchor points (A, 2) as (x, y) pixels and their strides (A, 1), both float32 numpy."""
    points, stride_values = [], []
    for stride in strides:
        if image_size % stride:
            raise ValueError(f"image_size must be divisible by every stride. Received: "
                             f"image_size={image_size}, strides={tuple(strides)}")
        cells = image_size // stride
        centres = (np.arange(cells, dtype=np.float32) + 0.5) * stride
        grid_y, grid_x = np.meshgrid(centres, centres, indexing="ij")
        points.append(np.stack([grid_x.ravel(), grid_y.ravel()], axis=-1))
        stride_values.append(np.full((cells * cells, 1), stride, dtype=np.float32))
    return np.concatenate(points).astype(np.float32), np.concatenate(stride_values)


def dist_to_boxes(distances, anchor_points):
    """(left, top, right, bottom) distances (..., A, 4) + anchors (A, 2) -> xyxy (..., A, 4)."""
    left_top, right_bottom = distances[..., :2], distances[..., 2:]
    return ops.concatenate([anchor_points - left_top, anchor_points + right_bottom], axis=-1)


def boxes_to_dist(boxes, anchor_points, reg_max: int):
    """xyxy (..., A, 4) + anchors (A, 2) -> ltrb distances (..., A, 4) in [0, reg_max - 1.01]."""
    distances = ops.concatenate([anchor_points - boxes[..., :2], boxes[..., 2:] - anchor_points], axis=-1)
    return ops.clip(distances, 0.0, reg_max - 1 - 0.01)


def split_bins(logits, reg_max: int):
    """(..., 4 * reg_max) -> (..., 4, reg_max)."""
    shape = ops.shape(logits)
    return ops.reshape(logits, tuple(shape[:-1]) + (4, reg_max))


def dfl_expectation(logits, reg_max: int = 16):
    """Distribution logits (B, A, 4 * reg_max) -> expected distances (B, A, 4) in bins."""
    probabilities = ops.softmax(split_bins(logits, reg_max), axis=-1)
    return ops.sum(probabilities * ops.arange(reg_max, dtype=probabilities.dtype), axis=-1)


def decode_predictions(raw, image_size: int, num_classes: int, reg_max: int = 16, strides=DEFAULT_STRIDES):
    """Raw head output (B, A, 4 * reg_max + C) -> (boxes (B, A, 4) pixels, probabilities (B, A, C))."""
    if raw.shape[-1] is not None and raw.shape[-1] != 4 * reg_max + num_classes:
        raise ValueError(f"raw predictions need 4 * reg_max + num_classes = {4 * reg_max + num_classes} "
                         f"channels. Received: shape={tuple(raw.shape)}")
    anchor_points, stride_tensor = make_anchors(image_size, strides)
    raw = ops.cast(raw, "float32")
    distances = dfl_expectation(raw[..., : 4 * reg_max], reg_max) * stride_tensor
    boxes = dist_to_boxes(distances, anchor_points)
    return boxes, ops.sigmoid(raw[..., 4 * reg_max:])


def _area(boxes):
    return ops.maximum(boxes[..., 2] - boxes[..., 0], 0.0) * ops.maximum(boxes[..., 3] - boxes[..., 1], 0.0)


def box_iou(boxes_a, boxes_b, eps: float = 1e-7):
    """Pairwise IoU: (..., N, 4) x (..., M, 4) -> (..., N, M)."""
    a = ops.expand_dims(boxes_a, -2)
    b = ops.expand_dims(boxes_b, -3)
    top_left = ops.maximum(a[..., :2], b[..., :2])
    bottom_right = ops.minimum(a[..., 2:], b[..., 2:])
    size = ops.maximum(bottom_right - top_left, 0.0)
    intersection = size[..., 0] * size[..., 1]
    union = _area(a) + _area(b) - intersection
    return intersection / (union + eps)


def ciou(boxes_a, boxes_b, eps: float = 1e-7):
    """Elementwise Complete-IoU (Zheng et al. 2020): (..., 4) x (..., 4) -> (...).

    CIoU = IoU - rho^2 / c^2 - alpha * v, with rho the centre distance, c the diagonal of the
    smallest enclosing box, v the aspect-ratio term and alpha = v / (1 - IoU + v) treated as a
    constant (no gradient), as in the paper and YOLOv8.
    """
    ax1, ay1, ax2, ay2 = (boxes_a[..., i] for i in range(4))
    bx1, by1, bx2, by2 = (boxes_b[..., i] for i in range(4))
    width_a, height_a = ax2 - ax1, ay2 - ay1 + eps
    width_b, height_b = bx2 - bx1, by2 - by1 + eps
    inter_w = ops.maximum(ops.minimum(ax2, bx2) - ops.maximum(ax1, bx1), 0.0)
    inter_h = ops.maximum(ops.minimum(ay2, by2) - ops.maximum(ay1, by1), 0.0)
    intersection = inter_w * inter_h
    union = width_a * height_a + width_b * height_b - intersection + eps
    iou = intersection / union
    enclosing_w = ops.maximum(ax2, bx2) - ops.minimum(ax1, bx1)
    enclosing_h = ops.maximum(ay2, by2) - ops.minimum(ay1, by1)
    diagonal_sq = enclosing_w**2 + enclosing_h**2 + eps
    centre_dist_sq = ((bx1 + bx2 - ax1 - ax2) ** 2 + (by1 + by2 - ay1 - ay2) ** 2) / 4.0
    v = (4.0 / math.pi**2) * (ops.arctan(width_b / height_b) - ops.arctan(width_a / height_a)) ** 2
    alpha = ops.stop_gradient(v / (v - iou + (1.0 + eps)))
    return iou - (centre_dist_sq / diagonal_sq + alpha * v)
