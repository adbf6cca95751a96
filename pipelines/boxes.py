"""Numpy box utilities for detection (no deep-learning framework imports).

Boxes are float32 arrays of shape (N, 4) in `[x_min, y_min, x_max, y_max]` absolute pixels
of the image they belong to, in continuous coordinates: pixel column c covers [c, c + 1),
so a box filling columns 10..49 has x_min=10, x_max=50 and an image of width W spans
[0, W]. With this convention a horizontal flip is x -> W - x and a resize by s is x -> s*x.
"""

from __future__ import annotations

import numpy as np


def as_boxes(boxes) -> np.ndarray:
    """float32 (N, 4) view of `boxes`; ValueError naming the shape received otherwise."""
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"Expected boxes of shape (N, 4); received shape {boxes.shape}.")
    return boxes


def area(boxes) -> np.ndarray:
    """(N,) areas; boxes with x_max < x_min or y_max < y_min have area 0."""
    boxes = as_boxes(boxes)
    widths = np.maximum(boxes[:, 2] - boxes[:, 0], 0.0)
    heights = np.maximum(boxes[:, 3] - boxes[:, 1], 0.0)
    return widths * heights


def clip(boxes, height: float, width: float) -> np.ndarray:
    """Clips x to [0, width] and y to [0, height] (a box entirely outside becomes empty)."""
    boxes = as_boxes(boxes).copy()
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0.0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0.0, height)
    return boxes


def valid_mask(boxes, min_size: float = 1.0) -> np.ndarray:
    """(N,) bool: width >= min_size and height >= min_size (and both finite)."""
    boxes = as_boxes(boxes)
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return np.isfinite(boxes).all(axis=1) & (widths >= min_size) & (heights >= min_size)


def xyxy_to_cxcywh(boxes) -> np.ndarray:
    """[x_min, y_min, x_max, y_max] -> [centre_x, centre_y, width, height]."""
    boxes = as_boxes(boxes)
    sizes = boxes[:, 2:] - boxes[:, :2]
    return np.concatenate([boxes[:, :2] + sizes / 2, sizes], axis=1)


def cxcywh_to_xyxy(boxes) -> np.ndarray:
    """[centre_x, centre_y, width, height] -> [x_min, y_min, x_max, y_max]."""
    boxes = as_boxes(boxes)
    half = boxes[:, 2:] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


def iou_matrix(a, b) -> np.ndarray:
    """(N, M) intersection over union of every box in `a` with every box in `b` (0 if empty)."""
    a, b = as_boxes(a), as_boxes(b)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0.0, None), axis=2)
    union = area(a)[:, None] + area(b)[None, :] - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def hflip(boxes, width: float) -> np.ndarray:
    """Boxes of an image of `width` pixels flipped left-right: x -> width - x."""
    boxes = as_boxes(boxes)
    return np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]],
                    axis=1).astype(np.float32)


def affine(boxes, matrix) -> np.ndarray:
    """Applies a 2x3 affine `matrix` ([x', y'] = M @ [x, y, 1]) to the 4 corners of each box
    and returns the enclosing axis-aligned boxes (exact for scale + translation)."""
    boxes, matrix = as_boxes(boxes), np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (2, 3):
        raise ValueError(f"Expected a 2x3 affine matrix; received shape {matrix.shape}.")
    x0, y0, x1, y1 = (boxes[:, i].astype(np.float64) for i in range(4))
    corners = np.stack([np.stack([x0, y0], 1), np.stack([x1, y0], 1),
                        np.stack([x0, y1], 1), np.stack([x1, y1], 1)], axis=1)  # (N, 4, 2)
    moved = corners @ matrix[:, :2].T + matrix[:, 2]
    return np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1).astype(np.float32)


def clip_and_filter(boxes, reference_areas, height: float, width: float,
                    min_size: float = 2.0, min_area_fraction: float = 0.2):
    """Clips `boxes` to the image and returns (clipped boxes kept, keep mask).

    A box is dropped when a side of the clipped box is under `min_size` pixels or it kept
    less than `min_area_fraction` of `reference_areas` (its area before clipping, in the
    same pixel units), the YOLO rule for boxes pushed out by mosaic or affine augmentation.
    """
    clipped = clip(boxes, height, width)
    reference = np.asarray(reference_areas, dtype=np.float32)
    keep = valid_mask(clipped, min_size) & (area(clipped) >= min_area_fraction * reference)
    return clipped[keep], keep
