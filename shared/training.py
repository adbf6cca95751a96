"""Training glue around `model.fit()`: optimizer + schedule from config, callbacks, resume.

`fit()` is the only training loop. Exact resume after a kill: the atomic backup restores
weights + optimizer state at the last finished epoch, and the training pipeline is rebuilt
starting at that epoch's global step (see `pipelines.builder.train_dataset`). A run whose
loss becomes NaN/inf raises TrainingDivergedError: it never returns a broken model.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import math
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import keras

from shared import checkpoints, distribute, tune_callback
from shared.callbacks import (
    AtomicBackupAndRestore,
    AverageLastEpochs,
    BestWeights,
    EarlyStopping,
    EpochMetrics,
    EpochSeconds,
    NaNGuard,
)
from shared.checkpoints import TrainingDivergedError
from shared.config import TrainConfig
from shared.io import atomic_write_text
from shared.runtime import tensorflow_available


def learning_rate_factor(config: TrainConfig) -> float:
    """`train.lr_scaling`: 1 (none), or batch_size / lr_base_batch_size (linear scaling with
    the global batch, Goyal et al. 2017)."""
    if config.lr_scaling == "linear":
        return config.batch_size / config.lr_base_batch_size
    return 1.0


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int, scale: float = 1.0,
                           epochs: int | None = None):
    """Constant, warmup+cosine or step decay, in optimizer steps, over `epochs`."""
    peak = config.learning_rate * scale * learning_rate_factor(config)
    total = max(1, (epochs or config.epochs) * steps_per_epoch)
    warmup = int(config.warmup_epochs * steps_per_epoch)
    if config.schedule == "step":
        boundaries = [int(e * steps_per_epoch) for e in config.step_decay_epochs]
        values = [peak * config.step_decay_factor**i for i in range(len(boundaries) + 1)]
        if not boundaries:
            return peak
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    if config.schedule == "constant" and warmup == 0:
        return peak
    alpha = 1.0 if config.schedule == "constant" else 0.0
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(peak, decay_steps=total, alpha=alpha)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, total - warmup), alpha=alpha, warmup_target=peak,
        warmup_steps=warmup)


def make_optimizer(config: TrainConfig, steps_per_epoch: int, scale: float = 1.0,
                   epochs: int | None = None):
    schedule = learning_rate_schedule(config, steps_per_epoch, scale, epochs)
    clip = {"global_clipnorm": config.gradient_clip_norm} if config.gradient_clip_norm else {}
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=config.momentum, nesterov=True,
                                         weight_decay=config.weight_decay or None, **clip)
    elif config.optimizer == "adam":
        optimizer = keras.optimizers.Adam(schedule, **clip)
    else:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay, **clip)
    if config.weight_decay and config.optimizer != "adam":
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def jit_compile_flag(config: TrainConfig):
    return {"auto": "auto", "true": True, "false": False}[config.jit_compile]


def epochs_seconds(history: dict[str, list[float]]) -> float | None:
    """Total wall time of every epoch in the history, across resumes (None when an epoch's
    time is unknown: a log written before `epoch_seconds` existed)."""
    seconds = history.get("epoch_seconds", [])
    if not seconds or not all(math.isfinite(s) for s in seconds):
        return None
    return float(sum(seconds))


def read_history(csv_path: str | Path) -> dict[str, list[float]]:
    """The full training history from the CSV log (survives resumes)."""
    path = Path(csv_path)
    if not path.exists():
        return {}
    history: dict[str, list[float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key == "epoch":
                    continue
                try:
                    history.setdefault(key, []).append(float(value))
                except (TypeError, ValueError):
                    history.setdefault(key, []).append(float("nan"))
    return history


def trim_history(csv_path: str | Path, epochs: int) -> None:
    """Keeps the CSV log's rows of the first `epochs` epochs: a resume from an earlier
    checkpoint (the newest was damaged) must not leave the later rows twice."""
    path = Path(csv_path)
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "epoch" not in rows[0]:
        return
    column = rows[0].index("epoch")
    kept = [rows[0]] + [row for row in rows[1:] if row and int(float(row[column])) < epochs]
    if len(kept) != len(rows):
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(kept)
        atomic_write_text(path, text.getvalue())


def _best_so_far(csv_path: Path, monitor: str, mode: str) -> tuple[float, int] | None:
    """(value, 1-based epoch) of the first best finite `monitor` value among the epochs a
    resumed run already has."""
    values = [(v, epoch) for epoch, v in enumerate(read_history(csv_path).get(monitor, []), 1) if math.isfinite(v)]
    if not values:
        return None
    return (min if mode == "min" else max)(values, key=lambda pair: pair[0])


def fit(model: keras.Model, *, make_train_data: Callable[[int], object], validation_data,
        config: TrainConfig, steps_per_epoch: int, checkpoints_dir: Path, logs_dir: Path,
        resume: bool = False, verbose: int = 1, monitor: str = "val_loss",
        monitor_mode: str = "min", epochs: int | None = None,
        extra_callbacks: list | None = None, epoch_metrics=None, epoch_metrics_every: int = 1) -> dict:
    """Runs `model.fit` with the suite's callbacks; returns {history, stopped_reason, ...}.

    `make_train_data(start_step)` builds the training stream starting at a global step.
    `epoch_metrics(model) -> {name: value}` adds metrics computed outside the compiled step
    (a task's validation mAP, BLEU or AUC) to the epoch logs (`EpochMetrics`), so `monitor`,
    the CSV history and a search trial can use them.
    Without `resume`, earlier checkpoints and logs in these folders are cleared. Raises
    TrainingDivergedError when the loss becomes NaN/inf (the model in memory is then broken).
    """
    backup_dir = Path(checkpoints_dir) / "backup"
    epochs = epochs or config.epochs
    if not resume:
        shutil.rmtree(backup_dir, ignore_errors=True)
        shutil.rmtree(Path(logs_dir), ignore_errors=True)
        shutil.rmtree(Path(checkpoints_dir) / "epochs", ignore_errors=True)
    Path(logs_dir).mkdir(parents=True, exist_ok=True)
    restore = checkpoints.latest(backup_dir) if resume else None
    state = restore.metadata if restore else None
    start_step = 0
    if state:
        if state["steps_per_epoch"] != steps_per_epoch:
            raise ValueError(
                f"Cannot resume from {backup_dir}: it was written with steps_per_epoch="
                f"{state['steps_per_epoch']}, this run has {steps_per_epoch} (batch size or data "
                "changed). Start a new run without --resume.")
        start_step = state["global_step"]
        trim_history(Path(logs_dir) / "history.csv", state["epoch"])
        print(f"Resuming from {restore.weights.parent}: epoch {state['epoch']}, step {start_step}.")
    elif resume:
        print(f"--resume: no checkpoint in {backup_dir}; starting from scratch.")

    backup = AtomicBackupAndRestore(backup_dir, steps_per_epoch, restore)
    nan_guard = NaNGuard(backup)
    best = BestWeights(Path(checkpoints_dir) / "best.weights.h5", monitor, monitor_mode, nan_guard,
                       best=_best_so_far(Path(logs_dir) / "history.csv", monitor, monitor_mode) if state else None)
    callbacks = [
        nan_guard,  # first: at an epoch's end it decides before anything saves that epoch
        backup,
        EpochSeconds(),  # before the CSV logger, which then records it
    ]
    if epoch_metrics is not None:  # also before the CSV logger, BestWeights and EarlyStopping
        callbacks.append(EpochMetrics(epoch_metrics, epoch_metrics_every, nan_guard))
    callbacks += [
        keras.callbacks.CSVLogger(str(Path(logs_dir) / "history.csv"), append=bool(state)),
        best,
    ]
    if tensorflow_available() and importlib.util.find_spec("tensorboard") is not None:
        callbacks.append(keras.callbacks.TensorBoard(str(Path(logs_dir) / "tensorboard")))
    if config.early_stopping_patience > 0:
        callbacks.append(EarlyStopping(
            monitor=monitor, mode=monitor_mode, patience=config.early_stopping_patience))
    average = None
    if config.average_last_epochs > 1:
        average = AverageLastEpochs(Path(checkpoints_dir) / "epochs", config.average_last_epochs, epochs,
                                    nan_guard)
        callbacks.append(average)
    callbacks.extend(extra_callbacks or [])
    callbacks.extend(distribute.fit_callbacks())
    callbacks.extend(tune_callback.session_callbacks())  # a search trial's metric reporter, if any

    started = time.perf_counter()
    with warnings.catch_warnings():
        # Keras cannot know a grain validation set's length and warns when it ends; the
        # training stream is infinite, so this message never concerns it.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        model.fit(make_train_data(start_step), validation_data=validation_data, epochs=epochs,
                  steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose,
                  shuffle=False)
    if nan_guard.message:
        raise TrainingDivergedError(nan_guard.message)
    history = read_history(Path(logs_dir) / "history.csv")
    return {
        "history": history,
        "stopped_reason": nan_guard.message or None,
        "seconds": time.perf_counter() - started,  # this process only; see epochs_seconds
        "epochs_seconds": epochs_seconds(history),
        "resumed_from_step": start_step,
        "averaged_epochs": average.averaged if average else [],
        # the best epoch by `monitor` (resumed epochs included) and its weights' file; None
        # when no epoch had a finite value
        "best": ({"monitor": monitor, "value": best.best, "epoch": best.best_epoch, "weights": best.path}
                 if best.best_epoch is not None else None),
    }
