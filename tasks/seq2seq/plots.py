"""Seq2seq report figures: attention heat maps and a BLEU-by-setting bar chart (PNG bytes)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared.plots import figure_png, plt


def attention_maps(examples: Sequence[dict], max_tokens: int = 40) -> bytes:
    """One heat map per example: target tokens (rows) attending over source tokens (columns).

    `examples` items hold "source" and "target" token labels and "weights" (T, S)."""
    count = max(1, len(examples))
    columns = min(count, 2)  # two across keeps the token labels readable at page width
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.6 * columns, 5.0 * rows), squeeze=False)
    axes = axes.ravel()
    for axis, example in zip(axes, examples):
        weights = np.asarray(example["weights"], np.float32)[:max_tokens, :max_tokens]
        source, target = example["source"][: weights.shape[1]], example["target"][: weights.shape[0]]
        axis.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        axis.set_xticks(range(len(source)), [repr(s)[1:-1] for s in source], rotation=90, fontsize=8)
        axis.set_yticks(range(len(target)), [repr(t)[1:-1] for t in target], fontsize=8)
        axis.set_xlabel("source")
        axis.set_ylabel("output")
        axis.set_title(f"sentence {example['index']}", fontsize=10)
    for axis in axes[len(examples):]:
        axis.axis("off")
    fig.tight_layout()
    return figure_png(fig)


def settings_chart(settings: Sequence[dict]) -> bytes:
    """BLEU and chrF for greedy and each beam width."""
    names = [row["setting"] for row in settings]
    positions = np.arange(len(names))
    fig, axis = plt.subplots(figsize=(1.2 * len(names) + 3, 3.2))
    for offset, key, label in ((-0.2, "bleu", "BLEU"), (0.2, "chrf", "chrF")):
        bars = axis.bar(positions + offset, [row[key] for row in settings], 0.4, label=label)
        axis.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
    axis.set_xticks(positions, names)
    axis.set_ylabel("score")
    axis.set_ylim(0, 1.12 * max(max(row["bleu"], row["chrf"]) for row in settings) + 1e-9)
    axis.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    axis.grid(axis="y", alpha=0.3)
    return figure_png(fig)
