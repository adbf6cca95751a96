"""What the vectors are worth on a task: sentiment of NLTK's movie_reviews (1,000 positive,
1,000 negative) with a small Keras classifier (embedding, masked mean over the review's
words, dropout, one logistic unit) whose embedding layer starts from the trained vectors,
frozen or fine-tuned, against the same classifier with a random embedding.

Fixed split: reviews cv800-cv999 of each class are the test set (400 reviews), cv000-cv799
the training set (1,600). Tokens are read and filtered like the training corpus (lower-cased,
punctuation tokens dropped), mapped to the run's vocabulary (other words dropped, counted)
and cut to `max_length`. Accuracy is the test accuracy after a fixed number of epochs (no
selection on the test set).
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import numpy as np

TEST_PREFIXES = ("cv8", "cv9")
_WORD_PUNCT = re.compile(r"\w+|[^\w\s]+")
VARIANTS = {"frozen": (True, False), "fine-tuned": (True, True), "random": (False, True)}  # (ours?, trainable)


def load_reviews(data_root: str | os.PathLike, lowercase: bool = True, drop_punctuation: bool = True,
                 per_class: int = 0) -> dict:
    """{"train": (reviews, labels), "test": (reviews, labels)}; a review is its token list,
    label 1 = positive. `per_class` > 0 keeps that many reviews per class and split (tests)."""
    from pipelines.datasets import corpus as corpus_lib

    splits = {"train": ([], []), "test": ([], [])}
    taken: dict[tuple[str, int], int] = {}
    for fileid, text in _review_texts(data_root):
        label = int(fileid.startswith("pos/"))
        split = "test" if fileid.split("/")[-1].startswith(TEST_PREFIXES) else "train"
        if per_class and taken.get((split, label), 0) >= per_class:
            continue
        taken[(split, label)] = taken.get((split, label), 0) + 1
        # NLTK's reader.words(fileid) is this tokenizer (WordPunct), ~20x slower
        tokens = [w for w in _WORD_PUNCT.findall(text) if not (drop_punctuation and corpus_lib.is_punctuation(w))]
        splits[split][0].append([w.lower() for w in tokens] if lowercase else tokens)
        splits[split][1].append(label)
    return {name: (reviews, np.asarray(labels, np.float32)) for name, (reviews, labels) in splits.items()}


def _review_texts(data_root):
    """(fileid 'pos/cv000_29590.txt', text) of every review, from movie_reviews.zip or its folder."""
    from pipelines.datasets import corpus as corpus_lib

    corpora = Path(data_root) / "nltk_data" / "corpora"
    if (corpora / "movie_reviews").is_dir():
        for path in sorted((corpora / "movie_reviews").glob("*/*.txt")):
            yield f"{path.parent.name}/{path.name}", path.read_text(encoding="utf-8", errors="replace")
        return
    if not (corpora / "movie_reviews.zip").is_file():
        corpus_lib.nltk_reader("movie_reviews", data_root)  # raises the missing-corpus error (names the fetch)
    with zipfile.ZipFile(corpora / "movie_reviews.zip") as archive:
        for name in sorted(archive.namelist()):
            parts = name.split("/")
            if len(parts) == 3 and parts[1] in ("pos", "neg") and name.endswith(".txt"):
                yield f"{parts[1]}/{parts[2]}", archive.read(name).decode("utf-8", errors="replace")


def encode(reviews: list[list[str]], index: dict[str, int], max_length: int) -> tuple[np.ndarray, int, int]:
    """(ids [reviews, max_length] int32, word id + 1, 0 = padding; tokens kept; tokens dropped
    as out of the vocabulary). A review is cut after its first `max_length` known words."""
    ids = np.zeros((len(reviews), max_length), np.int32)
    kept = dropped = 0
    for row, review in enumerate(reviews):
        known = [index[w] + 1 for w in review if w in index]
        dropped += len(review) - len(known)
        known = known[:max_length]
        ids[row, :len(known)] = known
        kept += len(known)
    return ids, kept, dropped


def classifier(vocab_size: int, dim: int, initial: np.ndarray | None, trainable: bool, seed: int):
    import keras

    inputs = keras.Input((None,), dtype="int32", name="word_ids")
    if initial is None:
        init = keras.initializers.RandomUniform(-0.05, 0.05, seed=seed)
    else:
        init = keras.initializers.Constant(np.concatenate([np.zeros((1, dim), np.float32), initial]))
    x = keras.layers.Embedding(vocab_size + 1, dim, mask_zero=True, embeddings_initializer=init,
                               trainable=trainable, name="embedding")(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dropout(0.2, seed=seed)(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="positive")(x)
    model = keras.Model(inputs, outputs, name="sentiment")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def sentiment(vectors, data_root, *, epochs: int = 10, max_length: int = 400, seed: int = 0,
              lowercase: bool = True, drop_punctuation: bool = True, per_class: int = 0) -> dict:
    """Test accuracy of the three classifiers (VARIANTS); the vectors enter unit-normalised."""
    import keras

    reviews = load_reviews(data_root, lowercase, drop_punctuation, per_class)
    x_train, kept, dropped = encode(reviews["train"][0], vectors.index, max_length)
    x_test, _, _ = encode(reviews["test"][0], vectors.index, max_length)
    y_train, y_test = reviews["train"][1], reviews["test"][1]
    result = {"train_reviews": len(y_train), "test_reviews": len(y_test), "epochs": epochs,
              "max_length": max_length, "train_tokens_kept": kept, "train_tokens_out_of_vocabulary": dropped,
              "accuracy": {}, "train_accuracy": {}}
    for name, (ours, trainable) in VARIANTS.items():
        keras.utils.set_random_seed(seed)
        model = classifier(len(vectors), vectors.vectors.shape[1], vectors.unit if ours else None, trainable, seed)
        model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0, shuffle=True)
        result["accuracy"][name] = float(model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"])
        result["train_accuracy"][name] = float(model.evaluate(x_train, y_train, verbose=0,
                                                              return_dict=True)["accuracy"])
    return result
