"""The report every task writes: `report.json`, one PNG per figure and one self-contained
`index.html`; plus a `reports_dir/index.html` listing each task's latest report.

    report = Report("classification", "MNIST digits, small CNN")
    report.add_metrics({"test_accuracy": 0.991, "params": 93_322})
    report.add_figure("curves", plots.training_curves(history.history), "loss and accuracy")
    report.write(run_dir / "report")
    update_index("reports", "classification", run_dir / "report", {"test_accuracy": 0.991})
    record_task_status("reports", "detection", "skipped", "missing data: bccd")

The index lists every task with its status (ok / failed / skipped) and, for the others, the
reason; its links are relative to the reports folder, so the folder can be moved or served.

`write()` renders everything in memory first, then writes each file atomically, figures
first and `report.json` last: a failure leaves the previous `report.json` untouched.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared import report_html as H
from shared.io import atomic_write_bytes, atomic_write_json, atomic_write_text, file_lock

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RESERVED = {"index", "report"}
_INDEX_CSS = (
    ".chip{display:inline-block;border:1px solid var(--border);border-radius:12px;padding:1px 9px;"
    "margin:2px 4px 2px 0;background:var(--soft);font-variant-numeric:tabular-nums}"
    ".chip .k{color:var(--muted)} table.index{width:100%}"
    ".status{font-weight:600} .st-ok .status{color:#1a7f37} .st-failed .status{color:#cf222e}"
    ".st-skipped .status{color:#9a6700}"
)


def _now() -> str:
    return dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds")


def _plain(value: Any) -> Any:
    """numpy scalars/arrays and other objects -> JSON-friendly Python values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "tolist"):  # numpy scalar or array, without importing numpy
        return _plain(value.tolist())
    return str(value)


class Report:
    """Collects metrics, tables, figures, texts, skipped samples and run info for one run."""

    def __init__(self, task: str, title: str) -> None:
        self.task = task
        self.title = title
        self.metrics: dict[str, Any] = {}
        self.tables: list[dict[str, Any]] = []
        self.figures: list[dict[str, Any]] = []  # {"name", "caption", "png"}
        self.texts: list[dict[str, str]] = []
        self.skipped: list[dict[str, Any]] = []
        self.config: dict[str, Any] = {}
        self.environment: dict[str, Any] = {}
        self.timings: dict[str, float] = {}

    def add_metrics(self, metrics: Mapping[str, float | int | str]) -> None:
        """Headline numbers, shown as cards in insertion order; later keys overwrite."""
        self.metrics.update(_plain(dict(metrics)))

    def add_table(self, title: str, columns: list[str], rows: list[list], note: str = "") -> None:
        rows = _plain(rows)
        bad = [i for i, row in enumerate(rows) if len(row) != len(columns)]
        if bad:
            raise ValueError(
                f"Every row needs one value per column ({len(columns)}). "
                f"Received: rows {bad[:5]} with lengths {[len(rows[i]) for i in bad[:5]]}"
            )
        self.tables.append({"title": title, "columns": list(map(str, columns)), "rows": rows, "note": note})

    def add_figure(self, name: str, png: bytes, caption: str = "") -> None:
        """`name` becomes the file name `<name>.png`: letters, digits, `_`, `-`, `.` only."""
        if not _NAME.match(name) or name in _RESERVED or name.endswith(".png"):
            raise ValueError(f"Figure names must be plain file stems (not index/report). Received: name={name!r}")
        if any(f["name"] == name for f in self.figures):
            raise ValueError(f"A figure with this name was already added. Received: name={name!r}")
        if not isinstance(png, bytes) or not png.startswith(PNG_SIGNATURE):
            raise ValueError(f"Figures must be PNG bytes (see shared.plots). Received: {type(png).__name__}")
        self.figures.append({"name": name, "caption": caption, "png": png})

    def add_text(self, title: str, text: str) -> None:
        self.texts.append({"title": title, "text": text})

    def add_skipped(self, items: list[dict]) -> None:
        """Samples or boxes skipped in the data, each with at least `path` and `reason`."""
        self.skipped.extend(_plain([dict(item) for item in items]))

    def set_run_info(self, config: dict, environment: dict, timings: dict[str, float]) -> None:
        self.config = _plain(config)
        self.environment = _plain(environment)
        self.timings = {str(k): float(v) for k, v in timings.items()}

    def to_json(self, created: str) -> dict[str, Any]:
        """The content of `report.json` (figures by file name; PNGs live next to it)."""
        return {
            "task": self.task,
            "title": self.title,
            "created": created,
            "metrics": self.metrics,
            "tables": self.tables,
            "figures": [{"name": f["name"], "file": f"{f['name']}.png", "caption": f["caption"]} for f in self.figures],
            "texts": self.texts,
            "skipped_count": len(self.skipped),
            "skipped": self.skipped,
            "config": self.config,
            "environment": self.environment,
            "timings": self.timings,
        }

    def to_html(self, created: str) -> str:
        """The self-contained `index.html` page."""
        sections: list[tuple[str, str, str]] = []  # (anchor, heading, html)
        if self.figures:
            figs = "".join(H.figure(f["png"], f["name"], f["caption"]) for f in self.figures)
            sections.append(("figures", "Figures", f'<div class="figures">{figs}</div>'))
        if self.tables:
            body = "".join(
                f"<h3>{H.esc(t['title'])}</h3>"
                + (f'<p class="note">{H.esc(t["note"])}</p>' if t["note"] else "")
                + H.table(t["columns"], t["rows"])
                for t in self.tables
            )
            sections.append(("tables", "Tables", body))
        if self.texts:
            body = "".join(f"<h3>{H.esc(t['title'])}</h3><pre>{H.esc(t['text'])}</pre>" for t in self.texts)
            sections.append(("notes", "Notes", body))
        sections.append(("skipped", f"Skipped samples ({len(self.skipped):,})", H.skipped_section(self.skipped)))
        sections.append(("run", "Run info", H.run_info_section(self.config, self.environment, self.timings)))
        nav = "".join(f'<a href="#{a}">{H.esc(h)}</a>' for a, h, _ in sections)
        body = (
            f'<header><div class="task">{H.esc(self.task)}</div><h1>{H.esc(self.title)}</h1>'
            f'<div class="meta">Created {H.esc(H.fmt_time(created))}</div><nav>{nav}</nav></header>'
            + (H.cards(self.metrics) if self.metrics else "")
            + "".join(f'<section id="{a}"><h2>{H.esc(h)}</h2>{s}</section>' for a, h, s in sections)
        )
        return H.page(f"{self.title} ({self.task})", body)

    def write(self, report_dir: str | os.PathLike) -> Path:
        """Writes report.json, <name>.png per figure and index.html; returns the index.html path."""
        report_dir = Path(report_dir)
        created = _now()
        payload = json.loads(json.dumps(self.to_json(created), default=str))  # fail before writing
        page = self.to_html(created)
        stale = _figure_files(report_dir) - {f"{f['name']}.png" for f in self.figures}
        for fig in self.figures:
            atomic_write_bytes(report_dir / f"{fig['name']}.png", fig["png"])
        index = atomic_write_text(report_dir / "index.html", page)
        atomic_write_json(report_dir / "report.json", payload)
        for name in stale:
            (report_dir / name).unlink(missing_ok=True)
        return index


def _figure_files(report_dir: Path) -> set[str]:
    """Figure files named by the report.json already in `report_dir` (none if absent)."""
    try:
        return {f["file"] for f in load_report(report_dir).get("figures", []) if "/" not in f["file"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def load_report(report_dir: str | os.PathLike) -> dict[str, Any]:
    """Reads `report_dir/report.json` back."""
    return json.loads((Path(report_dir) / "report.json").read_text(encoding="utf-8"))


def _locked(reports_dir: Path):
    """Serializes read-modify-write of index.json between processes."""
    return file_lock(reports_dir / ".index.lock")


STATUSES = ("ok", "failed", "skipped")


def _link(report: str, reports_dir: Path) -> str:
    """The report's index.html relative to reports_dir (older index.json files held absolute
    paths for reports outside it), so the folder can be moved or served."""
    if Path(report).is_absolute():
        report = os.path.relpath(report, reports_dir.resolve())
    return Path(report, "index.html").as_posix()


def _read_entries(reports_dir: Path) -> dict[str, dict[str, Any]]:
    index_json = reports_dir / "index.json"
    entries = json.loads(index_json.read_text(encoding="utf-8")) if index_json.exists() else {}
    if not isinstance(entries, dict):
        raise TypeError(f"{index_json} should hold an object keyed by task. Received: {type(entries).__name__}")
    return entries


def _write_entries(reports_dir: Path, entries: dict[str, dict[str, Any]]) -> Path:
    entries = dict(sorted(entries.items()))
    atomic_write_json(reports_dir / "index.json", entries)
    return atomic_write_text(reports_dir / "index.html", _index_html(entries, reports_dir))


def update_index(
    reports_dir: str | os.PathLike, task: str, report_dir: str | os.PathLike, headline: Mapping[str, Any]
) -> Path:
    """Records `task`'s latest report (status ok) in reports_dir/index.json, the report's path
    relative to reports_dir, and rewrites reports_dir/index.html."""
    reports_dir = Path(reports_dir)
    report_dir = Path(report_dir).resolve()
    with _locked(reports_dir):
        report = Path(os.path.relpath(report_dir, reports_dir.resolve())).as_posix()
        entries = _read_entries(reports_dir)
        try:
            title = load_report(report_dir).get("title", "")
        except (OSError, ValueError):
            title = ""
        entries[task] = {"status": "ok", "report": report, "title": title, "headline": _plain(dict(headline)),
                         "updated": _now()}
        return _write_entries(reports_dir, entries)


def record_task_status(reports_dir: str | os.PathLike, task: str, status: str, reason: str = "") -> Path:
    """Records that `task` failed or was skipped (and why) in reports_dir/index.json and
    rewrites index.html; an earlier report of the task stays linked as its last report."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}. Received: status={status!r}")
    reports_dir = Path(reports_dir)
    with _locked(reports_dir):
        entries = _read_entries(reports_dir)
        entry = dict(entries.get(task, {}))
        if status == "ok":
            entry.pop("reason", None)
        else:
            if entry.get("status", "ok") == "ok" and "report" in entry:
                entry["report_updated"] = entry.get("updated", "")
            entry["reason"] = reason
        entry.update(status=status, updated=_now())
        entries[task] = entry
        return _write_entries(reports_dir, entries)


def _index_row(task: str, entry: Mapping[str, Any], reports_dir: Path) -> str:
    status = entry.get("status", "ok")
    name = f"<b>{H.esc(task)}</b>"
    if status == "ok":
        cell = "".join(
            f'<span class="chip"><span class="k">{H.esc(k)}</span> {H.esc(H.fmt(v))}</span>'
            for k, v in entry.get("headline", {}).items()
        ) or "<span class=empty>none</span>"
        title = H.esc(entry.get("title", ""))
        if entry.get("report"):
            name = f'<a href="{H.esc(_link(entry["report"], reports_dir))}">{name}</a>'
        first = f'{name}<div class="note">{title}</div>'
    else:
        cell = H.esc(entry.get("reason", "")) or "<span class=empty>no reason recorded</span>"
        first = name
        if entry.get("report"):
            when = H.fmt_time(entry.get("report_updated", ""))
            first += (f'<div class="note"><a href="{H.esc(_link(entry["report"], reports_dir))}">last report</a>'
                      f"{' (' + H.esc(when) + ')' if when else ''}</div>")
    return (f'<tr class="st-{H.esc(status)}"><td>{first}</td><td><span class="status">{H.esc(status)}</span></td>'
            f'<td>{cell}</td><td class="note">{H.esc(H.fmt_time(entry.get("updated", "")))}</td></tr>')


def _index_html(entries: Mapping[str, Mapping[str, Any]], reports_dir: Path) -> str:
    rows = [_index_row(task, entry, reports_dir) for task, entry in entries.items()]
    counts = {s: sum(e.get("status", "ok") == s for e in entries.values()) for s in STATUSES}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    body = (
        '<header><div class="task">Keras Task Suite</div><h1>Reports</h1>'
        f'<div class="meta">{len(entries)} task(s): {H.esc(summary)}; updated {H.esc(H.fmt_time(_now()))}</div>'
        '</header><table class="index"><thead><tr><th>task</th><th>status</th><th>headline, or why not</th>'
        f"<th>updated</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return H.page("Keras Task Suite reports", body, extra_css=_INDEX_CSS)
