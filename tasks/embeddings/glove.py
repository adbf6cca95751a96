"""GloVe's data: the co-occurrence matrix and the batches of its entries.

`cooccurrence` counts word pairs within `window` words of each other inside a sentence,
each weighted 1/distance, symmetrically (GloVe's `cooccur -symmetric 1`). It counts in
chunks of the corpus with numpy (pair keys i * V + j, reduced by sorting) and merges the
partial counts whenever they pass `max_pending` entries, so memory stays bounded by the
final sparse matrix plus one chunk (like `cooccur -memory`).

`GloveBatches(step)`: the nonzero entries in a seeded random order per epoch, `batch_size`
at a time, as a pure function of (seed, step); the rows a batch touches are compacted like
word2vec's (see `sampling`).
"""

from __future__ import annotations

import numpy as np

from tasks.embeddings.sampling import _compact, bucket


def _reduce(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return keys[starts], np.add.reduceat(values, starts) if len(values) else values


def cooccurrence(tokens: np.ndarray, offsets: np.ndarray, vocab_size: int, window: int,
                 chunk_words: int = 1 << 20, max_pending: int = 1 << 25) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, columns, weights) of the symmetric 1/distance co-occurrence counts."""
    tokens = np.asarray(tokens, np.int64)
    sentence = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    merged_keys, merged_values = np.zeros(0, np.int64), np.zeros(0, np.float64)
    pending_keys, pending_values, pending = [], [], 0
    for start in range(0, len(tokens), chunk_words):
        end = min(len(tokens), start + chunk_words + window)  # pairs may reach into the next chunk
        chunk, chunk_sentence = tokens[start:end], sentence[start:end]
        centre_limit = min(chunk_words, len(chunk))
        for d in range(1, window + 1):
            left = np.arange(min(centre_limit, max(0, len(chunk) - d)))
            same = chunk_sentence[left] == chunk_sentence[left + d]
            a, b = chunk[left[same]], chunk[left[same] + d]
            keys = np.concatenate([a * vocab_size + b, b * vocab_size + a])
            pending_keys.append(keys)
            pending_values.append(np.full(len(keys), 1.0 / d))
            pending += len(keys)
        if pending >= max_pending:
            merged_keys, merged_values = _reduce(np.concatenate([merged_keys, *pending_keys]),
                                                 np.concatenate([merged_values, *pending_values]))
            pending_keys, pending_values, pending = [], [], 0
    keys, values = _reduce(np.concatenate([merged_keys, *pending_keys]),
                           np.concatenate([merged_values, *pending_values]))
    return (keys // vocab_size).astype(np.int32), (keys % vocab_size).astype(np.int32), values.astype(np.float32)


class GloveBatches:
    def __init__(self, rows, columns, values, vocab_size: int, *, batch_size: int, x_max: float, alpha: float,
                 learning_rate: float, seed: int):
        if len(values) == 0:
            raise ValueError("The co-occurrence matrix is empty (no two vocabulary words share a window).")
        self.rows, self.columns, self.values = rows, columns, values
        self.pad, self.batch_size, self.seed = vocab_size, min(batch_size, len(values)), seed
        self.x_max, self.alpha, self.learning_rate = x_max, alpha, learning_rate
        self._cached = None

    @property
    def steps_per_epoch(self) -> int:
        return len(self.values) // self.batch_size

    def __call__(self, step: int) -> dict:
        epoch, k = divmod(int(step), self.steps_per_epoch)
        if self._cached is None or self._cached[0] != epoch:
            self._cached = (epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.values)))
        return self._entries(self._cached[1][k * self.batch_size:(k + 1) * self.batch_size])

    def empty_batch(self) -> dict:
        """A batch without entries: it changes nothing (pads an epoch to whole compiled calls)."""
        return self._entries(np.zeros(0, np.int64))

    def _entries(self, pick: np.ndarray) -> dict:
        x = self.values[pick]
        row_ids, row_index = _compact(self.rows[pick], self.pad)
        column_ids, column_index = _compact(self.columns[pick], self.pad)

        def grow(array, size, value):
            return np.concatenate([array, np.full(size - len(array), value, array.dtype)])

        return {"row_ids": grow(row_ids, bucket(len(row_ids)), self.pad),
                "column_ids": grow(column_ids, bucket(len(column_ids)), self.pad),
                "row_index": row_index, "column_index": column_index,
                "log_x": np.log(x).astype(np.float32),
                "weight": np.minimum(1.0, (x / self.x_max) ** self.alpha).astype(np.float32),
                "lr": np.full((1,), self.learning_rate, np.float32)}
