"""The fast feed-forward stylizer (Johnson et al. 2016): one network per style.

Transformation network: 9x9 conv, two stride-2 3x3 convs (downsampling), residual blocks,
two nearest-neighbour x2 upsamplings each followed by a 3x3 conv (no transposed
convolutions, so no checkerboard artifacts), a 9x9 conv to RGB; instance normalisation
(GroupNormalization with one group per channel) and ReLU after every conv but the last.
Each upsampled map is cropped to the size of the encoder map it mirrors, so the output has
the input's size for any size, odd ones included. Input and output: float RGB 0..255.

`StylizerTrainer` wraps it for `fit()`: `compute_loss` is the perceptual loss (content:
the input photo's own features; style: the style image's Gram matrices).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from tasks.style.losses import PerceptualLoss


@keras.saving.register_keras_serializable(package="kts_style")
class CropLike(layers.Layer):
    """Crops `x` (B, H', W', C), H' >= H, to the spatial size of `reference` (B, H, W, C')."""

    def call(self, inputs):
        x, reference = inputs
        shape = ops.shape(reference)
        return x[:, : shape[1], : shape[2], :]

    def compute_output_shape(self, input_shape):
        x_shape, reference_shape = input_shape
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])


def _conv_block(x, filters: int, kernel: int, strides: int, name: str, relu: bool = True):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", name=f"{name}_conv")(x)
    x = layers.GroupNormalization(groups=-1, epsilon=1e-5, name=f"{name}_instance_norm")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def transformation_network(filters: int = 32, residual_blocks: int = 5, name: str = "stylizer") -> keras.Model:
    inputs = keras.Input((None, None, 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_unit_range")(inputs)
    full = x = _conv_block(x, filters, 9, 1, "encode1")
    half = x = _conv_block(x, filters * 2, 3, 2, "encode2")
    x = _conv_block(x, filters * 4, 3, 2, "encode3")
    for block in range(residual_blocks):
        shortcut = x
        x = _conv_block(x, filters * 4, 3, 1, f"residual{block + 1}a")
        x = _conv_block(x, filters * 4, 3, 1, f"residual{block + 1}b", relu=False)
        x = layers.Add(name=f"residual{block + 1}_add")([shortcut, x])
    for step, (reference, width) in enumerate(((half, filters * 2), (full, filters)), start=1):
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"upsample{step}")(x)
        x = CropLike(name=f"upsample{step}_crop")([x, reference])
        x = _conv_block(x, width, 3, 1, f"decode{step}")
    x = layers.Conv2D(3, 9, padding="same", name="to_rgb")(x)
    x = layers.Activation("tanh", name="tanh")(x)
    outputs = layers.Rescaling(127.5, offset=127.5, name="to_pixels")(x)
    return keras.Model(inputs, outputs, name=name)


class StylizerTrainer(keras.Model):
    """`network` trained with the perceptual loss against fixed style Gram matrices."""

    def __init__(self, network: keras.Model, perceptual: PerceptualLoss, style_grams: list, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.perceptual = perceptual
        self.extractor = perceptual.extractor  # tracked (frozen): its weights travel as state under JAX
        self.style_grams = [ops.convert_to_tensor(g) for g in style_grams]
        self.term_trackers = {name: keras.metrics.Mean(name=name) for name in ("content", "style", "tv")}
        for name, tracker in self.term_trackers.items():
            setattr(self, f"{name}_tracker", tracker)

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # one pass of the extractor over photos and results together (one traced VGG, larger
        # convolutions); the photos' half gives the content targets
        batch = ops.shape(x)[0]
        found = self.perceptual.features(ops.concatenate([ops.cast(x, y_pred.dtype), y_pred], axis=0))
        content_features = ops.stop_gradient(found[self.perceptual.content_layer][:batch])
        found = {name: value[batch:] for name, value in found.items()}
        terms = self.perceptual.terms(y_pred, content_features, self.style_grams, found=found)
        for name, tracker in self.term_trackers.items():
            tracker.update_state(terms[name])
        return terms["content"] + terms["style"] + terms["tv"]
