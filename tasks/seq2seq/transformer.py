"""A small pre-norm Transformer encoder-decoder with a fixed-size KV cache; `keras.ops` only.

Pre-norm blocks (x + Dropout(SubLayer(LayerNorm(x)))) with a final LayerNorm on each
side; sinusoidal or learned positions; optionally one embedding matrix shared by source,
target and the output projection (a joint vocabulary). Decoding runs one token per step
against a key/value cache of `max_length` positions written at `step` (static shapes, so
the loop compiles once and exports).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

MASK_VALUE = -1e9


def sinusoidal_table(length: int, dim: int) -> np.ndarray:
    """(length, dim) float32 sin/cos positions (Vaswani et al. 2017), interleaved halves."""
    positions = np.arange(length, dtype=np.float64)[:, None]
    rates = np.exp(-math.log(10000.0) * np.arange(0, dim, 2, dtype=np.float64) / dim)
    table = np.zeros((length, dim), np.float64)
    table[:, 0::2] = np.sin(positions * rates)
    table[:, 1::2] = np.cos(positions * rates[: dim // 2])
    return table.astype(np.float32)


@keras.saving.register_keras_serializable("kts_seq2seq")
class MultiHeadAttention(layers.Layer):
    """Scaled dot-product attention over `num_heads` heads; `mask` (B, Q, K) bool or None."""

    def __init__(self, model_dim: int, num_heads: int, **kwargs):
        super().__init__(**kwargs)
        self.model_dim, self.num_heads = model_dim, num_heads
        self.head_dim = model_dim // num_heads
        self.query = layers.Dense(model_dim, name="query")
        self.key = layers.Dense(model_dim, name="key")
        self.value = layers.Dense(model_dim, name="value")
        self.out = layers.Dense(model_dim, name="out")

    def build(self, query_shape, memory_shape=None):
        for dense in (self.query, self.key, self.value, self.out):
            dense.build((None, None, self.model_dim))

    def split_heads(self, x):
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        return ops.reshape(x, (batch, length, self.num_heads, self.head_dim))

    def project_memory(self, memory):
        """Keys and values (B, K, H, Dh) of `memory`, computed once for cross-attention."""
        return self.split_heads(self.key(memory)), self.split_heads(self.value(memory))

    def attend(self, query, keys, values, mask):
        """query (B, Q, D) -> output (B, Q, D), weights (B, H, Q, K) float32."""
        q = self.split_heads(self.query(query)) / math.sqrt(self.head_dim)
        scores = ops.cast(ops.einsum("bqhd,bkhd->bhqk", q, keys), "float32")
        if mask is not None:
            scores = ops.where(mask[:, None, :, :], scores, MASK_VALUE)
        weights = ops.softmax(scores, axis=-1)
        mixed = ops.einsum("bhqk,bkhd->bqhd", ops.cast(weights, values.dtype), values)
        batch, length = ops.shape(query)[0], ops.shape(query)[1]
        return self.out(ops.reshape(mixed, (batch, length, self.model_dim))), weights

    def call(self, query, memory, mask=None):
        keys, values = self.project_memory(memory)
        return self.attend(query, keys, values, mask)

    def get_config(self):
        return {**super().get_config(), "model_dim": self.model_dim, "num_heads": self.num_heads}


def _feed_forward(model_dim: int, ff_dim: int, name: str) -> list:
    return [layers.Dense(ff_dim, activation="relu", name=f"{name}_in"),
            layers.Dense(model_dim, name=f"{name}_out")]


@keras.saving.register_keras_serializable("kts_seq2seq")
class TransformerSeq2Seq(keras.Model):
    """call({"source": (B, S), "target_in": (B, T)} int) -> logits (B, T, target_vocab_size)."""

    def __init__(self, source_vocab_size: int, target_vocab_size: int, model_dim: int = 256,
                 num_heads: int = 4, ff_dim: int = 1024, encoder_layers: int = 3,
                 decoder_layers: int = 3, dropout_rate: float = 0.1, positions: str = "sinusoidal",
                 share_embeddings: bool = False, max_positions: int = 512, pad_id: int = 0, **kwargs):
        super().__init__(**kwargs)
        if share_embeddings and source_vocab_size != target_vocab_size:
            raise ValueError("share_embeddings needs one joint vocabulary. Received: "
                             f"source_vocab_size={source_vocab_size}, target_vocab_size={target_vocab_size}")
        if positions not in ("sinusoidal", "learned"):
            raise ValueError(f"positions must be 'sinusoidal' or 'learned'. Received: {positions!r}")
        self.source_vocab_size, self.target_vocab_size = source_vocab_size, target_vocab_size
        self.model_dim, self.num_heads, self.ff_dim = model_dim, num_heads, ff_dim
        self.encoder_layers, self.decoder_layers = encoder_layers, decoder_layers
        self.dropout_rate, self.positions, self.share_embeddings = dropout_rate, positions, share_embeddings
        self.max_positions, self.pad_id = max_positions, pad_id

        self.source_embedding = layers.Embedding(source_vocab_size, model_dim, name="source_embedding")
        self.target_embedding = (self.source_embedding if share_embeddings else
                                 layers.Embedding(target_vocab_size, model_dim, name="target_embedding"))
        if positions == "learned":
            self.position_embedding = layers.Embedding(max_positions, model_dim, name="positions")
        else:
            self.position_table = sinusoidal_table(max_positions, model_dim)
        self.dropout = layers.Dropout(dropout_rate)
        norm = lambda name: layers.LayerNormalization(epsilon=1e-6, name=name)  # noqa: E731
        self.encoder_blocks = [{"attention_norm": norm(f"enc{i}_attention_norm"),
                                "attention": MultiHeadAttention(model_dim, num_heads, name=f"enc{i}_attention"),
                                "ff_norm": norm(f"enc{i}_ff_norm"),
                                "ff": _feed_forward(model_dim, ff_dim, f"enc{i}_ff")}
                               for i in range(encoder_layers)]
        self.decoder_blocks = [{"self_norm": norm(f"dec{i}_self_norm"),
                                "self_attention": MultiHeadAttention(model_dim, num_heads, name=f"dec{i}_self"),
                                "cross_norm": norm(f"dec{i}_cross_norm"),
                                "cross_attention": MultiHeadAttention(model_dim, num_heads, name=f"dec{i}_cross"),
                                "ff_norm": norm(f"dec{i}_ff_norm"),
                                "ff": _feed_forward(model_dim, ff_dim, f"dec{i}_ff")}
                               for i in range(decoder_layers)]
        self.encoder_norm = norm("encoder_norm")
        self.decoder_norm = norm("decoder_norm")
        self.output_dense = None if share_embeddings else layers.Dense(target_vocab_size, name="logits")

    def build(self, input_shape=None):
        d = self.model_dim
        self.source_embedding.build((None, None))
        if not self.share_embeddings:
            self.target_embedding.build((None, None))
            self.output_dense.build((None, None, d))
        else:
            self.output_bias = self.add_weight(shape=(self.target_vocab_size,), initializer="zeros",
                                               name="output_bias")
        if self.positions == "learned":
            self.position_embedding.build((None, None))
        for block in self.encoder_blocks + self.decoder_blocks:
            for name, layer in block.items():
                if name == "ff":
                    layer[0].build((None, None, d))
                    layer[1].build((None, None, self.ff_dim))
                else:
                    layer.build((None, None, d))
        self.encoder_norm.build((None, None, d))
        self.decoder_norm.build((None, None, d))
        self.built = True

    # Pieces ----------------------------------------------------------------------------
    def _embed(self, embedding, tokens, offset, training):
        x = embedding(tokens) * math.sqrt(self.model_dim)
        length = ops.shape(tokens)[1]
        positions = ops.arange(length, dtype="int32") + offset
        if self.positions == "learned":
            x = x + self.position_embedding(positions)[None]
        else:
            x = x + ops.cast(ops.take(self.position_table, positions, axis=0), x.dtype)[None]
        return self.dropout(x, training=training)

    def _ff(self, block, x, training):
        hidden = self.dropout(block["ff"][0](block["ff_norm"](x)), training=training)
        return x + self.dropout(block["ff"][1](hidden), training=training)

    def _logits(self, x):
        x = self.decoder_norm(x)
        if self.share_embeddings:
            logits = ops.matmul(x, ops.transpose(ops.cast(self.source_embedding.embeddings, x.dtype)))
            # the bias is read inside the caller's autocast scope: bf16 under mixed_bfloat16
            return ops.cast(logits, "float32") + ops.cast(self.output_bias, "float32")
        return ops.cast(self.output_dense(x), "float32")

    def encode(self, source, training=False):
        mask = ops.not_equal(source, self.pad_id)  # (B, S)
        x = self._embed(self.source_embedding, source, 0, training)
        attention_mask = ops.logical_and(mask[:, None, :], mask[:, :, None])
        for block in self.encoder_blocks:
            normed = block["attention_norm"](x)
            attended, _ = block["attention"](normed, normed, attention_mask)
            x = self._ff(block, x + self.dropout(attended, training=training), training)
        return self.encoder_norm(x), mask

    def _decode(self, target_in, memory, source_mask, training=False):
        x = self._embed(self.target_embedding, target_in, 0, training)
        length = ops.shape(target_in)[1]
        causal = ops.greater_equal(ops.arange(length)[:, None], ops.arange(length)[None, :])
        cross_mask = ops.repeat(source_mask[:, None, :], length, axis=1)
        weights = None
        for block in self.decoder_blocks:
            normed = block["self_norm"](x)
            attended, _ = block["self_attention"](normed, normed, causal[None])
            x = x + self.dropout(attended, training=training)
            attended, weights = block["cross_attention"](block["cross_norm"](x), memory, cross_mask)
            x = self._ff(block, x + self.dropout(attended, training=training), training)
        return x, weights

    def call(self, inputs, training=False):
        memory, source_mask = self.encode(inputs["source"], training=training)
        x, _ = self._decode(inputs["target_in"], memory, source_mask, training=training)
        return self._logits(x)

    def attention_weights(self, source, target_in):
        """Teacher-forced cross-attention of the last decoder layer, mean over heads: (B, T, S)."""
        memory, source_mask = self.encode(source)
        _, weights = self._decode(target_in, memory, source_mask)
        return ops.mean(weights, axis=1)

    # Decoding --------------------------------------------------------------------------
    def start_decoding(self, source, max_length: int):
        """-> context (cross-attention keys/values per layer, source mask) and an empty cache."""
        if max_length > self.max_positions:
            raise ValueError(f"max_length {max_length} exceeds the model's max_positions "
                             f"{self.max_positions}")
        memory, source_mask = self.encode(source)
        context = {"mask": source_mask, "cross": [block["cross_attention"].project_memory(memory)
                                                  for block in self.decoder_blocks]}
        batch = ops.shape(source)[0]
        heads, head_dim = self.num_heads, self.model_dim // self.num_heads
        empty = ops.zeros((batch, max_length, heads, head_dim), memory.dtype)
        cache = [{"keys": empty, "values": empty} for _ in self.decoder_blocks]
        return context, cache

    def decode_step(self, context, tokens, cache, step):
        max_length = cache[0]["keys"].shape[1]
        x = self._embed(self.target_embedding, tokens, step, False)  # (B', 1, D)
        here = ops.equal(ops.arange(max_length, dtype="int32"), step)  # write position
        visible = ops.less_equal(ops.arange(max_length, dtype="int32"), step)[None, None, :]
        cross_mask = context["mask"][:, None, :]
        new_cache = []
        for block, layer_cache, (cross_keys, cross_values) in zip(self.decoder_blocks, cache,
                                                                  context["cross"]):
            attention = block["self_attention"]
            normed = block["self_norm"](x)
            write = ops.cast(here, normed.dtype)[None, :, None, None]
            keys = layer_cache["keys"] * (1 - write) + attention.split_heads(attention.key(normed)) * write
            values = (layer_cache["values"] * (1 - write)
                      + attention.split_heads(attention.value(normed)) * write)
            new_cache.append({"keys": keys, "values": values})
            attended, _ = attention.attend(normed, keys, values, visible)
            x = x + attended
            attended, _ = block["cross_attention"].attend(block["cross_norm"](x), cross_keys,
                                                          cross_values, cross_mask)
            x = self._ff(block, x + attended, False)
        return self._logits(x)[:, 0, :], new_cache

    def get_config(self):
        return {**super().get_config(), "source_vocab_size": self.source_vocab_size,
                "target_vocab_size": self.target_vocab_size, "model_dim": self.model_dim,
                "num_heads": self.num_heads, "ff_dim": self.ff_dim,
                "encoder_layers": self.encoder_layers, "decoder_layers": self.decoder_layers,
                "dropout_rate": self.dropout_rate, "positions": self.positions,
                "share_embeddings": self.share_embeddings, "max_positions": self.max_positions,
                "pad_id": self.pad_id}
