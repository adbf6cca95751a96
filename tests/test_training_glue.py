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

    from shared import checkpoints
    from shared.callbacks import AtomicBackupAndRestore, NaNGuard

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    backup = AtomicBackupAndRestore(tmp_path / "backup", steps_per_epoch=1)
    guard = NaNGuard(backup)
    x = np.ones((4, 2), np.float32)
    model.fit(x, np.ones((4, 1)), epochs=1, verbose=0, callbacks=[backup, guard])
    good = (tmp_path / "backup" / "epoch-0001" / checkpoints.WEIGHTS).read_bytes()
    bad_y = np.full((4, 1), np.nan, np.float32)
    backup = AtomicBackupAndRestore(tmp_path / "backup", steps_per_epoch=1,
                                    restore=checkpoints.latest(tmp_path / "backup"))
    guard = NaNGuard(backup)
    model.fit(x, bad_y, epochs=2, verbose=0, callbacks=[backup, guard])
    assert model.stop_training and "loss became nan" in guard.message
    assert "end of epoch 1" in guard.message
    assert (tmp_path / "backup" / "epoch-0001" / checkpoints.WEIGHTS).read_bytes() == good
    assert checkpoints.folders(tmp_path / "backup") == [tmp_path / "backup" / "epoch-0001"]
    assert not math.isfinite(float("nan"))


def test_average_last_epochs_sets_the_mean_of_their_weights_and_survives_a_resume(tmp_path):
    import keras

    from shared.callbacks import AverageLastEpochs

    def model_and_data():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization()])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
        return model, x, x[:, :2] * 3.0

    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append([keras.ops.convert_to_numpy(v).copy() for v in self.model.weights])

    model, x, y = model_and_data()
    average = AverageLastEpochs(tmp_path / "epochs", count=3, epochs=4)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[Record(), average])  # a run cut after epoch 2
    assert average.averaged == [] and [p.name for p in sorted((tmp_path / "epochs").iterdir())] == [
        "epoch-0002.weights.h5"]
    model.fit(x, y, initial_epoch=2, epochs=4, verbose=0, callbacks=[Record(), average])  # resumed
    assert average.averaged == [2, 3, 4]
    for variable, *epochs in zip(model.weights, *seen[1:]):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), np.mean(epochs, axis=0), rtol=1e-6,
                                   atol=1e-7)
    assert not np.allclose(keras.ops.convert_to_numpy(model.weights[0]), seen[-1][0])  # not the last epoch


def test_average_last_epochs_must_fit_in_the_epochs():
    from shared.config import ConfigError

    with pytest.raises(ConfigError, match="train.average_last_epochs must be in"):
        TrainConfig(epochs=3, average_last_epochs=4).validate()


def test_epoch_metrics_reach_the_history_best_weights_and_a_trial_reporter(tmp_path):
    import keras

    from shared import training, tune_callback
    from shared.callbacks import EpochMetrics

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    x = np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    calls = []

    def score(m):  # a metric computed outside the compiled step, like mAP or BLEU
        calls.append(1)
        return {"val_score": -float(np.mean((keras.ops.convert_to_numpy(m(x)) - y) ** 2))}

    def batches():
        while True:
            yield x, y

    reported = []
    reporter = tune_callback.ReportMetric("val_score", lambda step, value: reported.append((step, value)) or False)
    tune_callback.register(reporter)
    try:
        result = training.fit(model, make_train_data=lambda start: batches(),
                              validation_data=None, config=TrainConfig(epochs=5), steps_per_epoch=4,
                              checkpoints_dir=tmp_path / "checkpoints", logs_dir=tmp_path / "logs",
                              verbose=0, monitor="val_score", monitor_mode="max", epoch_metrics=score,
                              epoch_metrics_every=2)
    finally:
        tune_callback._SESSION.remove(reporter)
    history = result["history"]["val_score"]
    assert len(calls) == 4  # epochs 1 (the first), 2, 4 (every 2nd) and 5 (the last)
    assert [math.isfinite(v) for v in history] == [True, True, False, True, True]
    assert [step for step, _ in reported] == [0, 1, 3, 4]
    assert (tmp_path / "checkpoints" / "best.weights.h5").exists()
    with pytest.raises(ValueError, match="every must be >= 1"):
        EpochMetrics(score, every=0)


def test_early_stopping_skips_epochs_whose_metric_was_not_computed():
    from shared.callbacks import EarlyStopping

    stopper = EarlyStopping(monitor="val_score", mode="max", patience=2)
    stopper.set_model(type("M", (), {"stop_training": False})())
    stopper.on_train_begin()
    for epoch, value in enumerate([0.5, math.nan, math.nan, math.nan, 0.4]):
        stopper.on_epoch_end(epoch, {"val_score": value})
    assert stopper.wait == 1 and not stopper.model.stop_training  # only the 0.4 epoch counted


def test_a_resumed_fit_keeps_the_best_value_of_its_earlier_epochs(tmp_path):
    import keras

    from shared import training

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(1).normal(size=(8, 2)).astype(np.float32)

    def batches():
        while True:
            yield x, x.sum(axis=1, keepdims=True)

    scores = iter([0.9, 0.2, 0.5])  # epochs 1, 2 (killed after 2), 3 (resumed): 0.9 stays the best

    def run(epochs, resume):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        return training.fit(model, make_train_data=lambda start: batches(), validation_data=None,
                            config=TrainConfig(epochs=3), epochs=epochs, steps_per_epoch=2,
                            checkpoints_dir=tmp_path / "checkpoints", logs_dir=tmp_path / "logs", resume=resume,
                            verbose=0, monitor="val_score", monitor_mode="max",
                            epoch_metrics=lambda m: {"val_score": next(scores)})

    best = tmp_path / "checkpoints" / "best.weights.h5"
    run(2, resume=False)
    written = best.stat().st_mtime_ns
    result = run(3, resume=True)
    assert best.stat().st_mtime_ns == written  # 0.5 after the resume is not better than 0.9
    assert result["best"] == {"monitor": "val_score", "value": 0.9, "epoch": 1, "weights": best}
