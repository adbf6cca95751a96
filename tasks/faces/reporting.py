"""Report stage: verification and identification cards beside the eigenfaces and LBP baselines, the
ROC curve, same/different distance histograms, the hardest false accepts and rejects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from shared import config as config_lib
from shared import plots
from shared.report import Report, update_index
from shared.runtime import environment
from shared.task import Run
from shared.training import read_history


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def roc_plot(curves: dict[str, dict]) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for label, curve in curves.items():
        ax.plot(np.maximum(curve["fpr"], 1e-4), curve["tpr"], label=label)
    ax.set_xscale("log")
    ax.set_xlabel("false accept rate (different people accepted)")
    ax.set_ylabel("true accept rate")
    ax.set_title("ROC on the evaluation pairs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return plots.figure_png(fig)


def histogram_plot(distances, same, threshold: float) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    same = np.asarray(same, bool)
    bins = np.linspace(0, max(2.0, float(np.max(distances))), 50)
    ax.hist(distances[same], bins, alpha=0.6, label=f"same person ({same.sum()})")
    ax.hist(distances[~same], bins, alpha=0.6, label=f"different people ({(~same).sum()})")
    ax.axvline(threshold, color="black", linestyle="--", label=f"deployed threshold {threshold:.3f}")
    ax.set_xlabel("Euclidean distance between unit embeddings")
    ax.set_ylabel("pairs")
    ax.legend(fontsize=8)
    return plots.figure_png(fig)


def hardest_pairs(scores, images, threshold: float, count: int) -> tuple[np.ndarray, list[str], list[str]]:
    """The `count` closest different-person pairs and `count` farthest same-person pairs, each
    shown as its two images side by side."""
    same, distances = scores["same"].astype(bool), scores["distances"]
    different = np.flatnonzero(~same)[np.argsort(distances[~same])][:count]
    far_same = np.flatnonzero(same)[np.argsort(-distances[same])][:count]
    cells, captions, colours = [], [], []
    for kind, chosen in (("different", different), ("same", far_same)):
        for i in chosen:
            cells.append(np.concatenate([images[scores["first"][i]], images[scores["second"][i]]], axis=1))
            wrong = (distances[i] <= threshold) != (kind == "same")
            verdict = ("false accept" if kind == "different" else "false reject") if wrong else "correct"
            captions.append(f"{kind}, d={distances[i]:.3f}\n{verdict}")
            colours.append("#cf222e" if wrong else "black")
    return np.stack(cells), captions, colours


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def report(run: Run) -> Path:
    results = run.dir.evaluation_results()
    training = json.loads(run.dir.training_json.read_text()) if run.dir.training_json.exists() else {}
    config = run.config
    ours, pca = results["ours"], results["eigenfaces"]
    ident, threshold = ours["identification"], results["deployed_threshold"]
    rep = Report("faces", f"Face verification: {config.data.source}, {config.model.backbone}, {config.model.loss}")
    acc = ours["kfold_accuracy"]
    headline = {f"{results['folds']}-fold accuracy": f"{acc['mean']:.2%} +- {acc['std']:.2%}",
                "ROC AUC": round(ours["auc"], 4), "EER": _pct(ours["eer"]), "rank-1": _pct(ident["rank1"]),
                "eigenfaces accuracy": f"{pca['kfold_accuracy']['mean']:.2%} +- {pca['kfold_accuracy']['std']:.2%}"}
    lbp_cards = {}
    if results.get("lbp"):  # the strongest baseline: said beside ours (and on the index), not only in the table
        lbp_acc = results["lbp"]["kfold_accuracy"]
        headline["LBP baseline accuracy"] = f"{lbp_acc['mean']:.2%} +- {lbp_acc['std']:.2%}"
        lbp_cards = {"LBP baseline AUC": round(results["lbp"]["auc"], 4)}
    rep.add_metrics({**headline, "rank-5": _pct(ident.get("rank5")),
                     "open-set rejection": _pct(ident.get("open_set_rejection")),
                     "deployed threshold": round(threshold, 4), "eigenfaces AUC": round(pca["auc"], 4), **lbp_cards})
    if training.get("stopped_reason"):
        rep.add_text("Training stopped early", training["stopped_reason"])
    rows = []
    baselines = [(f"eigenfaces ({pca['components']} components, cosine)", pca)]
    lbp = results.get("lbp")  # runs evaluated before the LBP baseline have none
    if lbp:
        settings = lbp["settings"]
        radii = ", ".join(str(r) for r in settings.get("radii", [settings.get("radius")]))
        whitened = f", whitened on the training people ({settings['whitening']})" if "whitening" in settings else ""
        kind = (f"local ternary patterns (threshold {settings['threshold']:g} grey levels, "
                if settings.get("threshold") else "LBP histograms (")
        baselines.append((f"{kind}radius {radii}, {settings['cells']}x{settings['cells']} cells"
                          f"{whitened}, no network)", lbp))
    for name, scores in [("ours", ours)] + baselines:
        tar = scores["tar_at_far"]
        rows.append([name, f"{scores['kfold_accuracy']['mean']:.2%} +- {scores['kfold_accuracy']['std']:.2%}",
                     round(scores["auc"], 4), _pct(scores["eer"]), _pct(tar["0.01"]["tar"]),
                     _pct(tar["0.001"]["tar"]), _pct(scores["identification"]["rank1"]),
                     _pct(scores["identification"].get("rank5"))])
    notes = [n["note"] for n in ours["tar_at_far"].values() if n["note"]]
    rep.add_table("Verification and one-shot identification",
                  ["model", f"{results['folds']}-fold accuracy", "AUC", "EER", "TAR@FAR 1e-2", "TAR@FAR 1e-3",
                   "rank-1", "rank-5"], rows,
                  note=f"Pairs: {results['pairs_protocol']} ({ours['positives']} same, {ours['negatives']} different). "
                       "Fold accuracy uses the threshold chosen on the other folds. Identification: one gallery image "
                       f"per evaluation person ({ident['gallery']}), {ident['probes']} probes. " + " ".join(notes))
    threshold_info = training.get("threshold", {})
    rep.add_table("At the deployed threshold", ["what", "value"], [
        ["threshold (Euclidean distance)", round(threshold, 4)],
        ["chosen on", threshold_info.get("chosen_on", "validation pairs")],
        ["embedding whitened (model.whitening)", _whitening(threshold_info.get("whitening"))],
        ["accuracy on the evaluation pairs", _pct(ours.get("accuracy_at_deployed_threshold"))],
        ["false accept rate", _pct(ours.get("false_accept_rate_at_deployed"))],
        ["false reject rate", _pct(ours.get("false_reject_rate_at_deployed"))],
        ["open-set rejection (own person left out of the gallery)", _pct(ident.get("open_set_rejection"))],
        ["probes accepted and correctly named", _pct(ident.get("accepted_and_correct"))]])
    curves = {"ours": ours["curve"], "eigenfaces": pca["curve"], **({"LBP": lbp["curve"]} if lbp else {})}
    rep.add_figure("roc", roc_plot(curves),
                   "ROC curves on the same evaluation pairs, ours and the baselines without a network (log FAR "
                   "axis).")
    scores = np.load(run.dir.evaluation / "scores.npz")
    rep.add_figure("distances", histogram_plot(scores["distances"], scores["same"], threshold),
                   "Distances of same-person and different-person evaluation pairs, and the deployed threshold.")
    from tasks.faces import data as data_lib

    faces = data_lib.load_faces(config, run.data_root)
    cells, captions, colours = hardest_pairs(scores, faces.images, threshold, config.eval.hardest)
    rep.add_figure("hardest_pairs", plots.image_grid(cells, captions, ncols=4, caption_colors=colours,
                                                     cell_inches=(2.6, 1.8)),
                   "The closest different-person pairs and the farthest same-person pairs; red: wrong at the "
                   "deployed threshold.")
    history = read_history(run.dir.history_csv)
    if history:
        rep.add_figure("training_curves", plots.training_curves(history),
                       "Training loss per epoch; accuracy and AUC of the validation pairs (at their best threshold) "
                       "in the epochs they were measured (eval.epoch_every).")
    rep.add_table("Data", ["what", "value"], [[k, v] for k, v in results["data"].items()])
    rep.add_table("Per-fold accuracy", ["fold", "ours", "eigenfaces", "threshold (ours)"],
                  [[i + 1, f"{a:.2%}", f"{b:.2%}", t] for i, (a, b, t) in enumerate(
                      zip(acc["per_fold"], pca["kfold_accuracy"]["per_fold"], acc["thresholds"]))])
    rep.add_skipped(results.get("skipped", []))
    timings = {**run.dir.timings(), "embeddings per second (evaluation)": results["embeddings_per_second"]}
    rep.set_run_info(config_lib.to_dict(config), environment(), timings)
    index_html = rep.write(run.dir.report)
    update_index(run.reports_dir, "faces", run.dir.report, headline)
    print(f"faces report: {index_html}")
    return index_html


def _whitening(info: dict | None) -> str:
    if not info:
        return "no"
    def label(name: str) -> str:
        return "the network's embedding" if name == "network" else name.replace("lbp_r", "LBP histograms, radius ")

    parts = ", ".join(f"{label(name)} ({size:,} values)" for name, size in info.get("blocks", {}).items())
    return (f"shrinkage {info['shrinkage']}, fitted on {info['fitted_on_images']} training images "
            f"({'with their mirrors' if info['views'] == 2 else 'as they are'})" + (f": {parts}" if parts else ""))
