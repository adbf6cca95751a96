"""Classification end to end through the CLI, as a user runs it, on the smoke preset."""

import json

import numpy as np
import pytest
from PIL import Image

from shared.cli import main
from shared.testing import check_model, run_cli, train_killed_then_resumed

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_root):
    workdir = tmp_path_factory.mktemp("cls") / "run"
    assert run_cli("classification", "run", workdir, "--preset", "smoke",
                   data_root=data_root) == 0
    return workdir


def test_run_writes_every_artifact(smoke_run):
    for name in ("config.json", "model.keras", "training.json", "timings.json",
                 "logs/history.csv", "checkpoints/backup/epoch-0004/training_metadata.json",
                 "evaluation/results.json", "report/report.json", "report/index.html",
                 "report/confusion_matrix.png", "report/training_curves.png"):
        assert (smoke_run / name).exists(), name
    report = json.loads((smoke_run / "report/report.json").read_text())
    assert 0.0 <= report["metrics"]["test accuracy"] <= 1.0
    assert report["environment"]["backend"] in ("tensorflow", "jax")
    index = (smoke_run.parent / "reports" / "index.html").read_text()
    assert "classification" in index


def test_smoke_training_learns(smoke_run):
    history = json.loads((smoke_run / "report/report.json").read_text())
    results = json.loads((smoke_run / "evaluation/results.json").read_text())
    assert results["num_samples"] == 359  # the whole fixed digits test split
    assert results["accuracy"] > 0.6, "four epochs on digits should beat chance (0.1) clearly"
    assert history["config"]["model"]["name"] == "lenet5"


def test_saved_model_agrees_with_keras(smoke_run):
    pytest.importorskip("tensorflow")
    check = json.loads((smoke_run / "export/export_check.json").read_text())
    assert check["max_abs_difference"] < 1e-4
    import tensorflow as tf

    serve = tf.saved_model.load(str(smoke_run / "export/saved_model")).signatures[
        "serving_default"]
    out = serve(images=tf.zeros((2, 40, 30, 1), tf.uint8))  # any size: resized in the graph
    assert out["probabilities"].shape == (2, 10)
    assert out["class_names"].dtype == tf.string


def test_predict_on_image_files(smoke_run, tmp_path, capsys):
    paths = []
    for i in range(2):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(np.full((20, 20), 40 * i, np.uint8)).save(path)
        paths.append(str(path))
    assert run_cli("classification", "predict", smoke_run, *paths, "--out",
                   str(tmp_path / "out")) == 0
    predictions = json.loads((tmp_path / "out/predictions.json").read_text())
    assert len(predictions) == 2 and len(predictions[0]["top"]) == 5


def test_predict_on_a_broken_file_names_it(smoke_run, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_text("not an image")
    code = main(["classification", "predict", str(bad), "--workdir", str(smoke_run)])
    assert code == 2
    assert "broken.png: not a readable image" in capsys.readouterr().err


def test_resume_after_a_kill_is_exact(tmp_path, data_root, monkeypatch):
    """Kill training after epoch 1; `--resume` must end with the same weights as a run that
    was never interrupted (weights, optimizer, augmentation RNG and pipeline position)."""
    import keras

    import tasks.classification.layers  # noqa: F401 - registers the custom layers

    args = ("--preset", "smoke", "--set", "train.epochs=3", "--set", "augment.translate=0.1",
            "--set", "data.limit=96")
    train_killed_then_resumed("classification", tmp_path, args, monkeypatch, data_root)

    straight = keras.models.load_model(tmp_path / "straight/model.keras")
    resumed = keras.models.load_model(tmp_path / "killed/model.keras")
    for a, b in zip(straight.weights, resumed.weights, strict=True):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-6, err_msg=a.path)
    history = (tmp_path / "killed/logs/history.csv").read_text().strip().splitlines()
    assert len(history) == 1 + 3  # header + three epochs across the two processes


def test_model_harness_on_the_classifier(tmp_path):
    import keras

    from tasks.classification.models import build_classifier

    model = build_classifier("lenet5", (16, 16, 1), 4)
    model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 16, 16, 1)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 8)]
    check_model(model, x, y, tmp_path)


@pytest.mark.parametrize("argv, message", [
    (["classification", "train", "--preset", "nope"], "Unknown preset 'nope'"),
    (["classification", "train", "--preset", "smoke", "--set", "train.epocs=1"],
     "has no field 'epocs'"),
    (["classification", "train", "--preset", "olivetti", "--data-root", "/nonexistent"],
     "/nonexistent/olivetti-faces"),
    (["classification", "evaluate", "--workdir", "/nonexistent/run"], "No trained model"),
    (["classification", "train", "--preset", "smoke", "--set", "data.source=folder",
      "--set", "data.path=/nonexistent/images"], "--set data.path=PATH"),
    (["nosuchtask", "train"], "Unknown task or command"),
])
def test_user_errors_are_one_clear_line(argv, message, capsys, tmp_path):
    if "--workdir" not in argv:
        argv = argv + ["--workdir", str(tmp_path / "w")]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_augmentation_runs_only_when_training():
    """Keras' random layers default to training=True; ours must be identity unless told."""
    from tasks.classification.config import AugmentConfig
    from tasks.classification.models import build_classifier
    from tasks.classification.training import augmentation_layers

    augmentation = augmentation_layers(AugmentConfig(flip=True, translate=0.2, zoom=0.2), 0)
    model = build_classifier("lenet5", (16, 16, 1), 3, augmentation=augmentation)
    x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 1)).astype(np.float32)
    plain = np.array(model(x))
    np.testing.assert_allclose(plain, np.array(model(x, training=False)), atol=1e-6)
    assert np.abs(np.array(augmentation(x, training=True)) - x).max() > 1.0


def test_transfer_learning_freezes_then_fine_tunes(smoke_run, tmp_path, data_root):
    """Backbone weights from an earlier run: during the frozen phase the backbone stays
    exactly the loaded one (BatchNorm statistics too); fine-tuning then moves it."""
    import keras

    import tasks.classification.layers  # noqa: F401 - registers the custom layers

    def backbone(model):
        return [np.array(w) for w in model.get_layer("backbone").weights]

    source = keras.models.load_model(smoke_run / "model.keras")
    assert run_cli("classification", "run", tmp_path / "tl", "--preset", "smoke",
                   "--set", f"model.weights={smoke_run / 'model.keras'}",
                   "--set", "model.freeze_epochs=1", "--set", "train.epochs=2",
                   data_root=data_root) == 0
    frozen = (tmp_path / "tl/logs/frozen/history.csv").read_text().strip().splitlines()
    tuned = (tmp_path / "tl/logs/fine_tune/history.csv").read_text().strip().splitlines()
    assert len(frozen) == 2 and len(tuned) == 2  # header + one epoch each

    final = keras.models.load_model(tmp_path / "tl/model.keras")
    after_frozen_phase = keras.models.load_model(tmp_path / "tl/model.keras")
    after_frozen_phase.load_weights(tmp_path / "tl/checkpoints/frozen/backup/epoch-0001/model.weights.h5")
    for loaded, original in zip(backbone(after_frozen_phase), backbone(source), strict=True):
        np.testing.assert_array_equal(loaded, original)  # frozen means untouched, BN too
    assert any(not np.allclose(a, b) for a, b in zip(backbone(final), backbone(source),
                                                      strict=True)), "fine-tuning changed nothing"


def test_flip_tta_averages_the_image_and_its_mirror():
    from tasks.classification.evaluation import predict_probabilities, softmax

    class RowLogits:  # logits = the pixels of the first row, so a mirror reverses them
        def predict_on_batch(self, images):
            return images[:, 0, :, 0]

    images = np.array([[[[0.0], [1.0], [3.0]]]], np.float32)  # (1, 1, 3, 1)
    stream = [(images, np.eye(3, dtype=np.float32)[[2]], np.ones(1, np.float32))]
    averaged, plain, labels = predict_probabilities(RowLogits(), stream, tta_flip=True)
    np.testing.assert_allclose(plain, softmax(np.array([[0.0, 1.0, 3.0]])), rtol=1e-6)
    expected = 0.5 * (softmax(np.array([[0.0, 1.0, 3.0]])) + softmax(np.array([[3.0, 1.0, 0.0]])))
    np.testing.assert_allclose(averaged, expected, rtol=1e-6)
    assert labels.tolist() == [2]


def test_training_curves_caption_says_what_is_plotted():
    from tasks.classification.reporting import curves_caption

    train_only = {"loss": [1.0, 0.5], "accuracy": [0.5, 0.8],
                  "val_loss": [float("nan")] * 2}  # a CSV "NA" column is no validation curve
    assert "training data only" in curves_caption(train_only)
    assert "validation" not in curves_caption(train_only).split("only")[0]
    with_val = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}
    assert "validation (dashed" in curves_caption(with_val)


def test_predict_names_a_missing_input(smoke_run, tmp_path, capsys):
    code = main(["classification", "predict", str(tmp_path / "nowhere.png"),
                 "--workdir", str(smoke_run)])
    assert code == 2
    assert f"Input image not found: {tmp_path / 'nowhere.png'}" in capsys.readouterr().err
