"""The README's "What the reference run shows" block, generated from the committed tables.

Why generated: every number the README states about the reference run must equal
the committed ``claims.csv`` and ``trials.csv``. ``normbench claims DIR --readme
README.md`` rewrites the block between the two markers; a test regenerates it
from the committed tables and compares it with the README, so a stale sentence
fails the test suite instead of misleading a reader.

The block has two tables: whether each method learned at all (its ``none`` trials'
final kNN@20 against the same network untrained, and its final loss against the
loss of uniform outputs where that is a collapse signature), then one row per
claim with its verdict, statistic, interval and reason.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from suite.analysis.claims.report import DASH, interval_text, md_table, summary_frame
from suite.analysis.claims.verdicts import learning_status
from suite.core.errors import ConfigError
from suite.core.files import atomic_write_text
from suite.core.stats import t_interval

BEGIN = "<!-- normbench claims --readme: begin (generated from claims.csv and trials.csv; do not edit) -->"
END = "<!-- normbench claims --readme: end -->"


def _pct(x: float) -> str:
    return DASH if x is None or not math.isfinite(x) else f"{100 * x:.1f}"


def _uniform_loss(method: str, method_args) -> float:
    """Loss of uniform outputs, where a method's loss has one: DINO's ln(prototypes)."""
    if method != "dino" or not isinstance(method_args, str):
        return math.nan
    prototypes = json.loads(method_args).get("num_prototypes")
    return math.log(prototypes) if prototypes else math.nan


def baseline_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Completed ``none`` trials on the balanced training set: what "does it learn" is judged on."""
    done = trials[trials.get("status", pd.Series("completed", index=trials.index)).fillna("completed") == "completed"]
    balanced = pd.to_numeric(done.get("imbalance", pd.Series(np.nan, index=done.index)), errors="coerce")
    return done[(done["intervention"].astype(str) == "none") & ~(balanced > 1)]


def learning_frame(trials: pd.DataFrame) -> pd.DataFrame:
    """Per method: untrained and final kNN@20, the gain with its 95% t-interval over seeds, the final loss."""
    rows = []
    needed = ["knn_top1_k20_init", "knn_top1_k20", "final_loss", "method_args", "seed"]
    base = baseline_trials(trials)
    base = base.reindex(columns=[*base.columns, *(c for c in needed if c not in base.columns)])
    for method, group in base.groupby("method", sort=True):
        init = pd.to_numeric(group["knn_top1_k20_init"], errors="coerce")
        final = pd.to_numeric(group["knn_top1_k20"], errors="coerce")
        gain = (final - init).dropna().to_numpy(float)
        interval = t_interval(gain)
        lo, hi = interval.lo, interval.hi
        loss = pd.to_numeric(group["final_loss"], errors="coerce")
        uniform = _uniform_loss(str(method), group["method_args"].iloc[0])
        statuses = [learns for learns, _ in learning_status(group).values()]
        rows.append(
            {
                "method": method,
                "seeds": ", ".join(str(int(s)) for s in sorted(group["seed"])),
                "untrained kNN@20 (%)": _pct(init.mean()),
                "final kNN@20 (%)": _pct(final.mean()),
                "gain (pp) [95% interval]": (
                    DASH
                    if not gain.size
                    else f"{100 * gain.mean():+.1f} "
                    + (f"[{100 * lo:+.1f}, {100 * hi:+.1f}]" if math.isfinite(lo) else "(no interval)")
                ),
                "shown to learn": ("yes" if statuses == [True] else "no" if statuses == [False] else DASH),
                "final loss": f"{loss.mean():.3f}" if loss.notna().any() else DASH,
                "uniform-output loss": f"{uniform:.3f}" if math.isfinite(uniform) else DASH,
            }
        )
    return pd.DataFrame(rows)


def claims_frame(claims: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: the verdict, its number and interval, and why (inconclusive) or on what."""
    shown = summary_frame(claims)
    shown.insert(2, "statement", claims["statement"].astype(str).to_numpy())
    shown["why / evidence"] = [
        r if isinstance(r, str) and r else _short(e)
        for r, e in zip(claims["reason"].fillna(""), claims["evidence"].fillna(""))
    ]
    return shown


def _short(evidence: str, limit: int = 160) -> str:
    """The first clause of the evidence (the units are listed in full in claims.md)."""
    text = str(evidence)
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def readme_block(claims: pd.DataFrame, trials: pd.DataFrame, results_dir: str) -> str:
    """The generated block, markers included."""
    return "\n".join(
        [
            BEGIN,
            f"Generated by `normbench claims {results_dir} --readme README.md` from the committed `claims.csv` "
            f"and `trials.csv` in `{results_dir}/`; a test checks that this block equals what they give.",
            "",
            "**Does each method learn?** Its `none` trials on the balanced training set: final kNN@20 against the "
            "same network untrained (the epoch-0 evaluation), mean over seeds, gain with its 95% t-interval; "
            '"shown to learn" when that interval lies above 0 (the claims\' rule: only such methods back the '
            "accuracy-based verdicts); final SSL loss, and for DINO the loss of uniform outputs (ln of its "
            "prototypes), which a collapsed run sits at.",
            "",
            md_table(learning_frame(trials)),
            "",
            "**The paper's claims** (`claims.md` beside the tables has every test and unit in full):",
            "",
            md_table(claims_frame(claims)),
            END,
        ]
    )


def replace_block(text: str, block: str, path: str = "README") -> str:
    """``text`` with the part between the markers replaced by ``block``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ConfigError("--readme", path, f"a file containing the markers {BEGIN!r} and {END!r} in that order")
    return text[:start] + block + text[end + len(END) :]


def extract_block(text: str) -> str | None:
    start, end = text.find(BEGIN), text.find(END)
    return text[start : end + len(END)] if start >= 0 and end > start else None


def update_readme(path: Path, claims: pd.DataFrame, trials: pd.DataFrame, results_dir: str) -> None:
    """Rewrite the block in ``path`` atomically (the rest of the file is kept byte for byte)."""
    text = Path(path).read_text()
    atomic_write_text(Path(path), replace_block(text, readme_block(claims, trials, results_dir), str(path)))


__all__ = [
    "BEGIN",
    "END",
    "readme_block",
    "replace_block",
    "extract_block",
    "update_readme",
    "learning_frame",
    "baseline_trials",
    "interval_text",
]
