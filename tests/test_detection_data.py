"""Detection data layer: box utilities, ops checked against drawn pixels, loaders, pipeline."""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines import boxes as box_ops
from pipelines.builder import train_dataset
from pipelines.datasets.detection import (
    DetectionSource,
    load_bccd_detection,
    load_coco_json,
    load_voc_detection,
    load_yolo_txt,
)
from pipelines.detection_ops import (
    HSVJitter,
    Letterbox,
    Mosaic,
    MosaicSource,
    PadBoxes,
    RandomAffine,
    RandomFlip,
    to_fit_tuple,
)

COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]], np.int16)


def _data_root() -> Path:
    return Path(os.environ.get("KTS_DATA") or Path(__file__).resolve().parents[1].parent
                / "shared" / "data")


def _drawn(height: int, width: int, boxes, classes=None) -> dict:
    """A black image with each box filled in its class colour (integer pixel boxes)."""
    classes = list(range(len(boxes))) if classes is None else classes
    image = np.zeros((height, width, 3), np.uint8)
    for (x0, y0, x1, y1), label in zip(boxes, classes, strict=True):
        image[y0:y1, x0:x1] = COLOURS[label]
    return {"image": image, "boxes": np.array(boxes, np.float32).reshape(-1, 4),
            "classes": np.array(classes, np.int32), "image_id": np.int32(7)}


def _pixel_box(image: np.ndarray, label: int) -> np.ndarray | None:
    """The box enclosing the pixels of `label`'s colour (at least half coverage)."""
    mask = np.abs(image.astype(np.int16) - COLOURS[label]).max(axis=-1) < 128
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return np.array([columns[0], rows[0], columns[-1] + 1, rows[-1] + 1], np.float32)


def _assert_boxes_match_pixels(element: dict, tolerance: float = 2.0) -> None:
    assert element["boxes"].dtype == np.float32 and element["classes"].dtype == np.int32
    for box, label in zip(element["boxes"], element["classes"], strict=True):
        pixels = _pixel_box(element["image"], int(label))
        assert pixels is not None, f"class {label}: box {box} but no pixels of its colour"
        np.testing.assert_allclose(box, pixels, atol=tolerance, err_msg=f"class {label}")


def test_box_utilities():
    a = np.array([[0, 0, 10, 10], [5, 5, 15, 25]], np.float32)
    np.testing.assert_allclose(box_ops.area(a), [100, 200])
    np.testing.assert_allclose(box_ops.cxcywh_to_xyxy(box_ops.xyxy_to_cxcywh(a)), a)
    np.testing.assert_allclose(box_ops.iou_matrix(a, a[:1]), [[1.0], [25 / 275]], rtol=1e-6)
    np.testing.assert_allclose(box_ops.hflip(a, 20), [[10, 0, 20, 10], [5, 5, 15, 25]])
    np.testing.assert_allclose(box_ops.clip(a, 20, 12), [[0, 0, 10, 10], [5, 5, 12, 20]])
    assert box_ops.valid_mask([[0, 0, 0.5, 4], [0, 0, 1, 1]]).tolist() == [False, True]
    np.testing.assert_allclose(box_ops.affine(a[:1], [[2, 0, 1], [0, 3, -1]]), [[1, -1, 21, 29]])
    assert box_ops.iou_matrix(np.zeros((0, 4)), a).shape == (0, 2)
    with pytest.raises(ValueError, match=r"received shape \(3,\)"):
        box_ops.area([1, 2, 3])


@pytest.mark.parametrize("shape, size", [((480, 640), 320), ((150, 100), 256)])
def test_letterbox_boxes_follow_pixels_and_invert(shape, size):
    original = [[30, 20, 90, 70], [5, 100, 60, 140]]
    element = Letterbox(size)(_drawn(*shape, original))
    assert element["image"].shape == (size, size, 3)
    _assert_boxes_match_pixels(element)
    scale, pad_x, pad_y = element["letterbox"]
    back = (element["boxes"] - np.float32([pad_x, pad_y] * 2)) / scale
    np.testing.assert_allclose(back, original, atol=1e-3)
    assert element["orig_size"].tolist() == list(shape)
    again = Letterbox(size)(element)  # already letterboxed: the record composes (no-op here)
    np.testing.assert_allclose(again["letterbox"], element["letterbox"])


def test_flip_and_affine_boxes_follow_pixels():
    element = _drawn(200, 300, [[40, 30, 100, 80], [150, 120, 260, 190], [10, 150, 30, 170]])
    flipped = RandomFlip(probability=1.0)(element, np.random.default_rng(0))
    _assert_boxes_match_pixels(flipped)
    assert RandomFlip(probability=0.0)(element, np.random.default_rng(0)) is element
    kept = 0
    for seed in range(8):
        out = RandomAffine(scale=(0.5, 1.5), translate=0.2)(element, np.random.default_rng(seed))
        assert out["image"].shape == element["image"].shape
        _assert_boxes_match_pixels(out)
        kept += len(out["boxes"])
    assert kept > 8  # most boxes survive; dropped ones are checked by the 20% rule below


def test_affine_drops_boxes_pushed_out():
    element = _drawn(100, 100, [[0, 0, 10, 10], [40, 40, 60, 60]])
    rng = np.random.default_rng(0)
    out = RandomAffine(scale=(1.5, 1.5), translate=0.0)(element, rng)
    # the corner box scaled about the centre lands at [-25, -25, -10, -10]: dropped
    assert out["classes"].tolist() == [1]
    np.testing.assert_allclose(out["boxes"], [[35, 35, 65, 65]], atol=1e-4)


def _tile_source():
    shapes = [(480, 640), (640, 480), (300, 300), (200, 500)]
    return [_drawn(h, w, [[w // 4, h // 4, w // 4 + w // 3, h // 4 + h // 3]], [label])
            for label, (h, w) in enumerate(shapes)]


def test_mosaic_boxes_follow_pixels():
    tiles, mosaic = _tile_source(), Mosaic(_tile_source(), 256)
    total = 0
    for seed in range(6):
        centre_x, centre_y = np.random.default_rng(seed).integers(128, 384, 2)
        out = mosaic.combine(tiles, int(centre_x), int(centre_y))
        assert out["image"].shape == (256, 256, 3) and out["image_id"] == 7
        _assert_boxes_match_pixels(out)
        total += len(out["boxes"])
    assert total >= 8
    out = mosaic.combine(tiles, 256, 256)  # the first tile (192x256) fills the top-left quadrant
    assert (out["image"][:128, :128] != 114).all() and (out["image"][:128, 128:] != 114).all()


def test_mosaic_probability_and_source():
    tiles = _tile_source()
    plain = Mosaic(tiles, 128, probability=0.0)(tiles[0], np.random.default_rng(0))
    np.testing.assert_array_equal(plain["image"], Letterbox(128)(tiles[0])["image"])
    source = MosaicSource(tiles, 128, seed=3)
    first, again = source[1], source[1]
    np.testing.assert_array_equal(first["image"], again["image"])
    _assert_boxes_match_pixels(first)
    closed = source.with_probability(0.0)
    assert source.probability == 1.0 and closed.probability == 0.0
    np.testing.assert_array_equal(closed[2]["image"], Letterbox(128)(tiles[2])["image"])
    with pytest.raises(IndexError):
        source[4]


@pytest.mark.parametrize("op", [RandomFlip(), RandomAffine(), HSVJitter(),
                                Mosaic(_tile_source(), 128)], ids=lambda op: type(op).__name__)
def test_random_ops_are_deterministic_for_a_generator(op):
    element = Letterbox(160)(_tile_source()[0])
    outputs = [op(element, np.random.default_rng(seed)) for seed in (5, 5, 6, 7, 8)]
    np.testing.assert_array_equal(outputs[0]["image"], outputs[1]["image"])
    np.testing.assert_array_equal(outputs[0]["boxes"], outputs[1]["boxes"])
    assert any(not np.array_equal(outputs[0]["image"], o["image"]) for o in outputs[2:])


def test_hsv_jitter_keeps_shape_and_boxes():
    element = Letterbox(64)(_tile_source()[2])
    out = HSVJitter(hue=0.5, saturation=0.9, value=0.9)(element, np.random.default_rng(1))
    assert out["image"].shape == (64, 64, 3) and out["image"].dtype == np.uint8
    assert out["boxes"] is element["boxes"]
    assert not np.array_equal(out["image"], element["image"])


def test_pad_boxes_keeps_the_largest_and_counts_the_rest():
    sides = [3, 10, 1, 8, 5]
    element = {"boxes": np.array([[0, 0, s, s] for s in sides], np.float32),
               "classes": np.arange(5, dtype=np.int32)}
    out = PadBoxes(3)(element)
    assert out["classes"].tolist() == [1, 3, 4] and out["truncated"] == 2
    out = PadBoxes(7)(element)
    assert out["boxes"].shape == (7, 4) and out["classes"].tolist() == [0, 1, 2, 3, 4, -1, -1]
    assert out["truncated"] == 0 and not out["boxes"][5:].any()


def test_bccd_splits_and_dropped_boxes():
    root = _data_root()
    if not (root / "bccd").is_dir():
        pytest.skip(f"BCCD not found under {root} (set KTS_DATA)")
    splits = load_bccd_detection(root)
    assert {k: len(v) for k, v in splits.items()} == {"train": 205, "val": 87, "test": 72}
    counts = {k: np.bincount(np.concatenate(v.classes), minlength=3).tolist()
              for k, v in splits.items()}
    assert counts == {"train": [209, 2381, 214], "val": [83, 967, 87], "test": [69, 805, 71]}
    dropped = [Path(d["path"]).stem for v in splits.values() for d in v.dropped_boxes]
    assert sorted(dropped) == ["BloodImage_00338", "BloodImage_00343"]
    assert not any(v.skipped for v in splits.values())
    train = splits["train"]
    element, annotation = train[0], train.annotations(0)
    assert element["image"].shape == (480, 640, 3) and element["image_id"] == 1
    np.testing.assert_array_equal(element["boxes"], annotation["boxes"])
    with pytest.raises(ValueError, match="Platelets"):
        load_voc_detection(root / "bccd" / "BCCD", "train", ["RBC", "WBC"])


def _write_images(folder: Path, sizes: dict[str, tuple[int, int]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (height, width) in sizes.items():
        Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(folder / name)


def test_yolo_txt_loader(tmp_path):
    _write_images(tmp_path / "images", {"a.png": (100, 200), "b.png": (50, 50)})
    (tmp_path / "images" / "c.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text(
        "1 0.5 0.5 0.5 0.2\n\n0 0.95 0.1 0.2 0.2\n0 0.3 0.3 0.0 0.1\n")
    source = load_yolo_txt(tmp_path / "images", tmp_path / "labels", ["x", "y"])
    assert len(source) == 2 and [Path(s["path"]).name for s in source.skipped] == ["c.jpg"]
    np.testing.assert_allclose(source[0]["boxes"], [[50, 40, 150, 60], [170, 0, 200, 20]], atol=1e-4)
    assert source[0]["classes"].tolist() == [1, 0] and len(source[1]["boxes"]) == 0
    assert [d["reason"] for d in source.dropped_boxes] == ["degenerate box (zero or negative area)"]


@pytest.mark.parametrize("line, message", [
    ("1 0.5 0.5 0.2", "expected 5 values"), ("a 0.5 0.5 0.2 0.2", "integer class"),
    ("2 0.5 0.5 0.2 0.2", "class 2 out of range"), ("0 320 240 50 60", "normalised"),
    ("0 0.5 0.5 -0.2 0.2", "normalised")])
def test_yolo_txt_bad_lines_name_the_file_and_line(tmp_path, line, message):
    _write_images(tmp_path / "images", {"a.png": (10, 10)})
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text(f"0 0.5 0.5 0.2 0.2\n{line}\n")
    with pytest.raises(ValueError, match=rf"a\.txt:2: .*{message}"):
        load_yolo_txt(tmp_path / "images", tmp_path / "labels", ["x", "y"])


def _coco(**changes) -> dict:
    data = {"categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
            "images": [{"id": 11, "file_name": "a.png", "height": 100, "width": 200},
                       {"id": 12, "file_name": "missing.png"}],
            "annotations": [{"image_id": 11, "category_id": 7, "bbox": [10, 20, 30, 40]},
                            {"image_id": 11, "category_id": 3, "bbox": [190, 90, 20, 20]},
                            {"image_id": 11, "category_id": 3, "bbox": [0, 0, 5, 5],
                             "iscrowd": 1}]}
    data.update(changes)
    return data


def test_coco_json_loader(tmp_path):
    _write_images(tmp_path, {"a.png": (100, 200)})
    (tmp_path / "ann.json").write_text(json.dumps(_coco()))
    source = load_coco_json(tmp_path, tmp_path / "ann.json")
    assert source.class_names == ["cat", "dog"] and len(source) == 1
    assert source.image_ids.tolist() == [11] and len(source.skipped) == 1
    element = source[0]
    np.testing.assert_allclose(element["boxes"], [[10, 20, 40, 60], [190, 90, 200, 100]])
    assert element["classes"].tolist() == [1, 0] and element["image_id"] == 11
    assert [d["reason"] for d in source.dropped_boxes] == ["iscrowd"]


@pytest.mark.parametrize("changes, message", [
    ({"annotations": [{"image_id": 11, "category_id": 7}]}, r"annotations\[0\] is missing 'bbox'"),
    ({"annotations": [{"image_id": 11, "category_id": 5, "bbox": [0, 0, 1, 1]}]},
     "category_id 5; expected one of"),
    ({"annotations": [{"image_id": 99, "category_id": 7, "bbox": [0, 0, 1, 1]}]}, "image_id 99"),
    ({"images": [{"id": 11}]}, r"images\[0\] is missing 'file_name'"),
    ({"categories": "dog"}, "'categories' is str; expected a list")])
def test_coco_json_bad_fields_name_the_file_and_field(tmp_path, changes, message):
    (tmp_path / "ann.json").write_text(json.dumps(_coco(**changes)))
    with pytest.raises(ValueError, match=rf"ann\.json.*{message}"):
        load_coco_json(tmp_path, tmp_path / "ann.json")


def test_unreadable_image_at_read_time_is_grey_without_boxes(tmp_path, caplog):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"garbage")
    source = DetectionSource([path], [np.array([[1, 1, 5, 5]])], [np.array([0])], ["x"],
                             sizes=[(20, 30)])
    with caplog.at_level(logging.WARNING):
        element = source[0]
    assert element["image"].shape == (20, 30, 3) and (element["image"] == 114).all()
    assert element["boxes"].shape == (0, 4) and "broken.jpg" in caplog.text
    assert source.annotations(0)["boxes"].shape == (1, 4)


def test_grain_pipeline_yields_fixed_shape_batches_and_resumes(tmp_path):
    paths, boxes, classes = [], [], []
    for index, (height, width) in enumerate([(120, 160), (160, 120), (100, 100), (90, 200)]):
        element = _drawn(height, width, [[10, 10, 50, 40], [60, 50, 90, 80]][:1 + index % 2])
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(element["image"]).save(paths[-1])
        boxes.append(element["boxes"]), classes.append(element["classes"])
    source = DetectionSource(paths, boxes, classes, ["a", "b"])
    for op in (Letterbox(32), RandomAffine(), HSVJitter(), PadBoxes(4), Mosaic(source, 32),
               MosaicSource(source, 32)):  # grain worker processes receive pickled ops
        assert type(pickle.loads(pickle.dumps(op))) is type(op)

    def stream(start_step=0):
        return iter(train_dataset(
            source, batch_size=2, seed=0, ops=[Letterbox(320)],
            random_ops=[RandomFlip(), RandomAffine(), HSVJitter(), PadBoxes(8)],
            finalize=to_fit_tuple, start_step=start_step, threads=1, prefetch=1))

    iterator = stream()
    batches = [next(iterator) for _ in range(3)]
    for images, targets in batches:
        assert images.shape == (2, 320, 320, 3) and images.dtype == np.uint8
        assert targets["boxes"].shape == (2, 8, 4) and targets["classes"].shape == (2, 8)
    images, targets = next(stream(start_step=2))
    np.testing.assert_array_equal(images, batches[2][0])
    np.testing.assert_array_equal(targets["boxes"], batches[2][1]["boxes"])
