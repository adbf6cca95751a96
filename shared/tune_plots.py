"""The study report's figures, as PNG bytes (matplotlib, Agg): optimisation history, parallel
coordinates, intermediate values (pruned vs complete), wall time per trial. Each takes plain
rows ({number, state, value, params, curve, seconds}) so it is tested without Optuna."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.ticker import MaxNLocator

from shared.plots import figure_png, plt

COLOURS = {"COMPLETE": "#4c78a8", "PRUNED": "#f58518", "FAIL": "#e45756", "RUNNING": "#9d9d9d"}


def _finish(fig, ax, xlabel: str, metric: str, title: str) -> bytes:
    """Labels, a legend with one entry per label (repeated scatter labels collapse), PNG."""
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    if unique:
        ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trials and epochs are whole numbers
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return figure_png(fig)


def history(rows: list[dict], metric: str, maximize: bool) -> bytes:
    """Each complete trial's value by trial number, and the best so far."""
    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    done = [r for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
    if done:
        numbers = [r["number"] for r in done]
        values = [r["value"] for r in done]
        ax.scatter(numbers, values, color=COLOURS["COMPLETE"], s=22, label="complete trial", zorder=3)
        best = np.maximum.accumulate(values) if maximize else np.minimum.accumulate(values)
        ax.step(numbers, best, where="post", color="#54a24b", label="best so far")
    for r in rows:
        if r["state"] == "PRUNED" and r["curve"]:
            ax.scatter([r["number"]], [r["curve"][-1][1]], marker="x", color=COLOURS["PRUNED"], s=26,
                       label="pruned (last value)")
    return _finish(fig, ax, "trial", metric, "optimisation history")


def _axis_values(rows: list[dict], key: str) -> tuple[np.ndarray, list[str] | None, bool]:
    """A parameter's values mapped to [0, 1] (log scale when they span > 20x), and the tick
    labels for categorical ones."""
    raw = [r["params"].get(key) for r in rows]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
        values = np.asarray(raw, dtype=float)
        log = bool(values.min() > 0 and values.max() / values.min() > 20)
        scaled = np.log10(values) if log else values
        span = scaled.max() - scaled.min()
        return (scaled - scaled.min()) / (span if span else 1.0), None, log
    labels = sorted({str(v) for v in raw})
    index = {label: i for i, label in enumerate(labels)}
    return np.asarray([index[str(v)] / max(1, len(labels) - 1) for v in raw], dtype=float), labels, False


def parallel_coordinates(rows: list[dict], keys: list[str], metric: str, maximize: bool) -> bytes:
    """One line per complete trial through every parameter axis and the objective, coloured
    by the objective (darker is better)."""
    done = [r for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.8 * (len(keys) + 1)), 4.0))
    if done:
        axes = [_axis_values(done, key) for key in keys]
        objective = np.asarray([r["value"] for r in done], dtype=float)
        span = objective.max() - objective.min()
        normalised = (objective - objective.min()) / (span if span else 1.0)
        colour = normalised if maximize else 1.0 - normalised
        columns = np.stack([a[0] for a in axes] + [normalised], axis=1)
        cmap = plt.get_cmap("viridis_r")
        for row, c in sorted(zip(columns, colour), key=lambda item: item[1]):
            ax.plot(range(len(keys) + 1), row, color=cmap(c), alpha=0.8, linewidth=1.2)
        for i, (_values, labels, log) in enumerate(axes):
            raw = [r["params"].get(keys[i]) for r in done]
            if labels is None:
                lo, hi = min(raw), max(raw)
                text = f"{lo:.3g}\n..\n{hi:.3g}" + ("\n(log)" if log else "")
            else:
                text = "\n".join(labels[:6])
            ax.text(i, -0.08, text, ha="center", va="top", fontsize=7)
        ax.text(len(keys), -0.08, f"{objective.min():.4g}\n..\n{objective.max():.4g}", ha="center", va="top",
                fontsize=7)
    ax.set_xticks(range(len(keys) + 1), [*keys, metric], fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.45 if done else 0, 1.05)
    for i in range(len(keys) + 1):
        ax.axvline(i, color="#cccccc", linewidth=0.8, zorder=0)
    ax.set_title("parallel coordinates (complete trials; each axis min..max)")
    fig.tight_layout()
    return figure_png(fig)


def intermediate_values(rows: list[dict], metric: str) -> bytes:
    """The metric at every epoch of every trial: complete trials in blue, pruned in orange."""
    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    for r in rows:
        if not r["curve"]:
            continue
        steps, values = zip(*r["curve"])
        label = r["state"].lower()
        ax.plot(np.asarray(steps) + 1, values, color=COLOURS.get(r["state"], "#9d9d9d"), alpha=0.8,
                marker="o" if len(steps) < 15 else None, markersize=3, label=label)
    return _finish(fig, ax, "epoch", metric, "validation metric per epoch: complete vs pruned trials")


def wall_time(rows: list[dict]) -> bytes:
    fig, ax = plt.subplots(figsize=(7.0, 3.2))
    numbers = [r["number"] for r in rows]
    seconds = [r["seconds"] if r["seconds"] is not None and math.isfinite(r["seconds"]) else 0.0 for r in rows]
    ax.bar(numbers, seconds, color=[COLOURS.get(r["state"], "#9d9d9d") for r in rows])
    ax.set_xlabel("trial (colour: state)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("seconds")
    ax.set_title("wall time per trial")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return figure_png(fig)
