"""Reading image files, shared by every file-backed source: a full check when a dataset is
indexed, and bounded decoding when a sample is read.

- `check_image` decodes the whole file once (PIL `load()`, truncated data is an error), so a
  cut-off JPEG or PNG is caught when the dataset is indexed and listed as skipped, instead
  of passing a header-only check and failing later at read time.
- `read_image` downscales images whose longer side exceeds `max_side` while decoding (JPEG
  through `draft()`, which decodes at 1/2, 1/4 or 1/8 scale, then a bilinear resize to the
  exact bound), so one 8000x8000 photo does not multiply the pipeline's peak memory.
  `bounded_size` is the size it returns, so annotations can be scaled to match.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

# Longer side, in pixels, above which images are downscaled when read: several times every
# preset's input size (classification <= 224, detection <= 640), far below a 64-megapixel
# photo (8000x8000 RGB is 192 MB decoded; 2048x2048 is 12 MB).
DEFAULT_MAX_SIDE = 2048


def bounded_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """(height, width) scaled so the longer side is at most `max_side` (aspect kept, each
    side >= 1); unchanged when it already fits or `max_side` is None."""
    if not max_side or max(height, width) <= max_side:
        return int(height), int(width)
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def check_image(path: str | os.PathLike,
                max_side: int | None = DEFAULT_MAX_SIDE) -> tuple[tuple[int, int] | None, str | None]:
    """((height, width), None) when the whole file decodes, else (None, reason).

    Decodes every byte of pixel data (at a reduced JPEG scale for large images: the
    entropy-coded stream is still read to its end), so truncated files fail here.
    """
    try:
        with Image.open(path) as image:
            size = (image.height, image.width)
            target = bounded_size(*size, max_side)
            if target != size:
                image.draft(image.mode, target[::-1])
            image.load()
    except Exception as error:  # noqa: BLE001 - report, never raise.
        return None, f"{type(error).__name__}: {error}"
    return size, None


def read_image(path: str | os.PathLike, mode: str = "RGB",
               max_side: int | None = DEFAULT_MAX_SIDE) -> np.ndarray:
    """uint8 (H, W, C) pixels of `path` converted to `mode` ("RGB" or "L": C = 3 or 1), at
    `bounded_size` of the file's size. Raises what PIL raises for a bad file."""
    with Image.open(path) as image:
        size = (image.height, image.width)
        target = bounded_size(*size, max_side)
        if target != size:
            image.draft(mode, target[::-1])  # JPEG: decode directly at a smaller scale
        image = image.convert(mode)
        if (image.height, image.width) != target:
            image = image.resize(target[::-1], Image.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return np.ascontiguousarray(array)
