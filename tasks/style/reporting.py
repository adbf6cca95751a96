"""Report stage: a content / style / result grid (the Gatys result and the stylizer on the
content photos), every loss term over iterations (Gatys) and epochs (stylizer), the
feature mode (pretrained or random), speed, the settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from shared import config as config_lib
from shared.plots import figure_png
from shared.report import Report, update_index
from shared.runtime import environment
from shared.task import Run
from tasks.style.images import load_image
from tasks.style.training import gatys_dir, training_info

TERM_COLOURS = {"content": "tab:blue", "style": "tab:orange", "tv": "tab:green"}



def grid_figure(rows: list[list[tuple[str, np.ndarray]]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(3.2 * columns, 3.0 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(columns):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(row):
                title, image = row[c]
                ax.imshow(np.clip(image, 0, 255).astype(np.uint8))
                ax.set_title(title, fontsize=9)
    return figure_png(fig)


def terms_figure(series: dict[str, tuple[list, dict[str, list]]]) -> bytes:
    """{panel title: (x values, {term: values})}, log-scale y."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(series), figsize=(4.8 * len(series), 3.2), squeeze=False)
    for ax, (title, (xs, terms)) in zip(axes[0], series.items()):
        for name, values in terms.items():  # zeros (the content term of a content init) left out
            shown = [v if v > 0 else float("nan") for v in values]
            if any(v == v for v in shown):
                ax.plot(xs[: len(shown)], shown, "-o", markersize=2, label=name, color=TERM_COLOURS[name])
        ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("iteration" if "Gatys" in title else "epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return figure_png(fig)


def report(run: Run) -> Path:
    results = run.dir.evaluation_results()
    training = training_info(run)
    config = run.config
    mode = training.get("features", results.get("features", "unknown"))
    rep = Report("style", f"Style transfer ({'pretrained' if training.get('pretrained') else 'random'} features)")
    speed = results["images_per_second"]
    headline = {"features": "pretrained" if training.get("pretrained") else "random",
                **{f"images/s {size} px": value for size, value in speed.items()}}
    gatys_path = gatys_dir(run) / "result.json"
    gatys = json.loads(gatys_path.read_text()) if gatys_path.exists() else None
    if gatys:
        headline["Gatys iterations/s"] = round(gatys["iterations_per_second"], 3)
    val_loss = [v for v in training.get("history", {}).get("val_loss", []) if v == v]
    if val_loss:
        headline["stylizer val_loss (held-out photo crops)"] = round(val_loss[-1], 5)
    rep.add_metrics(headline)
    rep.add_text("Features", mode + ("" if training.get("pretrained") else
                                     ". Random VGG19 features transfer colour and texture statistics; for the "
                                     "paper's look use --set model.weights=imagenet or a weights file."))
    rows = []
    folder = gatys_dir(run)
    if gatys:
        styles = [(f"style {i + 1}", load_image(folder / f"style_{i}.png")) for i in range(len(gatys["styles"]))]
        rows.append([("content", load_image(folder / "content.png")), *styles,
                     (f"Gatys, {gatys['optimizer']} x {gatys['iterations']}", load_image(folder / "result.png"))])
    held_out = set(results.get("validation_photos", []))
    for i in range(results["photos"]):
        label = f"photo {i + 1}" + (" (held out: val_loss)" if i in held_out else "")
        rows.append([(label, load_image(run.dir.evaluation / f"content_{i}.png")),
                     ("fast stylizer", load_image(run.dir.evaluation / f"stylized_{i}.png"))])
    rep.add_figure("grid", grid_figure(rows), "Top: the Gatys result (content, style image(s), result). Below: the "
                                              "fast stylizer on each content photo.")
    series = {}
    if gatys:
        history = gatys["history"]
        series["Gatys: weighted loss terms"] = ([h["iteration"] for h in history],
                                                {k: [h[k] for h in history] for k in ("content", "style", "tv")})
    fit_history = training.get("history", {})
    if fit_history.get("loss"):
        epochs = list(range(1, len(fit_history["loss"]) + 1))
        series["fast stylizer: mean weighted terms per epoch"] = (
            epochs, {k: fit_history.get(k, []) for k in ("content", "style", "tv")})
    if series:
        rep.add_figure("losses", terms_figure(series),
                       "Each weighted loss term (log scale): content (feature distance to the content), style "
                       "(Gram distance), total variation.")
    timing_rows = [[f"fast stylizer, {size}x{size}", f"{value:.2f} images/s"] for size, value in speed.items()]
    if gatys:
        timing_rows.insert(0, [f"Gatys, {gatys['size'][1]}x{gatys['size'][0]}, {gatys['optimizer']}",
                               f"{gatys['iterations_per_second']:.2f} iterations/s ({gatys['seconds']:.1f} s "
                               f"for {gatys['iterations']}, compile included)"])
    if training.get("images_per_second"):
        timing_rows.append(["fast stylizer training", f"{training['images_per_second'][-1]:.1f} crops/s "
                                                      f"({config.stylizer.crop_size} px, last epoch)"])
    rep.add_table("Speed", ["what", "speed"], timing_rows, note="batch 1, after a warm-up call")
    rep.add_table("Stylizer on the content photos", ["term", "mean"],
                  [[k, round(v, 5)] for k, v in results["mean_terms"].items()],
                  note=f"{results['photos']} photos, shorter side {results['side']} px"
                       + (f"; photo(s) {', '.join(str(i + 1) for i in sorted(held_out))} held out of the "
                          "stylizer's training (its val_loss crops)" if held_out else ""))
    rep.add_skipped(training.get("skipped", []))
    rep.set_run_info(config_lib.to_dict(config), environment(), run.dir.timings())
    index_html = rep.write(run.dir.report)
    update_index(run.reports_dir, "style", run.dir.report, headline)
    print(f"style report: {index_html} ({mode})")
    return index_html
