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

from suite.diagnostics import (
    BIN_COLUMNS,
    accuracy_per_norm_bin,
    auroc,
    frequency_norm_spearman,
    norm_diagnostics,
    ood_auroc,
)
from suite.errors import ConfigError


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
    assert list(frame.columns) == BIN_COLUMNS and len(frame) == 10
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
    assert set(scalars) == {"emb_correct_auroc", "emb_ood_auroc", "emb_freq_spearman"}
    assert scalars["emb_correct_auroc"] == pytest.approx(roc_auc_score(correct, norms))
    assert scalars["emb_ood_auroc"] == pytest.approx(
        roc_auc_score(np.r_[np.zeros(len(norms)), np.ones(100)], -np.r_[norms, ood])
    )
    means = [norms[y == c].mean() for c in range(10)]
    assert scalars["emb_freq_spearman"] == pytest.approx(spearmanr(counts, means).statistic)
    assert frame["count"].sum() == len(norms)
    only, _ = norm_diagnostics("feat", norms, correct)
    assert math.isnan(only["feat_ood_auroc"]) and math.isnan(only["feat_freq_spearman"])


def test_bad_input():
    with pytest.raises(ConfigError, match="labels_binary"):
        auroc([0.1, 0.2], [0, 2])
    with pytest.raises(ConfigError, match="n_bins"):
        accuracy_per_norm_bin([1.0], [1], n_bins=0)
    with pytest.raises(ConfigError, match="correct"):
        accuracy_per_norm_bin([1.0, 2.0], [1])
    with pytest.raises(ConfigError, match="labels"):
        frequency_norm_spearman([1.0, 2.0], [0, 9], [1, 2, 3])
