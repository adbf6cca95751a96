"""Sequence ops for seq2seq text pipelines: tokenize, pad, bucket by length.

Elements come from `pipelines.datasets.parallel.ParallelSource`
(`{"source_text", "target_text"}`). `Tokenize` makes the teacher-forcing triple

    {"source": ids + [eos], "target_in": [bos] + ids, "target_out": ids + [eos], "truncated": 0/1}

(int32 arrays; `target_in[t]` is fed to predict `target_out[t]`).

How they plug into `pipelines.builder`: the builder batches with grain's `batch()`, which
stacks arrays and so needs equal shapes. We pick a fixed maximum length and pad every
element to it, as an element op:

    ops = [Tokenize(src_tok, tgt_tok, 64, 64), PadToLength({"source": 64, "target_in": 64,
                                                           "target_out": 64}, pad_id=0)]
    builder.train_dataset(source, batch_size=64, seed=0, ops=ops)

Fixed shapes also mean one compiled graph under XLA (JAX, TF jit) instead of one per batch
length, and Multi30k sentences are short (at most ~52 subwords with an 8k joint vocabulary),
so the wasted padding is cheap. `pad_batch` (pad a list of elements to the batch maximum)
and `bucket_by_length` (batches of indices of similar length) are for custom batching
outside the builder, e.g. fast greedy/beam decoding of an evaluation split.

Truncation is counted per element in the "truncated" field, so summing it over the batches
of a split gives the count for the report (a counter attribute would not survive grain's
worker processes). All ops are plain picklable classes; they never touch global random state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

SEQUENCE_KEYS = ("source", "target_in", "target_out")


class Tokenize:
    """{"source_text", "target_text"} -> id arrays, truncated to the maximum lengths.

    Lengths include the special tokens: `source` has at most `max_source_length` ids,
    `target_in`/`target_out` at most `max_target_length`. A cut sequence keeps its first
    ids and still ends with eos (`target_out`), so the model always learns to stop.
    """

    def __init__(self, source_tokenizer, target_tokenizer, max_source_length: int, max_target_length: int):
        if min(max_source_length, max_target_length) < 2:
            raise ValueError(f"Expected maximum lengths >= 2 (room for a token and eos); received "
                             f"max_source_length={max_source_length}, max_target_length={max_target_length}.")
        self.source_tokenizer, self.target_tokenizer = source_tokenizer, target_tokenizer
        self.max_source_length, self.max_target_length = max_source_length, max_target_length

    def __call__(self, element: Mapping) -> dict:
        source = self.source_tokenizer.encode(element["source_text"])
        target = self.target_tokenizer.encode(element["target_text"])
        truncated = len(source) >= self.max_source_length or len(target) >= self.max_target_length
        source, target = source[:self.max_source_length - 1], target[:self.max_target_length - 1]
        bos, eos = self.target_tokenizer.bos_id, self.target_tokenizer.eos_id
        return {"source": np.asarray(source + [self.source_tokenizer.eos_id], np.int32),
                "target_in": np.asarray([bos] + target, np.int32),
                "target_out": np.asarray(target + [eos], np.int32),
                "truncated": np.int32(truncated)}


def _pad(ids: np.ndarray, length: int, pad_id: int) -> np.ndarray:
    if len(ids) > length:
        raise ValueError(f"Sequence of length {len(ids)} does not fit length {length}; "
                         "truncate first (Tokenize's maximum lengths).")
    return np.pad(np.asarray(ids, np.int32), (0, length - len(ids)), constant_values=pad_id)


class PadToLength:
    """Element op: pads the sequences named in `lengths` ({key: length}) with `pad_id`.

    Raises if a sequence is longer than its length (give Tokenize the same maxima).
    """

    def __init__(self, lengths: Mapping[str, int], pad_id: int = 0):
        self.lengths, self.pad_id = dict(lengths), int(pad_id)

    def __call__(self, element: Mapping) -> dict:
        return {**element, **{key: _pad(element[key], length, self.pad_id) for key, length in self.lengths.items()}}


def pad_batch(elements: Sequence[Mapping], pad_id: int = 0, keys: Sequence[str] = SEQUENCE_KEYS,
              multiple: int = 1, same_length: bool = False) -> dict[str, np.ndarray]:
    """Stacks elements into a batch, padding each of `keys` to the batch maximum.

    The length is rounded up to a multiple of `multiple` (e.g. 8) to limit the number of
    distinct shapes a compiled model sees; with `same_length`, every key gets the longest
    of them (one shape per bucket instead of one per source/target length pair). Other keys
    are stacked as they are.
    """
    if not elements:
        raise ValueError("pad_batch needs at least one element; received none.")
    batch: dict[str, np.ndarray] = {}
    overall = max(len(element[key]) for element in elements for key in keys if key in element)
    for key in elements[0]:
        values = [element[key] for element in elements]
        if key in keys:
            longest = overall if same_length else max(len(value) for value in values)
            length = -(-longest // multiple) * multiple
            batch[key] = np.stack([_pad(value, length, pad_id) for value in values])
        else:
            batch[key] = np.stack([np.asarray(value) for value in values])
    return batch


def bucket_by_length(lengths: Sequence[int] | np.ndarray, batch_size: int, boundaries: Sequence[int],
                     seed: int = 0, shuffle: bool = True, drop_remainder: bool = False) -> list[np.ndarray]:
    """Batches of indices whose lengths fall in the same bucket.

    Bucket i holds lengths in (boundaries[i-1], boundaries[i]] (the first from 0, a last one
    above boundaries[-1]). With `shuffle`, indices within each bucket and the order of the
    batches are permuted by `numpy.random.default_rng(seed)`; without it, batches keep index
    order, bucket by bucket. Each index appears once (unless dropped with `drop_remainder`).
    """
    lengths = np.asarray(lengths)
    if batch_size < 1 or list(boundaries) != sorted(set(boundaries)):
        raise ValueError(f"Expected batch_size >= 1 and strictly increasing boundaries; received "
                         f"batch_size={batch_size}, boundaries={list(boundaries)}.")
    rng = np.random.default_rng(seed)
    buckets = np.searchsorted(np.asarray(boundaries), lengths, side="left")
    batches: list[np.ndarray] = []
    for bucket in range(len(boundaries) + 1):
        members = np.flatnonzero(buckets == bucket)
        if shuffle:
            members = rng.permutation(members)
        for start in range(0, len(members), batch_size):
            chunk = members[start:start + batch_size]
            if len(chunk) == batch_size or (len(chunk) and not drop_remainder):
                batches.append(chunk)
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


class BucketedBatches:
    """Global step -> padded batch of similar-length examples: the seq2seq training stream.

    `examples` are Tokenize outputs. Every epoch deals the indices into buckets of width
    `bucket_width` by max(source, target) length and batches each bucket
    (`bucket_by_length`, seeded by (seed, epoch)); sequences are padded to the batch
    maximum rounded up to `bucket_width` (few distinct shapes, so few compilations). A
    bucket's last, short batch is filled up to `batch_size` with all-padding rows, which the
    masked losses and metrics ignore, so every batch has `batch_size` rows: a static batch
    dimension (on TensorFlow's CPU kernels that is what lets bf16 pay off, 1.6x per step for
    the Transformer; on JAX, one compilation per length instead of per length and
    remainder). The batch at step S is a pure function of (examples, seed, S), so resuming
    is `[S:]`.
    """

    def __init__(self, examples: Sequence[Mapping], batch_size: int, seed: int, bucket_width: int = 8,
                 pad_id: int = 0):
        if not examples:
            raise ValueError("BucketedBatches needs at least one example; received none.")
        self.examples, self.batch_size, self.seed = list(examples), int(batch_size), int(seed)
        self.bucket_width, self.pad_id = int(bucket_width), int(pad_id)
        self.lengths = np.asarray([max(len(e["source"]), len(e["target_out"])) for e in self.examples])
        longest = int(self.lengths.max())
        self.boundaries = list(range(self.bucket_width, longest + self.bucket_width, self.bucket_width))
        self.steps_per_epoch = len(self._epoch(0))
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def _epoch(self, epoch: int) -> list[np.ndarray]:
        seed = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0])
        return bucket_by_length(self.lengths, self.batch_size, self.boundaries, seed=seed, shuffle=True)

    def indices(self, step: int) -> np.ndarray:
        epoch, position = divmod(int(step), self.steps_per_epoch)
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self._epoch(epoch))
        return self._cache[1][position]

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        elements = [self.examples[i] for i in self.indices(step)]
        filler = {key: np.zeros(0, np.int32) if key in SEQUENCE_KEYS else np.zeros_like(np.asarray(value))
                  for key, value in elements[0].items()}
        elements += [filler] * (self.batch_size - len(elements))
        return pad_batch(elements, self.pad_id, multiple=self.bucket_width, same_length=True)
