"""Callbacks and schedules of shared.training."""

import math

import numpy as np
import pytest

from shared.config import TrainConfig

pytestmark = pytest.mark.backend


def test_warmup_cosine_schedule_shape():
    from shared.training import learning_rate_schedule

    schedule = learning_rate_schedule(TrainConfig(epochs=10, learning_rate=0.1,
                                                  warmup_epochs=1), steps_per_epoch=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100)]
    assert values[0] == pytest.approx(0.0, abs=1e-6)
    assert values[1] == pytest.approx(0.05, rel=1e-3)
    assert values[2] == pytest.approx(0.1, rel=1e-3)
    assert 0.0 < values[3] < 0.1 and values[4] == pytest.approx(0.0, abs=1e-6)


def test_step_decay_schedule():
    from shared.training import learning_rate_schedule

    schedule = learning_rate_schedule(TrainConfig(epochs=10, learning_rate=1.0, schedule="step",
                                                  step_decay_epochs=(2, 4)), steps_per_epoch=5)
    assert [float(schedule(s)) for s in (0, 11, 21)] == pytest.approx([1.0, 0.1, 0.01])


def test_nan_guard_stops_and_keeps_the_last_good_backup(tmp_path):
    import keras

    from shared.callbacks import AtomicBackupAndRestore, NaNGuard

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    backup = AtomicBackupAndRestore(tmp_path / "backup", steps_per_epoch=1)
    guard = NaNGuard(backup)
    x = np.ones((4, 2), np.float32)
    model.fit(x, np.ones((4, 1)), epochs=1, verbose=0, callbacks=[backup, guard])
    good = (tmp_path / "backup" / "latest.weights.h5").read_bytes()
    bad_y = np.full((4, 1), np.nan, np.float32)
    model.fit(x, bad_y, epochs=2, verbose=0, callbacks=[backup, guard])
    assert model.stop_training and "loss became nan" in guard.message
    assert "end of epoch 1" in guard.message
    assert (tmp_path / "backup" / "latest.weights.h5").read_bytes() == good
    assert not math.isfinite(float("nan"))
