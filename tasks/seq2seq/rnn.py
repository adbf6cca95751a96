"""RNN encoder-decoder with attention (Bahdanau / Luong), input feeding; `keras.ops` only.

Encoder: embedding -> bidirectional GRU/LSTM over the source (padding masked); a dense
"bridge" maps the two final states to the decoder's initial state.
Decoder, one step (Luong et al. 2015, with input feeding):
    h_t     = cell([embed(y_{t-1}); a_{t-1}], h_{t-1})
    c_t     = sum_s softmax_s(score(h_t, m_s)) m_s          (padding masked out)
    a_t     = tanh(W_c [c_t; h_t])                           (the "attentional vector")
    logits  = W_o dropout(a_t)
score is additive v^T tanh(W_q h + W_k m) (Bahdanau) or scaled multiplicative
(W_q h) . m / sqrt(d) (Luong "general", scaled). Teacher forcing runs the step with
`keras.ops.scan` over the target (one compiled loop); decoding calls the same step from
`greedy_search` / `beam_search` through `decode_step`.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

MASK_VALUE = -1e9


def _embedding_init():
    """A new initializer per layer: one made at import would fix its seed before the user's."""
    return keras.initializers.RandomNormal(stddev=1.0)


@keras.saving.register_keras_serializable("kts_seq2seq")
class Attention(layers.Layer):
    """score(query (B, Q), keys) -> context (B, M), weights (B, S). `prepare(memory)` once."""

    def __init__(self, kind: str = "bahdanau", units: int = 128, **kwargs):
        super().__init__(**kwargs)
        if kind not in ("bahdanau", "luong"):
            raise ValueError(f"attention must be 'bahdanau' or 'luong'. Received: {kind!r}")
        self.kind, self.units = kind, units

    def build(self, query_shape, memory_shape):
        memory_dim = memory_shape[-1]
        if self.kind == "bahdanau":
            self.query_dense = layers.Dense(self.units, use_bias=False, name="query")
            self.key_dense = layers.Dense(self.units, name="key")
            self.score_dense = layers.Dense(1, use_bias=False, name="score")
            self.key_dense.build(memory_shape)
            self.query_dense.build(query_shape)
            self.score_dense.build((None, self.units))
        else:
            self.query_dense = layers.Dense(memory_dim, use_bias=False, name="query")
            self.query_dense.build(query_shape)

    def prepare(self, memory):
        """Projected keys (B, S, units) for Bahdanau; the memory itself for Luong."""
        return self.key_dense(memory) if self.kind == "bahdanau" else memory

    def call(self, query, memory, keys, mask):
        if self.kind == "bahdanau":
            hidden = ops.tanh(keys + self.query_dense(query)[:, None, :])
            scores = ops.squeeze(self.score_dense(hidden), -1)
        else:
            projected = self.query_dense(query)
            scores = ops.einsum("bd,bsd->bs", projected, keys) / math.sqrt(keys.shape[-1])
        scores = ops.where(mask, ops.cast(scores, "float32"), MASK_VALUE)
        weights = ops.softmax(scores, axis=-1)
        context = ops.einsum("bs,bsd->bd", ops.cast(weights, memory.dtype), memory)
        return context, weights

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "units": self.units}


@keras.saving.register_keras_serializable("kts_seq2seq")
class RNNSeq2Seq(keras.Model):
    """call({"source": (B, S), "target_in": (B, T)} int) -> logits (B, T, target_vocab_size)."""

    def __init__(self, source_vocab_size: int, target_vocab_size: int, embedding_dim: int = 128,
                 hidden_dim: int = 256, cell: str = "gru", attention: str = "bahdanau",
                 dropout_rate: float = 0.0, pad_id: int = 0, **kwargs):
        super().__init__(**kwargs)
        if cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm'. Received: {cell!r}")
        self.source_vocab_size, self.target_vocab_size = source_vocab_size, target_vocab_size
        self.embedding_dim, self.hidden_dim = embedding_dim, hidden_dim
        self.cell_type, self.attention_type = cell, attention
        self.dropout_rate, self.pad_id = dropout_rate, pad_id
        rnn = layers.GRU if cell == "gru" else layers.LSTM
        # N(0, 1) embeddings (PyTorch's default), not Keras' U(-0.05, 0.05): with those tiny
        # inputs the encoder states barely differ across positions, so attention starts with
        # ~1e-7 gradients and Multi30k trained for epochs before it attended at all.
        self.source_embedding = layers.Embedding(source_vocab_size, embedding_dim, name="source_embedding",
                                                 embeddings_initializer=_embedding_init())
        self.target_embedding = layers.Embedding(target_vocab_size, embedding_dim, name="target_embedding",
                                                 embeddings_initializer=_embedding_init())
        self.encoder = layers.Bidirectional(rnn(hidden_dim, return_sequences=True, return_state=True),
                                            name="encoder")
        self.bridge = [layers.Dense(hidden_dim, activation="tanh", name=f"bridge_{i}")
                       for i in range(1 if cell == "gru" else 2)]
        self.cell = (layers.GRUCell if cell == "gru" else layers.LSTMCell)(hidden_dim, name="decoder_cell")
        self.attention = Attention(attention, hidden_dim, name="attention")
        self.combine = layers.Dense(hidden_dim, activation="tanh", use_bias=False, name="combine")
        self.dropout = layers.Dropout(dropout_rate)
        self.output_dense = layers.Dense(target_vocab_size, name="logits")

    def build(self, input_shape=None):
        hidden, memory = self.hidden_dim, 2 * self.hidden_dim
        self.source_embedding.build((None, None))
        self.target_embedding.build((None, None))
        self.encoder.build((None, None, self.embedding_dim))
        for dense in self.bridge:
            dense.build((None, memory))
        self.cell.build((None, self.embedding_dim + hidden))
        self.attention.build((None, hidden), (None, None, memory))
        self.combine.build((None, memory + hidden))
        self.output_dense.build((None, hidden))
        self.built = True

    # Encoder ---------------------------------------------------------------------------
    def encode(self, source, training=False):
        """-> context {"memory", "keys", "mask"} and the decoder's initial state."""
        mask = ops.not_equal(source, self.pad_id)
        embedded = self.dropout(self.source_embedding(source), training=training)
        outputs = self.encoder(embedded, mask=mask, training=training)
        memory, final = outputs[0], outputs[1:]
        if self.cell_type == "gru":  # (forward h, backward h)
            states = [self.bridge[0](ops.concatenate(final, axis=-1))]
        else:  # (fw h, fw c, bw h, bw c)
            states = [self.bridge[0](ops.concatenate([final[0], final[2]], axis=-1)),
                      self.bridge[1](ops.concatenate([final[1], final[3]], axis=-1))]
        context = {"memory": memory, "keys": self.attention.prepare(memory), "mask": mask}
        feed = ops.zeros_like(states[0])
        return context, {"cell": states, "feed": feed}

    def _step(self, context, embedded, state):
        inputs = ops.concatenate([embedded, state["feed"]], axis=-1)
        hidden, cell_state = self.cell(inputs, state["cell"])
        cell_state = list(cell_state) if isinstance(cell_state, (list, tuple)) else [cell_state]
        attended, weights = self.attention(hidden, context["memory"], context["keys"], context["mask"])
        feed = self.combine(ops.concatenate([attended, hidden], axis=-1))
        return feed, weights, {"cell": cell_state, "feed": feed}

    def _teacher_forced(self, source, target_in, training=False):
        context, state = self.encode(source, training=training)
        embedded = self.dropout(self.target_embedding(target_in), training=training)

        # The outputs are the carry itself: Keras' TensorFlow `scan` needs outputs shaped
        # like the carry, so the attention weights ride along in it.
        def step(carry, embedded_t):
            _, weights, state = self._step(context, embedded_t, carry["state"])
            carry = {"state": state, "weights": weights}
            return carry, carry

        initial = {"state": state, "weights": ops.zeros(ops.shape(source), "float32")}
        _, outputs = ops.scan(step, initial, ops.transpose(embedded, (1, 0, 2)))
        return (ops.transpose(outputs["state"]["feed"], (1, 0, 2)),
                ops.transpose(outputs["weights"], (1, 0, 2)))

    def call(self, inputs, training=False):
        feeds, _ = self._teacher_forced(inputs["source"], inputs["target_in"], training=training)
        return self.output_dense(self.dropout(feeds, training=training))

    def attention_weights(self, source, target_in):
        """Teacher-forced attention (B, T, S) over the source positions."""
        return self._teacher_forced(source, target_in)[1]

    # Decoding --------------------------------------------------------------------------
    def start_decoding(self, source, max_length: int):
        return self.encode(source)

    def decode_step(self, context, tokens, state, step):
        embedded = self.target_embedding(tokens[:, 0])
        feed, _, state = self._step(context, embedded, state)
        return ops.cast(self.output_dense(feed), "float32"), state

    def get_config(self):
        return {**super().get_config(), "source_vocab_size": self.source_vocab_size,
                "target_vocab_size": self.target_vocab_size, "embedding_dim": self.embedding_dim,
                "hidden_dim": self.hidden_dim, "cell": self.cell_type,
                "attention": self.attention_type, "dropout_rate": self.dropout_rate,
                "pad_id": self.pad_id}
