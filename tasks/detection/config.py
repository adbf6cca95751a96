"""Detection config and presets; `smoke` is the config the tests run."""

from __future__ import annotations

import dataclasses
from typing import Literal

from shared.config import ConfigError, TrainConfig


@dataclasses.dataclass
class DataConfig:
    source: Literal["bccd", "voc", "yolo", "coco"] = "bccd"
    path: str = ""  # voc: VOC root; yolo: root with images/ and labels/; coco: images dir
    annotations: str = ""  # coco: the annotation JSON
    class_names: tuple[str, ...] = ()  # voc/yolo: the class list (bccd/coco know theirs)
    image_size: int = 640  # letterboxed square input; divisible by 32
    max_boxes: int = 100
    limit: int = 0  # > 0: keep the first N images of each split (smoke runs)
    train_on: Literal["train", "train+val"] = "train"
    evaluate_on: Literal["test", "val", "train"] = "test"

    def validate(self):
        if self.image_size % 32:
            raise ConfigError(f"data.image_size must be divisible by 32. Received: "
                              f"{self.image_size}")
        if self.source != "bccd" and not self.path:
            raise ConfigError(f"data.source={self.source} needs data.path")


@dataclasses.dataclass
class AugmentConfig:
    mosaic: float = 1.0  # probability
    close_mosaic_epochs: int = 10  # no mosaic for the last N epochs
    flip: float = 0.5
    scale_min: float = 0.5
    scale_max: float = 1.5
    translate: float = 0.1
    hsv_hue: float = 0.015
    hsv_saturation: float = 0.7
    hsv_value: float = 0.4


@dataclasses.dataclass
class ModelConfig:
    variant: Literal["n", "s", "m"] = "n"
    reg_max: int = 16
    weights: str = ""  # backbone .weights.h5 (from build_backbone) to start from


@dataclasses.dataclass
class LossConfig:
    box_weight: float = 7.5
    class_weight: float = 0.5
    dfl_weight: float = 1.5
    topk: int = 10
    alpha: float = 0.5
    beta: float = 6.0


@dataclasses.dataclass
class EvalConfig:
    batch_size: int = 8
    score_threshold: float = 0.001  # for mAP (low, as COCO evaluation expects)
    iou_threshold: float = 0.7
    max_detections: int = 100
    confusion_score_threshold: float = 0.25
    examples: int = 8  # test images drawn in the report


@dataclasses.dataclass
class DetectionConfig:
    seed: int = 0
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)


def _no_augmentation() -> AugmentConfig:
    return AugmentConfig(mosaic=0.0, close_mosaic_epochs=0, flip=0.0, scale_min=1.0,
                         scale_max=1.0, translate=0.0, hsv_hue=0.0, hsv_saturation=0.0,
                         hsv_value=0.0)


def smoke() -> DetectionConfig:
    """Tests and CI: YOLOv8-n on 4 BCCD training images at 256 px, no augmentation, 60
    steps: the whole train -> evaluate -> export -> report path, quickly.
    Command: kts detection run --preset smoke
    Expect: ~1.5 min on 2 CPU cores; mAP@0.5 on those images is low at this scale (the
    issue's target, > 0.9 in under a minute, is NOT met yet: see `overfit`)."""
    cfg = DetectionConfig()
    cfg.data = DataConfig(image_size=256, limit=4, max_boxes=40, evaluate_on="train")
    cfg.augment = _no_augmentation()
    cfg.train = TrainConfig(epochs=60, batch_size=4, optimizer="adamw", learning_rate=2e-3,
                            weight_decay=5e-4, warmup_epochs=3, jit_compile="auto")
    cfg.eval = EvalConfig(batch_size=4, examples=4)
    return cfg


def overfit() -> DetectionConfig:
    """Overfit 4 BCCD training images at 320 px (300 steps, AdamW 1e-2, no weight decay):
    a check that loss, assigner and decoding agree.
    Command: kts detection run --preset overfit
    Measured (2026-11-22, TF, 2 CPU cores, 7 min): mAP@0.5 0.666 on those images: RBC AP@0.5
    0.998, WBC 1.000, Platelets 0.000 (5 small boxes; the class-0 logit collapses early). The
    same at 416 px with AdamW 2e-3, and after 800 steps with ~0 loss: platelet anchors are
    assigned, but their predicted boxes have IoU ~0.02 and the targets (and so the box-loss
    weights) are normalised to it, so they are never regressed. See the issue notes."""
    cfg = smoke()
    cfg.data.image_size = 320
    cfg.train.epochs = 300
    cfg.train.learning_rate = 1e-2
    cfg.train.weight_decay = 0.0
    cfg.train.warmup_epochs = 5
    return cfg


def bccd() -> DetectionConfig:
    """BCCD blood cells (205 train / 72 test images), YOLOv8-n from scratch at 640 px with
    mosaic, flips, scale/translate and HSV jitter; the GPU preset.
    Command: kts detection run --preset bccd --backend jax
    Expect (target): test mAP@0.5 >= 0.90, mAP@[.5:.95] >= 0.60. Not yet measured here (no
    GPU was lent to this work); on 2 CPU cores it would take hours: use bccd-cpu."""
    cfg = DetectionConfig()
    cfg.train = TrainConfig(epochs=150, batch_size=16, optimizer="adamw", learning_rate=2e-3,
                            weight_decay=5e-4, warmup_epochs=3)
    return cfg


def bccd_cpu() -> DetectionConfig:
    """BCCD at 416 px on a CPU: YOLOv8-n, 40 epochs, lighter augmentation.
    Command: kts detection run --preset bccd-cpu
    Expect: a lower target than `bccd` (not yet measured)."""
    cfg = bccd()
    cfg.data.image_size = 416
    cfg.augment.close_mosaic_epochs = 5
    cfg.train.epochs = 40
    cfg.train.batch_size = 8
    return cfg


def demo() -> DetectionConfig:
    """`make demo`: overfit 8 BCCD training images at 256 px (300 steps, AdamW 1e-2) and
    write the full report.
    Command: kts detection run --preset demo
    Expect: measured (2026-11-22, TF, 2 CPU cores, 4 min): mAP@0.5 0.666 on those 8 images:
    RBC AP@0.5 0.999, WBC 1.000, Platelets 0.000 (not learned yet: see `overfit`)."""
    cfg = smoke()
    cfg.data.limit = 8
    cfg.train.epochs = 150
    cfg.train.learning_rate = 1e-2
    cfg.train.weight_decay = 0.0
    return cfg


PRESETS = {"smoke": smoke, "demo": demo, "overfit": overfit, "bccd": bccd,
           "bccd-cpu": bccd_cpu}
