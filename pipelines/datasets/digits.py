"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download needed)."""

from __future__ import annotations

import numpy as np

from pipelines.sources import ArraySource, stratified_split

#: The fixed split behind the "digits test accuracy" target: a stratified 80/20 split
#: made by `stratified_split(labels, TEST_FRACTION, SPLIT_SEED)`, giving 1,438 train and
#: 359 test images (every class rounded to 20% on its own). Changing either constant
#: changes the benchmark.
SPLIT_SEED = 0
TEST_FRACTION = 0.2


def load_digits() -> dict[str, ArraySource]:
    """Returns {"train", "test"} ArraySources of uint8 (8, 8, 1) images, classes "0".."9".

    The pixel values 0..16 are scaled to 0..255 (rounded).
    """
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int32)
    class_names = [str(digit) for digit in range(10)]
    source = ArraySource(images, labels, class_names)
    train_indices, test_indices = stratified_split(labels, TEST_FRACTION, SPLIT_SEED)
    return {"train": source.subset(train_indices), "test": source.subset(test_indices)}
