"""The TensorFlow side of `shared.distribute` (imported only under the TensorFlow backend):
`tf.distribute.MirroredStrategy` over the local GPUs (else the logical CPUs)."""

from __future__ import annotations

import tensorflow as tf

_strategies: dict[str, tf.distribute.Strategy] = {}


def _local_devices() -> list[tf.config.LogicalDevice]:
    return tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")


def devices() -> list[str]:
    """One name per replica."""
    return [device.name for device in _local_devices()]


def strategy() -> tf.distribute.Strategy:
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
