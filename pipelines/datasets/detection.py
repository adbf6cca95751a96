"""Detection datasets: one random-access `DetectionSource` and loaders for VOC XML, BCCD,
YOLO txt labels and COCO json.

An element is `{"image": uint8 (H, W, 3), "boxes": float32 (N, 4) [x_min, y_min, x_max,
y_max] pixels, "classes": int32 (N,) in [0, C), "image_id": int32}`. Loaders read every
annotation and decode every image once up front (BCCD's 364 images: about a second) and:

- skip missing, corrupt or truncated image files (and images whose size disagrees with
  their annotation), listing them in `source.skipped` as `{"path", "reason"}`;
- skip VOC annotation files that are not readable VOC XML, listed the same way;
- clip boxes partly outside the image and drop boxes with zero area or entirely outside,
  listing the dropped ones in `source.dropped_boxes` as `{"path", "box", "reason"}`;
- raise ValueError naming the file and field for unknown classes and malformed YOLO/COCO
  labels (a class list that does not match the data is a bug to fix, not noise to train
  on), and when not one sample of a non-empty split could be used.

Images whose longer side exceeds `max_side` (default `DEFAULT_MAX_SIDE`) are downscaled
when read, and their boxes and `sizes` are scaled with them when the source is built, so
every coordinate of such an image (annotations, detections) is in the downscaled pixels.

An image that still cannot be decoded at read time comes back grey (114) with no boxes
and a logged warning naming the file, so one bad file never stops a training run.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipelines import boxes as box_ops
from pipelines.datasets.bccd import BCCD_CLASSES, SPLITS, bccd_root
from pipelines.datasets.voc import VocFormatError, parse_voc_xml, read_imageset
from pipelines.images import DEFAULT_MAX_SIDE, bounded_size, check_image, read_image

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class DetectionSource:
    """Image files decoded lazily (PIL, RGB) with their boxes and classes held in memory.

    `sizes` are the files' (height, width); an image larger than `max_side` is read
    downscaled, and its boxes and size are scaled here to match (a no-op for sizes that
    already fit, so `subset` and concatenation keep scaled sources as they are).
    """

    def __init__(self, paths: Sequence[str], boxes: Sequence[np.ndarray],
                 classes: Sequence[np.ndarray], class_names: Sequence[str],
                 image_ids: Sequence[int] | None = None,
                 sizes: Sequence[tuple[int, int]] | None = None,
                 skipped: list[dict] | None = None, dropped_boxes: list[dict] | None = None,
                 max_side: int | None = DEFAULT_MAX_SIDE):
        self.paths = [str(path) for path in paths]
        self.class_names = [str(name) for name in class_names]
        count = len(self.paths)
        if len(boxes) != count or len(classes) != count:
            raise ValueError(f"Expected one boxes and one classes array per path ({count}); "
                             f"received {len(boxes)} and {len(classes)}.")
        self.boxes = [box_ops.as_boxes(b) for b in boxes]
        self.classes = [np.asarray(c, np.int32).reshape(-1) for c in classes]
        for path, b, c in zip(self.paths, self.boxes, self.classes, strict=True):
            if len(b) != len(c) or (len(c) and not 0 <= c.min() <= c.max() < self.num_classes):
                raise ValueError(f"{path}: expected {len(b)} classes in [0, {self.num_classes}); "
                                 f"received {c.tolist()}.")
        self.image_ids = np.asarray(range(count) if image_ids is None else image_ids, np.int32)
        # Read bound per image: the (scaled) size's longer side; None = as stored.
        self._read_bounds: list[int | None] = [None] * count
        if sizes is None:
            self.sizes = [(64, 64)] * count
        else:
            self.sizes = [bounded_size(*size, max_side) for size in sizes]
            for i, ((height, width), (new_height, new_width)) in enumerate(
                    zip(sizes, self.sizes, strict=True)):
                self._read_bounds[i] = max(new_height, new_width)
                if (new_height, new_width) != (height, width):
                    self.boxes[i] = self.boxes[i] * np.float32(
                        [new_width / width, new_height / height] * 2)
        self.skipped: list[dict] = list(skipped or [])
        self.dropped_boxes: list[dict] = list(dropped_boxes or [])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.paths)

    def _check_index(self, index: int) -> int:
        if not -len(self) <= int(index) < len(self):
            raise IndexError(f"Index {index} out of range for a source of length {len(self)}.")
        return int(index) % len(self)

    def annotations(self, index: int) -> dict:
        """{"boxes", "classes", "image_id"} of sample `index` without decoding the image."""
        index = self._check_index(index)
        return {"boxes": self.boxes[index].copy(), "classes": self.classes[index].copy(),
                "image_id": self.image_ids[index]}

    def __getitem__(self, index: int) -> dict:
        index = self._check_index(index)
        element, path = self.annotations(index), self.paths[index]
        try:
            array = read_image(path, "RGB", self._read_bounds[index])
        except Exception as error:  # noqa: BLE001 - a bad file must never stop a run.
            logger.warning("Could not decode %s (%s); returning a grey image with no boxes.",
                           path, error)
            array = np.full((*self.sizes[index], 3), 114, np.uint8)
            element["boxes"], element["classes"] = np.zeros((0, 4), np.float32), np.zeros(0, np.int32)
        return {"image": array, **element}

    def subset(self, indices: Sequence[int]) -> DetectionSource:
        """The samples at `indices` (same class names; skipped/dropped lists not carried)."""
        indices = [self._check_index(i) for i in indices]
        return DetectionSource([self.paths[i] for i in indices], [self.boxes[i] for i in indices],
                               [self.classes[i] for i in indices], self.class_names,
                               self.image_ids[indices], [self.sizes[i] for i in indices])

    def __repr__(self) -> str:
        return (f"DetectionSource(len={len(self)}, num_classes={self.num_classes}, "
                f"boxes={sum(len(b) for b in self.boxes)}, skipped={len(self.skipped)}, "
                f"dropped_boxes={len(self.dropped_boxes)})")


def _probe(path: Path) -> tuple[tuple[int, int] | None, str | None]:
    """((height, width), None) for an image that decodes fully, else (None, reason)."""
    return check_image(path)


def _source(paths, boxes, classes, class_names, stems_or_ids, sizes, skipped, dropped,
            where: str) -> DetectionSource:
    """The DetectionSource of a loaded split; ValueError when every sample was skipped."""
    if not paths and skipped:
        raise ValueError(f"{where}: none of its {len(skipped)} samples could be used; the "
                         f"first: {skipped[0]['path']}: {skipped[0]['reason']}.")
    return DetectionSource(paths, boxes, classes, class_names, stems_or_ids, sizes, skipped,
                           dropped)


def _numeric_ids(stems: Sequence[str]) -> list[int]:
    """Trailing digits of each stem ("BloodImage_00338" -> 338) when all have distinct ones
    that fit int32, else positions 0..N-1."""
    digits = [stem[len(stem.rstrip("0123456789")):] for stem in stems]
    if digits and all(digits) and len(set(map(int, digits))) == len(digits) and max(map(int, digits)) < 2**31:
        return [int(d) for d in digits]
    return list(range(len(stems)))


def _clip_or_drop(path: Path, boxes: np.ndarray, height: int, width: int,
                  dropped: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Clipped boxes and the keep mask; records boxes with no area or entirely outside."""
    boxes = box_ops.as_boxes(boxes)
    clipped = box_ops.clip(boxes, height, width)
    degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    keep = ~degenerate & (box_ops.area(clipped) > 0)
    for box, bad in zip(boxes[~keep].tolist(), degenerate[~keep], strict=True):
        reason = ("degenerate box (zero or negative area)" if bad
                  else f"box entirely outside the {width}x{height} image")
        dropped.append({"path": str(path), "box": box, "reason": reason})
    return clipped[keep], keep


def load_voc_detection(voc_root: str | os.PathLike, split: str,
                       class_names: Sequence[str]) -> DetectionSource:
    """The images of `ImageSets/Main/<split>.txt` with their `Annotations/<id>.xml` boxes."""
    voc_root = Path(voc_root)
    paths, boxes, classes, sizes, stems, skipped, dropped = [], [], [], [], [], [], []
    for stem in read_imageset(voc_root, split):
        xml_path = voc_root / "Annotations" / f"{stem}.xml"
        try:
            annotation = parse_voc_xml(xml_path, class_names)
        except VocFormatError as error:
            reason = str(error).removeprefix(f"{xml_path}: ")
            skipped.append({"path": str(xml_path), "reason": f"{reason} The image is not used."})
            continue
        dropped.extend({"path": str(xml_path), "box": d["box"],
                        "reason": f"object #{d['index']} ({d['name']}): {d['reason']}"}
                       for d in annotation.dropped)
        image_path = voc_root / "JPEGImages" / f"{stem}.jpg"
        if not image_path.exists():
            image_path = voc_root / "JPEGImages" / annotation.filename
        size, reason = _probe(image_path)
        if size is not None and size != (annotation.height, annotation.width):
            reason = (f"image is {size[1]}x{size[0]} but {xml_path.name} says "
                      f"{annotation.width}x{annotation.height}")
        if reason is not None:
            skipped.append({"path": str(image_path),
                            "reason": f"{reason}; {len(annotation.boxes)} boxes lost"})
            continue
        paths.append(image_path), boxes.append(annotation.boxes), sizes.append(size)
        classes.append(annotation.labels), stems.append(stem)
    return _source(paths, boxes, classes, class_names, _numeric_ids(stems), sizes, skipped,
                   dropped, f"{voc_root} split {split!r}")


def load_bccd_detection(data_root: str | os.PathLike) -> dict[str, DetectionSource]:
    """BCCD's {"train", "val", "test"} splits (205 / 87 / 72 images), classes `BCCD_CLASSES`;
    the two zero-area boxes (images 00338 and 00343) are in `dropped_boxes`."""
    voc_root = bccd_root(data_root)
    return {split: load_voc_detection(voc_root, split, BCCD_CLASSES) for split in SPLITS}


def _image_files(images_dir: Path) -> list[Path]:
    if not images_dir.is_dir():
        raise FileNotFoundError(f"Images folder not found: {images_dir}.")
    return sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _parse_yolo_line(path: Path, number: int, line: str, num_classes: int) -> tuple[int, list]:
    where, tokens = f"{path}:{number}", line.split()
    if len(tokens) != 5:
        raise ValueError(f"{where}: expected 5 values 'class cx cy w h'; received "
                         f"{len(tokens)}: {line.strip()!r}.")
    try:
        label, values = int(tokens[0]), [float(t) for t in tokens[1:]]
    except ValueError:
        raise ValueError(f"{where}: expected an integer class and 4 numbers; received "
                         f"{line.strip()!r}.") from None
    if not 0 <= label < num_classes:
        raise ValueError(f"{where}: class {label} out of range; expected 0..{num_classes - 1}.")
    if not all(math.isfinite(v) and -0.5 <= v <= 1.5 for v in values) or min(values[2:]) < 0:
        raise ValueError(f"{where}: expected normalised cx cy w h (0..1, w and h >= 0); "
                         f"received {values} (pixel coordinates?).")
    return label, values


def load_yolo_txt(images_dir: str | os.PathLike, labels_dir: str | os.PathLike,
                  class_names: Sequence[str]) -> DetectionSource:
    """Images in `images_dir` with `labels_dir/<stem>.txt` lines `class cx cy w h`
    (normalised to the image size); an image without a label file has no boxes."""
    images_dir, labels_dir = Path(images_dir), Path(labels_dir)
    paths, boxes, classes, sizes, stems, skipped, dropped = [], [], [], [], [], [], []
    for image_path in _image_files(images_dir):
        size, reason = _probe(image_path)
        if reason is not None:
            skipped.append({"path": str(image_path), "reason": reason})
            continue
        label_path = labels_dir / f"{image_path.stem}.txt"
        rows = []
        if label_path.is_file():
            rows = [_parse_yolo_line(label_path, number, line, len(class_names))
                    for number, line in enumerate(label_path.read_text().splitlines(), 1)
                    if line.strip()]
        height, width = size
        normalised = np.array([values for _, values in rows], np.float32).reshape(-1, 4)
        pixels = box_ops.cxcywh_to_xyxy(normalised) * np.float32([width, height] * 2)
        kept, keep = _clip_or_drop(label_path, pixels, height, width, dropped)
        paths.append(image_path), boxes.append(kept), sizes.append(size)
        classes.append(np.array([label for label, _ in rows], np.int32)[keep])
        stems.append(image_path.stem)
    return _source(paths, boxes, classes, class_names, _numeric_ids(stems), sizes, skipped,
                   dropped, str(images_dir))


def _field(record: dict, key: str, where: str, expected: str):
    if not isinstance(record, dict) or key not in record:
        raise ValueError(f"{where} is missing '{key}'; expected {expected}.")
    return record[key]


def load_coco_json(images_dir: str | os.PathLike,
                   annotation_json: str | os.PathLike) -> DetectionSource:
    """A COCO detection json: category ids map to class indices in sorted id order, class
    names come from the categories, boxes from `bbox` [x, y, w, h]; `iscrowd` boxes are
    dropped (listed); image ids are the COCO ids."""
    images_dir, json_path = Path(images_dir), Path(annotation_json)
    try:
        data = json.loads(json_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{json_path}: not valid JSON ({error}); expected a COCO file.") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(_field(data, key, str(json_path), "a list"), list):
            raise ValueError(f"{json_path}: '{key}' is {type(data[key]).__name__}; expected a list.")
    categories = sorted((_field(c, "id", f"{json_path}: categories[{i}]", "an integer id"),
                         str(_field(c, "name", f"{json_path}: categories[{i}]", "a name")))
                        for i, c in enumerate(data["categories"]))
    index_of = {category_id: index for index, (category_id, _) in enumerate(categories)}
    images = {}
    for i, record in enumerate(data["images"]):
        where = f"{json_path}: images[{i}]"
        image_id = _field(record, "id", where, "an integer image id")
        images[image_id] = (str(_field(record, "file_name", where, "a file name")), record, [])
    for i, record in enumerate(data["annotations"]):
        where = f"{json_path}: annotations[{i}]"
        image_id = _field(record, "image_id", where, "the id of an entry in 'images'")
        category = _field(record, "category_id", where, f"one of {sorted(index_of)}")
        bbox = _field(record, "bbox", where, "[x, y, width, height] in pixels")
        if image_id not in images:
            raise ValueError(f"{where}: image_id {image_id!r} is not in 'images'.")
        if category not in index_of:
            raise ValueError(f"{where}: category_id {category!r}; expected one of "
                             f"{sorted(index_of)}.")
        if (not isinstance(bbox, list) or len(bbox) != 4
                or not all(isinstance(v, int | float) and math.isfinite(v) for v in bbox)):
            raise ValueError(f"{where}: bbox is {bbox!r}; expected [x, y, width, height].")
        images[image_id][2].append((index_of[category], bbox, bool(record.get("iscrowd", 0))))
    paths, boxes, classes, sizes, ids, skipped, dropped = [], [], [], [], [], [], []
    for image_id, (file_name, record, objects) in images.items():
        image_path = images_dir / file_name
        size, reason = _probe(image_path)
        stated = (record.get("height"), record.get("width"))
        if size is not None and None not in stated and tuple(stated) != size:
            reason = f"image is {size[1]}x{size[0]} but the json says {stated[1]}x{stated[0]}"
        if reason is not None:
            skipped.append({"path": str(image_path), "reason": f"{reason}; {len(objects)} boxes lost"})
            continue
        dropped.extend({"path": str(image_path), "box": [x, y, x + w, y + h], "reason": "iscrowd"}
                       for _, (x, y, w, h), crowd in objects if crowd)
        objects = [obj for obj in objects if not obj[2]]
        xywh = np.array([bbox for _, bbox, _ in objects], np.float32).reshape(-1, 4)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        kept, keep = _clip_or_drop(image_path, xyxy, *size, dropped)
        paths.append(image_path), boxes.append(kept), sizes.append(size), ids.append(image_id)
        classes.append(np.array([label for label, _, _ in objects], np.int32)[keep])
    return _source(paths, boxes, classes, [name for _, name in categories], ids, sizes,
                   skipped, dropped, str(json_path))
