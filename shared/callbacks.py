"""Callbacks: atomic resumable backups, a NaN guard that keeps the last good state, best weights.

Keras' BackupAndRestore writes its files in place; a kill during that write leaves a torn
checkpoint. `AtomicBackupAndRestore` keeps its restore logic and writes through temporary
files renamed into place. Its metadata also records the pipeline position (the global
step), the other half of an exact resume.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras
import numpy as np

from shared.io import atomic_file, atomic_write_json


class EpochSeconds(keras.callbacks.Callback):
    """Adds `epoch_seconds` (wall time of the epoch, validation included) to the epoch's logs,
    so the CSV history keeps it and a resumed run still knows what its earlier epochs took.
    Put it before the CSV logger (callbacks share one logs dict, in list order)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._started


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore at epoch ends, written atomically, with the pipeline's global step."""

    def __init__(self, backup_dir: str | Path, steps_per_epoch: int):
        super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=False,
                         double_checkpoint=False)
        self.steps_per_epoch = steps_per_epoch
        self.unhealthy = False  # set by NaNGuard: never back up broken weights

    def _seed_generators(self) -> list:
        """The random layers' generators (augmentation, dropout): their state is not part of
        `save_weights`, but an exact resume needs it."""
        return [generator for layer in self.model._flatten_layers()
                for generator in getattr(layer, "_seed_generators", [])]

    def _save_model(self):
        if self.unhealthy:
            return
        with atomic_file(self._weights_path, suffix=".weights.h5") as tmp:
            self.model.save_weights(str(tmp))
        seed_states = [keras.ops.convert_to_numpy(g.state).tolist()
                       for g in self._seed_generators()]
        atomic_write_json(self._training_metadata_path, {
            "epoch": self._current_epoch,
            "batch": self._last_batch_seen,
            "global_step": self._current_epoch * self.steps_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "seed_states": seed_states,
        })

    def _load_model(self):
        super()._load_model()
        state = read_backup_state(self.backup_dir)
        generators = self._seed_generators()
        if state and len(state.get("seed_states", [])) == len(generators):
            for generator, value in zip(generators, state["seed_states"], strict=True):
                generator.state.assign(keras.ops.convert_to_tensor(value, generator.state.dtype))


def read_backup_state(backup_dir: str | Path) -> dict | None:
    """The metadata of a backup (epoch, global_step, steps_per_epoch), or None if absent."""
    path = Path(backup_dir) / "training_metadata.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


class NaNGuard(keras.callbacks.Callback):
    """Stops training when the loss is NaN/inf and says where the last good checkpoint is."""

    def __init__(self, backup: AtomicBackupAndRestore | None = None):
        super().__init__()
        self.backup = backup
        self.message = ""
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        self.model.stop_training = True
        where = "no checkpoint was written yet"
        if self.backup is not None:
            self.backup.unhealthy = True
            state = read_backup_state(self.backup.backup_dir)
            if state:
                where = (f"the last good checkpoint (end of epoch {state['epoch']}) is kept in "
                         f"{self.backup.backup_dir}; fix the cause and rerun with --resume")
        self.message = (f"Training stopped: the loss became {loss} at epoch {self._epoch + 1}, "
                        f"step {batch + 1}. {where}. Typical causes: a learning rate that is too "
                        "high (try --set train.learning_rate=...), float16 overflow (try "
                        "--precision float32) or bad input values.")
        print(self.message, flush=True)


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the best epoch (by `monitor`) in an atomically written file."""

    def __init__(self, path: str | Path, monitor: str = "val_loss", mode: str = "min"):
        super().__init__()
        self.path, self.monitor, self.mode = Path(path), monitor, mode
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        better = value < self.best if self.mode == "min" else value > self.best
        if better:
            self.best, self.best_epoch = float(value), epoch + 1
            with atomic_file(self.path, suffix=".weights.h5") as tmp:
                self.model.save_weights(str(tmp))


class AverageLastEpochs(keras.callbacks.Callback):
    """Checkpoint averaging (as in the Transformer paper and fairseq): keeps the weights of
    the last `count` of `epochs` epochs in files (so a resumed run still has the earlier
    ones) and, when training ends, sets the model to their element-wise mean. Variables that
    are not floating point keep the last epoch's value. Nothing is averaged after a NaN stop
    (`guard`) or when fewer than two of those epochs were reached."""

    def __init__(self, folder: str | Path, count: int, epochs: int, guard: NaNGuard | None = None):
        super().__init__()
        self.folder, self.count, self.epochs, self.guard = Path(folder), count, epochs, guard
        self.averaged: list[int] = []

    def path(self, epoch_number: int) -> Path:
        return self.folder / f"epoch-{epoch_number:04d}.weights.h5"

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 > self.epochs - self.count and not (self.guard and self.guard.message):
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_file(self.path(epoch + 1), suffix=".weights.h5") as tmp:
                self.model.save_weights(str(tmp))

    def on_train_end(self, logs=None):
        if self.guard and self.guard.message:
            return
        numbers = [n for n in range(max(1, self.epochs - self.count + 1), self.epochs + 1)
                   if self.path(n).exists()]
        if len(numbers) < 2:
            return
        variables = self.model.weights
        sums = None
        for number in numbers:
            self.model.load_weights(str(self.path(number)))
            values = [keras.ops.convert_to_numpy(v) for v in variables]
            sums = ([v.astype(np.float64) for v in values] if sums is None
                    else [s + v for s, v in zip(sums, values)])
        for variable, total, last in zip(variables, sums, values):
            if np.issubdtype(last.dtype, np.floating):
                variable.assign((total / len(numbers)).astype(last.dtype))
        self.averaged = numbers
        print(f"Averaged the weights of epochs {numbers[0]}-{numbers[-1]} ({len(numbers)} checkpoints).")
