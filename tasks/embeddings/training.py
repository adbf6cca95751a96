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
from tasks.embeddings.subword import SubwordBatches, SubwordVectors, SubwordWord2Vec, vocabulary_rows


def make_batches(config: EmbeddingsConfig, corpus):
    model = config.model
    if model.algorithm == "glove":
        rows, columns, values = cooccurrence(corpus.tokens, corpus.offsets, corpus.vocab_size, model.window)
        print(f"embeddings: {len(values):,} nonzero co-occurrences (window {model.window})")
        return GloveBatches(rows, columns, values, corpus.vocab_size, batch_size=model.glove_batch_size,
                            x_max=model.x_max, alpha=model.glove_alpha, learning_rate=model.glove_learning_rate,
                            seed=config.seed)
    settings = dict(sg=model.algorithm == "skipgram", window=model.window, negative=model.negative,
                    sample=model.sample, alpha=model.alpha, min_alpha=model.min_alpha, epochs=config.train.epochs,
                    words_per_batch=model.words_per_batch, seed=config.seed,
                    sizes_per_octave=model.sizes_per_octave, hierarchical=model.objective == "hierarchical")
    if model.subword:  # the same examples, the input words spelled out in their n-gram rows
        rows, offsets = vocabulary_rows(corpus.words, model.minn, model.maxn, model.buckets)
        return SubwordBatches(corpus.tokens, corpus.offsets, corpus.counts, rows=rows, offsets=offsets,
                              buckets=model.buckets, hot_row_uses=model.hot_row_uses, **settings)
    return Word2VecBatches(corpus.tokens, corpus.offsets, corpus.counts, **settings)


def build(config: EmbeddingsConfig, vocab_size: int, words: list[str] | None = None) -> keras.Model:
    """The model; `words` (the vocabulary) is needed for subword models (their n-gram rows)."""
    if config.model.algorithm == "glove":
        model = GloVe(vocab_size, config.model.dim, seed=config.seed, name="glove")
    elif config.model.subword:
        m = config.model
        entries = len(vocabulary_rows(words, m.minn, m.maxn, m.buckets)[0])
        model = SubwordWord2Vec(vocab_size, m.dim, minn=m.minn, maxn=m.maxn, buckets=m.buckets, entries=entries,
                                seed=config.seed, name="subword_word2vec")
        model.set_vocabulary(words)
    else:
        model = Word2Vec(vocab_size, config.model.dim, seed=config.seed, freeze_inputs=config.model.freeze_vectors,
                         name="word2vec")
    # the optimizer is never used (train_step writes the rows itself); fit() needs one
    model.compile(optimizer=keras.optimizers.SGD(), jit_compile=training.jit_compile_flag(config.train),
                  steps_per_execution=steps_per_execution(config))
    return model


def load_initial_vectors(model, config: EmbeddingsConfig, words: list[str]) -> dict:
    """Starts the input vectors of the words found in `model.init_vectors` from the file's
    rows (the other words keep their random start)."""
    from tasks.embeddings.vectors import WordVectors

    path = config.model.init_vectors
    loaded = WordVectors.load(path, config.model.init_format)
    if loaded.vectors.shape[1] != config.model.dim:
        raise ValueError(f"{path} holds {loaded.vectors.shape[1]}-dimensional vectors; model.dim is "
                         f"{config.model.dim}. Set --set model.dim={loaded.vectors.shape[1]}.")
    initial = np.array(keras.ops.convert_to_numpy(model.input_vectors))
    found = [(i, loaded.index[word]) for i, word in enumerate(words) if word in loaded.index]
    if not found:
        raise ValueError(f"None of the {len(words):,} vocabulary words is in {path} (its first words: "
                         f"{', '.join(loaded.words[:5])}); check data.lowercase and the file.")
    ours, theirs = (np.asarray(x) for x in zip(*found))
    initial[ours] = loaded.vectors[theirs]
    model.input_vectors.assign(initial)
    print(f"embeddings: {len(found):,} of {len(words):,} vocabulary words start from {path}"
          + (" (frozen)" if config.model.freeze_vectors else ""))
    return {"path": str(path), "words_in_file": len(loaded), "vocabulary_words_found": len(found),
            "frozen": config.model.freeze_vectors}


def padded_stream(batches, multiple: int):
    """(global step -> batch, steps per epoch): each epoch padded with empty batches to a
    multiple of `multiple` steps. fit() runs whole compiled calls of steps_per_execution
    steps, so an epoch of another length would take batches of the next one, and a resumed
    run would then not see the batches of an uninterrupted one."""
    real = batches.steps_per_epoch
    padded = -(-real // multiple) * multiple
    if padded == real:
        return batches, real
    empty = batches.empty_batch()

    def make_batch(step: int) -> dict:
        epoch, k = divmod(int(step), padded)
        return batches(epoch * real + k) if k < real else empty

    return make_batch, padded


def steps_per_execution(config: EmbeddingsConfig) -> int:
    """Training steps per compiled call. A step is a few milliseconds, so fit()'s per-call
    overhead matters: 16 steps per call halved the time per step on TensorFlow (XLA, 2 CPU
    cores); under JAX, Keras runs several steps per call more slowly than one."""
    if config.model.steps_per_execution:
        return config.model.steps_per_execution
    return 16 if keras.backend.backend() == "tensorflow" else 1


def validation_analogy(config: EmbeddingsConfig, data_root, words: list[str]):
    """`compute(model) -> {"val_analogy": accuracy}` for `fit(epoch_metrics=...)`: 3CosAdd on
    the validation half of questions-words.txt (`scores.split_analogies`) over the
    `eval.analogy_vocab` most frequent words, from the model's current vectors (word2vec's
    input vectors, GloVe's W + W~); NaN when no question has all its words in them. None when
    the metric is off (eval.val_analogy_every=0) or the file is missing (said once)."""
    from tasks.embeddings.scores import EVAL_FILES, eval_file, read_analogies, score_analogies, split_analogies
    from tasks.embeddings.vectors import WordVectors

    if config.eval.val_analogy_every == 0:
        return None
    try:
        path = eval_file(EVAL_FILES["analogy"], data_root)
    except FileNotFoundError as error:
        print(f"embeddings: no val_analogy during training: {error}")
        return None
    validation, _ = split_analogies(read_analogies(path)[0])
    restrict = min(config.eval.analogy_vocab, len(words))

    def compute(model) -> dict:
        vectors = WordVectors(words[:restrict], model.vectors()[:restrict])
        accuracy = score_analogies(vectors, validation, restrict)["accuracy"]
        return {"val_analogy": float("nan") if accuracy is None else accuracy}

    return compute


def train(run: Run) -> dict:
    config: EmbeddingsConfig = run.config
    corpus, info = data_lib.read_corpus(config, run.data_root)
    data_lib.save_vocab(run.dir, corpus.words, corpus.counts)
    batches = make_batches(config, corpus)
    model = build(config, corpus.vocab_size, corpus.words)
    initial = load_initial_vectors(model, config, corpus.words) if config.model.init_vectors else None
    make_batch, steps = padded_stream(batches, steps_per_execution(config))
    print(f"embeddings: {info['training_words']:,} training words in {info['sentences']:,} sentences, vocabulary "
          f"{corpus.vocab_size:,} (min_count {config.data.min_count}), {config.model.algorithm}, "
          f"{steps} steps per epoch")

    def stream(start):
        return builder.with_dynamic_shapes(builder.step_dataset(make_batch, start_step=start,
                                                                prefetch=config.train.prefetch))

    result = training.fit(model, make_train_data=stream, validation_data=None, config=config.train,
                          steps_per_epoch=steps, checkpoints_dir=run.dir.checkpoints, logs_dir=run.dir.logs,
                          resume=run.resume, verbose=run.verbose, monitor="loss",
                          epoch_metrics=validation_analogy(config, run.data_root, corpus.words),
                          epoch_metrics_every=max(1, config.eval.val_analogy_every))
    save_keras(model, run.dir.model_keras)
    seconds = result["history"].get("epoch_seconds", [])
    words_per_second = [info["training_words"] / s for s in seconds if s > 0]
    summary = {"corpus": info, "stopped_reason": result["stopped_reason"], "steps_per_epoch": steps,
               "epochs": config.train.epochs, "loss": result["history"].get("loss", []),
               "val_analogy": result["history"].get("val_analogy", []),
               "epoch_seconds": seconds, "words_per_second": words_per_second,
               "mean_words_per_second": float(np.mean(words_per_second)) if words_per_second else None,
               "resumed_from_step": result["resumed_from_step"], "backend": keras.backend.backend(),
               "initial_vectors": initial}
    atomic_write_json(run.dir.training_json, summary)
    return summary


def load_vectors(run: Run):
    """The trained word vectors of a run folder as WordVectors."""
    from tasks.embeddings.vectors import WordVectors

    model = keras.models.load_model(run.dir.require_model())
    words, _ = data_lib.load_vocab(run.dir)
    if isinstance(model, SubwordWord2Vec):  # subword: words outside the vocabulary get n-gram vectors
        return SubwordVectors.from_model(model, words)
    return WordVectors(words, model.vectors())
