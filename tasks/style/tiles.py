"""Stylizing an image larger than memory allows: overlapping tiles, blended.

Tiles of `tile` pixels (per side) overlap by `overlap`; each output pixel is the weighted
mean of the tiles covering it, with weights ramping linearly up from each tile's edge over
the overlap, so seams fade (instance normalisation sees each tile's own statistics)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _ramp(length: int, overlap: int) -> np.ndarray:
    if overlap <= 0:
        return np.ones(length, np.float32)
    position = np.arange(length, dtype=np.float32)
    edge = np.minimum(position + 1, length - position) / (overlap + 1)
    return np.clip(edge, 0, 1).astype(np.float32)


def stylize_tiled(fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray, tile: int,
                  overlap: int) -> np.ndarray:
    """`fn` maps one float (h, w, 3) image to its stylized (h, w, 3); applied to the whole
    image when it fits in `tile`, else tile by tile and blended. Returns float32 (H, W, 3)."""
    height, width = image.shape[:2]
    if max(height, width) <= tile:
        return np.asarray(fn(image), np.float32)
    out = np.zeros((height, width, 3), np.float64)
    weight = np.zeros((height, width, 1), np.float64)
    for top in _starts(height, tile, overlap):
        for left in _starts(width, tile, overlap):
            piece = image[top:top + tile, left:left + tile]
            stylized = np.asarray(fn(piece), np.float32)
            ramp = np.outer(_ramp(piece.shape[0], overlap), _ramp(piece.shape[1], overlap))[:, :, None]
            out[top:top + piece.shape[0], left:left + piece.shape[1]] += stylized * ramp
            weight[top:top + piece.shape[0], left:left + piece.shape[1]] += ramp
    return (out / weight).astype(np.float32)
