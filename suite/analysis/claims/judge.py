"""From a claim's units to its verdicts: one row per method and one pooled row.

A *unit* is what a claim's test measures once: a trial (C1, C2, C3, C7, C8), a
pair of an arm and its baseline (C4, C5, C9) or a group of trials that differ
only in weight decay (C6). Units of one seed are not independent (every method
and arm of a seed starts from the same backbone initialization, and arms of a
seed share its baseline), so every test runs over *seed clusters*:

* mean-based claims: `suite.core.stats.clustered_t_interval` -- units averaged
  within their seed (in the pooled row first within each method, so methods
  weigh the same), then a Student-t interval over the seed means;
* time-to-target claims (C4, C5): per seed the net direction of its pairs, then
  the exact sign-flip test over the seeds (`suite.core.stats.sign_flip_p`).

Verdicts: **holds** when the interval lies on the claim's side of its threshold
(inside the band for C2b), or the sign-flip test is significant in the claim's
direction; **does not hold** on the other side; **inconclusive** otherwise and
whenever there are fewer than `MIN_SEEDS` seeds. A pooled verdict must not
contradict a method: when one method holds and another does not, the pooled
row is inconclusive and says which disagree (claims hold per method before
they hold pooled).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from suite.analysis.claims.definitions import (
    ALPHA,
    HOLDS,
    INCONCLUSIVE,
    MIN_SEEDS,
    NOT_HOLD,
    POOLED,
    ClaimRow,
    claim_of,
)
from suite.core.stats import Interval, cluster_means, clustered_t_interval, sign_flip_p

UNIT_COLUMNS = ["method", "seed", "value", "label"]
SHOWN_UNITS = 12


def units_frame(rows: list[dict] | None = None) -> pd.DataFrame:
    """Units as a frame: method, seed, value, label (and, for races, censored)."""
    frame = pd.DataFrame(rows or [], columns=None if rows else UNIT_COLUMNS)
    return frame[frame["value"].map(lambda v: v is not None and math.isfinite(float(v)))] if len(frame) else frame


def _row(claim: str, measure: str, method: str) -> ClaimRow:
    c = claim_of(claim, measure)
    return ClaimRow(c.claim, c.measure, method, c.statement, c.test)


def _seed_text(seeds) -> str:
    values = sorted(
        {
            int(s) if isinstance(s, (int, float, np.integer, np.floating)) and float(s).is_integer() else s
            for s in seeds
        },
        key=str,
    )
    return ", ".join(str(s) for s in values)


def _unit_evidence(units: pd.DataFrame) -> str:
    labels = list(units["label"])
    shown = ", ".join(labels[:SHOWN_UNITS]) + (" …" if len(labels) > SHOWN_UNITS else "")
    return f"{len(labels)} unit(s): {shown}; seeds {_seed_text(units['seed'])}"


def _decide_interval(
    test: Interval, threshold: float, claim_above: bool, band: tuple[float, float] | None
) -> tuple[str, str]:
    if test.n == 0:
        return INCONCLUSIVE, "no usable values"
    if test.n < MIN_SEEDS:
        return INCONCLUSIVE, f"too few seeds: {test.n}; a verdict needs >= {MIN_SEEDS}"
    if test.sign_test:
        if not test.p_value < ALPHA:
            return INCONCLUSIVE, (
                f"no spread: every seed gives {test.estimate:.4g}, so no interval; the sign test "
                f"gives p = {test.p_value:.3g}"
            )
        lo = hi = test.estimate
    else:
        lo, hi = test.lo, test.hi
    if band is not None:
        if band[0] <= lo and hi <= band[1]:
            return HOLDS, ""
        if hi < band[0] or lo > band[1]:
            return NOT_HOLD, ""
        return INCONCLUSIVE, f"95% interval [{lo:.4g}, {hi:.4g}] overlaps the band [{band[0]:g}, {band[1]:g}] partly"
    above, below = lo > threshold, hi < threshold
    if (above and claim_above) or (below and not claim_above):
        return HOLDS, ""
    if above or below:
        return NOT_HOLD, ""
    return INCONCLUSIVE, f"95% interval [{lo:.4g}, {hi:.4g}] contains the threshold {threshold:g}"


def _fill(row: ClaimRow, test: Interval, units: pd.DataFrame, verdict: str, reason: str, extra: str) -> ClaimRow:
    row.value, row.ci_lo, row.ci_hi, row.p_value = test.estimate, test.lo, test.hi, test.p_value
    row.n, row.n_seeds = len(units), test.n
    row.verdict, row.reason = verdict, reason
    row.evidence = "; ".join(p for p in (_unit_evidence(units), extra) if p)
    return row


def _pooled_guard(pooled: ClaimRow, rows: list[ClaimRow]) -> None:
    """A claim holds per method before it holds pooled: a definite pooled verdict needs every method that
    contributes units to give the same verdict; otherwise the pooled row is inconclusive and says why."""
    if pooled.verdict not in (HOLDS, NOT_HOLD):
        return
    contributing = {r.method: r.verdict for r in rows if r.n > 0}
    other = NOT_HOLD if pooled.verdict == HOLDS else HOLDS
    against = sorted(m for m, v in contributing.items() if v == other)
    agree = sorted(m for m, v in contributing.items() if v == pooled.verdict)
    undecided = sorted(m for m, v in contributing.items() if v not in (HOLDS, NOT_HOLD))
    if not against and not undecided:
        return
    parts = [f"{', '.join(against)}: {other}"] if against else []
    parts += [f"{', '.join(agree)}: {pooled.verdict}"] if agree else []
    parts += [f"{', '.join(undecided)}: inconclusive"] if undecided else []
    pooled.reason = (
        "methods disagree" if against else "not every method shows it"
    ) + f" ({'; '.join(parts)}); pooled, the interval alone would say {pooled.verdict}"
    pooled.verdict = INCONCLUSIVE


def judge_mean(
    claim: str,
    measure: str,
    units: pd.DataFrame,
    threshold: float,
    *,
    statistic: str,
    claim_above: bool = True,
    band: tuple[float, float] | None = None,
    left_out: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> list[ClaimRow]:
    """Rows of a mean-based claim: per method, then pooled. ``left_out``: methods with no units and why;
    ``extra``: more evidence per method (key ``all`` for the pooled row)."""
    rows = []
    extra = dict(extra or {})
    for method, group in units.groupby("method", sort=True):
        row = _row(claim, measure, str(method))
        row.statistic = statistic
        test = clustered_t_interval(group["value"], group["seed"], threshold=threshold)
        _fill(row, test, group, *_decide_interval(test, threshold, claim_above, band), extra.get(str(method), ""))
        rows.append(row)
    for method, why in sorted((left_out or {}).items()):
        if method not in {r.method for r in rows}:
            row = _row(claim, measure, method)
            row.statistic, row.reason = statistic, why
            rows.append(row)
    pooled = _row(claim, measure, POOLED)
    pooled.statistic = statistic + " (methods weighing the same within a seed)"
    if len(units):
        test = clustered_t_interval(units["value"], units["seed"], units["method"], threshold=threshold)
        verdict, reason = _decide_interval(test, threshold, claim_above, band)
        methods = "; ".join(f"{r.method} {r.value:.4g}" for r in rows if math.isfinite(r.value))
        _fill(
            pooled,
            test,
            units,
            verdict,
            reason,
            "; ".join(p for p in (f"per method: {methods}", extra.get(POOLED, "")) if p),
        )
        _pooled_guard(pooled, rows)
    else:
        pooled.reason = "; ".join(sorted({r.reason for r in rows if r.reason})) or "no usable values"
    return rows + [pooled]


def _decide_race(scores: np.ndarray, value: float) -> tuple[str, str, float]:
    seeds = int(np.count_nonzero(np.isfinite(scores)))
    if seeds == 0:
        return INCONCLUSIVE, "no pair with an observable target", math.nan
    p = sign_flip_p(scores)
    if p < ALPHA:
        return (HOLDS if value > 0 else NOT_HOLD), "", p
    if 2.0 / 2**seeds >= ALPHA:
        return (
            INCONCLUSIVE,
            (
                f"a sign-flip test over {seeds} seed(s) cannot reach p < {ALPHA:g} (its smallest p is "
                f"{2.0 / 2**seeds:.3g}); a verdict needs >= 6 seeds"
            ),
            p,
        )
    return INCONCLUSIVE, f"sign-flip test p = {p:.3g} >= {ALPHA:g}", p


def _race_evidence(units: pd.DataFrame) -> str:
    faster, slower = int((units["value"] > 0).sum()), int((units["value"] < 0).sum())
    censored = int(units.get("censored", pd.Series(False, index=units.index)).sum())
    tied = len(units) - faster - slower
    return (
        f"{faster} faster, {slower} slower ({censored} never reached the target within their epochs), "
        f"{tied} tied, of {len(units)} pair(s)"
    )


def judge_race(
    claim: str,
    measure: str,
    units: pd.DataFrame,
    *,
    statistic: str,
    left_out: Mapping[str, str] | None = None,
    extra: str = "",
) -> list[ClaimRow]:
    """Rows of a time-to-target claim (units: value = direction +1 / 0 / -1 per observable pair)."""
    rows = []
    for method, group in units.groupby("method", sort=True):
        row = _row(claim, measure, str(method))
        row.statistic = statistic
        _, scores = cluster_means(group["value"], group["seed"])
        row.value = float(scores.mean()) if scores.size else math.nan
        row.verdict, row.reason, row.p_value = _decide_race(scores, row.value)
        row.n, row.n_seeds = len(group), int(scores.size)
        row.evidence = "; ".join([_race_evidence(group), _unit_evidence(group)])
        rows.append(row)
    for method, why in sorted((left_out or {}).items()):
        if method not in {r.method for r in rows}:
            row = _row(claim, measure, method)
            row.statistic, row.reason = statistic, why
            rows.append(row)
    pooled = _row(claim, measure, POOLED)
    pooled.statistic = statistic + " (methods weighing the same within a seed)"
    if len(units):
        _, scores = cluster_means(units["value"], units["seed"], units["method"])
        pooled.value = float(scores.mean())
        pooled.verdict, pooled.reason, pooled.p_value = _decide_race(scores, pooled.value)
        pooled.n, pooled.n_seeds = len(units), int(scores.size)
        pooled.evidence = "; ".join(p for p in (_race_evidence(units), _unit_evidence(units), extra) if p)
        _pooled_guard(pooled, rows)
    else:
        pooled.reason = "; ".join(sorted({r.reason for r in rows if r.reason})) or "no usable pair"
        pooled.evidence = extra
    return rows + [pooled]


def judge_max(claim: str, measure: str, units: pd.DataFrame, tolerance: float, *, statistic: str) -> list[ClaimRow]:
    """Rows of a deterministic identity (C2a): holds when the largest unit value is below ``tolerance``."""
    rows = []
    for method, group in [*units.groupby("method", sort=True), (POOLED, units)]:
        row = _row(claim, measure, str(method))
        row.statistic = statistic
        if len(group):
            worst = group.loc[group["value"].idxmax()]
            row.value, row.n = float(worst["value"]), len(group)
            row.n_seeds = int(group["seed"].nunique())
            row.verdict = HOLDS if row.value < tolerance else NOT_HOLD
            row.evidence = (
                f"{len(group)} trial(s); median of the per-trial means {group['value'].median():.3g}; "
                f"largest in {worst['label']}"
            )
        else:
            row.reason = "no trial has the column's values"
        rows.append(row)
    return rows
