"""Greedy and beam search over a `next_fn` callable, apart from any model (`keras.ops` only).

Static shapes and one compiled loop (`keras.ops.while_loop`, early exit), so both run under
`jax.jit` and inside a `tf.function` / exported SavedModel. Beam search follows the flax WMT /
tensor2tensor algorithm: separate alive and finished beams, GNMT length penalty on finished
hypotheses, early stop once no alive beam can beat the worst finished one.

`NextFn`: `next_fn(tokens, state, step) -> (logits, new_state)` where
    tokens: (B', 1) int32, the last token of every sequence (`start_id` at step 0);
    state: a pytree (dict / list / tuple) of tensors, each with leading dimension B', fixed in
        structure, shape and dtype across steps (RNN hidden states; a KV cache of fixed max
        length, indexed by `step`);
    step: int32 scalar, the index of the token being produced (0 for the first);
    logits: (B', V) float (cast to float32; log-softmax is applied here), V static, V >= 2;
    new_state: same structure and shapes as `state`.
`batch_size` may be a Python int or, when tracing with an unknown batch dimension (a Keras
predict function, an export), the scalar tensor `ops.shape(source)[0]`.
B' is `batch_size` for greedy search and `batch_size * beam_size` for beam search (batch-major:
row b * beam_size + k is beam k of item b), the state being tiled with `tile_state`.

Outputs hold the generated tokens only (not `start_id`); a hypothesis ends at its first
`end_id` (kept in the sequence and counted in its length) or after `max_length` tokens; the
positions after its end hold the pad id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import ops

# (tokens (B', 1) int32, state pytree, step int32 scalar) -> (logits (B', V) float32, new_state).
NextFn = Callable[[Any, Any, Any], tuple[Any, Any]]

NEG_INF = float("-inf")


def length_penalty(length, alpha: float):
    """GNMT length penalty ((5 + length) / 6) ** alpha; `length` counts the end token."""
    return ops.power((5.0 + ops.cast(length, "float32")) / 6.0, alpha)


def tile_state(state, beam_size: int):
    """Repeats every leaf (B, ...) -> (B * beam_size, ...), batch-major (item b's beams adjacent)."""
    return keras.tree.map_structure(lambda leaf: ops.repeat(leaf, beam_size, axis=0), state)


def gather_beams(state, indices, batch_size: int, beam_size: int):
    """Selects beams per batch item: leaves (B * beam_size, ...), indices (B, K') in [0, beam_size)
    -> leaves (B * K', ...), row b * K' + j being beam indices[b, j] of item b."""
    offsets = ops.arange(batch_size, dtype="int32")[:, None] * beam_size
    flat = ops.reshape(ops.cast(indices, "int32") + offsets, (-1,))
    return keras.tree.map_structure(lambda leaf: ops.take(leaf, flat, axis=0), state)


def _gather(values, indices):
    """values (B, K, ...), indices (B, K') -> (B, K', ...)."""
    batch_size, beam_size = ops.shape(values)[0], values.shape[1]
    flat = ops.reshape(values, (-1, *values.shape[2:]))
    out = gather_beams(flat, indices, batch_size, beam_size)
    return ops.reshape(out, (-1, indices.shape[1], *values.shape[2:]))


def _top(scores, count: int, by_sort: bool = False):
    """Indices (B, count) int32 of the largest scores along the last axis, best first.

    `by_sort`: argsort instead of top_k, for graphs exported from JAX: JAX lowers top_k to a
    StableHLO composite that TensorFlow's XlaCallModule (TF 2.21) cannot load. Sorting the
    whole beam x vocabulary row is ~100x slower on a CPU (210 ms vs 2 ms for 16 x 32,000),
    so it is used only there.
    """
    if by_sort:
        return ops.cast(ops.argsort(-scores, axis=-1)[:, :count], "int32")
    return ops.cast(ops.top_k(scores, count)[1], "int32")


def _log_probs(logits):
    if logits.shape[-1] is None or logits.shape[-1] < 2:
        raise ValueError(f"next_fn must return logits (B', V) with static V >= 2. Received: shape={logits.shape}")
    return ops.log_softmax(ops.cast(logits, "float32"), axis=-1)


def _lengths(tokens, end_id: int, max_length: int):
    """tokens (..., L) -> (...,) int32: position of the first end_id + 1, else max_length."""
    is_end = ops.equal(tokens, end_id)
    first = ops.cast(ops.argmax(ops.cast(is_end, "int32"), axis=-1), "int32") + 1
    return ops.where(ops.any(is_end, axis=-1), first, max_length)


def greedy_search(next_fn: NextFn, initial_state, batch_size: int, start_id: int, end_id: int,
                  max_length: int, pad_id: int | None = None) -> dict:
    """Argmax decoding; stops early once every item has produced `end_id`.

    Args:
        initial_state: pytree of tensors with leading dimension batch_size (B).
        pad_id: fills the positions after the end; defaults to `end_id`.

    Returns:
        dict with tokens (B, max_length) int32, lengths (B,) int32 (including the end token)
        and scores (B,) float32, the sum of the chosen tokens' log-probabilities.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1. Received: max_length={max_length}")
    pad_id = end_id if pad_id is None else pad_id
    positions = ops.arange(max_length, dtype="int32")[None, :]

    def cond(step, tokens, last, finished, lengths, scores, state):
        return ops.logical_and(step < max_length, ops.logical_not(ops.all(finished)))

    def body(step, tokens, last, finished, lengths, scores, state):
        logits, state = next_fn(ops.reshape(last, (-1, 1)), state, step)
        log_probs = _log_probs(logits)
        token = ops.cast(ops.argmax(log_probs, axis=-1), "int32")
        token_log_prob = ops.take_along_axis(log_probs, token[:, None], axis=-1)[:, 0]
        scores = scores + ops.where(finished, 0.0, token_log_prob)
        emitted = ops.where(finished, pad_id, token)
        tokens = ops.where(ops.equal(positions, step), emitted[:, None], tokens)
        ended = ops.logical_and(ops.logical_not(finished), ops.equal(token, end_id))
        lengths = ops.where(ended, step + 1, lengths)
        return step + 1, tokens, token, ops.logical_or(finished, ended), lengths, scores, state

    loop_vars = (
        ops.convert_to_tensor(0, "int32"),
        ops.full((batch_size, max_length), pad_id, "int32"),
        ops.full((batch_size,), start_id, "int32"),
        ops.zeros((batch_size,), "bool"),
        ops.full((batch_size,), max_length, "int32"),
        ops.zeros((batch_size,), "float32"),
        initial_state,
    )
    _, tokens, _, _, lengths, scores, _ = ops.while_loop(cond, body, loop_vars)
    return {"tokens": tokens, "lengths": lengths, "scores": scores}


def beam_search(next_fn: NextFn, initial_state, batch_size: int, start_id: int, end_id: int,
                max_length: int, beam_size: int = 4, length_penalty_alpha: float = 0.6,
                pad_id: int = 0, top_by_sort: bool = False) -> dict:
    """Batched beam search with GNMT length penalty (flax WMT / tensor2tensor style).

    Each step extends the K alive beams by every token, keeps the 2K best extensions (enough
    for K to stay alive whatever ends), moves those ending in `end_id` (all of them at the last
    step) to the finished set scored log_prob_sum / ((5 + length) / 6) ** alpha, and keeps the
    best K unfinished as alive. Stops early when, for every item, the best alive beam divided
    by the largest penalty cannot beat the worst of K finished (valid because alpha >= 0 and
    log-probs only decrease). Note: beam_size=1 is greedy decoding plus the best finished
    hypothesis seen on the way, so it can beat greedy when an early end scores higher.

    Args:
        initial_state: pytree of tensors with leading dimension batch_size (B); tiled to
            B * beam_size (K) rows internally.

        top_by_sort: select with argsort instead of top_k (for a SavedModel exported from JAX;
            slower).

    Returns:
        dict with tokens (B, max_length) int32 and scores (B,) float32 of the best hypothesis,
        lengths (B,) int32 of it, all_tokens (B, K, max_length) and all_scores (B, K) of the K
        best finished hypotheses sorted best first (-inf where fewer than K exist).
    """
    if beam_size < 1 or max_length < 1:
        raise ValueError(f"beam_size and max_length must be >= 1. Received: beam_size={beam_size}, "
                         f"max_length={max_length}")
    if length_penalty_alpha < 0:
        raise ValueError(f"length_penalty_alpha must be >= 0. Received: {length_penalty_alpha}")
    positions = ops.arange(max_length, dtype="int32")[None, None, :]
    max_penalty = length_penalty(max_length, length_penalty_alpha)

    def cond(step, alive_seq, alive_log_probs, finished_seq, finished_scores, state):
        best_possible = ops.max(alive_log_probs, axis=1) / max_penalty
        done = ops.all(ops.min(finished_scores, axis=1) >= best_possible)
        return ops.logical_and(step < max_length, ops.logical_not(done))

    def body(step, alive_seq, alive_log_probs, finished_seq, finished_scores, state):
        previous = ops.take(alive_seq, ops.maximum(step - 1, 0), axis=2)  # (B, K)
        last = ops.where(ops.equal(step, 0), ops.full_like(previous, start_id), previous)
        logits, state = next_fn(ops.reshape(last, (-1, 1)), state, step)
        log_probs = _log_probs(logits)
        vocab_size = log_probs.shape[-1]
        candidates = alive_log_probs[:, :, None] + ops.reshape(log_probs, (-1, beam_size, vocab_size))
        candidates = ops.reshape(candidates, (-1, beam_size * vocab_size))
        top = _top(candidates, 2 * beam_size, top_by_sort)  # (B, 2K)
        top_log_probs = ops.take_along_axis(candidates, top, axis=1)
        top_beams, top_tokens = top // vocab_size, top % vocab_size
        top_seq = ops.where(ops.equal(positions, step), top_tokens[:, :, None], _gather(alive_seq, top_beams))
        top_finished = ops.logical_or(ops.equal(top_tokens, end_id), ops.equal(step, max_length - 1))

        alive_candidates = ops.where(top_finished, NEG_INF, top_log_probs)
        keep = _top(alive_candidates, beam_size, top_by_sort)
        alive_log_probs = ops.take_along_axis(alive_candidates, keep, axis=1)
        alive_seq = _gather(top_seq, keep)
        state = gather_beams(state, ops.take_along_axis(top_beams, keep, axis=1), batch_size, beam_size)

        new_scores = ops.where(top_finished, top_log_probs / length_penalty(step + 1, length_penalty_alpha), NEG_INF)
        pool_scores = ops.concatenate([finished_scores, new_scores], axis=1)  # (B, 3K)
        keep = _top(pool_scores, beam_size, top_by_sort)
        finished_scores = ops.take_along_axis(pool_scores, keep, axis=1)
        finished_seq = _gather(ops.concatenate([finished_seq, top_seq], axis=1), keep)
        return step + 1, alive_seq, alive_log_probs, finished_seq, finished_scores, state

    first_beam_only = ops.concatenate(
        [ops.zeros((batch_size, 1), "float32"), ops.full((batch_size, beam_size - 1), NEG_INF, "float32")], axis=1)
    loop_vars = (
        ops.convert_to_tensor(0, "int32"),
        ops.full((batch_size, beam_size, max_length), pad_id, "int32"),
        first_beam_only,
        ops.full((batch_size, beam_size, max_length), pad_id, "int32"),
        ops.full((batch_size, beam_size), NEG_INF, "float32"),
        tile_state(initial_state, beam_size),
    )
    _, _, _, all_tokens, all_scores, _ = ops.while_loop(cond, body, loop_vars)
    tokens = all_tokens[:, 0]
    return {"tokens": tokens, "scores": all_scores[:, 0], "lengths": _lengths(tokens, end_id, max_length),
            "all_tokens": all_tokens, "all_scores": all_scores}
