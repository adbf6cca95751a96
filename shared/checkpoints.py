"""Resume checkpoints: one folder per checkpoint, written whole; the previous one is kept.

    checkpoints/backup/epoch-0003/model.weights.h5         weights + optimizer state
                                  training_metadata.json   epoch, global step, RNG states
    checkpoints/backup/epoch-0002/...                      the previous checkpoint

A checkpoint folder is filled under a temporary name and renamed into place in one step
(`shared.io.atomic_dir`), so the weights and the metadata of a folder that exists belong to
the same epoch: a kill at any moment leaves complete checkpoints only, never the weights of
one epoch with the metadata of another. The folder's epoch is also in its metadata and is
checked on load. On resume the newest checkpoint whose files read back whole is used; a
damaged one (a truncated file, a disk that filled up) is named in a warning and the one
before it is used instead. Nothing here imports Keras.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from shared.io import atomic_dir, remove_stale_temporaries

WEIGHTS = "model.weights.h5"
METADATA = "training_metadata.json"
KEEP = 2  # the newest checkpoint and the one before it
_FOLDER = re.compile(r"^epoch-(\d+)$")
_LEGACY_WEIGHTS = "latest.weights.h5"  # the single-file layout of earlier versions
_REQUIRED = ("epoch", "global_step", "steps_per_epoch")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what to do."""


class TrainingDivergedError(ValueError):
    """Training stopped on a non-finite loss: no model was saved as the result, and the last
    good checkpoint is kept (the message says where and what to change)."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    weights: Path
    metadata_path: Path
    metadata: dict

    @property
    def epoch(self) -> int:
        return int(self.metadata["epoch"])


def folder_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}"


def folders(backup_dir: str | Path) -> list[Path]:
    """The checkpoint folders in `backup_dir`, newest first."""
    backup_dir = Path(backup_dir)
    if not backup_dir.is_dir():
        return []
    found = [(int(m[1]), p) for p in backup_dir.iterdir()
             if p.is_dir() and (m := _FOLDER.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def _candidates(backup_dir: Path) -> list[tuple[Path, Path, int | None]]:
    """(weights, metadata, epoch the folder name promises), newest first; an earlier
    version's single-file checkpoint last."""
    out: list[tuple[Path, Path, int | None]] = [
        (f / WEIGHTS, f / METADATA, int(_FOLDER.match(f.name)[1])) for f in folders(backup_dir)]
    if (backup_dir / _LEGACY_WEIGHTS).exists() or (backup_dir / METADATA).exists():
        out.append((backup_dir / _LEGACY_WEIGHTS, backup_dir / METADATA, None))
    return out


def write(backup_dir: str | Path, epoch: int, save_weights: Callable[[Path], None],
          metadata: dict) -> Path:
    """Writes checkpoint `epoch` as one folder (`save_weights(path)` writes the weights file),
    then removes all but the newest KEEP checkpoints."""
    backup_dir = Path(backup_dir)
    folder = backup_dir / folder_name(epoch)
    with atomic_dir(folder) as tmp:
        save_weights(tmp / WEIGHTS)
        (tmp / METADATA).write_text(json.dumps({**metadata, "epoch": epoch}, indent=2) + "\n")
    for old in folders(backup_dir)[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
    for legacy in (backup_dir / _LEGACY_WEIGHTS, backup_dir / METADATA):
        legacy.unlink(missing_ok=True)
    return folder


def read_metadata(path: Path, epoch: int | None = None) -> dict:
    """The metadata of a checkpoint; CheckpointError naming the file when it is missing,
    damaged or belongs to another epoch than its folder."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is damaged (incomplete JSON: {err})") from None
    if not isinstance(data, dict) or any(key not in data for key in _REQUIRED):
        raise CheckpointError(f"{path} is damaged (expected the keys {', '.join(_REQUIRED)})")
    if epoch is not None and data["epoch"] != epoch:
        raise CheckpointError(f"{path} says epoch {data['epoch']} in the folder of epoch {epoch}")
    return data


def verify_weights(path: Path) -> None:
    """Reads every array of an HDF5 weights file; CheckpointError naming it when it is missing
    or damaged (h5py's own errors are long and name no file)."""
    import h5py

    if not Path(path).exists():
        raise CheckpointError(f"{path} is missing")

    def read(_name, item):
        if isinstance(item, h5py.Dataset):
            item[()]
        return None  # anything else stops the walk

    try:
        with h5py.File(path, "r") as weights:
            weights.visititems(read)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path} is damaged (truncated or not an HDF5 weights file: "
                              f"{reason})") from None


def latest(backup_dir: str | Path, warn: Callable[[str], None] | None = print) -> Checkpoint | None:
    """The newest checkpoint that reads back whole, or None when there is none. Each damaged
    newer one is named through `warn`; CheckpointError when checkpoints exist and none of them
    can be read."""
    backup_dir = Path(backup_dir)
    remove_stale_temporaries(backup_dir)
    problems = []
    for weights, metadata_path, epoch in _candidates(backup_dir):
        try:
            metadata = read_metadata(metadata_path, epoch)
            verify_weights(weights)
        except CheckpointError as err:
            problems.append(str(err))
            continue
        if warn:
            for problem in problems:
                warn(f"warning: {problem}; resuming from the checkpoint before it, "
                     f"{weights.parent} (end of epoch {metadata['epoch']}).")
        return Checkpoint(weights, metadata_path, metadata)
    if problems:
        raise CheckpointError(
            f"Cannot resume from {backup_dir}: {'; '.join(problems)}. No earlier checkpoint "
            "is readable; start the training again without --resume.")
    return None
