"""claims.csv / claims.md, the printed table, and the claims section of the leaderboard.

``claims.csv`` is the machine-readable verdict table (``verdicts.ROW_COLUMNS``);
``claims.md`` is the same rows for people, plus every test and the verdict rules.
The leaderboard shows the claims of a results directory when its ``claims.csv``
exists (``load_claims``); it never recomputes them.
"""

from __future__ import annotations

import html
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from suite.analysis.claims.verdicts import (
    CONFIDENCE,
    CONV_FRACTION,
    MIN_SEEDS,
    ORTHOGONALITY_TOL,
    ROW_COLUMNS,
    SLOPE_MARGIN,
    SLOPE_TARGET,
)
from suite.core.files import atomic_path, atomic_write_text

CLAIMS_FILE = "claims.csv"
CLAIMS_MD = "claims.md"
DASH = "—"

RULES = (
    f"Verdicts: **holds** when the {CONFIDENCE:.0%} interval of the statistic lies entirely on the claim's "
    f"side of its threshold (C2b: inside {SLOPE_TARGET:g} ± {SLOPE_MARGIN:g}; C2a: largest per-trial mean "
    f"|cos| < {ORTHOGONALITY_TOL:g}); **does not hold** when it lies entirely on the other side; "
    f"**inconclusive** otherwise, and always when a needed column is absent (run predates it), the claim's "
    f"conditions are absent from the runs, fewer than {MIN_SEEDS} units (trials or seed pairs) from fewer "
    f"than {MIN_SEEDS} distinct seeds back it, or an accuracy-based test (C4/C5 on kNN, C7) would rest on a "
    f"method not shown to beat its own untrained network: the {CONFIDENCE:.0%} t-interval of its kNN@20 gain "
    f"over seeds must lie above 0 (such methods are left out). "
    f"Intervals: two-sided {CONFIDENCE:.0%} Student-t over units; p: two-sided one-sample t-test against the "
    f"threshold (when all units are equal: no interval, the exact sign test decides). Convergence targets "
    f"(C4/C5): {CONV_FRACTION:g} of the baseline's loss decrease or kNN@20 gain."
)


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def interval_text(row: pd.Series) -> str:
    lo, hi = row.get("ci_lo"), row.get("ci_hi")
    if pd.isna(lo) or pd.isna(hi):
        return DASH
    return f"[{_fmt(float(lo))}, {_fmt(float(hi))}]"


def summary_frame(claims: pd.DataFrame) -> pd.DataFrame:
    """The compact view: claim, measure, verdict, value, interval, p, n, and the reason or evidence."""
    return pd.DataFrame(
        {
            "claim": claims["claim"].astype(str),
            "measure": claims["measure"].astype(str),
            "verdict": claims["verdict"].astype(str),
            "value": [_fmt(float(v)) if pd.notna(v) else DASH for v in claims["value"]],
            "95% interval": [interval_text(r) for _, r in claims.iterrows()],
            "p": [_fmt(float(v)) if pd.notna(v) else DASH for v in claims["p_value"]],
            "n (seeds)": [f"{int(n)} ({int(s)})" for n, s in zip(claims["n"], claims["n_seeds"])],
            "why / evidence": [
                str(r) if isinstance(r, str) and r else (str(e) if isinstance(e, str) else "")
                for r, e in zip(claims["reason"], claims["evidence"])
            ],
        }
    )


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(frame: pd.DataFrame) -> str:
    lines = [
        "| " + " | ".join(_md_cell(c) for c in frame.columns) + " |",
        "|" + "|".join("---" for _ in frame.columns) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def to_markdown(claims: pd.DataFrame, dirs: Sequence[str]) -> str:
    """claims.md: the verdicts, then each row in full (statement, test, statistic, evidence), then the rules."""
    parts = [
        "# normbench claims",
        "",
        f"Results: {', '.join(f'`{d}`' for d in dirs)}",
        "",
        'Claims of Draganov et al., "On the Importance of Embedding Norms in Self-Supervised Learning" '
        "(ICML 2025), tested on these runs' tables by `normbench claims`.",
        "",
        RULES,
        "",
        md_table(summary_frame(claims)),
        "",
        "## Each claim in full",
        "",
    ]
    for _, r in claims.iterrows():
        parts += [
            f"### {r['claim']} ({r['measure']}): {r['verdict']}",
            "",
            f"- Statement: {r['statement']}",
            f"- Test: {r['test']}",
            f"- Statistic: {r['statistic'] or DASH}",
            f"- Value {_fmt(r['value'])}, 95% interval {interval_text(r)}, p {_fmt(r['p_value'])}, "
            f"n {int(r['n'])} from {int(r['n_seeds'])} seed(s)",
            f"- Evidence: {r['evidence'] or DASH}",
        ]
        if r["reason"]:
            parts.append(f"- Why inconclusive: {r['reason']}")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def write_claims(claims: pd.DataFrame, out_dir: Path, dirs: Sequence[str]) -> dict[str, Path]:
    """Write claims.csv and claims.md atomically into ``out_dir``."""
    out_dir = Path(out_dir)
    paths = {"csv": out_dir / CLAIMS_FILE, "md": out_dir / CLAIMS_MD}
    with atomic_path(paths["csv"]) as tmp:
        claims[ROW_COLUMNS].to_csv(tmp, index=False)
    atomic_write_text(paths["md"], to_markdown(claims, dirs))
    return paths


def format_table(claims: pd.DataFrame, width: int = 110) -> str:
    """The printed table: one line per verdict, then the reason (inconclusive) or evidence, wrapped and indented."""
    frame = summary_frame(claims)
    cols = ["claim", "measure", "verdict", "value", "95% interval", "p", "n (seeds)"]
    widths = {c: max(len(c), *(len(str(v)) for v in frame[c])) for c in cols}
    head = "  ".join(c.ljust(widths[c]) for c in cols)
    lines = [head, "-" * len(head)]
    for _, r in frame.iterrows():
        lines.append("  ".join(str(r[c]).ljust(widths[c]) for c in cols).rstrip())
        note = r["why / evidence"]
        if note:
            lines += textwrap.wrap(
                note,
                width,
                initial_indent="      ",
                subsequent_indent="      ",
                max_lines=4,
                placeholder=" … (claims.md has it all)",
            )
    return "\n".join(lines)


# ---------------------------------------------------------------- leaderboard
def load_claims(dirs: Sequence[str | Path]) -> pd.DataFrame | None:
    """The ``claims.csv`` of each results directory that has one (a ``results_dir`` column added), or None."""
    import warnings

    from suite.analysis.load import LeaderboardWarning

    frames = []
    for d in dirs:
        path = Path(d) / CLAIMS_FILE
        if path.is_file():
            try:
                frame = pd.read_csv(path, keep_default_na=True)
            except Exception as exc:  # a corrupt claims file must not cost the leaderboard
                warnings.warn(
                    f"{path}: unreadable ({type(exc).__name__}: {exc}); claims not shown",
                    LeaderboardWarning,
                    stacklevel=2,
                )
                continue
            if not {"claim", "verdict"}.issubset(frame.columns):
                warnings.warn(f"{path}: no claim/verdict columns; claims not shown", LeaderboardWarning, stacklevel=2)
                continue
            frame = frame.reindex(columns=ROW_COLUMNS)
            frame[["reason", "evidence", "statistic"]] = frame[["reason", "evidence", "statistic"]].fillna("")
            frame[["n", "n_seeds"]] = frame[["n", "n_seeds"]].fillna(0)
            frame.insert(0, "results_dir", str(d))
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else None


def _leaderboard_frame(claims: pd.DataFrame) -> pd.DataFrame:
    shown = summary_frame(claims)
    if claims["results_dir"].nunique() > 1:
        shown.insert(0, "results", claims["results_dir"].astype(str).to_numpy())
    shown.insert(shown.columns.get_loc("measure") + 1, "statement", claims["statement"].astype(str).to_numpy())
    return shown


def leaderboard_markdown(claims: pd.DataFrame) -> str:
    """The "Paper claims" section of leaderboard.md."""
    return "\n".join(
        [
            "## Paper claims (`normbench claims`)",
            "",
            RULES,
            "",
            md_table(_leaderboard_frame(claims)),
            "",
            "Tests and evidence in full: `claims.md` next to the results tables.",
        ]
    )


def leaderboard_html(claims: pd.DataFrame) -> str:
    """The "Paper claims" section of leaderboard.html (escaped, no scripts)."""
    frame = _leaderboard_frame(claims)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    rules = html.escape(RULES.replace("**", ""))
    return (
        f'<h2>Paper claims (normbench claims)</h2>\n<p class="note">{rules}</p>\n'
        f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"
    )
