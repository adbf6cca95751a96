"""Perceptual losses (Gatys et al.; Johnson et al.), keras.ops only, used by both methods.

A VGG19 feature extractor from `keras.applications` (built with `weights=None`) gives the
activations of the content layer and the style layers. Its weights are ImageNet's (a local
.h5 file, or `imagenet`: Keras' own download) or, where none are available, fixed-seed
random weights rescaled layer by layer so every layer's activations have unit mean square
on a probe image ("random features": texture statistics still transfer, the look is not
the paper's). Every loss term is normalised by its target's size, so the terms stay
balanced in both modes:

    content = mean((F - Fc)^2) / mean(Fc^2)
    style   = sum_l w_l mean((G_l - Gs_l)^2) / mean(Gs_l^2),  G = F^T F / (H W)
    tv      = mean of squared differences of neighbouring pixels / 255^2
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.style.config import VGG19_CONV_LAYERS, ModelConfig

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


class WeightsFileError(ValueError):
    """A VGG19 weights file that is missing or does not fit; the message names it."""


def _expected_layers() -> str:
    return f"a VGG19 (include_top=False) Keras .h5 weights file with the layers {', '.join(VGG19_CONV_LAYERS)}"


def _randomise(vgg, seed: int, probe_side: int = 32) -> None:
    """He-normal random kernels (seeded), zero biases, each conv layer then rescaled so its
    ReLU output has unit mean square on a fixed smooth random probe image."""
    import keras

    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (1, 8, 8, 3)).astype(np.float32)
    probe = keras.ops.image.resize(coarse, (probe_side, probe_side), interpolation="bilinear")
    x = preprocess(probe)
    for layer in vgg.layers[1:]:
        if isinstance(layer, keras.layers.Conv2D):
            kernel_shape = tuple(layer.kernel.shape)
            fan_in = int(np.prod(kernel_shape[:3]))
            kernel = rng.normal(0.0, np.sqrt(2.0 / fan_in), kernel_shape).astype(np.float32)
            layer.set_weights([kernel, np.zeros(kernel_shape[-1], np.float32)])
            out = keras.ops.convert_to_numpy(layer(x))
            scale = 1.0 / max(float(np.sqrt(np.mean(out**2))), 1e-12)
            layer.set_weights([kernel * scale, np.zeros(kernel_shape[-1], np.float32)])
        x = layer(x)


def vgg19(last_layer: str | None = None):
    """VGG19's convolutional part, the layers of `keras.applications.VGG19(include_top=False)`
    with the same names, order and shapes (so the same weights file loads), any input size,
    up to `last_layer` (default: all). Built here with zero-initialised kernels:
    keras.applications' own builder draws 20M Glorot-random numbers first (17 s on a loaded
    2-core CPU, against 1 s)."""
    import keras

    x = inputs = keras.Input((None, None, 3), name="input_layer")
    for block, convs, filters in ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512)):
        for conv in range(1, convs + 1):
            name = f"block{block}_conv{conv}"
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=name,
                                    kernel_initializer="zeros")(x)
            if name == last_layer:
                return keras.Model(inputs, x, name="vgg19")
        x = keras.layers.MaxPooling2D(2, 2, name=f"block{block}_pool")(x)
    return keras.Model(inputs, x, name="vgg19")


def load_vgg19(weights: str, seed: int = 0, last_layer: str | None = None):
    """VGG19 without its classifier, any input size; (model, mode description)."""
    import keras

    if weights == "random":
        vgg = vgg19(last_layer)
        _randomise(vgg, seed)
        return vgg, f"random features (VGG19 with seed-{seed} random weights, rescaled per layer; not ImageNet)"
    vgg = vgg19()
    if weights == "imagenet":
        pretrained = keras.applications.VGG19(include_top=False, weights="imagenet", input_shape=(None, None, 3))
        vgg.set_weights(pretrained.get_weights())
        return vgg, "pretrained features (VGG19 ImageNet weights, Keras download)"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsFileError(f"model.weights: no file {path}. Expected {_expected_layers()} "
                               "(vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5), or model.weights=imagenet "
                               "(download) or model.weights=random (random features).")
    try:
        vgg.load_weights(str(path))
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds for a wrong file
        raise WeightsFileError(f"model.weights: {path} does not fit VGG19 ({type(error).__name__}: "
                               f"{str(error)[:200]}). Expected {_expected_layers()}.") from None
    return vgg, f"pretrained features (VGG19 weights from {path})"


def preprocess(images):
    """RGB 0..255 -> VGG's input (BGR, ImageNet mean removed), as keras.applications' caffe mode."""
    from keras import ops

    images = ops.cast(images, "float32")
    return ops.flip(images, axis=-1) - ops.convert_to_tensor(np.array(CAFFE_MEAN_BGR, np.float32))


def gram(features):
    """Gram matrices (B, C, C) of features (B, H, W, C), divided by H*W."""
    from keras import ops

    shape = ops.shape(features)
    flat = ops.reshape(features, (shape[0], -1, shape[3]))
    return ops.einsum("bnc,bnd->bcd", flat, flat) / ops.cast(shape[1] * shape[2], features.dtype)


def total_variation(images):
    """Mean squared difference of vertically and horizontally neighbouring pixels, /255^2."""
    from keras import ops

    dy = images[:, 1:, :, :] - images[:, :-1, :, :]
    dx = images[:, :, 1:, :] - images[:, :, :-1, :]
    return (ops.mean(dy * dy) + ops.mean(dx * dx)) / (255.0**2)


class PerceptualLoss:
    """The feature extractor and the three loss terms for one `ModelConfig`."""

    def __init__(self, config: ModelConfig):
        import keras

        config.validate()
        self.config = config
        self.style_layers = tuple(config.style_layers)
        self.content_layer = config.content_layer
        names = list(dict.fromkeys((self.content_layer, *self.style_layers)))
        deepest = max(names, key=VGG19_CONV_LAYERS.index)
        vgg, self.mode = load_vgg19(config.weights, config.weights_seed, deepest)
        self.layer_names = names
        self.extractor = keras.Model(vgg.input, [vgg.get_layer(n).output for n in names], name="vgg19_features")
        self.extractor.trainable = False
        weights = np.array(config.style_layer_weights or [1.0] * len(self.style_layers), np.float32)
        self.style_layer_weights = weights / weights.sum()
        self.pretrained = config.weights != "random"

    def variables(self):
        return [v.value for v in self.extractor.variables]

    def features(self, images, variables=None) -> dict:
        """{layer name: activations} of RGB 0..255 images; `variables` (from `variables()`)
        makes the call stateless, for use inside a compiled function."""
        inputs = preprocess(images)
        if variables is None:
            outputs = self.extractor(inputs)
        else:
            outputs, _ = self.extractor.stateless_call([], variables, inputs)  # frozen: all non-trainable
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return dict(zip(self.layer_names, outputs))

    def style_targets(self, style_images: list[np.ndarray], blend: list[float] | None = None) -> list:
        """Per style layer, the blended Gram matrix (1, C, C) of one or several style images
        (each at its own size), weights `blend` (normalised to sum 1)."""
        from keras import ops

        blend = np.array(blend or [1.0] * len(style_images), np.float64)
        blend = blend / blend.sum()
        targets = None
        for image, weight in zip(style_images, blend):
            found = self.features(np.asarray(image, np.float32)[None])
            grams = [ops.convert_to_numpy(gram(found[name])) * weight for name in self.style_layers]
            targets = grams if targets is None else [a + b for a, b in zip(targets, grams)]
        return [np.asarray(t, np.float32) for t in targets]

    def content_target(self, content_image: np.ndarray):
        from keras import ops

        found = self.features(np.asarray(content_image, np.float32)[None])
        return ops.convert_to_numpy(found[self.content_layer])

    def terms(self, images, content_features, style_grams, variables=None, found=None) -> dict:
        """Weighted loss terms {content, style, tv} (scalars) of `images` (B, H, W, 3) against
        `content_features` (B or 1, h, w, C) and `style_grams` (per style layer, (1, C, C));
        `found`: the images' features when the caller has them already."""
        from keras import ops

        found = self.features(images, variables) if found is None else found
        generated = found[self.content_layer]
        content = ops.mean(ops.square(generated - content_features)) / (ops.mean(ops.square(content_features)) + 1e-8)
        style = 0.0
        for name, weight, target in zip(self.style_layers, self.style_layer_weights, style_grams):
            difference = ops.mean(ops.square(gram(found[name]) - target))
            style = style + float(weight) * difference / (ops.mean(ops.square(target)) + 1e-8)
        cfg = self.config
        return {"content": cfg.content_weight * content, "style": cfg.style_weight * style,
                "tv": cfg.tv_weight * total_variation(ops.cast(images, "float32"))}
