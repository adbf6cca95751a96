"""Reliability: bad and odd inputs (issue 23, items 3, 4, 8 and 9). Each test reproduces one
probe that used to pass silently or fail obscurely:

- a truncated JPEG is skipped and listed when a dataset is indexed (not served as a test
  sample with weight 0);
- a folder dataset with one class is refused, naming the folder;
- one malformed VOC XML skips its sample (listed) instead of rejecting the dataset;
- a large image is downscaled when read (boxes scaled with it);
- the SavedModels convert image channels in the graph (or refuse clearly), return empty
  outputs for a batch of 0, and `translate` refuses empty rows and out-of-range ids.

The data is made by the tests; the SavedModel tests share one short training run per task.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.datasets.bccd import BCCD_CLASSES, load_bccd_cells
from pipelines.datasets.detection import DetectionSource, load_voc_detection
from pipelines.datasets.folder import load_image_folder
from pipelines.images import bounded_size, read_image
from pipelines.sources import FileSource

# ---------------------------------------------------------------- data made by the tests


def write_jpeg(path: Path, height: int = 48, width: int = 64, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    Image.fromarray(pixels).save(path, quality=95)
    return path


def write_truncated_jpeg(path: Path, height: int = 48, width: int = 64) -> Path:
    """A JPEG whose header is intact and whose scan data stops halfway (a cut download)."""
    data = write_jpeg(path, height, width, seed=7).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with Image.open(path) as image:  # the header-only check the loaders used to rely on
        image.verify()
    return path


VOC_XML = """<annotation><filename>{stem}.jpg</filename>
<size><width>{width}</width><height>{height}</height><depth>3</depth></size>
<object><name>RBC</name><bndbox><xmin>4</xmin><ymin>6</ymin><xmax>30</xmax><ymax>28</ymax>
</bndbox></object></annotation>"""


def make_voc(root: Path, stems: list[str], height: int = 48, width: int = 64) -> Path:
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for index, stem in enumerate(stems):
        write_jpeg(root / "JPEGImages" / f"{stem}.jpg", height, width, seed=index)
        (root / "Annotations" / f"{stem}.xml").write_text(
            VOC_XML.format(stem=stem, width=width, height=height))
    for split in ("train", "val", "test"):
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(stems) + "\n")
    return root


# ---------------------------------------------------------------- item 3: truncated images


def test_truncated_jpeg_in_folder_is_skipped_and_reaches_the_skipped_list(tmp_path):
    from tasks.classification.config import ClassificationConfig, DataConfig
    from tasks.classification.data import load_splits

    for split, count in (("train", 3), ("test", 2)):
        for name in ("cat", "dog"):
            for i in range(count):
                write_jpeg(tmp_path / split / name / f"{i}.jpg", seed=i)
    cut = write_truncated_jpeg(tmp_path / "test" / "dog" / "cut.jpg")

    test = load_image_folder(tmp_path)["test"]
    assert str(cut) not in test.paths and len(test) == 4
    assert [s["path"] for s in test.skipped] == [str(cut)]
    assert "truncated" in test.skipped[0]["reason"]
    assert all(test[i]["weight"] == 1.0 for i in range(len(test)))

    config = ClassificationConfig()
    config.data = DataConfig(source="folder", path=str(tmp_path), image_size=16, val_fraction=0)
    splits = load_splits(config, tmp_path)
    assert len(splits.test) == 4  # the cut file is not counted as a test sample
    assert splits.skipped == [{"split": "test", **test.skipped[0]}]  # the report's table


def test_truncated_jpeg_in_voc_detection_is_skipped(tmp_path):
    root = make_voc(tmp_path / "voc", ["a_1", "a_2", "a_3"])
    write_truncated_jpeg(root / "JPEGImages" / "a_2.jpg")
    source = load_voc_detection(root, "train", BCCD_CLASSES)
    assert [Path(p).name for p in source.paths] == ["a_1.jpg", "a_3.jpg"]
    assert len(source.skipped) == 1 and source.skipped[0]["path"].endswith("a_2.jpg")
    assert "truncated" in source.skipped[0]["reason"] and "1 boxes lost" in source.skipped[0]["reason"]


# ---------------------------------------------------------------- item 9: datasets


def test_folder_with_one_class_is_refused_naming_the_folder(tmp_path):
    for i in range(3):
        write_jpeg(tmp_path / "only" / "cat" / f"{i}.jpg", seed=i)
    with pytest.raises(ValueError, match="at least two classes") as info:
        load_image_folder(tmp_path / "only")
    assert str(tmp_path / "only") in str(info.value) and "'cat'" in str(info.value)


@pytest.mark.parametrize("xml", ["<annotation><filename>x.jpg</filename", "not xml at all",
                                 "<annotation><filename>b.jpg</filename></annotation>"])
def test_one_malformed_voc_xml_skips_its_sample_only(tmp_path, xml):
    root = make_voc(tmp_path / "bccd" / "BCCD", ["img_1", "img_2", "img_3"])
    bad = root / "Annotations" / "img_2.xml"
    bad.write_text(xml)

    detection = load_voc_detection(root, "train", BCCD_CLASSES)
    assert [Path(p).stem for p in detection.paths] == ["img_1", "img_3"]
    assert [s["path"] for s in detection.skipped] == [str(bad)]
    assert "expected" in detection.skipped[0]["reason"]

    cells = load_bccd_cells(tmp_path, crop_size=8)["train"]  # the same tree as crops
    assert len(cells) == 2 and [s["path"] for s in cells.skipped] == [str(bad)]


def test_voc_split_with_every_annotation_malformed_is_refused(tmp_path):
    root = make_voc(tmp_path / "voc", ["x_1", "x_2"])
    for stem in ("x_1", "x_2"):
        (root / "Annotations" / f"{stem}.xml").write_text("<annotation>")
    with pytest.raises(ValueError, match="none of its 2 samples could be used"):
        load_voc_detection(root, "train", BCCD_CLASSES)


def test_large_images_are_downscaled_when_read(tmp_path):
    big = write_jpeg(tmp_path / "big" / "a" / "0.jpg", height=1200, width=1600)
    write_jpeg(tmp_path / "big" / "b" / "0.jpg", height=40, width=30)
    assert bounded_size(8000, 8000, 2048) == (2048, 2048)  # the default bound: 12 MB, not 192
    assert read_image(big, "RGB", None).shape == (1200, 1600, 3)

    train = load_image_folder(tmp_path / "big", max_side=200)["train"]
    assert isinstance(train, FileSource)
    assert train[0]["image"].shape == (150, 200, 3)  # longer side at the bound, aspect kept
    assert train[1]["image"].shape == (40, 30, 3)  # small images untouched
    assert load_image_folder(tmp_path / "big", channels=1, max_side=200)["train"][0][
        "image"].shape == (150, 200, 1)

    # Detection: the boxes are scaled with the pixels, and every view of the sample agrees.
    boxes = np.float32([[400, 300, 800, 900]])
    source = DetectionSource([big], [boxes], [np.int32([0])], ["x"], sizes=[(1200, 1600)],
                             max_side=400)
    element = source[0]
    assert element["image"].shape == (300, 400, 3) and source.sizes == [(300, 400)]
    np.testing.assert_allclose(element["boxes"], [[100, 75, 200, 225]])
    np.testing.assert_allclose(source.annotations(0)["boxes"], element["boxes"])
    again = source.subset([0])  # already scaled: not scaled twice
    assert again[0]["image"].shape == (300, 400, 3)
    np.testing.assert_allclose(again[0]["boxes"], element["boxes"])


# ---------------------------------------------------------------- items 4 and 8: SavedModels


def _tensorflow():
    return pytest.importorskip("tensorflow")


def _serve(workdir: Path, signature: str):
    tf = _tensorflow()
    loaded = tf.saved_model.load(str(workdir / "export" / "saved_model"))
    return loaded, loaded.signatures[signature]


def _train_and_export(task: str, workdir: Path, *args: str, data_root=None) -> Path:
    from shared.testing import run_cli

    _tensorflow()
    assert run_cli(task, "train", workdir, *args, data_root=data_root) == 0
    assert run_cli(task, "export", workdir, data_root=data_root) == 0
    return workdir


@pytest.fixture(scope="module")
def classification_export(tmp_path_factory, data_root):
    """The smoke preset (digits: 1-channel images) for one epoch, exported."""
    return _train_and_export("classification", tmp_path_factory.mktemp("cls") / "run",
                             "--preset", "smoke", "--set", "train.epochs=1", data_root=data_root)


@pytest.fixture(scope="module")
def detection_export(tmp_path_factory, data_root):
    """The smoke preset cut to one step at 64 px, exported (plumbing, not accuracy)."""
    return _train_and_export("detection", tmp_path_factory.mktemp("det") / "run",
                             "--preset", "smoke", "--set", "train.epochs=1",
                             "--set", "data.repeat=1", "--set", "data.image_size=64",
                             "--set", "train.jit_compile=false", data_root=data_root)


@pytest.fixture(scope="module")
def seq2seq_export(tmp_path_factory):
    from tests.test_seq2seq_task import TINY

    return _train_and_export("seq2seq", tmp_path_factory.mktemp("s2s") / "run", *TINY)


def _refusal(serve, message: str, **inputs) -> str:
    tf = _tensorflow()
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        serve(**inputs)
    assert message in str(info.value)
    return str(info.value)


@pytest.mark.backend
def test_classification_savedmodel_converts_channels_and_serves_empty_batches(
        classification_export):
    _loaded, serve = _serve(classification_export, "serving_default")
    grey = np.random.default_rng(0).integers(0, 256, (3, 20, 24, 1), np.uint8)
    rgb = np.repeat(grey, 3, axis=-1)
    rgba = np.concatenate([rgb, np.full_like(grey, 255)], axis=-1)
    expected = serve(images=grey)["probabilities"].numpy()
    for image in (rgb, rgba):  # the same picture in other layouts: the same answer
        np.testing.assert_allclose(serve(images=image)["probabilities"].numpy(), expected,
                                   atol=1e-6)
    _refusal(serve, "received channels:] [2]", images=np.zeros((1, 20, 24, 2), np.uint8))
    _refusal(serve, "at least one row and one column", images=np.zeros((1, 0, 24, 1), np.uint8))

    for empty in (np.zeros((0, 20, 24, 3), np.uint8), np.zeros((0, 0, 0, 1), np.uint8)):
        out = serve(images=empty)
        assert out["probabilities"].shape == (0, 10) and out["probabilities"].dtype.name == "float32"
        assert out["class_ids"].shape == (0,) and out["scores"].shape == (0,)
        assert out["class_names"].shape == (0,)


@pytest.mark.backend
@pytest.mark.slow  # ~90 s on 2 CPU cores: one training step and the export, traced
def test_detection_savedmodel_converts_channels_and_serves_empty_batches(detection_export):
    _loaded, serve = _serve(detection_export, "serving_default")
    rgb = np.random.default_rng(0).integers(0, 256, (2, 50, 70, 3), np.uint8)
    full = serve(images=rgb)
    np.testing.assert_allclose(
        serve(images=np.concatenate([rgb, np.full_like(rgb[..., :1], 255)], -1))["scores"],
        full["scores"], atol=1e-6)
    grey = rgb[..., :1]
    np.testing.assert_allclose(serve(images=grey)["scores"],
                               serve(images=np.repeat(grey, 3, -1))["scores"], atol=1e-6)
    _refusal(serve, "received channels:] [2]", images=np.zeros((1, 20, 20, 2), np.uint8))

    out = serve(images=np.zeros((0, 50, 70, 3), np.uint8))
    keep = full["boxes"].shape[1]
    assert out["boxes"].shape == (0, keep, 4) and out["scores"].shape == (0, keep)
    assert out["classes"].shape == (0, keep) and out["class_names"].shape == (0, keep)
    assert out["num_detections"].shape == (0,)


@pytest.mark.backend
def test_seq2seq_translate_refuses_bad_ids_and_serves_empty_batches(seq2seq_export):
    import json

    _loaded, translate = _serve(seq2seq_export, "translate")
    info = json.loads((seq2seq_export / "export" / "translate.json").read_text())
    eos, max_length = info["special_ids"]["eos"], info["max_length"]
    good = translate(source_ids=np.int32([[5, 6, 7, eos]]))
    assert good["tokens"].shape == (1, max_length)

    _refusal(translate, "must lie in [0, ", source_ids=np.int32([[5, -5, eos]]))
    _refusal(translate, "must lie in [0, ", source_ids=np.int32([[5, 10**6, eos]]))
    _refusal(translate, "rows of no tokens", source_ids=np.zeros((1, 0), np.int32))
    for empty in (np.zeros((0, 4), np.int32), np.zeros((0, 0), np.int32)):
        out = translate(source_ids=empty)
        assert out["tokens"].shape == (0, max_length) and out["tokens"].dtype.name == "int32"
        assert out["lengths"].shape == (0,) and out["scores"].shape == (0,)
