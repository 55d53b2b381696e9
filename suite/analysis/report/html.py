"""The page's HTML fragments: the headline table, its filters, the verdict matrix and claims table, the figures.

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

from suite.analysis.claims.definitions import (
    HOLDS,
    INCONCLUSIVE,
    MIN_SEEDS,
    NOT_APPLICABLE,
    NOT_HOLD,
    NOT_MEASURED,
    NOT_TESTABLE,
    POOLED,
    VERDICTS,
)
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


def identifying(board: Leaderboard, columns: Sequence[Column]) -> list[bool]:
    """Per column: does it tell rows apart (a group key whose value varies between rows; the first key
    when none does)? These stay in view when the table scrolls sideways."""
    keys = [c for c in columns if c.key in board.group_keys]
    varying = {c.key for c in keys if len(set(c.cells)) > 1} or {c.key for c in keys[:1]}
    return [c.key in varying for c in columns]


def headline_table(board: Leaderboard, columns: Sequence[Column], best: Sequence[Sequence[bool]]) -> str:
    """``<table id="headline">``: one ``<tr data-group data-rank>`` per group in rank order, the raw
    column name as each header's tooltip, the column group as each cell's class (``g-norms``), and
    ``sticky`` on the identifying columns (`identifying`; the script sets their offsets)."""
    sticky = identifying(board, columns)
    last = max((j for j, flag in enumerate(sticky) if flag), default=-1)
    classes = [
        f"g-{c.group}" + (" sticky" if flag else "") + (" sticky-last" if j == last else "")
        for j, (c, flag) in enumerate(zip(columns, sticky))
    ]
    head = "".join(
        f'<th scope="col" class="{cls}" data-key="{attr(c.key)}" data-column-group="{attr(c.group)}" '
        f'title="{attr(c.raw)}" aria-sort="none"><button type="button">{escape(c.label)}</button></th>'
        for c, cls in zip(columns, classes)
    )
    body = []
    for i, group in enumerate(board.table[schema.GROUP]):
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
        "epoch 0), each over its <code>none</code> trial of the same seed (dashed), its settings and its trial "
        "folders.</p>"
        '<h3 id="detail-title"></h3><p id="detail-baseline" data-baseline=""></p>'
        '<div id="detail-charts" class="chart"></div>'
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


VERDICT_MEANING = {
    HOLDS: "on the claim's side of its threshold (Holm p < 0.05 where a test has one)",
    NOT_HOLD: "on the other side",
    INCONCLUSIVE: f"neither, or fewer than {MIN_SEEDS} seeds",
    NOT_APPLICABLE: "the method's loss does not L2-normalize the embedding",
    NOT_MEASURED: "the run lacks the instrument or the untrained control",
    NOT_TESTABLE: "the manipulation is too weak to act",
}
POOLED_SUFFIX = " (random effects over methods)"
VALUE_CLASS = ' class="value"'
UNIT_WORDS = (  # (words in a statistic, the kind of number it is): the first that matches names the unit
    ("auroc", "AUROC difference (trained - untrained)"),
    ("spearman", "Spearman correlation"),
    ("log(", "log ratio"),
    ("|cos", "|cos|"),
    ("relative deviation", "relative deviation"),
    ("slope", "slope difference"),
)


def statistic_text(statistic: object) -> str:
    """A row's statistic without the pooled row's suffix: the same words for every method of a claim."""
    text = statistic.strip() if isinstance(statistic, str) else ""
    return text[: -len(POOLED_SUFFIX)] if text.endswith(POOLED_SUFFIX) else text


def value_unit(statistic: object) -> str:
    """What a claims value is, in a few words, taken from its ``statistic`` text: a closing parenthesis
    names the unit ("fraction of the baseline's improvement"), else the kind of number ("log ratio"),
    else the statistic itself; so no value is shown as a bare number."""
    text = statistic_text(statistic)
    unit = re.search(r"\s\(([^()]+)\)$", text)  # " (unit)" at the end; "log(...)" is a formula, not a unit
    if unit:
        return unit.group(1)
    low = text.lower()
    return next((name for words, name in UNIT_WORDS if words in low), text)


@dataclass
class ClaimsView:
    """claims.csv as the page shows it: the rows, their compact cells, each row's anchor id, and the
    results directory of each row when the page merges several."""

    rows: pd.DataFrame
    cells: list[list[str]]
    ids: list[str]
    dirs: list[str]  # per row its results directory ("" when there is one)

    @classmethod
    def of(cls, claims: pd.DataFrame | None) -> ClaimsView | None:
        """The view of claims.csv's rows; None without any."""
        if claims is None or not len(claims):
            return None
        rows = claims.reset_index(drop=True)
        several = schema.RESULTS_DIR in rows and rows[schema.RESULTS_DIR].nunique() > 1
        dirs = [str(d) for d in rows[schema.RESULTS_DIR]] if several else [""] * len(rows)
        number = {d: i for i, d in enumerate(dict.fromkeys(dirs))}
        ids, seen = [], set()
        for d, claim, measure, method in zip(dirs, rows["claim"], rows["measure"], rows["method"]):
            parts = ([f"r{number[d]}"] if several else []) + [str(claim), str(measure), str(method)]
            ident = "claim-" + re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(parts))
            while ident in seen:  # the same claim, measure and method twice: keep anchors unique
                ident += "-x"
            seen.add(ident)
            ids.append(ident)
        return cls(rows, summary_rows(rows), ids, dirs)

    def value_html(self, i: int) -> str:
        """The value with its unit (``-2.153 fraction of the baseline's improvement``), or a dash."""
        text = self.cells[i][4]
        if text == DASH:
            return escape(text)
        unit = value_unit(self.rows.at[i, "statistic"])
        return f'<span class="num">{escape(text)}</span> <span class="unit">{escape(unit)}</span>'


def verdict_legend() -> str:
    items = "".join(
        f'<li><span class="verdict-swatch" data-verdict="{attr(v)}"></span><strong>{escape(v)}</strong>: '
        f"{escape(VERDICT_MEANING[v])}</li>"
        for v in VERDICTS
    )
    return f'<ul id="verdict-legend">{items}</ul>'


def verdict_matrix(view: ClaimsView, plots: Mapping[str, str]) -> str:
    """``#verdict-matrix``: one row per claim and measure (its statement and what its value is, in words),
    one column per method and ``all`` (pooled); each cell the verdict and value, coloured by verdict,
    linking to its row of the detailed table; the row's claim links to its figure."""
    rows = view.rows
    methods = sorted({str(m) for m in rows["method"]} - {POOLED})
    methods += [POOLED] if (rows["method"].astype(str) == POOLED).any() else []
    at: dict[tuple, int] = {}
    order: dict[tuple, int] = {}  # (dir, claim, measure) -> its first row
    for i, (d, claim, measure, method) in enumerate(zip(view.dirs, rows["claim"], rows["measure"], rows["method"])):
        order.setdefault((d, str(claim), str(measure)), i)
        at.setdefault((d, str(claim), str(measure), str(method)), i)
    head = '<th scope="col">claim</th>' + "".join(
        f'<th scope="col" data-method="{attr(m)}">{escape(m)}{" (pooled)" if m == POOLED else ""}</th>' for m in methods
    )
    body = []
    for (d, claim, measure), first in order.items():
        target = plots.get(claim)
        name = f'<a href="#{attr(target)}" class="claim-id">{escape(claim)}</a>' if target else escape(claim)
        where = f'<div class="results-dir"><code>{escape(d)}</code></div>' if d else ""
        statistic = statistic_text(rows.at[first, "statistic"])
        what = f'<div class="statistic">value: {escape(statistic)}</div>' if statistic else ""
        statement = escape(str(rows.at[first, "statement"] or ""))
        cells = []
        for method in methods:
            i = at.get((d, claim, measure, method))
            if i is None:
                cells.append(f'<td class="verdict-cell" data-method="{attr(method)}" data-verdict="">{DASH}</td>')
                continue
            verdict, value = view.cells[i][3], view.cells[i][4]
            number = f'<span class="num">{escape(value)}</span>' if value != DASH else ""
            cells.append(
                f'<td class="verdict-cell" data-method="{attr(method)}" data-verdict="{attr(verdict)}">'
                f'<a href="#{attr(view.ids[i])}"><span class="verdict-word">{escape(verdict)}</span>{number}</a></td>'
            )
        body.append(
            f'<tr data-matrix-claim="{attr(claim)}" data-measure="{attr(measure)}" data-results-dir="{attr(d)}">'
            f'<th scope="row">{name} <code>{escape(measure)}</code>{where}'
            f'<div class="statement">{statement}</div>{what}</th>{"".join(cells)}</tr>'
        )
    return (
        f'<div id="verdict-matrix">{verdict_legend()}<div class="table-wrap"><table>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div></div>"
    )


def claims_panel(claims: pd.DataFrame | None, plots: Mapping[str, str], dirs: Sequence[str]) -> str:
    """The verdict matrix (`verdict_matrix`), then ``#claims-table``: every row of claims.csv, one
    ``<tr id data-claim data-measure data-method>`` each, its value with its unit, each verdict a link to
    the figure that supports it (``plots``: claim -> figure id)."""
    view = ClaimsView.of(claims)
    if view is None:
        where = ", ".join(dirs)
        return (
            '<div id="claims-table" class="empty"><p>No claims.csv in '
            f"{escape(where)}: run <code>normbench claims {escape(where)}</code> to judge the paper's claims, "
            "then rebuild this page.</p></div>"
        )
    several = any(view.dirs)
    header = (["results"] if several else []) + SUMMARY_COLUMNS + ["why / evidence"]
    rows = []
    for i, r in view.rows.iterrows():
        claim, measure, method, verdict = view.cells[i][:4]
        target = plots.get(claim)
        verdict_html = (
            f'<a class="verdict" href="#{attr(target)}" data-verdict="{attr(verdict)}">{escape(verdict)}</a>'
            if target
            else f'<span class="verdict" data-verdict="{attr(verdict)}">{escape(verdict)}</span>'
        )
        shown = [escape(c) for c in view.cells[i]]
        shown[0] = f'<span title="{attr(r.get("statement", ""))}">{escape(claim)}</span>'
        shown[3] = verdict_html
        shown[4] = view.value_html(i)
        note = why(r)
        shown.append(f'<span class="why" title="{attr(note)}">{escape(_short(note))}</span>')
        if several:
            shown.insert(0, escape(view.dirs[i]))
        rdir = attr(r[schema.RESULTS_DIR]) if schema.RESULTS_DIR in r else ""
        rows.append(
            f'<tr id="{attr(view.ids[i])}" data-claim="{attr(claim)}" data-measure="{attr(measure)}" '
            f'data-method="{attr(method)}" data-verdict="{attr(verdict)}" data-results-dir="{rdir}" '
            f'title="{attr(statistic_text(r.get("statistic")))}">'
            + "".join(f"<td{VALUE_CLASS if j == 4 + several else ''}>{c}</td>" for j, c in enumerate(shown))
            + "</tr>"
        )
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in header)
    return (
        verdict_matrix(view, plots)
        + '<h3 id="claims-detail">Every row of claims.csv</h3>'
        + f'<div id="claims-table" class="table-wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def claim_values(view: ClaimsView | None, claim: str) -> str:
    """What claims.csv says of ``claim``, for its figure's caption: per measure the verdict and value (with
    its unit) of each method and the pooled row, each linking to its row. The only numbers a caption
    states about a claim, so the figure cannot disagree with the verdict it illustrates."""
    if view is None:
        return ""
    parts = []
    for measure in dict.fromkeys(str(m) for m in view.rows.loc[view.rows["claim"] == claim, "measure"]):
        rows = view.rows[(view.rows["claim"] == claim) & (view.rows["measure"].astype(str) == measure)]
        picked = sorted(rows.index, key=lambda i: (view.cells[i][2] != POOLED, view.cells[i][2]))  # pooled first
        valued, blank = [], {}
        for i in picked:
            method, verdict, value = view.cells[i][2], view.cells[i][3], view.cells[i][4]
            if value == DASH:
                blank.setdefault(verdict, []).append(method)
                continue
            where = f' data-results-dir="{attr(view.dirs[i])}"' if view.dirs[i] else ""
            valued.append(
                f'<a href="#{attr(view.ids[i])}">{escape(method)}</a>: {escape(verdict)}, '
                f'<span class="claim-value" data-claim="{attr(claim)}" data-measure="{attr(measure)}" '
                f'data-method="{attr(method)}"{where}>{escape(value)}</span>'
            )
        valued += [f"{escape(', '.join(ms))}: {escape(v)}, no value" for v, ms in blank.items()]
        unit = value_unit(view.rows.at[picked[0], "statistic"])
        parts.append(f"<code>{escape(measure)}</code> ({escape(unit)}): " + "; ".join(valued))
    if not parts:
        return ""
    return f'<span class="claim-values">claims.csv, {escape(claim)}: ' + " · ".join(parts) + ".</span>"


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
