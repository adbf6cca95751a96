"""Callbacks: atomic resumable backups, a NaN guard that keeps the last good state, best weights.

Keras' BackupAndRestore writes its two files in place, one after the other; a kill between
or during those writes leaves a torn checkpoint. `AtomicBackupAndRestore` writes each
checkpoint as one folder renamed into place (`shared.checkpoints`), keeps the previous one,
and records the pipeline position (the global step), the other half of an exact resume.
No callback here ever writes non-finite weights.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras
import numpy as np

from shared import checkpoints
from shared.io import atomic_file


class EpochSeconds(keras.callbacks.Callback):
    """Adds `epoch_seconds` (wall time of the epoch, validation included) to the epoch's logs,
    so the CSV history keeps it and a resumed run still knows what its earlier epochs took.
    Put it before the CSV logger (callbacks share one logs dict, in list order)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._started


def weights_finite(model) -> bool:
    """True when every floating-point weight of `model` is finite (no NaN, no inf)."""
    for variable in model.weights:
        value = keras.ops.convert_to_numpy(variable)
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            return False
    return True


class AtomicBackupAndRestore(keras.callbacks.Callback):
    """Restores a checkpoint when training begins (`restore`, picked by the caller, who also
    starts the pipeline at its global step) and writes one at every epoch end, as one folder
    (`shared.checkpoints`). Broken (non-finite) weights are never written."""

    def __init__(self, backup_dir: str | Path, steps_per_epoch: int,
                 restore: checkpoints.Checkpoint | None = None):
        super().__init__()
        self.backup_dir = Path(backup_dir)
        self.steps_per_epoch = steps_per_epoch
        self.restore = restore
        self.unhealthy = False  # set by NaNGuard: never back up broken weights

    def _seed_generators(self) -> list:
        """The random layers' generators (augmentation, dropout): their state is not part of
        `save_weights`, but an exact resume needs it."""
        return [generator for layer in self.model._flatten_layers()
                for generator in getattr(layer, "_seed_generators", [])]

    def on_train_begin(self, logs=None):
        # A model fitted twice (two training phases) must not keep the first one's epoch.
        self.model._initial_epoch = None
        if self.restore is None:
            return
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        try:
            self.model.load_weights(str(self.restore.weights))
        except (OSError, ValueError, KeyError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise checkpoints.CheckpointError(
                f"Cannot resume from {self.restore.weights}: it does not fit this model "
                f"({reason}). Start the training again without --resume.") from None
        self.model._initial_epoch = self.restore.epoch
        states = self.restore.metadata.get("seed_states", [])
        generators = self._seed_generators()
        if len(states) == len(generators):
            for generator, value in zip(generators, states, strict=True):
                generator.state.assign(keras.ops.convert_to_tensor(value, generator.state.dtype))

    def on_epoch_end(self, epoch, logs=None):
        if self.unhealthy or not weights_finite(self.model):
            self.unhealthy = True
            return
        seed_states = [keras.ops.convert_to_numpy(g.state).tolist()
                       for g in self._seed_generators()]
        checkpoints.write(self.backup_dir, epoch + 1,
                          lambda path: self.model.save_weights(str(path)), {
                              "global_step": (epoch + 1) * self.steps_per_epoch,
                              "steps_per_epoch": self.steps_per_epoch,
                              "seed_states": seed_states,
                          })


def read_backup_state(backup_dir: str | Path) -> dict | None:
    """The metadata (epoch, global_step, steps_per_epoch, ...) of the newest readable
    checkpoint, or None when there is none."""
    try:
        checkpoint = checkpoints.latest(backup_dir, warn=None)
    except checkpoints.CheckpointError:
        return None
    return checkpoint.metadata if checkpoint else None


class NaNGuard(keras.callbacks.Callback):
    """Stops training when the loss becomes NaN/inf (at a step), or at an epoch's end when a
    validation loss or a weight did (the training loss can stay finite while the weights
    grow until the outputs overflow), and says where the last good checkpoint is
    (`shared.training.fit` then raises TrainingDivergedError with `message`). Put it first
    among the callbacks, so nothing saves the epoch it stops."""

    def __init__(self, backup: AtomicBackupAndRestore | None = None):
        super().__init__()
        self.backup = backup
        self.message = ""
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._stop(f"the loss became {loss} at epoch {self._epoch + 1}, step {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        if self.message:
            return
        for key, value in (logs or {}).items():
            if key.endswith("loss") and not math.isfinite(float(value)):
                return self._stop(f"the {key} became {value} at the end of epoch {epoch + 1}")
        if not weights_finite(self.model):
            self._stop(f"the weights became non-finite at the end of epoch {epoch + 1}")

    def _stop(self, what: str) -> None:
        self.model.stop_training = True
        where = "No checkpoint was written yet; fix the cause and train again"
        if self.backup is not None:
            self.backup.unhealthy = True
            state = read_backup_state(self.backup.backup_dir)
            if state:
                where = (f"The last good checkpoint (end of epoch {state['epoch']}) is kept in "
                         f"{self.backup.backup_dir}; fix the cause and rerun with --resume")
        self.message = (f"Training stopped: {what}; no model was saved. {where}. Typical "
                        "causes: a learning rate that is too high (try --set "
                        "train.learning_rate=...), float16 overflow (try --precision float32) "
                        "or bad input values.")


class EpochMetrics(keras.callbacks.Callback):
    """Adds metrics computed outside the compiled step (mAP, BLEU, verification AUC) to the
    epoch logs, so the CSV history, BestWeights, EarlyStopping and a search trial see them as
    they see Keras' own `val_*` values. `compute(model) -> {name: value}` runs at the end of
    the first epoch (the CSV logger fixes its columns then), of every `every`-th and of the
    last; other epochs log NaN, which the callbacks that read it skip. Nothing is computed once
    the NaN guard has stopped training (the weights are then broken). Put it after the guard
    and before the CSV logger."""

    def __init__(self, compute, every: int = 1, guard: NaNGuard | None = None):
        super().__init__()
        if every < 1:
            raise ValueError(f"EpochMetrics: every must be >= 1, got {every}")
        self.compute, self.every, self.guard = compute, every, guard
        self.names: list[str] = []

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        last = epoch + 1 == self.params.get("epochs")
        due = not self.names or (epoch + 1) % self.every == 0 or last
        if due and not (self.guard and self.guard.message):
            values = {name: float(value) for name, value in self.compute(self.model).items()}
            self.names = self.names or sorted(values)
        else:
            values = {}
        for name in self.names:
            logs[name] = values.get(name, math.nan)


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping, except that an epoch whose monitored value is NaN (an
    `EpochMetrics` value not computed that epoch) is not counted as one without improvement."""

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and not math.isfinite(float(value)):
            return
        super().on_epoch_end(epoch, logs)


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the best epoch (by `monitor`) in an atomically written file;
    never non-finite weights (a NaN epoch can still end with a finite validation metric)."""

    def __init__(self, path: str | Path, monitor: str = "val_loss", mode: str = "min",
                 guard: NaNGuard | None = None, best: tuple[float, int] | None = None):
        """`best`: (value, epoch) of the best epoch before a resume (its weights are in `path`)."""
        super().__init__()
        self.path, self.monitor, self.mode, self.guard = Path(path), monitor, mode, guard
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = None  # 1-based
        if best is not None and self.path.exists():
            self.best, self.best_epoch = best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        better = value < self.best if self.mode == "min" else value > self.best
        if better and not (self.guard and self.guard.message) and weights_finite(self.model):
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
        if (epoch + 1 > self.epochs - self.count and not (self.guard and self.guard.message)
                and weights_finite(self.model)):
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
