"""Train stage: tokenizers on the training side, the model, `fit()` with teacher forcing."""

from __future__ import annotations

import keras

from shared import training
from shared.export import save_keras
from shared.io import atomic_write_json
from shared.task import Run
from tasks.seq2seq import data as data_lib
from tasks.seq2seq.config import Seq2SeqConfig
from tasks.seq2seq.losses import SmoothedSequenceLoss, TokenAccuracy
from tasks.seq2seq.rnn import RNNSeq2Seq
from tasks.seq2seq.transformer import TransformerSeq2Seq


def build(config: Seq2SeqConfig, source_vocab_size: int, target_vocab_size: int) -> keras.Model:
    model_config = config.model
    if model_config.architecture == "rnn":
        model = RNNSeq2Seq(source_vocab_size, target_vocab_size, model_config.embedding_dim,
                           model_config.hidden_dim, model_config.cell, model_config.attention,
                           model_config.dropout_rate, name="rnn_seq2seq")
    else:
        longest = max(config.data.max_source_length, config.data.max_target_length)
        model = TransformerSeq2Seq(source_vocab_size, target_vocab_size, model_config.model_dim,
                                   model_config.num_heads, model_config.ff_dim,
                                   model_config.encoder_layers, model_config.decoder_layers,
                                   model_config.dropout_rate, model_config.positions,
                                   model_config.share_embeddings,
                                   max_positions=max(256, 2 * longest + 16), name="transformer_seq2seq")
    model.build()
    return model


def compile_model(model: keras.Model, config: Seq2SeqConfig, steps_per_epoch: int) -> None:
    model.compile(optimizer=training.make_optimizer(config.train, steps_per_epoch),
                  loss=SmoothedSequenceLoss(config.train.label_smoothing),
                  metrics=[TokenAccuracy()], jit_compile=training.jit_compile_flag(config.train))


def train(run: Run) -> dict:
    config: Seq2SeqConfig = run.config
    splits = data_lib.load_splits(config, run.data_root)
    tokenizers = data_lib.build_tokenizers(config, splits["train"], run.dir)
    train_examples, train_truncated = data_lib.encode(splits["train"], tokenizers, config)
    val_examples, val_truncated = data_lib.encode(splits["val"], tokenizers, config)
    if train_truncated or val_truncated:
        print(f"warning: {train_truncated} training and {val_truncated} validation pairs were cut to "
              f"data.max_source_length={config.data.max_source_length} / data.max_target_length="
              f"{config.data.max_target_length} tokens (counted in training.json)")
    stream, steps = data_lib.train_stream(config, train_examples)
    if config.train.max_steps_per_epoch:
        steps = min(steps, config.train.max_steps_per_epoch)
    model = build(config, tokenizers[0].vocab_size, tokenizers[1].vocab_size)
    compile_model(model, config, steps)
    print(f"seq2seq: {len(train_examples)} training pairs ({train_truncated} truncated), "
          f"{len(val_examples)} validation, vocabularies {tokenizers[0].vocab_size} -> "
          f"{tokenizers[1].vocab_size}, {steps} steps per epoch, {config.model.architecture} "
          f"({model.count_params():,} parameters)")
    epoch_metrics, monitor, mode = None, "val_loss", "min"
    if config.eval.epoch_bleu_sentences and val_examples:
        from tasks.seq2seq.evaluation import epoch_bleu  # evaluation imports `load` from here

        epoch_metrics = epoch_bleu(splits["val"], val_examples, tokenizers, config)
        monitor, mode = "val_bleu", "max"
    result = training.fit(
        model, make_train_data=lambda start: data_lib.train_stream(config, train_examples, start)[0],
        validation_data=data_lib.validation_data(val_examples, config.eval.batch_size,
                                                 config.data.bucket_width),
        config=config.train, steps_per_epoch=steps, checkpoints_dir=run.dir.checkpoints,
        logs_dir=run.dir.logs, resume=run.resume, verbose=run.verbose, monitor=monitor,
        monitor_mode=mode, epoch_metrics=epoch_metrics, epoch_metrics_every=config.eval.epoch_bleu_every)
    save_keras(model, run.dir.model_keras)
    summary = {"phases": {"train": {k: v for k, v in result.items() if k != "history"}},
               "stopped_reason": result["stopped_reason"], "parameters": int(model.count_params()),
               "steps_per_epoch": steps,
               "samples": {"train": len(train_examples), "val": len(val_examples)},
               "truncated": {"train": train_truncated, "val": val_truncated},
               "unknown_source_tokens": {"train": data_lib.unknown_tokens(train_examples),
                                         "val": data_lib.unknown_tokens(val_examples)},
               "target_tokens_per_epoch": int(sum(len(e["target_out"]) for e in train_examples)),
               "vocab_size": {"source": tokenizers[0].vocab_size, "target": tokenizers[1].vocab_size},
               "skipped": splits["skipped"]}
    atomic_write_json(run.dir.training_json, summary)
    return summary


def load(path) -> keras.Model:
    """Loads a trained model (importing this module registers the custom classes)."""
    return keras.models.load_model(path)
