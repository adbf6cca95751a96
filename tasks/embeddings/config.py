"""Word-embedding config and presets; `smoke` is the config the tests run."""

from __future__ import annotations

import dataclasses
from typing import Literal

from shared.config import ConfigError, TrainConfig

ALL_NLTK = ("brown", "abc", "movie_reviews", "state_union", "webtext", "inaugural")


@dataclasses.dataclass
class DataConfig:
    source: Literal["nltk", "text"] = "nltk"
    corpora: tuple[str, ...] = ALL_NLTK  # nltk: which corpora of <data root>/nltk_data
    path: str = ""  # text: a plain text file
    layout: Literal["lines", "raw"] = "lines"  # text: one sentence per line, or running text
    lowercase: bool = True
    drop_punctuation: bool = True  # tokens without a letter or digit
    min_count: int = 5
    max_vocab: int = 0  # > 0: keep only the N most frequent words
    max_words: int = 0  # > 0: use only the first N corpus words (after the vocabulary is made)

    def validate(self):
        if self.source == "text" and not self.path:
            raise ConfigError("data.source=text needs data.path (--set data.path=FILE)")
        if self.source == "nltk" and not self.corpora:
            raise ConfigError("data.corpora is empty; name some of: " + ", ".join(ALL_NLTK))
        unknown = [name for name in self.corpora if name not in ALL_NLTK]
        if self.source == "nltk" and unknown:
            raise ConfigError(f"Unknown data.corpora {unknown}. Expected some of: {', '.join(ALL_NLTK)}")
        if self.min_count < 1:
            raise ConfigError(f"data.min_count must be >= 1. Received: {self.min_count}")


@dataclasses.dataclass
class ModelConfig:
    algorithm: Literal["skipgram", "cbow", "glove"] = "skipgram"
    dim: int = 100
    window: int = 5
    negative: int = 5
    objective: Literal["negative", "hierarchical"] = "negative"  # negative sampling or Huffman-tree softmax
    sample: float = 1e-3  # frequent-word subsampling threshold (0 = off)
    alpha: float = 0.025  # learning rate at the start, decayed linearly to min_alpha
    min_alpha: float = 1e-4
    words_per_batch: int = 1024  # corpus words per training step
    steps_per_execution: int = 0  # steps per compiled call; 0 = auto: 16 on TensorFlow, 1 on JAX
    sizes_per_octave: int = 2  # batch dimensions padded to 2 sizes per octave: few shapes to compile
    init_vectors: str = ""  # word2vec text/binary or GloVe file: its rows start our vocabulary's input vectors
    init_format: Literal["auto", "word2vec", "word2vec-binary", "glove"] = "auto"
    freeze_vectors: bool = False  # with init_vectors: the input vectors stay as loaded (outputs train)
    # fastText subword vectors (skipgram / cbow): a word = mean of its row and its hashed character
    # n-grams of minn..maxn characters (tasks/embeddings/subword.py); words outside the vocabulary
    # get the mean of their n-grams. buckets: n-gram rows (fastText's default is 2,000,000, 800 MB
    # at dim 100; 200,000 here keeps the table at 80 MB on a CPU)
    subword: bool = False
    minn: int = 3
    maxn: int = 6
    buckets: int = 200000
    hot_row_uses: int = 0  # subword: > 0 scales a row's summed update in a batch down to this many uses
    # GloVe (algorithm=glove; window is the co-occurrence window, epochs = train.epochs)
    x_max: float = 100.0
    glove_alpha: float = 0.75  # f(x) = min(1, (x / x_max)^glove_alpha)
    glove_learning_rate: float = 0.05  # AdaGrad
    glove_batch_size: int = 4096  # co-occurrence entries per step

    def validate(self):
        if self.steps_per_execution < 0:
            raise ConfigError(f"model.steps_per_execution must be >= 0 (0 = auto). Received: "
                              f"{self.steps_per_execution}")
        if self.sizes_per_octave not in (1, 2, 4, 8, 16):
            raise ConfigError(f"model.sizes_per_octave must be one of 1, 2, 4, 8, 16. Received: "
                              f"{self.sizes_per_octave}")
        for key in ("dim", "window", "negative", "words_per_batch"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key} must be >= 1. Received: {getattr(self, key)}")
        if self.freeze_vectors and not self.init_vectors:
            raise ConfigError("model.freeze_vectors=true needs model.init_vectors=FILE (the vectors to freeze)")
        if self.init_vectors and self.algorithm == "glove":
            raise ConfigError("model.init_vectors is for skipgram and cbow; GloVe starts from random vectors")
        if self.subword and self.algorithm == "glove":
            raise ConfigError("model.subword=true is for skipgram and cbow (fastText); GloVe has no subwords")
        if self.subword and self.freeze_vectors:
            raise ConfigError("model.subword=true cannot freeze the vectors (the n-gram rows train with them)")
        if self.subword and not 1 <= self.minn <= self.maxn:
            raise ConfigError(f"Expected 1 <= model.minn <= model.maxn. Received: {self.minn}, {self.maxn}")
        if self.hot_row_uses < 0:
            raise ConfigError(f"model.hot_row_uses must be >= 0 (0 = off). Received: {self.hot_row_uses}")
        if self.subword and self.buckets < 1:
            raise ConfigError(f"model.buckets must be >= 1. Received: {self.buckets}")
        if not 0 < self.min_alpha <= self.alpha:
            raise ConfigError(f"Expected 0 < model.min_alpha <= model.alpha. Received: {self.min_alpha}, "
                              f"{self.alpha}")


@dataclasses.dataclass
class EvalConfig:
    analogy_vocab: int = 30000  # 3CosAdd over the N most frequent words
    # `val_analogy` in the epoch logs (the tune objective): 3CosAdd on the validation half of
    # the analogies (a fixed seeded half of each section; the test half is never scored during
    # training) at the end of the first epoch, every N-th and the last; 0 = not computed
    val_analogy_every: int = 1
    neighbours: tuple[str, ...] = ("king", "woman", "good", "money", "war", "day")
    plot_words: int = 150  # most frequent words in the 2-D PCA plot
    sentiment: bool = True  # movie_reviews classifier: our vectors frozen / fine-tuned vs random
    sentiment_epochs: int = 10
    sentiment_max_length: int = 400  # words per review

    def validate(self):
        if self.analogy_vocab < 1:
            raise ConfigError(f"eval.analogy_vocab must be >= 1. Received: {self.analogy_vocab}")
        if self.val_analogy_every < 0:
            raise ConfigError(f"eval.val_analogy_every must be >= 0 (0 = off). Received: {self.val_analogy_every}")


@dataclasses.dataclass
class EmbeddingsConfig:
    seed: int = 0
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    # XLA on every backend: "auto" leaves it off on a CPU-only TensorFlow, 2-4x slower here
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=5, jit_compile="true"))
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)


def nltk_sg() -> EmbeddingsConfig:
    """Skip-gram on the whole NLTK kit at the reference settings (3.84M words; dim 100,
    window 5, negative 5, sample 1e-3, 5 epochs, min_count 5).
    Command: kts embeddings run --preset nltk-sg
    Expect: gensim 4.4 on the same corpus: analogy 12.2%, WordSim353 0.348, SimLex 0.245
    (issue 18). Measured (2026-12-02, TF, 2 CPU cores shared with other jobs,
    benchmarks/embeddings.py): analogy 11.56%, WordSim353 0.403, SimLex-999 0.247 (gensim
    in the same script: 11.12%, 0.342, 0.240); 741 s of training on the loaded cores, 13x
    gensim's time (docs/benchmarks.md). With XLA and 16 steps per call (2026-12-03, cores
    loaded 5-6x over): the same scores, 519 s (36k words/s; gensim in the same script on the
    same load: 281 s, 12.28%, 0.369, 0.243). Less loaded cores (2026-12-03, load 0.7-2.4,
    gradient rows added in place, `benchmarks/embeddings.py --repeat 2`): 100.6 s both rounds
    (186k words/s), analogy 11.03%, WordSim353 0.404, SimLex-999 0.239; gensim 31-34 s, so
    0.31-0.34x its speed."""
    return EmbeddingsConfig()


def nltk_cbow() -> EmbeddingsConfig:
    """CBOW (mean of the context) on the whole NLTK kit at the reference settings.
    Command: kts embeddings run --preset nltk-cbow
    Expect: gensim 4.4: analogy 9.45%, WordSim353 0.310 (issue 18). Measured (2026-12-03, TF,
    quiet 2 CPU cores): 94 s of training (199k words/s), analogy 8.08%, WordSim353 0.306,
    SimLex-999 0.170 (gensim in the same script: 16.9 s, 9.24%, 0.314, 0.161). Again with the
    rewritten step and alias-drawn noise (2026-12-03, loaded cores): 63.2 s, 8.40%, 0.309, 0.176
    (gensim 23.7 s, 9.07%, 0.308, 0.164): within 1 analogy point of it."""
    cfg = EmbeddingsConfig()
    cfg.model.algorithm = "cbow"
    return cfg


def nltk_glove() -> EmbeddingsConfig:
    """GloVe on the whole NLTK kit: symmetric window 5 (1/distance weights), x_max 100,
    alpha 0.75, AdaGrad 0.05, dim 100, min_count 5, 15 epochs over the co-occurrences.
    Command: kts embeddings run --preset nltk-glove
    Expect: 141 s of training on 2 quiet CPU cores (TF), analogy 3.55%, WordSim353 0.164,
    SimLex-999 0.029; a build of GloVe's C algorithm on the same corpus, side by side: 96 s,
    3.52%, 0.158, 0.029 (2026-12-03, docs/benchmarks.md)."""
    cfg = EmbeddingsConfig()
    cfg.model.algorithm = "glove"
    cfg.train.epochs = 15
    return cfg


def nltk_subword() -> EmbeddingsConfig:
    """fastText-style skip-gram (subword n-grams of 3-6 characters in 200,000 buckets) on the
    whole NLTK kit at the reference settings; words outside the vocabulary get vectors.
    Command: kts embeddings run --preset nltk-subword
    Expect (2026-12-03, TF, 2 CPU cores beside a test suite, benchmarks/embeddings_subword.py
    --preset nltk-subword): 306 s of training, analogy 56.0%, WordSim353 0.374, SimLex-999 0.261;
    gensim's FastText, same settings: 125 s, 54.1%, 0.329, 0.230; every WordSim353 / SimLex-999
    pair gets a vector (docs/benchmarks.md)."""
    cfg = EmbeddingsConfig()
    cfg.model.subword = True
    return cfg


def demo() -> EmbeddingsConfig:
    """`make demo`: skip-gram on abc + state_union + inaugural (about 1.2M words), 1 epoch.
    Command: kts embeddings run --preset demo
    Expect: measured (2026-12-02, TF, 2 CPU cores shared with other jobs): 1,135,921 training
    words, vocabulary 12,448, 25 s of training (46k words/s), analogy 0.79%, WordSim353 0.059,
    SimLex-999 0.065 (gensim on the same corpus and settings: 0.94%, 0.067, 0.066). One
    epoch of 1.1M words is too little for good vectors; this preset shows the plumbing.
    Since 2026-12-03 with XLA and 16 steps per call, on quiet cores: the first epoch (which
    compiles 8 batch shapes) 18.8 s, later ones 14.3 s (before: 29-35 s each; gensim 3.1 s);
    2026-12-03 again, the rewritten step (models.lane_sum), load ~1.5: 9.6 s then 5.8 s (one
    measurement: these shared cores move by 1.5x minute to minute); with the alias-drawn noise
    words (other draws) analogy 0.68%, WordSim353 0.036, SimLex-999 0.054, and another run
    at load ~2 took 14.9 s for the epoch with its compilations. The movie_reviews
    sentiment check (fine-tuned 81.0%, frozen 56.8%, random 80.8% with these weak vectors)
    adds tens of seconds to the evaluation."""
    cfg = EmbeddingsConfig()
    cfg.data.corpora = ("abc", "state_union", "inaugural")
    cfg.train.epochs = 1
    return cfg


def smoke() -> EmbeddingsConfig:
    """Tests: inaugural addresses, the first 60,000 words, dim 32, 1 epoch.
    Command: kts embeddings run --preset smoke
    Expect: ~3 s of training; the plumbing, not the quality (analogy ~0)."""
    cfg = EmbeddingsConfig()
    cfg.data.corpora = ("inaugural",)
    cfg.data.max_words = 60000
    cfg.model.dim = 32
    cfg.train.epochs = 1
    cfg.train.jit_compile = "auto"  # one XLA compilation per batch shape costs more than it saves here
    cfg.eval.plot_words = 40
    cfg.eval.sentiment = False  # tested on its own (tests/test_embeddings_extras.py)
    return cfg


PRESETS = {"smoke": smoke, "demo": demo, "nltk-sg": nltk_sg, "nltk-cbow": nltk_cbow,
           "nltk-glove": nltk_glove, "nltk-subword": nltk_subword}
