"""Detection element ops (numpy + PIL): letterbox, augmentation, mosaic, padding for batches.

An element is `{"image": uint8 (H, W, 3), "boxes": float32 (N, 4) [x_min, y_min, x_max,
y_max] pixels, "classes": int32 (N,), "image_id": int32}`; `Letterbox` adds `"letterbox":
float32 [scale, pad_x, pad_y]` (original = (letterboxed - pad) / scale) and `"orig_size":
int32 [height, width]`. Deterministic ops are `op(element)`, random ops `op(element, rng)`
and use only `rng`, so `pipelines.builder` can seed them by stream position and resume.

Geometric random ops (flip, affine, mosaic) do not update `"letterbox"`: they are for
training, where it is not used. A typical training stream:

    train_dataset(source, batch_size=16, seed=0,
                  random_ops=[Mosaic(source, 640), RandomAffine(), RandomFlip(), HSVJitter(),
                              PadBoxes(100)], finalize=to_fit_tuple)

`PadBoxes` ignores the generator, so it can go last in `random_ops` (the builder runs
random ops after the deterministic ones, and batching needs the padding to come last).
Evaluation uses `ops=[Letterbox(640), PadBoxes(100)]`.

Turning mosaic off for the last epochs ("close mosaic"): build the training stream again
at that global step, `train_dataset(..., random_ops=[Mosaic(source, 640, probability=0.0),
...], start_step=step)` (or `MosaicSource.with_probability(0.0)`). Do not mutate an op or
source that a running stream holds: prefetch buffers and worker processes keep old copies.
"""

from __future__ import annotations

import copy
import math

import numpy as np
from PIL import Image

from pipelines import boxes as box_ops


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    pil = Image.fromarray(image).resize((width, height), Image.BILINEAR)
    return np.asarray(pil, dtype=np.uint8)


def _check_fill(fill: int) -> int:
    if not 0 <= int(fill) <= 255:
        raise ValueError(f"Expected a fill grey level in [0, 255]; received fill={fill}.")
    return int(fill)


def _scale_translate(image: np.ndarray, gain: float, offset_x: float, offset_y: float,
                     fill: int) -> np.ndarray:
    """x' = gain * x + offset (same for y) into an image of the input's size, grey outside.

    The part of the output covered by the image, rounded inwards to whole pixels, is one
    PIL bilinear resize of the exact source region (several times faster than PIL's
    generic affine transform); only a sub-pixel fringe at the image border is lost.
    """
    height, width = image.shape[:2]
    canvas = np.full_like(image, fill)
    x0, y0 = max(0, math.ceil(offset_x)), max(0, math.ceil(offset_y))
    x1 = min(width, math.floor(gain * width + offset_x))
    y1 = min(height, math.floor(gain * height + offset_y))
    if x1 > x0 and y1 > y0:
        region = (max(0.0, (x0 - offset_x) / gain), max(0.0, (y0 - offset_y) / gain),
                  min(width, (x1 - offset_x) / gain), min(height, (y1 - offset_y) / gain))
        part = Image.fromarray(image).resize((x1 - x0, y1 - y0), Image.BILINEAR, box=region)
        canvas[y0:y1, x0:x1] = np.asarray(part, np.uint8)
    return canvas


class Letterbox:
    """Resizes (PIL bilinear, aspect ratio kept) so the longer side is `size`, pads the rest
    with grey `fill` to `size` x `size` (image centred), and scales the boxes to match.

    Records `"letterbox"` = [scale, pad_x, pad_y] and `"orig_size"` = [height, width]; on an
    element already letterboxed the two transforms are composed, so the record still maps
    back to the original image.
    """

    def __init__(self, size: int, fill: int = 114):
        if int(size) < 1:
            raise ValueError(f"Expected size >= 1; received size={size}.")
        self.size, self.fill = int(size), _check_fill(fill)

    def __call__(self, element: dict) -> dict:
        image = element["image"]
        height, width = image.shape[:2]
        scale = self.size / max(height, width)
        new_width = min(self.size, max(1, round(width * scale)))
        new_height = min(self.size, max(1, round(height * scale)))
        pad_x, pad_y = (self.size - new_width) // 2, (self.size - new_height) // 2
        canvas = np.full((self.size, self.size, 3), self.fill, np.uint8)
        canvas[pad_y:pad_y + new_height, pad_x:pad_x + new_width] = _resize(
            image, new_width, new_height)
        boxes = box_ops.as_boxes(element["boxes"]) * scale + np.float32([pad_x, pad_y] * 2)
        previous = element.get("letterbox")
        record = np.float32([scale, pad_x, pad_y])
        if previous is not None:  # compose: original -> previous letterbox -> this one
            record = np.float32([previous[0] * scale, previous[1] * scale + pad_x,
                                 previous[2] * scale + pad_y])
        orig_size = element.get("orig_size", np.int32([height, width]))
        return {**element, "image": canvas, "boxes": boxes.astype(np.float32),
                "letterbox": record, "orig_size": np.asarray(orig_size, np.int32)}


class RandomFlip:
    """Flips image and boxes left-right with `probability`."""

    def __init__(self, probability: float = 0.5):
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"Expected 0 <= probability <= 1; received {probability=}.")
        self.probability = probability

    def __call__(self, element: dict, rng: np.random.Generator) -> dict:
        if rng.random() >= self.probability:
            return element
        image = element["image"]
        return {**element, "image": np.ascontiguousarray(image[:, ::-1]),
                "boxes": box_ops.hflip(element["boxes"], image.shape[1])}


class RandomAffine:
    """Scales about the image centre by a gain drawn from `scale`, then shifts by up to
    `translate` of the width/height; the output keeps the input size (grey `fill` outside).

    Boxes are transformed, clipped and dropped when a side is under 2 px or less than 20% of
    their transformed area is left inside the image (the YOLO rule).
    """

    def __init__(self, scale: tuple[float, float] = (0.5, 1.5), translate: float = 0.1,
                 fill: int = 114):
        low, high = (float(v) for v in scale)
        if not 0 < low <= high:
            raise ValueError(f"Expected scale=(low, high) with 0 < low <= high; received {scale}.")
        if not 0.0 <= translate < 1.0:
            raise ValueError(f"Expected 0 <= translate < 1; received {translate=}.")
        self.scale, self.translate, self.fill = (low, high), float(translate), _check_fill(fill)

    def __call__(self, element: dict, rng: np.random.Generator) -> dict:
        image = element["image"]
        height, width = image.shape[:2]
        gain = rng.uniform(*self.scale)
        shift_x, shift_y = rng.uniform(-self.translate, self.translate, 2) * (width, height)
        offset_x = (1 - gain) * width / 2 + shift_x
        offset_y = (1 - gain) * height / 2 + shift_y
        matrix = np.array([[gain, 0, offset_x], [0, gain, offset_y]])
        warped = _scale_translate(image, gain, offset_x, offset_y, self.fill)
        moved = box_ops.affine(element["boxes"], matrix)
        kept, keep = box_ops.clip_and_filter(moved, box_ops.area(moved), height, width)
        return {**element, "image": warped, "boxes": kept,
                "classes": np.asarray(element["classes"], np.int32)[keep]}


class HSVJitter:
    """YOLO colour jitter: hue, saturation and value each multiplied by a gain drawn from
    1 +- `hue` / `saturation` / `value` (hue wraps around; PIL's HSV, 0..255 per channel)."""

    def __init__(self, hue: float = 0.015, saturation: float = 0.7, value: float = 0.4):
        if min(hue, saturation, value) < 0:
            raise ValueError(f"Expected non-negative gains; received {hue=}, {saturation=}, "
                             f"{value=}.")
        self.amounts = np.array([hue, saturation, value])

    def __call__(self, element: dict, rng: np.random.Generator) -> dict:
        gains = rng.uniform(-1, 1, 3) * self.amounts + 1
        levels = np.arange(256, dtype=np.float64)
        luts = [np.mod(levels * gains[0], 256), np.clip(levels * gains[1], 0, 255),
                np.clip(levels * gains[2], 0, 255)]
        channels = Image.fromarray(element["image"]).convert("HSV").split()
        channels = [c.point(lut.astype(np.uint8).tolist()) for c, lut in zip(channels, luts)]
        rgb = Image.merge("HSV", channels).convert("RGB")
        return {**element, "image": np.asarray(rgb, np.uint8)}


class PadBoxes:
    """Pads "boxes" to (max_boxes, 4) (zeros) and "classes" to (max_boxes,) (-1), so elements
    batch; with more boxes the `max_boxes` largest are kept (in their original order) and
    `"truncated"` (int32, always present) counts the others. Accepts and ignores an `rng`,
    so it may go last in the builder's `random_ops`."""

    def __init__(self, max_boxes: int):
        if int(max_boxes) < 1:
            raise ValueError(f"Expected max_boxes >= 1; received max_boxes={max_boxes}.")
        self.max_boxes = int(max_boxes)

    def __call__(self, element: dict, rng: np.random.Generator | None = None) -> dict:
        boxes = box_ops.as_boxes(element["boxes"])
        classes = np.asarray(element["classes"], np.int32).reshape(-1)
        truncated = max(0, len(boxes) - self.max_boxes)
        if truncated:
            keep = np.sort(np.argsort(-box_ops.area(boxes), kind="stable")[:self.max_boxes])
            boxes, classes = boxes[keep], classes[keep]
        padded_boxes = np.zeros((self.max_boxes, 4), np.float32)
        padded_classes = np.full((self.max_boxes,), -1, np.int32)
        padded_boxes[:len(boxes)], padded_classes[:len(classes)] = boxes, classes
        return {**element, "boxes": padded_boxes, "classes": padded_classes,
                "truncated": np.int32(truncated)}


def to_fit_tuple(element: dict):
    """(image, {"boxes", "classes"}) for `model.fit`; works on elements and batches."""
    return element["image"], {"boxes": element["boxes"], "classes": element["classes"]}


def _fit_longest_side(element: dict, size: int) -> tuple[np.ndarray, np.ndarray]:
    image = element["image"]
    height, width = image.shape[:2]
    scale = size / max(height, width)
    new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
    return (_resize(image, new_width, new_height),
            box_ops.as_boxes(element["boxes"]) * np.float32(scale))


class Mosaic:
    """Random op: with `probability`, a YOLOv5/8 2x2 mosaic of the element and 3 random
    samples of `source`, else the element letterboxed to `size`.

    Each tile is resized so its longer side is `size`; the tiles meet at a random centre of
    a 2*size canvas (grey `fill`), and the central size x size window is kept. Boxes are
    clipped to it and dropped under the 2 px / 20% area rule. Use it first in `random_ops`
    with no geometric deterministic op before it; new partners are drawn every epoch.
    The output carries `"letterbox"` [1, 0, 0] and `"orig_size"` [size, size] (a mosaic has
    no single original image) and the first tile's `"image_id"`.
    """

    def __init__(self, source, size: int, probability: float = 1.0, fill: int = 114):
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"Expected 0 <= probability <= 1; received {probability=}.")
        self.source, self.probability = source, probability
        self.letterbox = Letterbox(size, fill)
        self.size, self.fill = self.letterbox.size, self.letterbox.fill

    def __call__(self, element: dict, rng: np.random.Generator) -> dict:
        if rng.random() >= self.probability or len(self.source) == 0:
            return self.letterbox(element)
        partners = rng.integers(0, len(self.source), 3)
        centre_x, centre_y = (int(v) for v in rng.integers(self.size // 2,
                                                           self.size + self.size // 2, 2))
        tiles = [element] + [self.source[int(i)] for i in partners]
        return self.combine(tiles, centre_x, centre_y)

    def combine(self, tiles: list[dict], centre_x: int, centre_y: int) -> dict:
        """The mosaic of 4 elements (top-left, top-right, bottom-left, bottom-right) meeting
        at (centre_x, centre_y) of the 2*size canvas, cropped to its central window."""
        size, double = self.size, 2 * self.size
        canvas = np.full((double, double, 3), self.fill, np.uint8)
        all_boxes, all_classes, reference = [], [], []
        for position, tile in enumerate(tiles):
            image, tile_boxes = _fit_longest_side(tile, size)
            height, width = image.shape[:2]
            left = centre_x - width if position in (0, 2) else centre_x
            top = centre_y - height if position in (0, 1) else centre_y
            x0, y0 = max(left, 0), max(top, 0)
            x1, y1 = min(left + width, double), min(top + height, double)
            canvas[y0:y1, x0:x1] = image[y0 - top:y1 - top, x0 - left:x1 - left]
            all_boxes.append(tile_boxes + np.float32([left, top] * 2))
            all_classes.append(np.asarray(tile["classes"], np.int32).reshape(-1))
            reference.append(box_ops.area(tile_boxes))
        crop = size // 2
        moved = np.concatenate(all_boxes) - np.float32(crop)
        kept, keep = box_ops.clip_and_filter(moved, np.concatenate(reference), size, size)
        return {**tiles[0], "image": np.ascontiguousarray(canvas[crop:crop + size,
                                                                  crop:crop + size]),
                "boxes": kept, "classes": np.concatenate(all_classes)[keep],
                "letterbox": np.float32([1, 0, 0]), "orig_size": np.int32([size, size])}


class MosaicSource:
    """Random-access source whose item i is `Mosaic` applied to sample i with a generator
    seeded by (seed, i): deterministic per index, so item i is the same mosaic every epoch
    (the `Mosaic` random op draws new ones each epoch; prefer it for training).

    `set_probability(p)` changes the mosaic probability in place (only before a stream is
    built from it); `with_probability(p)` returns a copy, e.g. `with_probability(0.0)` for the
    close-mosaic epochs (plain letterboxed samples).
    """

    def __init__(self, source, size: int, probability: float = 1.0, seed: int = 0,
                 fill: int = 114):
        self.source, self.seed = source, int(seed)
        self.mosaic = Mosaic(source, size, probability, fill)
        self.class_names = list(getattr(source, "class_names", []))

    @property
    def probability(self) -> float:
        return self.mosaic.probability

    def set_probability(self, probability: float) -> None:
        self.mosaic = Mosaic(self.source, self.mosaic.size, probability, self.mosaic.fill)

    def with_probability(self, probability: float) -> MosaicSource:
        other = copy.copy(self)
        other.set_probability(probability)
        return other

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= int(index) < len(self):
            raise IndexError(f"Index {index} out of range for a source of length {len(self)}.")
        index = int(index) % len(self)
        rng = np.random.default_rng([self.seed, index])
        return self.mosaic(self.source[index], rng)
