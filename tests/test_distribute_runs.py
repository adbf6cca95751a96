"""Data-parallel runs on CPU: four virtual devices give the loss trajectory of one device
with the same global batch, and two JAX processes on localhost train like one.

Each run is a subprocess (the device count is fixed when the backend starts): JAX with
XLA_FLAGS=--xla_force_host_platform_device_count=4, TensorFlow with four logical CPU devices.
One subprocess trains the same config twice, `--distribute none` (device 0 alone) then
`--distribute data_parallel` (all four), and prints both histories.

Tolerance: per-epoch training loss within 1e-4 (relative) for the tasks whose loss is one
global mean (measured: classification 1e-7 on TF and JAX, seq2seq 1e-7 on JAX), and 2e-2
for detection under TensorFlow, where each replica normalises its loss by its own targets
(MirroredStrategy; JAX computes the global loss).
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

TRAIN_TWICE = r"""
import csv, json, os, sys
backend, devices, task, workdir, then = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
args = sys.argv[6:]
if backend == "tensorflow":
    import tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * devices)
from shared.cli import run_task_command
results = {}
for name, mode in (("one", "none"), ("many", "data_parallel")):
    folder = os.path.join(workdir, name)
    command = then if mode != "none" else "train"  # `run`: evaluate + export the data-parallel model
    code = run_task_command(task, [command, "--workdir", folder, "--quiet", "--distribute", mode, *args])
    rows = list(csv.DictReader(open(os.path.join(folder, "logs", "history.csv"))))
    results[name] = {"code": code, "loss": [float(r["loss"]) for r in rows],
                     "val_loss": [float(r["val_loss"]) for r in rows if r.get("val_loss")]}
print("RESULT " + json.dumps(results))
"""


def _environment(backend: str, devices: int) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    env.pop("TF_CONFIG", None)
    return env


def train_twice(backend: str, task: str, tmp_path: Path, data_root: Path, *args: str, devices: int = 4,
                then: str = "train", timeout: int = 900) -> dict:
    """Trains on device 0 alone, then on `devices` devices (`then="run"`: also evaluates,
    exports and reports that model); returns both histories."""
    if backend == "jax":
        pytest.importorskip("jax")
    command = [sys.executable, "-c", TRAIN_TWICE, backend, str(devices), task, str(tmp_path), then,
               "--data-root", str(data_root), "--reports-dir", str(tmp_path / "reports"), *args]
    done = subprocess.run(command, cwd=REPO, env=_environment(backend, devices), capture_output=True,
                          text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    results = json.loads(lines[-1][len("RESULT "):])
    assert results["one"]["code"] == results["many"]["code"] == 0
    assert f"over {devices} devices" in done.stdout  # the data-parallel run said what it used
    return results


def assert_same_trajectory(results: dict, rtol: float) -> None:
    one, many = results["one"], results["many"]
    for key in ("loss", "val_loss"):
        assert len(one[key]) == len(many[key])
        assert many[key] == pytest.approx(one[key], rel=rtol), f"{key}: 1 device {one[key]}, 4 devices {many[key]}"


CLASSIFICATION = ("classification", "--preset", "smoke", "--set", "train.epochs=2",
                  "--set", "train.max_steps_per_epoch=4")


@pytest.mark.slow  # ~35 s on 2 idle cores, 173 s measured at load 12
def test_four_jax_devices_train_classification_like_one(tmp_path, data_root):
    """Augmentation on: JAX's random numbers do not depend on how the batch is sharded."""
    task, *args = CLASSIFICATION
    assert_same_trajectory(train_twice("jax", task, tmp_path, data_root, *args), rtol=1e-4)


@pytest.mark.slow
def test_four_tensorflow_devices_train_classification_like_one(tmp_path, data_root):
    """Augmentation off: under MirroredStrategy each replica draws its own random numbers."""
    task, *args = CLASSIFICATION
    results = train_twice("tensorflow", task, tmp_path, data_root, *args, "--set", "augment.translate=0",
                          then="run")
    assert_same_trajectory(results, rtol=1e-4)
    export_check = json.loads((tmp_path / "many" / "export" / "export_check.json").read_text())
    assert export_check and (tmp_path / "many" / "evaluation" / "results.json").exists()


@pytest.mark.slow
def test_four_jax_devices_train_seq2seq_like_one(tmp_path, data_root):
    results = train_twice("jax", "seq2seq", tmp_path, data_root, "--preset", "smoke",
                          "--set", "train.max_steps_per_epoch=6")
    assert_same_trajectory(results, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("backend, rtol", [("tensorflow", 2e-2), ("jax", 1e-4)])
def test_four_devices_train_detection_like_one(backend, rtol, tmp_path, data_root):
    results = train_twice(backend, "detection", tmp_path, data_root, "--preset", "smoke",
                          "--set", "train.epochs=2", "--set", "train.max_steps_per_epoch=5",
                          timeout=2400)  # TF traced the 4-replica detector for 867 s at load 12
    assert_same_trajectory(results, rtol=rtol)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def _history(folder: Path) -> list[float]:
    with open(folder / "logs" / "history.csv") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


@pytest.mark.slow
def test_two_jax_processes_train_the_smoke_preset_like_one(tmp_path, data_root):
    """Two processes on localhost (jax.distributed through the Keras variables), one CPU device
    each, `kts classification run --preset smoke --distribute data_parallel`: process 0 writes
    the run folder and evaluates, exports and reports; process 1 writes process-1/ inside it.
    The result is the single-process run's."""
    pytest.importorskip("jax")
    base = [sys.executable, "-m", "shared.cli", "classification", "run", "--preset", "smoke", "--quiet",
            "--data-root", str(data_root), "--reports-dir", str(tmp_path / "reports")]
    env = _environment("jax", 1)
    single = subprocess.run([*base, "--workdir", str(tmp_path / "single")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=900)
    assert single.returncode == 0, single.stderr[-3000:]
    port = _free_port()
    workers = [subprocess.Popen(
        [*base, "--workdir", str(tmp_path / "two"), "--distribute", "data_parallel"], cwd=REPO,
        env={**env, "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"localhost:{port}",
             "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": str(index)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for index in range(2)]
    outputs = [worker.communicate(timeout=900) for worker in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, f"{out[-2000:]}\n{err[-3000:]}"
    assert "2 processes (this is process 0)" in outputs[0][0]
    two, one = tmp_path / "two", tmp_path / "single"
    assert _history(two) == pytest.approx(_history(one), rel=1e-4)
    assert _history(two / "process-1") == pytest.approx(_history(two), rel=1e-6)
    accuracy = [json.loads((run / "evaluation" / "results.json").read_text())["accuracy"] for run in (two, one)]
    assert accuracy[0] == pytest.approx(accuracy[1], abs=1e-6)
    assert (two / "export" / "saved_model").is_dir() and (two / "report" / "index.html").exists()
    assert (two / "process-1" / "model.keras").exists() and not (two / "process-1" / "export").exists()
