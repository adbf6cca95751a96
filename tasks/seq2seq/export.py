"""Export stage: a SavedModel whose `translate` signature runs beam search in the graph.

Signature `translate` (also `serving_default`): `source_ids` int32 [batch, length] (the
source tokenizer's ids, eos-terminated, padded with 0) -> `tokens` int32 [batch,
max_length] (best hypothesis, eos then padding), `lengths` int32 [batch] (tokens up to and
including eos), `scores` float32 [batch] (length-normalised log-probability). Ids outside
[0, source vocabulary size) and rows of no tokens ([batch, 0]) are refused with a message
(InvalidArgumentError); a batch of 0 returns the outputs with 0 rows. The tokenizer
files are copied beside it (export/tokenizer/{source,target}) with `translate.json` saying
how to use them. TensorFlow code (allowed here).
"""

from __future__ import annotations

import shutil

import numpy as np

from pipelines.text import BOS_ID, EOS_ID, PAD_ID
from shared.export import export_saved_model, load_saved_model
from shared.io import atomic_dir, atomic_write_json
from shared.serving import nonempty_batch
from shared.task import Run
from tasks.seq2seq import data as data_lib
from tasks.seq2seq.search import Translator
from tasks.seq2seq.training import load

CHECK_SENTENCES = 8
# Largest |served - Keras| score difference allowed, relative to max(1, largest |score|). A
# bf16/fp16 model's two graphs round differently (measured: 1.8e-3 absolute for the bf16
# multi30k Transformer, same tokens); float32 keeps the earlier 1e-3.
SCORE_TOLERANCE = {"float32": 1e-3, "bfloat16": 1e-2, "float16": 1e-2}


def serving_module(raw, source_vocab_size: int):
    import tensorflow as tf

    class Translate(tf.Module):
        def __init__(self):
            super().__init__()
            self.raw = raw

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="source_ids")])
        def translate(self, source_ids):
            return nonempty_batch(self.search, source_ids, fill=EOS_ID)

        def search(self, source_ids):
            not_empty = tf.debugging.Assert(tf.shape(source_ids)[1] > 0, [
                "source_ids has rows of no tokens (shape [batch, 0]); expected the source "
                f"tokenizer's ids of each sentence followed by eos ({EOS_ID}), padded with "
                f"{PAD_ID}"])
            in_range = tf.debugging.Assert(tf.reduce_all((source_ids >= 0) & (source_ids < source_vocab_size)), [
                f"source_ids must lie in [0, {source_vocab_size}) (the source vocabulary); "
                "received min and max:", tf.reduce_min(source_ids), tf.reduce_max(source_ids)])
            with tf.control_dependencies([not_empty, in_range]):  # refused before any lookup fails
                source_ids = tf.identity(source_ids)
            out = self.raw.serve(source_ids)
            return {"tokens": tf.cast(out["tokens"], tf.int32), "lengths": tf.cast(out["lengths"], tf.int32),
                    "scores": tf.cast(out["scores"], tf.float32)}

    module = Translate()
    module.signatures_to_save = {"serving_default": module.translate, "translate": module.translate}
    return module


def export(run: Run):
    import tensorflow as tf  # noqa: F401 - export needs TF; export_saved_model says so

    config = run.config
    model = load(run.dir.require_model())
    translator = Translator(model, config.data.max_target_length, max(1, config.eval.beam_size),
                            config.eval.length_penalty, exportable=True)
    tokenizers = data_lib.load_tokenizers(config, run.dir)
    split = data_lib.load_splits(config, run.data_root)["val"]
    examples, _ = data_lib.encode(type(split)(split.sources[:CHECK_SENTENCES], split.targets[:CHECK_SENTENCES]),
                                  tokenizers, config)
    _, batch = next(data_lib.eval_batches(examples, CHECK_SENTENCES, config.data.bucket_width))
    source = batch["source"].astype(np.int32)
    expected = {k: np.asarray(v) for k, v in translator(source).items()}  # also builds it
    path = export_saved_model(translator, run.dir.saved_model,
                              lambda raw: serving_module(raw, model.source_vocab_size),
                              input_signature=[tf.TensorSpec([None, None], tf.int32)])
    if path is None:
        return None
    export_root = run.dir.saved_model.parent
    source_dir, target_dir = data_lib.tokenizer_dirs(run.dir)
    with atomic_dir(export_root / "tokenizer") as tmp:
        shutil.copytree(source_dir, tmp / "source")
        shutil.copytree(target_dir, tmp / "target")
    loaded = load_saved_model(path)  # keep a reference: it owns the variables
    served = {k: np.asarray(v) for k, v in loaded.signatures["translate"](source_ids=source).items()}
    same_tokens = bool(np.array_equal(served["tokens"], expected["tokens"]))
    score_difference = float(np.max(np.abs(served["scores"] - expected["scores"])))
    relative_difference = score_difference / max(1.0, float(np.max(np.abs(expected["scores"]))))
    tolerance = SCORE_TOLERANCE.get(model.dtype_policy.compute_dtype, 1e-2)
    atomic_write_json(export_root / "translate.json", {
        "signature": "translate", "input": "source_ids int32 [batch, length]: source tokenizer ids + eos, "
                                           "padded with 0",
        "outputs": ["tokens", "lengths", "scores"], "tokenizer": config.tokenizer.kind,
        "source_tokenizer": "tokenizer/source", "target_tokenizer": "tokenizer/target",
        "special_ids": {"pad": PAD_ID, "bos": BOS_ID, "eos": EOS_ID},
        "beam_size": translator.beam_size, "length_penalty": translator.length_penalty_alpha,
        "max_length": translator.max_length,
        "check": {"sentences": len(examples), "same_tokens": same_tokens,
                  "max_abs_score_difference": score_difference,
                  "max_relative_score_difference": relative_difference,
                  "compute_dtype": model.dtype_policy.compute_dtype, "relative_tolerance": tolerance}})
    if not same_tokens or relative_difference > tolerance:
        raise ValueError(f"The exported SavedModel at {path} disagrees with the Keras model (same tokens: "
                         f"{same_tokens}, score difference {score_difference:.3g}, relative "
                         f"{relative_difference:.3g} > {tolerance} for {model.dtype_policy.compute_dtype}). "
                         "This is a bug.")
    print(f"seq2seq export: {path} (beam {translator.beam_size}; same tokens as Keras on {len(examples)} "
          f"sentences, max score difference {score_difference:.1e})")
    return path
