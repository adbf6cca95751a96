"""Class-per-folder image datasets: `path/<class>/*.jpg|png|...`, optionally split.

Two layouts are accepted:

    path/<class>/<image>                              -> one "train" split
    path/{train,val,test}/<class>/<image>             -> one split per folder present

A split layout is recognised when `path` holds any of `train/`, `val/`, `test/`; it then
needs `train/`, whose sorted class folders fix the class list for every split, and at
least two of them (one class would "train" to accuracy 1.0 and teach nothing). Every file
is decoded once by `verify_image_files`; bad ones (unreadable, truncated) are listed in
each split's `skipped`. Files with other extensions and hidden files are ignored. Images
larger than `max_side` are downscaled when read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipelines.images import DEFAULT_MAX_SIDE
from pipelines.sources import FileSource, stratified_split, verify_image_files

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)
SPLIT_NAMES = ("train", "val", "test")
_LAYOUT = "path/<class>/<images> or path/{train,val,test}/<class>/<images>"


def _subfolders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _class_folders(split_path: Path) -> list[Path]:
    folders = _subfolders(split_path)
    if not folders:
        raise ValueError(f"{split_path}: no class folders found; expected layout {_LAYOUT}.")
    for folder in folders:
        if not _image_files(folder):
            raise ValueError(
                f"{folder}: class folder has no image files; expected files ending in "
                f"{sorted(IMAGE_EXTENSIONS)}."
            )
    return folders


def _read_split(split_path: Path, class_names: list[str], channels: int,
                max_side: int | None) -> FileSource:
    paths, labels = [], []
    for folder in _class_folders(split_path):
        if folder.name not in class_names:
            raise ValueError(
                f"{folder}: class {folder.name!r} is not in the train classes {class_names}; "
                "every evaluation class must also have a train folder."
            )
        files = _image_files(folder)
        paths.extend(str(p) for p in files)
        labels.extend([class_names.index(folder.name)] * len(files))
    good, skipped = verify_image_files(paths, max_side)
    return FileSource(
        [paths[i] for i in good], np.array(labels, np.int32)[good], class_names, channels, skipped,
        max_side,
    )


def load_image_folder(
    path: str | os.PathLike, channels: int = 3, val_fraction: float = 0.0, seed: int = 0,
    max_side: int | None = DEFAULT_MAX_SIDE,
) -> dict[str, FileSource]:
    """Loads a class-per-folder dataset into lazily decoded FileSources, one per split.

    `val_fraction` > 0 carves a stratified "val" split (fixed by `seed`) out of "train"
    when the folder has no `val/`; the carved-out split's `skipped` is empty (load-time
    skips stay with "train").
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"Image folder not found: {path}; expected layout {_LAYOUT}.")
    if channels not in (1, 3):
        raise ValueError(f"Expected channels=1 or 3; received channels={channels}.")
    present = [name for name in SPLIT_NAMES if (path / name).is_dir()]
    if present and "train" not in present:
        raise ValueError(f"{path}: has {present} but no train/ folder; expected layout {_LAYOUT}.")
    split_paths = {name: path / name for name in present} if present else {"train": path}
    if val_fraction and "val" in split_paths:
        raise ValueError(
            f"{path}: has a val/ folder, so val_fraction must be 0; "
            f"received val_fraction={val_fraction}."
        )

    class_names = [folder.name for folder in _class_folders(split_paths["train"])]
    if len(class_names) < 2:
        raise ValueError(
            f"{split_paths['train']}: found {len(class_names)} class folder {class_names}; a "
            f"classifier needs at least two classes (one folder per class, layout {_LAYOUT})."
        )
    splits = {
        name: _read_split(p, class_names, channels, max_side) for name, p in split_paths.items()
    }
    if val_fraction:
        train = splits["train"]
        train_indices, val_indices = stratified_split(train.labels, val_fraction, seed)
        splits["train"] = train.subset(train_indices, skipped=train.skipped)
        splits["val"] = train.subset(val_indices)
    return splits
