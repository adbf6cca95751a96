"""Tests for the image-classification model zoo (tiny inputs; TensorFlow and JAX)."""

import warnings

import keras
import numpy as np
import pytest

from tasks.classification.models import (
    BACKBONES,
    build_backbone,
    build_classifier,
    preprocessing_layer,
    set_backbone_trainable,
)

pytestmark = pytest.mark.backend  # `make test` runs these again under JAX

NUM_CLASSES = 10  # the same everywhere, so JAX compiles each head initializer once
# Smallest sensible input and width per backbone. Widths are shared between tests on
# purpose: under JAX, initialising a variable of a new shape costs a compilation, so
# reusing shapes (not shrinking widths) is what keeps this file fast.
SMALL_CONFIGS = {
    "lenet5": ((8, 8, 1), 1.0),
    "resnet20": ((8, 8, 3), 1.0),
    "resnet32": ((8, 8, 3), 1.0),
    "resnet56": ((8, 8, 3), 1.0),
    "resnet18": ((8, 8, 3), 1.0),
    "resnet34": ((8, 8, 3), 1.0),
    "resnet50": ((32, 32, 3), 1.0),
    "mobilenetv2": ((32, 32, 3), 0.35),
}


def random_images(input_shape: tuple[int, int, int], batch_size: int = 2) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (batch_size, *input_shape)).astype("float32")


def numpy(tensor) -> np.ndarray:
    return keras.ops.convert_to_numpy(tensor)


@pytest.fixture
def restore_dtype_policy():
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


def test_small_configs_cover_every_backbone():
    assert sorted(SMALL_CONFIGS) == sorted(BACKBONES)


@pytest.mark.parametrize("name", sorted(SMALL_CONFIGS))
def test_every_backbone_gives_float32_logits(name):
    input_shape, width_multiplier = SMALL_CONFIGS[name]
    model = build_classifier(name, input_shape, NUM_CLASSES, dropout_rate=0.1, width_multiplier=width_multiplier)
    backbone = model.get_layer("backbone")
    assert len(backbone.output.shape) == 4
    assert model.layers[0].name == "image"
    # predict_on_batch: one compiled graph, much faster than op-by-op JAX dispatch.
    logits = model.predict_on_batch(random_images(input_shape))
    assert tuple(logits.shape) == (2, NUM_CLASSES)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert np.all(np.isfinite(numpy(logits)))


def test_feature_map_shapes():
    # ResNet-18 stem: CIFAR (3x3 stride 1, overall stride 8) up to 64x64, else ImageNet
    # (7x7/2 conv + 3x3/2 max-pool, overall stride 32).
    assert tuple(build_backbone("resnet18", (32, 32, 3)).output.shape[1:]) == (4, 4, 512)
    assert tuple(build_backbone("resnet18", (72, 72, 3)).output.shape[1:]) == (3, 3, 512)
    # LeNet-5: 28 -> 14 -> 10 -> 5 (the classic 16x5x5), and 8 -> 4 -> 4 ("same") -> 2.
    assert tuple(build_backbone("lenet5", (28, 28, 1)).output.shape[1:]) == (5, 5, 16)
    assert tuple(build_backbone("lenet5", (8, 8, 1)).output.shape[1:]) == (2, 2, 16)
    assert tuple(build_backbone("resnet20", (32, 32, 3)).output.shape[1:]) == (8, 8, 64)


def test_mixed_bfloat16_still_gives_float32_logits(restore_dtype_policy):
    keras.config.set_dtype_policy("mixed_bfloat16")
    for name in ("lenet5", "resnet20"):
        input_shape, _ = SMALL_CONFIGS[name]
        model = build_classifier(name, input_shape, NUM_CLASSES)
        assert model.get_layer("backbone").compute_dtype == "bfloat16"
        logits = model.predict_on_batch(random_images(input_shape))
        assert keras.backend.standardize_dtype(logits.dtype) == "float32"


def count_trainable(model: keras.Model) -> int:
    return sum(int(np.prod(variable.shape)) for variable in model.trainable_weights)


def test_parameter_counts():
    # CIFAR ResNet-18 (3x3 stem, NUM_CLASSES = 10): 11,173,962 trainable, as in the usual
    # PyTorch implementation; Keras also counts the 2 x 4,800 BN moving statistics.
    resnet18 = build_classifier("resnet18", (32, 32, 3), NUM_CLASSES)
    assert count_trainable(resnet18) == 11_173_962
    assert resnet18.count_params() == 11_173_962 + 2 * 4_800
    # CIFAR ResNet-20 with projection shortcuts: 0.27M, as in He et al. 2016, table 6.
    resnet20 = build_classifier("resnet20", (32, 32, 3), NUM_CLASSES)
    assert count_trainable(resnet20) == 272_474


def test_frozen_backbone_keeps_bn_statistics_and_trains_head():
    input_shape, _ = SMALL_CONFIGS["resnet20"]
    model = build_classifier("resnet20", input_shape, NUM_CLASSES)
    backbone = model.get_layer("backbone")
    images = random_images(input_shape, batch_size=8)
    labels = np.arange(8) % NUM_CLASSES

    set_backbone_trainable(model, False)
    # Keras 3 convention: BatchNormalization with trainable=False runs in inference
    # mode even when called with training=True.
    np.testing.assert_allclose(
        numpy(backbone(images / 255.0, training=True)),
        numpy(backbone(images / 255.0, training=False)),
        rtol=1e-5,
        atol=1e-5,
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    backbone_before = [numpy(variable) for variable in backbone.weights]
    head_before = numpy(model.get_layer("logits").kernel)
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    for before, variable in zip(backbone_before, backbone.weights):
        np.testing.assert_array_equal(before, numpy(variable), err_msg=variable.path)
    assert not np.allclose(head_before, numpy(model.get_layer("logits").kernel))

    set_backbone_trainable(model, True)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    moving_mean = backbone.get_layer("stem_bn").moving_mean
    moving_mean_before = numpy(moving_mean)
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    assert not np.allclose(moving_mean_before, numpy(moving_mean))


@pytest.mark.parametrize("file_name", ["backbone.weights.h5", "classifier.keras"])
def test_backbone_weights_round_trip(tmp_path, file_name):
    input_shape, _ = SMALL_CONFIGS["resnet20"]
    source = build_classifier("resnet20", input_shape, NUM_CLASSES)
    rng = np.random.default_rng(1)
    for variable in source.get_layer("backbone").non_trainable_weights:  # BN statistics
        variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
    path = str(tmp_path / file_name)
    if file_name.endswith(".keras"):
        source.save(path)
    else:
        source.get_layer("backbone").save_weights(path)
    target = build_classifier("resnet20", input_shape, NUM_CLASSES, weights=path)
    features = random_images(input_shape) / 255.0
    np.testing.assert_allclose(
        numpy(source.get_layer("backbone")(features, training=False)),
        numpy(target.get_layer("backbone")(features, training=False)),
        rtol=1e-6,
        atol=1e-6,
    )


def test_incompatible_or_missing_weights(tmp_path):
    path = str(tmp_path / "resnet20.weights.h5")
    build_backbone("resnet20", (8, 8, 3)).save_weights(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns about each unmatched sublayer.
        with pytest.raises(ValueError, match="resnet20.weights.h5"):
            build_backbone("resnet32", (8, 8, 3), weights=path)
    classifier_path = str(tmp_path / "lenet.keras")
    build_classifier("lenet5", (8, 8, 1), NUM_CLASSES).save(classifier_path)
    with pytest.raises(ValueError, match="lenet.keras"):
        build_backbone("resnet20", (8, 8, 3), weights=classifier_path)
    missing = str(tmp_path / "missing.weights.h5")
    with pytest.raises(FileNotFoundError, match="missing.weights.h5"):
        build_backbone("resnet20", (8, 8, 3), weights=missing)


def test_keras_save_load_with_augmentation(tmp_path):
    input_shape, _ = SMALL_CONFIGS["resnet20"]
    augmentation = keras.Sequential(
        [keras.layers.RandomFlip("horizontal"), keras.layers.RandomTranslation(0.1, 0.1)],
        name="augmentation",
    )
    model = build_classifier("resnet20", input_shape, NUM_CLASSES, augmentation=augmentation, dropout_rate=0.2)
    path = str(tmp_path / "classifier.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    images = random_images(input_shape)
    expected = numpy(model(images, training=False))
    np.testing.assert_allclose(expected, numpy(reloaded(images, training=False)), atol=1e-5)
    # Augmentation is the identity at inference: a model without it agrees.
    plain = build_classifier("resnet20", input_shape, NUM_CLASSES, dropout_rate=0.2)
    plain.set_weights(model.get_weights()[-len(plain.get_weights()) :])
    np.testing.assert_allclose(expected, numpy(plain(images, training=False)), atol=1e-5)


@pytest.mark.parametrize(
    ("name", "mode"), [("resnet50", "caffe"), ("mobilenetv2", "tf"), ("resnet20", None), ("lenet5", None)]
)
def test_preprocessing_matches_keras_applications(name, mode):
    images = random_images((4, 4, 3))
    expected = images / 255.0
    if mode is not None:
        expected = keras.applications.imagenet_utils.preprocess_input(images.copy(), mode=mode)
    layer = preprocessing_layer(name)
    np.testing.assert_allclose(numpy(layer(images)), expected, rtol=1e-5, atol=1e-4)
    # Built from stock Keras objects only: a config round trip needs no custom objects.
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    np.testing.assert_allclose(numpy(clone(images)), expected, rtol=1e-5, atol=1e-4)


def test_argument_errors():
    with pytest.raises(ValueError, match="download"):
        build_backbone("resnet50", (32, 32, 3), weights="imagenet")
    with pytest.raises(ValueError, match=r"mobilenetv2.*32x32"):
        build_backbone("mobilenetv2", (16, 16, 3))
    with pytest.raises(ValueError, match=r"resnet50.*32x32"):
        build_classifier("resnet50", (28, 28, 3), NUM_CLASSES)
    with pytest.raises(ValueError, match="3 channels"):
        build_classifier("resnet50", (32, 32, 1), NUM_CLASSES)
    with pytest.raises(ValueError, match=r"Unknown model name 'vgg16'.*resnet18"):
        build_classifier("vgg16", (32, 32, 3), NUM_CLASSES)
    with pytest.raises(ValueError, match="backbone"):
        set_backbone_trainable(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), False)
