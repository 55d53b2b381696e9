"""Uncertainty helpers against sklearn and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from sklearn.metrics import roc_auc_score

from suite.core.stats import (
    bootstrap_auroc_interval,
    difference_interval,
    holm,
    random_effects,
    resampled_aurocs,
    seeds_for_power,
    t_interval,
    t_test_power,
)


def test_each_resampled_auroc_equals_sklearn_on_the_explicit_resample():
    rng = np.random.default_rng(0)
    pos = np.round(rng.normal(0.8, 1.0, 120), 1)  # rounded: many ties, within and across classes
    neg = np.round(rng.normal(0.0, 1.0, 200), 1)
    pos_index = rng.integers(0, pos.size, (25, pos.size))
    neg_index = rng.integers(0, neg.size, (25, neg.size))
    got = resampled_aurocs(pos, neg, pos_index, neg_index)
    labels = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    expected = [roc_auc_score(labels, np.r_[pos[pi], neg[ni]]) for pi, ni in zip(pos_index, neg_index)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_bootstrap_interval_agrees_with_scipy_bootstrap_and_repeats_with_the_seed():
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(0.7, 1.0, 400), rng.normal(0.0, 1.0, 600)
    lo, hi = bootstrap_auroc_interval(pos, neg, seed=0)
    point = roc_auc_score(np.r_[np.ones(400), np.zeros(600)], np.r_[pos, neg])
    assert lo < point < hi
    assert bootstrap_auroc_interval(pos, neg, seed=0) == (lo, hi)
    assert bootstrap_auroc_interval(pos, neg, seed=1) != (lo, hi)

    def statistic(x, y, axis):  # same stratified scheme: scipy resamples each sample on its own
        return scipy_stats.mannwhitneyu(x, y, axis=axis).statistic / (x.shape[axis] * y.shape[axis])

    ref = scipy_stats.bootstrap(
        (pos, neg), statistic, n_resamples=1000, method="percentile", random_state=0, vectorized=True, batch=100
    ).confidence_interval
    # Two Monte-Carlo estimates of the same interval: equal up to resampling noise.
    assert lo == pytest.approx(ref.low, abs=0.01) and hi == pytest.approx(ref.high, abs=0.01)
    assert math.isnan(bootstrap_auroc_interval(pos, [], seed=0)[0])


def test_t_interval_matches_scipy():
    x = np.array([0.61, 0.64, 0.58, 0.66, np.nan])
    got = t_interval(x)
    ref = scipy_stats.t.interval(0.95, 3, loc=np.mean(x[:4]), scale=scipy_stats.sem(x[:4]))
    assert got.estimate == pytest.approx(np.mean(x[:4])) and got.n == 4
    assert (got.lo, got.hi) == pytest.approx(ref)
    one = t_interval([0.5])
    assert one.estimate == 0.5 and one.n == 1 and math.isnan(one.lo) and math.isnan(one.hi) and not one.significant


def test_difference_interval_paired_by_seed_or_welch():
    a = np.array([0.62, 0.60, 0.67])
    base = np.array([0.54, 0.58, 0.50])  # listed in a different seed order below
    paired = difference_interval(a, base, seeds=[1, 0, 2], baseline_seeds=[1, 2, 0])
    a_by_seed, base_by_seed = a[[1, 0, 2]], base[[2, 0, 1]]
    ref = scipy_stats.ttest_rel(a_by_seed, base_by_seed).confidence_interval(0.95)
    assert paired.paired and paired.n == 3
    assert paired.estimate == pytest.approx(a.mean() - base.mean())
    assert (paired.lo, paired.hi) == pytest.approx((ref.low, ref.high))
    # Seeds that do not match: Welch's unpaired interval.
    welch = difference_interval(a, base, seeds=[0, 1, 2], baseline_seeds=[0, 1, 5])
    ref = scipy_stats.ttest_ind(a, base, equal_var=False).confidence_interval(0.95)
    assert not welch.paired and (welch.lo, welch.hi) == pytest.approx((ref.low, ref.high))
    assert welch.estimate == pytest.approx(a.mean() - base.mean())
    assert (welch.lo > 0) == welch.significant
    # A baseline with extra seeds (nested seed sets): paired on the shared seeds only.
    base5 = np.array([0.55, 0.57, 0.49, 0.70, 0.40])  # seeds 4, 0, 1, 3, 2
    nested = difference_interval(a, base5, seeds=[0, 1, 2], baseline_seeds=[4, 0, 1, 3, 2])
    shared_base = base5[[1, 2, 4]]  # seeds 0, 1, 2
    ref = scipy_stats.ttest_rel(a, shared_base).confidence_interval(0.95)
    assert nested.paired and nested.n == 3
    assert nested.estimate == pytest.approx(a.mean() - shared_base.mean())
    assert nested.estimate != pytest.approx(a.mean() - base5.mean())
    assert (nested.lo, nested.hi) == pytest.approx((ref.low, ref.high))
    swapped = difference_interval(base5, a, seeds=[4, 0, 1, 3, 2], baseline_seeds=[0, 1, 2])
    assert swapped.paired and swapped.estimate == pytest.approx(-nested.estimate)
    # A repeated seed cannot be paired: Welch.
    repeated = difference_interval(a, base, seeds=[0, 0, 1], baseline_seeds=[0, 1, 2])
    assert not repeated.paired
    # Unequal sizes, no seeds at all: Welch as well.
    ref = scipy_stats.ttest_ind(a[:2], base, equal_var=False).confidence_interval(0.95)
    got = difference_interval(a[:2], base)
    assert (got.lo, got.hi) == pytest.approx((ref.low, ref.high)) and got.n == 2
    # One seed: no interval.
    one = difference_interval([0.6], [0.5], seeds=[0], baseline_seeds=[0])
    assert one.estimate == pytest.approx(0.1) and one.n == 1 and math.isnan(one.lo) and not one.significant
    # Seeds that all differ by exactly the same amount: no zero-width "certain" interval.
    flat = difference_interval([0.60, 0.70], [0.50, 0.60], seeds=[0, 1], baseline_seeds=[1, 0][::-1])
    assert flat.paired and flat.n == 2 and flat.estimate == pytest.approx(0.1)
    assert math.isnan(flat.lo) and math.isnan(flat.hi) and not flat.significant
    ulps = difference_interval([0.1 + 0.2, 0.7], [0.2, 0.6], seeds=[0, 1], baseline_seeds=[0, 1])
    assert (0.1 + 0.2) - 0.2 != 0.7 - 0.6  # equal differences up to float rounding only
    assert math.isnan(ulps.lo) and not ulps.significant
    assert math.isnan(t_interval([0.1 + 0.2, 0.3]).lo)
    # An interval that straddles 0 is not significant.
    noisy = difference_interval([0.5, 0.7], [0.55, 0.6], seeds=[0, 1], baseline_seeds=[0, 1])
    assert noisy.lo < 0 < noisy.hi and not noisy.significant


def test_holm_against_the_bonferroni_bound_and_a_hand_computation():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    adjusted = holm(p)
    assert math.isnan(adjusted[4])
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 with the running maximum
    assert adjusted[[3, 0, 2, 1]] == pytest.approx([0.02, 0.03, 0.06, 0.06])
    assert (adjusted[:4] <= np.minimum(4 * p[:4], 1.0) + 1e-15).all() and (adjusted[:4] >= p[:4]).all()
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 0.8 x 2 caps at 1, and the maximum carries on


def test_random_effects_reduces_to_the_fixed_effect_without_heterogeneity_and_widens_with_it():
    same = random_effects([1.0, 1.0, 1.0], [0.04, 0.09, 0.01])
    w = np.array([1 / 0.04, 1 / 0.09, 1 / 0.01])
    se = math.sqrt(1 / w.sum())  # tau^2 = 0 and no residual: the floor, the fixed-effect standard error
    half = scipy_stats.t.ppf(0.975, 2) * se
    assert same.estimate == pytest.approx(1.0) and (same.lo, same.hi) == pytest.approx((1 - half, 1 + half))
    spread = random_effects([0.0, 1.0, 2.0], [0.01, 0.01, 0.01])
    assert spread.estimate == pytest.approx(1.0) and spread.hi - spread.lo > 5 * (same.hi - same.lo)
    assert random_effects([0.4], [0.01]).n == 1 and math.isnan(random_effects([0.4], [0.01]).lo)
    assert random_effects([0.4, np.nan, 0.5], [0.01, 0.01, 0.0]).n == 1  # unusable studies are left out


def test_t_test_power_matches_a_simulation_and_the_textbook_sample_size():
    """Power from the noncentral t against the rejection rate of scipy's one-sample t-test on simulated
    paired differences; and the textbook size for a medium effect (d = 0.5, two-sided 0.05, power 0.8: 34)."""
    rng = np.random.default_rng(0)
    for n, effect, alpha in ((8, 1.35, 0.01), (10, 1.0, 0.05), (5, 2.0, 0.05)):
        draws = rng.normal(effect, 1.0, size=(20_000, n))
        rejected = (scipy_stats.ttest_1samp(draws, 0.0, axis=1).pvalue < alpha).mean()
        assert abs(t_test_power(n, effect, alpha) - rejected) < 0.012, (n, effect, alpha, rejected)
    assert seeds_for_power(0.5, 0.05, 0.8) == 34
    n = seeds_for_power(1.35, 0.01, 0.8)
    assert t_test_power(n, 1.35, 0.01) >= 0.8 > t_test_power(n - 1, 1.35, 0.01)
