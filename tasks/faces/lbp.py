"""`LocalBinaryPatterns` (tasks/faces/verification.py) as a Keras layer in keras.ops, for the
embedding model (`model.lbp_radii`): the same unit-norm vector of square-rooted uniform-LBP
histograms per cell (or, with a threshold, local ternary patterns' two), computed in the graph
so the SavedModel carries it.

Grey is the sum of the three channels (the numpy twin compares the same sums), so integer
pixel values compare exactly on every backend. Cells are summed through two fixed 0/1
assignment matrices (rows to cell rows, columns to cell columns), which keeps cells of
unequal size exactly as the numpy twin cuts them.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from tasks.faces.verification import LocalBinaryPatterns

PACKAGE = "kts_faces"


@keras.saving.register_keras_serializable(package=PACKAGE)
class LocalBinaryPatternLayer(layers.Layer):
    """RGB float images [B, S, S, 3] in 0..255 -> [B, cells * cells * 59] unit vectors (twice
    that with a threshold: the brighter and the darker codes' histograms)."""

    def __init__(self, radius: int = 2, cells: int = 8, threshold: float = 0.0, **kwargs):
        super().__init__(trainable=False, dtype="float32", **{k: v for k, v in kwargs.items()
                                                              if k not in ("trainable", "dtype")})
        self.radius, self.cells, self.threshold = int(radius), int(cells), float(threshold)
        self._twin = LocalBinaryPatterns(self.radius, self.cells, self.threshold)

    def _assignment(self, length: int) -> np.ndarray:
        cell = np.minimum(np.arange(length) * self.cells // length, self.cells - 1)
        return (cell[:, None] == np.arange(self.cells)[None, :]).astype(np.float32)  # [length, cells]

    def call(self, images):
        r, bins = self.radius, LocalBinaryPatterns.BINS
        height, width = int(images.shape[1]), int(images.shape[2])
        if min(height, width) <= 2 * r + self.cells:
            raise ValueError(f"LBP with radius {r} and {self.cells}x{self.cells} cells needs images over "
                             f"{2 * r + self.cells} pixels a side; these are {height}x{width}.")
        grey = ops.sum(ops.cast(images, "float32"), axis=-1)
        margin = self.threshold * int(images.shape[-1])  # grey is the sum of the channels
        h, w = height - 2 * r, width - 2 * r
        centre = grey[:, r:r + h, r:r + w]
        codes = [ops.zeros_like(centre, dtype="int32") for _ in range(self._twin.codes_per_pixel)]
        for k, (dy, dx) in enumerate(self._twin.offsets()):
            neighbour = grey[:, r + dy:r + dy + h, r + dx:r + dx + w]
            codes[0] = codes[0] + ops.cast(neighbour >= centre + margin, "int32") * (1 << k)
            if margin:
                codes[1] = codes[1] + ops.cast(neighbour <= centre - margin, "int32") * (1 << k)
        lookup = ops.convert_to_tensor(self._twin.bin_of.astype(np.int32))
        index = ops.stack([ops.take(lookup, code) for code in codes], axis=-1)  # [B, h, w, k]
        onehot = ops.one_hot(index, bins, dtype="float32")  # [B, h, w, k, 59]
        counts = ops.einsum("hi,bhwkc,wj->bijkc", ops.convert_to_tensor(self._assignment(h)), onehot,
                            ops.convert_to_tensor(self._assignment(w)))
        counts = counts / ops.maximum(ops.sum(counts, axis=-1, keepdims=True), 1.0)
        histograms = self.cells * self.cells * len(codes)
        return ops.reshape(ops.sqrt(counts), (-1, histograms * bins)) / float(np.sqrt(histograms))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self._twin.size)

    def get_config(self):
        return {**super().get_config(), "radius": self.radius, "cells": self.cells, "threshold": self.threshold}
