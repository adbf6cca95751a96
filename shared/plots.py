"""Report figures as PNG bytes: training curves, confusion matrix, image grid, bars, PR curves.

Pure numpy + matplotlib (Agg backend, no display needed). Every function returns the
encoded PNG and closes its figure, so it can be called in a loop without leaking memory.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

DPI = 100
_LR_KEYS = ("learning_rate", "lr")
_NOT_CURVES = ("epoch_seconds",)  # in the history for timings, not a training curve


def figure_png(fig: Figure) -> bytes:
    """Encodes `fig` as PNG and closes it."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _metric_families(history: dict[str, list[float]]) -> dict[str, list[str]]:
    """Groups history keys: `loss` with `val_loss`, `accuracy` with `val_accuracy`, ..."""
    families: dict[str, list[str]] = {}
    for key in history:
        if key in _NOT_CURVES:
            continue
        base = key.removeprefix("val_")
        families.setdefault(base, [])
        families[base].append(key)
    # Train series first, then validation; loss first, learning rate last.
    order = sorted(families, key=lambda k: (k != "loss", k in _LR_KEYS, list(history).index(families[k][0])))
    return {k: sorted(families[k], key=lambda name: name.startswith("val_")) for k in order}


def _plotted_families(history: dict[str, list[float]]) -> dict[str, list[str]]:
    """`_metric_families` without the series that hold no number (a CSV log writes "NA"
    for validation metrics a task does not compute): no empty legend entries."""
    def has_data(key):
        return bool(np.isfinite(np.asarray(history[key], dtype=float)).any())

    families = {k: [n for n in v if has_data(n)] for k, v in _metric_families(history).items()}
    return {k: v for k, v in families.items() if v}


def measured_epochs(series) -> tuple[np.ndarray, np.ndarray]:
    """(1-based epochs, values) of a per-epoch series without its NaN entries (the epochs a
    metric measured every N-th epoch skipped): joined by lines, not broken at every gap."""
    values = np.asarray(series, dtype=float)
    kept = np.isfinite(values)
    return np.arange(1, len(values) + 1)[kept], values[kept]


def training_curves(history: dict[str, list[float]]) -> bytes:
    """One panel per metric family (x = 1-based epoch); the learning rate on a log axis."""
    families = _plotted_families(history)
    if not families:
        raise ValueError(f"training_curves needs at least one non-empty series. Received: keys={list(history)}")
    ncols = min(3, len(families))
    nrows = math.ceil(len(families) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax, (family, keys) in zip(axes.flat, families.items(), strict=False):
        for key in keys:
            epochs, values = measured_epochs(history[key])
            style = "--" if key.startswith("val_") else "-"
            label = "validation" if key.startswith("val_") else "train"
            sparse = len(values) < len(history[key])  # measured every N-th epoch: show the points
            ax.plot(epochs, values, style, marker="o" if len(values) <= 30 or sparse else None, markersize=3,
                    label=label)
        if family in _LR_KEYS and np.all(np.asarray(history[keys[0]], dtype=float) > 0):
            ax.set_yscale("log")
        ax.set_title(family.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(families):]:
        ax.set_visible(False)
    fig.tight_layout()
    return figure_png(fig)


def confusion_matrix(cm: np.ndarray, class_names: Sequence[str], normalize: bool = True) -> bytes:
    """Rows = true class, columns = predicted. The numbers in the cells are always counts;
    with `normalize` the colours are each row's share (the row normalised to sum 1, i.e. the
    recall of the true class), else the counts themselves. The title says which.

    Cells are annotated only for <= 15 classes; with many classes every k-th tick is labelled.
    """
    cm = np.asarray(cm, dtype=float)
    n = cm.shape[0]
    if cm.shape != (n, n) or len(class_names) != n:
        raise ValueError(
            f"confusion_matrix needs a square matrix with one name per class. "
            f"Received: cm.shape={cm.shape}, len(class_names)={len(class_names)}"
        )
    counts = cm
    if normalize:
        row_sums = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, row_sums, out=np.zeros_like(cm), where=row_sums > 0)
    size = min(10.0, max(4.5, 0.3 * n + 3.0))
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    step = max(1, math.ceil(n / 40))
    ticks = np.arange(0, n, step)
    labels = [str(class_names[i]) for i in ticks]
    rotate = n > 6 or max(map(len, labels)) > 6
    ax.set_xticks(ticks, labels, rotation=90 if rotate else 0, fontsize=7 if n > 15 else 10)
    ax.set_yticks(ticks, labels, fontsize=7 if n > 15 else 10)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix: counts" + (", colour = share of the true class (row)"
                                               if normalize else ""), fontsize=10)
    if n <= 15:
        threshold = (cm.max() if cm.size else 0) / 2
        for i in range(n):
            for j in range(n):
                text = f"{int(counts[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > threshold else "black")
    fig.tight_layout()
    return figure_png(fig)


def image_grid(
    images: np.ndarray,
    captions: Sequence[str],
    ncols: int = 8,
    caption_colors: Sequence[str] | None = None,
    cell_inches: tuple[float, float] = (1.7, 2.0),
    interpolation: str = "nearest",
    legend: Sequence[tuple[str, str, str]] | None = None,
    caption_size: float = 8,
) -> bytes:
    """A grid of (N, H, W, C) uint8 images with one caption each; C=1 is shown grey.
    `cell_inches` (width, height) per image: the default suits thumbnails. `interpolation`
    is matplotlib's: "nearest" shows small images pixel by pixel; photos shrunk into a cell
    (detections with thin drawn boxes) read better "antialiased". `legend`: (label, colour,
    line style) entries drawn as one row above the grid (what drawn boxes mean)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or len(captions) != len(images):
        raise ValueError(
            f"image_grid needs (N, H, W, C) images and one caption per image. "
            f"Received: images.shape={images.shape}, len(captions)={len(captions)}"
        )
    n = max(1, len(images))
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell_inches[0] * ncols, cell_inches[1] * nrows),
                             squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= len(images):
            continue
        image = images[index]
        if image.shape[-1] == 1:
            ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.imshow(image[..., :3], interpolation=interpolation)
        color = caption_colors[index] if caption_colors is not None else "black"
        ax.set_title(str(captions[index]), fontsize=caption_size, color=color)
    fig.tight_layout(pad=0.4)
    if legend:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=color, linestyle=style, linewidth=2.5, label=label)
                   for label, color, style in legend]
        fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                   ncol=min(len(handles), 4), fontsize=caption_size, frameon=False)
    return figure_png(fig)


def bar_chart(values: dict[str, float], title: str, ylabel: str) -> bytes:
    """Vertical bars in the given order (e.g. per-class F1); values shown above bars when few."""
    names = [str(k) for k in values]
    heights = np.asarray(list(values.values()), dtype=float)
    width = min(11.0, max(5.0, 0.3 * len(names) + 2.0))
    fig, ax = plt.subplots(figsize=(width, 3.8))
    bars = ax.bar(np.arange(len(names)), heights, color="#4c78a8")
    ax.set_xticks(np.arange(len(names)), names, rotation=90 if len(names) > 8 else 0, fontsize=8)
    if len(names) <= 20:
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.margins(y=0.12)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return figure_png(fig)


def pr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Precision-recall curve per class: `curves[name] = (recall, precision)`."""
    fig, ax = plt.subplots(figsize=(6.0, 5.0))
    for name, (recall, precision) in curves.items():
        ax.plot(np.asarray(recall, dtype=float), np.asarray(precision, dtype=float), label=str(name), linewidth=1.3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("precision-recall")
    ax.grid(alpha=0.3)
    if 0 < len(curves) <= 20:
        ax.legend(fontsize=7, loc="lower left", ncol=2 if len(curves) > 10 else 1)
    fig.tight_layout()
    return figure_png(fig)
