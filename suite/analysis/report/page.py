"""One self-contained HTML page: the headline table, its detail pane, the forest plot and the claims.

Why self-contained: the page is sent around and opened from ``file://`` on machines
without network (a cluster's login node, a laptop on a train), so everything it
needs is inside it: the CSS and the page's own script (`assets/`), the data as JSON,
and one copy of Vega, Vega-Lite and vega-embed (``vl_convert.javascript_bundle``,
about 0.9 MB). Nothing is fetched when it opens.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from html import escape
from pathlib import Path

import pandas as pd

import suite.analysis.report.charts as charts
import suite.analysis.report.data as data
import suite.analysis.report.html as html
from suite.analysis.leaderboard import render
from suite.analysis.leaderboard.aggregate import Leaderboard
from suite.analysis.load import Results
from suite.analysis.report.figures import build_figures
from suite.core.files import atomic_write_text
from suite.results import schema

TITLE = "normbench report"


def _asset(name: str) -> str:
    return (importlib.resources.files("suite.analysis.report") / "assets" / name).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def chart_library() -> str:
    """Vega, Vega-Lite (the version Altair writes for) and vega-embed as one script defining
    ``window.vegaEmbed``; ``</script`` escaped so the inlined copy cannot end its element."""
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=charts.vegalite_version())
    return re.sub(r"</(script)", r"<\\/\1", bundle, flags=re.IGNORECASE)


def _script(code: str) -> str:
    return "<script>" + re.sub(r"</(script)", r"<\\/\1", code, flags=re.IGNORECASE) + "</script>"


def page_data(
    results: Results, board: Leaderboard, columns: list[render.Column], trials: pd.DataFrame, specs: dict
) -> dict:
    """Everything the page's script reads (`assets/report.js`), as one JSON-able mapping."""
    labels = data.group_labels(board)
    curve_columns = data.curve_columns(board, results.curves)
    panels = charts.detail_panels(
        board.knn_column, curve_columns, data.untrained_columns(results.curves, curve_columns)
    )
    config_columns, configs = data.config_payload(trials)
    trial_rows = data.trials_payload(results, board, curve_columns, data.baseline_trials(trials))
    members: dict[int, list[int]] = {}
    for index, row in enumerate(trial_rows):
        members.setdefault(row["group"], []).append(index)
    table = board.table
    base_of = table.set_index(schema.GROUP)[schema.BASELINE_GROUP] if schema.BASELINE_GROUP in table else {}
    return {
        "metric": board.metric,
        "headline": data.headline_payload(columns),
        "configColumns": config_columns,
        "groups": {
            str(int(g)): {
                "label": labels[int(g)],
                "config": configs.get(int(g), []),
                "trials": members.get(int(g), []),
                "baseline": _group_id(base_of.get(g)),
            }
            for g in board.table[schema.GROUP]
        },
        "trials": trial_rows,
        "detail": {
            "data": charts.CURVE_DATA,
            "panels": [{"id": p.id, "series": [list(s) for s in p.series]} for p in panels],
            "spec": charts.detail_spec(panels),
        },
        "charts": specs,
    }


def _group_id(value) -> str | None:
    return None if value is None or pd.isna(value) else str(int(value))


def build_page(results: Results, board: Leaderboard, claims: pd.DataFrame | None) -> str:
    """The page as one string (UTF-8 HTML) for the board of ``results`` and the claims.csv rows (or None)."""
    columns = render.headline(board)
    best = render.best_mask(board, columns)
    trials = data.completed_trials(results, board)
    labels = data.group_labels(board)
    figures, specs, plots = build_figures(results, board, trials, labels, claims)
    payload = page_data(results, board, columns, trials, specs)
    dirs = [str(d) for d in results.dirs]
    forest = [f for f in figures if f.id == "forest"]
    evidence = [f for f in figures if f.id != "forest"]
    body = [
        f"<header><h1>{TITLE}</h1><p>Results: "
        + ", ".join(f"<code>{escape(d)}</code>" for d in dirs)
        + f" · ranked by <code>{escape(board.metric)}</code> · {len(board.table)} groups, "
        f"{len(board.trials)} completed trials</p>"
        f'<p class="explanation">{html.inline_markdown(render.explanation(board))}</p></header>',
        '<section id="leaderboard"><h2>Leaderboard</h2>',
        html.toolbar(board, columns),
        html.headline_table(board, columns, best),
        "</section>",
        html.detail_pane(),
        '<section id="forest-section"><h2>Δ per intervention</h2>',
        *(html.figure(f) for f in forest),
        "</section>",
        '<section id="claims"><h2>Paper claims</h2>',
        "<p>Verdicts of <code>normbench claims</code> (claims.csv), per method and pooled (<code>all</code>). "
        "In the matrix each cell links to its row of the table below it, and each claim to the figure that "
        "supports it; claims.md states every test in full.</p>",
        html.claims_panel(claims, plots, dirs),
        '<div id="claim-plots">',
        *(html.figure(f) for f in evidence),
        "</div></section>",
        html.failures(board),
    ]
    return "".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{TITLE}: {escape(', '.join(dirs))}</title>",
            f"<style>{_asset('report.css')}</style></head><body>",
            *body,
            f'<script type="application/json" id="report-data">{data.to_json(payload)}</script>',
            _script(_asset("report.js")),
            _script(chart_library()),
            _script("window.normbenchReport && window.normbenchReport.start();"),
            "</body></html>\n",
        ]
    )


def write_page(results: Results, board: Leaderboard, claims: pd.DataFrame | None, path: str | Path) -> Path:
    """Build the page and write it atomically to ``path`` (its folder is created); returns ``path``."""
    path = Path(path)
    atomic_write_text(path, build_page(results, board, claims))
    return path
