"""Report stage: analogy / WordSim353 / SimLex-999 cards, loss per epoch, words/s, neighbours,
a 2-D PCA plot of frequent words."""

from __future__ import annotations

import json
from pathlib import Path

from shared import config as config_lib
from shared.plots import figure_png
from shared.report import Report, update_index
from shared.runtime import environment
from shared.task import Run


def pca_plot(words: list[str], points: list[list[float]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 7))
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    ax.scatter(xs, ys, s=6, alpha=0.5)
    for word, x, y in zip(words, xs, ys):
        ax.annotate(word, (x, y), fontsize=7, alpha=0.8)
    ax.set_title(f"{len(words)} most frequent words, first two principal components")
    return figure_png(fig)


def loss_plot(loss: list[float], words_per_second: list[float], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    epochs = range(1, len(loss) + 1)
    axes[0].plot(epochs, loss, "-o", markersize=3)
    axes[0].set_title(title)
    axes[1].plot(range(1, len(words_per_second) + 1), words_per_second, "-o", markersize=3)
    axes[1].set_title("training words / s")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    return figure_png(fig)


def _value(value, percent=False):
    if value is None:
        return "n/a"
    return f"{value:.2%}" if percent else round(value, 4)


def report(run: Run) -> Path:
    results = run.dir.evaluation_results()
    training = json.loads(run.dir.training_json.read_text())
    config = run.config
    corpus = training["corpus"]
    m = config.model
    subword = f" + character {m.minn}-{m.maxn}-grams in {m.buckets:,} buckets" if m.subword else ""
    rep = Report("embeddings", f"Word embeddings: {m.algorithm}{subword}, dim {m.dim}, {corpus['source']}")
    analogy, similarity = results["analogy"], results["similarity"]
    headline = {"analogy": _value(analogy["accuracy"], True),
                "WordSim353": _value(similarity["wordsim353"]["spearman"]),
                "SimLex-999": _value(similarity["simlex999"]["spearman"]),
                "words/s": round(training["mean_words_per_second"] or 0)}
    rep.add_metrics({**headline, "vocabulary": results["vocab_size"], "training words": corpus["training_words"]})
    if training.get("stopped_reason"):
        rep.add_text("Training stopped early", training["stopped_reason"])
    if len(training["loss"]) == 1:  # one epoch: two numbers, not two one-dot plots
        seconds = training.get("epoch_seconds") or [None]
        rep.add_table("Training (one epoch)", ["what", "value"], [
            ["loss", _value(training["loss"][0])],
            ["seconds", _value(seconds[0])],
            ["words / s", round(training["words_per_second"][0]) if training["words_per_second"] else "n/a"]],
            note="The epoch's time includes the first steps' XLA compilations (one per batch shape).")
    elif training["loss"]:
        glove = config.model.algorithm == "glove"
        title = "GloVe weighted squared error" if glove else "negative-sampling loss per example"
        rep.add_figure("loss", loss_plot(training["loss"], training["words_per_second"], title),
                       ("Mean of 1/2 f(x) (w.w~ + b + b~ - log x)^2 per co-occurrence entry" if glove else
                        "Mean negative-sampling loss per training example (target and noise words)")
                       + ", and corpus words per second of training, per epoch.")
    halves = results.get("analogy_halves", {})
    rep.add_table("Analogies (3CosAdd)", ["part", "accuracy", "answered"],
                  [["all", _value(analogy["accuracy"], True), analogy["answered"]],
                   ["semantic", _value(analogy["semantic"], True), ""],
                   ["syntactic", _value(analogy["syntactic"], True), ""]]
                  + [[f"{name} half", _value(half["accuracy"], True), half["answered"]]
                     for name, half in halves.items()],
                  note=f"questions-words.txt over the {analogy['restrict_vocab']:,} most frequent words; "
                       f"{analogy['skipped']:,} questions skipped (a word outside them), "
                       f"{analogy['malformed_lines']} malformed lines. The halves: a fixed seeded half of "
                       "each section is the validation half (val_analogy, logged each epoch: what `kts "
                       "embeddings tune` selects on), the other the test half (never seen during a search); "
                       "'all' (comparable with gensim) includes the validation half.")
    rep.add_table("Word similarity (Spearman)", ["set", "rho", "pairs", "out-of-vocabulary pairs", "malformed"],
                  [[name, _value(s["spearman"]), s["pairs"], s["oov_pairs"], s["malformed_lines"]]
                   for name, s in similarity.items()])
    rep.add_table("Nearest neighbours (cosine)", ["word", "neighbours"],
                  [[word, ", ".join(f"{w} ({s:.2f})" for w, s in found)]
                   for word, found in results["neighbours"].items()],
                  note=("not in the vocabulary: " + ", ".join(results["neighbours_not_in_vocabulary"]))
                  if results["neighbours_not_in_vocabulary"] else "")
    sentiment = results.get("sentiment")
    if sentiment and "skipped" in sentiment:
        rep.add_text("Sentiment (movie_reviews)", "Skipped: " + sentiment["skipped"])
    elif sentiment:
        names = {"frozen": "our vectors, frozen", "fine-tuned": "our vectors, fine-tuned",
                 "random": "random initialisation, trained"}
        rep.add_table("Sentiment of movie_reviews (downstream)", ["embedding layer", "test accuracy",
                                                                  "train accuracy"],
                      [[names[k], _value(v, True), _value(sentiment["train_accuracy"][k], True)]
                       for k, v in sentiment["accuracy"].items()],
                      note=f"Mean of the word vectors of a review, dropout, one logistic unit; "
                           f"{sentiment['train_reviews']:,} training reviews (cv000-cv799), "
                           f"{sentiment['test_reviews']:,} test reviews (cv800-cv999), {sentiment['epochs']} "
                           f"epochs, the first {sentiment['max_length']} known words of each review; "
                           f"{sentiment['train_tokens_out_of_vocabulary']:,} training tokens outside the "
                           "vocabulary dropped.")
    if results["pca"]["words"]:
        rep.add_figure("pca", pca_plot(results["pca"]["words"], results["pca"]["points"]),
                       "The most frequent words projected on the first two principal components.")
    rep.add_table("Corpus", ["what", "value"], [[k, v] for k, v in corpus.items() if k != "non_utf8_line_numbers"])
    rep.add_skipped([{"path": config.data.path, "line": n, "reason": "not UTF-8 (bytes replaced by U+FFFD)"}
                     for n in corpus.get("non_utf8_line_numbers", [])])
    rep.set_run_info(config_lib.to_dict(config), environment(), run.dir.timings())
    index_html = rep.write(run.dir.report)
    update_index(run.reports_dir, "embeddings", run.dir.report, headline)
    print(f"embeddings report: {index_html}")
    return index_html
