"""From a claim's units to its verdicts: one row per method and one pooled row.

A *unit* is what a claim's test measures once: a trial (C1, C2, C3, C7, C8), a
pair of an arm and its baseline (C4, C5, C9) or a group of trials that differ
only in weight decay (C6). Units of one seed are not independent (every arm of
a seed starts from the same backbone initialization, and arms of a seed share
its baseline), so mean-based tests run over *seed clusters*: units averaged
within their seed, then a Student-t interval over the seed means
(`suite.core.stats.clustered_t_interval`).

* **Per method** the p-values of a claim are Holm-adjusted over the methods
  judged on it (five tries at a claim are not one); a verdict is definite when
  the adjusted p is below 0.05 (holds on the claim's side, does not hold on the
  other) and needs >= `MIN_SEEDS` seeds.
* **Pooled** (``all``): a random-effects estimate over the methods (DerSimonian-
  Laird, Hartung-Knapp-Sidik-Jonkman interval), definite only when its interval
  excludes the threshold *and* every method with units gives that verdict --
  claims hold per method before they hold pooled.
* **Identities** (C2a, C2b, C3) are deterministic: they hold when the largest
  deviation over every trial is within a float tolerance; no interval.

Methods a claim does not apply to (a claim about L2-normalizing losses, on a
method whose loss does not normalize) get "not applicable"; units a manipulation,
collapse, protocol, dose or design check left out are listed in ``checks``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from suite.analysis.claims.context import Context, Units
from suite.analysis.claims.definitions import (
    ALPHA,
    HOLDS,
    INCONCLUSIVE,
    MIN_SEEDS,
    NOT_APPLICABLE,
    NOT_HOLD,
    POOLED,
    ClaimRow,
)
from suite.core.stats import Interval, cluster_means, clustered_t_interval, holm, random_effects, t_interval

SHOWN_UNITS = 12


def _seed_text(seeds) -> str:
    values = sorted(
        {
            int(s) if isinstance(s, (int, float, np.integer, np.floating)) and float(s).is_integer() else s
            for s in seeds
        },
        key=str,
    )
    return ", ".join(str(s) for s in values)


def unit_evidence(units: pd.DataFrame) -> str:
    labels = list(units["label"])
    shown = ", ".join(labels[:SHOWN_UNITS]) + (" …" if len(labels) > SHOWN_UNITS else "")
    return f"{len(labels)} unit(s): {shown}; seeds {_seed_text(units['seed'])}"


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _side(estimate: float, threshold: float, claim_above: bool) -> str:
    return HOLDS if (estimate > threshold) == claim_above else NOT_HOLD


def _decide(test: Interval, p_adjusted: float, threshold: float, claim_above: bool, n_methods: int) -> tuple[str, str]:
    if test.n == 0:
        return INCONCLUSIVE, "no usable values"
    if test.n < MIN_SEEDS:
        return INCONCLUSIVE, f"too few seeds: {test.n}; a verdict needs >= {MIN_SEEDS}"
    if not math.isfinite(test.p_value):
        return INCONCLUSIVE, "no test possible"
    if p_adjusted < ALPHA and test.estimate != threshold:
        return _side(test.estimate, threshold, claim_above), ""
    if test.sign_test:
        return INCONCLUSIVE, (
            f"no spread: every seed gives {test.estimate:.4g}, so no interval; the sign test gives p = "
            f"{test.p_value:.3g}" + (f" (Holm over {n_methods} methods: {p_adjusted:.3g})" if n_methods > 1 else "")
        )
    if test.p_value < ALPHA:
        return INCONCLUSIVE, (
            f"p = {test.p_value:.3g} < {ALPHA:g}, but Holm-adjusted over the {n_methods} methods judged on this "
            f"claim p = {p_adjusted:.3g}"
        )
    return INCONCLUSIVE, f"95% interval [{test.lo:.4g}, {test.hi:.4g}] contains the threshold {threshold:g}"


def _fill(row: ClaimRow, test: Interval, units: pd.DataFrame) -> None:
    row.value, row.ci_lo, row.ci_hi, row.p_value = test.estimate, test.lo, test.hi, test.p_value
    row.n, row.n_seeds = len(units), test.n


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


def _other_rows(claim, units: Units, ctx: Context, judged: set[str]) -> list[ClaimRow]:
    """Rows of the methods without units: not applicable, a verdict decided before judging, or left out."""
    rows = []
    for method in ctx.methods:
        if method in judged:
            continue
        row = claim.row(method)
        if claim.normalizing_only and ctx.normalizes(method) is False:
            row.verdict = NOT_APPLICABLE
            row.reason = f"{method}'s loss does not L2-normalize its embedding; the claim is about losses that do"
        elif method in units.per_method_verdict:
            row.verdict, row.reason = units.per_method_verdict[method]
        elif units.verdict:
            row.verdict, row.reason = units.verdict, units.reason
        else:
            checked = "no unit passes its checks (see checks)" if units.checks.get(method) else ""
            row.reason = _join(checked, units.left_out.get(method, "")) or units.reason or "no units"
        row.checks = "; ".join(units.checks.get(method, []))
        row.evidence = _join(row.evidence, units.method_evidence.get(method, ""))
        rows.append(row)
    return rows


def _applicable(claim, units: Units, ctx: Context) -> pd.DataFrame:
    frame = units.frame
    if claim.normalizing_only and len(frame):
        frame = frame[[ctx.normalizes(m) is not False for m in frame["method"]]]
    return frame


def _pooled_row(claim, units: Units, frame: pd.DataFrame, rows: list[ClaimRow]) -> ClaimRow:
    pooled = claim.row(POOLED)
    pooled.statistic = (claim.statistic + " (random effects over methods)") if claim.statistic else ""
    pooled.checks = "; ".join(f"{m}: {'; '.join(c)}" for m, c in sorted(units.checks.items()) if c)
    if frame.empty:
        decided = {r.verdict for r in rows}
        if len(decided) == 1 and rows and rows[0].verdict not in (HOLDS, NOT_HOLD, INCONCLUSIVE):
            pooled.verdict = rows[0].verdict  # every method not applicable / not measured / not testable
        pooled.reason = units.reason or "; ".join(sorted({r.reason for r in rows if r.reason})) or "no usable values"
        pooled.evidence = "; ".join(units.notes)
    return pooled


def judge_mean(claim, units: Units, ctx: Context) -> list[ClaimRow]:
    """Rows of a mean-based claim: per method a t-interval over seed means against ``claim.threshold``
    (Holm over methods), then the random-effects pooled row."""
    frame = _applicable(claim, units, ctx)
    tests: dict[str, Interval] = {}
    for method, group in frame.groupby("method", sort=True):
        tests[str(method)] = clustered_t_interval(group["value"], group["seed"], threshold=claim.threshold)
    methods = list(tests)
    adjusted = dict(zip(methods, holm([tests[m].p_value for m in methods]))) if methods else {}
    n_tested = sum(math.isfinite(tests[m].p_value) for m in methods)
    rows = []
    evidence = claim.options.get("evidence")
    for method in methods:
        group = frame[frame["method"] == method]
        row = claim.row(method)
        test = tests[method]
        _fill(row, test, group)
        row.p_holm = adjusted[method]
        row.verdict, row.reason = _decide(test, adjusted[method], claim.threshold, claim.claim_above, n_tested)
        if method in units.per_method_verdict:
            row.verdict, row.reason = units.per_method_verdict[method]
        row.evidence = _join(
            unit_evidence(group),
            evidence(group) if evidence else "",
            units.method_evidence.get(method, ""),
            units.left_out.get(method, ""),
        )
        row.checks = "; ".join(units.checks.get(method, []))
        rows.append(row)
    rows += _other_rows(claim, units, ctx, set(methods))
    pooled = _pooled_row(claim, units, frame, rows)
    if len(frame):
        variances = []
        for method in methods:
            _, means = cluster_means(
                frame.loc[frame["method"] == method, "value"], frame.loc[frame["method"] == method, "seed"]
            )
            variances.append(float(np.var(means, ddof=1) / means.size) if means.size > 1 else math.nan)
        estimates = [tests[m].estimate for m in methods]
        test = random_effects(estimates, variances, threshold=claim.threshold)
        if test.n <= 1:  # one method with an interval (or none): the pooled row is that method's
            only = [m for m, v in zip(methods, variances) if math.isfinite(v) and v > 0]
            test = tests[only[0]] if only else t_interval(estimates, threshold=claim.threshold)
        pooled.value, pooled.ci_lo, pooled.ci_hi, pooled.p_value = test.estimate, test.lo, test.hi, test.p_value
        pooled.n, pooled.n_seeds = len(frame), int(frame["seed"].nunique())
        pooled.verdict, pooled.reason = _decide(test, test.p_value, claim.threshold, claim.claim_above, 1)
        shared = {r.verdict for r in rows if r.n > 0}
        if pooled.verdict == INCONCLUSIVE and len(shared) == 1 and shared <= {HOLDS, NOT_HOLD} and test.n > 1:
            pooled.reason = (
                f"every method with units: {shared.pop()}; but their effects differ so much between methods that the "
                f"random-effects interval [{test.lo:.4g}, {test.hi:.4g}] of the mean effect contains the threshold "
                f"{claim.threshold:g}"
            )
        per_method = "; ".join(f"{r.method} {r.value:.4g}" for r in rows if math.isfinite(r.value))
        pooled.evidence = _join(f"per method: {per_method}", f"pooled by {test.method}", *units.notes)
        _pooled_guard(pooled, rows)
    return rows + [pooled]


def judge_identity(claim, units: Units, ctx: Context) -> list[ClaimRow]:
    """Rows of a deterministic identity: holds when the largest unit value (a deviation from the
    theory, >= 0) is below ``claim.tolerance``; no interval."""
    frame = _applicable(claim, units, ctx)
    rows = []
    evidence = claim.options.get("evidence")
    judged = sorted(frame["method"].astype(str).unique()) if len(frame) else []
    for method, group in [(m, frame[frame["method"] == m]) for m in judged] + [(POOLED, frame)]:
        row = claim.row(method)
        row.checks = "; ".join(units.checks.get(method, [])) if method != POOLED else ""
        if len(group):
            worst = group.loc[group["value"].idxmax()]
            row.value, row.n, row.n_seeds = float(worst["value"]), len(group), int(group["seed"].nunique())
            row.verdict = HOLDS if row.value < claim.tolerance else NOT_HOLD
            row.evidence = _join(
                f"{len(group)} trial(s); median {group['value'].median():.3g}; largest in {worst['label']}",
                evidence(group) if evidence else "",
                units.method_evidence.get(method, "")
                if method != POOLED
                else "; ".join(f"{m}: {text}" for m, text in sorted(units.method_evidence.items())),
                *(units.notes if method == POOLED else []),
            )
            if method == POOLED:
                per = {r.method: r.verdict for r in rows if r.n}
                if len(set(per.values())) > 1:
                    row.reason = "methods differ: " + "; ".join(f"{m} {v}" for m, v in per.items())
        else:
            row.reason = units.reason or "no trial has the column's values"
        rows.append(row)
    pooled = rows.pop()
    rows += _other_rows(claim, units, ctx, set(judged))
    if not len(frame):
        pooled = _pooled_row(claim, units, frame, rows)
    return rows + [pooled]
