"""Subword (fastText) vectors: ours (`kts embeddings`, model.subword=true) against gensim's
FastText, the same hyper-parameters on the same corpus, in one script.

The corpus is read once with the task's reader (the preset's NLTK corpora, lower-cased,
punctuation dropped, split at . ! ?, min_count); gensim gets exactly those sentences. Both
use n-grams of model.minn..model.maxn characters hashed into model.buckets rows (the same
hash: tests/test_embeddings_subword.py checks our ids against gensim's). Scores, by the same
code for both: 3CosAdd analogies over the 30k most frequent words, Spearman on WordSim353 and
SimLex-999 over the pairs in the vocabulary (as word2vec), and over every pair that gets a
vector from the vocabulary or its n-grams (`*_all`: the coverage subwords add; `*_pairs`
counts them). Time = training only; words/s = in-vocabulary corpus words x epochs / time.

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/embeddings_subword.py --preset demo
    .venv/bin/python benchmarks/embeddings_subword.py --preset nltk-sg --json subword.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="demo", help="an embeddings preset; model.subword=true is added")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--workers", type=int, default=2, help="gensim worker threads (default 2)")
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--no-peer", action="store_true", help="skip gensim")
    parser.add_argument("--no-ours", action="store_true", help="skip ours")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="more overrides for ours and (where they map) gensim, e.g. model.buckets=100000")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return parser.parse_args(argv)


def scores(vectors, vector, data_root) -> dict:
    """`vectors`: WordVectors of the vocabulary; `vector(word)`: any word's vector or None."""
    from tasks.embeddings.scores import EVAL_FILES, analogy_accuracy, eval_file, similarity_correlation
    from tasks.embeddings.subword import similarity_with_oov

    result = {"analogy": analogy_accuracy(vectors, eval_file(EVAL_FILES["analogy"], data_root))["accuracy"]}
    for name in ("wordsim353", "simlex999"):
        path = eval_file(EVAL_FILES[name], data_root)
        known = similarity_correlation(vectors, path)
        every = similarity_with_oov(vector, path)
        result.update({name: known["spearman"], f"{name}_pairs": known["pairs"],
                       f"{name}_all": every["spearman"], f"{name}_all_pairs": every["pairs"],
                       f"{name}_total_pairs": known["pairs"] + known["oov_pairs"]})
    return result


def run_gensim(config, corpus, workers: int) -> dict:
    from gensim.models import FastText

    from tasks.embeddings.vectors import WordVectors

    sentences = list(corpus.sentences())
    m = config.model
    model = FastText(vector_size=m.dim, window=m.window, negative=m.negative, sample=m.sample,
                     min_count=config.data.min_count, sg=int(m.algorithm == "skipgram"), alpha=m.alpha,
                     min_alpha=m.min_alpha, workers=workers, seed=config.seed, min_n=m.minn, max_n=m.maxn,
                     bucket=m.buckets)
    model.build_vocab(sentences)
    started = time.perf_counter()
    model.train(sentences, total_examples=len(sentences), epochs=config.train.epochs)
    seconds = time.perf_counter() - started
    vectors = WordVectors(list(model.wv.index_to_key), model.wv.vectors)

    def vector(word):  # gensim: the vocabulary's vector, else the mean of the word's n-gram rows
        try:
            return model.wv[word]
        except KeyError:
            return None

    return {"seconds": seconds, "vocab": len(vectors), "vectors": vectors, "vector": vector}


def run_ours(args, workdir: Path, settings: list[str]) -> dict:
    from shared.cli import build_run, load_task, task_parser
    from shared.testing import run_cli
    from tasks.embeddings.training import load_vectors

    overrides = [x for s in settings for x in ("--set", s)]
    data = ["--data-root", str(args.data_root)] if args.data_root else []
    assert run_cli("embeddings", "train", workdir, "--preset", args.preset, *overrides, *data) == 0
    training = json.loads((workdir / "training.json").read_text())
    run = build_run(load_task("embeddings"),
                    task_parser("embeddings").parse_args(["evaluate", "--workdir", str(workdir), *data]))
    vectors = load_vectors(run)
    return {"seconds": sum(training["epoch_seconds"]), "vocab": training["corpus"]["vocab_size"],
            "training_words": training["corpus"]["training_words"], "vectors": vectors,
            "vector": vectors.vector, "backend": training["backend"]}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from shared import config as config_lib
    from shared import runtime
    from tasks.embeddings import data as data_lib
    from tasks.embeddings.config import PRESETS

    settings = ["model.subword=true"] + ([f"train.epochs={args.epochs}"] if args.epochs else []) + args.settings
    config = config_lib.apply_overrides(PRESETS[args.preset](), settings)
    data_root = runtime.resolve_data_root(args.data_root)
    from benchmarks.common import hardware

    m = config.model
    results = {"preset": args.preset, "settings": settings, "epochs": config.train.epochs,
               "algorithm": m.algorithm, "minn": m.minn, "maxn": m.maxn, "buckets": m.buckets,
               "gensim_workers": args.workers, "date": time.strftime("%Y-%m-%d"), "hardware": hardware(),
               "load_average_before": os.getloadavg()}
    corpus, _ = data_lib.read_corpus(config, data_root)
    words = int(corpus.tokens.size) * config.train.epochs
    if not args.no_ours:
        with tempfile.TemporaryDirectory(prefix="kts-emb-subword-") as scratch:
            ours = run_ours(args, Path(scratch) / "ours", settings)
            results["ours"] = {"backend": ours["backend"], "seconds": ours["seconds"],
                               "words_per_second": words / ours["seconds"], "vocab": ours["vocab"],
                               **scores(ours["vectors"], ours["vector"], data_root)}
        results["load_average_after_ours"] = os.getloadavg()
    if not args.no_peer:
        peer = run_gensim(config, corpus, args.workers)
        results["gensim"] = {"seconds": peer["seconds"], "words_per_second": words / peer["seconds"],
                             "vocab": peer["vocab"], **scores(peer["vectors"], peer["vector"], data_root)}
        results["load_average_after_gensim"] = os.getloadavg()
    if "ours" in results and "gensim" in results:
        ours_, peer_ = results["ours"], results["gensim"]
        results["ratios"] = {"speed (ours / gensim)": ours_["words_per_second"] / peer_["words_per_second"],
                             "analogy points (ours - gensim)":
                                 100 * ((ours_["analogy"] or 0) - (peer_["analogy"] or 0))}
        for key in ("wordsim353", "simlex999", "wordsim353_all", "simlex999_all"):
            results["ratios"][f"{key} (ours - gensim)"] = (ours_[key] or 0) - (peer_[key] or 0)
    for side in ("ours", "gensim"):
        if side in results:
            r = results[side]
            print(f"{side:7s} {r['seconds']:8.1f} s  {r['words_per_second']:10,.0f} words/s  analogy "
                  f"{(r['analogy'] or 0):.2%}  WordSim353 {r['wordsim353'] or 0:.3f} ({r['wordsim353_pairs']} pairs), "
                  f"all {r['wordsim353_all'] or 0:.3f} ({r['wordsim353_all_pairs']}/{r['wordsim353_total_pairs']})  "
                  f"SimLex-999 {r['simlex999'] or 0:.3f} ({r['simlex999_pairs']}), all {r['simlex999_all'] or 0:.3f} "
                  f"({r['simlex999_all_pairs']}/{r['simlex999_total_pairs']})  vocab {r['vocab']:,}")
    for key, value in results.get("ratios", {}).items():
        print(f"{key}: {value:.3f}")
    print(f"load average: before {results['load_average_before']}, "
          f"after {results.get('load_average_after_gensim') or results.get('load_average_after_ours')}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
