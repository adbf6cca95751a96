"""Image-classification model zoo: backbones by name and a classifier around them.

`build_classifier` returns a functional model mapping float32 images in 0..255 to float32
logits: image -> augmentation (training only) -> backbone-specific rescaling -> backbone
-> head (GAP, or Flatten + Dense 120/84 for LeNet-5) -> dropout -> Dense logits.

Freezing (`set_backbone_trainable(model, False)`) relies on the Keras 3 rule that a
`BatchNormalization` layer with `trainable=False` runs in inference mode even inside
`fit()`. The backbone is therefore called *without* a `training` argument: frozen, its BN
layers use (and keep) their moving statistics; unfrozen, they train normally. Recompile
after changing `trainable`, as for any Keras model.

No weights are ever downloaded: `weights` is None or a local file path.
"""

import os
from collections.abc import Callable

import keras
from keras import layers

from shared.nets import resnet
from tasks.classification import layers as _registered_layers  # noqa: F401 - TrainingOnly

APPLICATIONS_MIN_SIDE = 32
# keras.applications "caffe" preprocessing: RGB -> BGR, then subtract these BGR means.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)

Builder = Callable[[tuple[int, int, int], float], keras.Model]


def lenet5(input_shape: tuple[int, int, int], width_multiplier: float = 1.0) -> keras.Model:
    """Convolutional part of LeNet-5 (6@5x5 -> avg-pool -> 16@5x5 -> avg-pool), ReLU.

    The first conv uses "same" padding (the 28x28 MNIST convention, 28 -> 14 -> 10 -> 5);
    the second uses "valid" padding unless its input is smaller than 6x6 (8x8 images),
    where it switches to "same" so the feature map stays non-empty. The dense 120/84
    layers live in the classifier head.
    """
    inputs = keras.Input(shape=input_shape, name="backbone_input")
    outputs = layers.Conv2D(
        resnet.scaled_filters(6, width_multiplier),
        5,
        padding="same",
        activation="relu",
        name="conv1",
    )(inputs)
    outputs = layers.AveragePooling2D(2, name="pool1")(outputs)
    second_padding = "valid" if min(outputs.shape[1], outputs.shape[2]) >= 6 else "same"
    outputs = layers.Conv2D(
        resnet.scaled_filters(16, width_multiplier),
        5,
        padding=second_padding,
        activation="relu",
        name="conv2",
    )(outputs)
    outputs = layers.AveragePooling2D(2, name="pool2")(outputs)
    return keras.Model(inputs, outputs, name="backbone")


def _check_min_side(name: str, input_shape: tuple[int, int, int]) -> None:
    if min(input_shape[0], input_shape[1]) < APPLICATIONS_MIN_SIDE:
        raise ValueError(
            f"{name} needs inputs of at least {APPLICATIONS_MIN_SIDE}x"
            f"{APPLICATIONS_MIN_SIDE}. Received: input_shape={input_shape}"
        )


def resnet50(input_shape: tuple[int, int, int], width_multiplier: float = 1.0) -> keras.Model:
    """`keras.applications.ResNet50` without its top, randomly initialised."""
    _check_min_side("resnet50", input_shape)
    if width_multiplier != 1.0:
        raise ValueError(f"resnet50 does not support width_multiplier. Received: width_multiplier={width_multiplier}")
    return keras.applications.ResNet50(include_top=False, weights=None, input_shape=input_shape, name="backbone")


def mobilenetv2(input_shape: tuple[int, int, int], width_multiplier: float = 1.0) -> keras.Model:
    """`keras.applications.MobileNetV2` without its top; width_multiplier is alpha."""
    _check_min_side("mobilenetv2", input_shape)
    return keras.applications.MobileNetV2(
        input_shape=input_shape,
        alpha=width_multiplier,
        include_top=False,
        weights=None,
        name="backbone",
    )


def _cifar(depth: int) -> Builder:
    return lambda input_shape, width_multiplier=1.0: resnet.cifar_resnet(depth, input_shape, width_multiplier)


def _basic(blocks_per_stage: tuple[int, ...]) -> Builder:
    return lambda input_shape, width_multiplier=1.0: resnet.basic_resnet(
        blocks_per_stage, input_shape, width_multiplier
    )


BACKBONES: dict[str, Builder] = {
    "lenet5": lenet5,
    "resnet20": _cifar(20),
    "resnet32": _cifar(32),
    "resnet56": _cifar(56),
    "resnet18": _basic((2, 2, 2, 2)),
    "resnet34": _basic((3, 4, 6, 3)),
    "resnet50": resnet50,
    "mobilenetv2": mobilenetv2,
}


def _check_name(name: str) -> None:
    if name not in BACKBONES:
        raise ValueError(f"Unknown model name {name!r}. Expected one of: {sorted(BACKBONES)}")


def _load_backbone_weights(backbone: keras.Model, path: str) -> None:
    """Loads a backbone `.weights.h5` / `.h5` file or a saved classifier's "backbone"."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Backbone weights file not found: {path!r}")
    if not path.endswith(".keras"):
        try:
            backbone.load_weights(path)
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"Incompatible backbone weights in {path!r}: {error}") from error
        return
    saved = keras.saving.load_model(path, compile=False)
    try:
        source = saved.get_layer("backbone")
    except ValueError as error:
        raise ValueError(f"{path!r} has no layer named 'backbone' to take weights from.") from error
    source_weights = source.get_weights()
    if len(source_weights) != len(backbone.weights):
        raise ValueError(
            f"Incompatible backbone weights in {path!r}: it holds {len(source_weights)} "
            f"backbone variables, the model expects {len(backbone.weights)}."
        )
    for variable, value in zip(backbone.weights, source_weights):
        if tuple(variable.shape) != value.shape:
            raise ValueError(
                f"Incompatible backbone weights in {path!r}: {variable.path} has shape "
                f"{tuple(variable.shape)}, the file has {value.shape}."
            )
    backbone.set_weights(source_weights)


def build_backbone(
    name: str,
    input_shape: tuple[int, int, int],
    *,
    weights: str | None = None,
    width_multiplier: float = 1.0,
) -> keras.Model:
    """Feature extractor named "backbone": scaled float images -> 4D feature map.

    Inputs must already be scaled as the backbone expects ([0, 1] for ours, caffe-style
    for resnet50, [-1, 1] for mobilenetv2; `build_classifier` does this). `weights` is
    None or a local path: a backbone `.weights.h5` (or keras.applications `.h5`), or a
    `.keras` classifier saved by this project, whose layer "backbone" is used.
    """
    _check_name(name)
    if width_multiplier <= 0:
        raise ValueError(f"width_multiplier must be > 0. Received: {width_multiplier}")
    if weights == "imagenet":
        raise ValueError(
            "weights='imagenet' needs a download, which is unavailable here. Pass the "
            "path of a local weights file instead (e.g. a keras.applications *_notop.h5)."
        )
    backbone = BACKBONES[name](tuple(input_shape), width_multiplier)
    if weights is not None:
        _load_backbone_weights(backbone, os.fspath(weights))
    return backbone


def preprocessing_layer(name: str) -> layers.Layer:
    """Maps 0..255 RGB images to the range backbone `name` expects, named "preprocessing".

    Ours: [0, 1]. mobilenetv2: [-1, 1] (keras.applications "tf" mode). resnet50: RGB ->
    BGR and ImageNet mean subtraction ("caffe" mode), as a small functional model of a
    flip op and a fixed-constant Normalization, so it serializes without custom objects
    (the classifier loads with plain `keras.models.load_model`). Always float32.
    """
    _check_name(name)
    if name == "mobilenetv2":
        return layers.Rescaling(1 / 127.5, offset=-1.0, dtype="float32", name="preprocessing")
    if name != "resnet50":
        return layers.Rescaling(1 / 255.0, dtype="float32", name="preprocessing")
    rgb = keras.Input(shape=(None, None, 3), dtype="float32", name="rgb")
    bgr = keras.ops.flip(rgb, axis=-1)
    centered = layers.Normalization(mean=CAFFE_BGR_MEAN, variance=(1.0, 1.0, 1.0), dtype="float32")(bgr)
    return keras.Model(rgb, centered, name="preprocessing")


def build_classifier(
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    augmentation: layers.Layer | None = None,
    dropout_rate: float = 0.0,
    weights: str | None = None,
    width_multiplier: float = 1.0,
) -> keras.Model:
    """Functional classifier: float32 "image" in 0..255 -> float32 "logits".

    Augmentation layers are only active in training (Keras' preprocessing layers are
    identity at inference). The head is GlobalAveragePooling2D, except for LeNet-5 whose
    head is Flatten -> Dense 120 -> Dense 84 (ReLU), as in the original network.
    """
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1). Received: {dropout_rate}")
    if name == "resnet50" and input_shape[-1] != 3:
        raise ValueError(f"resnet50 preprocessing expects RGB images (3 channels). Received: input_shape={input_shape}")
    backbone = build_backbone(name, input_shape, weights=weights, width_multiplier=width_multiplier)
    image = keras.Input(shape=tuple(input_shape), dtype="float32", name="image")
    features = image
    if augmentation is not None:
        features = augmentation(features)
    features = preprocessing_layer(name)(features)
    # No `training` argument: BN follows the backbone's `trainable` (module docstring).
    features = backbone(features)
    if name == "lenet5":
        features = layers.Flatten(name="flatten")(features)
        features = layers.Dense(120, activation="relu", name="dense_120")(features)
        features = layers.Dense(84, activation="relu", name="dense_84")(features)
    else:
        features = layers.GlobalAveragePooling2D(name="pooling")(features)
    if dropout_rate > 0:
        features = layers.Dropout(dropout_rate, name="dropout")(features)
    logits = layers.Dense(num_classes, dtype="float32", name="logits")(features)
    return keras.Model(image, logits, name=f"{name}_classifier")


def set_backbone_trainable(model: keras.Model, trainable: bool) -> None:
    """Freezes (BN in inference mode too) or unfreezes the layer "backbone".

    Call `model.compile(...)` afterwards: Keras picks up `trainable` at compile time.
    """
    try:
        backbone = model.get_layer("backbone")
    except ValueError as error:
        raise ValueError(f"Model {model.name!r} has no layer named 'backbone'.") from error
    backbone.trainable = trainable
