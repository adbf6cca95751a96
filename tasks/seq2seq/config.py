"""Seq2seq config and presets; `smoke` is the config the tests run."""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

from shared.config import ConfigError, TrainConfig


@dataclasses.dataclass
class DataConfig:
    source: Literal["dates", "multi30k", "tsv", "files"] = "dates"
    path: str = ""  # tsv: the .tsv file; files: source text file
    target_path: str = ""  # files: target text file (line-aligned with data.path)
    # multi30k: the direction, "de"/"en" either way (empty: de -> en); other corpora: optional
    # labels of the two sides for the report
    source_lang: str = ""
    target_lang: str = ""
    validation_fraction: float = 0.05  # tsv/files: held out for val and again for test
    dates_train: int = 20000  # dates: pairs per split (targets distinct across splits)
    dates_val: int = 1000
    dates_test: int = 2000
    limit: int = 0  # > 0: keep the first N pairs of each split (smoke runs)
    max_source_length: int = 64  # tokens incl. eos; longer sentences are cut and counted
    max_target_length: int = 64
    bucket_width: int = 8  # batches padded to a multiple of this (few compiled shapes)

    def languages(self) -> tuple[str, str]:
        """(source, target) language labels; Multi30k defaults to de -> en."""
        if self.source == "multi30k":
            return self.source_lang or "de", self.target_lang or "en"
        return self.source_lang, self.target_lang

    def validate(self):
        if self.source in ("tsv", "files") and not self.path:
            raise ConfigError(f"data.source={self.source} needs data.path (--set data.path=PATH)")
        if self.source == "files" and not self.target_path:
            raise ConfigError("data.source=files needs data.target_path (--set data.target_path=PATH)")
        if min(self.max_source_length, self.max_target_length) < 2:
            raise ConfigError("data.max_source_length and data.max_target_length must be >= 2")
        if self.bucket_width < 1:
            raise ConfigError(f"data.bucket_width must be >= 1. Received: {self.bucket_width}")


@dataclasses.dataclass
class TokenizerConfig:
    kind: Literal["sentencepiece", "char"] = "char"
    model_type: Literal["bpe", "unigram"] = "bpe"
    vocab_size: int = 8000  # sentencepiece
    joint: bool = True  # one vocabulary for both sides (needed to share embeddings)


@dataclasses.dataclass
class ModelConfig:
    architecture: Literal["rnn", "transformer"] = "rnn"
    # RNN encoder-decoder
    cell: Literal["gru", "lstm"] = "gru"
    attention: Literal["bahdanau", "luong"] = "bahdanau"
    embedding_dim: int = 128
    hidden_dim: int = 256
    # Transformer
    model_dim: int = 256
    num_heads: int = 4
    ff_dim: int = 1024
    encoder_layers: int = 3
    decoder_layers: int = 3
    positions: Literal["sinusoidal", "learned"] = "sinusoidal"
    share_embeddings: bool = True  # source/target/output (needs tokenizer.joint)
    dropout_rate: float = 0.1

    def validate(self):
        if self.architecture == "transformer" and self.model_dim % self.num_heads:
            raise ConfigError(f"model.model_dim ({self.model_dim}) must be divisible by "
                              f"model.num_heads ({self.num_heads})")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ConfigError(f"model.dropout_rate must be in [0, 1). Received: {self.dropout_rate}")


@dataclasses.dataclass
class EvalConfig:
    split: Literal["test", "val"] = "test"
    beam_size: int = 4
    beam_sizes: tuple[int, ...] = (1, 4, 8)  # the greedy-vs-beam table (greedy always included)
    length_penalty: float = 0.6  # GNMT alpha; replaced by the pick when length_penalty_grid is set
    # non-empty: evaluate first decodes the validation split with beam_size for each alpha and
    # uses (and writes into the run's config.json) the one with the best BLEU
    length_penalty_grid: tuple[float, ...] = ()
    max_length_ratio: float = 1.5  # decode up to ratio * source length + 10 tokens
    batch_size: int = 64
    limit: int = 0  # > 0: decode only the first N sentences (quick checks)
    examples: int = 10
    attention_examples: int = 3
    # score a user's own line-aligned files in full instead of the run's split: evaluate writes
    # evaluation/files/<files_name or the source file's name>/ and leaves evaluation/results.json
    source_file: str = ""
    reference_file: str = ""
    files_name: str = ""
    # translate flags outputs whose mean token log-probability is below this (None: off)
    flag_below_log_prob: float | None = None
    # training logs val_bleu (greedy sacreBLEU on the first N validation pairs) after the first,
    # every epoch_bleu_every-th and the last epoch: what `tune` maximises and best weights /
    # early stopping follow; 0: off (val_loss is monitored, and `tune` has no objective)
    epoch_bleu_sentences: int = 500
    epoch_bleu_every: int = 1

    def validate(self):
        if bool(self.source_file) != bool(self.reference_file):
            raise ConfigError("eval.source_file and eval.reference_file go together (--set "
                              "eval.source_file=SRC --set eval.reference_file=REF). Received: "
                              f"source_file={self.source_file!r}, reference_file={self.reference_file!r}")
        if self.files_name and not re.fullmatch(r"[A-Za-z0-9._-]+", self.files_name):
            raise ConfigError("eval.files_name names a folder: letters, digits, '.', '_' and '-' only. "
                              f"Received: {self.files_name!r}")
        if any(alpha < 0 for alpha in (self.length_penalty, *self.length_penalty_grid)):
            raise ConfigError("eval.length_penalty and eval.length_penalty_grid must be >= 0. Received: "
                              f"{self.length_penalty}, {self.length_penalty_grid}")
        if self.epoch_bleu_sentences < 0 or self.epoch_bleu_every < 1:
            raise ConfigError("eval.epoch_bleu_sentences must be >= 0 (0: off) and eval.epoch_bleu_every >= 1. "
                              f"Received: {self.epoch_bleu_sentences}, {self.epoch_bleu_every}")
        if self.length_penalty_grid and self.split == "val":
            raise ConfigError("eval.length_penalty_grid picks alpha on the validation split, so "
                              "eval.split must be test (scores on the split alpha was picked on "
                              "would be optimistic)")


@dataclasses.dataclass
class Seq2SeqConfig:
    seed: int = 0
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = dataclasses.field(default_factory=TokenizerConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)

    def validate(self):
        if (self.model.architecture == "transformer" and self.model.share_embeddings
                and not self.tokenizer.joint):
            raise ConfigError("model.share_embeddings=true needs tokenizer.joint=true "
                              "(one vocabulary for both sides)")


def smoke() -> Seq2SeqConfig:
    """Tests and CI: a tiny GRU + Bahdanau model on 2,000 generated dates, 2 epochs.
    Command: kts seq2seq run --preset smoke
    Expect: ~25 s on 2 CPU cores; token accuracy ~0.48 (the fixed characters), exact match 0."""
    cfg = dates()
    cfg.data.dates_train, cfg.data.dates_val, cfg.data.dates_test = 2000, 200, 200
    cfg.model.embedding_dim, cfg.model.hidden_dim = 32, 64
    cfg.train.epochs = 2
    cfg.eval.beam_sizes = (1, 2)
    cfg.eval.beam_size = 2
    cfg.eval.examples, cfg.eval.attention_examples = 4, 2
    cfg.eval.epoch_bleu_sentences = 64
    return cfg


def dates() -> Seq2SeqConfig:
    """Human-readable dates -> ISO dates with a character-level GRU + Bahdanau attention.
    Command: kts seq2seq run --preset dates
    Expect (target >= 99.5%): measured (2026-11-23, TF, 2 shared CPU cores) exact match 100.00%
    on the 2,000 held-out dates (greedy, beam 1 and beam 4 alike) after 4 epochs, 278 s of
    training on cores shared with other jobs (~3 min alone)."""
    cfg = Seq2SeqConfig()
    cfg.data = DataConfig(source="dates", max_source_length=48, max_target_length=12)
    cfg.tokenizer = TokenizerConfig(kind="char", joint=False)
    cfg.model = ModelConfig(architecture="rnn", cell="gru", attention="bahdanau",
                            embedding_dim=64, hidden_dim=128, dropout_rate=0.0)
    cfg.train = TrainConfig(epochs=4, batch_size=128, optimizer="adam", learning_rate=3e-3,
                            weight_decay=0.0, warmup_epochs=0.0, gradient_clip_norm=1.0,
                            label_smoothing=0.0)
    # translate flags outputs below -0.1 mean token log-prob: measured (2026-12-03, demo preset,
    # TF) the 2,000 test dates score -0.070 at the lowest (-0.018 at the 1st percentile), 10 of
    # 12 non-date inputs ("hello world" -0.26, "x" -0.32, "12345" -0.15) score below -0.1;
    # impossible dates ("31 February 2020" -0.001) are confident and caught by the date check
    cfg.eval = EvalConfig(beam_sizes=(1, 4), beam_size=4, length_penalty=0.0, flag_below_log_prob=-0.1)
    return cfg


def multi30k_rnn() -> Seq2SeqConfig:
    """Multi30k de->en with a bidirectional GRU encoder and a Luong-attention decoder
    (input feeding), joint 8k BPE, label smoothing 0.1, 10 epochs.
    Command: kts seq2seq run --preset multi30k-rnn
    Expect (target >= 32): measured (2026-11-23, TF, 2 CPU cores, 64 min of training):
    test2016 sacreBLEU 40.02 with beam 4, 39.21 greedy, 40.10 beam 8; chrF 58.7; validation
    token accuracy 0.658 (teacher forced)."""
    cfg = Seq2SeqConfig()
    cfg.data = DataConfig(source="multi30k", source_lang="de", target_lang="en", max_source_length=64,
                          max_target_length=64)
    cfg.tokenizer = TokenizerConfig(kind="sentencepiece", vocab_size=8000, joint=True)
    cfg.model = ModelConfig(architecture="rnn", cell="gru", attention="luong",
                            embedding_dim=256, hidden_dim=512, dropout_rate=0.3)
    cfg.train = TrainConfig(epochs=10, batch_size=64, optimizer="adam", learning_rate=1e-3,
                            weight_decay=0.0, gradient_clip_norm=1.0, label_smoothing=0.1)
    return cfg


def multi30k_transformer() -> Seq2SeqConfig:
    """Multi30k de->en with a pre-norm Transformer (4+4 layers, d=512, 8 heads, shared
    embeddings, joint 8k BPE, label smoothing 0.1), the stronger preset; a GPU preset.
    Command: kts seq2seq run --preset multi30k-transformer --backend jax
    Expect (target): test2016 sacreBLEU >= 41 (a PyTorch reference of the same shape reaches
    40.7 with beam 4 after 18 epochs). Measured (2026-12-02, TF, 2 CPU cores, `--precision
    mixed_bfloat16`, this preset as is): 231 steps per epoch, 577-760 s per epoch, 195 min
    for the 18; length penalty picked on validation: alpha 1.2; test2016 sacreBLEU 41.01
    with beam 4, 39.74 greedy, 41.20 beam 8 (40.61 / 40.92 with alpha 0.6); with dropout
    0.3 instead: 39.84 with beam 4 (alpha 0.6).
    `--resume` continues after an interruption. The final weights are the mean of
    the last 5 epochs' (checkpoint averaging, as in the Transformer paper); evaluation
    first picks the length penalty alpha on the validation split (eval.length_penalty_grid)."""
    cfg = Seq2SeqConfig()
    cfg.data = DataConfig(source="multi30k", source_lang="de", target_lang="en", max_source_length=64,
                          max_target_length=64)
    cfg.tokenizer = TokenizerConfig(kind="sentencepiece", vocab_size=8000, joint=True)
    cfg.model = ModelConfig(architecture="transformer", model_dim=512, num_heads=8, ff_dim=2048,
                            encoder_layers=4, decoder_layers=4, dropout_rate=0.1)
    cfg.train = TrainConfig(epochs=18, batch_size=128, optimizer="adamw", learning_rate=7e-4,
                            weight_decay=1e-4, warmup_epochs=1.0, gradient_clip_norm=1.0,
                            label_smoothing=0.1, average_last_epochs=5)
    cfg.eval.length_penalty_grid = (0.6, 0.8, 1.0, 1.2, 1.5)
    return cfg


def multi30k_cpu() -> Seq2SeqConfig:
    """Multi30k de->en on a CPU in under an hour: a small pre-norm Transformer (3+3 layers,
    d=256, 4 heads, shared embeddings, joint 8k BPE), 4 epochs; beams 1 and 4 in the table.
    Command: kts seq2seq run --preset multi30k-cpu
    Expect: measured (2026-11-22, TF, 2 shared CPU cores, 27 min of training): test2016
    sacreBLEU 34.33 with beam 4 (33.95 greedy), chrF 52.9; the target for this preset is
    BLEU >= 33 (the 41 of the issue is for `multi30k-transformer` on a GPU)."""
    cfg = multi30k_transformer()
    cfg.model = ModelConfig(architecture="transformer", model_dim=256, num_heads=4, ff_dim=1024,
                            encoder_layers=3, decoder_layers=3, dropout_rate=0.1)
    cfg.train.epochs = 4
    cfg.train.average_last_epochs = 0  # measured without it
    cfg.train.learning_rate = 1e-3
    cfg.eval.beam_sizes = (1, 4)
    cfg.eval.length_penalty_grid = ()  # measured with alpha 0.6
    return cfg


def demo() -> Seq2SeqConfig:
    """`make demo`: the dates task at demo scale (10,000 pairs, 3 epochs).
    Command: kts seq2seq run --preset demo
    Expect: measured (2026-11-23, TF, 2 CPU cores, `make demo` from a clean clone): 35 s of
    training, exact match 99.80% with beam 4 on the 2,000 test dates."""
    cfg = dates()
    cfg.data.dates_train = 10000
    cfg.train.epochs = 3
    return cfg


PRESETS = {"smoke": smoke, "demo": demo, "dates": dates, "multi30k-rnn": multi30k_rnn,
           "multi30k-transformer": multi30k_transformer, "multi30k-cpu": multi30k_cpu}
