"""word2vec training examples, made vectorised in numpy, one whole batch at a time.

An epoch walks the corpus in order (as word2vec does), in batches of about
`words_per_batch` corpus words cut at sentence starts (sentences longer than a batch are
cut into pieces). Batch k of epoch e is a pure function of (seed, e, k): its generator is
`default_rng([seed, e, k])`, so `--resume` at any global step continues exactly. Per batch:

1. frequent-word subsampling: word w is kept with probability
   min(1, (sqrt(f_w / (sample * N)) + 1) * sample * N / f_w) (word2vec's formula);
2. a dynamic window per kept word, b uniform in 1..window (windows never cross sentences);
3. skip-gram: one example per (context word -> centre word) pair within the centre's
   window; CBOW: one example per centre word with its context words (a [P, 2*window] index
   matrix with a mask);
4. `negative` noise words per example from the unigram^0.75 distribution (`NoiseSampler`,
   Walker's alias method; a noise word equal to the target gets weight 0, as word2vec skips
   it); or, with `hierarchical`, the inner nodes of the target's Huffman path (`huffman`)
   with their labels (`out_label`);
5. the rows a batch touches: `in_rows` / `out_rows` are the distinct input / output word
   ids (plus the padding row), the examples index into them. Shapes are rounded up to a few
   sizes (padding rows and zero weights), so a compiled step is reused.

The learning rate decays linearly over all steps, from `alpha` to `min_alpha`; each batch
carries its own (`lr`), so the model needs no schedule state.
"""

from __future__ import annotations

import numpy as np

from tasks.embeddings.huffman import huffman_tree

NOISE_POWER = 0.75


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """word2vec's subsampling: P(keep w); 1 for every word when sample <= 0."""
    counts = np.asarray(counts, np.float64)
    if sample <= 0:
        return np.ones(len(counts), np.float32)
    threshold = sample * counts.sum()
    probability = (np.sqrt(counts / threshold) + 1.0) * threshold / counts
    return np.minimum(probability, 1.0).astype(np.float32)


class NoiseSampler:
    """Draws word ids from the unigram^0.75 distribution exactly, by Walker's alias method:
    pick a word uniformly, keep it with probability `keep[w]`, else take `alias[w]`. Two
    vocabulary-sized arrays (word2vec's table has 1e8 slots, ours had 500 per word: random
    reads into ~58 MB at a 29k vocabulary took 0.37 ms of a batch's ~1 ms, 2026-12-03)."""

    def __init__(self, counts: np.ndarray):
        weights = np.asarray(counts, np.float64) ** NOISE_POWER
        n = len(weights)
        scaled = weights * n / weights.sum()
        self.keep = np.ones(n, np.float64)
        self.alias = np.arange(n, dtype=np.int32)
        small = [i for i in range(n) if scaled[i] < 1.0]
        large = [i for i in range(n) if scaled[i] >= 1.0]
        while small and large:  # Vose's construction: each small slot is topped up by a large word
            s, big = small.pop(), large[-1]
            self.keep[s], self.alias[s] = scaled[s], big
            scaled[big] -= 1.0 - scaled[s]
            if scaled[big] < 1.0:
                small.append(large.pop())
        # what is left is 1 up to rounding: kept whole
        self.keep = self.keep.astype(np.float32)  # the draws compare float32 uniforms with it

    def probabilities(self) -> np.ndarray:
        """The distribution the draws follow (for tests)."""
        n = len(self.keep)
        keep = self.keep.astype(np.float64)
        return (keep + np.bincount(self.alias, weights=1.0 - keep, minlength=n)) / n

    def draw(self, rng: np.random.Generator, shape) -> np.ndarray:
        words = rng.integers(0, len(self.keep), shape, dtype=np.int32)
        return np.where(rng.random(shape, dtype=np.float32) < self.keep[words], words, self.alias[words])


def bucket(n: int, minimum: int = 64, per_octave: int = 8) -> int:
    """n rounded up to one of `per_octave` sizes per octave (a power of two; at most
    1/per_octave padding). Fewer sizes, fewer XLA compilations (one per batch shape)."""
    n = max(int(n), minimum)
    step = 1 << max(0, n.bit_length() - 1 - per_octave.bit_length() + 1)
    return -(-n // step) * step


def plan_batches(offsets: np.ndarray, words_per_batch: int) -> tuple[np.ndarray, np.ndarray]:
    """(segment starts, batch starts), both ending with the corpus length. Segments are the
    sentences, cut into pieces of at most `words_per_batch`; a batch is whole segments,
    starting at the first segment that reaches each multiple of `words_per_batch`."""
    offsets = np.asarray(offsets, np.int64)
    total = int(offsets[-1])
    pieces = [offsets[:-1]]
    long = np.flatnonzero(np.diff(offsets) > words_per_batch)
    for s in long:  # few: sentences longer than a batch
        pieces.append(np.arange(offsets[s] + words_per_batch, offsets[s + 1], words_per_batch))
    segments = np.unique(np.concatenate(pieces + [[total]]))
    targets = np.arange(0, total, words_per_batch)
    batch_starts = np.unique(segments[np.searchsorted(segments, targets, side="left")])
    batch_starts = batch_starts[batch_starts < total]
    return segments, np.concatenate([batch_starts, [total]])


class Word2VecBatches:
    """`batch(step)` -> the dict the model trains on (see the module docstring)."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, counts: np.ndarray, *, sg: bool, window: int,
                 negative: int, sample: float, alpha: float, min_alpha: float, epochs: int, words_per_batch: int,
                 seed: int, sizes_per_octave: int = 8, hierarchical: bool = False):
        if window < 1 or negative < 1:
            raise ValueError(f"window and negative must be >= 1. Received: window={window}, negative={negative}")
        self.tokens = np.asarray(tokens, np.int32)
        self.segments, self.batch_starts = plan_batches(offsets, words_per_batch)
        # segment id of every token, to keep windows inside sentences
        self.segment_of = np.repeat(np.arange(len(self.segments) - 1, dtype=np.int32), np.diff(self.segments))
        self.keep = keep_probabilities(counts, sample)
        self.noise = NoiseSampler(counts)
        self.pad = len(counts)  # the padding row: id vocab_size
        self.sg, self.window, self.negative = sg, window, negative
        self.alpha, self.min_alpha, self.epochs, self.seed = alpha, min_alpha, epochs, seed
        self.sizes_per_octave = sizes_per_octave
        self.tree = huffman_tree(counts) if hierarchical else None  # (points, codes, lengths)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.batch_starts) - 1

    def learning_rate(self, step: int) -> float:
        progress = step / max(1, self.epochs * self.steps_per_epoch)
        return max(self.min_alpha, self.alpha - (self.alpha - self.min_alpha) * progress)

    def __call__(self, step: int) -> dict:
        return self.batch(step)

    def batch(self, step: int) -> dict:
        epoch, k = divmod(int(step), self.steps_per_epoch)
        rng = np.random.default_rng([self.seed, epoch, k])
        start, end = self.batch_starts[k], self.batch_starts[k + 1]
        return self._examples(rng, self.tokens[start:end], self.segment_of[start:end], self.learning_rate(step))

    def empty_batch(self) -> dict:
        """A batch without examples (every weight 0): it changes nothing; it pads an epoch to
        a whole number of compiled calls (see `training.padded_stream`)."""
        return self._examples(np.random.default_rng(0), self.tokens[:0], self.segment_of[:0], self.alpha)

    def _examples(self, rng, tokens, segment, lr) -> dict:
        kept = rng.random(len(tokens), dtype=np.float32) < self.keep[tokens]
        tokens, segment = tokens[kept], segment[kept]
        windows = rng.integers(1, self.window + 1, len(tokens))
        if self.sg:
            inputs, input_mask, targets = self._skip_gram(tokens, segment, windows)
        else:
            inputs, input_mask, targets = self._cbow(tokens, segment, windows)
        if self.tree is not None:  # hierarchical softmax: the target's path in the Huffman tree
            points, codes, lengths = self.tree
            outputs = points[targets]
            weight = (np.arange(points.shape[1])[None, :] < lengths[targets][:, None]).astype(np.float32)
            return self._pack(inputs, input_mask, outputs, weight, lr, len(tokens),
                              labels=(1 - codes[targets]).astype(np.float32))
        noise = self.noise.draw(rng, (len(targets), self.negative))
        outputs = np.concatenate([targets[:, None], noise], axis=1)
        weight = np.ones(outputs.shape, np.float32)
        weight[:, 1:] = noise != targets[:, None]
        return self._pack(inputs, input_mask, outputs, weight, lr, len(tokens))

    def _skip_gram(self, tokens, segment, windows):
        """(context -> centre) pairs: input [P, 1], mask [P, 1], target [P]."""
        contexts, centres = [], []
        for d in range(1, self.window + 1):
            same = segment[d:] == segment[:-d]
            right = same & (windows[:-d] >= d)  # centre i, context i + d
            left = same & (windows[d:] >= d)  # centre i + d, context i
            contexts += [tokens[d:][right], tokens[:-d][left]]
            centres += [tokens[:-d][right], tokens[d:][left]]
        contexts, centres = np.concatenate(contexts), np.concatenate(centres)
        return contexts[:, None], np.ones((len(contexts), 1), np.float32), centres

    def _cbow(self, tokens, segment, windows):
        """(mean of the context words -> centre): input [P, 2w], mask [P, 2w], target [P]."""
        n, w = len(tokens), self.window
        positions = np.arange(n)
        offsets = np.concatenate([-np.arange(1, w + 1), np.arange(1, w + 1)])
        neighbour = positions[:, None] + offsets[None, :]
        inside = (neighbour >= 0) & (neighbour < n)
        neighbour = np.clip(neighbour, 0, max(n - 1, 0))
        mask = inside & (np.abs(offsets)[None, :] <= windows[:, None]) & (segment[neighbour] == segment[:, None])
        has_context = mask.any(axis=1)
        inputs = np.where(mask, tokens[neighbour] if n else neighbour, self.pad)[has_context]
        return inputs, mask[has_context].astype(np.float32), tokens[has_context]

    def _pack(self, inputs, input_mask, outputs, weight, lr, kept_words, labels=None):
        """Compacts ids to the rows touched and pads every dimension to a bucket size."""
        def size(n):
            return bucket(n, per_octave=self.sizes_per_octave)

        examples = size(len(outputs))
        in_rows, in_index = _compact(inputs, self.pad)
        out_rows, out_index = _compact(outputs, self.pad)
        pad_in, pad_out = len(in_rows) - 1, len(out_rows) - 1  # the padding row's slot (last)

        def grow(array, rows, value):
            extra = np.full((rows - len(array),) + array.shape[1:], value, array.dtype)
            return np.concatenate([array, extra])

        extra = {} if labels is None else {"out_label": grow(labels, examples, 0.0)}
        return {
            **extra,
            "in_rows": grow(in_rows, size(len(in_rows)), self.pad),
            "out_rows": grow(out_rows, size(len(out_rows)), self.pad),
            "in_index": grow(in_index, examples, pad_in),
            "in_weight": grow(input_mask, examples, 0.0),
            "out_index": grow(out_index, examples, pad_out),
            "weight": grow(weight, examples, 0.0),
            "lr": np.full((1,), lr, np.float32),
            "kept_words": np.full((1,), kept_words, np.int32),
        }


def _compact(ids: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """(distinct ids with `pad` last, index of each id into them); O(n + vocab), no sort."""
    present = np.zeros(pad + 1, bool)
    present[ids] = True
    present[pad] = False
    rows = np.concatenate([np.flatnonzero(present), [pad]]).astype(np.int32)
    where = np.empty(pad + 1, np.int32)
    where[rows] = np.arange(len(rows), dtype=np.int32)
    return rows, where[ids]
