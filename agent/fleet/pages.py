"""The dashboard's HTML: the fleet page and the device page, rendered from plain data (no I/O).

Every value from a device is escaped. Charts are drawn in the browser by the vendored uPlot
(static/uplot, MIT) from the JSON embedded in the device page; nothing is loaded from elsewhere.
"""

from __future__ import annotations

import json
import time
from html import escape
from typing import Any, Dict, List, Mapping, Optional, Sequence
from urllib.parse import quote, urlencode

from agent.fleet.views import TABLE_COLUMNS

COMMANDS = ("rebuild", "check", "benchmark")  # what the device page's form may send


def _page(title: str, body: str, scripts: Sequence[str] = ()) -> str:
    tags = "".join(f'<script defer src="/static/{name}"></script>' for name in scripts)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>"
        '<link rel="icon" href="data:,">'
        '<link rel="stylesheet" href="/static/uplot/uPlot.min.css">'
        '<link rel="stylesheet" href="/static/dashboard.css">'
        f"{tags}</head><body>{body}</body></html>\n"
    )


def cell(value: Any, key: str = "") -> str:
    """A table cell's text: ``-`` for unknown, figures rounded, times as UTC."""
    if value is None:
        return "-"
    if key == "last_seen" and isinstance(value, (int, float)):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def device_href(device: str) -> str:
    return "/device/" + quote(device, safe="")


def filter_rows(rows: Sequence[Mapping[str, Any]], text: str) -> List[Mapping[str, Any]]:
    """Rows with ``text`` (case-insensitive) in any cell; all rows for empty text."""
    needle = text.strip().lower()
    if not needle:
        return list(rows)
    return [r for r in rows if any(needle in cell(r.get(k), k).lower() for k, _ in TABLE_COLUMNS)]


def sort_rows(rows: Sequence[Mapping[str, Any]], key: str, descending: bool = False) -> List[Mapping[str, Any]]:
    """Rows ordered by one column (numbers before text), rows without a value last either way."""
    if key not in dict(TABLE_COLUMNS):
        raise ValueError(f"sort: unknown column {key!r}; columns: {', '.join(k for k, _ in TABLE_COLUMNS)}")
    known = sorted(
        (r for r in rows if r.get(key) is not None),
        key=lambda r: (isinstance(r[key], str), r[key]),
        reverse=descending,
    )
    return known + [r for r in rows if r.get(key) is None]


def fleet_page(
    rows: Sequence[Mapping[str, Any]], sort: str = "device", descending: bool = False, query: str = ""
) -> str:
    """Every device in one table; column titles sort (a second click reverses), the box filters."""
    shown = sort_rows(filter_rows(rows, query), sort, descending)
    heads = []
    for key, title in TABLE_COLUMNS:
        flip = "1" if key == sort and not descending else ""
        link = "/?" + urlencode({"sort": key, "desc": flip, "q": query})
        arrow = (" ▼" if descending else " ▲") if key == sort else ""
        heads.append(f'<th data-key="{key}"><a href="{escape(link)}">{escape(title)}{arrow}</a></th>')
    lines = []
    for row in shown:
        cells = []
        for key, _ in TABLE_COLUMNS:
            text = escape(cell(row.get(key), key))
            if key == "device":
                text = f'<a href="{escape(device_href(str(row["device"])))}">{text}</a>'
            cells.append(f'<td data-key="{key}">{text}</td>')
        state = "online" if row.get("online") else "offline"
        lines.append(f'<tr class="device {state}" data-device="{escape(str(row["device"]))}">{"".join(cells)}</tr>')
    form = (
        '<form method="get" action="/" class="filter">'
        f'<input type="hidden" name="sort" value="{escape(sort)}">'
        f'<input type="hidden" name="desc" value="{"1" if descending else ""}">'
        f'<input type="search" name="q" value="{escape(query)}" placeholder="filter devices">'
        '<button type="submit">filter</button></form>'
    )
    body = (
        f'<h1>Fleet</h1><p class="summary">{len(shown)} of {len(rows)} devices shown</p>{form}'
        f'<table id="fleet"><thead><tr>{"".join(heads)}</tr></thead><tbody>{"".join(lines)}</tbody></table>'
        '<p><a href="/metrics">Prometheus metrics</a></p>'
    )
    return _page("edge-agent fleet", body)


def _builds_table(builds: Sequence[Mapping[str, Any]]) -> str:
    if not builds:
        return '<p class="none">no build reported</p>'
    lines = []
    for b in builds:
        deltas = ", ".join(f"{escape(k)} {v:+.1f} pp" for k, v in sorted(b["deltas_pp"].items()) if v is not None)
        lines.append(
            f'<tr class="build"><td>{escape(cell(b["t"], "last_seen"))}</td><td>{escape(cell(b["asked"]))}</td>'
            f"<td>{escape(cell(b['precision']))}</td><td>{escape(cell(b['passed']))}</td>"
            f"<td>{escape(cell(b['status'] or b['decision']))}</td><td>{deltas or '-'}</td></tr>"
        )
    return (
        '<table id="builds"><thead><tr><th>time (UTC)</th><th>asked</th><th>built</th><th>gate passed</th>'
        f"<th>outcome</th><th>per-class recall delta</th></tr></thead><tbody>{''.join(lines)}</tbody></table>"
    )


def _recall_table(recall: Mapping[str, Any]) -> str:
    """The latest report's recall of each class with its Wilson band; ``-`` where a class has none
    (no labeled samples: the report's recall is null, never read as 0)."""
    classes = recall.get("classes") or {}
    if not recall.get("t") or not classes:
        return '<p class="none">no accuracy report</p>'
    lines = "".join(
        f'<tr class="recall" data-class="{escape(name)}"><td>{escape(name)}</td>'
        + "".join(f"<td>{escape(cell(c[key][-1]))}</td>" for key in ("recall", "low", "high"))
        + "</tr>"
        for name, c in sorted(classes.items())
    )
    return (
        '<table id="recall"><thead><tr><th>class</th><th>recall</th><th>95% low</th><th>95% high</th></tr>'
        f"</thead><tbody>{lines}</tbody></table>"
    )


def _drift_list(marks: Sequence[Mapping[str, Any]]) -> str:
    if not marks:
        return '<p class="none">no drift reported</p>'
    items = "".join(
        f'<li class="drift-event {escape(str(m["severity"]))}">{escape(cell(m["t"], "last_seen"))} '
        f"<b>{escape(str(m['severity']))}</b> {escape(str(m['message']))}</li>"
        for m in marks
    )
    return f'<ul id="drift">{items}</ul>'


def _command_form(device: str, enabled: bool, answer: Optional[str]) -> str:
    if not enabled:
        return '<p class="none">read-only: no command key is configured (fleet.command_key)</p>'
    options = "".join(f'<option value="{c}">{c}</option>' for c in COMMANDS)
    shown = f'<pre id="command-answer">{escape(answer)}</pre>' if answer is not None else ""
    return (
        f'<form method="post" action="{escape(device_href(device))}/command" id="command">'
        f'<select name="command">{options}</select>'
        '<input name="args" placeholder="key=value ..." size="40"><button type="submit">send signed</button>'
        f"</form>{shown}"
    )


def device_page(
    device: str,
    row: Optional[Mapping[str, Any]],
    data: Mapping[str, Any],
    has_confusion: bool,
    commands: bool,
    answer: Optional[str] = None,
) -> str:
    """One device: its row, the charts (drawn by dashboard.js from ``data``), drift, builds, the
    latest confusion matrix and, when a command key is configured, the signed command form."""
    facts = "".join(
        f'<dt>{escape(title)}</dt><dd data-key="{key}">{escape(cell(row.get(key), key))}</dd>'
        for key, title in TABLE_COLUMNS
        if row is not None
    )
    embedded = json.dumps(data, allow_nan=False).replace("</", "<\\/")
    picture = (
        f'<img id="confusion" alt="confusion matrix" src="{escape(device_href(device))}/confusion.png">'
        if has_confusion
        else '<p class="none">no confusion matrix reported</p>'
    )
    body = (
        f'<p><a href="/">fleet</a></p><h1>{escape(device)}</h1><dl class="facts">{facts}</dl>'
        '<h2>Latency</h2><div class="chart" id="chart-latency"></div>'
        '<h2>Frames per second</h2><div class="chart" id="chart-fps"></div>'
        '<h2>Power</h2><div class="chart" id="chart-power"></div>'
        '<h2>Temperature</h2><div class="chart" id="chart-temperature"></div>'
        '<h2>Recall per class (Wilson 95% band; drift marked)</h2><div class="chart" id="chart-recall"></div>'
        f"{_recall_table(data['recall'])}"
        f"<h2>Drift</h2>{_drift_list(data['drift'])}"
        f"<h2>Engine builds</h2>{_builds_table(data['builds'])}"
        f"<h2>Latest confusion matrix</h2>{picture}"
        f"<h2>Command</h2>{_command_form(device, commands, answer)}"
        f'<script type="application/json" id="device-data">{embedded}</script>'
    )
    return _page(f"edge-agent {device}", body, scripts=("uplot/uPlot.iife.min.js", "dashboard.js"))


def not_found(what: str) -> str:
    return _page("not found", f'<p><a href="/">fleet</a></p><h1>Not found</h1><p>{escape(what)}</p>')


def device_data(
    telemetry: Mapping[str, Any], recall: Mapping[str, Any], drift: Sequence[Any], builds: Sequence[Any]
) -> Dict[str, Any]:
    """What the device page embeds for its charts and lists."""
    return {"telemetry": dict(telemetry), "recall": dict(recall), "drift": list(drift), "builds": list(builds)}
