"""YOLOv8 building blocks (Conv, Bottleneck, C2f, SPPF) as functional keras layers.

Each function applies freshly created layers to a KerasTensor (NHWC) and returns the
result, naming every layer after `name`, as `shared.nets.resnet` does. Only
`keras.layers` and `keras.ops` are used, so the blocks run on TensorFlow and JAX.

Conventions copied from ultralytics YOLOv8:

- Conv = Conv2D (no bias, "same" padding) + BatchNormalization(momentum=0.97,
  epsilon=1e-3; PyTorch's momentum=0.03) + SiLU.
- Kernels use PyTorch's default Conv2d initialisation (uniform in +-1/sqrt(fan_in)),
  so the head logits start as small as in the reference implementation.
- Channel counts are `make_divisible(min(c, max_channels) * width, 8)`, repeats
  `max(round(n * depth), 1)`.
"""

import math

import keras
from keras import layers

BATCH_NORM_MOMENTUM = 0.97
BATCH_NORM_EPSILON = 1e-3
SPPF_POOL_SIZE = 5


def torch_default_kernel_initializer() -> keras.initializers.Initializer:
    """PyTorch's Conv2d default (kaiming_uniform, a=sqrt(5)): U(+-1/sqrt(fan_in))."""
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Smallest multiple of `divisor` that is >= `value` (ultralytics `make_divisible`)."""
    return int(math.ceil(value / divisor) * divisor)


def scaled_channels(channels: int, width: float, max_channels: int) -> int:
    """YOLOv8 width scaling: `make_divisible(min(channels, max_channels) * width, 8)`."""
    return make_divisible(min(channels, max_channels) * width, 8)


def scaled_repeats(repeats: int, depth: float) -> int:
    """YOLOv8 depth scaling: `max(round(repeats * depth), 1)` (1 stays 1)."""
    return max(round(repeats * depth), 1) if repeats > 1 else repeats


def conv(
    inputs: keras.KerasTensor,
    filters: int,
    kernel_size: int = 1,
    strides: int = 1,
    name: str = "conv",
) -> keras.KerasTensor:
    """Conv2D (no bias) + BN + SiLU: (B, H, W, C_in) -> (B, H / strides, W / strides, filters)."""
    outputs = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer=torch_default_kernel_initializer(),
        name=f"{name}_conv",
    )(inputs)
    outputs = layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, name=f"{name}_bn")(
        outputs
    )
    return layers.Activation("silu", name=f"{name}_silu")(outputs)


def bottleneck(inputs: keras.KerasTensor, filters: int, shortcut: bool, name: str) -> keras.KerasTensor:
    """Two 3x3 Convs (expansion 1.0, as inside C2f) + residual when shapes allow.

    (B, H, W, C_in) -> (B, H, W, filters); the residual is added only if `shortcut` and
    C_in == filters.
    """
    outputs = conv(inputs, filters, 3, name=f"{name}_1")
    outputs = conv(outputs, filters, 3, name=f"{name}_2")
    if shortcut and inputs.shape[-1] == filters:
        outputs = layers.Add(name=f"{name}_add")([inputs, outputs])
    return outputs


def c2f(
    inputs: keras.KerasTensor,
    filters: int,
    num_bottlenecks: int,
    shortcut: bool,
    name: str,
) -> keras.KerasTensor:
    """CSP bottleneck with 2 convolutions, YOLOv8's C2f: (B, H, W, C_in) -> (B, H, W, filters).

    A 1x1 Conv to 2c channels (c = filters // 2) is split in two halves; `num_bottlenecks`
    Bottlenecks are chained on the second half; all halves and bottleneck outputs,
    (2 + n) * c channels, are concatenated and fused by a 1x1 Conv.
    """
    hidden = filters // 2
    outputs = conv(inputs, 2 * hidden, 1, name=f"{name}_conv1")
    branches = [outputs[..., :hidden], outputs[..., hidden:]]
    for index in range(num_bottlenecks):
        branches.append(bottleneck(branches[-1], hidden, shortcut, name=f"{name}_bottleneck{index + 1}"))
    outputs = layers.Concatenate(axis=-1, name=f"{name}_concat")(branches)
    return conv(outputs, filters, 1, name=f"{name}_conv2")


def sppf(inputs: keras.KerasTensor, filters: int, name: str, pool_size: int = SPPF_POOL_SIZE) -> keras.KerasTensor:
    """Spatial Pyramid Pooling - Fast: (B, H, W, C_in) -> (B, H, W, filters).

    1x1 Conv to C_in // 2, three chained stride-1 max-pools (`pool_size`, "same"),
    concatenation of the four maps, 1x1 Conv to `filters`.
    """
    outputs = conv(inputs, inputs.shape[-1] // 2, 1, name=f"{name}_conv1")
    pooled = [outputs]
    for index in range(3):
        pooled.append(
            layers.MaxPooling2D(pool_size, strides=1, padding="same", name=f"{name}_pool{index + 1}")(pooled[-1])
        )
    outputs = layers.Concatenate(axis=-1, name=f"{name}_concat")(pooled)
    return conv(outputs, filters, 1, name=f"{name}_conv2")
