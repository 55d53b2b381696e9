"""The leaderboard's headline: its columns, their cells, and the static Markdown / CSV / LaTeX files.

Why one module: every human-readable form of the leaderboard -- the Markdown and
LaTeX files for papers and the interactive report page -- shows the same columns
with the same names, the same cells ("mean ± std", "Δ [95% interval]", "—" for a
baseline's Δ, accuracies in %) in the same order (ranked by the metric), built
once by `headline`. CSV is the machine-readable aggregated frame itself.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from suite.analysis.leaderboard.aggregate import BASELINE, CONVERGENCE, Leaderboard
from suite.core.tables import DASH, latex_table, markdown_table
from suite.results import schema

PM = " ± "
GROUPS = ("setting", "accuracy", "convergence", "norms", "diagnostics", "settings")
KEY_LABELS = {
    schema.INTERVENTION: "intervention",
    schema.METHOD: "method",
    schema.DATASET: "dataset",
    schema.BACKBONE: "backbone",
    schema.EPOCHS: "epochs",
}


def label(column: str) -> str:
    """A column's name for people (the raw name stays the tooltip)."""
    parsed = schema.parse_knn(column)
    if parsed is not None:
        return f"{'val ' if parsed[0] == 'val' else ''}kNN@{parsed[1]} (%)"
    names = {
        schema.LINEAR_TOP1: "linear probe (%)",
        schema.train_norm("emb", "mean"): "emb. norm (train)",
        schema.train_norm("feat", "mean"): "feat. norm (train)",
        schema.eval_norm("test", "emb", "mean"): "emb. norm (test)",
        schema.eval_norm("test", "feat", "mean"): "feat. norm (test)",
        schema.FINAL_LOSS: "final loss",
    }
    if column in names:
        return names[column]
    for vector, word in (("emb", "emb."), ("feat", "feat."), ("proj", "proj.")):
        for name, what in (
            (schema.CORRECT_AUROC, "AUROC correct"),
            (schema.OOD_AUROC, "AUROC OOD"),
            (schema.FREQ_SPEARMAN, "ρ frequency"),
        ):
            if column == schema.diagnostic(vector, name):
                return f"{word} {what}"
    return column


def number(value: float, column: str) -> str:
    """One number of ``column`` as shown: accuracies in %, AUROCs and correlations with 3 decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return DASH
    if schema.is_accuracy(column):
        return f"{100 * value:.2f}"
    if column.endswith(tuple(schema.DIAGNOSTICS)):
        return f"{value:.3f}"
    return f"{value:.3g}"


def mean_std(mean: float, std: float, column: str) -> str:
    text = number(mean, column)
    if text == DASH or std is None or pd.isna(std):  # n=1: no spread to show
        return text
    return text + PM + number(std, column)


def interval_cell(value: float, lo: float, hi: float, n: int, column: str) -> str:
    """``+1.23 [-0.40, 2.86] n.s.``: a difference with its 95% interval over seeds.

    "n.s." marks an interval that contains 0; "(1 seed)" a difference with no interval,
    "(no spread)" one whose seeds all agree exactly (a t-interval would have zero width)."""
    if value is None or pd.isna(value):
        return DASH
    text = ("+" if value > 0 else "") + number(value, column)
    if n == 1:
        return text + " (1 seed)"
    if pd.isna(lo) or pd.isna(hi):
        return text + (" (no spread)" if n >= 2 else "")
    return text + f" [{number(lo, column)}, {number(hi, column)}]" + (" n.s." if lo <= 0 <= hi else "")


@dataclass
class Column:
    """One headline column: what people read, what sorts it, and what it is."""

    key: str
    label: str
    group: str
    raw: str  # the table column(s) behind it (the tooltip)
    cells: list[str]
    sort: list = field(default_factory=list)  # numbers (NaN last) or text


def _sortable(values) -> list:
    return [
        None
        if v is None or (isinstance(v, float) and math.isnan(v)) or pd.isna(v)
        else (float(v) if isinstance(v, (int, float)) else str(v))
        for v in values
    ]


def _mean_std_column(t: pd.DataFrame, c: str, group: str) -> Column:
    """``c`` as mean ± std over seeds."""
    mean, std = schema.over_seeds(c, schema.MEAN), schema.over_seeds(c, schema.STD)
    return Column(
        c, label(c), group, f"{mean}, {std}", [mean_std(m, s, c) for m, s in zip(t[mean], t[std])], _sortable(t[mean])
    )


def _interval_cells(t: pd.DataFrame, value: str, lo: str, hi: str, n: str, c: str) -> list[str]:
    return [interval_cell(v, a, b, k, c) for v, a, b, k in zip(t[value], t[lo], t[hi], t[n])]


def headline(board: Leaderboard) -> list[Column]:
    """The columns of every human-readable leaderboard, in order; rows are ``board.table``'s (rank order)."""
    t = board.table
    cols = [
        Column(k, KEY_LABELS.get(k, k), "setting", k, [DASH if pd.isna(v) else str(v) for v in t[k]], _sortable(t[k]))
        for k in board.group_keys
    ]
    n, expected, short = t[schema.N], t[schema.N_EXPECTED], t[schema.N_SHORT]
    cols.append(
        Column(
            schema.N,
            "seeds",
            "setting",
            schema.N,
            [f"{k} (of {ke})" if s else str(k) for k, ke, s in zip(n, expected, short)],
            _sortable(n),
        )
    )
    c = board.metric  # the metric, then its Δ against the baseline and its gain over the untrained network
    cols.append(_mean_std_column(t, c, "accuracy"))
    unit = " (pp)" if schema.is_accuracy(c) else ""
    short = label(c).replace(" (%)", "")
    delta = schema.delta(c)
    if delta in t:
        lo, hi, k = (schema.delta(c, part) for part in ("ci_lo", "ci_hi", "n"))
        cells = _interval_cells(t, delta, lo, hi, k, c)
        cells = [DASH if base else cell for cell, base in zip(cells, t[schema.IS_BASELINE])]
        cols.append(
            Column(
                delta, f"Δ {short} vs {BASELINE}{unit}", "accuracy", f"{delta}, {lo}, {hi}", cells, _sortable(t[delta])
            )
        )
    gain = schema.gain(c, schema.MEAN)
    if gain in t:
        lo, hi, k = (schema.gain(c, part) for part in ("ci_lo", "ci_hi", "n"))
        cols.append(
            Column(
                schema.gain(c),
                f"gain {short} vs untrained{unit}",
                "accuracy",
                f"{gain}, {lo}, {hi}",
                _interval_cells(t, gain, lo, hi, k, c),
                _sortable(t[gain]),
            )
        )
    for c in [c for c in board.accuracy_columns if c != board.metric]:
        cols.append(_mean_std_column(t, c, "accuracy"))
    for measure in CONVERGENCE:
        what = "loss" if measure == "loss" else label(board.knn_column or "").replace(" (%)", "") or "kNN"
        counts = [schema.convergence(measure, o) for o in schema.RACE_OUTCOMES]  # faster, slower, tied, censored
        f, s, ti, ce = (t[name] for name in counts)
        cells = [
            DASH
            if base or (a + b + c) == 0
            else f"{a} faster, {b} slower" + (f" ({d} never)" if d else "") + (f", {c} tied" if c else "")
            for a, b, c, d, base in zip(f, s, ti, ce, t[schema.IS_BASELINE])
        ]
        cols.append(
            Column(
                schema.convergence(measure),
                f"to {what} target vs {BASELINE}",
                "convergence",
                ", ".join(counts),
                cells,
                _sortable(f - s),
            )
        )
    for c in board.metric_columns:
        if c in board.accuracy_columns or c == board.metric:
            continue
        cols.append(_mean_std_column(t, c, "diagnostics" if c.endswith(tuple(schema.DIAGNOSTICS)) else "norms"))
    if schema.BASELINE_DIFFERS in t:
        differs = t[schema.BASELINE_DIFFERS]
        cols.append(
            Column(
                schema.BASELINE_DIFFERS,
                f"settings ≠ {BASELINE}",
                "settings",
                schema.BASELINE_DIFFERS,
                [DASH if pd.isna(v) else str(v) for v in differs],
                _sortable(differs),
            )
        )
    return cols


def best_mask(board: Leaderboard, columns: list[Column]) -> list[list[bool]]:
    """Per row and column: bold (the best metric per dataset and backbone)."""
    return [[col.key == board.metric and bool(best) for col in columns] for best in board.table[schema.BEST]]


def explanation(board: Leaderboard) -> str:
    direction = "highest" if board.higher_is_better else "lowest"
    return (
        f"Rows ranked by `{board.metric}` ({direction} first), at the final epoch; cells are mean ± std over "
        "seeds (std with ddof=1, none for one seed); accuracies in %. Bold: the best per (dataset, backbone). "
        f"Δ: difference against `intervention={BASELINE}` (the claims' pairing: same seed and science, protocol "
        'aside), with its 95% interval over seeds (paired on shared seeds, else Welch\'s); "n.s.": the interval '
        "contains 0; — for the baseline itself. Gain vs untrained: final minus epoch-0 score of the same trial. "
        "Convergence: per seed pair, which reaches the baseline's target first (its epoch-1 value plus half its "
        'later improvement; "never": the arm did not reach it). "settings ≠ none": science in which a group '
        "differs from its baseline beside the intervention (Δ then mixes both). Group keys: "
        + ", ".join(f"`{k}`" for k in board.group_keys)
        + "."
    )


def failure_rows(board: Leaderboard) -> tuple[list[str], list[list[str]]]:
    frame = board.failures
    header = list(frame.columns)
    rows = [
        [_first_line(v) if c == schema.ERROR else (DASH if pd.isna(v) else str(v)) for c, v in zip(header, r)]
        for r in frame.itertuples(index=False)
    ]
    return header, rows


def _first_line(error, limit: int = 200) -> str:
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    text = lines[-1] if lines else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_markdown(
    board: Leaderboard,
    dirs: Sequence[str],
    plots: Mapping[str, Path] | None = None,
    out_dir: Path | None = None,
    claims: pd.DataFrame | None = None,
) -> str:
    """leaderboard.md: the headline table, the incomplete trials, the claims (when claims.csv exists), the plots."""
    columns = headline(board)
    rows = [[c.cells[i] for c in columns] for i in range(len(board.table))]
    parts = ["# normbench leaderboard", "", f"Results: {', '.join(f'`{d}`' for d in dirs)}", "", explanation(board), ""]
    parts.append(
        markdown_table([c.label for c in columns], rows, best_mask(board, columns))
        if rows
        else "_No completed trials._"
    )
    header, failed = failure_rows(board)
    parts += ["", f"## Failed, interrupted or incomplete trials ({len(failed)})", ""]
    parts.append(markdown_table(header, failed) if failed else "None.")
    if claims is not None and len(claims):
        from suite.analysis.claims.report import leaderboard_markdown

        parts += ["", leaderboard_markdown(claims)]
    if plots:
        parts += ["", "## Plots", ""]
        for name, path in plots.items():
            rel = path.relative_to(out_dir) if out_dir is not None else path
            parts += [f"![{name}]({rel.as_posix()})", ""]
    return "\n".join(parts).rstrip() + "\n"


def to_csv(board: Leaderboard, path: Path) -> None:
    """The aggregated frame itself: ``pd.read_csv(path)`` gives it back."""
    board.table.to_csv(path, index=False)


# Non-ASCII text as LaTeX: a stock pdflatex (no unicode-math, no extra packages) rejects "≠" or "ρ" outright.
LATEX_SYMBOLS = {
    "≠": r"$\neq$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "≈": r"$\approx$",
    "→": r"$\rightarrow$",
    "←": r"$\leftarrow$",
    "‖": r"$\|$",
    "·": r"$\cdot$",
    "−": "-",
    "–": "--",
    "…": r"\ldots{}",
    "‘": "`",
    "’": "'",
    "“": "``",
    "”": "''",
    "∞": r"$\infty$",
    "°": r"$^\circ$",
    "µ": r"$\mu$",
    "×": r"$\times$",
    "±": r"$\pm$",
}
LATEX_ACCENTS = {  # combining marks (after NFD) -> LaTeX accent commands: "é" -> \'{e}
    "\u0301": "'",
    "\u0300": "`",
    "\u0302": "^",
    "\u0308": '"',
    "\u0303": "~",
    "\u0327": "c",
    "\u030a": "r",
}


def latex_ascii(text: str) -> str:
    """``text`` (already escaped for LaTeX) with every non-ASCII character written in plain LaTeX: known
    symbols as commands, Greek letters as ``$\\rho$``, accented letters as ``\\'{e}``, anything else by
    its compatibility form or ``?``; the result is ASCII."""
    out = []
    for ch in text:
        if ch.isascii():
            out.append(ch)
        elif ch in LATEX_SYMBOLS:
            out.append(LATEX_SYMBOLS[ch])
        elif unicodedata.name(ch, "").startswith(("GREEK SMALL LETTER ", "GREEK CAPITAL LETTER ")):
            name = unicodedata.name(ch).split(" LETTER ", 1)[1].lower()
            capital = unicodedata.name(ch).startswith("GREEK CAPITAL")
            out.append(f"$\\{name.capitalize() if capital else name}$" if name.isalpha() else "?")
        else:
            base, *marks = unicodedata.normalize("NFD", ch)
            if base.isascii() and marks and all(m in LATEX_ACCENTS for m in marks):
                for mark in marks:
                    base = f"\\{LATEX_ACCENTS[mark]}{{{base}}}"
                out.append(base)
            else:
                plain = unicodedata.normalize("NFKD", ch)  # "ﬁ" -> "fi"; "½" -> "1⁄2", not ASCII: "?"
                out.append(plain if plain.isascii() else "?")
    return "".join(out)


def to_latex(board: Leaderboard) -> str:
    """A booktabs ``tabular`` to ``\\input`` (needs ``\\usepackage{booktabs}``), ASCII only: it compiles
    with a stock pdflatex whatever the column names and settings hold."""
    columns = headline(board)
    rows = [[c.cells[i] for c in columns] for i in range(len(board.table))]
    align = "".join("l" if c.group in ("setting", "settings") else "r" for c in columns)
    return latex_ascii(latex_table([c.label for c in columns], rows, align, best_mask(board, columns)))


CONSOLE_ROWS = 10


def console_table(board: Leaderboard, rows: int = CONSOLE_ROWS) -> str:
    """The top of the headline for the terminal: the setting columns, the metric, its Δ and its gain (the
    files hold every column and row)."""
    from suite.core.tables import text_table

    cols = [c for c in headline(board) if c.group in ("setting", "accuracy")]
    if len(board.table) > 1:  # of several rows, the setting columns that tell them apart
        cols = [c for c in cols if c.group != "setting" or c.key == schema.N or len(set(c.cells)) > 1]
    shown = min(rows, len(board.table))
    body = [[c.cells[i] for c in cols] for i in range(shown)]
    more = f"\n({len(board.table) - shown} more row(s) in the files)" if len(board.table) > shown else ""
    title = f"ranked by {label(board.metric)}:"
    return title + "\n" + text_table([c.label for c in cols], body) + more
