"""Image classification arrays from one .npz file (the `keras.datasets` layout).

Keys: `x_train`, `y_train` (required); `x_val`, `y_val` and `x_test`, `y_test` (optional,
in pairs); `class_names` (optional string array, default "0".."K-1").

Images may be NHW (a channel axis is added) or NHWC with C in (1, 3). Pixel conversion to
uint8, decided once for the whole file so that every split gets the same rule:
- uint8: kept as is;
- other integer dtypes: must lie in [0, 255];
- floats: if every value of every split lies in [0, 1], they are multiplied by 255,
  otherwise they must lie in [0, 255]; then rounded. NaN/inf or values outside the range
  are errors. (A float file whose pixels are all <= 1 is therefore always read as [0, 1].)
Labels may be (N,) or (N, 1), integer or integral floats, non-negative.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipelines.sources import ArraySource

SPLITS = ("train", "val", "test")


def _images(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(
            f"{path}: {key} has shape {x.shape}; "
            "expected (N, H, W) or (N, H, W, C) with C in (1, 3)."
        )
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(
            f"{path}: {key} has dtype {x.dtype}; expected uint8, another integer or a float dtype."
        )
    return x


def _to_uint8(x: np.ndarray, scale: float, path: Path, key: str) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if x.size and not np.all(np.isfinite(x)):
        raise ValueError(f"{path}: {key} contains NaN or inf; expected finite pixel values.")
    x = x.astype(np.float64) * scale
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError(
            f"{path}: {key} has values in [{x.min() / scale:g}, {x.max() / scale:g}]; "
            "expected [0, 1] or [0, 255]."
        )
    return np.round(x).astype(np.uint8)


def _labels(y: np.ndarray, count: int, path: Path, key: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (count,):
        raise ValueError(f"{path}: {key} has shape {y.shape}; expected ({count},) or ({count}, 1).")
    is_integral_float = np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0)
    if not (np.issubdtype(y.dtype, np.integer) or is_integral_float):
        raise ValueError(
            f"{path}: {key} has dtype {y.dtype} with non-integer values; expected integer labels."
        )
    if count and y.min() < 0:
        raise ValueError(f"{path}: {key} has a negative label {y.min()}; expected labels >= 0.")
    return y.astype(np.int32)


def load_npz(path: str | os.PathLike) -> dict[str, ArraySource]:
    """Returns one ArraySource per split present ("train" always, "val"/"test" if given)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"npz file not found: {path}; expected keys x_train, y_train[, x_test, y_test]."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:  # not a zip, or object arrays needing pickle
        raise ValueError(
            f"{path}: cannot read as .npz without pickle ({error}); expected numeric arrays "
            "x_*/y_* and an optional string array class_names."
        ) from None

    splits = {}
    for split in SPLITS:
        x_key, y_key = f"x_{split}", f"y_{split}"
        if x_key not in arrays and y_key not in arrays and split != "train":
            continue
        for key in (x_key, y_key):
            if key not in arrays:
                raise ValueError(f"{path}: missing key {key!r}; found keys {sorted(arrays)}.")
        x = _images(arrays[x_key], path, x_key)
        splits[split] = (x, _labels(arrays[y_key], len(x), path, y_key))

    floats = [x for x, _ in splits.values() if np.issubdtype(x.dtype, np.floating) and x.size]
    unit_range = bool(floats) and max(float(np.nanmax(x)) for x in floats) <= 1.0
    max_label = max((int(y.max()) for _, y in splits.values() if len(y)), default=-1)
    if "class_names" in arrays:
        class_names = [str(name) for name in np.asarray(arrays["class_names"]).reshape(-1)]
        if max_label >= len(class_names):
            raise ValueError(
                f"{path}: labels go up to {max_label} but class_names has {len(class_names)} "
                "entries; expected one name per label."
            )
    else:
        class_names = [str(i) for i in range(max_label + 1)]

    result = {}
    for split, (x, y) in splits.items():
        scale = 255.0 if unit_range and np.issubdtype(x.dtype, np.floating) else 1.0
        result[split] = ArraySource(_to_uint8(x, scale, path, f"x_{split}"), y, class_names)
    return result
