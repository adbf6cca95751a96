"""Seq2seq data: the configured corpus, its tokenizers (saved in the run folder) and streams."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pipelines import builder
from pipelines.datasets import dates as dates_lib
from pipelines.datasets import parallel
from pipelines.seq_ops import BucketedBatches, Tokenize, bucket_by_length, pad_batch
from pipelines.text import PAD_ID, UNK_ID, CharTokenizer, SentencePieceTokenizer
from shared.runtime import require_path
from tasks.seq2seq.config import Seq2SeqConfig

_WORD = re.compile(r"\w")


def _drop_wordless(source: parallel.ParallelSource, name: str) -> tuple[parallel.ParallelSource, list[dict]]:
    """Pairs where a side has no letter or digit (Multi30k has two German lines "@@") are
    noise for training: skipped and listed."""
    keep, skipped = [], []
    for index, (src, tgt) in enumerate(zip(source.sources, source.targets)):
        if _WORD.search(src) and _WORD.search(tgt):
            keep.append(index)
        else:
            skipped.append({"path": name, "line": index + 1,
                            "reason": f"no letter or digit on one side: {src!r} / {tgt!r}"})
    return parallel.ParallelSource([source.sources[i] for i in keep], [source.targets[i] for i in keep],
                                   source.skipped, source.truncated), skipped


def _split_off(source: parallel.ParallelSource, fraction: float, seed: int, path: str,
               skipped: list[dict]) -> dict:
    """Train / val / test from one corpus: `fraction` each for val and test (seeded)."""
    order = np.random.default_rng(seed).permutation(len(source))
    held = max(1, int(round(fraction * len(source))))
    if len(source) < 3 * held:
        why = (f" ({len(skipped)} line(s) skipped, e.g. line {skipped[0]['line']}: {skipped[0]['reason']})"
               if skipped else "")
        raise ValueError(f"{path}: only {len(source)} usable pair(s){why}, too few to hold out {held} for "
                         f"validation and {held} for test; give more data or lower data.validation_fraction.")
    parts = {"test": order[:held], "val": order[held:2 * held], "train": order[2 * held:]}
    return {name: parallel.ParallelSource([source.sources[i] for i in sorted(idx)],
                                          [source.targets[i] for i in sorted(idx)])
            for name, idx in parts.items()}


def load_splits(config: Seq2SeqConfig, data_root) -> dict:
    """{"train", "val", "test": ParallelSource, "skipped": [...]} for the configured corpus."""
    data = config.data
    skipped: list[dict] = []
    if data.source == "dates":
        pairs = dates_lib.dates_splits(data.dates_train, data.dates_val, data.dates_test, seed=config.seed)
        splits = {name: parallel.ParallelSource.from_pairs(p) for name, p in pairs.items()}
    elif data.source == "multi30k":
        splits = parallel.load_multi30k(data_root, *data.languages())
        splits["train"], dropped = _drop_wordless(splits["train"], "multi30k train")
        skipped += dropped
    else:
        if data.source == "tsv":
            corpus = parallel.load_tsv(require_path(data.path, "TSV file", "data.path"))
        else:
            corpus = parallel.load_parallel_files(require_path(data.path, "source text file", "data.path"),
                                                  require_path(data.target_path, "target text file",
                                                               "data.target_path"))
        corpus, dropped = _drop_wordless(corpus, str(data.path))
        skipped += corpus.skipped + dropped
        splits = _split_off(corpus, data.validation_fraction, config.seed, data.path, skipped)
    for name in ("train", "val", "test"):
        skipped += [entry for entry in splits[name].skipped if entry not in skipped]
        if data.limit:
            part = splits[name]
            splits[name] = parallel.ParallelSource(part.sources[:data.limit], part.targets[:data.limit])
    return {**splits, "skipped": skipped}


def output_check(config: Seq2SeqConfig):
    """(what a failure is called, check(output) -> bool) for corpora whose outputs can be
    checked on their own, else None. Dates: the output must be a real ISO day."""
    if config.data.source == "dates":
        return "not a valid date", dates_lib.is_iso_date
    return None


# Tokenizers ------------------------------------------------------------------------------
def tokenizer_dirs(run_dir) -> tuple[Path, Path]:
    root = Path(run_dir.root) / "tokenizer"
    return root / "source", root / "target"


def build_tokenizers(config: Seq2SeqConfig, train: parallel.ParallelSource, run_dir):
    """Trains/builds the tokenizer(s) on the training side only and saves them in the run."""
    source_dir, target_dir = tokenizer_dirs(run_dir)
    tok = config.tokenizer
    if tok.kind == "char":
        make = CharTokenizer.build
    else:
        def make(texts):
            return SentencePieceTokenizer.train(texts, vocab_size=tok.vocab_size, model_type=tok.model_type,
                                                seed=config.seed)
    if tok.joint:
        source_tokenizer = target_tokenizer = make(train.sources + train.targets)
    else:
        source_tokenizer, target_tokenizer = make(train.sources), make(train.targets)
    source_tokenizer.save(source_dir)
    target_tokenizer.save(target_dir)
    return source_tokenizer, target_tokenizer


def load_tokenizers(config: Seq2SeqConfig, run_dir):
    source_dir, target_dir = tokenizer_dirs(run_dir)
    cls = CharTokenizer if config.tokenizer.kind == "char" else SentencePieceTokenizer
    for folder in (source_dir, target_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"No tokenizer at {folder}; train first (kts seq2seq train "
                                    f"--workdir {run_dir.root}).")
    return cls.load(source_dir), cls.load(target_dir)


# Examples and streams --------------------------------------------------------------------
def encode(source: parallel.ParallelSource, tokenizers, config: Seq2SeqConfig) -> tuple[list[dict], int]:
    """Tokenize every pair; returns the examples and how many were truncated."""
    op = Tokenize(*tokenizers, config.data.max_source_length, config.data.max_target_length)
    examples = [op(source[i]) for i in range(len(source))]
    return examples, int(sum(int(e["truncated"]) for e in examples))


def unknown_tokens(examples: list[dict]) -> int:
    """How many source tokens of the examples the tokenizer did not know (unk ids)."""
    return int(sum(np.sum(e["source"] == UNK_ID) for e in examples))


def to_fit(batch: dict) -> tuple[dict, np.ndarray]:
    return {"source": batch["source"], "target_in": batch["target_in"]}, batch["target_out"]


def train_stream(config: Seq2SeqConfig, examples: list[dict], start_step: int = 0):
    batches = BucketedBatches(examples, config.train.batch_size, config.seed, config.data.bucket_width, PAD_ID)
    stream = builder.step_dataset(batches, start_step=start_step, prefetch=config.train.prefetch,
                                  finalize=to_fit)
    return builder.with_dynamic_shapes(stream, config.train.batch_size), batches.steps_per_epoch


def eval_batches(examples: list[dict], batch_size: int, bucket_width: int = 8):
    """Length-sorted padded batches for fast decoding: yields (indices, batch)."""
    lengths = [len(e["source"]) for e in examples]
    boundaries = list(range(bucket_width, max(lengths) + bucket_width, bucket_width))
    for indices in bucket_by_length(lengths, batch_size, boundaries, shuffle=False):
        yield indices, pad_batch([examples[i] for i in indices], PAD_ID, multiple=bucket_width)


def decode_batches(examples: list[dict], batch_size: int, width: int):
    """Length-sorted source batches of one shape, (batch_size, width): yields (indices, source).

    Evaluation decodes with these so that a compiled search is traced once and its timing is
    decoding alone; a short last batch repeats its first sentence (rows past `len(indices)`
    are to be ignored). Sources must already be cut to `width` tokens."""
    lengths = np.asarray([len(e["source"]) for e in examples])
    if lengths.size and lengths.max() > width:
        raise ValueError(f"decode_batches: a source has {lengths.max()} tokens, more than the width {width}")
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        indices = order[start:start + batch_size]
        rows = [{"source": examples[i]["source"]} for i in indices]
        rows += rows[:1] * (batch_size - len(rows))
        yield indices, pad_batch(rows, PAD_ID, keys=("source",), multiple=width)["source"]


def validation_data(examples: list[dict], batch_size: int, bucket_width: int = 8):
    """The validation split as a grain dataset of (x, y) batches for `fit(validation_data=)`."""
    import grain

    batches = [to_fit(batch) for _, batch in eval_batches(examples, batch_size, bucket_width)]
    return builder.with_dynamic_shapes(grain.MapDataset.source(batches))
