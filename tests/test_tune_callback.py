"""The trial's metric reporter: a plain Keras callback, so it runs the same under TF and JAX."""

import numpy as np
import pytest


def tiny_model():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


@pytest.mark.backend
def test_report_metric_reports_each_epoch_and_stops_when_pruned():
    from shared.tune_callback import MetricMissingError, ReportMetric

    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = np.arange(32) % 3
    reported = []

    def report(step, value):
        reported.append((step, value))
        return step == 1  # the pruner says stop after the second epoch

    model = tiny_model()
    callback = ReportMetric("val_accuracy", report)
    history = model.fit(x, y, validation_data=(x, y), epochs=5, batch_size=16, verbose=0, callbacks=[callback])
    assert [step for step, _ in reported] == [0, 1]
    assert len(history.history["loss"]) == 2 and callback.pruned == 1
    assert reported[1][1] == pytest.approx(history.history["val_accuracy"][1])

    # a second fit (a task's second training phase) continues the step count
    phases = ReportMetric("val_accuracy", lambda step, value: False)
    model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=[phases])
    model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=[phases])
    assert [step for step, _ in phases.values] == [0, 1, 2, 3] and phases.pruned is None

    with pytest.raises(MetricMissingError, match="no validation split"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[ReportMetric("val_accuracy", report)])
