"""Collects the benchmarks' `--json` results into one table in docs/benchmarks.md.

    python benchmarks/collect.py benchmarks/results/*.json --doc docs/benchmarks.md

For each result file (named after its benchmark): our figures (throughputs: keys ending in
`_per_s` / `per_second`), the peer's (PyTorch twin, gensim) measured in the same script, the
ratios the script computed, backend, device, versions and date. The table replaces what lies
between the two marker lines in the document (added after its first paragraph when absent);
the rest of the document, the hand-written analysis, is left as it is. `make bench` and
`make bench-quick` run the benchmarks and then this.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

BEGIN = "<!-- make bench: generated table, begin (benchmarks/collect.py) -->"
END = "<!-- make bench: generated table, end -->"
PEER_KEYS = ("peer", "gensim", "torch")  # top-level keys (or key parts) holding the peer's figures


def _flatten(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: value}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _figures(flat: dict, side: str) -> dict[str, float]:
    """Throughput figures of one side: ours (no peer key in the path) or the peer's."""
    found = {}
    for key, value in flat.items():
        if not _is_number(value) or not (key.endswith("_per_s") or key.endswith("per_second")):
            continue
        parts = key.split(".")
        is_peer = any(any(name in part for name in PEER_KEYS) for part in parts)
        if "ratio" in key or (side == "peer") != is_peer:
            continue
        found[key] = float(value)
    return found


def summarize(name: str, report: dict) -> dict:
    """One benchmark's row: figures, peer figures, ratios and where/when it ran."""
    flat = _flatten(report)
    ratios = {key: float(value) for key, value in flat.items()
              if "ratio" in key and _is_number(value)}
    environment = report.get("environment") or {}
    hardware = report.get("hardware") or {}
    backend = (environment.get("backend") or report.get("backend")
               or next((v for k, v in flat.items() if k.endswith(".backend") and isinstance(v, str)), None))
    devices = environment.get("devices")
    device = hardware.get("gpu") or (", ".join(devices) if devices and devices != ["cpu"] else None) \
        or (f"{hardware['cpu']} ({hardware.get('cpu_cores')} cores)" if hardware.get("cpu") else None)
    versions = environment.get("versions") or {}
    return {"benchmark": name, "ours": _figures(flat, "ours"), "peer": _figures(flat, "peer"),
            "ratios": ratios, "backend": backend or "?", "device": device or "?",
            "versions": ", ".join(f"{k} {v}" for k, v in versions.items() if k in ("keras", "jax", "tensorflow",
                                                                                   "torch")) or "?",
            "date": report.get("date") or "?"}


def _cell(figures: dict[str, float]) -> str:
    return "<br>".join(f"{key} {value:,.3g}" if abs(value) < 100 else f"{key} {value:,.0f}"
                       for key, value in figures.items()) or "-"


def table(rows: list[dict]) -> str:
    lines = [BEGIN, "",
             f"Latest `make bench` results (collected {datetime.date.today().isoformat()}; ratios > 1 mean ours "
             "is faster, `... - gensim` rows are quality differences):", "",
             "| benchmark | ours | peer (same script) | ratio | backend | device | versions | date |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['benchmark']} | {_cell(row['ours'])} | {_cell(row['peer'])} | "
                     f"{_cell(row['ratios'])} | {row['backend']} | {row['device']} | {row['versions']} | "
                     f"{row['date']} |")
    lines += ["", END]
    return "\n".join(lines)


def update_document(document: str, generated: str) -> str:
    """`document` with the generated block replaced (or inserted after the first paragraph)."""
    if BEGIN in document and END in document:
        head, rest = document.split(BEGIN, 1)
        return head + generated + rest.split(END, 1)[1]
    paragraphs = document.split("\n\n")
    cut = 2 if len(paragraphs) > 2 else len(paragraphs)
    return "\n\n".join(paragraphs[:cut] + [generated] + paragraphs[cut:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="the benchmarks' --json files")
    parser.add_argument("--doc", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args(argv)
    rows = []
    for path in args.results:
        try:
            report = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            print(f"skipped {path}: {err}", file=sys.stderr)
            continue
        row = summarize(path.stem, report)
        if row["date"] == "?":  # a script that does not date its results: the file's date
            row["date"] = datetime.date.fromtimestamp(path.stat().st_mtime).isoformat() + " (file)"
        rows.append(row)
    if not rows:
        print("no benchmark results to collect", file=sys.stderr)
        return 1
    from shared.io import atomic_write_text

    document = args.doc.read_text() if args.doc.exists() else "# Benchmarks\n"
    atomic_write_text(args.doc, update_document(document, table(rows)))
    print(f"{args.doc}: {len(rows)} benchmarks ({', '.join(row['benchmark'] for row in rows)})")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
