"""Seq2seq throughput: the project's Transformer + fit() and beam search against plain PyTorch.

Both sides run the same pre-norm Transformer encoder-decoder (sinusoidal positions, one
embedding matrix shared by source, target and the output projection plus an output bias,
LayerNorm eps 1e-6, dropout 0.1; trainable parameter counts checked equal) on the same
synthetic Multi30k-shaped data: a joint 8,000-token vocabulary, random ids, source and
target lengths ~ N(15, 5) tokens (eos-terminated, clipped to [2, 32]), every batch padded
with 0 to 32. In this process, one after the other:

- ours: `tasks.seq2seq.training.build` + `compile_model` (the multi30k-transformer preset's
  AdamW, warm-up + cosine, clip 1.0, label smoothing 0.1, token accuracy), `model.fit()` on
  numpy arrays; then beam 4 with `tasks.seq2seq.search.Translator(...).predict_on_batch`
  (compiled while_loop, KV cache of max_length 64 as in evaluation);
- peer: the same network in plain PyTorch, label-smoothed cross-entropy ignoring pad, AdamW
  + clip 1.0 (constant learning rate), the same batches in the same order (bf16 autocast when
  our precision is bf16, `torch.compile` of the training model with --torch-compile); beam 4
  with a simple batched beam search WITHOUT a KV cache (the whole prefix is re-decoded at
  every step, as in the issue's reference), eager (also with --torch-compile: the growing
  prefix would recompile at every step).

Training: target tokens/s = non-pad target tokens per epoch / seconds, over epochs 2..E
(epoch 1 = compilation/warm-up, reported apart). Decoding: sentences/s over --decode-sentences
after one warm-up batch. So that both searches do the same work whatever the weights, the
end token is forced on both sides: suppressed before step --decode-length and certain at it,
so every hypothesis is exactly that many tokens long (20 by default, about a Multi30k
sentence) and the search stops there.

    # CPU (defaults: small shape, 512 sentences, batch 64, 3 epochs, 32 decoded 16 per call;
    # 2-6 min on 2 shared cores; --peer-threads 1 when other jobs share the cores, see docs):
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/seq2seq.py --json s2s-tf.json
    KERAS_BACKEND=jax .venv/bin/python benchmarks/seq2seq.py --json s2s-jax.json
    # GPU machine (defaults there: reference shape, 29,000 sentences, batch 128, 4 epochs, bf16):
    KERAS_BACKEND=jax python benchmarks/seq2seq.py --torch-compile --json s2s-h200.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import epoch_timer, finish, parse, run_peer_if_available, summarize  # noqa: E402
from benchmarks.common import on_gpu as common_on_gpu  # noqa: E402
from shared import runtime  # noqa: E402  (stdlib only: safe before Keras is imported)

PAD_ID, BOS_ID, EOS_ID, FIRST_WORD_ID = 0, 2, 3, 4  # as pipelines.text (ids 0-3 are specials)
VOCAB_SIZE, SEQUENCE_LENGTH, MEAN_LENGTH, LENGTH_STD = 8000, 32, 15.0, 5.0
BEAM_SIZE, LENGTH_PENALTY, MAX_DECODE_LENGTH = 4, 0.6, 64  # 64 = multi30k data.max_target_length
SIZES = {"small": {"model_dim": 256, "num_heads": 4, "ff_dim": 1024, "encoder_layers": 3, "decoder_layers": 3},
         "reference": {"model_dim": 512, "num_heads": 8, "ff_dim": 2048, "encoder_layers": 4, "decoder_layers": 4}}
# The PyTorch reference (reference shape, its own GPU) and the goals on the H200.
REFERENCE = {"train_tokens_per_s": 41_000, "beam4_sentences_per_s": 73}
GOALS = {"train_tokens_per_s": 2 * REFERENCE["train_tokens_per_s"], "beam4_sentences_per_s": 700}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    gpu, cpu = "GPU: reference, 29000, 128, 4, 2048 / 128", "CPU: small, 512, 64, 3, 32 / 16"
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=tuple(SIZES), help="small: d256, 4 heads, ff 1024, 3+3 layers; "
                        f"reference: d512, 8 heads, ff 2048, 4+4 layers ({gpu} / {cpu})")
    parser.add_argument("--sentences", type=int, help="training sentence pairs per epoch (see --size)")
    parser.add_argument("--batch-size", type=int, help="training batch (see --size)")
    parser.add_argument("--epochs", type=int, help="epochs in all, the first is warm-up (>= 2)")
    parser.add_argument("--decode-sentences", type=int, help="sentences decoded with beam 4 (see --size)")
    parser.add_argument("--decode-batch-size", type=int, help="sentences per beam-search call (see --size)")
    parser.add_argument("--decode-length", type=int, default=20,
                        help=f"tokens in every hypothesis, eos included (<= {MAX_DECODE_LENGTH}; default 20)")
    parser.add_argument("--backend", choices=runtime.BACKENDS, help="default: $KERAS_BACKEND")
    parser.add_argument("--precision", default="auto", choices=("auto", "float32", "mixed_bfloat16"))
    parser.add_argument("--torch-compile", action="store_true", help="torch.compile the peer's training model")
    parser.add_argument("--no-peer", action="store_true", help="skip the PyTorch peer")
    parser.add_argument("--peer-threads", type=int, default=0,
                        help="torch.set_num_threads for the peer (default 0: torch's own choice)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parse(parser, argv)
    if not 1 <= args.decode_length <= MAX_DECODE_LENGTH:
        parser.error(f"--decode-length must be in [1, {MAX_DECODE_LENGTH}]. Received: {args.decode_length}")
    return args


def synthetic_data(num_sentences: int, vocab_size: int = VOCAB_SIZE, length: int = SEQUENCE_LENGTH,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """Random word ids, lengths ~ N(15, 5) clipped to [2, length] (eos included), pad 0 to
    `length`: {"source", "target_in" (bos + words), "target_out" (words + eos)} (N, length) int32."""
    rng = np.random.default_rng(seed)

    def sentences() -> np.ndarray:
        lengths = np.clip(np.rint(rng.normal(MEAN_LENGTH, LENGTH_STD, num_sentences)), 2, length).astype(int)
        words = rng.integers(FIRST_WORD_ID, vocab_size, size=(num_sentences, length), dtype=np.int32)
        ids = np.where(np.arange(length)[None, :] < lengths[:, None] - 1, words, PAD_ID).astype(np.int32)
        ids[np.arange(num_sentences), lengths - 1] = EOS_ID
        return ids

    source, target_out = sentences(), sentences()
    target_in = np.concatenate([np.full((num_sentences, 1), BOS_ID, np.int32), target_out[:, :-1]], axis=1)
    target_in[target_in == EOS_ID] = PAD_ID
    return {"source": source, "target_in": target_in, "target_out": target_out}


def tokens_summary(epoch_seconds: list[float], tokens_per_epoch: int) -> dict:
    """common.summarize in target tokens, plus the fastest timed epoch (on a shared machine
    other jobs only ever add time, so the best epoch is the steadier estimate)."""
    summary = summarize(epoch_seconds, tokens_per_epoch)
    return {"first_epoch_s": summary["first_epoch_s"], "epoch_s": summary["epoch_s"],
            "tokens_per_s": summary["images_per_s"],
            "best_epoch_tokens_per_s": tokens_per_epoch / min(epoch_seconds[1:])}


def time_batches(decode, sources: np.ndarray, batch_size: int, expected_length: int) -> dict:
    """One untimed warm-up call, then sentences/s over all of `sources` in `batch_size` chunks;
    `decode` returns the best hypotheses' lengths, checked against `expected_length`."""
    start = time.perf_counter()
    decode(sources[:batch_size])
    warm_up = time.perf_counter() - start
    start = time.perf_counter()
    lengths = [decode(sources[i:i + batch_size]) for i in range(0, len(sources), batch_size)]
    seconds = time.perf_counter() - start
    lengths = np.concatenate(lengths)
    return {"sentences_per_s": len(sources) / seconds, "seconds": seconds, "warm_up_s": warm_up,
            "mean_length": float(lengths.mean()), "all_lengths_forced": bool((lengths == expected_length).all())}


def run_ours(data: dict[str, np.ndarray], args: argparse.Namespace) -> dict:
    import keras
    from keras import ops

    from tasks.seq2seq.config import multi30k_transformer
    from tasks.seq2seq.search import Translator
    from tasks.seq2seq.training import build, compile_model

    config = multi30k_transformer()
    for key, value in SIZES[args.size].items():
        setattr(config.model, key, value)
    config.train.batch_size, config.train.epochs, config.train.precision = args.batch_size, args.epochs, args.precision
    steps = len(data["source"]) // args.batch_size
    model = build(config, VOCAB_SIZE, VOCAB_SIZE)
    compile_model(model, config, steps)
    timer = epoch_timer()

    model.fit({"source": data["source"], "target_in": data["target_in"]}, data["target_out"],
              batch_size=args.batch_size, epochs=args.epochs, shuffle=False, verbose=0, callbacks=[timer])
    tokens = int(np.count_nonzero(data["target_out"]))
    train = {**tokens_summary(timer.seconds, tokens), "final_loss": timer.losses[-1], "jit_compile": model.jit_compile}

    class FixedLength(keras.layers.Layer):
        """Benchmark only: the model's decoding with eos impossible before step `length - 1`
        and certain at it, so every hypothesis has exactly `length` tokens."""

        def __init__(self, inner, length: int, **kwargs):
            super().__init__(**kwargs)
            self.inner, self.length = inner, length
            self.eos = np.eye(VOCAB_SIZE, dtype=np.float32)[EOS_ID]

        def start_decoding(self, source, max_length):
            return self.inner.start_decoding(source, max_length)

        def decode_step(self, context, tokens, state, step):
            logits, state = self.inner.decode_step(context, tokens, state, step)
            push = ops.where(ops.equal(step, self.length - 1), 1e9, -1e9)
            return logits + push * ops.convert_to_tensor(self.eos), state

    translator = Translator(FixedLength(model, args.decode_length), MAX_DECODE_LENGTH, BEAM_SIZE, LENGTH_PENALTY)
    decode = time_batches(lambda source: np.asarray(translator.predict_on_batch(source)["lengths"]),
                          data["decode_source"], args.decode_batch_size, args.decode_length)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return {"train": train, "beam4": decode, "trainable_params": trainable}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    backend = runtime.select_backend(args.backend)
    import keras  # noqa: F401  (after select_backend)

    on_gpu = common_on_gpu()
    args.size = args.size or ("reference" if on_gpu else "small")
    args.sentences = args.sentences or (29_000 if on_gpu else 512)
    args.batch_size = args.batch_size or (128 if on_gpu else 64)
    args.epochs = args.epochs or (4 if on_gpu else 3)
    args.decode_sentences = args.decode_sentences or (2048 if on_gpu else 32)
    args.decode_batch_size = min(args.decode_batch_size or (128 if on_gpu else 16), args.decode_sentences)
    args.decode_sentences -= args.decode_sentences % args.decode_batch_size  # whole calls: one compiled shape
    policy = runtime.set_precision(args.precision)
    environment = runtime.environment()
    device = "gpu" if on_gpu else "cpu"
    used = (args.sentences // args.batch_size) * args.batch_size  # whole batches only: one compiled shape
    if used == 0:
        raise ValueError(f"--sentences must be >= --batch-size. Received: {args.sentences} < {args.batch_size}")
    data = {key: value[:used] for key, value in synthetic_data(args.sentences).items()}
    data["decode_source"] = synthetic_data(args.decode_sentences, seed=1)["source"]
    shape = SIZES[args.size]
    print(f"Transformer {args.size} (d{shape['model_dim']}, {shape['num_heads']} heads, ff {shape['ff_dim']}, "
          f"{shape['encoder_layers']}+{shape['decoder_layers']} layers, shared 8k vocabulary), {used} sentences, "
          f"batch {args.batch_size}, {args.epochs} epochs (1 warm-up), {backend} on {device}, {policy}", flush=True)

    ours = run_ours(data, args)
    from benchmarks.seq2seq_peer import run_peer

    peer = run_peer_if_available(args, lambda: run_peer(data, args, bf16=policy == "mixed_bfloat16"),
                                 ours["trainable_params"], tolerance=0.0)

    keras_name = f"Keras {environment['versions']['keras']} {backend}"
    peer_name = f"PyTorch {peer['version']} ({peer['threads']} threads)" if peer else ""
    tokens = int(np.count_nonzero(data["target_out"]))
    print(f"\nTRAINING ({device}, batch {args.batch_size}, {tokens:,} target tokens per epoch, {policy})")
    print(f"{'stack':<60} {'tokens/s':>9} {'best epoch':>10} {'1st epoch s':>11} {'last loss':>9}")
    rows = [(f"{keras_name} fit() (jit_compile={ours['train']['jit_compile']})", ours["train"])]
    rows += [(f"{peer_name} {'torch.compile' if args.torch_compile else 'eager'}", peer["train"])] if peer else []
    for name, result in rows:
        print(f"{name:<60} {result['tokens_per_s']:>9,.0f} {result['best_epoch_tokens_per_s']:>10,.0f} "
              f"{result['first_epoch_s']:>11.1f} "
              f"{result['final_loss']:>9.3f}")
    print(f"\nDECODING, beam {BEAM_SIZE} ({args.decode_sentences} sentences, {args.decode_batch_size} per call, "
          f"every hypothesis {args.decode_length} tokens)")
    print(f"{'stack':<60} {'sent/s':>9} {'warm-up s':>11}")
    rows = [(f"{keras_name} Translator, KV cache, compiled loop", ours["beam4"])]
    rows += [(f"{peer_name} eager, NO KV cache", peer["beam4"])] if peer else []
    for name, result in rows:
        print(f"{name:<60} {result['sentences_per_s']:>9.1f} {result['warm_up_s']:>11.1f}")
    print(f"\nparameters (trainable): ours {ours['trainable_params']:,}"
          + (f", peer {peer['trainable_params']:,} (match)" if peer else ""))
    ratios = None
    if peer:
        ratios = {"train_tokens_per_s": ours["train"]["tokens_per_s"] / peer["train"]["tokens_per_s"],
                  "train_best_epoch": (ours["train"]["best_epoch_tokens_per_s"]
                                       / peer["train"]["best_epoch_tokens_per_s"]),
                  "beam4_sentences_per_s": ours["beam4"]["sentences_per_s"] / peer["beam4"]["sentences_per_s"]}
        print("ratio ours/peer (speed, > 1 = ours faster): "
              + ", ".join(f"{name} {value:.2f}x" for name, value in ratios.items()))
    goals = None
    if on_gpu and args.size == "reference":
        measured = {"train_tokens_per_s": ours["train"]["tokens_per_s"],
                    "beam4_sentences_per_s": ours["beam4"]["sentences_per_s"]}
        goals = {name: {"measured": measured[name], "goal": goal, "met": measured[name] >= goal}
                 for name, goal in GOALS.items()}
        print("goals (issue's PyTorch reference: 41k tokens/s, 73 sentences/s): "
              + ", ".join(f"{name} {g['measured']:,.0f} vs >= {g['goal']:,} {'MET' if g['met'] else 'NOT met'}"
                          for name, g in goals.items()))

    return finish(args, {"environment": environment, "settings": vars(args), "precision": policy,
                         "ours": ours, "peer": peer, "ratios_ours_over_peer": ratios, "goals": goals})


if __name__ == "__main__":
    main()
