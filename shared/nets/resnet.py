"""Basic-block ResNets (He et al. 2016, v1 "post-activation") built from keras layers.

Two families share one residual block:

- CIFAR ResNets (`resnet20/32/56`): a 3x3 stride-1 stem and three stages of 16/32/64
  filters with `(depth - 2) / 6` blocks each (section 4.2 of the paper).
- ImageNet-layout ResNets (`resnet18/34`): four stages of 64/128/256/512 filters. Small
  inputs (min side <= 64) get the CIFAR stem (3x3 stride 1, no max-pool), larger inputs
  the ImageNet stem (7x7 stride 2 conv + 3x3 stride 2 max-pool).

Shortcuts are identity where the shape is unchanged and a 1x1 conv + BN projection where
it changes. Convolutions before BN have no bias and use he_normal initialisation. BN
uses momentum 0.9 and epsilon 1e-5 (the reference implementations' values).
"""

from collections.abc import Sequence

import keras
from keras import layers

CIFAR_STEM_MAX_SIDE = 64
# torchvision / reference-implementation values; Keras' defaults (0.99, 1e-3) make the
# moving statistics lag badly in short runs.
BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5


def scaled_filters(filters: int, width_multiplier: float) -> int:
    """Returns `filters * width_multiplier` rounded, and at least 1."""
    return max(1, int(round(filters * width_multiplier)))


def _conv_bn(inputs: keras.KerasTensor, filters: int, kernel_size: int, strides: int, name: str) -> keras.KerasTensor:
    outputs = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(inputs)
    return layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, name=f"{name}_bn")(
        outputs
    )


def basic_block(inputs: keras.KerasTensor, filters: int, strides: int, name: str) -> keras.KerasTensor:
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut, then ReLU."""
    outputs = _conv_bn(inputs, filters, 3, strides, f"{name}_1")
    outputs = layers.ReLU(name=f"{name}_1_relu")(outputs)
    outputs = _conv_bn(outputs, filters, 3, 1, f"{name}_2")
    shortcut = inputs
    if strides != 1 or inputs.shape[-1] != filters:
        shortcut = _conv_bn(inputs, filters, 1, strides, f"{name}_shortcut")
    outputs = layers.Add(name=f"{name}_add")([shortcut, outputs])
    return layers.ReLU(name=f"{name}_out")(outputs)


def _resnet(
    input_shape: tuple[int, int, int],
    stage_filters: Sequence[int],
    blocks_per_stage: Sequence[int],
    imagenet_stem: bool,
    width_multiplier: float,
    name: str,
) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="backbone_input")
    stem_filters = scaled_filters(stage_filters[0], width_multiplier)
    if imagenet_stem:
        outputs = _conv_bn(inputs, stem_filters, 7, 2, "stem")
        outputs = layers.ReLU(name="stem_relu")(outputs)
        outputs = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(outputs)
    else:
        outputs = _conv_bn(inputs, stem_filters, 3, 1, "stem")
        outputs = layers.ReLU(name="stem_relu")(outputs)
    for stage_index, (filters, num_blocks) in enumerate(zip(stage_filters, blocks_per_stage)):
        for block_index in range(num_blocks):
            strides = 2 if stage_index > 0 and block_index == 0 else 1
            outputs = basic_block(
                outputs,
                scaled_filters(filters, width_multiplier),
                strides,
                name=f"stage{stage_index + 1}_block{block_index + 1}",
            )
    return keras.Model(inputs, outputs, name=name)


def cifar_resnet(depth: int, input_shape: tuple[int, int, int], width_multiplier: float = 1.0) -> keras.Model:
    """CIFAR ResNet-`depth` (depth = 6n + 2) feature extractor named "backbone"."""
    if (depth - 2) % 6 != 0:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2. Received: depth={depth}")
    blocks = (depth - 2) // 6
    return _resnet(
        input_shape,
        stage_filters=(16, 32, 64),
        blocks_per_stage=(blocks, blocks, blocks),
        imagenet_stem=False,
        width_multiplier=width_multiplier,
        name="backbone",
    )


def basic_resnet(
    blocks_per_stage: Sequence[int],
    input_shape: tuple[int, int, int],
    width_multiplier: float = 1.0,
) -> keras.Model:
    """ResNet-18/34 layout; the stem depends on the input size (see module docstring)."""
    return _resnet(
        input_shape,
        stage_filters=(64, 128, 256, 512),
        blocks_per_stage=blocks_per_stage,
        imagenet_stem=min(input_shape[0], input_shape[1]) > CIFAR_STEM_MAX_SIDE,
        width_multiplier=width_multiplier,
        name="backbone",
    )
