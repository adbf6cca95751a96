"""The one dataset builder: seeded shuffling, per-epoch reshuffle, batching, workers, prefetch.

Training data is an infinite grain `MapDataset` (shuffle(seed) then repeat(): each epoch is
a new permutation derived from the seed) batched with `drop_remainder`, so batch number S is
a pure function of (source, seed, S). Resuming at step S is slicing `[S:]`: the pipeline's
whole iterator state is the global step, which the checkpoint stores.

With several processes (data-parallel training on several hosts, `shared.distribute`) each
process reads only its slice of every global batch: process p of P gets rows
[p * B/P, (p + 1) * B/P) of batch S, the same rows one process would have put there, so the
processes together see exactly the single-process stream and resuming is still slicing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import grain
import numpy as np

ElementOp = Callable[[dict], dict]
RandomElementOp = Callable[[dict, np.random.Generator], dict]
BatchOp = Callable[[dict, np.random.Generator], dict]

_process_shard = (0, 1)  # (this process's index, process count); set by shared.distribute


def set_process_shard(index: int, count: int) -> None:
    """Training streams built from now on yield process `index`'s slice of each global batch."""
    global _process_shard
    if not 0 <= index < count:
        raise ValueError(f"process index {index} is not in [0, {count})")
    _process_shard = (int(index), int(count))


def process_shard() -> tuple[int, int]:
    return _process_shard


def _local_rows(batch_size: int, shard: tuple[int, int] | None) -> tuple[int, int, int]:
    """(this process's index, process count, its rows per batch); the batch must split evenly."""
    index, count = shard or _process_shard
    if batch_size % count:
        raise ValueError(f"train.batch_size={batch_size} (the global batch) does not split evenly "
                         f"over {count} processes; use a multiple of {count}.")
    return index, count, batch_size // count


def _finish(dataset: grain.MapDataset, threads: int, prefetch: int, workers: int):
    iterable = dataset.to_iter_dataset(
        grain.ReadOptions(num_threads=max(1, threads), prefetch_buffer_size=max(prefetch, threads)))
    if workers > 0:
        from absl import flags

        if not flags.FLAGS.is_parsed():  # grain's workers read absl flags; we have no absl main
            flags.FLAGS.mark_as_parsed()
        iterable = iterable.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    return iterable


def train_dataset(source, *, batch_size: int, seed: int, ops: Sequence[ElementOp] = (),
                  random_ops: Sequence[RandomElementOp] = (),
                  batch_ops: Sequence[BatchOp] = (), finalize: Callable | None = None,
                  start_step: int = 0, workers: int = 0, threads: int = 4,
                  prefetch: int = 2, shard: tuple[int, int] | None = None) -> grain.IterDataset:
    """Infinite, shuffled, batched training stream starting at global step `start_step`.

    `ops` are deterministic element ops; `random_ops` (after them) get a generator seeded
    by (seed, op index, sample position in the stream), so they too resume exactly.
    `shard=(index, count)` (default: the process shard) yields that slice of every global
    batch of `batch_size` rows; only its samples are read and transformed, except with
    `batch_ops` (MixUp/CutMix mix across the global batch: each process then makes the
    global batch and keeps its rows).
    """
    if len(source) < batch_size:
        raise ValueError(f"The training split has {len(source)} samples, fewer than "
                         f"batch_size={batch_size}; lower train.batch_size.")
    process, processes, rows = _local_rows(batch_size, shard)
    whole = processes == 1 or bool(batch_ops)  # make whole global batches (then slice them)
    vectorisable = not random_ops and all(hasattr(op, "batched") for op in ops)
    if hasattr(source, "gather") and vectorisable:
        dataset = grain.MapDataset.range(0, 2**62).map(
            _GatherBatches(source, batch_size, seed, ops, (0, 1) if whole else (process, processes)))
    else:
        dataset = grain.MapDataset.source(source).shuffle(seed=seed).repeat()
        for op in ops:
            dataset = dataset.map(op)
        for index, op in enumerate(random_ops):
            dataset = dataset.map_with_index(_Seeded(op, seed, 1000 + index, element=True))
        if not whole:  # this process's samples of each global batch, in the same places
            dataset = grain.MapDataset.range(0, 2**62).map(_Pick(dataset, batch_size, process, rows))
        dataset = dataset.batch(batch_size if whole else rows, drop_remainder=True)
    for index, op in enumerate(batch_ops):
        dataset = dataset.map_with_index(_Seeded(op, seed, index))
    if whole and processes > 1:
        dataset = dataset.map(_Rows(process * rows, rows))
    if finalize is not None:
        dataset = dataset.map(finalize)
    return _finish(dataset[start_step:], threads, prefetch, workers)


class _GatherBatches:
    """Vectorised path for in-memory sources: batch S is one numpy gather of the indices
    perm(epoch)[k*B:(k+1)*B], where perm(epoch) is a seeded permutation per epoch (the
    remainder of each epoch is dropped). Same contract as the per-element path: a pure
    function of (source, seed, S), so resuming is still slicing; ~100x less Python work.
    A class, not a closure, so worker processes can receive it."""

    def __init__(self, source, batch_size: int, seed: int, ops, shard: tuple[int, int] = (0, 1)):
        self.source, self.batch_size, self.seed, self.ops = source, batch_size, seed, list(ops)
        self.per_epoch = len(source) // batch_size
        self.rows = batch_size // shard[1]  # this process's rows of each global batch
        self.offset = shard[0] * self.rows
        self._cached: tuple[int, np.ndarray] | None = None

    def permutation(self, epoch: int) -> np.ndarray:
        cached = self._cached
        if cached is None or cached[0] != epoch:
            cached = (epoch, np.random.default_rng([self.seed, epoch]).permutation(
                len(self.source)))
            self._cached = cached
        return cached[1]

    def __call__(self, step: int) -> dict:
        epoch, position = divmod(int(step), self.per_epoch)
        start = position * self.batch_size + self.offset
        batch = self.source.gather(self.permutation(epoch)[start:start + self.rows])
        for op in self.ops:
            batch = op.batched(batch)
        return batch


class _Pick:
    """Element j of one process's stream: the global stream's element at the same place of
    the same global batch (`rows` of every `batch_size`, from `process * rows`)."""

    def __init__(self, dataset, batch_size: int, process: int, rows: int):
        self.dataset, self.batch_size, self.process, self.rows = dataset, batch_size, process, rows

    def __call__(self, j: int):
        step, k = divmod(int(j), self.rows)
        return self.dataset[step * self.batch_size + self.process * self.rows + k]


class _Rows:
    """Rows [start, start + count) of every array of a batch (a nested dict/tuple)."""

    def __init__(self, start: int, count: int):
        self.start, self.count = start, count

    def __call__(self, batch):
        if isinstance(batch, dict):
            return {key: self(value) for key, value in batch.items()}
        if isinstance(batch, (tuple, list)):
            return type(batch)(self(value) for value in batch)
        return batch[self.start:self.start + self.count]


class _Seeded:
    """A random op with its generator derived from (seed, op index, position): the global
    step for batch ops, the sample's position in the infinite stream for element ops."""

    def __init__(self, op, seed: int, op_index: int, element: bool = False):
        self.op, self.seed, self.op_index, self.element = op, seed, op_index, element

    def __call__(self, position: int, item: dict) -> dict:
        rng = np.random.default_rng([self.seed, self.op_index, position])
        if getattr(self.op, "uses_position", False):  # e.g. augmentation that ends late
            return self.op(item, rng, position)
        return self.op(item, rng)


def eval_dataset(source, *, batch_size: int, ops: Sequence[ElementOp] = (),
                 finalize: Callable | None = None, threads: int = 4,
                 prefetch: int = 2) -> grain.IterDataset:
    """Finite, ordered, batched stream over the whole split (last batch may be smaller)."""
    dataset = grain.MapDataset.source(source)
    for op in ops:
        dataset = dataset.map(op)
    dataset = dataset.batch(batch_size, drop_remainder=False)
    if finalize is not None:
        dataset = dataset.map(finalize)
    return _finish(dataset, threads, prefetch, 0)


def steps_per_epoch(num_samples: int, batch_size: int, cap: int = 0) -> int:
    steps = max(1, num_samples // batch_size)
    return min(steps, cap) if cap > 0 else steps


def step_dataset(make_batch: Callable[[int], object], *, start_step: int = 0, threads: int = 2,
                 prefetch: int = 2, finalize: Callable | None = None,
                 shard: tuple[int, int] | None = None) -> grain.IterDataset:
    """Infinite stream of `make_batch(global_step)` from `start_step` (for samplers that
    build whole batches themselves, e.g. length-bucketed text); resumes like `train_dataset`.
    With several processes (`shard`, default the process shard) each keeps its slice of the
    rows of every batch (every array's first dimension: the batch must split evenly)."""
    dataset = grain.MapDataset.range(0, 2**62).map(make_batch)
    process, processes = shard or _process_shard
    if processes > 1:
        dataset = dataset.map(_EvenRows(process, processes))
    if finalize is not None:
        dataset = dataset.map(finalize)
    return _finish(dataset[start_step:], threads, prefetch, 0)


class _EvenRows:
    """Process `process`'s slice of a batch whose size is only known when it is made."""

    def __init__(self, process: int, processes: int):
        self.process, self.processes = process, processes

    def __call__(self, batch):
        leaf = batch
        while isinstance(leaf, (dict, tuple, list)):
            leaf = next(iter(leaf.values())) if isinstance(leaf, dict) else leaf[0]
        rows = len(leaf)
        _, _, local = _local_rows(rows, (self.process, self.processes))
        return _Rows(self.process * local, local)(batch)


def with_dynamic_shapes(dataset, batch_size: int | None = None):
    """`dataset` for `fit()` when batch shapes vary (length-bucketed text), on any backend.

    Keras infers a grain dataset's signature from its first few batches, and on TensorFlow
    a dimension that did not vary there is fixed for good. Under the TensorFlow backend this
    returns a `tf.data` view of the same iterator whose every dimension is unknown (an
    optional tf.data adapter) except the first when `batch_size` is given: a stream whose
    batches all have `batch_size` rows should say so, since TensorFlow's CPU kernels are much
    slower on an unknown batch dimension (measured 1.6x per Transformer step in bf16). Other
    backends take the grain dataset as it is.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return dataset
    import tensorflow as tf

    first = next(iter(dataset))
    signature = keras.tree.map_structure(
        lambda leaf: tf.TensorSpec((batch_size,) + (None,) * (np.ndim(leaf) - 1), np.asarray(leaf).dtype), first)
    return tf.data.Dataset.from_generator(lambda: iter(dataset), output_signature=signature)
