"""Random-access image sources (grain-compatible: `len(source)` and `source[i]`).

Every element is a dict of numpy values:

    {"image": uint8 (H, W, C) with C in (1, 3), "label": int32 scalar, "weight": float32 scalar}

`weight` is 1.0, or 0.0 for a sample whose file could not be decoded at read time (it was
fine when the dataset was indexed: `verify_image_files` decodes every file once); such a
sample has a zero image of shape (1, 1, C) and a warning naming the file is logged. A
source never raises for a bad file, so one corrupt image cannot stop a training run, and
weight-aware losses and metrics simply ignore it. Files are read through
`pipelines.images.read_image`, which downscales images larger than `max_side`.

Samples excluded while loading (corrupt files, degenerate boxes, ...) are listed in
`source.skipped` as `{"path": str, "reason": str}` dicts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from pipelines.images import DEFAULT_MAX_SIDE, check_image, read_image

logger = logging.getLogger(__name__)

Element = dict[str, np.ndarray]


def _as_labels(labels: Sequence[int] | np.ndarray, count: int, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (count,):
        raise ValueError(f"Expected labels of shape ({count},); received shape {labels.shape}.")
    if count and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"Expected integer labels; received dtype {labels.dtype}.")
    labels = labels.astype(np.int32)
    if count and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"Labels must lie in [0, {num_classes}) for {num_classes} class names; "
            f"received min={labels.min()}, max={labels.max()}."
        )
    return labels


def _element(image: np.ndarray, label: int, weight: float) -> Element:
    return {"image": image, "label": np.int32(label), "weight": np.float32(weight)}


class LabelledSource:
    """Shared bookkeeping: class names, labels and load-time skipped samples."""

    def __init__(self, labels, count: int, class_names: Sequence[str], skipped):
        self.class_names: list[str] = [str(name) for name in class_names]
        self.labels: np.ndarray = _as_labels(labels, count, len(self.class_names))
        self.skipped: list[dict] = list(skipped or [])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.labels)

    def _check_index(self, index: int) -> int:
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"Index {index} out of range for a source of length {len(self)}.")
        return index % len(self)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(len={len(self)}, num_classes={self.num_classes}, "
            f"skipped={len(self.skipped)})"
        )


class ArraySource(LabelledSource):
    """In-memory images: `images` is uint8 NHWC with C in (1, 3)."""

    def __init__(
        self,
        images: np.ndarray,
        labels: Sequence[int] | np.ndarray,
        class_names: Sequence[str],
        skipped: list[dict] | None = None,
    ):
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(
                "Expected uint8 images of shape (N, H, W, C) with C in (1, 3); received "
                f"dtype={images.dtype}, shape={images.shape}."
            )
        super().__init__(labels, len(images), class_names, skipped)
        self.images = images

    def __getitem__(self, index: int) -> Element:
        index = self._check_index(index)
        return _element(self.images[index], self.labels[index], 1.0)

    def gather(self, indices: np.ndarray) -> dict:
        """A whole batch at `indices` with one vectorised index (the builder's fast path)."""
        return {"image": self.images[indices], "label": self.labels[indices],
                "weight": np.ones(len(indices), np.float32)}

    def subset(self, indices: Sequence[int] | np.ndarray, skipped: list[dict] | None = None):
        """The samples at `indices`, same class names; `skipped` defaults to none."""
        indices = np.asarray(indices, dtype=np.int64)
        return ArraySource(self.images[indices], self.labels[indices], self.class_names, skipped)


class FileSource(LabelledSource):
    """Image files decoded lazily with PIL, converted to RGB (channels=3) or L (channels=1);
    images whose longer side exceeds `max_side` are downscaled to it while decoding."""

    def __init__(
        self,
        paths: Sequence[str],
        labels: Sequence[int] | np.ndarray,
        class_names: Sequence[str],
        channels: int = 3,
        skipped: list[dict] | None = None,
        max_side: int | None = DEFAULT_MAX_SIDE,
    ):
        if channels not in (1, 3):
            raise ValueError(f"Expected channels=1 or 3; received channels={channels}.")
        self.paths: list[str] = [str(path) for path in paths]
        super().__init__(labels, len(self.paths), class_names, skipped)
        self.channels = channels
        self.max_side = max_side

    def __getitem__(self, index: int) -> Element:
        index = self._check_index(index)
        path, label = self.paths[index], self.labels[index]
        try:
            array = read_image(path, "RGB" if self.channels == 3 else "L", self.max_side)
        except Exception as error:  # noqa: BLE001 - a bad file must never stop a run.
            logger.warning("Could not decode %s (%s); returning weight 0.", path, error)
            return _element(np.zeros((1, 1, self.channels), np.uint8), label, 0.0)
        return _element(array, label, 1.0)

    def subset(self, indices: Sequence[int] | np.ndarray, skipped: list[dict] | None = None):
        """The samples at `indices`, same class names and channels; `skipped` defaults to none."""
        indices = np.asarray(indices, dtype=np.int64)
        paths = [self.paths[i] for i in indices]
        return FileSource(paths, self.labels[indices], self.class_names, self.channels, skipped,
                          self.max_side)


def verify_image_files(paths: Sequence[str],
                       max_side: int | None = DEFAULT_MAX_SIDE) -> tuple[list[int], list[dict]]:
    """Decodes each file once, fully (`pipelines.images.check_image`).

    Returns the indices of the good paths and `{"path", "reason"}` entries for the others
    (missing, not an image, corrupt header, truncated or corrupt pixel data).
    """
    good: list[int] = []
    skipped: list[dict] = []
    for index, path in enumerate(paths):
        _, reason = check_image(path, max_side)
        if reason is None:
            good.append(index)
        else:
            skipped.append({"path": str(path), "reason": reason})
    return good, skipped


def stratified_split(
    labels: Sequence[int] | np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Splits indices so that `fraction` of each class (rounded) goes to the second part.

    Deterministic for a given seed (numpy PCG64); both parts are sorted.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"Expected 0 <= fraction < 1; received fraction={fraction}.")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    first, second = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        count = round(len(members) * fraction)
        second.append(members[:count])
        first.append(members[count:])
    if not len(labels):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))
