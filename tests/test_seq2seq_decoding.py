"""Seq2seq decoding: greedy and beam search over hand-made `next_fn`s, checked against
hand-computed scores and an exhaustive search (no model involved)."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from keras import ops

from tasks.seq2seq.decoding import beam_search, gather_beams, greedy_search, tile_state

pytestmark = pytest.mark.backend

PAD, BOS, EOS, A, B, C = range(6)
VOCAB = 6


def _row(named: dict[int, float] | None = None) -> np.ndarray:
    """A probability row: the named tokens as given, the rest share what is left, tie-free."""
    named = named or {}
    rest = [t for t in range(VOCAB) if t not in named]
    weights = np.arange(1, len(rest) + 1, dtype=np.float64)
    row = np.zeros(VOCAB)
    row[rest] = (1.0 - sum(named.values())) * weights / weights.sum()
    row[list(named)] = list(named.values())
    return row


def _table(step_rows: list[dict[int, np.ndarray]]) -> np.ndarray:
    """Log-prob table (steps, last token, next token); unnamed rows get a generic row."""
    table = np.stack([np.stack([rows.get(last, _row()) for last in range(VOCAB)]) for rows in step_rows])
    return np.log(table)


# Greedy takes A (0.5) then A, A, A (0.35 each, never ending); [B, EOS] has 0.4 * 0.9 = 0.36.
TRAP = _table([{BOS: _row({A: 0.5, B: 0.4, EOS: 0.05}), A: _row({A: 0.35, B: 0.25, EOS: 0.1}), B: _row({EOS: 0.9})}])
# [EOS] (0.4) vs [A, A, EOS] (0.55 * 0.8 * 0.9 = 0.396): the length penalty decides.
SHORT_LONG = _table([{BOS: _row({A: 0.55, EOS: 0.4})}, {A: _row({A: 0.8, EOS: 0.05})}, {A: _row({EOS: 0.9})}])


def _table_next_fn(log_probs: np.ndarray):
    """next_fn reading log_probs[min(step, S - 1), last token]; the state passes through."""
    def next_fn(tokens, state, step):
        table = ops.take(ops.convert_to_tensor(log_probs, "float32"), ops.minimum(step, log_probs.shape[0] - 1), axis=0)
        return ops.take(table, tokens[:, 0], axis=0), state
    return next_fn


def _table_log_prob_fn(log_probs: np.ndarray):
    return lambda prefix: log_probs[min(len(prefix), len(log_probs) - 1), prefix[-1] if prefix else BOS]


def _exhaustive(log_prob_fn, vocab: int, max_length: int, alpha: float) -> list[tuple[float, tuple]]:
    """Every hypothesis (ends at EOS or after max_length tokens) with its penalised score, best first."""
    found = []

    def visit(prefix: tuple, total: float):
        log_probs = log_prob_fn(prefix)
        for token in range(vocab):
            seq, score = (*prefix, token), total + float(log_probs[token])
            if token == EOS or len(seq) == max_length:
                penalty = ((5 + len(seq)) / 6) ** alpha
                found.append((score / penalty, seq + (PAD,) * (max_length - len(seq))))
            else:
                visit(seq, score)

    visit((), 0.0)
    return sorted(found, key=lambda item: -item[0])


def _numpy(outputs: dict) -> dict:
    return {key: ops.convert_to_numpy(value) for key, value in outputs.items()}


def _compile(function):
    """The backend's own jit (tests only; the library code is backend-free)."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(function)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(function)
    pytest.skip(f"no jit helper for backend {keras.backend.backend()}")


def test_beam_finds_the_best_sequence_greedy_misses():
    next_fn, state = _table_next_fn(TRAP), {}
    greedy = _numpy(greedy_search(next_fn, state, 1, BOS, EOS, max_length=4))
    np.testing.assert_array_equal(greedy["tokens"], [[A, A, A, A]])
    np.testing.assert_array_equal(greedy["lengths"], [4])
    np.testing.assert_allclose(greedy["scores"], [math.log(0.5) + 3 * math.log(0.35)], rtol=1e-5)

    beam = _numpy(beam_search(next_fn, state, 1, BOS, EOS, max_length=4, beam_size=2, length_penalty_alpha=0.0))
    np.testing.assert_array_equal(beam["tokens"], [[B, EOS, PAD, PAD]])
    np.testing.assert_array_equal(beam["lengths"], [2])
    np.testing.assert_allclose(beam["scores"], [math.log(0.4 * 0.9)], rtol=1e-5)
    best = _exhaustive(_table_log_prob_fn(TRAP), VOCAB, 4, 0.0)[:2]
    np.testing.assert_allclose(beam["all_scores"][0], [score for score, _ in best], rtol=1e-5)

    single = _numpy(beam_search(next_fn, state, 1, BOS, EOS, max_length=4, beam_size=1, length_penalty_alpha=0.0))
    np.testing.assert_array_equal(single["tokens"], greedy["tokens"])
    np.testing.assert_allclose(single["scores"], greedy["scores"], rtol=1e-6)


def test_length_penalty_flips_short_versus_long():
    next_fn = _table_next_fn(SHORT_LONG)
    short, long = math.log(0.4), math.log(0.55 * 0.8 * 0.9)  # lengths 1 and 3 (EOS counted)
    unpenalised = _numpy(beam_search(next_fn, {}, 1, BOS, EOS, 4, beam_size=2, length_penalty_alpha=0.0))
    np.testing.assert_array_equal(unpenalised["tokens"], [[EOS, PAD, PAD, PAD]])
    np.testing.assert_allclose(unpenalised["all_scores"][0], [short, long], rtol=1e-5)

    penalised = _numpy(beam_search(next_fn, {}, 1, BOS, EOS, 4, beam_size=2, length_penalty_alpha=0.6))
    np.testing.assert_array_equal(penalised["tokens"], [[A, A, EOS, PAD]])
    np.testing.assert_array_equal(penalised["lengths"], [3])
    np.testing.assert_allclose(penalised["all_scores"][0], [long / (8 / 6) ** 0.6, short / 1.0], rtol=1e-5)

    greedy = _numpy(greedy_search(next_fn, {}, 1, BOS, EOS, 4))
    np.testing.assert_array_equal(greedy["tokens"], [[A, A, EOS, EOS]])  # padded with end_id by default
    np.testing.assert_array_equal(greedy["lengths"], [3])
    np.testing.assert_allclose(greedy["scores"], [long], rtol=1e-5)


def test_stops_early_once_no_alive_beam_can_win():
    """next_fn returns NaN logits from step 2: both searches must have stopped before."""
    table = _table([{BOS: _row({EOS: 0.98})}, {t: _row({EOS: 0.98}) for t in range(VOCAB)}])
    table_fn = _table_next_fn(table)

    def next_fn(tokens, state, step):
        logits, state = table_fn(tokens, state, step)
        return logits + ops.where(step >= 2, float("nan"), 0.0), state

    beam = _numpy(beam_search(next_fn, {}, 1, BOS, EOS, max_length=5, beam_size=2))
    np.testing.assert_array_equal(beam["tokens"], [[EOS, PAD, PAD, PAD, PAD]])
    assert np.isfinite(beam["all_scores"]).all()
    greedy = _numpy(greedy_search(next_fn, {}, 1, BOS, EOS, max_length=5, pad_id=PAD))
    np.testing.assert_array_equal(greedy["tokens"], [[EOS, PAD, PAD, PAD, PAD]])


def test_beam_search_with_large_beam_equals_exhaustive_search():
    vocab, max_length, alpha = 4, 4, 0.6
    log_probs = np.random.default_rng(0).normal(scale=2.0, size=(max_length, vocab, vocab))
    log_probs = log_probs - np.log(np.exp(log_probs).sum(-1, keepdims=True))
    beam_size = (vocab - 1) ** (max_length - 1)  # 27 alive prefixes at most: nothing is pruned
    out = _numpy(beam_search(_table_next_fn(log_probs), {}, 1, BOS, EOS, max_length, beam_size, alpha, PAD))
    best = _exhaustive(_table_log_prob_fn(log_probs), vocab, max_length, alpha)[:beam_size]
    np.testing.assert_allclose(out["all_scores"][0], [score for score, _ in best], rtol=1e-5)
    np.testing.assert_array_equal(out["tokens"][0], best[0][1])


# Stateful: the state counts the A tokens seen, each adding 1.5 to the EOS logit; the item id
# picks one of three random tables. Wrongly gathered state would give wrong scores.
# Seed chosen so that the three bests differ (PAD A C C, A PAD EOS, A EOS) and a beam of 3 finds them.
ITEM_LOGITS = np.random.default_rng(10).normal(scale=1.5, size=(3, VOCAB, VOCAB)).astype("float32")
ITEM_LOGITS[:, :, A] += 1.0
ITEM_LOGITS[:, :, EOS] -= 1.0
EOS_BONUS = 1.5 * np.eye(VOCAB, dtype="float32")[EOS]


def counting_next_fn(tokens, state, step):
    count = state["count"] + ops.cast(ops.equal(tokens[:, 0], A), "int32")
    flat = ops.reshape(ops.convert_to_tensor(ITEM_LOGITS), (3 * VOCAB, VOCAB))
    logits = ops.take(flat, state["item"] * VOCAB + tokens[:, 0], axis=0)
    logits = logits + ops.cast(count, "float32")[:, None] * EOS_BONUS
    return logits, {"count": count, "item": state["item"]}


def _counting_log_prob_fn(item: int, count: int):
    def log_prob_fn(prefix):
        logits = ITEM_LOGITS[item, prefix[-1] if prefix else BOS] + (count + prefix.count(A)) * EOS_BONUS
        return logits - np.log(np.exp(logits.astype(np.float64)).sum())
    return log_prob_fn


START = {"count": np.array([0, 1, 2], "int32"), "item": np.array([0, 1, 2], "int32")}
BEAM_ARGS = {"batch_size": 3, "start_id": BOS, "end_id": EOS, "max_length": 4, "beam_size": 3}


def test_stateful_batch_matches_exhaustive_and_single_items():
    out = _numpy(beam_search(counting_next_fn, START, **BEAM_ARGS))
    for item in range(3):
        log_prob_fn = _counting_log_prob_fn(item, int(START["count"][item]))
        best_score, best_tokens = _exhaustive(log_prob_fn, VOCAB, 4, 0.6)[0]
        np.testing.assert_array_equal(out["tokens"][item], best_tokens)
        np.testing.assert_allclose(out["scores"][item], best_score, rtol=1e-5)
        for tokens, score in zip(out["all_tokens"][item], out["all_scores"][item]):  # gathered state is right
            seq = tuple(int(t) for t in tokens[: list(tokens).index(EOS) + 1 if EOS in tokens else 4])
            true = sum(float(log_prob_fn(seq[:i])[t]) for i, t in enumerate(seq)) / ((5 + len(seq)) / 6) ** 0.6
            np.testing.assert_allclose(score, true, rtol=1e-5)
        alone = {key: value[item:item + 1] for key, value in START.items()}
        single = _numpy(beam_search(counting_next_fn, alone, **{**BEAM_ARGS, "batch_size": 1}))
        np.testing.assert_array_equal(single["all_tokens"][0], out["all_tokens"][item])
        np.testing.assert_allclose(single["all_scores"][0], out["all_scores"][item], rtol=1e-6)
    assert len({tuple(tokens) for tokens in out["tokens"]}) == 3


def test_compiled_equals_eager():
    beam = lambda state: beam_search(counting_next_fn, state, **BEAM_ARGS)
    greedy = lambda state: greedy_search(counting_next_fn, state, 3, BOS, EOS, 4, pad_id=PAD)
    for search in (beam, greedy):
        eager, compiled = _numpy(search(START)), _numpy(_compile(search)(START))
        assert eager.keys() == compiled.keys()
        for key in eager:
            np.testing.assert_allclose(compiled[key], eager[key], rtol=1e-6, err_msg=key)


def test_selecting_by_sort_equals_top_k():
    """The exportable selection (argsort) and the fast one (top_k) pick the same beams."""
    fast = _numpy(beam_search(counting_next_fn, START, **BEAM_ARGS))
    by_sort = _numpy(beam_search(counting_next_fn, START, **BEAM_ARGS, top_by_sort=True))
    for key in fast:
        np.testing.assert_allclose(by_sort[key], fast[key], rtol=1e-6, err_msg=key)


def test_tile_and_gather_beams():
    state = {"h": np.arange(4, dtype="float32").reshape(2, 2)}
    tiled = ops.convert_to_numpy(tile_state(state, 3)["h"])
    np.testing.assert_array_equal(tiled, [[0, 1]] * 3 + [[2, 3]] * 3)
    rows = ops.convert_to_numpy(gather_beams(np.arange(6), np.array([[2, 0], [1, 1]]), 2, 3))
    np.testing.assert_array_equal(rows, [2, 0, 4, 4])
