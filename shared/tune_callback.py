"""The Keras callback that feeds a search trial: it reports the task's validation metric at
every epoch's end and stops training when the pruner says so. It knows nothing of Optuna
(`report(step, value) -> prune?` is passed in), so it runs the same on TF and JAX.

A trial process registers it with `register()`; `shared.training.fit` adds every registered
callback to the ones it builds, so a task's training code needs nothing for tuning.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras

_SESSION: list[keras.callbacks.Callback] = []


def register(callback: keras.callbacks.Callback) -> None:
    """Adds `callback` to every later `shared.training.fit` call in this process."""
    _SESSION.append(callback)


def session_callbacks() -> list[keras.callbacks.Callback]:
    return list(_SESSION)


class MetricMissingError(KeyError):
    """The epoch logs have no value for the metric being tuned."""

    def __str__(self) -> str:
        return self.args[0]


class ReportMetric(keras.callbacks.Callback):
    """At each epoch's end: `report(step, logs[metric])`; when it returns True, stops training
    (`pruned` then holds the step). The step is Keras' epoch index (so a resumed run continues
    its count), plus the epochs of earlier fit calls (a task training in two phases)."""

    def __init__(self, metric: str, report: Callable[[int, float], bool]):
        super().__init__()
        self.metric, self.report = metric, report
        self.offset = self.next_step = 0
        self.values: list[tuple[int, float]] = []
        self.pruned: int | None = None

    def on_train_begin(self, logs=None):
        self.offset = self.next_step

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.metric not in logs:
            raise MetricMissingError(
                f"the metric {self.metric!r} is not in the epoch logs (they have: {', '.join(sorted(logs))}); "
                "this config has no validation split, or the task logs its metric under another name")
        step = self.offset + epoch
        self.next_step = step + 1
        value = float(logs[self.metric])
        self.values.append((step, value))
        if math.isfinite(value) and self.report(step, value) and self.pruned is None:
            self.pruned = step
            self.model.stop_training = True
