"""Classification data: pick the source, make train/val/test splits, build the grain streams."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from pipelines import builder, ops
from pipelines.sources import ArraySource, stratified_split
from shared.runtime import require_path
from tasks.classification.config import ClassificationConfig, DataConfig


@dataclasses.dataclass
class Splits:
    train: object
    val: object | None
    test: object
    class_names: list[str]
    image_shape: tuple[int, int, int]

    @property
    def skipped(self) -> list[dict]:
        items = []
        for name in ("train", "val", "test"):
            source = getattr(self, name)
            for item in getattr(source, "skipped", None) or []:
                items.append({"split": name, **item})
        return items


def _raw_splits(cfg: DataConfig, data_root: Path) -> dict:
    if cfg.source == "digits":
        from pipelines.datasets.digits import load_digits

        return load_digits()
    if cfg.source == "olivetti":
        from pipelines.datasets.olivetti import load_olivetti

        return load_olivetti(data_root)
    if cfg.source == "bccd_cells":
        from pipelines.datasets.bccd import load_bccd_cells

        return load_bccd_cells(data_root, crop_size=cfg.crop_size)
    path = Path(cfg.path).expanduser()
    if cfg.source == "folder":
        from pipelines.datasets.folder import load_image_folder

        return load_image_folder(require_path(path, "Image folder", "data.path"),
                                 channels=cfg.channels or 3)
    if cfg.source == "npz":
        from pipelines.datasets.npz import load_npz

        return load_npz(require_path(path, "NumPy archive", "data.path"))
    from pipelines.datasets.tfds import load_tfds

    data_dir = Path(cfg.tfds_data_dir).expanduser() if cfg.tfds_data_dir else None
    return load_tfds(cfg.path, data_dir, splits=("train", "test"))


def _limit(source, limit: int, seed: int):
    if not limit or len(source) <= limit:
        return source
    _, held = stratified_split(source.labels, limit / len(source), seed)
    return source.subset(held[:limit], skipped=source.skipped)


def _convert(source, cfg: DataConfig):
    """In-memory sources are resized/converted once here; file sources per sample later."""
    if not isinstance(source, ArraySource):
        return source
    images = source.images
    if cfg.channels == 3 and images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    elif cfg.channels == 1 and images.shape[-1] == 3:
        images = np.rint(images @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None]
    images = ops.resize_array(images, (cfg.image_size, cfg.image_size))
    return ArraySource(images, source.labels, source.class_names, source.skipped)


def load_splits(config: ClassificationConfig, data_root: Path) -> Splits:
    cfg = config.data
    raw = _raw_splits(cfg, Path(data_root))
    train = raw["train"]
    test = raw.get("test") or raw.get("val")
    if test is None:
        keep, held = stratified_split(train.labels, 0.2, config.seed)
        train, test = train.subset(keep, skipped=train.skipped), train.subset(held)
    val = raw.get("val") if raw.get("test") is not None else None
    if val is None and cfg.val_fraction > 0:
        keep, held = stratified_split(train.labels, cfg.val_fraction, config.seed + 1)
        train, val = train.subset(keep, skipped=train.skipped), train.subset(held)
    train, test = _limit(train, cfg.limit, config.seed), _limit(test, cfg.limit, config.seed)
    val = _limit(val, cfg.limit, config.seed) if val is not None else None
    train, test = _convert(train, cfg), _convert(test, cfg)
    val = _convert(val, cfg) if val is not None else None
    channels = cfg.channels or _channels(train)
    return Splits(train, val, test, list(train.class_names),
                  (cfg.image_size, cfg.image_size, channels))


def _channels(source) -> int:
    if isinstance(source, ArraySource):
        return int(source.images.shape[-1])
    return int(getattr(source, "channels", 3))


def element_ops(config: ClassificationConfig, num_classes: int) -> list:
    size = (config.data.image_size, config.data.image_size)
    return [ops.resize(size), ops.one_hot(num_classes)]


def train_stream(config: ClassificationConfig, splits: Splits, start_step: int = 0):
    batch_ops = []
    if config.augment.mixup_alpha > 0 or config.augment.cutmix_alpha > 0:
        batch_ops.append(ops.mixup_or_cutmix(config.augment.mixup_alpha,
                                             config.augment.cutmix_alpha))
    return builder.train_dataset(
        splits.train, batch_size=config.train.batch_size, seed=config.seed,
        ops=element_ops(config, len(splits.class_names)), batch_ops=batch_ops,
        finalize=ops.to_fit_tuple, start_step=start_step, workers=config.train.workers,
        prefetch=config.train.prefetch)


def eval_stream(config: ClassificationConfig, source, num_classes: int, batch_size: int):
    return builder.eval_dataset(source, batch_size=batch_size,
                                ops=element_ops(config, num_classes), finalize=ops.to_fit_tuple,
                                prefetch=config.train.prefetch)


def load_images(source, indices, size: int) -> np.ndarray:
    """Decoded, resized images of `source` at `indices` (for report grids)."""
    resize = ops.resize((size, size))
    return np.stack([resize(source[int(i)])["image"] for i in indices]) if len(indices) else \
        np.zeros((0, size, size, 1), np.uint8)
