"""Train stage: read the corpus, make the vocabulary, `fit()` word2vec on batches made in numpy."""

from __future__ import annotations

import keras
import numpy as np

from pipelines import builder
from shared import training
from shared.export import save_keras
from shared.io import atomic_write_json
from shared.task import Run
from tasks.embeddings import data as data_lib
from tasks.embeddings.config import EmbeddingsConfig
from tasks.embeddings.glove import GloveBatches, cooccurrence
from tasks.embeddings.models import GloVe, Word2Vec
from tasks.embeddings.sampling import Word2VecBatches


def make_batches(config: EmbeddingsConfig, corpus):
    model = config.model
    if model.algorithm == "glove":
        rows, columns, values = cooccurrence(corpus.tokens, corpus.offsets, corpus.vocab_size, model.window)
        print(f"embeddings: {len(values):,} nonzero co-occurrences (window {model.window})")
        return GloveBatches(rows, columns, values, corpus.vocab_size, batch_size=model.glove_batch_size,
                            x_max=model.x_max, alpha=model.glove_alpha, learning_rate=model.glove_learning_rate,
                            seed=config.seed)
    return Word2VecBatches(corpus.tokens, corpus.offsets, corpus.counts, sg=model.algorithm == "skipgram",
                           window=model.window, negative=model.negative, sample=model.sample, alpha=model.alpha,
                           min_alpha=model.min_alpha, epochs=config.train.epochs,
                           words_per_batch=model.words_per_batch, seed=config.seed)


def build(config: EmbeddingsConfig, vocab_size: int) -> keras.Model:
    if config.model.algorithm == "glove":
        model = GloVe(vocab_size, config.model.dim, seed=config.seed, name="glove")
    else:
        model = Word2Vec(vocab_size, config.model.dim, seed=config.seed, name="word2vec")
    # the optimizer is never used (train_step writes the rows itself); fit() needs one
    model.compile(optimizer=keras.optimizers.SGD(), jit_compile=training.jit_compile_flag(config.train))
    return model


def train(run: Run) -> dict:
    config: EmbeddingsConfig = run.config
    corpus, info = data_lib.read_corpus(config, run.data_root)
    data_lib.save_vocab(run.dir, corpus.words, corpus.counts)
    batches = make_batches(config, corpus)
    steps = batches.steps_per_epoch
    model = build(config, corpus.vocab_size)
    print(f"embeddings: {info['training_words']:,} training words in {info['sentences']:,} sentences, vocabulary "
          f"{corpus.vocab_size:,} (min_count {config.data.min_count}), {config.model.algorithm}, "
          f"{steps} steps per epoch")

    def stream(start):
        return builder.with_dynamic_shapes(builder.step_dataset(batches, start_step=start,
                                                                prefetch=config.train.prefetch))

    result = training.fit(model, make_train_data=stream, validation_data=None, config=config.train,
                          steps_per_epoch=steps, checkpoints_dir=run.dir.checkpoints, logs_dir=run.dir.logs,
                          resume=run.resume, verbose=run.verbose, monitor="loss")
    save_keras(model, run.dir.model_keras)
    seconds = result["history"].get("epoch_seconds", [])
    words_per_second = [info["training_words"] / s for s in seconds if s > 0]
    summary = {"corpus": info, "stopped_reason": result["stopped_reason"], "steps_per_epoch": steps,
               "epochs": config.train.epochs, "loss": result["history"].get("loss", []),
               "epoch_seconds": seconds, "words_per_second": words_per_second,
               "mean_words_per_second": float(np.mean(words_per_second)) if words_per_second else None,
               "resumed_from_step": result["resumed_from_step"], "backend": keras.backend.backend()}
    atomic_write_json(run.dir.training_json, summary)
    return summary


def load_vectors(run: Run):
    """The trained word vectors of a run folder as WordVectors."""
    from tasks.embeddings.vectors import WordVectors

    model = keras.models.load_model(run.dir.require_model())
    words, _ = data_lib.load_vocab(run.dir)
    return WordVectors(words, model.vectors())
