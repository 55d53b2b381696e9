"""The page's HTML fragments: the headline table, its filters, the claims panel, the figures.

Why rendered here and not by the script: the table's cells are the leaderboard's
own (`suite.analysis.leaderboard.render.headline`), so the page shows them even
before (or without) JavaScript, and a test can read them with an HTML parser. The
script only reorders, hides and adds to what is here. The ids and ``data-``
attributes written here are the page's stable hooks (docs/guides/report.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

import pandas as pd

from suite.analysis.claims.report import SUMMARY_COLUMNS, summary_rows, why
from suite.analysis.leaderboard.aggregate import Leaderboard
from suite.analysis.leaderboard.render import Column, failure_rows
from suite.core.tables import DASH
from suite.results import schema

HIDEABLE = ("accuracy", "convergence", "norms", "diagnostics", "settings")  # "setting" (the keys) always shows


def attr(value: object) -> str:
    return escape(str(value), quote=True)


def inline_markdown(text: str) -> str:
    """The leaderboard's explanation (Markdown with `code` spans) as HTML."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def headline_table(board: Leaderboard, columns: Sequence[Column], best: Sequence[Sequence[bool]]) -> str:
    """``<table id="headline">``: one ``<tr data-group data-rank>`` per group in rank order, the raw
    column name as each header's tooltip, the column group as each cell's class (``g-norms``)."""
    head = "".join(
        f'<th scope="col" class="g-{attr(c.group)}" data-key="{attr(c.key)}" data-column-group="{attr(c.group)}" '
        f'title="{attr(c.raw)}" aria-sort="none"><button type="button">{escape(c.label)}</button></th>'
        for c in columns
    )
    classes = [f"g-{c.group}" for c in columns]
    body = []
    for i, group in enumerate(board.table["group"]):
        cells = "".join(
            f'<td class="{cls}{" best" if best[i][j] else ""}">{escape(c.cells[i])}</td>'
            for j, (c, cls) in enumerate(zip(columns, classes))
        )
        body.append(f'<tr data-group="{int(group)}" data-rank="{i}" tabindex="0">{cells}</tr>')
    if not body:
        body.append(f'<tr class="empty"><td colspan="{len(columns)}">No completed trials.</td></tr>')
    return (
        f'<div class="table-wrap"><table id="headline" data-metric="{attr(board.metric)}">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def toolbar(board: Leaderboard, columns: Sequence[Column]) -> str:
    """The filter box (``#filter``), one ``<select data-axis>`` per group key, the column-group switches."""
    by_key = {c.key: c for c in columns}
    selects = []
    for key in board.group_keys:
        column = by_key.get(key)
        if column is None:
            continue
        values = sorted(set(column.cells), key=lambda v: (v == DASH, v))
        options = "".join(f'<option value="{attr(v)}">{escape(v)}</option>' for v in values)
        selects.append(
            f'<label>{escape(column.label)} <select id="filter-{attr(key)}" data-axis="{attr(key)}">'
            f'<option value="">all</option>{options}</select></label>'
        )
    present = [g for g in HIDEABLE if any(c.group == g for c in columns)]
    switches = "".join(f'<label><input type="checkbox" data-column-group="{g}" checked> {g}</label>' for g in present)
    return (
        '<div id="toolbar">'
        '<label>Filter <input id="filter" type="search" autocomplete="off" '
        'placeholder="words that must all appear in a row"></label>'
        f'<span id="axis-filters">{"".join(selects)}</span>'
        f'<fieldset id="column-groups"><legend>column groups</legend>{switches}</fieldset>'
        f'<output id="shown-count">{len(board.table)} of {len(board.table)} groups</output>'
        "</div>"
    )


def detail_pane() -> str:
    """``#detail``: empty until a row is clicked; the script fills it and sets ``data-group``."""
    return (
        '<section id="detail" data-group="" aria-live="polite"><h2>Group detail</h2>'
        '<p id="detail-hint">Click a row of the table to see its curves per seed (◆: the untrained network, '
        "epoch 0), its settings and its trial folders.</p>"
        '<h3 id="detail-title"></h3><div id="detail-charts" class="chart"></div>'
        '<div class="detail-lists"><div><h4>Trial folders</h4><ul id="detail-trials"></ul></div>'
        '<details><summary>Settings (science and run)</summary><table id="detail-config"><tbody></tbody></table>'
        "</details></div></section>"
    )


@dataclass
class Figure:
    """One figure of the page: the chart (``data-chart`` names its spec), its caption and any table."""

    id: str
    title: str
    caption: str  # HTML
    chart: str | None  # key of the spec in the page data; None: nothing to draw
    claims: tuple[str, ...] = ()
    extra: str = ""  # HTML after the chart
    missing: str = "No data for this figure in these results."


def figure(fig: Figure) -> str:
    chart = (
        f'<div class="chart" data-chart="{attr(fig.chart)}"></div>'
        if fig.chart
        else f'<p class="no-data">{escape(fig.missing)}</p>'
    )
    claims = f' data-claims="{attr(" ".join(fig.claims))}"' if fig.claims else ""
    return (
        f'<figure id="{attr(fig.id)}"{claims}><figcaption><strong>{escape(fig.title)}</strong> '
        f"{fig.caption}</figcaption>{chart}{fig.extra}</figure>"
    )


def claims_panel(claims: pd.DataFrame | None, plots: Mapping[str, str], dirs: Sequence[str]) -> str:
    """``#claims``: the verdict table of claims.csv, one ``<tr data-claim data-measure data-method>`` per
    row, each verdict a link to the figure that supports it (``plots``: claim -> figure id)."""
    if claims is None or not len(claims):
        where = ", ".join(dirs)
        return (
            '<div id="claims-table" class="empty"><p>No claims.csv in '
            f"{escape(where)}: run <code>normbench claims {escape(where)}</code> to judge the paper's claims, "
            "then rebuild this page.</p></div>"
        )
    several = claims[schema.RESULTS_DIR].nunique() > 1 if schema.RESULTS_DIR in claims else False
    header = (["results"] if several else []) + SUMMARY_COLUMNS + ["why / evidence"]
    rows = []
    for cells, (_, r) in zip(summary_rows(claims), claims.iterrows()):
        claim, measure, method, verdict = cells[:4]
        target = plots.get(claim)
        verdict_html = (
            f'<a class="verdict" href="#{attr(target)}" data-verdict="{attr(verdict)}">{escape(verdict)}</a>'
            if target
            else f'<span class="verdict" data-verdict="{attr(verdict)}">{escape(verdict)}</span>'
        )
        shown = [escape(c) for c in cells]
        shown[0] = f'<span title="{attr(r.get("statement", ""))}">{escape(claim)}</span>'
        shown[3] = verdict_html
        note = why(r)
        shown.append(f'<span class="why" title="{attr(note)}">{escape(_short(note))}</span>')
        if several:
            shown.insert(0, escape(str(r[schema.RESULTS_DIR])))
        rdir = attr(r[schema.RESULTS_DIR]) if schema.RESULTS_DIR in r else ""
        rows.append(
            f'<tr data-claim="{attr(claim)}" data-measure="{attr(measure)}" data-method="{attr(method)}" '
            f'data-verdict="{attr(verdict)}" data-results-dir="{rdir}">'
            + "".join(f"<td>{c}</td>" for c in shown)
            + "</tr>"
        )
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in header)
    return (
        f'<div id="claims-table" class="table-wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def simple_table(header: Sequence[str], rows: Sequence[Sequence[str]], table_id: str = "") -> str:
    ident = f' id="{attr(table_id)}"' if table_id else ""
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="table-wrap"><table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def failures(board: Leaderboard) -> str:
    """``#failures``: failed, interrupted and incomplete trials with the last line of their error."""
    header, rows = failure_rows(board)
    inner = simple_table(header, rows) if rows else "<p>None.</p>"
    return (
        f'<details id="failures"><summary>Failed, interrupted or incomplete trials ({len(rows)})</summary>'
        f"{inner}</details>"
    )
