"""Subword vectors (fastText): a word is the mean of its own input row and the rows of its
character n-grams, hashed into `buckets` rows, so a word outside the vocabulary still gets
a vector (the mean of its n-gram rows).

N-grams are fastText's: the word wrapped in `<` and `>`, every run of minn..maxn characters
(UTF-8 characters, not bytes; the whole wrapped word too when it is short enough), each
hashed by fastText's 32-bit FNV-1a over its UTF-8 bytes (bytes sign-extended, as fastText's
`int8_t` cast does) modulo `buckets`: the ids gensim's `ft_ngram_hashes` gives. `ngram_ids`
computes them for many words at once in numpy, at training and at query time alike.

Tables: input rows [vocab + buckets + 1, dim] (words, then n-gram buckets, then padding),
output rows [vocab + 1, dim] as word2vec's. Training reuses word2vec's batches
(`sampling.Word2VecBatches`: subsampling, dynamic windows, negatives or the Huffman path) and
its loss and gradients (`models.negative_sampling`); only the input side changes: the batch
also lists, in a segment layout, the input rows of every distinct input word it holds
(`sub_index` into `in_rows`, `sub_word` the word's slot), and an example weighs each of its
input words by the word's row count, so its hidden vector is the mean over all the rows of
all its input words (fastText's and gensim's skip-gram and CBOW), and each of those rows gets
the whole gradient of the hidden vector, as in fastText.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from tasks.embeddings.models import SparseRowModel, negative_sampling
from tasks.embeddings.sampling import Word2VecBatches, _compact, bucket
from tasks.embeddings.vectors import WordVectors

FNV_OFFSET, FNV_PRIME = 2166136261, 16777619
HASH = ("fastText: '<' + word + '>', n-grams of minn..maxn UTF-8 characters, 32-bit FNV-1a over "
        "their UTF-8 bytes (each byte sign-extended), modulo buckets")


def _utf8_bytes(codepoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bytes [..., 4] as fastText reads them: uint32, >= 0x80 sign-extended; byte count [...])."""
    cp = codepoints.astype(np.uint32)
    count = np.select([cp < 0x80, cp < 0x800, cp < 0x10000], [1, 2, 3], 4)
    lead = np.select([count == 1, count == 2, count == 3], [cp, 0xC0 | (cp >> 6), 0xE0 | (cp >> 12)],
                     0xF0 | (cp >> 18))
    out = np.zeros(cp.shape + (4,), np.uint32)
    out[..., 0] = lead
    for k in range(1, 4):  # continuation byte k carries bits 6 * (count - 1 - k) and up
        shift = np.maximum(6 * (count - 1 - k), 0).astype(np.uint32)
        out[..., k] = np.where(k < count, 0x80 | ((cp >> shift) & 0x3F), 0)
    out = np.where(out >= 0x80, out | np.uint32(0xFFFFFF00), out).astype(np.uint32)
    return out, count


def ngram_ids(words: list[str], minn: int, maxn: int, buckets: int, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """fastText's n-gram bucket ids of each word, in fastText's order (by start, then length):
    (ids int32 in [0, buckets), offsets [len(words) + 1]): word i's ids are
    ids[offsets[i]:offsets[i + 1]]. Vectorised over words (a loop over positions and lengths)."""
    ids, counts = [], []
    for start in range(0, len(words), chunk):
        part = [f"<{w}>" for w in words[start:start + chunk]]
        lengths = np.asarray([len(w) for w in part], np.int64)
        flat = np.frombuffer("".join(part).encode("utf-32-le", "surrogatepass"), np.uint32)
        width = int(lengths.max()) if len(part) else 0
        position = np.arange(width)[None, :]
        inside = position < lengths[:, None]
        chars = np.zeros((len(part), width), np.uint32)
        chars[inside] = flat
        data, nbytes = _utf8_bytes(chars)
        found, valid = [], []
        for i in range(width):
            h = np.full(len(part), FNV_OFFSET, np.uint32)
            for n in range(1, maxn + 1):
                end = i + n  # the n-gram is characters i .. end - 1
                if end > width:
                    break
                for k in range(4):
                    mixed = (h ^ data[:, end - 1, k]) * np.uint32(FNV_PRIME)
                    h = np.where(nbytes[:, end - 1] > k, mixed, h)
                if n >= minn:
                    ok = end <= lengths
                    if n == 1:  # fastText skips the lone '<' and '>'
                        ok &= (i != 0) & (end != lengths)
                    found.append(h % np.uint32(buckets))
                    valid.append(ok)
        if found:
            table, mask = np.stack(found, axis=1), np.stack(valid, axis=1)
            ids.append(table[mask].astype(np.int32))  # row-major: by word, then start, then length
            counts.append(mask.sum(axis=1))
        else:
            counts.append(np.zeros(len(part), np.int64))
    ids = np.concatenate(ids) if ids else np.zeros(0, np.int32)
    counts = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    return ids, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def vocabulary_rows(words: list[str], minn: int, maxn: int, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Input-table rows of each vocabulary word as a CSR (rows int32, offsets int64): the word's
    own row i first, then vocab + its n-gram ids."""
    ids, offsets = ngram_ids(words, minn, maxn, buckets)
    vocab = len(words)
    counts = np.diff(offsets) + 1
    starts = np.concatenate([[0], np.cumsum(counts)])
    rows = np.empty(int(starts[-1]), np.int32)
    own = starts[:-1]
    rows[own] = np.arange(vocab, dtype=np.int32)
    others = np.ones(len(rows), bool)
    others[own] = False
    rows[others] = ids + vocab
    return rows, starts.astype(np.int64)


class SubwordBatches(Word2VecBatches):
    """word2vec's batches (the same examples for the same seed and step) with the input side
    spelled out in input-table rows: `in_rows` are table rows (words and n-gram buckets),
    `sub_index` / `sub_word` list each distinct input word's rows and its slot, `word_count`
    its number of rows; `in_index` / `in_weight` point examples at word slots (weights = the
    word's row count, 0 for padding)."""

    def __init__(self, *args, rows: np.ndarray, offsets: np.ndarray, buckets: int, hot_row_uses: int = 0,
                 **kwargs):
        super().__init__(*args, **kwargs)
        # A batch sums the updates of a row, all computed from its old value; an n-gram such as
        # "ing>" is an input of hundreds of a batch's examples (fastText applies them one by
        # one). hot_row_uses > 0: a row used more often in a batch has its summed update scaled
        # to that many uses (measured on the demo corpus, docs/benchmarks.md: off is better on
        # analogies, hence the default 0 = plain sums)
        self.hot_row_uses = int(hot_row_uses)
        self.rows, self.offsets = np.asarray(rows, np.int32), np.asarray(offsets, np.int64)
        self.counts = np.append(np.diff(self.offsets), 0)  # rows per word; the padding word none
        self.table_pad = self.pad + int(buckets)  # the input table's padding row

    def _pack(self, *args, **kwargs):
        batch = super()._pack(*args, **kwargs)
        words = batch["in_rows"]  # distinct input words, the padding word (self.pad) last
        count = self.counts[words]
        real = np.flatnonzero(words != self.pad)
        lengths = count[real]
        first = np.repeat(self.offsets[words[real]] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        table_rows = self.rows[first + np.arange(int(lengths.sum()))]
        sub_word = np.repeat(real, lengths).astype(np.int32)
        in_rows, sub_index = _compact(table_rows, self.table_pad)
        entries = bucket(len(table_rows), per_octave=self.sizes_per_octave)
        pad_slot = len(in_rows) - 1
        size = bucket(len(in_rows), per_octave=self.sizes_per_octave)
        batch["in_rows"] = np.concatenate([in_rows, np.full(size - len(in_rows), self.table_pad, np.int32)])
        batch["sub_index"] = np.concatenate([sub_index, np.full(entries - len(sub_index), pad_slot, np.int32)])
        batch["sub_word"] = np.concatenate([sub_word, np.full(entries - len(sub_word), len(words) - 1, np.int32)])
        batch["word_count"] = count.astype(np.float32)
        batch["row_scale"] = np.ones(size, np.float32)
        if self.hot_row_uses:  # a row's uses: the example inputs of every word holding it
            uses = np.bincount(batch["in_index"][batch["in_weight"] > 0], minlength=len(words))
            row_uses = np.bincount(sub_index, weights=uses[sub_word], minlength=size)
            batch["row_scale"] = (1.0 / np.maximum(1.0, row_uses / self.hot_row_uses)).astype(np.float32)
        batch["in_weight"] = batch["in_weight"] * count[batch["in_index"]].astype(np.float32)
        return batch


@keras.saving.register_keras_serializable(package="kts_embeddings")
class SubwordWord2Vec(SparseRowModel):
    """fastText-style skip-gram / CBOW: input rows [vocab + buckets + 1, dim] (row
    vocab + buckets is padding), output rows [vocab + 1, dim]; the vocabulary's rows (CSR,
    `vocabulary_rows`) are kept as int32 weights, so a saved model composes its vectors
    alone. Initialised as fastText: inputs uniform in +-1/dim, outputs zero."""

    table_names = ("input_vectors", "output_vectors")

    def __init__(self, vocab_size: int, dim: int, minn: int = 3, maxn: int = 6, buckets: int = 200000,
                 entries: int = 0, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.dim, self.seed = int(vocab_size), int(dim), int(seed)
        self.minn, self.maxn, self.buckets, self.entries = int(minn), int(maxn), int(buckets), int(entries)
        self.input_vectors = self.add_weight(
            shape=(self.vocab_size + self.buckets + 1, self.dim), name="input_vectors",
            initializer=keras.initializers.RandomUniform(-1.0 / self.dim, 1.0 / self.dim, seed=self.seed))
        self.output_vectors = self.add_weight(shape=(self.vocab_size + 1, self.dim), name="output_vectors",
                                              initializer="zeros")
        self.vocab_rows = self.add_weight(shape=(self.entries,), dtype="int32", name="vocab_rows",
                                          initializer="zeros", trainable=False)
        self.vocab_offsets = self.add_weight(shape=(self.vocab_size + 1,), dtype="int32", name="vocab_offsets",
                                             initializer="zeros", trainable=False)
        self.built = True

    def set_vocabulary(self, words: list[str]) -> None:
        rows, offsets = vocabulary_rows(words, self.minn, self.maxn, self.buckets)
        if len(words) != self.vocab_size or len(rows) != self.entries:
            raise ValueError(f"Expected {self.vocab_size} words with {self.entries} rows. Received "
                             f"{len(words)} words with {len(rows)} rows.")
        self.vocab_rows.assign(rows)
        self.vocab_offsets.assign(offsets.astype(np.int32))

    def call(self, ids):
        return ops.take(self.input_vectors, ids, axis=0)

    def sparse_update(self, values, batch):
        in_ids, out_ids = batch["in_rows"], batch["out_rows"]
        in_rows = ops.take(values["input_vectors"], in_ids, axis=0)  # [U, D] table rows
        out_rows = ops.take(values["output_vectors"], out_ids, axis=0)
        count = ops.maximum(ops.cast(batch["word_count"], in_rows.dtype), 1.0)[:, None]  # [W, 1]
        slots = ops.shape(count)[0]
        entries = ops.take(in_rows, batch["sub_index"], axis=0)  # [T, D]
        words = ops.segment_sum(entries, batch["sub_word"], num_segments=slots) / count  # [W, D] means
        d_words, d_out, loss_sum, examples = negative_sampling(words, out_rows, batch)
        # d_words = d hidden x the word's row count (its weight): each row gets d hidden
        d_entries = ops.take(d_words / count, batch["sub_word"], axis=0)
        d_in = ops.segment_sum(d_entries, batch["sub_index"], num_segments=ops.shape(in_rows)[0])
        lr = ops.cast(batch["lr"][0], in_rows.dtype)
        d_in = d_in * ops.cast(batch["row_scale"], d_in.dtype)[:, None]
        return ({"output_vectors": (out_ids, out_rows - lr * d_out),
                 "input_vectors": (in_ids, in_rows - lr * d_in)}, loss_sum, examples)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim, "seed": self.seed,
                "minn": self.minn, "maxn": self.maxn, "buckets": self.buckets, "entries": self.entries}

    def ngram_table(self) -> np.ndarray:
        """The n-gram bucket rows [buckets, dim]."""
        return ops.convert_to_numpy(self.input_vectors)[self.vocab_size:self.vocab_size + self.buckets]

    def vectors(self, chunk: int = 4096) -> np.ndarray:
        """In-vocabulary vectors [vocab, dim]: the mean of each word's row and its n-gram rows."""
        table = ops.convert_to_numpy(self.input_vectors)
        rows = ops.convert_to_numpy(self.vocab_rows)
        offsets = ops.convert_to_numpy(self.vocab_offsets).astype(np.int64)
        out = np.empty((self.vocab_size, self.dim), np.float32)
        for start in range(0, self.vocab_size, chunk):
            end = min(start + chunk, self.vocab_size)
            sums = np.add.reduceat(table[rows[offsets[start]:offsets[end]]], offsets[start:end] - offsets[start])
            out[start:end] = sums / np.diff(offsets[start:end + 1])[:, None]
        return out


class SubwordVectors(WordVectors):
    """Word vectors that also answer words outside the vocabulary: the mean of the word's
    n-gram rows (`ngrams` [buckets, dim]); None when it has no n-gram (fastText's answer
    there is a zero vector)."""

    def __init__(self, words, vectors, ngrams: np.ndarray, minn: int, maxn: int):
        super().__init__(words, vectors)
        self.ngrams, self.minn, self.maxn = np.asarray(ngrams, np.float32), int(minn), int(maxn)

    @property
    def buckets(self) -> int:
        return len(self.ngrams)

    def oov_vector(self, word: str) -> np.ndarray | None:
        ids, _ = ngram_ids([word], self.minn, self.maxn, self.buckets)
        return self.ngrams[ids].mean(axis=0) if len(ids) else None

    def vector(self, word: str) -> np.ndarray | None:
        """The vocabulary's vector, else the n-gram mean (None when neither exists)."""
        return self.vectors[self.index[word]] if word in self.index else self.oov_vector(word)

    def info(self) -> dict:
        return {"minn": self.minn, "maxn": self.maxn, "buckets": self.buckets, "hash": HASH}

    @classmethod
    def from_model(cls, model: SubwordWord2Vec, words: list[str]) -> SubwordVectors:
        return cls(words, model.vectors(), model.ngram_table(), model.minn, model.maxn)


def similarity_with_oov(vector, path) -> dict:
    """Spearman over every pair of a similarity file whose words both get a vector from
    `vector(word)` (vocabulary or n-grams; None = no vector): the coverage subword vectors add."""
    from scipy.stats import spearmanr

    from tasks.embeddings.scores import read_pairs

    pairs, _ = read_pairs(path)
    ours, theirs = [], []
    for a, b, score in pairs:
        va, vb = vector(a), vector(b)
        if va is None or vb is None:
            continue
        ours.append(float(va @ vb / max(np.linalg.norm(va) * np.linalg.norm(vb), 1e-12)))
        theirs.append(score)
    rho = float(spearmanr(ours, theirs).statistic) if len(ours) >= 3 else None
    return {"spearman": rho, "pairs": len(ours), "no_vector_pairs": len(pairs) - len(ours)}


NGRAMS_FILE, SUBWORD_JSON = "ngrams.npy", "subword.json"


def save_export(vectors: SubwordVectors, folder) -> dict:
    """export/ngrams.npy (the n-gram rows [buckets, dim], float32) and export/subword.json (minn,
    maxn, buckets, the hash): with vectors.txt, what answers any word (`load_export`)."""
    from pathlib import Path

    from shared.io import atomic_file, atomic_write_json

    folder = Path(folder)
    with atomic_file(folder / NGRAMS_FILE) as tmp, open(tmp, "wb") as f:
        np.save(f, vectors.ngrams)
    atomic_write_json(folder / SUBWORD_JSON, vectors.info())
    return {"subword": {"ngrams": NGRAMS_FILE, "settings": SUBWORD_JSON, **vectors.info(),
                        "oov_vector": "mean of the word's n-gram rows (tasks.embeddings.subword.load_export)"}}


def load_export(folder) -> SubwordVectors:
    """A subword run's export folder (vectors.txt, ngrams.npy, subword.json) as SubwordVectors."""
    import json
    from pathlib import Path

    folder = Path(folder)
    settings = json.loads((folder / SUBWORD_JSON).read_text())
    words = WordVectors.load_word2vec(folder / "vectors.txt")
    ngrams = np.load(folder / NGRAMS_FILE)
    if len(ngrams) != settings["buckets"] or ngrams.shape[1] != words.vectors.shape[1]:
        raise ValueError(f"{folder / NGRAMS_FILE} holds {ngrams.shape} rows; {SUBWORD_JSON} says "
                         f"{settings['buckets']} buckets of the vectors' dimension {words.vectors.shape[1]}")
    return SubwordVectors(words.words, words.vectors, ngrams, settings["minn"], settings["maxn"])
