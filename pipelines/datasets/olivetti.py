"""Olivetti / ORL faces: 400 grey 64x64 images, 40 people x 10 consecutive images.

Read from `<data_root>/olivetti-faces/olivettifaces.mat` (Sam Roweis' file): one uint8
variable `faces` of shape (4096, 400), each column a 64x64 image stored column-major.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipelines.registry import fetch_hint
from pipelines.sources import ArraySource

RELATIVE_PATH = Path("olivetti-faces") / "olivettifaces.mat"
NUM_PEOPLE = 40
IMAGES_PER_PERSON = 10


def load_olivetti_arrays(data_root: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Returns (images uint8 (400, 64, 64, 1) upright, labels int32 (400,) = index // 10)."""
    path = Path(data_root) / RELATIVE_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"Olivetti faces not found: tried {path}. Expected the data root to contain "
            f"{RELATIVE_PATH} (Sam Roweis' olivettifaces.mat). {fetch_hint('olivetti')}"
        )
    from scipy.io import loadmat

    faces = loadmat(path).get("faces")
    expected = (64 * 64, NUM_PEOPLE * IMAGES_PER_PERSON)
    if faces is None or faces.shape != expected:
        received = None if faces is None else faces.shape
        raise ValueError(
            f"{path}: expected a variable 'faces' of shape {expected}; received {received}."
        )
    # Column-major 64x64 per column: reshape row-major, then transpose each image.
    images = faces.T.reshape(-1, 64, 64).transpose(0, 2, 1)
    images = np.ascontiguousarray(images, dtype=np.uint8)[..., None]
    labels = (np.arange(len(images)) // IMAGES_PER_PERSON).astype(np.int32)
    return images, labels


def load_olivetti(
    data_root: str | os.PathLike, train_per_person: int = 5, seed: int = 0
) -> dict[str, ArraySource]:
    """Returns {"train", "test"}: per person, `train_per_person` random images train, rest test.

    Class names are "person_00".."person_39". The split is fixed by `seed` (numpy PCG64).
    """
    if not 0 < train_per_person < IMAGES_PER_PERSON:
        raise ValueError(
            f"Expected 0 < train_per_person < {IMAGES_PER_PERSON}; received {train_per_person}."
        )
    images, labels = load_olivetti_arrays(data_root)
    rng = np.random.default_rng(seed)
    train_indices, test_indices = [], []
    for person in range(NUM_PEOPLE):
        order = person * IMAGES_PER_PERSON + rng.permutation(IMAGES_PER_PERSON)
        train_indices.extend(sorted(order[:train_per_person]))
        test_indices.extend(sorted(order[train_per_person:]))
    source = ArraySource(images, labels, [f"person_{p:02d}" for p in range(NUM_PEOPLE)])
    return {"train": source.subset(train_indices), "test": source.subset(test_indices)}
