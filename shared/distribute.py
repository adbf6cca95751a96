"""Data-parallel training on the engines Keras already has (`--distribute`, `train.distribute`).

- `none`: one device (the default).
- `data_parallel`: every local device, and every process when several are launched:
  JAX: `keras.distribution.DataParallel` over `keras.distribution.list_devices()` (all
  processes' devices once `jax.distributed` is up); TensorFlow: `tf.distribute.
  MirroredStrategy` over the local GPUs (else the logical CPUs) (`shared.distribute_tf`,
  imported only under TensorFlow). A TF_CONFIG naming several workers is refused with the
  reason: Keras 3.15's fit() fails under MultiWorkerMirroredStrategy (see
  `initialize_processes`); several hosts train with JAX.
- `auto`: `data_parallel` when there is more than one device or process, else `none`.

`train.batch_size` is the global batch (all devices, all processes together): the same
config gives the same batches and the same loss trajectory on 1 or N devices. Each process
reads only its slice of every global batch (`pipelines.builder.set_process_shard`), a pure
function of (seed, step), so `--resume` stays exact. `train.lr_scaling=linear` scales the
learning rate by `batch_size / lr_base_batch_size` (`shared.training.make_optimizer`).

Several processes (hosts), JAX: every process runs the same `kts ... train` command with
`KERAS_DISTRIBUTION_JOB_ADDRESSES` (the coordinator's host:port first),
`KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID` (the variables
`keras.distribution.initialize` reads).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os

MODES = ("none", "auto", "data_parallel")
JOB_ADDRESSES, NUM_PROCESSES, PROCESS_ID = ("KERAS_DISTRIBUTION_JOB_ADDRESSES",
                                            "KERAS_DISTRIBUTION_NUM_PROCESSES",
                                            "KERAS_DISTRIBUTION_PROCESS_ID")


class DistributeError(ValueError):
    """A distribution setting that cannot work; the message names what and why."""


@dataclasses.dataclass(frozen=True)
class Processes:
    """Which process this is among how many (1 process unless launched as several)."""

    index: int = 0
    count: int = 1

    @property
    def chief(self) -> bool:
        return self.index == 0


_processes: Processes | None = None  # set once by `initialize_processes`


def _env_int(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise DistributeError(f"{name} must be an integer. Received: {name}={text!r}") from None


def parse_tf_config(text: str) -> Processes:
    """(task index, number of workers) from a TF_CONFIG value; a clear error when malformed."""
    expected = ('expected JSON like {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                '"task": {"type": "worker", "index": 0}}')
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise DistributeError(f"TF_CONFIG is not valid JSON ({err}); {expected}. "
                              f"Received: {text[:200]!r}") from None
    cluster = value.get("cluster") if isinstance(value, dict) else None
    task = value.get("task") if isinstance(value, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise DistributeError(f"TF_CONFIG needs a 'cluster' and a 'task' object; {expected}. "
                              f"Received: {text[:200]!r}")
    task_type, index = task.get("type"), task.get("index")
    if task_type not in ("worker", "chief"):
        raise DistributeError(f"TF_CONFIG task.type must be 'worker' or 'chief' (parameter servers "
                              f"are not supported). Received: task.type={task_type!r}")
    jobs = {name: addresses for name, addresses in cluster.items() if name in ("chief", "worker")}
    for name, addresses in jobs.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            raise DistributeError(f"TF_CONFIG cluster.{name} must be a list of 'host:port' strings. "
                                  f"Received: {addresses!r}")
    if task_type not in jobs:
        raise DistributeError(f"TF_CONFIG task.type is {task_type!r} but cluster has no {task_type!r} "
                              f"list. Received: cluster keys {sorted(cluster)}")
    if not isinstance(index, int) or not 0 <= index < len(jobs[task_type]):
        raise DistributeError(f"TF_CONFIG task.index must be an integer in [0, {len(jobs[task_type])}) "
                              f"(cluster.{task_type} has {len(jobs[task_type])} addresses). "
                              f"Received: task.index={index!r}")
    chief = len(jobs.get("chief", []))
    position = index if task_type == "chief" else chief + index
    return Processes(position, chief + len(jobs.get("worker", [])))


def jax_process_env() -> tuple[str | None, int, int] | None:
    """(coordinator address, process count, process id) from the Keras distribution variables,
    or None when they do not ask for several processes."""
    count = _env_int(NUM_PROCESSES)
    if count is None or count <= 1:
        return None
    index = _env_int(PROCESS_ID)
    if index is None or not 0 <= index < count:
        raise DistributeError(f"{PROCESS_ID} must be set to this process's index in [0, {count}) "
                              f"({NUM_PROCESSES}={count}). Received: {PROCESS_ID}="
                              f"{os.environ.get(PROCESS_ID)!r}")
    addresses = os.environ.get(JOB_ADDRESSES, "").strip()
    if not addresses or ":" not in addresses.split(",")[0]:
        raise DistributeError(f"{JOB_ADDRESSES} must name the coordinator as host:port (process 0's "
                              f"address, e.g. 10.0.0.1:1234). Received: {JOB_ADDRESSES}={addresses!r}")
    return addresses, count, index


def initialize_processes() -> Processes:
    """Joins the other processes when the environment launches several (once per process;
    before any computation): JAX through `keras.distribution.initialize`. Under TensorFlow a
    TF_CONFIG is checked (a clear error when malformed) and several workers are refused with
    the reason. A no-op for one process."""
    global _processes
    if _processes is not None:
        return _processes
    import keras

    if keras.backend.backend() == "jax":
        found = jax_process_env()
        if found is None:
            _processes = Processes()
        else:
            addresses, count, index = found
            keras.distribution.initialize(addresses, count, index)
            _processes = Processes(index, count)
    elif keras.backend.backend() == "tensorflow" and os.environ.get("TF_CONFIG", "").strip():
        processes = parse_tf_config(os.environ["TF_CONFIG"])
        if processes.count > 1:
            raise DistributeError(
                f"TF_CONFIG names {processes.count} workers, but Keras {keras.__version__}'s fit() cannot "
                "train under MultiWorkerMirroredStrategy (its first-batch build reduces the nested "
                "per-replica batch, which the collective all-reduce refuses). Train on several hosts "
                "with --backend jax and the KERAS_DISTRIBUTION_* variables (README, Multi-device and "
                "multi-host); one TensorFlow worker trains on its local devices without TF_CONFIG.")
        _processes = processes
    else:
        _processes = Processes()
    return _processes


def processes() -> Processes:
    return _processes or Processes()


@dataclasses.dataclass
class Plan:
    """What `scope` does: the mode in force, the devices (all processes), one line for the user."""

    mode: str
    devices: list[str]
    processes: Processes
    note: str = ""


def local_devices() -> list[str]:
    """The devices data-parallel training would use: every process's accelerators (else CPUs)."""
    import keras

    if keras.backend.backend() == "tensorflow":
        from shared import distribute_tf

        return distribute_tf.devices()
    return list(keras.distribution.list_devices())


def plan(mode: str, batch_size: int) -> Plan:
    """Resolves `mode` on this machine; checks that the global batch splits evenly."""
    if mode not in MODES:
        raise DistributeError(f"train.distribute must be one of {', '.join(MODES)}. Received: {mode!r}")
    procs = processes()
    if mode == "none":
        if procs.count > 1:
            raise DistributeError(f"{procs.count} processes were launched (environment) but "
                                  "train.distribute is 'none'; use --distribute data_parallel.")
        return Plan("none", [], procs)
    devices = local_devices()
    if len(devices) <= 1 and procs.count == 1:
        note = ("" if mode == "auto" else
                f"--distribute data_parallel: only one device here ({devices[0] if devices else 'cpu'}); "
                "training on it as without --distribute.")
        return Plan("none", devices, procs, note)
    if batch_size % len(devices):
        raise DistributeError(
            f"train.batch_size={batch_size} (the global batch) does not split evenly over "
            f"{len(devices)} devices ({', '.join(devices[:8])}{', ...' if len(devices) > 8 else ''}); "
            f"use a multiple of {len(devices)}, e.g. --set train.batch_size="
            f"{max(len(devices), batch_size // len(devices) * len(devices))}.")
    note = (f"data_parallel: global batch {batch_size} over {len(devices)} devices "
            f"({batch_size // len(devices)} per device)"
            + (f", {procs.count} processes (this is process {procs.index})" if procs.count > 1 else ""))
    return Plan("data_parallel", devices, procs, note)


@contextlib.contextmanager
def scope(mode: str, batch_size: int):
    """Builds, compiles and fits models inside it under the planned distribution; the
    pipelines built inside read this process's slice of every batch. Yields the Plan."""
    from pipelines import builder

    chosen = plan(mode, batch_size)
    if chosen.note:  # one line, also with --quiet: what the run is spread over
        print(chosen.note)
    if chosen.mode == "none":
        yield chosen
        return
    import keras

    previous = builder.process_shard()
    builder.set_process_shard(chosen.processes.index, chosen.processes.count)
    try:
        if keras.backend.backend() == "tensorflow":
            from shared import distribute_tf

            with distribute_tf.strategy().scope():
                yield chosen
        else:
            distribution = _data_parallel(chosen.devices, chosen.processes.count)
            with distribution.scope():
                yield chosen
    finally:
        builder.set_process_shard(*previous)


def _data_parallel(devices: list[str], process_count: int):
    """`keras.distribution.DataParallel` that can also replicate the data: validation inside
    `fit()` (`fit_callbacks`) and any batch that does not split evenly over the local devices
    (the last validation batch: 359 images in batches of 64 end with 39) run replicated,
    every device computing the whole batch: the same result, no padding, no dropped samples.
    Keras fixes an iterator's layouts from its first batch, so validation is replicated as a
    whole. Training batches always split evenly (`plan` checks the global batch)."""
    import keras

    local = max(1, len(devices) // process_count)

    class DataParallel(keras.distribution.DataParallel):
        replicate = False

        def get_data_layout(self, data_shape):
            if not self.replicate and data_shape and data_shape[0] % local == 0:
                return super().get_data_layout(data_shape)
            return keras.distribution.TensorLayout([None] * len(data_shape), self.device_mesh)

    # the pipelines already give each process its slice (pipelines.builder.set_process_shard)
    return DataParallel(devices=devices, auto_shard_dataset=False)


def fit_callbacks() -> list:
    """For `fit()` under the current distribution: JAX validation replicated (see above)."""
    import keras

    if keras.backend.backend() != "jax":
        return []
    current = keras.distribution.distribution()
    if current is None or not hasattr(current, "replicate"):
        return []

    class ReplicatedValidation(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            current.replicate = True

        def on_test_end(self, logs=None):
            current.replicate = False

    return [ReplicatedValidation()]


def replica_loss(loss):
    """The loss a `compute_loss` override returns, scaled as Keras scales its compiled losses:
    under a TensorFlow strategy the optimizer sums the replicas' gradients, so each replica's
    (mean) loss counts 1/replicas. Unchanged on JAX (one global computation) and one replica."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return loss
    from shared import distribute_tf

    return distribute_tf.scale_loss(loss)
