"""Pascal VOC annotation parsing (one XML per image), shared by classification crops and detection.

Boxes are kept in the file's pixel coordinates as float32 [xmin, ymin, xmax, ymax] (no
1-based shift). Boxes with zero or negative area, or entirely outside the image, are
dropped and reported in `VocAnnotation.dropped`; boxes partly outside are clipped to
[0, width] x [0, height].

A file that is not a readable VOC annotation (not well-formed XML, a missing or
non-numeric field) raises `VocFormatError`, which dataset loaders catch to skip and list
that one sample; an object whose class is not in `class_names` raises a plain ValueError
(a class list that does not match the data is a configuration error, not a bad sample).
"""

from __future__ import annotations

import dataclasses
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_COORDINATES = ("xmin", "ymin", "xmax", "ymax")


class VocFormatError(ValueError):
    """One annotation file cannot be read as VOC (its message names the file and field)."""


@dataclasses.dataclass
class VocAnnotation:
    """One image's annotation.

    `labels` holds class-name strings when parsed without `class_names`, else an int32
    array of indices into `class_names`. `difficult` is a bool array (False when absent).
    `dropped` lists `{"index", "name", "box", "reason"}` for each object not kept.
    """

    filename: str
    width: int
    height: int
    boxes: np.ndarray
    labels: list[str] | np.ndarray
    difficult: np.ndarray
    dropped: list[dict] = dataclasses.field(default_factory=list)


def _text(element: ET.Element, tag: str, xml_path: Path, where: str, expected: str) -> str:
    child = element.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise VocFormatError(f"{xml_path}: {where} is missing <{tag}>; expected {expected}.")
    return child.text.strip()


def _number(text: str, xml_path: Path, field: str, expected: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise VocFormatError(f"{xml_path}: {field} is {text!r}; expected {expected}.") from None


def _size(root: ET.Element, xml_path: Path) -> tuple[int, int]:
    size = root.find("size")
    if size is None:
        raise VocFormatError(
            f"{xml_path}: <annotation> is missing <size>; expected <width> and <height>."
        )
    dims = []
    for tag in ("width", "height"):
        expected = "a positive integer pixel count"
        value = _number(
            _text(size, tag, xml_path, "<size>", expected), xml_path, f"<{tag}>", expected
        )
        if value <= 0 or value != int(value):
            raise VocFormatError(f"{xml_path}: <{tag}> is {value:g}; expected {expected}.")
        dims.append(int(value))
    return dims[0], dims[1]


def parse_voc_xml(
    xml_path: str | os.PathLike, class_names: Sequence[str] | None = None
) -> VocAnnotation:
    """Parses one VOC XML file; raises VocFormatError (a ValueError) naming the file and field
    on a malformed or unreadable file, ValueError for a class not in `class_names`."""
    xml_path = Path(xml_path)
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as error:
        raise VocFormatError(
            f"{xml_path}: not well-formed XML ({error}); expected a VOC <annotation>."
        ) from None
    except OSError as error:
        raise VocFormatError(
            f"{xml_path}: cannot read the annotation ({type(error).__name__}: {error})."
        ) from None
    filename = _text(root, "filename", xml_path, "<annotation>", "the image file name")
    width, height = _size(root, xml_path)
    index_of = None if class_names is None else {name: i for i, name in enumerate(class_names)}

    boxes, names, difficult, dropped = [], [], [], []
    for index, obj in enumerate(root.findall("object")):
        where = f"<object> #{index}"
        name = _text(obj, "name", xml_path, where, "a class name")
        if index_of is not None and name not in index_of:
            raise ValueError(
                f"{xml_path}: {where} has <name> {name!r}; expected one of {list(index_of)}."
            )
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise VocFormatError(
                f"{xml_path}: {where} is missing <bndbox>; expected four pixel coordinates."
            )
        expected = "a number of pixels"
        box = [
            _number(
                _text(bndbox, tag, xml_path, f"{where} <bndbox>", "four pixel coordinates"),
                xml_path,
                f"{where} <{tag}>",
                expected,
            )
            for tag in _COORDINATES
        ]
        xmin, ymin, xmax, ymax = box
        reason = None
        if xmax <= xmin or ymax <= ymin:
            reason = f"degenerate box {box} (zero or negative area)"
        elif xmax <= 0 or ymax <= 0 or xmin >= width or ymin >= height:
            reason = f"box {box} entirely outside the {width}x{height} image"
        if reason is not None:
            dropped.append({"index": index, "name": name, "box": box, "reason": reason})
            continue
        boxes.append([max(xmin, 0.0), max(ymin, 0.0), min(xmax, width), min(ymax, height)])
        names.append(name)
        flag = obj.find("difficult")
        difficult.append(flag is not None and (flag.text or "0").strip() == "1")

    labels: list[str] | np.ndarray = names
    if index_of is not None:
        labels = np.array([index_of[name] for name in names], dtype=np.int32)
    return VocAnnotation(
        filename=filename,
        width=width,
        height=height,
        boxes=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        labels=labels,
        difficult=np.array(difficult, dtype=bool),
        dropped=dropped,
    )


def read_imageset(voc_root: str | os.PathLike, split: str) -> list[str]:
    """Image ids listed in `<voc_root>/ImageSets/Main/<split>.txt` (first token per line)."""
    folder = Path(voc_root) / "ImageSets" / "Main"
    path = folder / f"{split}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in folder.glob("*.txt")) if folder.is_dir() else []
        raise FileNotFoundError(f"VOC split file not found: {path}; available splits: {available}.")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
