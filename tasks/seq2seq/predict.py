"""`kts seq2seq translate TEXT... [--out DIR]`: text in, text out (beam search).

"-" as the only input reads one sentence per line from standard input and prints exactly
one line per input line: a blank input line gives a blank output line, so the output stays
line-aligned with the input file. Empty arguments are an error; over-long sentences are
cut to data.max_source_length tokens with a warning; characters the tokenizer does not
know are counted and reported.

Every translation comes with its mean token log-probability (the model's confidence, in
translations.json with --out); outputs the corpus can check (dates: a real ISO day) that
fail the check, and outputs below eval.flag_below_log_prob, get a warning on standard
error, so standard output stays one translation per line.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from pipelines.datasets.parallel import ParallelSource
from pipelines.text import UNK_ID
from shared.io import atomic_write_json
from shared.task import Run
from tasks.seq2seq import data as data_lib
from tasks.seq2seq.evaluation import decode_split
from tasks.seq2seq.training import load


def _stdin_lines() -> list[str]:
    """Standard input as UTF-8 lines; other bytes are an error naming the line."""
    lines = []
    for number, raw in enumerate(sys.stdin.buffer.read().split(b"\n"), start=1):
        try:
            lines.append(raw.removesuffix(b"\r").decode("utf-8"))
        except UnicodeDecodeError as error:
            raise ValueError(f"standard input line {number} is not UTF-8 text (byte "
                             f"0x{raw[error.start]:02x} at position {error.start}); translate "
                             "reads UTF-8") from None
    return lines


def read_inputs(inputs: list[str]) -> list[str]:
    """The texts to translate; from standard input ("-") every line, blank ones included."""
    if inputs == ["-"]:
        texts = _stdin_lines()
        if texts and texts[-1] == "":
            texts.pop()  # the final newline ends the last line; it does not start another
        if not any(text.strip() for text in texts):
            raise ValueError(f"translate - read no text from standard input ({len(texts)} blank line(s)); "
                             "give one sentence per line.")
        return texts
    texts = list(inputs)
    for number, text in enumerate(texts, start=1):
        try:  # the shell hands undecodable argument bytes over as lone surrogates
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"translate input {number} of {len(texts)} is not UTF-8 text: "
                             f"{text[:40]!r}") from None
    if not texts:
        raise ValueError("translate needs text: kts seq2seq translate \"a sentence\" (or - for stdin lines)")
    empty = [i + 1 for i, text in enumerate(texts) if not text.strip()]
    if empty:
        raise ValueError(f"translate received an empty text (input {empty[0]} of {len(texts)}); "
                         "give non-empty sentences.")
    return texts


def translate_texts(run: Run, texts: list[str], beam_size: int | None = None) -> list[dict]:
    """One result per text, in order; blank texts are not decoded (translation "")."""
    config = run.config
    model = load(run.dir.require_model())
    tokenizers = data_lib.load_tokenizers(config, run.dir)
    results = [{"source": text, "translation": "", "blank": True, "flags": []} for text in texts]
    filled = [i for i, text in enumerate(texts) if text.strip()]
    if not filled:
        return results
    source = ParallelSource([texts[i] for i in filled], [""] * len(filled))
    examples, _ = data_lib.encode(source, tokenizers, config)
    beam = config.eval.beam_size if beam_size is None else beam_size
    ids, _, confidence = decode_split(model, examples, config, beam)
    check = data_lib.output_check(config)
    threshold = config.eval.flag_below_log_prob
    for index, example, hypothesis, mean_log_prob in zip(filled, examples, ids, confidence):
        translation = tokenizers[1].decode(hypothesis)
        flags = []
        if example["truncated"]:
            flags.append(f"input cut to {config.data.max_source_length} tokens")
        unknown = int(np.sum(example["source"] == UNK_ID))
        if unknown:
            flags.append(f"{unknown} unknown token(s)")
        if check is not None and not check[1](translation):
            flags.append(check[0])
        if threshold is not None and (mean_log_prob is None or mean_log_prob < threshold):
            shown = "none" if mean_log_prob is None else f"{mean_log_prob:.3f}"
            flags.append(f"low confidence (mean token log-prob {shown} < {threshold})")
        results[index] = {"source": texts[index], "translation": translation, "blank": False,
                          "mean_log_prob": mean_log_prob, "truncated": bool(example["truncated"]),
                          "unknown_tokens": unknown, "flags": flags}
        if check is not None:
            results[index]["valid_output"] = check[1](translation)
    return results


def predict(run: Run, inputs: list[str], out: Path | None = None) -> list[dict]:
    results = translate_texts(run, read_inputs(inputs))
    for item in results:
        if item["flags"]:
            print(f"warning: {item['source'][:40]!r} -> {item['translation'][:40]!r}: "
                  f"{'; '.join(item['flags'])}", file=sys.stderr)
        print(item["translation"])
    if out is not None:
        atomic_write_json(Path(out) / "translations.json", results)
    return results
