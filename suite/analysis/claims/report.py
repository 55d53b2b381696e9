"""claims.csv / claims.md and the printed table.

``claims.csv`` is the machine-readable verdict table (``ROW_COLUMNS``: one row per
claim, measure and method, ``all`` for the pooled row); ``claims.md`` is the same
rows for people, plus every test and the verdict rules. The leaderboard and the
report page read a results directory's ``claims.csv`` (``load_claims``); they
never recompute it.
"""

from __future__ import annotations

import math
import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from suite.analysis.claims.definitions import (
    CONFIDENCE,
    IDENTITY_TOL,
    MIN_SEEDS,
    ORTHOGONALITY_TOL,
    POOLED,
    ROW_COLUMNS,
    SLOPE_TOL,
)
from suite.analysis.load import LeaderboardWarning
from suite.core.files import atomic_path, atomic_write_text
from suite.core.tables import DASH, markdown_table, text_table
from suite.results import schema

CLAIMS_FILE = "claims.csv"
CLAIMS_MD = "claims.md"

RULES = (
    f"Verdicts, per method and pooled over methods (`all`). Mean-based claims: **holds** when the {CONFIDENCE:.0%} "
    "t-interval over seed means lies on the claim's side of its threshold and the p-value, Holm-adjusted over the "
    "methods judged on the claim, is below 0.05; **does not hold** on the other side; **inconclusive** otherwise "
    f"and always with fewer than {MIN_SEEDS} seeds. The pooled row is a random-effects estimate over methods, "
    "definite only when every method with units gives the same verdict. Identities (C2a: |cos| < "
    f"{ORTHOGONALITY_TOL:g}; C2b: relative deviation < {IDENTITY_TOL:g}; C3: |measured - predicted slope| < "
    f"{SLOPE_TOL:g} with the placebo missing) hold when the largest deviation over every trial is within "
    "tolerance. **not applicable**: a claim about losses that L2-normalize the embedding, on a method whose loss "
    "does not; **not measured**: the run lacks the instrument or the untrained control the test needs; **not "
    "testable**: the manipulation is too weak to act (a weight-decay dose below the threshold). Intervention "
    "comparisons (C4, C5) use only arms that pass their manipulation, collapse and protocol checks (listed under "
    "checks); accuracy-based tests use only methods shown to beat their own untrained network; every unit uses "
    "the seeds all arms of its method share."
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


def why(row: pd.Series) -> str:
    """The reason (inconclusive), else what the checks left out, else the evidence."""
    for column in ("reason", "checks", "evidence"):
        text = row.get(column)
        if isinstance(text, str) and text:
            return ("left out by the checks: " + text) if column == "checks" else text
    return ""


SUMMARY_COLUMNS = ["claim", "measure", "method", "verdict", "value", "95% interval", "p", "p (Holm)", "n (seeds)"]


def summary_rows(claims: pd.DataFrame) -> list[list[str]]:
    """The compact cells of every row: claim, measure, method, verdict, value, interval, p, Holm p, n (seeds)."""
    return [
        [
            str(r["claim"]),
            str(r["measure"]),
            str(r["method"]),
            str(r["verdict"]),
            _fmt(r["value"]),
            interval_text(r),
            _fmt(r["p_value"]),
            _fmt(r.get("p_holm")),
            f"{int(r['n'])} ({int(r['n_seeds'])})",
        ]
        for _, r in claims.iterrows()
    ]


def md_table(claims: pd.DataFrame, with_why: bool = True) -> str:
    header = SUMMARY_COLUMNS + (["why / evidence"] if with_why else [])
    rows = [
        cells + ([_short(why(r))] if with_why else []) for cells, (_, r) in zip(summary_rows(claims), claims.iterrows())
    ]
    return markdown_table(header, rows)


def _short(text: str, limit: int = 220) -> str:
    """The first part of a long evidence text (claims.md has it all)."""
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def to_markdown(claims: pd.DataFrame, dirs: Sequence[str], notes: Sequence[str] = ()) -> str:
    """claims.md: the run-level warnings, the verdicts, then each row in full (statement, test, statistic,
    evidence, checks), after the rules."""
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
        *([f"**Design warnings:** {'; '.join(notes)}.", ""] if notes else []),
        md_table(claims),
        "",
        "## Each claim in full",
        "",
    ]
    for (claim, measure), group in claims.groupby(["claim", "measure"], sort=False):
        first = group.iloc[0]
        parts += [
            f"### {claim} ({measure})",
            "",
            f"- Statement: {first['statement']}",
            f"- Test: {first['test']}",
            f"- Statistic: {first['statistic'] or DASH}",
            "",
        ]
        for _, r in group.iterrows():
            parts.append(
                f"- **{r['method']}**: {r['verdict']}; value {_fmt(r['value'])}, 95% interval "
                f"{interval_text(r)}, p {_fmt(r['p_value'])}, n {int(r['n'])} from {int(r['n_seeds'])} "
                f"seed(s), Holm-adjusted p {_fmt(r.get('p_holm'))}. Evidence: {r['evidence'] or DASH}"
                + (
                    f" Left out by the checks: {r['checks']}"
                    if isinstance(r.get("checks"), str) and r["checks"]
                    else ""
                )
                + (f" Why {r['verdict']}: {r['reason']}" if r["reason"] else "")
            )
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def write_claims(claims: pd.DataFrame, out_dir: Path, dirs: Sequence[str]) -> dict[str, Path]:
    """Write claims.csv and claims.md atomically into ``out_dir`` (claims.md with ``claims.attrs["notes"]``)."""
    out_dir = Path(out_dir)
    paths = {"csv": out_dir / CLAIMS_FILE, "md": out_dir / CLAIMS_MD}
    with atomic_path(paths["csv"]) as tmp:
        claims[ROW_COLUMNS].to_csv(tmp, index=False)
    atomic_write_text(paths["md"], to_markdown(claims, dirs, claims.attrs.get("notes", ())))
    return paths


def format_table(claims: pd.DataFrame, width: int = 110, methods: bool = True) -> str:
    """The printed table: one line per verdict, then the reason (inconclusive) or evidence, wrapped and indented.
    ``methods=False`` prints the pooled rows only."""
    shown = claims if methods else claims[claims["method"] == POOLED]
    lines = text_table(SUMMARY_COLUMNS, summary_rows(shown)).splitlines()
    out = lines[:2]
    for line, (_, r) in zip(lines[2:], shown.iterrows()):
        out.append(line)
        note = why(r)
        if note:
            out += textwrap.wrap(
                note,
                width,
                initial_indent="      ",
                subsequent_indent="      ",
                max_lines=3,
                placeholder=" … (claims.md has it all)",
            )
    return "\n".join(out)


def load_claims(dirs: Sequence[str | Path]) -> pd.DataFrame | None:
    """The ``claims.csv`` of each results directory that has one (a ``results_dir`` column added), or None."""
    frames = []
    for d in dirs:
        path = Path(d) / CLAIMS_FILE
        if not path.is_file():
            continue
        try:
            frame = pd.read_csv(path, keep_default_na=True)
        except Exception as exc:  # a corrupt claims file must not cost the leaderboard
            warnings.warn(
                f"{path}: unreadable ({type(exc).__name__}: {exc}); claims not shown", LeaderboardWarning, stacklevel=2
            )
            continue
        if not {"claim", "verdict"}.issubset(frame.columns):
            warnings.warn(f"{path}: no claim/verdict columns; claims not shown", LeaderboardWarning, stacklevel=2)
            continue
        frame = frame.reindex(columns=ROW_COLUMNS)
        frame["method"] = frame["method"].fillna(POOLED)
        texts = ["reason", "evidence", "statistic", "checks"]
        frame[texts] = frame[texts].astype(object).fillna("")  # an all-empty column reads back as float
        frame[["n", "n_seeds"]] = frame[["n", "n_seeds"]].fillna(0)
        frame.insert(0, schema.RESULTS_DIR, str(d))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else None


def leaderboard_markdown(claims: pd.DataFrame) -> str:
    """The "Paper claims" section of a leaderboard.md."""
    shown = claims.copy()
    if shown[schema.RESULTS_DIR].nunique() > 1:
        shown["method"] = shown[schema.RESULTS_DIR].astype(str) + ": " + shown["method"].astype(str)
    return "\n".join(
        [
            "## Paper claims (`normbench claims`)",
            "",
            RULES,
            "",
            md_table(shown),
            "",
            "Tests and evidence in full: `claims.md` next to the results tables.",
        ]
    )
