"""Detection end to end through the CLI on the `smoke` preset itself (4 BCCD images, about a
minute of training): the plumbing, and the issue's check that loss, assigner and decoding
agree (mAP@0.5 > 0.9 on the training images, platelets included)."""

import json

import numpy as np
import pytest
from PIL import Image

from shared.testing import run_cli

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_root):
    workdir = tmp_path_factory.mktemp("det") / "run"
    assert run_cli("detection", "run", workdir, "--preset", "smoke", data_root=data_root) == 0
    return workdir


def test_run_writes_every_artifact(smoke_run):
    for name in ("config.json", "model.keras", "training.json", "logs/history.csv",
                 "evaluation/results.json", "evaluation/detections.json",
                 "report/report.json", "report/index.html", "report/confusion_matrix.png",
                 "report/examples.png"):
        assert (smoke_run / name).exists(), name
    results = json.loads((smoke_run / "evaluation/results.json").read_text())
    assert 0.0 <= results["map50"] <= 1.0 and results["images"] == 4
    assert set(results["speed_ms_per_image"]) >= {"preprocess", "model", "nms"}
    history = (smoke_run / "logs/history.csv").read_text()
    assert "box_loss" in history and "dfl_loss" in history


def test_smoke_history_has_the_epoch_validation_map_that_tune_maximises(smoke_run):
    import math

    from shared.training import read_history
    from tasks.detection import TASK

    history = read_history(smoke_run / "logs/history.csv")
    assert TASK.tune_metric == "val_map50" and TASK.tune_direction == "maximize"
    assert len(history["val_map50"]) == 10 and all(math.isfinite(v) for v in history["val_map50"])
    assert all(0.0 <= v <= a <= 1.0 for v, a in zip(history["val_map"], history["val_map50"]))
    training = json.loads((smoke_run / "training.json").read_text())
    assert training["epoch_metric"] == "8 images of the val split"
    results = json.loads((smoke_run / "evaluation/results.json").read_text())
    assert TASK.tune_test_key in results  # the best trial's test score for the study report


def test_smoke_run_overfits_its_training_images(smoke_run):
    results = json.loads((smoke_run / "evaluation/results.json").read_text())
    assert results["split"] == "train"
    ap50 = {row["class"]: row["ap50"] for row in results["per_class"]}
    assert results["map50"] > 0.9, (results["map50"], ap50)
    assert ap50["Platelets"] > 0.5, ap50  # small objects: 0.0 before `box_weight_floor`


def test_saved_model_with_nms_agrees_with_keras(smoke_run):
    tf = pytest.importorskip("tensorflow")
    check = json.loads((smoke_run / "export/export_check.json").read_text())
    assert check["max_abs_difference"] < 1e-2
    serve = tf.saved_model.load(str(smoke_run / "export/saved_model"))
    out = serve.signatures["serving_default"](images=tf.zeros((1, 300, 400, 3), tf.uint8))
    assert out["boxes"].shape[-1] == 4 and out["class_names"].dtype == tf.string
    boxes = out["boxes"].numpy()
    assert boxes[..., [0, 2]].max() <= 400 and boxes[..., [1, 3]].max() <= 300  # input pixels


def test_predict_writes_annotated_images(smoke_run, tmp_path):
    image = tmp_path / "cells.png"
    Image.fromarray(np.full((120, 200, 3), 200, np.uint8)).save(image)
    assert run_cli("detection", "predict", smoke_run, str(image), "--out",
                   str(tmp_path / "out")) == 0
    assert (tmp_path / "out/cells.png").exists()
    assert json.loads((tmp_path / "out/detections.json").read_text())[0]["path"] == str(image)


def test_smoke_report_says_it_is_scored_on_training_images(smoke_run):
    report = json.loads((smoke_run / "report/report.json").read_text())
    assert report["metrics"]["scored on"] == "its own 4 training images (not held out)"
    assert "training images" in report["title"]


def test_demo_preset_is_scored_on_held_out_test_images(data_root):
    from tasks.detection import data as data_lib
    from tasks.detection.config import demo

    config = demo()
    assert (config.data.evaluate_on, config.data.eval_limit) == ("test", 0)
    splits = data_lib.load_splits(config, data_root)
    assert len(splits["train"]) == 8 and len(splits["eval"]) == 72  # every BCCD test image
    assert not set(splits["train"].paths) & set(splits["eval"].paths)


def test_epoch_metric_images_are_never_trained_on_nor_scored(data_root, monkeypatch):
    from shared.config import ConfigError, apply_overrides
    from tasks.detection import data as data_lib
    from tasks.detection.config import smoke

    bccd = data_lib.datasets.load_bccd_detection(data_root)  # parsed once (load_splits copies)
    monkeypatch.setattr(data_lib.datasets, "load_bccd_detection", lambda root: dict(bccd))

    def splits(*overrides):
        return data_lib.load_splits(apply_overrides(smoke(), list(overrides)), data_root)

    def disjoint(result):
        used = set(result["train"].paths) | set(result["eval"].paths)
        return not used & set(result["epoch"].paths)

    default = splits()
    assert len(default["epoch"]) == 8 and disjoint(default)
    assert default["epoch_note"] == "8 images of the val split"
    for overrides in (["data.evaluate_on=val"], ["data.train_on=train+val"]):
        result = splits(*overrides)  # the val split is scored or trained on: no metric on it
        assert result["epoch"] is None and "data.holdout=N" in result["epoch_note"], overrides
    assert splits("eval.epoch_images=0")["epoch"] is None
    held = splits("data.evaluate_on=val", "data.limit=0", "data.holdout=6")
    assert len(held["epoch"]) == 6 and len(held["train"]) == 205 - 6 and disjoint(held)
    assert held["epoch_note"] == "6 of the 6 training images held out (data.holdout)"
    again = splits("data.evaluate_on=val", "data.limit=0", "data.holdout=6")
    assert held["epoch"].paths == again["epoch"].paths  # seeded
    assert splits("data.holdout=6", "seed=1")["epoch"].paths != held["epoch"].paths
    with pytest.raises(ConfigError, match="data.holdout=205 leaves no training images"):
        splits("data.holdout=205")


def test_the_report_names_the_images_it_was_scored_on():
    from tasks.detection.reporting import scored_on

    assert scored_on("test", 72) == "72 held-out test images"
    assert "not held out" in scored_on("train", 4)
