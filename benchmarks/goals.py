"""Checks the issues' performance goals against the benchmarks' `--json` results.

    python benchmarks/goals.py reports/bench/*.json [--json goals.json]

Each goal names its issue, the result file (by benchmark name), the figure (a dotted path in
that file), the bound and where it applies: `cpu` goals are checked on results measured
without a GPU, `gpu` goals (the H200 figures) only on results measured on one, `any` on both.
Results that do not bear on a goal (no such file, the other kind of device, a shape other
than the one the goal states, no peer run) show as "not measured" with the reason: a goal is
never reported met from the wrong run. `benchmarks/h200.sh` prints this table at its end;
`make bench` on a CPU machine prints the CPU goals.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Goal:
    issue: int
    what: str
    benchmark: str  # the result file's stem
    path: str  # dotted path of the figure in that file
    bound: str  # ">=" or "<="
    target: float
    where: str  # "cpu", "gpu" or "any"
    shape: dict = field(default_factory=dict)  # dotted path -> the value the goal assumes


GOALS = (
    Goal(22, "ResNet-18 fit(), images/s over PyTorch torch.compile", "classification", "ratio_ours_over_peer",
         ">=", 1.5, "gpu", {"settings.torch_compile": True}),
    Goal(22, "Transformer training, target tokens/s", "seq2seq", "ours.train.tokens_per_s", ">=", 82_000, "gpu",
         {"settings.size": "reference"}),
    Goal(22, "beam-4 decoding, sentences/s", "seq2seq", "ours.beam4.sentences_per_s", ">=", 700, "gpu",
         {"settings.size": "reference"}),
    Goal(22, "YOLOv8-n training images/s over the PyTorch twin", "detection",
         "ratios_ours_over_peer.train_stand_in", ">=", 1.0, "gpu"),
    Goal(19, "Gatys iterations/s over PyTorch (same machine)", "style", "gatys_ratio", ">=", 1.0, "any",
         {"size": 512, "iterations": 500}),
    Goal(19, "fast stylizer images/s over PyTorch (same machine)", "style", "stylizer_ratio", ">=", 1.0, "any",
         {"size": 512}),
    Goal(19, "Gatys 500 Adam iterations at 512 px, seconds", "style", "gatys_ours.seconds_for_n", "<=", 2.5,
         "gpu", {"size": 512, "iterations": 500}),
    Goal(19, "fast stylizer at 512 px, images/s", "style", "stylizer_ours.images_per_second", ">=", 200, "gpu",
         {"size": 512}),
    Goal(18, "word2vec words/s over gensim (same CPU)", "embeddings", "ratios.speed (ours / gensim)", ">=", 1.0,
         "cpu", {"preset": "nltk-sg"}),
    Goal(18, "word2vec words/s over gensim with 16 workers", "embeddings", "ratios.speed (ours / gensim)", ">=",
         5.0, "gpu", {"preset": "nltk-sg", "gensim_workers": 16}),
    Goal(18, "analogy accuracy points against gensim", "embeddings", "ratios.analogy points (ours - gensim)",
         ">=", -1.0, "any", {"preset": "nltk-sg"}),
    Goal(18, "WordSim353 Spearman against gensim", "embeddings", "ratios.wordsim353 (ours - gensim)", ">=",
         -0.02, "any", {"preset": "nltk-sg"}),
    Goal(18, "SimLex-999 Spearman against gensim", "embeddings", "ratios.simlex999 (ours - gensim)", ">=", -0.02,
         "any", {"preset": "nltk-sg"}),
    # GloVe: at least the C tool's quality in no more than 2x its time (`make bench GLOVE_TOOL=GloVe/build`)
    Goal(18, "GloVe speed over the C tool (same CPU; >= 0.5: <= 2x its time)", "embeddings_glove",
         "ratios.speed (ours / GloVe C)", ">=", 0.5, "cpu", {"preset": "nltk-glove"}),
    Goal(18, "GloVe analogy points against the C tool", "embeddings_glove", "ratios.analogy points (ours - GloVe C)",
         ">=", 0.0, "any", {"preset": "nltk-glove"}),
    Goal(18, "GloVe WordSim353 against the C tool", "embeddings_glove", "ratios.wordsim353 (ours - GloVe C)",
         ">=", 0.0, "any", {"preset": "nltk-glove"}),
    Goal(18, "GloVe SimLex-999 against the C tool", "embeddings_glove", "ratios.simlex999 (ours - GloVe C)",
         ">=", 0.0, "any", {"preset": "nltk-glove"}),
)


def lookup(report: dict, path: str):
    """The value at a dotted path; keys may themselves hold dots or spaces (tried longest first)."""
    if path in report:
        return report[path]
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:cut])
        if isinstance(report.get(head), dict):
            found = lookup(report[head], ".".join(parts[cut:]))
            if found is not None:
                return found
    return None


def on_gpu(report: dict) -> bool:
    hardware = report.get("hardware") or {}
    devices = (report.get("environment") or {}).get("devices") or []
    return bool(hardware.get("gpu")) or any("gpu" in str(d).lower() or "cuda" in str(d).lower() for d in devices)


def check(goal: Goal, results: dict[str, dict]) -> dict:
    row = {"issue": goal.issue, "goal": goal.what, "bound": f"{goal.bound} {goal.target:g}", "where": goal.where,
           "measured": None, "met": None, "note": ""}
    report = results.get(goal.benchmark)
    if report is None:
        row["note"] = f"no {goal.benchmark} result"
        return row
    gpu = on_gpu(report)
    if goal.where != "any" and (goal.where == "gpu") != gpu:
        row["note"] = f"a {goal.where.upper()} goal; this {goal.benchmark} result is from a {'GPU' if gpu else 'CPU'}"
        return row
    for path, expected in goal.shape.items():
        value = lookup(report, path)
        if value != expected:
            row["note"] = f"the goal is stated for {path}={expected}; this run has {value}"
            return row
    value = lookup(report, goal.path)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        row["note"] = f"{goal.path} not in the result (no peer run?)"
        return row
    row["measured"] = float(value)
    row["met"] = value >= goal.target if goal.bound == ">=" else value <= goal.target
    row["note"] = "GPU" if gpu else "CPU"
    return row


def table(rows: list[dict]) -> str:
    lines = ["| issue | goal | bound | measured | met | note |", "|---|---|---|---|---|---|"]
    for r in rows:
        measured = "-" if r["measured"] is None else f"{r['measured']:,.3g}" if abs(r["measured"]) < 1000 \
            else f"{r['measured']:,.0f}"
        met = "-" if r["met"] is None else ("yes" if r["met"] else "NO")
        lines.append(f"| {r['issue']} | {r['goal']} | {r['bound']} | {measured} | {met} | {r['note']} |")
    return "\n".join(lines)


def load(paths: list[Path]) -> dict[str, dict]:
    results = {}
    for path in paths:
        try:
            results[path.stem] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            print(f"skipped {path}: {err}", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="*", type=Path, help="the benchmarks' --json files")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    rows = [check(goal, load(args.results)) for goal in GOALS]
    print(table(rows))
    measured = [r for r in rows if r["met"] is not None]
    print(f"\n{sum(r['met'] for r in measured)} of {len(measured)} measured goals met; "
          f"{len(rows) - len(measured)} not measured by these results")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
