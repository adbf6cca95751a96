"""Embedding models trained by `fit()` with sparse row updates.

A batch touches a few thousand rows of tables with tens of thousands: dense gradients
(what `jax.grad` of a gather gives) would rewrite every table every step. So the models
here compute their own gradients for the rows a batch names (in `keras.ops`, the same math
on every backend) and `train_step` applies only those, with `keras.ops` too: `Word2Vec`
adds its examples' gradient rows to the tables where they are (`AddRows`: `table +
ops.scatter(ids, rows)`, one scatter-add), the others (subword n-grams, GloVe's AdaGrad)
gather the rows they touch and write their new values back (`ops.scatter_update`).

- JAX: `train_step(state, data)` is jitted with the state donated, so the scatter happens
  in place;
- TensorFlow: `variable.assign(...)` of the scatter. Under XLA (`jit_compile=True`) it is
  done in place; without XLA TensorFlow copies the table once a step. Measured (2026-12-03,
  TF 2.21, Keras 3.15, 2 CPU cores shared with a test run; skip-gram on the `demo` preset's
  first 200 batches, ms per step, min / median of 3 and 5 rounds, side by side in one
  process) against the TF-only `variable.scatter_update(tf.IndexedSlices)` it replaces:
  without XLA 26.5 / 29.0 vs 21.4 / 23.2 and 23.5 / 29.3 vs 23.7 / 25.2 (1.0-1.25x); with XLA
  8.2 / 8.9 vs 8.8 / 10.1 and 7.8 / 10.4 vs 8.2 / 10.3 (the same). XLA is 2.5x faster than
  no XLA here, but `jit_compile="auto"` turns it off on a CPU-only TensorFlow, so the presets
  set `train.jit_compile=true` (all but `smoke`, where compiling each batch shape costs more
  than it saves), and 16 steps per compiled call halve the time per step again
  (`training.steps_per_execution`; measured 2026-12-03, docs/benchmarks.md).

`sparse_update` holds the model. `call(ids)` looks up input vectors, so a saved model is
an embedding lookup.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
from keras import ops


class AddRows(NamedTuple):
    """An update that adds `deltas` [N, D] to rows `ids` [N] of a table (a row named twice
    gets both). Written `table + ops.scatter(...)`, which XLA turns into one in-place scatter-add
    (2026-12-03, TF 2.21, 2 CPU cores: 15,360 rows of 100 into a 29,000-row table 0.53 ms, a
    1,000,000-row one 1.3 ms; scaled after the scatter it is a dense pass: 2.4 and 40 ms)."""

    ids: object
    deltas: object


def apply_update(table, update):
    """The table with `update` applied: AddRows, or (ids, new rows) replacing those rows."""
    if isinstance(update, AddRows):
        return table + ops.scatter(ops.expand_dims(update.ids, -1), update.deltas, ops.shape(table))
    ids, new_rows = update
    return ops.scatter_update(table, ops.expand_dims(ids, -1), new_rows)


class SparseRowModel(keras.Model):
    """Base: subclasses create their tables (keras Variables) and implement
    `sparse_update(values: dict name -> tensor, batch) -> (updates: dict name -> (ids, new
    rows) or AddRows, loss_sum, weight)`; the epoch's loss is sum(loss_sum) / sum(weight)."""

    table_names: tuple[str, ...] = ()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    def tables(self) -> dict:
        return {name: getattr(self, name) for name in self.table_names}

    @property
    def jit_compile(self):
        return super().jit_compile

    @jit_compile.setter
    def jit_compile(self, value):
        # Keras refuses XLA while TensorFlow's op determinism is on (the CLI turns it on for
        # every run). These steps are deterministic under XLA on the CPU (its scatters run in
        # order; tests/test_embeddings.py trains twice and compares), so XLA stays on.
        self._jit_compile = value

    def sparse_update(self, values: dict, batch: dict):
        raise NotImplementedError

    def train_step(self, *args):
        if keras.backend.backend() == "jax":
            return self._stateless_train_step(*args)
        return self._stateful_train_step(*args)

    def _stateful_train_step(self, batch):
        tables = self.tables()
        rows, loss_sum, weight = self.sparse_update({k: v.value for k, v in tables.items()}, batch)
        for name, update in rows.items():
            variable = tables[name]
            variable.assign(apply_update(variable.value, update))
        self.loss_tracker.update_state(loss_sum / ops.maximum(weight, 1.0), sample_weight=weight)
        return {"loss": self.loss_tracker.result()}

    def _stateless_train_step(self, state, batch):
        trainable, non_trainable, optimizer_variables, metrics_variables = state
        trainable, non_trainable = list(trainable), list(non_trainable)
        where = {}
        for name, variable in self.tables().items():
            for values, variables in ((trainable, self.trainable_variables),
                                      (non_trainable, self.non_trainable_variables)):
                found = [i for i, v in enumerate(variables) if v is variable]
                if found:
                    where[name] = (values, found[0])
        current = {name: values[i] for name, (values, i) in where.items()}
        rows, loss_sum, weight = self.sparse_update(current, batch)
        for name, update in rows.items():
            values, i = where[name]
            values[i] = apply_update(values[i], update)
        metrics_variables = self.loss_tracker.stateless_update_state(
            metrics_variables, loss_sum / ops.maximum(weight, 1.0), sample_weight=weight)
        logs = {"loss": self.loss_tracker.stateless_result(metrics_variables)}
        return logs, (trainable, non_trainable, optimizer_variables, metrics_variables)


def lane_sum(x):
    """x summed over its last axis, first halved while it is even and over 32 wide (x[..., :n/2]
    + x[..., n/2:]), then summed. The same sum in another order: XLA's CPU code for a reduction
    over the minor axis of a gathered product is ~3x slower (2026-12-03, TF 2.21, 2 CPU cores:
    [16384, 6, 100] dot products of gathered rows 5.3 ms -> 1.7 ms alone); folded, the adds
    are vector adds. Other backends see one fused reduction either way. With the re-gather in
    `negative_sampling`, a whole word2vec step (XLA, in one process, alternating with the
    earlier step on the same batches) is 1.10x faster on `nltk-sg`, 1.32x on `demo`."""
    n = x.shape[-1]
    while n % 2 == 0 and n > 32:
        n //= 2
        x = x[..., :n] + x[..., n:]
    return ops.sum(x, axis=-1)


def example_gradients(in_rows, out_rows, batch, in_index, out_index, scale=1.0):
    """Skip-gram / CBOW negative-sampling (or hierarchical-softmax) loss and its gradients,
    one row per use: example p averages its inputs in_rows[in_index[p, c]] (weights
    in_weight, a mask; one input for skip-gram) into h_p and scores its outputs
    out_rows[out_index[p, k]] (k = 0 the target, then the noise words): loss = -log s(h.u_0)
    - sum_k log s(-h.u_k), each term times `weight`. With `out_label` in the batch
    (hierarchical softmax) the outputs are the target's Huffman path and the labels 1 - its
    code: loss = -sum_k log s((2 l_k - 1) h.u_k). As in word2vec, each input word of an
    example gets the whole gradient of h.

    Returns (d_inputs [P * C, D], d_outputs [P * (1+K), D], loss sum, examples): the
    gradient rows times `scale`, in the order of in_index / out_index flattened, so a caller
    sums them into rows (`negative_sampling`) or adds them to a table (`Word2Vec`)."""
    in_weight = ops.cast(batch["in_weight"], in_rows.dtype)
    contexts = ops.take(in_rows, in_index, axis=0)  # [P, C, D]
    count = ops.maximum(ops.sum(in_weight, axis=1, keepdims=True), 1.0)
    hidden = ops.sum(contexts * in_weight[..., None], axis=1) / count  # [P, D]
    targets = ops.take(out_rows, out_index, axis=0)  # [P, 1+K, D]
    scores = lane_sum(hidden[:, None, :] * targets)  # [P, 1+K]
    if "out_label" in batch:
        labels = ops.cast(batch["out_label"], scores.dtype)
    else:
        labels = ops.cast(ops.arange(ops.shape(scores)[1]) == 0, scores.dtype)[None, :]
    weight = ops.cast(batch["weight"], scores.dtype)
    loss_sum = ops.sum(weight * ops.softplus(scores - 2.0 * labels * scores))  # softplus(-s) for targets
    gradient = (scale * weight) * (ops.sigmoid(scores) - labels)  # d loss / d score, times scale
    # d_hidden gathers the targets again, through the transposed index ([1+K, P, D]): XLA then
    # fuses each gather into its reduction instead of writing [P, 1+K, D] to memory once for
    # both (2026-12-03, TF 2.21, 2 CPU cores, P = 6,144: 2.8 ms -> 1.1 ms for the two), and a
    # sum of products, not einsum (a batched matmul there: 6x slower)
    again = ops.take(out_rows, ops.transpose(out_index), axis=0)
    d_hidden = ops.sum(ops.transpose(gradient)[..., None] * again, axis=0)
    d_targets = gradient[..., None] * hidden[:, None, :]
    d_contexts = d_hidden[:, None, :] * in_weight[..., None]
    dim = ops.shape(in_rows)[1]
    return ops.reshape(d_contexts, (-1, dim)), ops.reshape(d_targets, (-1, dim)), loss_sum, ops.sum(weight[:, 0])


def negative_sampling(in_rows, out_rows, batch):
    """`example_gradients` summed per row: in_rows [Ui, D], out_rows [Uo, D] are the rows the
    batch names (`in_index` / `out_index` index into them). Returns (d in_rows, d out_rows,
    loss sum, examples)."""
    d_contexts, d_targets, loss_sum, examples = example_gradients(in_rows, out_rows, batch, batch["in_index"],
                                                                  batch["out_index"])
    d_out = ops.segment_sum(d_targets, ops.reshape(batch["out_index"], (-1,)), num_segments=ops.shape(out_rows)[0])
    d_in = ops.segment_sum(d_contexts, ops.reshape(batch["in_index"], (-1,)), num_segments=ops.shape(in_rows)[0])
    return d_in, d_out, loss_sum, examples


@keras.saving.register_keras_serializable(package="kts_embeddings")
class Word2Vec(SparseRowModel):
    """word2vec with negative sampling (skip-gram or CBOW, set by the batches): input vectors
    (the embeddings) and output vectors, each [vocab + 1, dim]; row `vocab_size` is padding.
    Initialised as word2vec: inputs uniform in +-0.5/dim, outputs zero."""

    table_names = ("input_vectors", "output_vectors")

    def __init__(self, vocab_size: int, dim: int, seed: int = 0, freeze_inputs: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.dim, self.seed = int(vocab_size), int(dim), int(seed)
        self.freeze_inputs = bool(freeze_inputs)  # input vectors loaded from a file and kept
        self.input_vectors = self.add_weight(
            shape=(self.vocab_size + 1, self.dim), name="input_vectors",
            initializer=keras.initializers.RandomUniform(-0.5 / self.dim, 0.5 / self.dim, seed=self.seed))
        self.output_vectors = self.add_weight(shape=(self.vocab_size + 1, self.dim), name="output_vectors",
                                              initializer="zeros")
        self.built = True  # the tables are the model; fit() must not trace call() on a batch

    def call(self, ids):
        return ops.take(self.input_vectors, ids, axis=0)

    def sparse_update(self, values, batch):
        # the examples' word ids (the batch indexes its distinct rows); the gradient rows are
        # added to the tables where they are, without gathering and writing back the touched
        # rows (a skip-gram step on nltk-sg: see docs/benchmarks.md, 2026-12-03 session 17)
        in_index = ops.take(batch["in_rows"], batch["in_index"], axis=0)
        out_index = ops.take(batch["out_rows"], batch["out_index"], axis=0)
        lr = ops.cast(batch["lr"][0], values["input_vectors"].dtype)
        d_in, d_out, loss_sum, examples = example_gradients(values["input_vectors"], values["output_vectors"], batch,
                                                            in_index, out_index, scale=-lr)
        rows = {"output_vectors": AddRows(ops.reshape(out_index, (-1,)), d_out)}
        if not self.freeze_inputs:
            rows["input_vectors"] = AddRows(ops.reshape(in_index, (-1,)), d_in)
        return rows, loss_sum, examples

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim, "seed": self.seed,
                "freeze_inputs": self.freeze_inputs}

    def vectors(self):
        """The word vectors as numpy [vocab, dim] (padding row dropped)."""
        return ops.convert_to_numpy(self.input_vectors)[: self.vocab_size]


@keras.saving.register_keras_serializable(package="kts_embeddings")
class GloVe(SparseRowModel):
    """GloVe: word vectors W, context vectors W~ and biases b, b~ ([vocab + 1, ...]; row
    `vocab_size` is padding), fitted to log co-occurrence counts by weighted least squares,
    loss = 1/2 sum f(x) (w_i . w~_j + b_i + b~_j - log x)^2 with f(x) = min(1, (x/x_max)^alpha),
    with GloVe's C code's AdaGrad: an update is eta g / sqrt(G) with G the sum of the earlier
    updates' squares (eta g)^2, starting at 1 (one update per row and batch). Word vectors are
    W + W~. Initialised as the C code: uniform in +-0.5/dim."""

    table_names = ("word_vectors", "context_vectors", "word_bias", "context_bias",
                   "word_vectors_g2", "context_vectors_g2", "word_bias_g2", "context_bias_g2")

    def __init__(self, vocab_size: int, dim: int, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.dim, self.seed = int(vocab_size), int(dim), int(seed)
        rows = self.vocab_size + 1
        for index, (name, width) in enumerate((("word_vectors", dim), ("context_vectors", dim),
                                               ("word_bias", 1), ("context_bias", 1))):
            init = keras.initializers.RandomUniform(-0.5 / dim, 0.5 / dim, seed=self.seed + index)
            setattr(self, name, self.add_weight(shape=(rows, width), name=name, initializer=init))
            setattr(self, f"{name}_g2", self.add_weight(shape=(rows, width), name=f"{name}_g2",
                                                        initializer="ones", trainable=False))
        self.built = True

    def call(self, ids):
        return ops.take(self.word_vectors, ids, axis=0) + ops.take(self.context_vectors, ids, axis=0)

    def sparse_update(self, values, batch):
        row_ids, column_ids = batch["row_ids"], batch["column_ids"]
        gathered = {name: ops.take(values[name], row_ids if name.startswith("word") else column_ids, axis=0)
                    for name in self.table_names}
        w = ops.take(gathered["word_vectors"], batch["row_index"], axis=0)
        c = ops.take(gathered["context_vectors"], batch["column_index"], axis=0)
        bw = ops.take(gathered["word_bias"], batch["row_index"], axis=0)[:, 0]
        bc = ops.take(gathered["context_bias"], batch["column_index"], axis=0)[:, 0]
        difference = lane_sum(w * c) + bw + bc - batch["log_x"]
        weighted = batch["weight"] * difference  # d loss / d (w . c + b + b~)
        loss_sum = 0.5 * ops.sum(weighted * difference)
        lr = ops.cast(batch["lr"][0], w.dtype)

        def aggregate(update, index, like):
            return ops.segment_sum(update, index, num_segments=ops.shape(like)[0])

        updates = {
            "word_vectors": aggregate(weighted[:, None] * c, batch["row_index"], row_ids),
            "context_vectors": aggregate(weighted[:, None] * w, batch["column_index"], column_ids),
            "word_bias": aggregate(weighted[:, None], batch["row_index"], row_ids),
            "context_bias": aggregate(weighted[:, None], batch["column_index"], column_ids),
        }
        updates = {name: (lr * g, ops.square(lr * g)) for name, g in updates.items()}
        rows = {}
        for name, (step, squares) in updates.items():
            # as the C code: w -= eta g / sqrt(G), then G += (eta g)^2, G starting at 1; a row's
            # entries in one batch make one update (their summed g), where the C code makes one
            # per entry. eta is applied after the segment sum: before it, the step ran ~1.4x slower
            # on TF/XLA CPU.
            ids = row_ids if name.startswith("word") else column_ids
            rows[name] = (ids, gathered[name] - step / ops.sqrt(gathered[f"{name}_g2"]))
            rows[f"{name}_g2"] = (ids, gathered[f"{name}_g2"] + squares)
        return rows, loss_sum, ops.cast(ops.shape(difference)[0], w.dtype)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim, "seed": self.seed}

    def vectors(self):
        total = ops.convert_to_numpy(self.word_vectors) + ops.convert_to_numpy(self.context_vectors)
        return total[: self.vocab_size]
