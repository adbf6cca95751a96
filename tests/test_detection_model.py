"""Tests for the YOLOv8-style detector (small inputs; TensorFlow and JAX)."""

import math

import keras
import numpy as np
import pytest

from tasks.detection.model import STRIDES, VARIANTS, build_backbone, build_detector, num_anchors

pytestmark = pytest.mark.backend  # `make test` runs these again under JAX

IMAGE_SIZE = 160  # A = 400 + 100 + 25 = 525
NUM_CLASSES = 3
REG_MAX = 16
CHANNELS = 4 * REG_MAX + NUM_CLASSES


def random_images(image_size: int, batch_size: int = 2) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype("float32")


def numpy(tensor) -> np.ndarray:
    return keras.ops.convert_to_numpy(tensor)


@pytest.fixture(scope="module")
def detector() -> keras.Model:
    return build_detector("n", NUM_CLASSES, IMAGE_SIZE, REG_MAX)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return random_images(IMAGE_SIZE)


@pytest.fixture(scope="module")
def outputs(detector, images) -> list[np.ndarray]:
    """[predictions, P3, P4, P5 head outputs (B, h, w, 4 * reg_max + C)] from one forward pass.

    `predict_on_batch` compiles the whole graph once, which under JAX is much faster than
    an eager call (one compilation per op).
    """
    level_outputs = [detector.get_layer(f"head_p{level}_concat").output for level in (3, 4, 5)]
    probe = keras.Model(detector.input, [detector.output, *level_outputs])
    return [np.asarray(output) for output in probe.predict_on_batch(images)]


def test_num_anchors():
    assert num_anchors(320) == 2100
    assert num_anchors(640) == 8400
    assert num_anchors(IMAGE_SIZE) == 525


def test_output_shape_dtype_and_level_layout(detector, outputs):
    assert detector.input.shape == (None, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert detector.input.name == "image"
    predictions, *levels = outputs
    assert predictions.shape == (2, 525, CHANNELS)
    assert predictions.dtype == np.float32
    # Levels in stride order 8, 16, 32, each (B, h, w, C) flattened row-major.
    start = 0
    for stride, level in zip(STRIDES, levels):
        cells = IMAGE_SIZE // stride
        assert level.shape == (2, cells, cells, CHANNELS)
        np.testing.assert_array_equal(predictions[:, start : start + cells * cells], level.reshape(2, -1, CHANNELS))
        start += cells * cells


def test_output_shape_320():
    model = build_detector("n", NUM_CLASSES, 320, REG_MAX)
    assert model.output.shape == (None, 2100, CHANNELS)


def test_parameter_count_matches_yolov8n():
    model = build_detector("n", num_classes=80, image_size=640)
    assert model.output.shape == (None, 8400, 4 * 16 + 80)
    trainable = sum(math.prod(weight.shape) for weight in model.trainable_weights)
    # ultralytics YOLOv8n: 3,157,200 parameters, 16 of them the fixed DFL conv (not here).
    assert trainable == 3_157_200 - 16
    assert abs(model.count_params() - 3.15e6) / 3.15e6 < 0.02  # + BN moving statistics


def test_initial_class_probabilities_are_small(detector, outputs):
    class_logits = outputs[0][..., 4 * REG_MAX :]
    assert 1 / (1 + math.exp(-float(class_logits.mean()))) < 0.01
    for stride in STRIDES:
        level = stride.bit_length() - 1
        class_bias = numpy(detector.get_layer(f"head_p{level}_class_logits").bias)
        expected = math.log(5 / NUM_CLASSES / (IMAGE_SIZE / stride) ** 2)
        np.testing.assert_allclose(class_bias, expected, rtol=1e-6)
        np.testing.assert_array_equal(numpy(detector.get_layer(f"head_p{level}_box_logits").bias), 1.0)


def test_output_is_float32_under_mixed_bfloat16():
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_detector("n", NUM_CLASSES, 64, REG_MAX)
        assert model.get_layer("backbone").get_layer("stem_conv").compute_dtype == "bfloat16"
        assert model.output.dtype == "float32"
        predictions = model.predict_on_batch(random_images(64, batch_size=1))
        assert predictions.dtype == np.float32
        assert predictions.shape == (1, 84, CHANNELS)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def test_save_and_load_give_equal_outputs(detector, images, outputs, tmp_path):
    path = tmp_path / "detector.keras"
    detector.save(path)
    restored = keras.saving.load_model(path)
    assert restored.output.shape == detector.output.shape
    np.testing.assert_allclose(restored.predict_on_batch(images), outputs[0], rtol=1e-5, atol=1e-5)


def test_backbone_weights_are_loaded(tmp_path):
    backbone = build_backbone("n", 64)
    p3, p4, p5 = backbone.outputs
    assert (p3.shape[1:], p4.shape[1:], p5.shape[1:]) == ((8, 8, 64), (4, 4, 128), (2, 2, 256))
    path = str(tmp_path / "backbone.weights.h5")
    backbone.save_weights(path)
    # Weights do not depend on the image size: a 64 px backbone loads into a 160 px detector.
    model = build_detector("n", NUM_CLASSES, IMAGE_SIZE, REG_MAX, backbone_weights=path)
    for loaded, saved in zip(model.get_layer("backbone").weights, backbone.weights):
        np.testing.assert_array_equal(numpy(loaded), numpy(saved))
    with pytest.raises(FileNotFoundError):
        build_detector("n", NUM_CLASSES, IMAGE_SIZE, REG_MAX, backbone_weights=str(tmp_path / "missing.weights.h5"))


def test_invalid_arguments_are_rejected():
    assert set(VARIANTS) == {"n", "s", "m"}
    with pytest.raises(ValueError, match="Unknown variant"):
        build_detector("x")
    with pytest.raises(ValueError, match="image_size=100"):
        build_detector("n", image_size=100)
    with pytest.raises(ValueError, match="num_classes"):
        build_detector("n", num_classes=0, image_size=64)
