"""Where style transfer's images come from: `data.source=style-images` reads paths inside
<data root>/style-images (the registry dataset, `kts data fetch style-images`);
`data.source=folders` takes the paths as given. The stylizer's training photos are random
crops (with random flips) of every readable image of `data.content_folder` but the
`data.val_photos` held out (a seeded pick) for the validation loss, measured on
`data.val_crops` fixed crops of those; unreadable images are skipped and counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.runtime import require_path
from tasks.style import images as image_lib
from tasks.style.config import DataConfig

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def resolve(config: DataConfig, data_root: Path, path: str) -> Path:
    if config.source == "folders":
        return Path(path).expanduser()
    folder = require_path(Path(data_root) / "style-images", "the style-images dataset", "data.source",
                          dataset="style-images")
    return folder / path


def style_images(config: DataConfig, data_root: Path, quiet: bool = False) -> list[np.ndarray]:
    return [image_lib.load_image(resolve(config, data_root, p), config.max_side, quiet) for p in config.styles]


def content_photos(config: DataConfig, data_root: Path, shorter_side: int, quiet: bool = False):
    """(images resized so the shorter side is `shorter_side`, [(path, reason) skipped])."""
    folder = resolve(config, data_root, config.content_folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"data.content_folder: no folder {folder}. Expected a folder of photos "
                                "(the fast stylizer's training images).")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    photos, skipped = [], []
    for path in paths:
        try:
            image = image_lib.load_image(path, config.max_side, quiet=True)
        except image_lib.ImageFileError as error:
            skipped.append((str(path), str(error)))
            continue
        height, width = image.shape[:2]
        scale = shorter_side / min(height, width)
        photos.append(image_lib.resize(image, (max(shorter_side, round(height * scale)),
                                               max(shorter_side, round(width * scale)))))
    if skipped and not quiet:
        print(f"style: {len(skipped)} unreadable image(s) in {folder} skipped, e.g. {skipped[0][1]}")
    if not photos:
        raise FileNotFoundError(f"data.content_folder: no readable image in {folder} "
                                f"({len(skipped)} unreadable). Expected photos ({', '.join(IMAGE_SUFFIXES)}).")
    return photos, skipped


def crop_batches(photos: list[np.ndarray], crop_size: int, batch_size: int, seed: int, start_step: int = 0):
    """Endless (batch,) tuples of random crops with random horizontal flips; step k's batch
    depends only on (seed, k), so a resumed run sees the batches of an uninterrupted one."""
    step = start_step
    while True:
        rng = np.random.default_rng([seed, step])
        batch = np.empty((batch_size, crop_size, crop_size, 3), np.float32)
        for i in range(batch_size):
            photo = photos[rng.integers(len(photos))]
            top = rng.integers(photo.shape[0] - crop_size + 1)
            left = rng.integers(photo.shape[1] - crop_size + 1)
            crop = photo[top:top + crop_size, left:left + crop_size]
            batch[i] = crop[:, ::-1] if rng.random() < 0.5 else crop
        yield (batch,)
        step += 1


def _stream(seed: int, purpose: int) -> np.random.Generator:
    """A random stream of its own for each purpose (1: the held-out pick, 2: the validation
    crops), apart from the training crops' (seed, step) streams."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(purpose,)))


def split_photos(count: int, val_photos: int, seed: int, folder: str = "data.content_folder"):
    """(training, validation) indices into the `count` readable content photos: `val_photos`
    of them, a seeded pick, are held out of the stylizer's training."""
    if val_photos and val_photos >= count:
        raise ValueError(f"data.val_photos={val_photos} leaves no training photo: {folder} has {count} readable "
                         "photo(s). Add photos, or set data.val_photos=0 (then no val_loss, and `kts style "
                         "tune` refuses the config).")
    held = set(_stream(seed, 1).permutation(count)[:val_photos].tolist())
    return [i for i in range(count) if i not in held], sorted(held)


def fixed_crops(photos: list[np.ndarray], crop_size: int, count: int, seed: int) -> np.ndarray:
    """`count` crops (no flips) taken from `photos` in turn at seeded positions: the same
    validation batch at every epoch and in every run of a seed."""
    rng = _stream(seed, 2)
    crops = np.empty((count, crop_size, crop_size, 3), np.float32)
    for i in range(count):
        photo = photos[i % len(photos)]
        top = rng.integers(photo.shape[0] - crop_size + 1)
        left = rng.integers(photo.shape[1] - crop_size + 1)
        crops[i] = photo[top:top + crop_size, left:left + crop_size]
    return crops
