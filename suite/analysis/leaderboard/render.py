"""Leaderboard -> Markdown, CSV, LaTeX and one self-contained HTML report.

Why one module: every human-readable format shows the same cells ("mean ±
std", "Δ [95% interval]" with "n.s." / "(1 seed)" markers, best in bold, "—"
for missing), built once by ``display_table`` and only
escaped/marked up differently per format. CSV is the machine-readable
aggregated frame itself (separate mean/std/n columns).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from suite.analysis.leaderboard.aggregate import ACCURACY_COLUMNS, BASELINE, Leaderboard

DASH = "—"
PM = " ± "
LABELS = {
    "knn_top1_k200": "kNN top-1 k=200 (%)",
    "knn_top1_k20": "kNN top-1 k=20 (%)",
    "linear_top1": "linear top-1 (%)",
    "emb_norm_mean": "emb. norm",
    "feat_norm_mean": "feat. norm",
}


def _is_percent(column: str) -> bool:
    return column in ACCURACY_COLUMNS or column.startswith(("knn_", "linear_"))


def _number(value: float, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if _is_percent(column):
        return f"{100 * value:.2f}"
    if column.endswith(("_auroc", "_spearman")):
        return f"{value:.3f}"
    if column == "epoch":
        return f"{value:.1f}"
    if column == "ratio":
        return f"{value:.2f}"
    return f"{value:.3g}"


def _mean_std(mean: float, std: float, column: str) -> str:
    text = _number(mean, column)
    if text == DASH or std is None or math.isnan(std):  # n=1: no spread to show
        return text
    return text + PM + _number(std, column)


def _interval_cell(value: float, lo: float, hi: float, n: int, column: str) -> str:
    """``+1.23 [-0.40, 2.86] n.s.``: a difference with its 95% interval over seeds.

    "n.s." marks an interval that contains 0; "(1 seed)" a difference with no
    interval, "(no spread)" one whose seeds all agree exactly (the t-interval
    would have zero width); without seeds to compare (the baseline row) it is bare.
    """
    if value is None or pd.isna(value):
        return DASH
    text = ("+" if value > 0 else "") + _number(value, column)
    if n == 1:
        return text + " (1 seed)"
    if pd.isna(lo) or pd.isna(hi):
        return text + (" (no spread)" if n >= 2 else "")
    text += f" [{_number(lo, column)}, {_number(hi, column)}]"
    return text + (" n.s." if lo <= 0 <= hi else "")


def label(column: str) -> str:
    return LABELS.get(column, column)


def display_table(board: Leaderboard) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Human-readable cells and a same-shaped boolean frame marking the best cells."""
    t = board.table
    cols: dict[str, list[str]] = {k: [DASH if pd.isna(v) else str(v) for v in t[k]] for k in board.group_keys}
    cols["n"] = [f"{n} (of {ne})" if short else str(n) for n, ne, short in zip(t["n"], t["n_expected"], t["n_short"])]
    metric_label = label(board.metric)
    leading = [c for c in board.metric_columns if c in ACCURACY_COLUMNS or c == board.metric]
    for c in leading:
        cols[label(c)] = [_mean_std(m, s, c) for m, s in zip(t[f"{c}_mean"], t[f"{c}_std"])]
    # Δ vs the baseline intervention, then the gain over the untrained network: same cell format.
    for prefix, value_key, title in (
        ("delta", "delta_{c}", f"Δ {{label}} vs {BASELINE}"),
        ("gain", "gain_{c}_mean", "gain {label} vs untrained"),
    ):
        for c in leading:
            key = value_key.format(c=c)
            if key in t:
                unit = " (pp)" if _is_percent(c) else ""
                cols[(title.format(label=label(c)) + unit).replace(" (%)", "")] = [
                    _interval_cell(v, lo, hi, n, c)
                    for v, lo, hi, n in zip(
                        t[key], t[f"{prefix}_{c}_ci_lo"], t[f"{prefix}_{c}_ci_hi"], t[f"{prefix}_{c}_n"]
                    )
                ]
    if board.curve_column is not None:
        conv = []
        for m, s, k, n, at_init in zip(
            t["conv_epoch_mean"], t["conv_epoch_std"], t["conv_reached"], t["n"], t["conv_init_reached"]
        ):
            cell = _mean_std(m, s, "epoch")
            cell += f" ({int(k)}/{n} seeds)" if cell != DASH and k < n else ""
            conv.append(cell + (f" (untrained reaches it: {int(at_init)}/{n})" if at_init > 0 else ""))
        cols[f"epochs to {board.target:g}×{BASELINE}"] = conv
        cols["epoch ratio"] = [_number(r, "ratio") for r in t["conv_ratio"]]
    for c in board.metric_columns:
        if c not in leading:
            cols[label(c)] = [_mean_std(m, s, c) for m, s in zip(t[f"{c}_mean"], t[f"{c}_std"])]
    if "baseline_differs" in t and t["baseline_differs"].notna().any():
        cols[f"settings ≠ {BASELINE}"] = [DASH if pd.isna(text) else text for text in t["baseline_differs"]]
    shown = pd.DataFrame(cols, index=t.index)
    best = pd.DataFrame(False, index=t.index, columns=shown.columns)
    if len(t):
        best[metric_label] = t["best"].astype(bool).to_numpy()
    return shown, best


def _first_line(error: str, limit: int = 200) -> str:
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    text = lines[-1] if lines else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _explanation(board: Leaderboard) -> str:
    conv = (
        f"Convergence: first epoch at which a trial's `{board.curve_column}` curve reaches "
        f"{board.target:g} × the mean final `{board.curve_column}` of its `{BASELINE}` baseline group "
        "(mean over the seeds that reach it; — if none); ratio = that epoch / the baseline's. Epoch 0 (the "
        'untrained network) does not count; "untrained reaches it" flags seeds whose untrained network '
        "already meets the target."
        if board.curve_column
        else "Convergence: no curves table, not computed."
    )
    direction = "highest" if board.higher_is_better else "lowest"
    return (
        f"Metric: `{board.metric}` at the final epoch; cells are mean ± std over seeds "
        f"(std with ddof=1, omitted for n=1); accuracies in %. Bold: {direction} `{board.metric}` per "
        f"(dataset, backbone). Δ: difference against `intervention={BASELINE}` with all other "
        f'group keys equal (where other settings differ too, the column "settings ≠ {BASELINE}" lists them: '
        f"Δ and the epoch ratio then mix their effect with the intervention's), with its 95% t-interval over seeds "
        f"in brackets (paired on the shared seeds "
        f"when one group's seeds include the other's, else the difference of means with Welch's interval); "
        f'"n.s.": the interval contains 0; "(1 seed)": too few seeds '
        f'for an interval; "(no spread)": every seed gives the same difference, so no interval. '
        f"Gain vs untrained (where trials record it): final minus epoch-0 score of the same trial, "
        f'mean [95% t-interval] over seeds. n: completed seeds; "(of N)" flags a group with fewer '
        f"completed trials than it has in the tables (failed or unfinished ones). {conv} "
        f"Group keys: {', '.join(f'`{k}`' for k in board.group_keys)}."
    )


# ---------------------------------------------------------------- Markdown
def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(frame: pd.DataFrame, bold: pd.DataFrame | None = None) -> str:
    header = "| " + " | ".join(_md_cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = []
    for i in range(len(frame)):
        cells = [_md_cell(v) for v in frame.iloc[i]]
        if bold is not None:
            cells = [f"**{c}**" if b else c for c, b in zip(cells, bold.iloc[i])]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows])


def failures_display(board: Leaderboard) -> pd.DataFrame:
    frame = board.failures.copy()
    if "error" in frame:
        frame["error"] = frame["error"].map(_first_line)
    return frame.astype(str)


def to_markdown(
    board: Leaderboard,
    dirs: list[str],
    plots: Mapping[str, Path] | None = None,
    out_dir: Path | None = None,
    claims: pd.DataFrame | None = None,
) -> str:
    """``claims``: the results directories' claims.csv rows (``suite.analysis.claims.report.load_claims``),
    shown if given."""
    shown, best = display_table(board)
    parts = [
        "# normbench leaderboard",
        "",
        f"Results: {', '.join(f'`{d}`' for d in dirs)}",
        "",
        _explanation(board),
        "",
    ]
    parts.append(_md_table(shown, best) if len(shown) else "_No completed trials._")
    parts += ["", f"## Failed or incomplete trials ({len(board.failures)})", ""]
    parts.append(_md_table(failures_display(board)) if len(board.failures) else "None.")
    if claims is not None and len(claims):
        from suite.analysis.claims.report import leaderboard_markdown

        parts += ["", leaderboard_markdown(claims)]
    if plots:
        parts += ["", "## Plots", ""]
        for name, path in plots.items():
            rel = path.relative_to(out_dir) if out_dir is not None else path
            parts += [f"![{name}]({rel.as_posix()})", ""]
    return "\n".join(parts).rstrip() + "\n"


# ---------------------------------------------------------------- CSV
def to_csv(board: Leaderboard, path: Path) -> None:
    """The aggregated frame itself: ``pd.read_csv(path)`` gives it back."""
    board.table.to_csv(path, index=False)


# ---------------------------------------------------------------- LaTeX
_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: str) -> str:
    escaped = "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))
    return (
        escaped.replace(PM.strip(), r"$\pm$").replace(DASH, "---").replace("Δ", r"$\Delta$").replace("×", r"$\times$")
    )


def to_latex(board: Leaderboard) -> str:
    """A booktabs ``tabular`` to ``\\input`` (needs ``\\usepackage{booktabs}``)."""
    shown, best = display_table(board)
    align = "l" * len(board.group_keys) + "r" * (shown.shape[1] - len(board.group_keys))
    lines = [
        "% normbench leaderboard; requires \\usepackage{booktabs}",
        f"\\begin{{tabular}}{{{align}}}",
        "\\toprule",
        " & ".join(tex_escape(c) for c in shown.columns) + r" \\",
        "\\midrule",
    ]
    for i in range(len(shown)):
        cells = [tex_escape(v) for v in shown.iloc[i]]
        cells = [f"\\textbf{{{c}}}" if b else c for c, b in zip(cells, best.iloc[i])]
        lines.append(" & ".join(cells) + r" \\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- HTML
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{padding:0.3em 0.7em;border-bottom:1px solid #ccc;text-align:right}
th{border-bottom:2px solid #444}
td.err{text-align:left;white-space:pre-wrap;font-family:monospace;max-width:60em}
img{max-width:100%;display:block;margin:1em 0}
p.note{max-width:60em;font-size:0.9em;color:#444}
"""


def _html_table(frame: pd.DataFrame, bold: pd.DataFrame | None = None, pre: set[str] = frozenset()) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for i in range(len(frame)):
        cells = []
        for j, col in enumerate(frame.columns):
            text = html.escape(str(frame.iat[i, j]))
            if bold is not None and bold.iat[i, j]:
                text = f"<strong>{text}</strong>"
            cells.append(f'<td class="err">{text}</td>' if col in pre else f"<td>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def to_html(
    board: Leaderboard, dirs: list[str], plots: Mapping[str, Path] | None = None, claims: pd.DataFrame | None = None
) -> str:
    """One file, readable offline: inline CSS, plots as base64 data URIs, no scripts; the claims section if given."""
    shown, best = display_table(board)
    body = [
        "<h1>normbench leaderboard</h1>",
        f'<p class="note">Results: {html.escape(", ".join(dirs))}</p>',
        f'<p class="note">{html.escape(_explanation(board).replace("`", ""))}</p>',
        _html_table(shown, best) if len(shown) else "<p>No completed trials.</p>",
        f"<h2>Failed or incomplete trials ({len(board.failures)})</h2>",
        _html_table(board.failures.astype(str), pre={"error"}) if len(board.failures) else "<p>None.</p>",
    ]
    if claims is not None and len(claims):
        from suite.analysis.claims.report import leaderboard_html

        body.append(leaderboard_html(claims))
    if plots:
        body.append("<h2>Plots</h2>")
        body += [
            f'<figure><img alt="{html.escape(name)}" src="{png_data_uri(path)}">'
            f"<figcaption>{html.escape(name)}</figcaption></figure>"
            for name, path in plots.items()
        ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>normbench leaderboard</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
