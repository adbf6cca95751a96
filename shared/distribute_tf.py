"""The TensorFlow side of `shared.distribute` (imported only under the TensorFlow backend):
`tf.distribute.MirroredStrategy` over the local GPUs (else the logical CPUs), and
`MultiWorkerMirroredStrategy` from TF_CONFIG for several workers."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

_strategies: dict[str, tf.distribute.Strategy] = {}


def multi_worker_strategy() -> tf.distribute.Strategy:
    """Made once, at program start (TensorFlow requires it before other TF work); reads TF_CONFIG."""
    if "multi_worker" not in _strategies:
        _strategies["multi_worker"] = tf.distribute.MultiWorkerMirroredStrategy()
    return _strategies["multi_worker"]


def _local_devices() -> list[tf.config.LogicalDevice]:
    return tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")


def devices() -> list[str]:
    """One name per replica in sync (every worker's, with several workers)."""
    if "multi_worker" in _strategies:
        replicas = _strategies["multi_worker"].num_replicas_in_sync
        return [f"replica:{i}" for i in range(replicas)]
    return [device.name for device in _local_devices()]


def strategy(process_count: int = 1) -> tf.distribute.Strategy:
    if process_count > 1:
        return multi_worker_strategy()
    if "mirrored" not in _strategies:
        local = _local_devices()
        # NCCL all-reduce is for GPUs; logical CPU devices reduce through one device
        reduce = (None if local and local[0].device_type == "GPU"
                  else tf.distribute.ReductionToOneDevice())
        _strategies["mirrored"] = tf.distribute.MirroredStrategy(
            devices=[device.name for device in local], cross_device_ops=reduce)
    return _strategies["mirrored"]


def scale_loss(loss):
    """Each replica's loss counts 1/N: the optimizer sums the replicas' gradients."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss * tf.cast(1.0 / replicas, loss.dtype)


def per_worker_input(dataset) -> tf.distribute.DistributedDataset:
    """This worker's slice of every global batch (`dataset`, already sharded by process), split
    over its local replicas; no further sharding by TensorFlow."""
    if isinstance(dataset, tf.data.Dataset):
        first = next(iter(dataset.take(1)))
    else:
        stream = dataset
        first = next(iter(stream))
        signature = tf.nest.map_structure(
            lambda leaf: tf.TensorSpec((None,) + np.shape(leaf)[1:], np.asarray(leaf).dtype), first)
        dataset = tf.data.Dataset.from_generator(lambda: iter(stream), output_signature=signature)
    rows = int(np.shape(tf.nest.flatten(first)[0])[0])  # this worker's share of a global batch
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    dataset = dataset.with_options(options)

    def per_replica(context: tf.distribute.InputContext):
        replicas_here = context.num_replicas_in_sync // context.num_input_pipelines
        return dataset.rebatch(rows // replicas_here)

    return multi_worker_strategy().distribute_datasets_from_function(per_replica)
