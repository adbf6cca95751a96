"""`kts seq2seq translate TEXT... [--out DIR]`: text in, text out (beam search).

"-" as the only input reads one sentence per line from standard input. Empty sentences are
an error; over-long ones are cut to data.max_source_length tokens with a warning; characters
the tokenizer does not know are counted and reported.
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
    if inputs == ["-"]:  # one sentence per non-blank line
        texts = [line for line in _stdin_lines() if line.strip()]
    else:
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
    config = run.config
    model = load(run.dir.require_model())
    tokenizers = data_lib.load_tokenizers(config, run.dir)
    source = ParallelSource(texts, [""] * len(texts))
    examples, _ = data_lib.encode(source, tokenizers, config)
    beam = config.eval.beam_size if beam_size is None else beam_size
    ids, _ = decode_split(model, examples, config, beam)
    results = []
    for text, example, hypothesis in zip(texts, examples, ids):
        unknown = int(np.sum(example["source"] == UNK_ID))
        results.append({"source": text, "translation": tokenizers[1].decode(hypothesis),
                        "truncated": bool(example["truncated"]), "unknown_tokens": unknown})
    return results


def predict(run: Run, inputs: list[str], out: Path | None = None) -> list[dict]:
    results = translate_texts(run, read_inputs(inputs))
    for item in results:
        notes = []
        if item["truncated"]:
            notes.append(f"input cut to {run.config.data.max_source_length} tokens")
        if item["unknown_tokens"]:
            notes.append(f"{item['unknown_tokens']} unknown token(s)")
        if notes:
            print(f"warning: {item['source'][:40]!r}: {'; '.join(notes)}", file=sys.stderr)
        print(item["translation"])
    if out is not None:
        atomic_write_json(Path(out) / "translations.json", results)
    return results
