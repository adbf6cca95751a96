"""Evaluate stage: decode the evaluation split greedily and with beams, score with sacreBLEU.

Scores are corpus BLEU and chrF (sacreBLEU, default settings, signature recorded) on the
detokenized output against the raw references, exact match (the dates task's measure:
hypothesis == reference after the tokenizer's normalisation), and decoding speed. Writes
evaluation/results.json, the best setting's hypotheses (one line per sentence) and the
attention of a few sentences for the report.

With eval.length_penalty_grid set, the GNMT length penalty is picked first on the validation
split (never on the split that is scored) and written into the run's config.json, so that
export and translate decode with the same alpha.

Every setting also records the mean token log-probability of its outputs (the model's
confidence) and, for corpora whose outputs can be checked (dates: a real ISO day), the share
of outputs that fail the check. Scoring a user's own files in full is `scoring_files.py`.
"""

from __future__ import annotations

import math
import time

import numpy as np

from pipelines.text import BOS_ID, EOS_ID
from shared import config as config_lib
from shared.io import atomic_write_json, atomic_write_text
from shared.task import Run
from tasks.seq2seq import data as data_lib
from tasks.seq2seq.config import Seq2SeqConfig
from tasks.seq2seq.search import Translator
from tasks.seq2seq.training import load


def decoding_settings(config: Seq2SeqConfig) -> list[int]:
    """Greedy (0) first, then every beam width of the table and the main one, deduplicated."""
    widths = [0] + sorted(set(config.eval.beam_sizes) | {config.eval.beam_size})
    return list(dict.fromkeys(w for w in widths if w >= 0))


def setting_name(beam_size: int) -> str:
    return "greedy" if beam_size == 0 else f"beam {beam_size}"


def decode_split(model, examples: list[dict], config: Seq2SeqConfig, beam_size: int,
                 warm_up: bool = False) -> tuple[list, float, list]:
    """Best token ids (without eos/padding) per example, in order, the seconds it took and
    each output's mean token log-probability (None where the search found no finished output).

    `warm_up` (evaluation): every batch has one shape (eval batch size x max source length)
    and the first one is decoded once before the clock starts, so the seconds are decoding
    alone, without tracing/compilation. Without it (translate), batches are bucketed by
    length and sized to the input."""
    alpha = config.eval.length_penalty
    translator = Translator(model, config.data.max_target_length, beam_size, alpha)
    if warm_up:
        batches = list(data_lib.decode_batches(examples, config.eval.batch_size, config.data.max_source_length))
        translator.predict_on_batch(batches[0][1])
    else:
        batches = [(indices, batch["source"]) for indices, batch in
                   data_lib.eval_batches(examples, config.eval.batch_size, config.data.bucket_width)]
    started = time.perf_counter()
    outputs, confidence = run_translator(translator, batches, len(examples))
    return outputs, time.perf_counter() - started, confidence


def run_translator(translator: Translator, batches, count: int) -> tuple[list, list]:
    """Runs `translator` over (indices, source) batches of `count` examples: the best token ids
    (without eos/padding) per example, in order, and each output's mean token log-probability."""
    alpha = translator.length_penalty_alpha if translator.beam_size else 0.0
    outputs: list = [None] * count
    confidence: list = [None] * count
    for indices, source in batches:
        result = translator.predict_on_batch(source)
        tokens, lengths = np.asarray(result["tokens"]), np.asarray(result["lengths"])
        scores = np.asarray(result["scores"], np.float64)
        for row, index in enumerate(indices):
            ids = tokens[row, : lengths[row]].tolist()
            outputs[index] = ids[:-1] if ids and ids[-1] == EOS_ID else ids
            confidence[index] = mean_log_prob(scores[row], int(lengths[row]), alpha)
    return outputs, confidence


def epoch_bleu(split, examples: list[dict], tokenizers, config: Seq2SeqConfig):
    """`fit(epoch_metrics=)` for training: `compute(model) -> {"val_bleu": ...}`, sacreBLEU corpus
    BLEU scored as `score` scores the test split (same detokenisation, same settings) but of
    GREEDY outputs (the report's headline `bleu` is beam eval.beam_size; its greedy row is the
    like-for-like number) on the first eval.epoch_bleu_sentences pairs of `split` (the
    validation side; `examples` are its encoded pairs). One compiled search, traced at the
    first call: the batches have one shape (eval batch size x max source length) and the
    translator is kept across epochs."""
    count = min(config.eval.epoch_bleu_sentences, len(examples))
    batches = list(data_lib.decode_batches(examples[:count], config.eval.batch_size,
                                           config.data.max_source_length))
    references, target_tokenizer = split.targets[:count], tokenizers[1]
    translator: list = []

    def compute(model) -> dict:
        if not translator or translator[0].model is not model:
            translator[:] = [Translator(model, config.data.max_target_length, beam_size=0)]
        ids, _ = run_translator(translator[0], batches, count)
        hypotheses = [target_tokenizer.decode(h) for h in ids]
        return {"val_bleu": score(hypotheses, references, target_tokenizer.normalize)["bleu"]}

    return compute


def mean_log_prob(score: float, length: int, alpha: float) -> float | None:
    """The search's score of an output of `length` tokens (end token included) as its mean
    token log-probability: beam scores are divided by the GNMT penalty ((5 + L) / 6) ** alpha,
    undone here; greedy scores (alpha 0) are the plain sum."""
    total = float(score) * ((5.0 + length) / 6.0) ** alpha
    return total / max(length, 1) if math.isfinite(total) else None


def confidence_summary(values: list) -> dict:
    """Mean, 1st percentile and minimum of the mean token log-probabilities (None skipped)."""
    found = np.asarray([v for v in values if v is not None], np.float64)
    if not found.size:
        return {"mean": None, "p01": None, "min": None, "missing": len(values)}
    return {"mean": float(found.mean()), "p01": float(np.percentile(found, 1)), "min": float(found.min()),
            "missing": len(values) - int(found.size)}


def score(hypotheses: list[str], references: list[str], normalize) -> dict:
    from sacrebleu.metrics import BLEU, CHRF

    bleu, chrf = BLEU(), CHRF()
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    exact = float(np.mean([h == normalize(r) for h, r in zip(hypotheses, references)])) if references else 0.0
    return {"bleu": float(bleu_score.score), "chrf": float(chrf_score.score), "exact_match": exact,
            "bleu_signature": str(bleu.get_signature()), "chrf_signature": str(chrf.get_signature()),
            "bleu_detail": str(bleu_score)}


def token_labels(tokenizer, ids) -> list[str]:
    """Readable labels of single ids for attention plots."""
    return ["</s>" if int(i) == EOS_ID else (tokenizer.decode([int(i)]) or "\u2581") for i in ids]


def attention_examples(model, examples: list[dict], hypotheses_ids: list, tokenizers, count: int) -> list[dict]:
    """Teacher-forced attention over the model's own output for the first `count` sentences."""
    from keras import ops

    found = []
    for index in range(min(count, len(examples))):
        source = examples[index]["source"]
        target_out = list(hypotheses_ids[index]) + [EOS_ID]
        target_in = [BOS_ID] + target_out[:-1]
        weights = model.attention_weights(np.asarray([source], np.int32), np.asarray([target_in], np.int32))
        found.append({"index": index, "source": token_labels(tokenizers[0], source),
                      "target": token_labels(tokenizers[1], target_out),
                      "weights": np.round(ops.convert_to_numpy(weights)[0], 4).tolist()})
    return found


def _limited(split, limit: int):
    return type(split)(split.sources[:limit], split.targets[:limit]) if limit else split


def tune_length_penalty(model, split, tokenizers, config: Seq2SeqConfig) -> list[dict]:
    """Beam-search BLEU on `split` (the validation side) for each alpha of the grid; sets
    config.eval.length_penalty to the best (the first of equals) and returns the sweep."""
    examples, _ = data_lib.encode(split, tokenizers, config)
    sweep = []
    for alpha in config.eval.length_penalty_grid:
        config.eval.length_penalty = alpha
        ids, seconds, _ = decode_split(model, examples, config, config.eval.beam_size, warm_up=True)
        scores = score([tokenizers[1].decode(h) for h in ids], split.targets, tokenizers[1].normalize)
        sweep.append({"alpha": alpha, "bleu": scores["bleu"], "chrf": scores["chrf"], "seconds": seconds})
        print(f"seq2seq length penalty {alpha}: validation BLEU {scores['bleu']:.2f} "
              f"(beam {config.eval.beam_size}, {len(examples)} sentences)")
    best = max(sweep, key=lambda row: row["bleu"])  # max keeps the first of equals
    config.eval.length_penalty = best["alpha"]
    return sweep


def _save_length_penalty(run: Run, alpha: float):
    """Writes the picked alpha into config.json, changing nothing else saved there."""
    saved = config_lib.load(type(run.config), run.dir.config_json) if run.dir.config_json.exists() else run.config
    saved.eval.length_penalty = alpha
    config_lib.save(saved, run.dir.config_json)


def score_settings(model, split, tokenizers, config: Seq2SeqConfig) -> dict:
    """Decodes `split` with every setting of the greedy-vs-beam table and scores each.

    Returns {"examples", "truncated", "table" (one row per setting), "outputs" (beam size ->
    (ids, hypotheses)), "main" (the row of eval.beam_size), "confidence" (main setting)}."""
    examples, truncated = data_lib.encode(split, tokenizers, config)
    check = data_lib.output_check(config)
    table, outputs, confidences = [], {}, {}
    for beam_size in decoding_settings(config):
        ids, seconds, confidence = decode_split(model, examples, config, beam_size, warm_up=True)
        hypotheses = [tokenizers[1].decode(h) for h in ids]
        outputs[beam_size], confidences[beam_size] = (ids, hypotheses), confidence
        row = {"setting": setting_name(beam_size), "beam_size": beam_size, "seconds": seconds,
               "sentences_per_second": len(examples) / max(seconds, 1e-9),
               **score(hypotheses, split.targets, tokenizers[1].normalize)}
        if check is not None:
            row["invalid_outputs"] = float(np.mean([not check[1](h) for h in hypotheses])) if hypotheses else 0.0
        table.append(row)
        invalid = f", {check[0]} {row['invalid_outputs']:.2%}" if check is not None else ""
        print(f"seq2seq {setting_name(beam_size)}: BLEU {row['bleu']:.2f}, chrF {row['chrf']:.2f}, "
              f"exact match {row['exact_match']:.4f}{invalid} ({len(examples)} sentences, "
              f"{row['sentences_per_second']:.1f}/s)")
    main = next(row for row in table if row["beam_size"] == config.eval.beam_size)
    return {"examples": examples, "truncated": truncated, "table": table, "outputs": outputs, "main": main,
            "confidence": confidence_summary(confidences[config.eval.beam_size]),
            "invalid_label": check[0] if check is not None else ""}


def summarize(scored: dict, split, config: Seq2SeqConfig) -> dict:
    """The fields every results.json shares (the run's split or a user's files)."""
    main, examples = scored["main"], scored["examples"]
    greedy_hypotheses, best_hypotheses = scored["outputs"][0][1], scored["outputs"][config.eval.beam_size][1]
    samples = [{"source": split.sources[i], "reference": split.targets[i], "greedy": greedy_hypotheses[i],
                "beam": best_hypotheses[i]} for i in range(min(config.eval.examples, len(examples)))]
    results = {"sentences": len(examples), "truncated_sources": scored["truncated"],
               "unknown_source_tokens": data_lib.unknown_tokens(examples),
               "main_setting": main["setting"], "bleu": main["bleu"], "chrf": main["chrf"],
               "exact_match": main["exact_match"], "bleu_signature": main["bleu_signature"],
               "chrf_signature": main["chrf_signature"], "settings": scored["table"], "samples": samples,
               "length_penalty": config.eval.length_penalty, "mean_log_prob": scored["confidence"]}
    if "invalid_outputs" in main:
        results["invalid_outputs"], results["invalid_label"] = main["invalid_outputs"], scored["invalid_label"]
    return results


def scope_note(config: Seq2SeqConfig, splits: dict, scored: int) -> str:
    """What the run's own evaluation scores, when that is not a whole corpus ("" otherwise)."""
    data, notes = config.data, []
    if data.source in ("tsv", "files"):
        total = sum(len(splits[name]) for name in ("train", "val", "test"))
        notes.append(f"data.source={data.source}: the {config.eval.split} split scored here is the "
                     f"{len(splits[config.eval.split])} of {total} usable pairs of {data.path} held out by "
                     f"data.validation_fraction={data.validation_fraction} (the rest trained and validated "
                     "the model), not the whole file. To score whole files: kts seq2seq evaluate --workdir RUN "
                     "--set eval.source_file=SRC --set eval.reference_file=REF")
    if config.eval.limit and scored < len(splits[config.eval.split]):
        notes.append(f"eval.limit={config.eval.limit}: {scored} of the {len(splits[config.eval.split])} "
                     f"{config.eval.split} sentences scored")
    return "; ".join(notes)


def evaluate(run: Run) -> dict:
    """The run's own evaluation split; with eval.source_file/eval.reference_file set, the
    given files instead (see `scoring_files`, written beside the run's results)."""
    config: Seq2SeqConfig = run.config
    if config.eval.source_file:
        from tasks.seq2seq import scoring_files

        return scoring_files.evaluate_files(run)
    model = load(run.dir.require_model())
    tokenizers = data_lib.load_tokenizers(config, run.dir)
    splits = data_lib.load_splits(config, run.data_root)
    sweep = []
    if config.eval.length_penalty_grid:
        sweep = tune_length_penalty(model, _limited(splits["val"], config.eval.limit), tokenizers, config)
        _save_length_penalty(run, config.eval.length_penalty)
        print(f"seq2seq length penalty: alpha {config.eval.length_penalty} (best validation BLEU), "
              f"saved in {run.dir.config_json}")
    split = _limited(splits[config.eval.split], config.eval.limit)
    scope = scope_note(config, splits, len(split))
    if scope:
        print(f"warning: {scope}")
    scored = score_settings(model, split, tokenizers, config)
    best_ids, best_hypotheses = scored["outputs"][config.eval.beam_size]
    results = {"split": config.eval.split, **summarize(scored, split, config), "scope": scope,
               "length_penalty_sweep": sweep,
               "attention": attention_examples(model, scored["examples"], best_ids, tokenizers,
                                               config.eval.attention_examples)}
    run.dir.evaluation.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.dir.evaluation / "hypotheses.txt", "\n".join(best_hypotheses) + "\n")
    atomic_write_json(run.dir.evaluation / "results.json", results)
    return results
