"""Diagnostics for the claim "norms encode confidence" (paper, section on confidence).

Four views of one question, each a single number or a small table per trial
and vector (``emb`` = the vector the loss normalizes, ``feat`` = backbone features):

* ``correct_auroc`` — AUROC of the norm as a score for "the kNN prediction is correct";
  ``correct_auroc_within`` the same within each class, averaged over classes: a class
  whose images have large norms *and* are easy would otherwise pose as confidence.
* accuracy per norm bin — accuracy should rise with the norm; both equal-count
  deciles and the paper's 20 equal-width bins of the min-max-normalized norm.
* ``ood_auroc`` — AUROC of *minus* the norm for "the sample is out-of-distribution"
  (novel samples should have smaller norms, giving values near 1).
* ``freq_spearman`` — Spearman correlation between a class's training frequency
  and its mean test norm (frequent classes should get larger norms).

Each AUROC comes with a 95% bootstrap interval (``suite.core.stats``) and, when it
is NaN, a note saying why: a single class or (nearly) constant norms measure
nothing, and a bare 0.5 or a noise-driven value would read as a finding.

Inputs may be torch tensors or numpy arrays; outputs are Python floats (NaN
where a statistic is undefined), note strings and a pandas DataFrame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from suite.core.errors import ConfigError
from suite.core.stats import bootstrap_auroc_interval
from suite.results.schema import (
    BIN_COLUMNS,
    CORRECT_AUROC,
    CORRECT_AUROC_WITHIN,
    FREQ_SPEARMAN,
    OOD_AUROC,
    ci_hi,
    ci_lo,
    diagnostic,
    note,
)

__all__ = [
    "auroc",
    "accuracy_per_norm_bin",
    "accuracy_per_equal_width_bin",
    "auroc_with_interval",
    "AurocEstimate",
    "degenerate_reason",
    "ood_auroc",
    "within_class_auroc",
    "frequency_norm_spearman",
    "norm_diagnostics",
    "control_diagnostics",
]

N_BOOTSTRAP = 1000
MIN_RELATIVE_SPREAD = 1e-3


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their mean rank (scipy.stats.rankdata's "average"), in numpy: every
    evaluation of every trial ranks, and importing scipy.stats would cost each trial process most of a
    second of CPU (the tests check this against scipy)."""
    _, position, counts = np.unique(x, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # the rank of each distinct value's last copy
    return (last - (counts - 1) / 2.0)[position.reshape(-1)]


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
    ranks = average_ranks(s)
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _checked_norms_and_correct(norms: Any, correct: Any, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(n_bins, int) or isinstance(n_bins, bool) or n_bins < 1:
        raise ConfigError("n_bins", n_bins, "an integer >= 1")
    n = _as_1d(norms, "norms")
    c = _as_1d(correct, "correct")
    if n.shape != c.shape:
        raise ConfigError("correct", f"length {c.shape[0]}", f"the length of norms ({n.shape[0]})")
    if n.size == 0:
        raise ConfigError("norms", "empty", "at least one value")
    finite = np.isfinite(n)  # a diverged trial's NaN/inf norms have no place on the norm axis
    return n[finite], c[finite]


def _binned_accuracy(n: np.ndarray, c: np.ndarray, edges: np.ndarray, binning: str) -> pd.DataFrame:
    """Bin ``i`` holds ``edges[i] <= norm < edges[i + 1]``; the last bin also holds the maximum."""
    n_bins = edges.size - 1
    bins = np.searchsorted(edges[1:-1], n, side="right")
    count = np.bincount(bins, minlength=n_bins)
    hits = np.bincount(bins, weights=c, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(count > 0, hits / np.maximum(count, 1), np.nan)
    return pd.DataFrame(
        {
            "binning": binning,
            "bin": np.arange(n_bins, dtype=np.int64),
            "norm_lo": edges[:-1],
            "norm_hi": edges[1:],
            "count": count.astype(np.int64),
            "accuracy": acc,
        },
        columns=list(BIN_COLUMNS),
    )


def accuracy_per_norm_bin(norms: Any, correct: Any, n_bins: int = 10) -> pd.DataFrame:
    """Accuracy within equal-count norm bins (deciles for ``n_bins=10``, ``binning="decile"``).

    Edges are the ``i / n_bins`` quantiles (linear interpolation) of the norms;
    bin ``i`` holds ``norm_lo <= norm < norm_hi`` and the last bin also holds the
    maximum. Bins left empty by tied norms have count 0 and accuracy NaN.
    Non-finite norms are left out.
    """
    n, c = _checked_norms_and_correct(norms, correct, n_bins)
    if n.size == 0:
        edges = np.full(n_bins + 1, np.nan)
    else:
        edges = np.quantile(n, np.linspace(0.0, 1.0, n_bins + 1))
    return _binned_accuracy(n, c, edges, "decile" if n_bins == 10 else "equal_count")


def accuracy_per_equal_width_bin(norms: Any, correct: Any, n_bins: int = 20) -> pd.DataFrame:
    """Accuracy within equal-width bins of the min-max-normalized norm (``binning="equal_width"``).

    This is how the paper draws norm-vs-accuracy: the normalized norm
    ``(norm - min) / (max - min)`` cut into ``n_bins`` (20) equal intervals, so
    the x-axis is the norm itself and sparse tails stay visible (equal-count
    deciles hide them). ``norm_lo``/``norm_hi`` are in norm units (the edges of
    ``numpy.histogram(norms, n_bins)``); bin ``i`` covers normalized norms
    ``[i / n_bins, (i + 1) / n_bins)``, the last bin includes the maximum.
    All-equal norms collapse the edges and land in the last bin. Non-finite
    norms are left out.
    """
    n, c = _checked_norms_and_correct(norms, correct, n_bins)
    if n.size == 0:
        edges = np.full(n_bins + 1, np.nan)
    else:
        edges = np.linspace(n.min(), n.max(), n_bins + 1)
    return _binned_accuracy(n, c, edges, "equal_width")


def ood_auroc(id_norms: Any, ood_norms: Any) -> float:
    """AUROC for detecting OOD samples by small norm (score = -norm, OOD = positive).

    1.0: every OOD sample has a smaller norm than every in-distribution one; 0.5: chance.
    """
    return auroc(*_ood_scores_and_labels(id_norms, ood_norms))


def within_class_auroc(norms: Any, correct: Any, labels: Any) -> float:
    """AUROC of the norm for "correct" within each class, averaged over the classes that have both
    correct and wrong predictions, weighted by their sizes; NaN when no class has both."""
    n = _as_1d(norms, "norms")
    c = _as_1d(correct, "correct")
    y = _as_1d(labels, "labels", dtype=np.int64)
    if not (n.shape == c.shape == y.shape):
        raise ConfigError("labels", f"length {y.shape[0]}", f"the length of norms ({n.shape[0]})")
    if n.size == 0 or not np.isfinite(n).all():
        return math.nan
    # Mann-Whitney U per class from ranks within the class: rank by (class, norm) once, no loop over samples.
    order = np.lexsort((n, y))
    ys, ns, cs = y[order], n[order], c[order]
    starts = np.flatnonzero(np.r_[True, ys[1:] != ys[:-1]])
    sizes = np.diff(np.r_[starts, ys.size])
    ranks = np.empty(ys.size)
    for a, size in zip(starts, sizes):  # one ranking per class (ties averaged), a handful of classes
        ranks[a : a + size] = average_ranks(ns[a : a + size])
    group = np.repeat(np.arange(starts.size), sizes)
    n_pos = np.bincount(group, weights=cs, minlength=starts.size)
    n_neg = sizes - n_pos
    rank_pos = np.bincount(group, weights=ranks * cs, minlength=starts.size)
    both = (n_pos > 0) & (n_neg > 0)
    if not both.any():
        return math.nan
    u = rank_pos[both] - n_pos[both] * (n_pos[both] + 1) / 2.0
    per_class = u / (n_pos[both] * n_neg[both])
    return float(np.average(per_class, weights=sizes[both]))


def _ood_scores_and_labels(id_norms: Any, ood_norms: Any) -> tuple[np.ndarray, np.ndarray]:
    i = _as_1d(id_norms, "id_norms")
    o = _as_1d(ood_norms, "ood_norms")
    return -np.concatenate([i, o]), np.concatenate([np.zeros(i.size), np.ones(o.size)])


@dataclass(frozen=True)
class AurocEstimate:
    """An AUROC, its bootstrap interval, and why it is NaN when it is (``note``, "" otherwise)."""

    value: float
    ci_lo: float
    ci_hi: float
    note: str

    def as_columns(self, name: str) -> dict[str, float | str]:
        return {name: self.value, ci_lo(name): self.ci_lo, ci_hi(name): self.ci_hi, note(name): self.note}


def degenerate_reason(
    scores: np.ndarray, labels_binary: np.ndarray, min_relative_spread: float = MIN_RELATIVE_SPREAD
) -> str:
    """Why an AUROC of these scores would not measure anything ("" when it would).

    Scores whose relative spread std/|mean| is below ``min_relative_spread``
    (1e-3) are treated as constant: that is at or below the relative rounding of
    a single value in the bf16 / fp16 arithmetic evaluation may run in (unit
    roundoff 2^-8 ≈ 3.9e-3 and 2^-11 ≈ 4.9e-4), so their order is rounding, and
    an AUROC of it (e.g. DINO ``cut:3`` norms with std/mean ≈ 3e-4) would look
    like a finding. Callers that know they evaluated in fp32 may pass less.
    """
    n_pos = int((labels_binary == 1).sum())
    if n_pos == 0 or n_pos == labels_binary.size:
        return f"only one class: {n_pos} of {labels_binary.size} samples positive"
    if not np.isfinite(scores).all():
        return f"{int((~np.isfinite(scores)).sum())} non-finite norms"
    std, mean = float(scores.std()), float(abs(scores.mean()))
    if std == 0:
        return f"all {scores.size} norms equal ({abs(float(scores[0])):.6g})"
    if mean > 0 and std < min_relative_spread * mean:
        return (
            f"norms nearly constant: std/mean = {std / mean:.2g} < {min_relative_spread:g}, "
            "below bf16/fp16 evaluation resolution"
        )
    return ""


def auroc_with_interval(
    scores: Any,
    labels_binary: Any,
    *,
    n_resamples: int = N_BOOTSTRAP,
    confidence: float = 0.95,
    seed: int = 0,
    min_relative_spread: float = MIN_RELATIVE_SPREAD,
) -> AurocEstimate:
    """``auroc`` with a stratified percentile-bootstrap interval (``suite.core.stats``), or NaN and a reason.

    Degenerate inputs (one class, non-finite or (nearly) constant scores, see
    ``degenerate_reason``) give NaN value and interval and say why, never 0.5.
    """
    s = _as_1d(scores, "scores")
    y = _as_1d(labels_binary, "labels_binary")
    value = auroc(s, y)  # validates shapes and labels
    note = degenerate_reason(s, y, min_relative_spread)
    if note:
        return AurocEstimate(math.nan, math.nan, math.nan, note)
    pos = y == 1.0
    lo, hi = bootstrap_auroc_interval(s[pos], s[~pos], n_resamples=n_resamples, confidence=confidence, seed=seed)
    return AurocEstimate(value, lo, hi, "")


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
    return float(np.corrcoef(average_ranks(freq), average_ranks(mean_norm))[0, 1])  # Spearman's rho


def _unless_degenerate(norms: np.ndarray, correct: np.ndarray, statistic, *args) -> float:
    """``statistic(norms, correct, *args)``, or NaN where `degenerate_reason` says it measures nothing."""
    return math.nan if degenerate_reason(norms, correct) else statistic(norms, correct, *args)


def control_diagnostics(
    vector_name_prefix: str, test_norms: Any, test_correct: Any, test_labels: Any, ood_norms: Any = None
) -> dict[str, float]:
    """The diagnostics claims C7 and C8 compare a trained network with (point values, no intervals):
    ``{p}_correct_auroc``, ``{p}_correct_auroc_within`` and ``{p}_ood_auroc``, NaN where degenerate.
    The trainer records them for the untrained network (epoch 0) as ``..._init`` columns."""
    p = vector_name_prefix
    norms = _as_1d(test_norms, "test_norms")
    correct = _as_1d(test_correct, "test_correct")
    out = {
        diagnostic(p, CORRECT_AUROC): _unless_degenerate(norms, correct, auroc),
        diagnostic(p, CORRECT_AUROC_WITHIN): _unless_degenerate(norms, correct, within_class_auroc, test_labels),
        diagnostic(p, OOD_AUROC): math.nan,
    }
    if ood_norms is not None:
        scores, labels = _ood_scores_and_labels(norms, ood_norms)
        out[diagnostic(p, OOD_AUROC)] = _unless_degenerate(scores, labels, auroc)
    return out


def norm_diagnostics(
    vector_name_prefix: str,
    test_norms: Any,
    test_correct: Any,
    ood_norms: Any = None,
    test_labels: Any = None,
    class_counts: Any = None,
    *,
    seed: int = 0,
    n_resamples: int = N_BOOTSTRAP,
) -> tuple[dict[str, float | str], pd.DataFrame]:
    """All confidence diagnostics of one vector (prefix ``"emb"``, ``"feat"``, ``"proj"``...).

    Returns the scalars ``{p}_correct_auroc`` and ``{p}_ood_auroc``, each with
    ``_ci_lo``/``_ci_hi`` (95% stratified bootstrap, ``n_resamples``, ``seed``) and
    ``_note`` (why it is NaN; "" when it is not), and ``{p}_freq_spearman`` — NaN
    where the inputs for a statistic are not given — plus the bins table: the
    equal-count deciles and the paper's 20 equal-width bins, told apart by the
    ``binning`` column (``BIN_COLUMNS``).
    """
    p = vector_name_prefix
    norms = _as_1d(test_norms, "test_norms")
    correct = _as_1d(test_correct, "test_correct")
    boot = dict(n_resamples=n_resamples, seed=seed)
    scalars: dict[str, float | str] = {}
    scalars.update(auroc_with_interval(norms, correct, **boot).as_columns(diagnostic(p, CORRECT_AUROC)))
    scalars[diagnostic(p, CORRECT_AUROC_WITHIN)] = (
        math.nan if test_labels is None else _unless_degenerate(norms, correct, within_class_auroc, test_labels)
    )
    if ood_norms is None:
        ood = AurocEstimate(math.nan, math.nan, math.nan, "no OOD set")
    else:
        ood = auroc_with_interval(*_ood_scores_and_labels(norms, ood_norms), **boot)
    scalars.update(ood.as_columns(diagnostic(p, OOD_AUROC)))
    scalars[diagnostic(p, FREQ_SPEARMAN)] = (
        math.nan
        if test_labels is None or class_counts is None
        else frequency_norm_spearman(norms, test_labels, class_counts)
    )
    bins = pd.concat(
        [accuracy_per_norm_bin(norms, correct), accuracy_per_equal_width_bin(norms, correct)], ignore_index=True
    )
    return scalars, bins
