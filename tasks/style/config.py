"""Style-transfer config and presets; `smoke` is the config the tests run."""

from __future__ import annotations

import dataclasses
from typing import Literal

from shared.config import ConfigError, TrainConfig

VGG19_CONV_LAYERS = tuple(f"block{b}_conv{c}" for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
                          for c in range(1, n + 1))


@dataclasses.dataclass
class DataConfig:
    source: Literal["style-images", "folders"] = "style-images"
    # style-images: paths inside <data root>/style-images; folders: paths as given
    content: str = "content/tubingen.jpg"  # the Gatys result's content image
    styles: tuple[str, ...] = ("style/starry_night.jpg",)  # one or several, blended by style_weights
    style_weights: tuple[float, ...] = ()  # one per style image (data.styles, or transfer's); empty: equal
    content_folder: str = "content"  # the fast stylizer's training photos (random crops)
    # the stylizer's validation: `val_photos` of the content photos (a seeded pick) are held out
    # of its training; `val_loss` (the same perceptual loss) is measured each epoch on
    # `val_crops` fixed crops of them (`kts style tune` minimises it). 0: no val_loss
    val_photos: int = 1
    val_crops: int = 8
    max_side: int = 2048  # images are resized to this longer side when read (with a message)

    def validate(self):
        if not self.styles:
            raise ConfigError("data.styles is empty: name at least one style image")
        if any(w < 0 for w in self.style_weights) or (self.style_weights and sum(self.style_weights) <= 0):
            raise ConfigError(f"data.style_weights must be >= 0 with a positive sum. Received: {self.style_weights}")
        if self.max_side < 16:
            raise ConfigError(f"data.max_side must be >= 16. Received: {self.max_side}")
        if self.val_photos < 0 or self.val_crops < 1:
            raise ConfigError(f"Expected data.val_photos >= 0 and data.val_crops >= 1. Received: "
                              f"{self.val_photos}, {self.val_crops}")


@dataclasses.dataclass
class ModelConfig:
    weights: str = "random"  # random (fixed-seed random VGG19 features), imagenet, or a .h5 file
    weights_seed: int = 0  # random mode only
    content_layer: str = "block4_conv2"
    style_layers: tuple[str, ...] = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1",
                                     "block5_conv1")
    style_layer_weights: tuple[float, ...] = ()  # empty: equal weights
    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 1.0

    def validate(self):
        unknown = [name for name in (self.content_layer, *self.style_layers) if name not in VGG19_CONV_LAYERS]
        if unknown:
            raise ConfigError(f"VGG19 has no layer {', '.join(unknown)}. Expected model.content_layer and "
                              f"model.style_layers among: {', '.join(VGG19_CONV_LAYERS)}")
        if not self.style_layers:
            raise ConfigError("model.style_layers is empty. Expected some of: " + ", ".join(VGG19_CONV_LAYERS))
        if self.style_layer_weights and len(self.style_layer_weights) != len(self.style_layers):
            raise ConfigError(f"model.style_layer_weights has {len(self.style_layer_weights)} values for "
                              f"{len(self.style_layers)} model.style_layers. Expected one per layer.")
        for key in ("content_weight", "style_weight", "tv_weight"):
            if getattr(self, key) < 0:
                raise ConfigError(f"model.{key} must be >= 0. Received: {getattr(self, key)}")


@dataclasses.dataclass
class TransferConfig:
    """Gatys et al.: the image is the variable."""

    size: int = 256  # longer side of the result (the content image is resized to it)
    iterations: int = 200  # per scale; 0 = no Gatys result in `train`
    optimizer: Literal["adam", "lbfgs"] = "adam"
    learning_rate: float = 4.0  # Adam, in pixel units (0..255)
    init: Literal["content", "style", "noise"] = "content"
    scales: int = 1  # > 1: coarse to fine, each scale twice the previous side
    preserve_color: Literal["none", "luminance", "histogram"] = "none"
    log_every: int = 10

    def validate(self):
        for key in ("size", "scales", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"transfer.{key} must be >= 1. Received: {getattr(self, key)}")
        if self.iterations < 0:
            raise ConfigError(f"transfer.iterations must be >= 0. Received: {self.iterations}")
        if self.size // 2 ** (self.scales - 1) < 16:
            raise ConfigError(f"transfer.scales={self.scales} makes the coarsest side below 16 px at "
                              f"transfer.size={self.size}. Use fewer scales or a larger size.")


@dataclasses.dataclass
class StylizerConfig:
    """Johnson et al.: a feed-forward transformation network, one per style."""

    filters: int = 32  # first convolution; doubled by each of the two downsamplings
    residual_blocks: int = 5
    crop_size: int = 256  # random crops of the content photos
    steps_per_epoch: int = 100
    max_side: int = 1024  # stylize: larger images go through in overlapping tiles
    tile_overlap: int = 32

    def validate(self):
        for key in ("filters", "residual_blocks", "crop_size", "steps_per_epoch", "max_side"):
            if getattr(self, key) < 1:
                raise ConfigError(f"stylizer.{key} must be >= 1. Received: {getattr(self, key)}")
        if not 0 <= self.tile_overlap < self.max_side // 2:
            raise ConfigError(f"stylizer.tile_overlap must be in [0, max_side/2). Received: {self.tile_overlap}")


@dataclasses.dataclass
class EvalConfig:
    timing_sizes: tuple[int, ...] = (256, 512, 1024)  # images/s of the stylizer at these sides


@dataclasses.dataclass
class StyleConfig:
    seed: int = 0
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    transfer: TransferConfig = dataclasses.field(default_factory=TransferConfig)
    stylizer: StylizerConfig = dataclasses.field(default_factory=StylizerConfig)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        epochs=2, batch_size=4, optimizer="adam", learning_rate=1e-3, schedule="constant"))
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)


def demo() -> StyleConfig:
    """`make demo`: one Gatys result (tubingen in the style of The Starry Night, 128 px, 40
    Adam iterations) and a small fast stylizer (16 filters, 2 residual blocks, 64 px crops of
    2 of the 3 photos, batch 2, 2 epochs of 20 steps; val_loss on 8 fixed crops of the third),
    random VGG19 features (no weights here).
    Command: kts style run --preset demo
    Expect: the Gatys result's style term falls (most of it in the first 20 iterations) while
    its content term stays low; the stylizer's training and validation losses fall; the
    images show texture transfer from random features, not the paper's look (use
    model.weights=imagenet or a weights file for that). Time: 38 s wall, 49 s of CPU time on
    2 CPU cores shared with other jobs (load ~2.5), 2026-12-03; see README."""
    cfg = StyleConfig()
    cfg.transfer.size = 128
    cfg.transfer.iterations = 40
    cfg.stylizer.filters = 16
    cfg.stylizer.residual_blocks = 2
    cfg.stylizer.crop_size = 64
    cfg.stylizer.steps_per_epoch = 20
    cfg.train.epochs = 2
    cfg.train.batch_size = 2
    cfg.eval.timing_sizes = (256, 512)
    return cfg


def smoke() -> StyleConfig:
    """Tests: a 48 px Gatys result (8 Adam iterations) and a tiny stylizer (8 filters, 1
    residual block, 32 px crops, 1 epoch of 2 steps, val_loss on 4 crops of a held-out photo),
    random features.
    Command: kts style run --preset smoke
    Expect: seconds; the plumbing, not the look."""
    cfg = StyleConfig()
    cfg.model.style_layers = ("block1_conv1", "block2_conv1", "block3_conv1")
    cfg.model.content_layer = "block3_conv2"
    cfg.data.max_side = 256
    cfg.transfer.size = 48
    cfg.transfer.iterations = 8
    cfg.transfer.log_every = 2
    cfg.stylizer.filters = 8
    cfg.stylizer.residual_blocks = 1
    cfg.stylizer.crop_size = 32
    cfg.stylizer.steps_per_epoch = 2
    cfg.stylizer.max_side = 64
    cfg.stylizer.tile_overlap = 8
    cfg.data.val_crops = 4
    cfg.train.epochs = 1
    cfg.train.batch_size = 2
    cfg.eval.timing_sizes = (64,)
    return cfg


PRESETS = {"smoke": smoke, "demo": demo}
