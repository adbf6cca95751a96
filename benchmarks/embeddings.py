"""word2vec: ours (`kts embeddings`, fit() with sparse row updates) against gensim's Word2Vec,
the same hyper-parameters on the same corpus, in one script.

The corpus is read once with the task's own reader (the preset's NLTK corpora, lower-cased,
punctuation tokens dropped, sentences split at . ! ?, min_count 5); gensim gets exactly
those sentences (as word lists) and builds its own vocabulary with the same min_count.
Both are scored by the same code (`tasks.embeddings.scores`: 3CosAdd analogies over the
30k most frequent words, Spearman on WordSim353 and SimLex-999). Time = training only
(gensim's `train()`; our epochs' wall time); words/s = in-vocabulary corpus words x epochs
/ time.

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/embeddings.py                 # nltk-sg
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/embeddings.py --preset nltk-cbow
    .venv/bin/python benchmarks/embeddings.py --preset demo --epochs 1 --json emb.json  # quick
    # ours with other settings too, in the same run (e.g. the settings before a change):
    .venv/bin/python benchmarks/embeddings.py --preset demo --epochs 3 \
        --variant before train.jit_compile=auto model.steps_per_execution=1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="nltk-sg", help="an embeddings preset (nltk-sg, nltk-cbow, demo, ...)")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--workers", type=int, default=2, help="gensim worker threads (default 2)")
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--no-peer", action="store_true", help="skip gensim")
    parser.add_argument("--variant", nargs="+", action="append", default=[], metavar=("LABEL", "KEY=VALUE"),
                        help="also train ours as LABEL with these --set overrides (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return parser.parse_args(argv)


def scores(vectors, data_root) -> dict:
    from tasks.embeddings.scores import EVAL_FILES, analogy_accuracy, eval_file, similarity_correlation

    analogy = analogy_accuracy(vectors, eval_file(EVAL_FILES["analogy"], data_root))
    return {"analogy": analogy["accuracy"], "analogy_answered": analogy["answered"],
            "wordsim353": similarity_correlation(vectors, eval_file(EVAL_FILES["wordsim353"], data_root))["spearman"],
            "simlex999": similarity_correlation(vectors, eval_file(EVAL_FILES["simlex999"], data_root))["spearman"]}


def run_gensim(config, corpus, workers: int) -> dict:
    from gensim.models import Word2Vec

    from tasks.embeddings.vectors import WordVectors

    sentences = list(corpus.sentences())
    skip_gram = int(config.model.algorithm == "skipgram")
    model = Word2Vec(vector_size=config.model.dim, window=config.model.window, negative=config.model.negative,
                     sample=config.model.sample, min_count=config.data.min_count, sg=skip_gram,
                     alpha=config.model.alpha, min_alpha=config.model.min_alpha, workers=workers, seed=config.seed)
    model.build_vocab(sentences)
    started = time.perf_counter()
    model.train(sentences, total_examples=len(sentences), epochs=config.train.epochs)
    seconds = time.perf_counter() - started
    vectors = WordVectors(list(model.wv.index_to_key), model.wv.vectors)
    return {"seconds": seconds, "vocab": len(vectors), "vectors": vectors}


def run_ours(args, workdir: Path, settings: list[str] = ()) -> dict:
    from shared.testing import run_cli
    from tasks.embeddings.training import load_vectors

    overrides = ["--set", f"train.epochs={args.epochs}"] if args.epochs else []
    for setting in settings:
        overrides += ["--set", setting]
    data = ["--data-root", str(args.data_root)] if args.data_root else []
    assert run_cli("embeddings", "train", workdir, "--preset", args.preset, *overrides, *data) == 0
    training = json.loads((workdir / "training.json").read_text())
    from shared.cli import build_run, load_task, task_parser

    task = load_task("embeddings")
    run = build_run(task, task_parser("embeddings").parse_args(["evaluate", "--workdir", str(workdir), *data]))
    return {"seconds": sum(training["epoch_seconds"]), "vocab": training["corpus"]["vocab_size"],
            "training_words": training["corpus"]["training_words"], "vectors": load_vectors(run),
            "backend": training["backend"]}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from shared import runtime

    runtime.select_backend(None)
    from shared import config as config_lib
    from tasks.embeddings import data as data_lib
    from tasks.embeddings.config import PRESETS

    config = config_lib.apply_overrides(PRESETS[args.preset](), [f"train.epochs={args.epochs}"] if args.epochs else [])
    data_root = runtime.resolve_data_root(args.data_root)
    from benchmarks.common import hardware

    results = {"preset": args.preset, "epochs": config.train.epochs, "gensim_workers": args.workers,
               "date": time.strftime("%Y-%m-%d"), "hardware": hardware()}
    sides = [("ours", [])] + [(variant[0], variant[1:]) for variant in args.variant]
    words = None
    for label, settings in sides:
        with tempfile.TemporaryDirectory(prefix="kts-emb-bench-") as scratch:
            ours = run_ours(args, Path(scratch) / "ours", settings)
        words = ours["training_words"] * config.train.epochs
        results[label] = {"backend": ours["backend"], "settings": list(settings), "seconds": ours["seconds"],
                          "words_per_second": words / ours["seconds"], "vocab": ours["vocab"],
                          **scores(ours["vectors"], data_root)}
    if not args.no_peer:
        corpus, _ = data_lib.read_corpus(config, data_root)
        peer = run_gensim(config, corpus, args.workers)
        results["gensim"] = {"seconds": peer["seconds"], "words_per_second": words / peer["seconds"],
                             "vocab": peer["vocab"], **scores(peer["vectors"], data_root)}
        results["ratios"] = {}
        for label, _ in sides:
            ours_, peer_ = results[label], results["gensim"]
            results["ratios"].update({
                f"speed ({label} / gensim)": ours_["words_per_second"] / peer_["words_per_second"],
                f"analogy points ({label} - gensim)": 100 * ((ours_["analogy"] or 0) - (peer_["analogy"] or 0)),
                f"wordsim353 ({label} - gensim)": (ours_["wordsim353"] or 0) - (peer_["wordsim353"] or 0),
                f"simlex999 ({label} - gensim)": (ours_["simlex999"] or 0) - (peer_["simlex999"] or 0)})
    for side in [label for label, _ in sides] + ["gensim"]:
        if side in results:
            r = results[side]
            print(f"{side:8s} {r['seconds']:8.1f} s  {r['words_per_second']:10,.0f} words/s  analogy "
                  f"{(r['analogy'] or 0):.2%}  WordSim353 {r['wordsim353']:.3f}  SimLex-999 {r['simlex999']:.3f}  "
                  f"vocab {r['vocab']:,}")
    for key, value in results.get("ratios", {}).items():
        print(f"{key}: {value:.3f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
