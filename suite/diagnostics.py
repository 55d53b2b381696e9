"""Diagnostics for the claim "norms encode confidence" (paper, section on confidence).

Four views of one question, each a single number or a small table per trial
and vector (``emb`` = the vector the loss normalizes, ``feat`` = backbone features):

* ``correct_auroc`` — AUROC of the norm as a score for "the kNN prediction is correct".
* accuracy per norm decile — accuracy should rise with the norm.
* ``ood_auroc`` — AUROC of *minus* the norm for "the sample is out-of-distribution"
  (novel samples should have smaller norms, giving values near 1).
* ``freq_spearman`` — Spearman correlation between a class's training frequency
  and its mean test norm (frequent classes should get larger norms).

Inputs may be torch tensors or numpy arrays; outputs are Python floats (NaN
where a statistic is undefined) and a pandas DataFrame.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

from suite.errors import ConfigError

__all__ = [
    "auroc",
    "accuracy_per_norm_bin",
    "ood_auroc",
    "frequency_norm_spearman",
    "norm_diagnostics",
    "BIN_COLUMNS",
]

BIN_COLUMNS = ["bin", "norm_lo", "norm_hi", "count", "accuracy"]


def _as_1d(x: Any, field: str, dtype: type = np.float64) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ConfigError(field, f"shape {arr.shape}", "a 1-D array")
    return arr.astype(dtype)


def auroc(scores: Any, labels_binary: Any) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (average ranks for ties).

    ``labels_binary`` marks positives with 1/True. Returns NaN when only one class
    is present or any score is NaN (e.g. a diverged trial).
    """
    s = _as_1d(scores, "scores")
    y = _as_1d(labels_binary, "labels_binary")
    if s.shape != y.shape:
        raise ConfigError("labels_binary", f"length {y.shape[0]}", f"the length of scores ({s.shape[0]})")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ConfigError("labels_binary", "non-binary values", "0/1 or False/True")
    pos = y == 1.0
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0 or np.isnan(s).any():
        return math.nan
    ranks = rankdata(s, method="average")
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def accuracy_per_norm_bin(norms: Any, correct: Any, n_bins: int = 10) -> pd.DataFrame:
    """Accuracy within equal-count norm bins (deciles for ``n_bins=10``).

    Edges are the ``i / n_bins`` quantiles (linear interpolation) of the norms;
    bin ``i`` holds ``norm_lo <= norm < norm_hi`` and the last bin also holds the
    maximum. Bins left empty by tied norms have count 0 and accuracy NaN.
    """
    if not isinstance(n_bins, int) or isinstance(n_bins, bool) or n_bins < 1:
        raise ConfigError("n_bins", n_bins, "an integer >= 1")
    n = _as_1d(norms, "norms")
    c = _as_1d(correct, "correct")
    if n.shape != c.shape:
        raise ConfigError("correct", f"length {c.shape[0]}", f"the length of norms ({n.shape[0]})")
    if n.size == 0:
        raise ConfigError("norms", "empty", "at least one value")
    edges = np.quantile(n, np.linspace(0.0, 1.0, n_bins + 1))
    bins = np.searchsorted(edges[1:-1], n, side="right")
    count = np.bincount(bins, minlength=n_bins)
    hits = np.bincount(bins, weights=c, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(count > 0, hits / np.maximum(count, 1), np.nan)
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins, dtype=np.int64),
            "norm_lo": edges[:-1],
            "norm_hi": edges[1:],
            "count": count.astype(np.int64),
            "accuracy": acc,
        },
        columns=BIN_COLUMNS,
    )


def ood_auroc(id_norms: Any, ood_norms: Any) -> float:
    """AUROC for detecting OOD samples by small norm (score = -norm, OOD = positive).

    1.0: every OOD sample has a smaller norm than every in-distribution one; 0.5: chance.
    """
    i = _as_1d(id_norms, "id_norms")
    o = _as_1d(ood_norms, "ood_norms")
    scores = -np.concatenate([i, o])
    labels = np.concatenate([np.zeros(i.size), np.ones(o.size)])
    return auroc(scores, labels)


def frequency_norm_spearman(norms: Any, labels: Any, class_counts: Any) -> float:
    """Spearman correlation between class training frequency and mean class norm.

    Only classes that occur in ``labels`` take part. NaN if fewer than 3 such
    classes, or if the frequencies or the mean norms are constant (a balanced
    dataset has no frequency signal to correlate).
    """
    n = _as_1d(norms, "norms")
    y = _as_1d(labels, "labels", dtype=np.int64)
    counts = _as_1d(class_counts, "class_counts")
    if n.shape != y.shape:
        raise ConfigError("labels", f"length {y.shape[0]}", f"the length of norms ({n.shape[0]})")
    if y.size and (y.min() < 0 or y.max() >= counts.size):
        raise ConfigError("labels", f"range [{y.min()}, {y.max()}]", f"class indices in [0, {counts.size - 1}]")
    per_class_n = np.bincount(y, minlength=counts.size)
    present = per_class_n > 0
    if present.sum() < 3:
        return math.nan
    mean_norm = np.bincount(y, weights=n, minlength=counts.size)[present] / per_class_n[present]
    freq = counts[present]
    if np.ptp(freq) == 0 or np.ptp(mean_norm) == 0 or not np.isfinite(mean_norm).all():
        return math.nan
    return float(spearmanr(freq, mean_norm).statistic)


def norm_diagnostics(
    vector_name_prefix: str,
    test_norms: Any,
    test_correct: Any,
    ood_norms: Any = None,
    test_labels: Any = None,
    class_counts: Any = None,
) -> tuple[dict[str, float], pd.DataFrame]:
    """All confidence diagnostics of one vector (prefix ``"emb"`` or ``"feat"``).

    Returns ``({prefix}_correct_auroc, {prefix}_ood_auroc, {prefix}_freq_spearman}``
    — NaN where the inputs for a statistic are not given — and the decile table
    (columns ``bin, norm_lo, norm_hi, count, accuracy``).
    """
    p = vector_name_prefix
    correct = _as_1d(test_correct, "test_correct")
    scalars = {
        f"{p}_correct_auroc": auroc(test_norms, correct),
        f"{p}_ood_auroc": math.nan if ood_norms is None else ood_auroc(test_norms, ood_norms),
        f"{p}_freq_spearman": (
            math.nan
            if test_labels is None or class_counts is None
            else frequency_norm_spearman(test_norms, test_labels, class_counts)
        ),
    }
    return scalars, accuracy_per_norm_bin(test_norms, correct)
