"""HTML rendering for `shared.report`: self-contained pages, inline CSS, no JavaScript.

Every piece of user text goes through `esc` (html.escape); figures are embedded as base64
data URIs so a page keeps working when its folder is moved or mailed.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

MAX_SKIPPED_ROWS = 500

CSS = """
:root { --fg:#1f2328; --muted:#656d76; --border:#d0d7de; --soft:#f6f8fa; --accent:#0969da; }
* { box-sizing: border-box; }
body { margin:0; color:var(--fg); background:#fff; line-height:1.45;
  font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width:1100px; margin:0 auto; padding:28px 24px 56px; }
header { border-bottom:1px solid var(--border); padding-bottom:14px; margin-bottom:20px; }
.task { color:var(--muted); font-size:13px; text-transform:uppercase; letter-spacing:.06em; }
h1 { margin:4px 0 6px; font-size:26px; }
h2 { font-size:19px; margin:34px 0 12px; padding-bottom:6px; border-bottom:1px solid var(--border); }
h3 { font-size:15px; margin:20px 0 8px; }
.meta, .note, figcaption { color:var(--muted); font-size:13px; }
nav a { margin-right:14px; font-size:13px; }
a { color:var(--accent); text-decoration:none; } a:hover { text-decoration:underline; }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(150px, 1fr)); gap:12px; }
.card { border:1px solid var(--border); border-radius:8px; padding:12px 14px; background:var(--soft); }
.card .label { color:var(--muted); font-size:12px; overflow-wrap:anywhere; }
.card .value { font-size:22px; font-weight:600; margin-top:2px; overflow-wrap:anywhere; }
.figures { display:flex; flex-wrap:wrap; gap:18px; align-items:flex-start; }
figure { margin:0; border:1px solid var(--border); border-radius:8px; padding:10px; max-width:100%; }
figure img { display:block; max-width:100%; height:auto; }
figcaption { margin-top:6px; }
.scroll { overflow-x:auto; }
table { border-collapse:collapse; font-size:13px; margin:4px 0; }
th, td { border:1px solid var(--border); padding:5px 9px; text-align:left; vertical-align:top; }
th { background:var(--soft); font-weight:600; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
table.kv th { width:1%; white-space:nowrap; }
pre { background:var(--soft); border:1px solid var(--border); border-radius:6px; padding:10px 12px;
  white-space:pre-wrap; font-size:13px; margin:0; }
details { border:1px solid var(--border); border-radius:8px; padding:8px 12px; margin:8px 0; }
summary { cursor:pointer; font-weight:600; }
details[open] summary { margin-bottom:8px; }
.empty { color:var(--muted); font-style:italic; }
"""


def esc(value: Any) -> str:
    """Escapes any value as HTML text."""
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """Human-readable number: ints with separators; floats with 4 decimals below 10 (scores,
    losses), 2 from 10 to 10,000 (BLEU, milliseconds), else separators or scientific."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if value == 0 or 1e-3 <= magnitude < 10:
        return f"{value:.4f}"
    if 10 <= magnitude < 1e4:
        return f"{value:.2f}"
    if magnitude < 1e-3 or magnitude >= 1e12:
        return f"{value:.3e}"
    return f"{value:,.1f}" if magnitude < 1e6 else f"{value:,.0f}"


def fmt_time(iso: str) -> str:
    """`2026-01-02T03:04:05+00:00` -> `2026-01-02 03:04:05 +00:00` (anything else unchanged)."""
    date, sep, rest = str(iso).partition("T")
    if not sep:
        return str(iso)
    offset = next((rest.find(c) for c in "+-Z" if c in rest), -1)
    return f"{date} {rest[:offset]} {rest[offset:]}" if offset > 0 else f"{date} {rest}"


def fmt_seconds(seconds: float) -> str:
    """`75.2` -> `1m 15.2s`; `4000` -> `1h 6m 40s`."""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)}m {secs:.1f}s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)}h {int(minutes)}m {secs:.0f}s"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    return f'<td class="num">{esc(fmt(value))}</td>' if _is_number(value) else f"<td>{esc(value)}</td>"


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain table; numeric cells (and headers of all-numeric columns) right-aligned."""
    numeric = [bool(rows) and all(_is_number(row[i]) for row in rows) for i in range(len(columns))]
    head = "".join(f'<th{" class=num" if n else ""}>{esc(c)}</th>' for c, n in zip(columns, numeric, strict=True))
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def tree(value: Any) -> str:
    """A nested dict as nested key/value tables; lists of scalars inline, values verbatim."""
    if isinstance(value, Mapping):
        if not value:
            return '<span class="empty">{}</span>'
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{tree(v)}</td></tr>" for k, v in value.items())
        return f'<table class="kv">{rows}</table>'
    if isinstance(value, (list, tuple)) and any(isinstance(v, (Mapping, list, tuple)) for v in value):
        return "".join(f"<div>{tree(v)}</div>" for v in value)
    if isinstance(value, (list, tuple)):
        return esc("[" + ", ".join(map(str, value)) + "]")
    return esc(value)  # config values verbatim: 1e-05 stays 1e-05


def page(title: str, body: str, extra_css: str = "") -> str:
    """Wraps `body` into a complete, self-contained HTML document."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}{extra_css}</style></head>\n"
        f"<body><main>\n{body}\n</main></body></html>\n"
    )


def cards(metrics: Mapping[str, Any]) -> str:
    items = "".join(
        f'<div class="card"><div class="label">{esc(k)}</div><div class="value">{esc(fmt(v))}</div></div>'
        for k, v in metrics.items()
    )
    return f'<section class="cards">{items}</section>'


def figure(png: bytes, name: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure id="fig-{esc(name)}"><img src="data:image/png;base64,{data}" alt="{esc(name)}">{cap}</figure>'


def skipped_section(items: Sequence[Mapping[str, Any]]) -> str:
    """A collapsible table of skipped samples (path + reason first), capped at MAX_SKIPPED_ROWS."""
    if not items:
        return '<p class="empty">No samples were skipped.</p>'
    columns = ["path", "reason"]
    for item in items:
        columns += [k for k in item if k not in columns]
    shown = items[:MAX_SKIPPED_ROWS]
    rows = [[item.get(c, "") for c in columns] for item in shown]
    more = f'<p class="note">Showing the first {len(shown):,} of {len(items):,} (all are in report.json).</p>'
    note = more if len(items) > len(shown) else ""
    return (
        f"<details><summary>{len(items):,} skipped: show path and reason</summary>"
        f"{table(columns, rows)}{note}</details>"
    )


def run_info_section(config: Mapping, environment: Mapping, timings: Mapping[str, float]) -> str:
    parts = []
    if timings:
        rows = [[k, fmt_seconds(v)] for k, v in timings.items()]
        parts.append("<h3>Timings</h3>" + table(["phase", "time"], rows))
    if environment:
        parts.append("<h3>Environment</h3>" + tree(dict(environment)))
    if config:
        parts.append("<h3>Config</h3>" + f'<div class="scroll">{tree(dict(config))}</div>')
    return "".join(parts) or '<p class="empty">No run information recorded.</p>'
