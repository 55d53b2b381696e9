"""Uncertainty for the numbers the suite reports: bootstrap intervals for AUROCs
and t-intervals over seeds for differences between groups.

Why: two seeds and a few thousand test samples are what most runs have, so a
bare AUROC or a bare Δ-vs-baseline invites reading noise as an effect. Both
helpers are vectorised (no per-sample Python) and deterministic given a seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "resampled_aurocs",
    "bootstrap_auroc_interval",
    "Interval",
    "t_interval",
    "difference_interval",
    "clustered_t_interval",
    "sign_flip_p",
    "sign_test_p",
    "holm",
    "random_effects",
    "t_test_power",
    "seeds_for_power",
]

# Upper bound on (resamples x samples) materialized at once: 4M float64 = 32 MB per array.
_CHUNK_ELEMENTS = 1 << 22
NO_SPREAD = 1e-9  # a standard deviation below this fraction of the values' magnitude is rounding, not spread


def _scipy_stats():
    """scipy.stats, imported on first use: every trial process imports this module (for the bootstrap AUROC
    interval, which needs numpy only), and scipy.stats costs each of them most of a second of CPU."""
    from scipy import stats

    return stats


def resampled_aurocs(
    pos_scores: np.ndarray, neg_scores: np.ndarray, pos_index: np.ndarray, neg_index: np.ndarray
) -> np.ndarray:
    """AUROC of each resample ``(pos_scores[pos_index[b]], neg_scores[neg_index[b]])``.

    ``pos_index``/``neg_index`` are integer arrays ``[B, n_pos]`` / ``[B, n_neg]``.
    Computed as a weighted Mann-Whitney U (ties count 1/2) from the multiplicity of
    each sample in each resample, against the negatives sorted once: O(B·n) with
    no re-ranking per resample.
    """
    n_pos, n_neg = pos_scores.size, neg_scores.size
    order = np.argsort(neg_scores, kind="stable")
    neg_sorted = neg_scores[order]
    rank_of = np.empty(n_neg, dtype=np.int64)
    rank_of[order] = np.arange(n_neg)
    below = np.searchsorted(neg_sorted, pos_scores, side="left")  # negatives strictly below each positive
    upto = np.searchsorted(neg_sorted, pos_scores, side="right")  # ... at or below
    b = pos_index.shape[0]
    rows = np.arange(b)[:, None]
    w_pos = np.bincount((rows * n_pos + pos_index).ravel(), minlength=b * n_pos).reshape(b, n_pos)
    w_neg = np.bincount((rows * n_neg + rank_of[neg_index]).ravel(), minlength=b * n_neg).reshape(b, n_neg)
    cum = np.zeros((b, n_neg + 1))
    np.cumsum(w_neg, axis=1, out=cum[:, 1:])
    less, leq = cum[:, below], cum[:, upto]
    u = (w_pos * (0.5 * (less + leq))).sum(axis=1)
    return u / (pos_index.shape[1] * neg_index.shape[1])


def bootstrap_auroc_interval(
    pos_scores: Any, neg_scores: Any, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUROC (positives scored above negatives).

    Stratified: positives and negatives are resampled separately, so every
    resample keeps both classes and their sizes (as pROC does by default); the
    resamples come from ``numpy.random.default_rng(seed)``, so the interval repeats
    exactly. The caller decides whether the AUROC is meaningful at all (one class,
    constant scores); here both inputs must be non-empty and finite.
    """
    pos = np.asarray(pos_scores, dtype=np.float64).ravel()
    neg = np.asarray(neg_scores, dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0 or not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // max(pos.size, neg.size))
    values = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):  # a few chunks of resamples, never a loop over samples
        b = min(chunk, n_resamples - start)
        pos_index = rng.integers(0, pos.size, size=(b, pos.size))
        neg_index = rng.integers(0, neg.size, size=(b, neg.size))
        values[start : start + b] = resampled_aurocs(pos, neg, pos_index, neg_index)
    alpha = 1.0 - confidence
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval and a two-sided p-value against a threshold.

    ``lo``/``hi`` are NaN when ``n`` < 2 or the values do not vary (then, with ``n`` >= 2,
    ``p_value`` is the exact sign test's, and ``sign_test`` says so); ``method`` names the test."""

    estimate: float
    lo: float
    hi: float
    n: int  # units behind the interval: seeds, seed pairs or seed clusters; unpaired: the smaller group
    paired: bool = False
    p_value: float = math.nan
    sign_test: bool = False
    method: str = ""

    @property
    def significant(self) -> bool:
        """The interval exists and excludes 0."""
        return bool(np.isfinite(self.lo) and np.isfinite(self.hi) and (self.lo > 0 or self.hi < 0))


def no_spread(x: np.ndarray) -> bool:
    """Values equal up to float rounding: a t-interval would have zero width, certainty from no
    evidence of variability (e.g. seeds whose discrete accuracies differ by the same amount)."""
    return x.size < 2 or not float(x.std(ddof=1)) > NO_SPREAD * float(np.abs(x).max())


def sign_test_p(x: np.ndarray, threshold: float = 0.0) -> float:
    """Exact two-sided sign test of the values against ``threshold`` (ties dropped)."""
    above, below = int((x > threshold).sum()), int((x < threshold).sum())
    return float(_scipy_stats().binomtest(above, above + below).pvalue) if above + below else 1.0


def _t_bounds(center: float, se: float, df: float, confidence: float) -> tuple[float, float]:
    half = _scipy_stats().t.ppf(0.5 + confidence / 2, df) * se
    return center - half, center + half


def t_interval(values: Any, confidence: float = 0.95, threshold: float = 0.0) -> Interval:
    """Mean of ``values`` (NaN skipped) with its Student-t interval (ddof=1) and the one-sample
    t-test p against ``threshold``; without spread, no interval and the exact sign test's p."""
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    n = x.size
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, method="no values")
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n, method="one value: no interval")
    if no_spread(x):
        return Interval(
            mean,
            math.nan,
            math.nan,
            n,
            p_value=sign_test_p(x, threshold),
            sign_test=True,
            method="no spread: exact sign test",
        )
    lo, hi = _t_bounds(mean, float(x.std(ddof=1)) / math.sqrt(n), n - 1, confidence)
    return Interval(mean, lo, hi, n, p_value=float(_scipy_stats().ttest_1samp(x, threshold).pvalue), method="Student-t")


def cluster_means(values: Any, clusters: Any, groups: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(cluster ids, cluster means): units averaged within their cluster, and, with ``groups``
    (e.g. methods), first within each (cluster, group) so every group weighs the same in a cluster."""
    frame = pd.DataFrame({"v": np.asarray(values, dtype=np.float64), "c": np.asarray(clusters, dtype=object)})
    frame = frame[frame["v"].notna()]
    if groups is not None:
        frame["g"] = np.asarray(groups, dtype=object)[frame.index.to_numpy()]
        frame = frame.groupby(["c", "g"], sort=True)["v"].mean().reset_index()
    means = frame.groupby("c", sort=True)["v"].mean()
    return means.index.to_numpy(), means.to_numpy()


def clustered_t_interval(
    values: Any, clusters: Any, groups: Any = None, confidence: float = 0.95, threshold: float = 0.0
) -> Interval:
    """`t_interval` over cluster means: units that share a cluster (a seed, whose initialization
    every method and arm of that seed shares, and whose baseline several arms share) count once."""
    _, means = cluster_means(values, clusters, groups)
    inner = t_interval(means, confidence, threshold)
    return Interval(
        inner.estimate,
        inner.lo,
        inner.hi,
        inner.n,
        p_value=inner.p_value,
        sign_test=inner.sign_test,
        method=f"{inner.method} over seed clusters",
    )


def sign_flip_p(scores: Any) -> float:
    """Exact two-sided sign-flip (randomization) test that cluster scores are symmetric about 0:
    the share of the 2^S sign assignments whose |sum| reaches the observed one. With S clusters
    the smallest p is 2 / 2^S, so S >= 6 are needed for p < 0.05 (beyond 16, 65,536 draws)."""
    x = np.asarray(scores, dtype=np.float64)
    x = x[np.isfinite(x) & (x != 0)]
    if x.size == 0:
        return 1.0
    observed = abs(x.sum())
    if x.size <= 16:
        signs = 1 - 2 * ((np.arange(2**x.size)[:, None] >> np.arange(x.size)) & 1)
    else:
        signs = np.random.default_rng(0).choice([-1, 1], size=(65_536, x.size))
    return float((np.abs(signs @ x) >= observed - 1e-12).mean())


def _shared_seeds(a_seeds: np.ndarray | None, b_seeds: np.ndarray | None) -> list | None:
    """The seeds a paired comparison uses (sorted), or None when it must be unpaired:
    a side without seeds, a repeated seed, or seed sets that are not nested."""
    if a_seeds is None or b_seeds is None:
        return None
    a_set, b_set = set(a_seeds.tolist()), set(b_seeds.tolist())
    if len(a_set) != a_seeds.size or len(b_set) != b_seeds.size or not (a_set <= b_set or b_set <= a_set):
        return None
    return sorted(a_set & b_set)


def difference_interval(
    values: Any, baseline: Any, seeds: Any = None, baseline_seeds: Any = None, confidence: float = 0.95
) -> Interval:
    """``mean(values) - mean(baseline)`` with a t-interval over seeds (NaN values skipped).

    Paired (`t_interval` of the per-seed differences) when each side's seeds are
    distinct and one side's seeds include the other's, since a shared seed shares
    data order and initialization noise. Seeds only one side ran (e.g. extra seeds
    for a baseline) are left out of a paired comparison, so its estimate is the mean
    of the per-seed differences over the shared seeds. Otherwise Welch's unpaired
    interval of the difference of means. Either way it is the leaderboard's Δ.
    """
    a = np.asarray(values, dtype=np.float64).ravel()
    b = np.asarray(baseline, dtype=np.float64).ravel()
    keep_a, keep_b = ~np.isnan(a), ~np.isnan(b)
    a_seeds = None if seeds is None else np.asarray(seeds).ravel()[keep_a]
    b_seeds = None if baseline_seeds is None else np.asarray(baseline_seeds).ravel()[keep_b]
    a, b = a[keep_a], b[keep_b]
    if a.size == 0 or b.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    shared = _shared_seeds(a_seeds, b_seeds)
    if shared is not None:
        a_of = dict(zip(a_seeds.tolist(), a))
        b_of = dict(zip(b_seeds.tolist(), b))
        diffs = np.array([a_of[s] for s in shared]) - np.array([b_of[s] for s in shared])
        inner = t_interval(diffs, confidence)
        return Interval(
            inner.estimate,
            inner.lo,
            inner.hi,
            inner.n,
            paired=True,
            p_value=inner.p_value,
            sign_test=inner.sign_test,
            method=f"paired {inner.method}",
        )
    estimate = float(a.mean() - b.mean())
    n = min(a.size, b.size)
    if n < 2:
        return Interval(estimate, math.nan, math.nan, n, method="one value: no interval")
    if no_spread(a) and no_spread(b):
        return Interval(estimate, math.nan, math.nan, n, method="no spread")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    lo, hi = _t_bounds(estimate, se, df, confidence)
    return Interval(estimate, lo, hi, n, p_value=float(2 * _scipy_stats().t.sf(abs(estimate) / se, df)), method="Welch")


def holm(p_values: Any) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error over the finite ones; NaN stay NaN).

    The i-th smallest of m p-values becomes max over j <= i of (m - j + 1) p_(j), capped at 1: a
    claim judged on five methods must not count as shown for one of them only because five tries
    were made."""
    p = np.asarray(p_values, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(stepped, 1.0)
    return out


def random_effects(estimates: Any, variances: Any, confidence: float = 0.95, threshold: float = 0.0) -> Interval:
    """Pooled estimate over studies (here: methods) that may differ in their true effect.

    DerSimonian-Laird between-study variance tau^2, weights 1 / (v_i + tau^2), and the
    Hartung-Knapp-Sidik-Jonkman interval: a Student-t with k - 1 degrees of freedom on the
    weighted residual variance, floored at the DL standard error (the conservative variant),
    which keeps its coverage with few studies where the normal DL interval does not. ``n`` is the
    number of studies; one study gives its own estimate and no interval."""
    theta = np.asarray(estimates, dtype=np.float64).ravel()
    v = np.asarray(variances, dtype=np.float64).ravel()
    keep = np.isfinite(theta) & np.isfinite(v) & (v > 0)
    theta, v = theta[keep], v[keep]
    k = theta.size
    if k == 0:
        return Interval(math.nan, math.nan, math.nan, 0, method="no studies")
    if k == 1:
        return Interval(float(theta[0]), math.nan, math.nan, 1, method="one study: no interval")
    w = 1.0 / v
    fixed = float((w * theta).sum() / w.sum())
    q = float((w * (theta - fixed) ** 2).sum())
    tau2 = max(0.0, (q - (k - 1)) / (w.sum() - (w**2).sum() / w.sum()))
    w_star = 1.0 / (v + tau2)
    pooled = float((w_star * theta).sum() / w_star.sum())
    hksj = float((w_star * (theta - pooled) ** 2).sum() / ((k - 1) * w_star.sum()))
    se = math.sqrt(max(hksj, 1.0 / float(w_star.sum())))
    lo, hi = _t_bounds(pooled, se, k - 1, confidence)
    p = float(2 * _scipy_stats().t.sf(abs(pooled - threshold) / se, k - 1))
    return Interval(pooled, lo, hi, k, p_value=p, method=f"random effects over {k} (DL tau^2 {tau2:.3g}, HKSJ)")


def t_test_power(n: int, effect: float, alpha: float) -> float:
    """Power of the two-sided one-sample t-test on ``n`` per-seed paired differences (the claims' test over
    seed clusters) to find a true mean difference of ``effect`` standard deviations at level ``alpha``:
    the noncentral t (df n - 1, noncentrality effect * sqrt(n)) beyond the critical value."""
    if n < 2:
        return float("nan")
    df = n - 1
    critical = _scipy_stats().t.ppf(1 - alpha / 2, df)
    noncentrality = effect * math.sqrt(n)
    return float(
        _scipy_stats().nct.sf(critical, df, noncentrality) + _scipy_stats().nct.cdf(-critical, df, noncentrality)
    )


def seeds_for_power(effect: float, alpha: float, power: float = 0.8, most: int = 1000) -> int:
    """The fewest seeds (paired units) whose `t_test_power` reaches ``power``: how a run is sized before it
    trains. ``alpha`` is the level the smallest p must pass (Holm over m methods: alpha / m)."""
    for n in range(2, most + 1):
        if t_test_power(n, effect, alpha) >= power:
            return n
    raise ValueError(f"more than {most} seeds for effect {effect} at alpha {alpha} and power {power}")
