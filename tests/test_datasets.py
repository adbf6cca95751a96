"""Dataset loaders: real data from the data root (skipped if absent) and small files made here."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.datasets.bccd import BCCD_CLASSES, load_bccd_cells
from pipelines.datasets.digits import load_digits
from pipelines.datasets.folder import load_image_folder
from pipelines.datasets.npz import load_npz
from pipelines.datasets.olivetti import load_olivetti, load_olivetti_arrays
from pipelines.datasets.tfds import TfdsSource, load_tfds
from pipelines.datasets.voc import parse_voc_xml, read_imageset
from pipelines.sources import (
    ArraySource,
    FileSource,
    stratified_split,
    verify_image_files,
)

DATA_ROOT = Path(
    os.environ.get("KTS_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)


def needs(relative: str) -> Path:
    path = DATA_ROOT / relative
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set KTS_DATA)")
    return DATA_ROOT


def check_element(element: dict, channels: int) -> None:
    assert set(element) == {"image", "label", "weight"}
    assert element["image"].dtype == np.uint8 and element["image"].ndim == 3
    assert element["image"].shape[-1] == channels
    assert element["label"].dtype == np.int32 and element["label"].shape == ()
    assert element["weight"].dtype == np.float32 and element["weight"].shape == ()


# ---- sources -------------------------------------------------------------------------


def test_array_source_contract_and_subset():
    images = np.arange(5 * 4 * 4 * 3, dtype=np.uint8).reshape(5, 4, 4, 3)
    source = ArraySource(images, [0, 1, 2, 1, 0], ["a", "b", "c"])
    assert len(source) == 5 and source.num_classes == 3 and source.labels.dtype == np.int32
    check_element(source[4], 3)
    assert source[-1]["label"] == 0 and source[0]["weight"] == 1.0
    part = source.subset([3, 1])
    assert isinstance(part, ArraySource) and part.labels.tolist() == [1, 1]
    np.testing.assert_array_equal(part[0]["image"], images[3])
    with pytest.raises(IndexError):
        source[5]
    with pytest.raises(ValueError, match="uint8"):
        ArraySource(images.astype(np.float32), [0] * 5, ["a"])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        ArraySource(images, [0, 1, 2, 3, 0], ["a", "b", "c"])


def test_stratified_split_is_deterministic_and_stratified():
    labels = np.repeat([0, 1, 2], [10, 20, 30])
    first, second = stratified_split(labels, 0.2, seed=3)
    again = stratified_split(labels, 0.2, seed=3)
    np.testing.assert_array_equal(first, again[0])
    assert np.bincount(labels[second]).tolist() == [2, 4, 6]
    assert sorted(np.concatenate([first, second]).tolist()) == list(range(60))
    assert not np.array_equal(second, stratified_split(labels, 0.2, seed=4)[1])


# ---- small files made by the tests ---------------------------------------------------


def write_image(path: Path, color: tuple[int, int, int], size=(12, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def write_noise_jpeg(path: Path, size: int = 64) -> Path:
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)
    return path


def test_verify_and_file_source_handle_bad_files(tmp_path, caplog):
    good = write_image(tmp_path / "good.png", (10, 20, 30))
    jpeg = write_noise_jpeg(tmp_path / "full.jpg")
    data = jpeg.read_bytes()
    header_cut = tmp_path / "header_cut.jpg"
    header_cut.write_bytes(data[:20])
    pixels_cut = tmp_path / "pixels_cut.jpg"  # valid header, truncated scan data
    pixels_cut.write_bytes(data[: len(data) // 2])
    text = tmp_path / "note.png"
    text.write_text("not an image")
    paths = [str(good), str(header_cut), str(text), str(tmp_path / "missing.png"), str(pixels_cut)]

    good_indices, skipped = verify_image_files(paths)  # decodes fully: truncation is caught
    assert [s["path"] for s in skipped] == [str(header_cut), str(text), paths[3], str(pixels_cut)]
    assert all(s["reason"] for s in skipped)
    assert good_indices == [0]

    # A file that goes bad after indexing still never stops a run: weight 0 at read time.
    source = FileSource([str(good), str(pixels_cut)], [0, 1], ["x", "y"], channels=1)
    check_element(source[0], 1)
    assert source[0]["image"].shape == (10, 12, 1) and source[0]["weight"] == 1.0
    with caplog.at_level(logging.WARNING):
        bad = source[1]
    check_element(bad, 1)
    assert bad["weight"] == 0.0 and bad["image"].shape == (1, 1, 1) and bad["label"] == 1
    assert str(pixels_cut) in caplog.text


def make_class_folders(root: Path, counts: dict[str, int]) -> None:
    for index, (name, count) in enumerate(counts.items()):
        for i in range(count):
            write_image(root / name / f"{i}.jpg", (40 * index, 2 * i, 100))


def test_image_folder_single_split_with_val_and_corrupt_files(tmp_path):
    make_class_folders(tmp_path, {"cat": 10, "dog": 10})
    (tmp_path / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 garbage")
    (tmp_path / "cat" / "readme.png").write_text("text, not a picture")
    (tmp_path / "cat" / "notes.txt").write_text("ignored: not an image extension")

    splits = load_image_folder(tmp_path, val_fraction=0.2, seed=1)
    assert set(splits) == {"train", "val"}
    train, val = splits["train"], splits["val"]
    assert train.class_names == ["cat", "dog"] and val.class_names == ["cat", "dog"]
    assert np.bincount(train.labels).tolist() == [8, 8] and np.bincount(val.labels).tolist() == [
        2,
        2,
    ]
    assert sorted(Path(s["path"]).name for s in train.skipped) == ["broken.jpg", "readme.png"]
    assert not set(train.paths) & set(val.paths)
    check_element(train[0], 3)
    again = load_image_folder(tmp_path, val_fraction=0.2, seed=1)["val"]
    assert again.paths == val.paths
    grey = load_image_folder(tmp_path, channels=1)["train"]
    assert len(grey) == 20 and grey[0]["image"].shape == (10, 12, 1)


def test_image_folder_split_layout(tmp_path):
    make_class_folders(tmp_path / "train", {"a": 3, "b": 2, "c": 2})
    make_class_folders(tmp_path / "test", {"a": 1, "c": 2})
    splits = load_image_folder(tmp_path)
    assert set(splits) == {"train", "test"}
    assert splits["test"].class_names == ["a", "b", "c"]
    assert splits["test"].labels.tolist() == [0, 2, 2]


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_image_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class folders"):
        load_image_folder(tmp_path / "empty")
    make_class_folders(tmp_path / "one", {"a": 2})
    (tmp_path / "one" / "b").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        load_image_folder(tmp_path / "one")
    make_class_folders(tmp_path / "split" / "train", {"a": 2, "b": 1})
    make_class_folders(tmp_path / "split" / "test", {"a": 1, "zebra": 1})
    with pytest.raises(ValueError, match="'zebra' is not in the train classes"):
        load_image_folder(tmp_path / "split")
    make_class_folders(tmp_path / "notrain" / "test", {"a": 1})
    with pytest.raises(ValueError, match="no train/"):
        load_image_folder(tmp_path / "notrain")


def test_npz_float_unit_range_and_grey(tmp_path):
    path = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.random((6, 5, 5)),
        y_train=np.array([0, 1, 2, 0, 1, 2]),
        x_test=np.ones((2, 5, 5)),
        y_test=np.array([[1], [2]]),
        class_names=np.array(["r", "g", "b"]),
    )
    splits = load_npz(path)
    assert set(splits) == {"train", "test"}
    assert splits["train"].images.shape == (6, 5, 5, 1) and splits["train"].class_names == [
        "r",
        "g",
        "b",
    ]
    assert splits["test"].images.max() == 255 and splits["test"].labels.tolist() == [1, 2]
    check_element(splits["train"][0], 1)


def test_npz_uint8_and_0_255_floats(tmp_path):
    pixels = np.arange(2 * 3 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3, 3)
    np.savez(tmp_path / "u8.npz", x_train=pixels, y_train=np.array([0, 3]))
    np.savez(tmp_path / "f.npz", x_train=pixels.astype(np.float32), y_train=np.array([0.0, 3.0]))
    for name in ("u8.npz", "f.npz"):
        train = load_npz(tmp_path / name)["train"]
        np.testing.assert_array_equal(train.images, pixels)
        assert train.class_names == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"y_train": np.zeros(2)}, "missing key 'x_train'"),
        (
            {"x_train": np.zeros((2, 4, 4)), "y_train": np.zeros(2), "x_test": np.zeros((1, 4, 4))},
            "'y_test'",
        ),
        ({"x_train": np.zeros((2, 4)), "y_train": np.zeros(2)}, r"shape \(2, 4\)"),
        ({"x_train": np.zeros((2, 4, 4, 4)), "y_train": np.zeros(2)}, "C in"),
        ({"x_train": np.zeros((2, 4, 4)), "y_train": np.zeros(3)}, r"expected \(2,\)"),
        ({"x_train": np.full((2, 4, 4), 300.0), "y_train": np.zeros(2)}, r"\[0, 1\] or \[0, 255\]"),
        ({"x_train": np.zeros((2, 4, 4)), "y_train": np.array([0.5, 1])}, "integer labels"),
        (
            {
                "x_train": np.zeros((2, 4, 4)),
                "y_train": np.array([0, 2]),
                "class_names": np.array(["a"]),
            },
            "class_names has 1",
        ),
    ],
)
def test_npz_errors(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message) as info:
        load_npz(path)
    assert str(path) in str(info.value)


VOC_XML = """<annotation><filename>img.jpg</filename>
<size><width>100</width><height>80</height><depth>3</depth></size>{objects}</annotation>"""
VOC_OBJECT = (
    "<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>{box}</bndbox></object>"
)


def voc_object(name: str, box, difficult: int = 0) -> str:
    coords = "".join(
        f"<{tag}>{v}</{tag}>" for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True)
    )
    return VOC_OBJECT.format(name=name, box=coords, difficult=difficult)


def test_parse_voc_xml_clips_and_drops(tmp_path):
    path = tmp_path / "a.xml"
    objects = [
        voc_object("cell", (10, 10, 20, 30)),
        voc_object("dot", (-5, 70, 30, 95), difficult=1),  # partly outside: clipped
        voc_object("cell", (50, 50, 50, 60)),  # zero area: dropped
        voc_object("cell", (120, 10, 150, 30)),  # outside: dropped
    ]
    path.write_text(VOC_XML.format(objects="".join(objects)))
    annotation = parse_voc_xml(path)
    assert (annotation.filename, annotation.width, annotation.height) == ("img.jpg", 100, 80)
    assert annotation.boxes.dtype == np.float32
    np.testing.assert_array_equal(annotation.boxes, [[10, 10, 20, 30], [0, 70, 30, 80]])
    assert annotation.labels == ["cell", "dot"] and annotation.difficult.tolist() == [False, True]
    assert [d["index"] for d in annotation.dropped] == [2, 3]
    assert "zero or negative area" in annotation.dropped[0]["reason"]
    ids = parse_voc_xml(path, class_names=["dot", "cell"]).labels
    assert ids.dtype == np.int32 and ids.tolist() == [1, 0]


@pytest.mark.parametrize(
    "xml, message",
    [
        (
            VOC_XML.format(objects=voc_object("cell", (1, 2, 3, 4))).replace(
                "<filename>img.jpg</filename>", ""
            ),
            "missing <filename>",
        ),
        (VOC_XML.format(objects="").replace("<width>100</width>", ""), "missing <width>"),
        (
            VOC_XML.format(objects=voc_object("cell", (1, 2, 3, 4)).replace("<xmin>1</xmin>", "")),
            "<bndbox> is missing <xmin>",
        ),
        (VOC_XML.format(objects=voc_object("cell", ("abc", 2, 3, 4))), "<xmin> is 'abc'"),
        (VOC_XML.format(objects=voc_object("horse", (1, 2, 3, 4))), "'horse'; expected one of"),
        ("<annotation><filename>", "not well-formed XML"),
    ],
)
def test_parse_voc_xml_errors(tmp_path, xml, message):
    path = tmp_path / "bad.xml"
    path.write_text(xml)
    with pytest.raises(ValueError, match=message) as info:
        parse_voc_xml(path, class_names=["cell"])
    assert str(path) in str(info.value)


def test_read_imageset(tmp_path):
    main = tmp_path / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("img_1\nimg_2  1\n\n")
    assert read_imageset(tmp_path, "train") == ["img_1", "img_2"]
    with pytest.raises(FileNotFoundError, match=r"available splits: \['train'\]"):
        read_imageset(tmp_path, "test")


def test_tfds_not_prepared(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(FileNotFoundError, match="not prepared") as info:
        load_tfds("mnist", tmp_path)
    assert str(tmp_path) in str(info.value) and "tfds build mnist" in str(info.value)
    with pytest.raises(ValueError, match="no dataset named"):
        load_tfds("no_such_dataset_kts", tmp_path)


def test_missing_data_root_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="KTS_DATA"):
        load_olivetti(tmp_path)
    with pytest.raises(FileNotFoundError, match="KTS_DATA"):
        load_bccd_cells(tmp_path)


# ---- real data -----------------------------------------------------------------------


def test_digits_split():
    splits = load_digits()
    train, test = splits["train"], splits["test"]
    assert len(train) + len(test) == 1797 and (len(train), len(test)) == (1438, 359)
    assert train.class_names == [str(d) for d in range(10)]
    assert train.images.shape[1:] == (8, 8, 1) and train.images.max() == 255
    check_element(test[0], 1)
    assert np.all(np.abs(np.bincount(test.labels) / np.bincount(train.labels) - 0.25) < 0.02)
    np.testing.assert_array_equal(load_digits()["test"].images, test.images)


def test_olivetti_real():
    root = needs("olivetti-faces/olivettifaces.mat")
    images, labels = load_olivetti_arrays(root)
    assert images.shape == (400, 64, 64, 1) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [10] * 40
    # Upright: the forehead/hair (top rows) differs from the chin (bottom rows) consistently;
    # a same-person pair correlates more than a different-person pair (see SOURCE.md).
    flat = images.reshape(400, -1).astype(np.float64)
    corr = np.corrcoef(flat)
    same = corr[labels[:, None] == labels[None, :]].mean()
    assert same > corr[labels[:, None] != labels[None, :]].mean() + 0.1
    splits = load_olivetti(root)
    assert [len(splits["train"]), len(splits["test"])] == [200, 200]
    assert np.bincount(splits["train"].labels).tolist() == [5] * 40
    again = load_olivetti(root)["train"]
    np.testing.assert_array_equal(again.images, splits["train"].images)
    assert not np.array_equal(load_olivetti(root, seed=1)["train"].images, again.images)
    check_element(splits["test"][0], 1)


def test_bccd_voc_real():
    root = needs("bccd/BCCD")
    voc_root = root / "bccd" / "BCCD"
    ids = {split: read_imageset(voc_root, split) for split in ("train", "val", "test")}
    assert [len(v) for v in ids.values()] == [205, 87, 72]
    dropped = parse_voc_xml(voc_root / "Annotations" / "BloodImage_00338.xml", BCCD_CLASSES).dropped
    assert [d["box"] for d in dropped] == [[504.0, 337.0, 504.0, 337.0]]


def test_bccd_cells_real():
    root = needs("bccd/BCCD")
    start = time.perf_counter()
    splits = load_bccd_cells(root, crop_size=32)
    assert time.perf_counter() - start < 30
    counts = sum(np.bincount(s.labels, minlength=3) for s in splits.values())
    assert dict(zip(BCCD_CLASSES, counts.tolist(), strict=True)) == {
        "Platelets": 361,
        "RBC": 4155 - 2,
        "WBC": 372,
    }
    assert [len(s) for s in splits.values()] == [2804, 1137, 945]
    skipped = [s["path"] for split in splits.values() for s in split.skipped]
    assert sorted(Path(p).stem for p in skipped) == ["BloodImage_00338", "BloodImage_00343"]
    for split in splits.values():
        assert split.class_names == list(BCCD_CLASSES) and split.images.shape[1:] == (32, 32, 3)
        check_element(split[0], 3)


@pytest.fixture(scope="module")
def tiny_tfds_builder_class():
    """A 9-example TFDS builder, defined once (TFDS registers builder classes by name)."""
    tfds = pytest.importorskip("tensorflow_datasets")

    class KtsTinyShapes(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = {
                "image": tfds.features.Image(shape=(8, 8, 3)),
                "label": tfds.features.ClassLabel(names=["dark", "light"]),
            }
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict(features)
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(6), "test": self._generate_examples(3)}

        def _generate_examples(self, count):
            for i in range(count):
                yield i, {"image": np.full((8, 8, 3), 10 * i, np.uint8), "label": i % 2}

    return KtsTinyShapes


@pytest.mark.slow
@pytest.mark.parametrize("file_format", ["array_record", "tfrecord"])
def test_tfds_tiny_prepared_dataset(tmp_path, tiny_tfds_builder_class, file_format):
    """Prepares the tiny dataset offline; array_record is read lazily, tfrecord into memory."""
    tiny_tfds_builder_class(data_dir=str(tmp_path), file_format=file_format).download_and_prepare()
    splits = load_tfds("kts_tiny_shapes", tmp_path)
    assert [len(splits["train"]), len(splits["test"])] == [6, 3]
    expected_type = TfdsSource if file_format == "array_record" else ArraySource
    for split in splits.values():
        assert isinstance(split, expected_type) and split.class_names == ["dark", "light"]
        for index in range(len(split)):
            element = split[index]
            check_element(element, 3)
            assert element["label"] == (int(element["image"][0, 0, 0]) // 10) % 2
    part = splits["train"].subset([4, 1])
    assert part.labels.tolist() == splits["train"].labels[[4, 1]].tolist()
