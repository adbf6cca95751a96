"""YOLOv8-style anchor-free detector (backbone, PAN-FPN neck, decoupled head) in Keras 3.

`build_detector` returns a functional model "image" -> "predictions":

- Input: float32 images (B, S, S, 3) in 0..255, S divisible by 32. The model rescales
  them to [0, 1] itself (a float32 `Rescaling` layer).
- Output: ONE float32 tensor (B, A, 4 * reg_max + C), also under a mixed precision
  policy. For strides 8, 16, 32 in that order, each level's head output
  (B, S/s, S/s, 4 * reg_max + C) is reshaped row-major to (B, (S/s)^2, ...) and the
  levels are concatenated: A = sum_s (S/s)^2 (8400 for S=640, 2100 for S=320). The
  first 4 * reg_max channels are box-distribution logits (distances left, top, right,
  bottom in stride units; reg_max bins each, DFL), the last C are class logits.

Layout (ultralytics yolov8.yaml, scaled by `VARIANTS`):
backbone "backbone" (stem Conv s2, Conv s2, C2f, Conv s2, C2f -> P3, Conv s2, C2f -> P4,
Conv s2, C2f, SPPF -> P5); neck top-down (upsample, concat, C2f) then bottom-up (Conv s2,
concat, C2f), C2f without shortcut; head per level: box branch 2x Conv 3x3 (c2 channels)
+ 1x1 Conv2D to 4 * reg_max, class branch 2x Conv 3x3 (c3 channels) + 1x1 Conv2D to C,
with c2 = max(16, ch_P3 // 4, 4 * reg_max) and c3 = max(ch_P3, min(C, 100)).

Bias initialisation as YOLOv8 (`Detect.bias_init`): box logits 1.0; class logits
log(5 / C / (S / stride)^2), i.e. about 5 objects expected per image, so initial class
probabilities are small. Both are `Constant` initializers and survive serialization.

Trainable parameters with 80 classes: n 3,157,184, s 11,166,544, m 25,902,624, i.e.
ultralytics YOLOv8n/s/m (3,157,200 / 11,166,560 / 25,902,640) minus the 16 fixed DFL
weights, which the decoder owns here. Keras' `count_params()` also counts the BN moving
statistics (n: 3,167,776). With 3 classes, "n" has 3,011,417 trainable parameters.
"""

import math
import os

import keras
from keras import layers

from tasks.detection import blocks

# name -> (depth multiple, width multiple, max channels), as in ultralytics yolov8.yaml.
VARIANTS: dict[str, tuple[float, float, int]] = {
    "n": (0.33, 0.25, 1024),
    "s": (0.33, 0.50, 1024),
    "m": (0.67, 0.75, 768),
}
STRIDES: tuple[int, ...] = (8, 16, 32)
MAX_STRIDE = 32
# ultralytics yolov8.yaml base channels: stem, stage 1 .. 4 (P2 .. P5).
STEM_CHANNELS = 64
STAGE_CHANNELS = (128, 256, 512, 1024)
STAGE_REPEATS = (3, 6, 6, 3)
NECK_REPEATS = 3
EXPECTED_OBJECTS_PER_IMAGE = 5.0  # the "5" in YOLOv8's class-bias prior


def _check_variant(variant: str) -> tuple[float, float, int]:
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}. Expected one of: {sorted(VARIANTS)}")
    return VARIANTS[variant]


def _check_image_size(image_size: int) -> None:
    if image_size <= 0 or image_size % MAX_STRIDE != 0:
        raise ValueError(f"image_size must be a positive multiple of {MAX_STRIDE}. Received: image_size={image_size}")


def num_anchors(image_size: int) -> int:
    """A = sum over strides 8, 16, 32 of (image_size / stride)^2 (8400 for 640)."""
    _check_image_size(image_size)
    return sum((image_size // stride) ** 2 for stride in STRIDES)


def build_backbone(variant: str = "n", image_size: int = 640) -> keras.Model:
    """CSPDarknet feature model named "backbone": (B, S, S, 3) in [0, 1] -> (P3, P4, P5).

    P3: (B, S/8, S/8, c3), P4: (B, S/16, S/16, c4), P5: (B, S/32, S/32, c5), with
    (c3, c4, c5) = (64, 128, 256) for "n", (128, 256, 512) for "s", (192, 384, 576) for "m".
    Its weights do not depend on `image_size`, so a `.weights.h5` saved from it can be
    loaded into any detector of the same variant (`build_detector(backbone_weights=...)`).
    """
    depth, width, max_channels = _check_variant(variant)
    _check_image_size(image_size)

    def channels(base: int) -> int:
        return blocks.scaled_channels(base, width, max_channels)

    inputs = keras.Input(shape=(image_size, image_size, 3), name="backbone_input")
    features = blocks.conv(inputs, channels(STEM_CHANNELS), 3, 2, name="stem")  # P1/2
    pyramid = []
    for index, (base, repeats) in enumerate(zip(STAGE_CHANNELS, STAGE_REPEATS)):
        stage = f"stage{index + 1}"
        features = blocks.conv(features, channels(base), 3, 2, name=f"{stage}_down")
        features = blocks.c2f(
            features, channels(base), blocks.scaled_repeats(repeats, depth), shortcut=True, name=f"{stage}_c2f"
        )
        pyramid.append(features)
    p5 = blocks.sppf(pyramid[-1], channels(STAGE_CHANNELS[-1]), name="sppf")
    return keras.Model(inputs, [pyramid[1], pyramid[2], p5], name="backbone")


def _neck(p3: keras.KerasTensor, p4: keras.KerasTensor, p5: keras.KerasTensor, variant: str) -> list[keras.KerasTensor]:
    """PAN-FPN: backbone (P3, P4, P5) -> fused (N3, N4, N5) with the same spatial sizes.

    Channels of (N3, N4, N5) = scaled (256, 512, 1024), i.e. (64, 128, 256) for "n".
    """
    depth, width, max_channels = VARIANTS[variant]
    repeats = blocks.scaled_repeats(NECK_REPEATS, depth)
    c3, c4, c5 = (blocks.scaled_channels(base, width, max_channels) for base in STAGE_CHANNELS[1:])

    upsampled = layers.UpSampling2D(2, interpolation="nearest", name="neck_up1")(p5)
    merged = layers.Concatenate(axis=-1, name="neck_up1_concat")([upsampled, p4])
    top_down_p4 = blocks.c2f(merged, c4, repeats, shortcut=False, name="neck_td4")
    upsampled = layers.UpSampling2D(2, interpolation="nearest", name="neck_up2")(top_down_p4)
    merged = layers.Concatenate(axis=-1, name="neck_up2_concat")([upsampled, p3])
    n3 = blocks.c2f(merged, c3, repeats, shortcut=False, name="neck_out3")

    downsampled = blocks.conv(n3, c3, 3, 2, name="neck_down1")
    merged = layers.Concatenate(axis=-1, name="neck_down1_concat")([downsampled, top_down_p4])
    n4 = blocks.c2f(merged, c4, repeats, shortcut=False, name="neck_out4")
    downsampled = blocks.conv(n4, c4, 3, 2, name="neck_down2")
    merged = layers.Concatenate(axis=-1, name="neck_down2_concat")([downsampled, p5])
    n5 = blocks.c2f(merged, c5, repeats, shortcut=False, name="neck_out5")
    return [n3, n4, n5]


def _head_level(
    features: keras.KerasTensor,
    box_channels: int,
    class_channels: int,
    num_classes: int,
    reg_max: int,
    class_bias: float,
    name: str,
) -> keras.KerasTensor:
    """Decoupled head on one level: (B, h, w, c) -> float32 (B, h * w, 4 * reg_max + C)."""
    box = blocks.conv(features, box_channels, 3, name=f"{name}_box1")
    box = blocks.conv(box, box_channels, 3, name=f"{name}_box2")
    box = layers.Conv2D(
        4 * reg_max,
        1,
        kernel_initializer=blocks.torch_default_kernel_initializer(),
        bias_initializer=keras.initializers.Constant(1.0),
        dtype="float32",
        name=f"{name}_box_logits",
    )(box)
    classes = blocks.conv(features, class_channels, 3, name=f"{name}_class1")
    classes = blocks.conv(classes, class_channels, 3, name=f"{name}_class2")
    classes = layers.Conv2D(
        num_classes,
        1,
        kernel_initializer=blocks.torch_default_kernel_initializer(),
        bias_initializer=keras.initializers.Constant(class_bias),
        dtype="float32",
        name=f"{name}_class_logits",
    )(classes)
    outputs = layers.Concatenate(axis=-1, dtype="float32", name=f"{name}_concat")([box, classes])
    return layers.Reshape((-1, 4 * reg_max + num_classes), dtype="float32", name=f"{name}_flatten")(outputs)


def _load_backbone_weights(backbone: keras.Model, path: str) -> None:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Backbone weights file not found: {path!r}")
    try:
        backbone.load_weights(path)
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"Incompatible backbone weights in {path!r}: {error}") from error


def build_detector(
    variant: str = "n",
    num_classes: int = 3,
    image_size: int = 640,
    reg_max: int = 16,
    backbone_weights: str | None = None,
) -> keras.Model:
    """YOLOv8 detector: float32 "image" (B, S, S, 3) in 0..255 -> float32 (B, A, 4 * reg_max + C).

    See the module docstring for the output layout. The backbone is the nested model
    named "backbone" (`model.get_layer("backbone")`), built by `build_backbone`.
    `backbone_weights` is None or the local path of a `.weights.h5` saved from a
    `build_backbone(variant, ...)` model (`backbone.save_weights(path)`, any image size);
    it is loaded into that nested model.
    """
    _check_variant(variant)
    _check_image_size(image_size)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1. Received: num_classes={num_classes}")
    if reg_max < 1:
        raise ValueError(f"reg_max must be >= 1. Received: reg_max={reg_max}")

    backbone = build_backbone(variant, image_size)
    if backbone_weights is not None:
        _load_backbone_weights(backbone, os.fspath(backbone_weights))

    image = keras.Input(shape=(image_size, image_size, 3), dtype="float32", name="image")
    scaled = layers.Rescaling(1.0 / 255.0, dtype="float32", name="preprocessing")(image)
    pyramid = _neck(*backbone(scaled), variant)

    first_level_channels = pyramid[0].shape[-1]
    box_channels = max(16, first_level_channels // 4, 4 * reg_max)
    class_channels = max(first_level_channels, min(num_classes, 100))
    level_outputs = []
    for stride, features in zip(STRIDES, pyramid):
        cells_per_level = (image_size / stride) ** 2
        class_bias = math.log(EXPECTED_OBJECTS_PER_IMAGE / num_classes / cells_per_level)
        level = stride.bit_length() - 1  # stride 8 -> P3
        level_outputs.append(
            _head_level(features, box_channels, class_channels, num_classes, reg_max, class_bias, name=f"head_p{level}")
        )
    predictions = layers.Concatenate(axis=1, dtype="float32", name="predictions")(level_outputs)
    return keras.Model(image, predictions, name=f"yolov8{variant}_detector")
