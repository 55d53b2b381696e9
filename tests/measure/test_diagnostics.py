"""Confidence diagnostics against sklearn / scipy / pandas and hand computations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import rankdata, spearmanr
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

from suite.core.errors import ConfigError
from suite.measure.diagnostics import (
    accuracy_per_equal_width_bin,
    accuracy_per_norm_bin,
    auroc,
    auroc_with_interval,
    average_ranks,
    control_diagnostics,
    frequency_norm_spearman,
    norm_diagnostics,
    ood_auroc,
    within_class_auroc,
)
from suite.results.schema import BIN_COLUMNS


@pytest.mark.parametrize("n, distinct", [(1, 1), (7, 3), (500, 5), (500, 500)])
def test_average_ranks_equal_scipys_rankdata(n, distinct):
    values = np.random.default_rng(n).integers(0, distinct, n).astype(float) * 0.25 - 0.5  # ties, negatives
    np.testing.assert_array_equal(average_ranks(values), rankdata(values, method="average"))


def test_auroc_equals_sklearn_with_and_without_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    continuous = rng.normal(size=500) + 0.8 * y
    tied = np.round(continuous)  # heavy ties
    for s in (continuous, tied):
        assert auroc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert auroc(torch.from_numpy(s), torch.from_numpy(y).bool()) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert math.isnan(auroc(continuous, np.ones(500)))
    assert math.isnan(auroc(np.array([0.1, np.nan]), np.array([0, 1])))


def test_accuracy_per_decile_matches_numpy_loop_and_pandas_qcut():
    rng = np.random.default_rng(1)
    norms = rng.lognormal(size=1000)
    correct = rng.random(1000) < 1 / (1 + np.exp(-(norms - 1)))
    frame = accuracy_per_norm_bin(torch.from_numpy(norms), torch.from_numpy(correct))
    assert list(frame.columns) == list(BIN_COLUMNS) and len(frame) == 10
    edges = np.percentile(norms, np.arange(0, 101, 10))
    for i in range(10):
        upper_ok = norms <= edges[i + 1] if i == 9 else norms < edges[i + 1]
        mask = (norms >= edges[i]) & upper_ok
        assert frame["count"][i] == mask.sum()
        assert frame["accuracy"][i] == pytest.approx(correct[mask].mean())
        assert frame["norm_lo"][i] == pytest.approx(edges[i])
        assert frame["norm_hi"][i] == pytest.approx(edges[i + 1])
    # Independent second implementation (no data point sits on an edge here).
    by_qcut = pd.Series(correct).groupby(pd.qcut(norms, 10, labels=False)).mean()
    np.testing.assert_allclose(frame["accuracy"].to_numpy(), by_qcut.to_numpy())
    assert frame["count"].sum() == 1000


def test_tied_norms_leave_empty_bins_with_nan_accuracy():
    norms = np.array([1.0] * 8 + [2.0, 3.0])
    frame = accuracy_per_norm_bin(norms, np.array([1] * 8 + [0, 1]), n_bins=5)
    assert frame["count"].sum() == 10
    assert frame["count"].tolist() == [0, 0, 0, 8, 2]
    assert frame["accuracy"].isna().tolist() == [True, True, True, False, False]


def test_equal_width_bins_match_numpy_histogram_and_a_hand_computation():
    rng = np.random.default_rng(4)
    norms = rng.lognormal(size=2000) + 3.0
    correct = rng.random(2000) < 1 / (1 + np.exp(-(norms - 4)))
    frame = accuracy_per_equal_width_bin(torch.from_numpy(norms), torch.from_numpy(correct))
    assert list(frame.columns) == list(BIN_COLUMNS) and len(frame) == 20 and (frame["binning"] == "equal_width").all()
    counts, edges = np.histogram(norms, bins=20)
    hits, _ = np.histogram(norms, bins=edges, weights=correct.astype(float))
    np.testing.assert_array_equal(frame["count"].to_numpy(), counts)
    np.testing.assert_allclose(frame["norm_lo"].to_numpy(), edges[:-1])
    np.testing.assert_allclose(frame["norm_hi"].to_numpy(), edges[1:])
    with np.errstate(invalid="ignore", divide="ignore"):
        np.testing.assert_allclose(frame["accuracy"].to_numpy(), np.where(counts > 0, hits / counts, np.nan))
    # By hand: bin = floor(20 * min-max-normalized norm), the maximum in the last bin.
    u = (norms - norms.min()) / (norms.max() - norms.min())
    by_hand = np.minimum(np.floor(20 * u), 19).astype(int)
    for i in range(20):
        assert frame["count"][i] == (by_hand == i).sum()
        if (by_hand == i).any():
            assert frame["accuracy"][i] == pytest.approx(correct[by_hand == i].mean())
    assert frame["count"].iloc[-1] >= 1 and frame["count"].sum() == 2000
    # The tail is sparse: equal width leaves late bins nearly empty where deciles hold 200 each.
    assert frame["count"].iloc[-5:].sum() < 50


def test_equal_width_bins_of_constant_or_non_finite_norms():
    frame = accuracy_per_equal_width_bin(np.full(7, 2.5), np.ones(7))
    assert frame["count"].tolist() == [0] * 19 + [7] and (frame["norm_lo"] == 2.5).all()
    frame = accuracy_per_equal_width_bin(np.array([1.0, np.nan, 3.0, np.inf]), np.array([1, 1, 0, 1]))
    assert frame["count"].sum() == 2 and frame["accuracy"].iloc[0] == 1.0 and frame["accuracy"].iloc[-1] == 0.0


def test_auroc_interval_contains_the_estimate_and_repeats_with_the_seed():
    x, y = load_digits(return_X_y=True)
    norms = np.linalg.norm(x, axis=1)
    correct = (y % 2 == 0) ^ (np.random.default_rng(5).random(len(y)) < 0.3)  # a weak, real signal
    est = auroc_with_interval(norms, correct, seed=3)
    assert est.note == ""
    assert est.value == pytest.approx(roc_auc_score(correct, norms), abs=1e-12)
    assert est.ci_lo < est.value < est.ci_hi and est.ci_hi - est.ci_lo < 0.15
    assert auroc_with_interval(norms, correct, seed=3) == est
    assert auroc_with_interval(norms, correct, seed=4) != est
    assert auroc_with_interval(norms, correct, seed=3, confidence=0.5).ci_hi < est.ci_hi


@pytest.mark.parametrize(
    "case, reason",
    [
        ("one class", "only one class"),
        ("all equal", "norms equal"),
        ("spread 3e-4", "nearly constant"),
        ("nan", "non-finite"),
    ],
)
def test_degenerate_aurocs_are_nan_with_a_reason_not_one_half(case, reason):
    rng = np.random.default_rng(6)
    correct = rng.random(400) < 0.5
    norms = {
        "one class": rng.normal(10, 1, 400),
        "all equal": np.full(400, 7.0),
        "spread 3e-4": 10 * (1 + 3e-4 * rng.standard_normal(400)),  # like DINO cut:3 (std/mean ~ 3e-4)
        "nan": np.r_[rng.normal(10, 1, 399), np.nan],
    }[case]
    if case == "one class":
        correct = np.ones(400, dtype=bool)
    est = auroc_with_interval(norms, correct)
    assert math.isnan(est.value) and math.isnan(est.ci_lo) and math.isnan(est.ci_hi)
    assert reason in est.note
    scalars, _ = norm_diagnostics("emb", norms, correct, ood_norms=norms[:50])
    assert math.isnan(scalars["emb_correct_auroc"]) and reason in scalars["emb_correct_auroc_note"]
    # A modest but resolvable spread is not degenerate.
    assert auroc_with_interval(10 * (1 + 1e-2 * rng.standard_normal(400)), rng.random(400) < 0.5).note == ""


def test_ood_auroc_direction():
    rng = np.random.default_rng(2)
    id_norms = rng.normal(10.0, 1.0, 300)
    smaller = rng.normal(5.0, 1.0, 200)
    assert ood_auroc(id_norms, smaller) > 0.99
    assert ood_auroc(id_norms, smaller + 10.0) < 0.01
    labels = np.r_[np.zeros(300), np.ones(200)]
    assert ood_auroc(id_norms, smaller) == pytest.approx(roc_auc_score(labels, -np.r_[id_norms, smaller]))


def test_frequency_spearman_matches_scipy_on_per_class_means():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 8, 600)
    labels[labels == 5] = 4  # class 5 absent from the test set: excluded
    class_counts = np.array([5000, 3000, 2000, 1500, 800, 700, 400, 100])
    norms = rng.normal(size=600) + np.log(class_counts)[labels] * 0.3
    present = [c for c in range(8) if (labels == c).any()]
    means = [norms[labels == c].mean() for c in present]
    expected = spearmanr(class_counts[present], means).statistic
    got = frequency_norm_spearman(torch.from_numpy(norms), torch.from_numpy(labels), class_counts)
    assert got == pytest.approx(expected, abs=1e-12)
    # Same number from the definition: Pearson correlation of average ranks.
    assert got == pytest.approx(np.corrcoef(rankdata(class_counts[present]), rankdata(means))[0, 1], abs=1e-12)
    assert got > 0.5
    assert math.isnan(frequency_norm_spearman(norms, labels, np.full(8, 10)))  # balanced
    two = np.isin(labels, (0, 1))
    assert math.isnan(frequency_norm_spearman(norms[two], labels[two], class_counts))


def test_norm_diagnostics_on_digits_pixel_norms():
    x, y = load_digits(return_X_y=True)
    norms = np.linalg.norm(x, axis=1)
    correct = norms > np.median(norms)  # a correctness signal tied to the norm
    ood = norms[:100] * 0.3
    counts = np.bincount(y, minlength=10)
    scalars, frame = norm_diagnostics(
        "emb", torch.from_numpy(norms), torch.from_numpy(correct), ood_norms=ood, test_labels=y, class_counts=counts
    )
    assert set(scalars) == {
        f"emb_{name}{suffix}" for name in ("correct_auroc", "ood_auroc") for suffix in ("", "_ci_lo", "_ci_hi", "_note")
    } | {"emb_freq_spearman", "emb_correct_auroc_within"}
    assert scalars["emb_correct_auroc_within"] == pytest.approx(within_class_auroc(norms, correct, y))
    for name in ("emb_correct_auroc", "emb_ood_auroc"):
        assert scalars[f"{name}_note"] == ""
        assert scalars[f"{name}_ci_lo"] <= scalars[name] <= scalars[f"{name}_ci_hi"]
    assert scalars["emb_correct_auroc"] == pytest.approx(roc_auc_score(correct, norms))
    assert scalars["emb_ood_auroc"] == pytest.approx(
        roc_auc_score(np.r_[np.zeros(len(norms)), np.ones(100)], -np.r_[norms, ood])
    )
    means = [norms[y == c].mean() for c in range(10)]
    assert scalars["emb_freq_spearman"] == pytest.approx(spearmanr(counts, means).statistic)
    assert set(frame["binning"]) == {"decile", "equal_width"}
    assert list(frame.columns) == list(BIN_COLUMNS)
    for binning, n_bins in (("decile", 10), ("equal_width", 20)):
        part = frame[frame["binning"] == binning]
        assert part["bin"].tolist() == list(range(n_bins)) and part["count"].sum() == len(norms)
    pd.testing.assert_frame_equal(
        frame[frame["binning"] == "equal_width"].reset_index(drop=True), accuracy_per_equal_width_bin(norms, correct)
    )
    only, _ = norm_diagnostics("feat", norms, correct)
    assert math.isnan(only["feat_ood_auroc"]) and math.isnan(only["feat_freq_spearman"])
    assert math.isnan(only["feat_ood_auroc_ci_lo"]) and only["feat_ood_auroc_note"] == "no OOD set"
    again, _ = norm_diagnostics("emb", norms, correct, ood_norms=ood, test_labels=y, class_counts=counts, seed=0)
    assert again == scalars  # the bootstrap repeats with the seed


def test_bad_input():
    with pytest.raises(ConfigError, match="labels_binary"):
        auroc([0.1, 0.2], [0, 2])
    with pytest.raises(ConfigError, match="n_bins"):
        accuracy_per_norm_bin([1.0], [1], n_bins=0)
    with pytest.raises(ConfigError, match="correct"):
        accuracy_per_norm_bin([1.0, 2.0], [1])
    with pytest.raises(ConfigError, match="labels"):
        frequency_norm_spearman([1.0, 2.0], [0, 9], [1, 2, 3])


def test_within_class_auroc_is_the_size_weighted_mean_of_per_class_sklearn_aurocs():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, 400)
    norms = rng.normal(2.0 + labels, 1.0)  # classes differ in norm level ...
    correct = (rng.random(400) < 0.2 + 0.15 * labels).astype(float)  # ... and in accuracy: a class confound
    correct[labels == 4] = 1.0  # one class with no wrong prediction takes no part
    expected, weights = [], []
    for c in range(4):
        m = labels == c
        expected.append(roc_auc_score(correct[m], norms[m]))
        weights.append(m.sum())
    assert within_class_auroc(norms, correct, labels) == pytest.approx(np.average(expected, weights=weights))
    assert auroc(norms, correct) > within_class_auroc(norms, correct, labels) + 0.1  # the confound, pooled
    assert math.isnan(within_class_auroc(norms, np.ones(400), labels))


def test_control_diagnostics_are_the_point_values_and_nan_where_degenerate():
    rng = np.random.default_rng(4)
    norms, labels = rng.random(200), rng.integers(0, 3, 200)
    correct = (rng.random(200) < 0.6).astype(float)
    ood = rng.random(50) * 0.8
    out = control_diagnostics("emb", norms, correct, labels, ood)
    assert out["emb_correct_auroc"] == pytest.approx(roc_auc_score(correct, norms))
    assert out["emb_correct_auroc_within"] == pytest.approx(within_class_auroc(norms, correct, labels))
    assert out["emb_ood_auroc"] == pytest.approx(ood_auroc(norms, ood))
    flat = control_diagnostics("emb", np.full(200, 3.0), correct, labels, None)
    assert all(math.isnan(v) for v in flat.values())
