"""Detection data: sources per config, the augmented training stream, the eval stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines import builder
from pipelines import detection_ops as ops
from pipelines.datasets import detection as datasets
from shared.config import ConfigError
from shared.runtime import require_path
from tasks.detection.config import DetectionConfig


def load_splits(config: DetectionConfig, data_root: Path) -> dict:
    """{"train", "eval" (the split the report scores), "epoch" (the images of the epoch-end
    val_map50, never trained on nor scored; None when there are none), "epoch_note" (where
    they come from, or why there are none), "skipped"} for this config."""
    cfg = config.data
    if cfg.source == "bccd":
        splits = datasets.load_bccd_detection(data_root)
    elif cfg.source == "voc":
        root = require_path(Path(cfg.path).expanduser(), "VOC root", "data.path")
        splits = {split: datasets.load_voc_detection(root, split, list(cfg.class_names))
                  for split in ("train", "val", "test")
                  if (root / "ImageSets" / "Main" / f"{split}.txt").exists()}
    elif cfg.source == "yolo":
        root = require_path(Path(cfg.path).expanduser(), "YOLO dataset root", "data.path")
        splits = {split: datasets.load_yolo_txt(root / "images" / split, root / "labels" / split,
                                                list(cfg.class_names))
                  for split in ("train", "val", "test") if (root / "images" / split).is_dir()}
    else:
        images = require_path(Path(cfg.path).expanduser(), "COCO images folder", "data.path")
        annotations = require_path(Path(cfg.annotations).expanduser(),
                                   "COCO annotation file", "data.annotations")
        splits = {"train": datasets.load_coco_json(images, annotations)}
    if "train" not in splits:
        raise FileNotFoundError(f"No training split found for data.source={cfg.source} at "
                                f"{cfg.path or data_root}")
    usable, held_out = dict(splits), None  # `splits` keeps the skipped/dropped lists
    if cfg.holdout:  # before anything else reads the train split
        usable["train"], held_out = _hold_out(splits["train"], cfg.holdout, config.seed)
    train = usable["train"]
    if cfg.train_on == "train+val" and "val" in usable:
        train = _concat(train, usable["val"])
    evaluation = usable.get(cfg.evaluate_on) or usable.get("val") or train
    scored = next((name for name in (cfg.evaluate_on, "val") if usable.get(name)), "train")
    epoch, note = _epoch_images(config, usable, held_out, scored)
    if cfg.limit:
        train = _first(train, cfg.limit)
        if cfg.evaluate_on == "train":
            evaluation = train
    eval_limit = cfg.limit if cfg.eval_limit < 0 else cfg.eval_limit
    if eval_limit and cfg.evaluate_on != "train":
        evaluation = _first(evaluation, eval_limit)
    skipped = [{"split": name, **item} for name, source in splits.items()
               for item in [*source.skipped, *source.dropped_boxes]]
    return {"train": train, "eval": evaluation, "epoch": epoch, "epoch_note": note,
            "skipped": skipped}


def _hold_out(train, count: int, seed: int):
    """(kept, held out): `count` images of `train` drawn with `seed`, both in file order."""
    if count >= len(train):
        raise ConfigError(f"data.holdout={count} leaves no training images (the train split "
                          f"has {len(train)}).")
    held = set(np.random.default_rng(seed).choice(len(train), count, replace=False).tolist())
    return (train.subset([i for i in range(len(train)) if i not in held]),
            train.subset(sorted(held)))


def _epoch_images(config: DetectionConfig, splits: dict, held_out, scored: str):
    """(source or None, note): the first `eval.epoch_images` of the held-out training images
    or, without them, of the val split when it is neither trained on nor scored."""
    cfg, count = config.data, config.eval.epoch_images
    if held_out is not None:
        source, note = held_out, f"of the {cfg.holdout} training images held out (data.holdout)"
    elif not splits.get("val"):
        source, note = None, f"data.source={cfg.source} has no val split here"
    elif cfg.train_on == "train+val":
        source, note = None, "the val split is trained on (data.train_on=train+val)"
    elif scored == "val":
        source, note = None, "the val split is the one the report scores"
    else:
        source, note = splits["val"], "images of the val split"
    if source is None:
        return None, note + "; data.holdout=N holds out N training images for it"
    if not count:
        return None, "eval.epoch_images=0"
    source = _first(source, count)
    return source, f"{len(source)} {note}"


def _first(source, count: int):
    return source.subset(list(range(min(count, len(source)))))


def _concat(first, second):
    return datasets.DetectionSource(
        [*first.paths, *second.paths], [*first.boxes, *second.boxes],
        [*first.classes, *second.classes], first.class_names,
        np.concatenate([first.image_ids, second.image_ids]), [*first.sizes, *second.sizes])


class MosaicUntil:
    """Mosaic for stream positions before `close_at`, plain letterboxing after (YOLOv8's
    "close mosaic" for the last epochs). Position-based, so resuming stays exact."""

    uses_position = True

    def __init__(self, source, size: int, probability: float, close_at: int):
        self.mosaic = ops.Mosaic(source, size, probability)
        self.letterbox = ops.Letterbox(size)
        self.close_at = close_at

    def __call__(self, element: dict, rng: np.random.Generator, position: int) -> dict:
        if position >= self.close_at:
            return self.letterbox(element)
        return self.mosaic(element, rng)


def train_stream(config: DetectionConfig, source, steps_per_epoch: int, start_step: int = 0):
    cfg, aug = config.data, config.augment
    size = cfg.image_size
    deterministic, randoms = [], []
    if aug.mosaic > 0:
        open_epochs = max(0, config.train.epochs - aug.close_mosaic_epochs)
        close_at = open_epochs * steps_per_epoch * config.train.batch_size
        randoms.append(MosaicUntil(source, size, aug.mosaic, close_at))
    else:
        deterministic.append(ops.Letterbox(size))
    if aug.scale_min != 1.0 or aug.scale_max != 1.0 or aug.translate > 0:
        randoms.append(ops.RandomAffine((aug.scale_min, aug.scale_max), aug.translate))
    if aug.flip > 0:
        randoms.append(ops.RandomFlip(aug.flip))
    if aug.hsv_hue or aug.hsv_saturation or aug.hsv_value:
        randoms.append(ops.HSVJitter(aug.hsv_hue, aug.hsv_saturation, aug.hsv_value))
    randoms.append(ops.PadBoxes(cfg.max_boxes))
    return builder.train_dataset(source, batch_size=config.train.batch_size, seed=config.seed,
                                 ops=deterministic, random_ops=randoms,
                                 finalize=ops.to_fit_tuple, start_step=start_step,
                                 workers=config.train.workers, prefetch=config.train.prefetch)


def eval_elements(config: DetectionConfig):
    """Deterministic ops for evaluation: letterbox + padding (elements keep "letterbox")."""
    return [ops.Letterbox(config.data.image_size), ops.PadBoxes(config.data.max_boxes)]


def eval_stream(config: DetectionConfig, source, batch_size: int, with_targets: bool = True):
    finalize = ops.to_fit_tuple if with_targets else None
    return builder.eval_dataset(source, batch_size=batch_size, ops=eval_elements(config),
                                finalize=finalize, prefetch=config.train.prefetch)
