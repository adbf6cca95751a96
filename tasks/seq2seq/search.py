"""A trained model's predict path: greedy or beam search over its `decode_step`.

Every seq2seq model here provides
    start_decoding(source (B, S), max_length) -> (context, state)
    decode_step(context, tokens (B', 1), state, step) -> (logits (B', V) float32, state)
where `context` holds what does not change while decoding (encoder memory, masks,
cross-attention keys) and `state` what does (RNN state, KV cache). Beam search tiles the
context once; `decoding.beam_search` tiles and reorders the state.
"""

from __future__ import annotations

import keras
from keras import ops

from pipelines.text import BOS_ID, EOS_ID, PAD_ID
from tasks.seq2seq.decoding import beam_search, greedy_search, tile_state


def decode_length(source_length: int, ratio: float = 1.5, extra: int = 10, cap: int | None = None) -> int:
    """Maximum number of target tokens to generate for sources of `source_length` tokens."""
    length = int(ratio * source_length) + extra
    return min(length, cap) if cap else length


def translate_ids(model, source, max_length: int, beam_size: int = 0, length_penalty_alpha: float = 0.6,
                  exportable: bool = False) -> dict:
    """source (B, S) int ids (eos-terminated, pad 0) -> {"tokens" (B, max_length), "lengths",
    "scores"}. beam_size 0 = greedy search; >= 1 = beam search with that width. `exportable`:
    only ops a SavedModel exported from JAX can hold (see `decoding._top`)."""
    source = ops.convert_to_tensor(source, "int32")
    batch_size = source.shape[0] if source.shape[0] is not None else ops.shape(source)[0]
    context, state = model.start_decoding(source, max_length)
    if beam_size <= 0:
        def next_fn(tokens, state, step):
            return model.decode_step(context, tokens, state, step)

        return greedy_search(next_fn, state, batch_size, BOS_ID, EOS_ID, max_length, pad_id=PAD_ID)
    tiled = tile_state(context, beam_size)

    def next_fn(tokens, state, step):
        return model.decode_step(tiled, tokens, state, step)

    return beam_search(next_fn, state, batch_size, BOS_ID, EOS_ID, max_length, beam_size=beam_size,
                       length_penalty_alpha=length_penalty_alpha, pad_id=PAD_ID, top_by_sort=exportable)


@keras.saving.register_keras_serializable("kts_seq2seq")
class Translator(keras.Model):
    """Wraps a trained model: call(source ids (B, S)) -> best target ids and scores, with the
    search inside the graph (what the SavedModel's translate signature runs)."""

    def __init__(self, model, max_length: int, beam_size: int = 4, length_penalty_alpha: float = 0.6,
                 exportable: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.model, self.max_length = model, max_length
        self.beam_size, self.length_penalty_alpha = beam_size, length_penalty_alpha
        self.exportable = exportable

    def build(self, input_shape=None):
        self.built = True  # the wrapped model is built already

    def call(self, source):
        out = translate_ids(self.model, source, self.max_length, self.beam_size, self.length_penalty_alpha,
                            self.exportable)
        return {"tokens": out["tokens"], "lengths": out["lengths"], "scores": out["scores"]}
