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
    # on shared cores, whose speed moves minute to minute: 3 rounds of ours then gensim, the
    # median round's time and the ratio of each round's adjacent runs
    .venv/bin/python benchmarks/embeddings.py --preset nltk-sg --repeat 3
    # the original word2vec C tool too (built once from the PyPI sdist word2vec==0.11.1 with gcc),
    # here without ours (its figure is known and takes minutes):
    .venv/bin/python benchmarks/embeddings.py --preset nltk-sg --c-tool --no-ours

The C tools (benchmarks/c_tools.py says exactly how they are built and run, and what still
differs): `--c-tool` builds Mikolov's word2vec.c (shipped in the PyPI sdist word2vec==0.11.1)
into ~/.cache/kts/tools and trains it on the same corpus written one sentence per line, with
the preset's settings and --workers threads. Stanford's GloVe is not obtainable from the package
registries here (no Debian package; the PyPI packages clone it from GitHub at install time or
re-implement it): build it from its source (stanfordnlp/GloVe on GitHub, `make`) and pass
`--glove-tool GloVe/build` (with `--preset nltk-glove`) to run vocab_count, cooccur, shuffle
and glove on the same corpus file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="nltk-sg", help="an embeddings preset (nltk-sg, nltk-cbow, demo, ...)")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--workers", type=int, default=2,
                        help="gensim worker threads and the C tools' threads (default 2)")
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--no-peer", action="store_true", help="skip gensim")
    parser.add_argument("--no-ours", action="store_true", help="skip ours (the peers only)")
    parser.add_argument("--c-tool", action="store_true",
                        help="also train the original word2vec C tool (built once with gcc from the PyPI sdist "
                             "word2vec==0.11.1; --workers threads)")
    parser.add_argument("--tools-dir", type=Path, help="where the C tools are built (default ~/.cache/kts/tools)")
    parser.add_argument("--word2vec-source", type=Path,
                        help="word2vec.c or the word2vec-0.11.1.tar.gz sdist (default: downloaded with pip)")
    parser.add_argument("--glove-tool", type=Path, metavar="DIR",
                        help="a built Stanford GloVe (its build/ folder: vocab_count, cooccur, shuffle, glove); "
                             "no package registry here ships it: build it from its source")
    parser.add_argument("--variant", nargs="+", action="append", default=[], metavar=("LABEL", "KEY=VALUE"),
                        help="also train ours as LABEL with these --set overrides (repeatable)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="N rounds of ours (and variants) then gensim, alternating; time = the median "
                             "round's, scores from the first round, the speed ratio of every round listed")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    return args


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


def run_c_tools(args, config, corpus, data_root, words: int) -> dict:
    """The word2vec C tool (--c-tool) and Stanford GloVe (--glove-tool) on the same corpus,
    written once to a temporary file; a tool that cannot be had is skipped with its reason."""
    from benchmarks import c_tools

    results, skipped = {}, {}
    with tempfile.TemporaryDirectory(prefix="kts-emb-ctools-") as scratch:
        scratch = Path(scratch)
        corpus_file = scratch / "corpus.txt"
        written = c_tools.write_corpus(corpus.sentences(), corpus_file)
        results["c_corpus_file"] = written
        if args.c_tool and config.model.algorithm == "glove":
            skipped["word2vec C"] = "the word2vec C tool trains skipgram or cbow, not glove"
        elif args.c_tool:
            try:
                binary = c_tools.build_word2vec(args.tools_dir, args.word2vec_source)
            except c_tools.ToolUnavailable as error:
                skipped["word2vec C"] = str(error)
            else:
                vocab_file = c_tools.write_vocab(corpus.words, c_tools.corpus_counts(corpus), written["lines"],
                                                 scratch / "vocab.txt")
                peer = c_tools.run_word2vec(binary, corpus_file, vocab_file, config, args.workers, scratch)
                results["word2vec_c_peer"] = {
                    "seconds": peer["seconds"], "words_per_second": words / peer["seconds"], "vocab": peer["vocab"],
                    "threads": args.workers, "command": peer["command"],
                    "build": (binary.parent / "build.txt").read_text().strip(), **scores(peer["vectors"], data_root)}
        if args.glove_tool:
            try:
                peer = c_tools.run_glove(args.glove_tool, corpus_file, config, args.workers, scratch)
            except c_tools.ToolUnavailable as error:
                skipped["GloVe C"] = str(error)
            else:
                results["glove_c_peer"] = {
                    "seconds": peer["seconds"], "glove_seconds": peer["glove_seconds"],
                    "stage_seconds": peer["stage_seconds"], "words_per_second": words / peer["seconds"],
                    "vocab": peer["vocab"], "threads": args.workers, **scores(peer["vectors"], data_root)}
    for tool, reason in skipped.items():
        print(f"{tool} skipped: {reason}")
    if skipped:
        results["skipped"] = skipped
    return results


PEERS = {"gensim": "gensim", "word2vec_c_peer": "word2vec C", "glove_c_peer": "GloVe C"}


def alternate(args, config, sides, corpus, data_root) -> dict:
    """{side: [{"seconds", "words", "entry"}, ...]}: `args.repeat` rounds, each of ours (and
    the variants) then gensim, so that both meet the same minutes of a shared machine; the
    first round's vectors are scored (ours are the same every round: deterministic)."""
    rounds = {}
    for round_ in range(args.repeat):
        for label, settings in sides:
            with tempfile.TemporaryDirectory(prefix="kts-emb-bench-") as scratch:
                ours = run_ours(args, Path(scratch) / "ours", settings)
            entry = {"backend": ours["backend"], "settings": list(settings), "vocab": ours["vocab"]}
            if round_ == 0:
                entry.update(scores(ours["vectors"], data_root))
            rounds.setdefault(label, []).append({"seconds": ours["seconds"], "entry": entry,
                                                 "words": ours["training_words"] * config.train.epochs})
        if not args.no_peer:
            peer = run_gensim(config, corpus, args.workers)
            entry = {"vocab": peer["vocab"], **(scores(peer["vectors"], data_root) if round_ == 0 else {})}
            rounds.setdefault("gensim", []).append({"seconds": peer["seconds"], "entry": entry, "words": None})
    return rounds


def compare(results: dict, side: str, name: str, peer: str, peer_name: str) -> dict:
    ours_, peer_ = results[side], results[peer]
    return {f"speed ({name} / {peer_name})": ours_["words_per_second"] / peer_["words_per_second"],
            f"analogy points ({name} - {peer_name})": 100 * ((ours_["analogy"] or 0) - (peer_["analogy"] or 0)),
            f"wordsim353 ({name} - {peer_name})": (ours_["wordsim353"] or 0) - (peer_["wordsim353"] or 0),
            f"simlex999 ({name} - {peer_name})": (ours_["simlex999"] or 0) - (peer_["simlex999"] or 0)}


def _score(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"  # None: no pair in the vocabulary


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
               "date": time.strftime("%Y-%m-%d"), "hardware": hardware(), "load_average": os.getloadavg()}
    sides = [] if args.no_ours else [("ours", [])] + [(variant[0], variant[1:]) for variant in args.variant]
    corpus, words = None, None
    if not args.no_peer or args.c_tool or args.glove_tool:
        corpus, _ = data_lib.read_corpus(config, data_root)
        words = int(corpus.tokens.size) * config.train.epochs
    rounds = alternate(args, config, sides, corpus, data_root)
    for side, runs in rounds.items():
        words = words or runs[0]["words"]
        seconds = [run["seconds"] for run in runs]
        results[side] = {**runs[0]["entry"], "seconds": float(np.median(seconds)),
                         "words_per_second": words / float(np.median(seconds))}
        if len(runs) > 1:
            results[side]["round_seconds"] = seconds
    if "gensim" in rounds and len(rounds["gensim"]) > 1:
        results["round_speed_ratios"] = {
            f"{label} / gensim": [
                peer["seconds"] / run["seconds"] for run, peer in zip(rounds[label], rounds["gensim"])]
            for label, _ in sides}
    if args.c_tool or args.glove_tool:
        results.update(run_c_tools(args, config, corpus, data_root, words))
    results["load_average_after"] = os.getloadavg()
    peers = [key for key in PEERS if key in results]
    ratios = {}
    for label, _ in sides:
        for peer in peers:
            ratios.update(compare(results, label, label, peer, PEERS[peer]))
    if "gensim" in results:  # gensim against the C tools, the peers among themselves
        for peer in peers[1:]:
            ratios.update(compare(results, "gensim", "gensim", peer, PEERS[peer]))
    if ratios:
        results["ratios"] = ratios
    for side in [label for label, _ in sides] + peers:
        r = results[side]
        print(f"{PEERS.get(side, side):10s} {r['seconds']:8.1f} s  {r['words_per_second']:10,.0f} words/s  analogy "
              f"{(r['analogy'] or 0):.2%}  WordSim353 {_score(r['wordsim353'])}  SimLex-999 {_score(r['simlex999'])}  "
              f"vocab {r['vocab']:,}")
    for key, value in ratios.items():
        print(f"{key}: {value:.3f}")
    for key, values in results.get("round_speed_ratios", {}).items():
        print(f"speed ({key}) round by round: {', '.join(f'{v:.3f}' for v in values)}")
    print("load average (1, 5, 15 min) at the start {:.2f} {:.2f} {:.2f}, at the end {:.2f} {:.2f} {:.2f}".format(
        *results["load_average"], *results["load_average_after"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
