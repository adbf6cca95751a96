"""BCCD blood cells as a 3-class crop classification dataset (one crop per annotated box).

Reads `<data_root>/bccd/BCCD/{Annotations,JPEGImages,ImageSets/Main}`. Splits follow the
VOC ImageSets (train 205 / val 87 / test 72 images), so all crops of one image stay in one
split. Each box is padded by `context` times its width/height on every side, clipped to
the image and resized (aspect ratio not kept) to `crop_size` x `crop_size` RGB.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.datasets.voc import VocFormatError, parse_voc_xml, read_imageset
from pipelines.registry import fetch_hint
from pipelines.sources import ArraySource

BCCD_CLASSES = ("Platelets", "RBC", "WBC")
SPLITS = ("train", "val", "test")
RELATIVE_ROOT = Path("bccd") / "BCCD"


def bccd_root(data_root: str | os.PathLike) -> Path:
    """The VOC root of BCCD under `data_root`; FileNotFoundError with a hint if absent."""
    voc_root = Path(data_root) / RELATIVE_ROOT
    if not (voc_root / "Annotations").is_dir():
        raise FileNotFoundError(
            f"BCCD not found: tried {voc_root}. Expected the data root to contain "
            f"{RELATIVE_ROOT}/Annotations, JPEGImages and ImageSets/Main (Shenggan/BCCD_Dataset). "
            f"{fetch_hint('bccd')}"
        )
    return voc_root


def crop_box(image: Image.Image, box: np.ndarray, crop_size: int, context: float) -> np.ndarray:
    """Pads `box` ([xmin, ymin, xmax, ymax] pixels) by `context` of its size, clips, resizes."""
    xmin, ymin, xmax, ymax = (float(v) for v in box)
    pad_x, pad_y = context * (xmax - xmin), context * (ymax - ymin)
    left = max(0, int(np.floor(xmin - pad_x)))
    top = max(0, int(np.floor(ymin - pad_y)))
    right = min(image.width, int(np.ceil(xmax + pad_x)))
    bottom = min(image.height, int(np.ceil(ymax + pad_y)))
    right, bottom = max(right, left + 1), max(bottom, top + 1)
    crop = image.crop((left, top, right, bottom)).resize((crop_size, crop_size), Image.BILINEAR)
    return np.asarray(crop, dtype=np.uint8)


def _load_split(voc_root: Path, split: str, crop_size: int, context: float) -> ArraySource:
    crops, labels, skipped = [], [], []
    for image_id in read_imageset(voc_root, split):
        xml_path = voc_root / "Annotations" / f"{image_id}.xml"
        try:
            annotation = parse_voc_xml(xml_path, BCCD_CLASSES)
        except VocFormatError as error:
            reason = str(error).removeprefix(f"{xml_path}: ")
            skipped.append({"path": str(xml_path), "reason": f"{reason} The image is not used."})
            continue
        skipped.extend(
            {"path": str(xml_path), "reason": f"object #{d['index']} ({d['name']}): {d['reason']}"}
            for d in annotation.dropped
        )
        image_path = voc_root / "JPEGImages" / f"{image_id}.jpg"
        try:
            with Image.open(image_path) as image:
                rgb = image.convert("RGB")
        except Exception as error:  # noqa: BLE001 - report the image, keep loading.
            lost = len(annotation.boxes)
            reason = f"unreadable image ({type(error).__name__}: {error}); {lost} boxes lost"
            skipped.append({"path": str(image_path), "reason": reason})
            continue
        for box, label in zip(annotation.boxes, annotation.labels, strict=True):
            crops.append(crop_box(rgb, box, crop_size, context))
            labels.append(label)
    images = np.stack(crops) if crops else np.zeros((0, crop_size, crop_size, 3), np.uint8)
    return ArraySource(images, np.array(labels, np.int32), list(BCCD_CLASSES), skipped)


def load_bccd_cells(
    data_root: str | os.PathLike, crop_size: int = 48, context: float = 0.1
) -> dict[str, ArraySource]:
    """Returns {"train", "val", "test"} ArraySources of uint8 (crop_size, crop_size, 3) cell crops.

    Class names are `BCCD_CLASSES`; each split's `skipped` lists dropped boxes (the two
    zero-area RBC boxes of images 00338 and 00343), unreadable images and malformed XML.
    """
    if crop_size < 1 or context < 0:
        raise ValueError(
            f"Expected crop_size >= 1 and context >= 0; received {crop_size=}, {context=}."
        )
    voc_root = bccd_root(data_root)
    return {split: _load_split(voc_root, split, crop_size, context) for split in SPLITS}
