"""--distribute (shared.distribute): settings, bad input, and the per-process slices of the
pipelines. The runs on virtual devices and several processes are in test_distribute_runs.py."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from pipelines import builder
from shared import distribute
from shared.config import ConfigError, TrainConfig


@pytest.mark.parametrize("text, message", [
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}}', "needs a 'cluster' and a 'task'"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "task.type must be"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     "task.index must be an integer in [0, 2)"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "'host:port' strings"),
])
def test_malformed_tf_config_is_a_clear_error(text, message):
    with pytest.raises(distribute.DistributeError, match=re.escape(message)):
        distribute.parse_tf_config(text)


def test_tf_config_gives_this_worker_and_the_worker_count():
    cluster = {"chief": ["h0:1"], "worker": ["h1:1", "h2:1"]}
    found = distribute.parse_tf_config(json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    assert found == distribute.Processes(2, 3) and not found.chief
    assert distribute.parse_tf_config(json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})).chief


def test_process_variables_are_checked(monkeypatch):
    monkeypatch.delenv(distribute.NUM_PROCESSES, raising=False)
    assert distribute.jax_process_env() is None
    monkeypatch.setenv(distribute.NUM_PROCESSES, "2")
    monkeypatch.setenv(distribute.PROCESS_ID, "2")
    monkeypatch.setenv(distribute.JOB_ADDRESSES, "localhost:1234")
    with pytest.raises(distribute.DistributeError, match="KERAS_DISTRIBUTION_PROCESS_ID must be"):
        distribute.jax_process_env()
    monkeypatch.setenv(distribute.PROCESS_ID, "1")
    monkeypatch.setenv(distribute.JOB_ADDRESSES, "localhost")
    with pytest.raises(distribute.DistributeError, match="host:port"):
        distribute.jax_process_env()
    monkeypatch.setenv(distribute.JOB_ADDRESSES, "10.0.0.1:1234,10.0.0.2:1234")
    assert distribute.jax_process_env() == ("10.0.0.1:1234,10.0.0.2:1234", 2, 1)


def test_a_global_batch_that_does_not_split_over_the_devices_names_both(monkeypatch):
    monkeypatch.setattr(distribute, "local_devices", lambda: [f"cpu:{i}" for i in range(4)])
    with pytest.raises(distribute.DistributeError) as error:
        distribute.plan("data_parallel", 30)
    assert "train.batch_size=30" in str(error.value) and "4 devices" in str(error.value)
    assert "train.batch_size=28" in str(error.value)  # what to use instead
    chosen = distribute.plan("auto", 32)
    assert chosen.mode == "data_parallel" and "8 per device" in chosen.note


def test_one_device_runs_without_distribution_and_says_so(monkeypatch):
    monkeypatch.setattr(distribute, "local_devices", lambda: ["cpu:0"])
    chosen = distribute.plan("data_parallel", 30)
    assert chosen.mode == "none" and "only one device" in chosen.note
    assert distribute.plan("auto", 30).note == ""  # auto on one device: nothing to say
    with pytest.raises(distribute.DistributeError, match="must be one of"):
        distribute.plan("mirrored", 30)


def test_learning_rate_scaling_is_stated_in_the_config():
    from shared.training import learning_rate_factor

    assert learning_rate_factor(TrainConfig(batch_size=512)) == 1.0
    assert learning_rate_factor(TrainConfig(batch_size=512, lr_scaling="linear", lr_base_batch_size=128)) == 4.0
    with pytest.raises(ConfigError, match="lr_base_batch_size > 0"):
        TrainConfig(lr_scaling="linear").validate()


class _Numbers:
    """A source of numbered samples (index = value), with and without the vectorised path."""

    def __init__(self, n: int, gather: bool):
        self.n = n
        if gather:
            self.gather = lambda indices: {"x": np.asarray(indices)}

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        return {"x": np.asarray(index)}


def _noise(element, rng):  # a random element op: its draw must follow the sample, not the process
    return {"x": element["x"], "noise": rng.random()}


def _mix(batch, rng):  # a batch op: it sees the whole global batch
    return {**batch, "mixed": batch["x"] + rng.permutation(batch["x"])}


@pytest.mark.parametrize("kind", ["gather", "elements", "random_ops", "batch_ops"])
def test_processes_read_disjoint_slices_that_make_the_global_batch(kind):
    source = _Numbers(50, gather=kind == "gather")
    options = {"random_ops": [_noise]} if kind == "random_ops" else {}
    if kind == "batch_ops":
        options = {"batch_ops": [_mix]}

    def batches(shard, start, count=8):
        stream = iter(builder.train_dataset(source, batch_size=8, seed=3, start_step=start,
                                            shard=shard, threads=1, **options))
        return [next(stream) for _ in range(count)]  # past an epoch's end (6 steps)

    whole = batches((0, 1), 0, 13)
    for start in (0, 5):  # from the start and resumed at step 5
        parts = [batches((p, 2), start) for p in range(2)]
        for step, (first, second) in enumerate(zip(*parts)):
            joined = {key: np.concatenate([first[key], second[key]]) for key in first}
            assert set(joined) == set(whole[start + step])
            for key in joined:
                np.testing.assert_array_equal(joined[key], whole[start + step][key])
            assert len(first["x"]) == 4


def test_step_batches_are_sliced_by_process_and_must_split():
    def make(step):
        return {"a": np.arange(6) + 10 * step, "b": np.ones((6, 2))}

    rows = [next(iter(builder.step_dataset(make, start_step=2, shard=(p, 3)))) for p in range(3)]
    np.testing.assert_array_equal(np.concatenate([r["a"] for r in rows]), make(2)["a"])
    assert rows[1]["b"].shape == (2, 2)
    with pytest.raises(ValueError, match="does not split evenly over 4 processes"):
        next(iter(builder.step_dataset(make, shard=(0, 4))))
    with pytest.raises(ValueError, match="batch_size=6 .* over 4 processes"):
        builder.train_dataset(_Numbers(50, True), batch_size=6, seed=0, shard=(1, 4))


def test_the_scope_sets_and_restores_the_process_shard(monkeypatch):
    monkeypatch.setattr(distribute, "local_devices", lambda: ["cpu:0"])
    with distribute.scope("data_parallel", 8) as chosen:
        assert chosen.mode == "none" and builder.process_shard() == (0, 1)
    assert builder.process_shard() == (0, 1)


@pytest.mark.backend
def test_data_parallel_on_one_device_trains_and_says_so(tmp_path, data_root, capsys):
    from shared.testing import run_cli

    code = run_cli("classification", "train", tmp_path / "run", "--preset", "smoke", "--distribute",
                   "data_parallel", "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=2",
                   data_root=data_root)
    assert code == 0
    assert "only one device here" in capsys.readouterr().out
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["distribute"] == "data_parallel"


@pytest.mark.backend
def test_malformed_tf_config_stops_training_with_one_line(tmp_path, data_root, monkeypatch, capsys):
    import keras

    from shared.cli import main

    if keras.backend.backend() != "tensorflow":
        pytest.skip("TF_CONFIG is read under TensorFlow")
    monkeypatch.setattr(distribute, "_processes", None)
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker"}}')
    code = main(["classification", "train", "--preset", "smoke", "--workdir", str(tmp_path),
                 "--distribute", "data_parallel"])
    assert code == 2
    assert "TF_CONFIG task.index must be an integer" in capsys.readouterr().err


@pytest.mark.backend
def test_several_tensorflow_workers_are_refused_with_the_reason(tmp_path, monkeypatch, capsys):
    """Keras 3.15's fit() fails under MultiWorkerMirroredStrategy (measured with two workers
    on localhost): TF_CONFIG with several workers stops at once and points to JAX."""
    import keras

    from shared.cli import main

    if keras.backend.backend() != "tensorflow":
        pytest.skip("TF_CONFIG is read under TensorFlow")
    monkeypatch.setattr(distribute, "_processes", None)
    cluster = {"worker": ["localhost:1", "localhost:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    assert main(["classification", "train", "--preset", "smoke", "--workdir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "TF_CONFIG names 2 workers" in error and "--backend jax" in error
