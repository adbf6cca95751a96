"""Reading and writing the images of style transfer, and colour preservation.

`load_image` accepts grey, palette, RGBA (composited on white), CMYK and 16-bit files and
returns float32 RGB in 0..255; an image larger than `max_side` is resized with a message;
an unreadable or truncated file is an ImageFileError naming it. `save_image` writes
atomically (never a half-written image).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.images import bounded_size
from shared.io import atomic_write_bytes


class ImageFileError(ValueError):
    """An image file that cannot be used; the message names it."""


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit / 32-bit grey
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        grey = np.clip(array / top * 255.0, 0, 255).astype(np.float32)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def load_image(path: str | os.PathLike, max_side: int | None = None, quiet: bool = False) -> np.ndarray:
    """float32 (H, W, 3) RGB in 0..255, the longer side at most `max_side`."""
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"Image file not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()  # the whole file: a truncated one fails here
            array = _to_rgb(image)
    except Exception as error:  # noqa: BLE001 - one clear message for every decoder error
        raise ImageFileError(f"Cannot read the image {path}: {type(error).__name__}: {error}. "
                             "Expected a whole PNG/JPEG/... file.") from None
    height, width = array.shape[:2]
    target = bounded_size(height, width, max_side)
    if target != (height, width):
        if not quiet:
            print(f"{path}: {width}x{height} resized to {target[1]}x{target[0]} (max side {max_side})")
        array = resize(array, target)
    return array


def resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float (H, W, 3) resized to (height, width), bicubic, kept in 0..255."""
    if tuple(array.shape[:2]) == tuple(size):
        return array.astype(np.float32)
    channels = [Image.fromarray(array[:, :, c].astype(np.float32), mode="F").resize(
        (size[1], size[0]), Image.BICUBIC) for c in range(array.shape[2])]
    return np.clip(np.stack([np.asarray(c) for c in channels], axis=2), 0, 255).astype(np.float32)


def fit_side(array: np.ndarray, side: int) -> np.ndarray:
    """Resized so that the longer side is `side` (aspect kept)."""
    height, width = array.shape[:2]
    scale = side / max(height, width)
    return resize(array, (max(1, round(height * scale)), max(1, round(width * scale))))


def to_uint8(array: np.ndarray) -> np.ndarray:
    return np.clip(np.round(array), 0, 255).astype(np.uint8)


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def save_image(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Writes an RGB image atomically; the format follows the suffix (PNG, JPEG, ...)."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".") or "png"
    fmt = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "bmp": "BMP", "webp": "WEBP", "tif": "TIFF",
           "tiff": "TIFF"}.get(suffix)
    if fmt is None:
        raise ValueError(f"Cannot write {path}: unknown image type {suffix!r}. Expected .png, .jpg, .bmp, "
                         ".webp or .tif")
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(array)).save(buffer, format=fmt)
    return atomic_write_bytes(path, buffer.getvalue())


# --- colour preservation -------------------------------------------------------------------

_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32)


def keep_luminance(result: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The result's luminance (Y) with the content's chroma (I, Q): luminance-only transfer."""
    result_yiq = result @ _YIQ.T
    content_yiq = resize(content, result.shape[:2]) @ _YIQ.T
    merged = np.concatenate([result_yiq[..., :1], content_yiq[..., 1:]], axis=-1)
    return np.clip(merged @ np.linalg.inv(_YIQ).T, 0, 255).astype(np.float32)


def match_color(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """`source` with its colour mean and covariance matched to `target`'s (Gatys et al. 2017,
    colour histogram matching by a linear map of the RGB values)."""
    src = source.reshape(-1, 3).astype(np.float64)
    tgt = target.reshape(-1, 3).astype(np.float64)

    def sqrtm(cov, inverse=False):
        values, vectors = np.linalg.eigh(cov + 1e-5 * np.eye(3))
        values = np.maximum(values, 1e-8) ** (-0.5 if inverse else 0.5)
        return vectors @ np.diag(values) @ vectors.T

    transform = sqrtm(np.cov(tgt, rowvar=False)) @ sqrtm(np.cov(src, rowvar=False), inverse=True)
    mapped = (src - src.mean(0)) @ transform.T + tgt.mean(0)
    return np.clip(mapped, 0, 255).reshape(source.shape).astype(np.float32)
