"""Norm summaries against numpy, and the running per-epoch accumulator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from suite.core.errors import ConfigError
from suite.measure.norms import RunningNormStats, norm_summary
from suite.results.schema import EVAL_NORM_STATS


def numpy_summary(x: np.ndarray) -> dict[str, float]:
    out = {"mean": x.mean(), "std": x.std()}
    for name, q in (("q05", 5), ("q25", 25), ("q50", 50), ("q75", 75), ("q95", 95)):
        out[name] = np.percentile(x, q)
    return out


def test_summary_matches_numpy_on_random_norms():
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, 3.0, size=1001).astype(np.float32)
    got = norm_summary(torch.from_numpy(x))
    ref = numpy_summary(x.astype(np.float64))
    assert set(got) == set(ref) == set(EVAL_NORM_STATS)
    for key, value in ref.items():
        assert got[key] == pytest.approx(value, rel=1e-9), key
        assert isinstance(got[key], float)


def test_running_stats_equal_one_shot_summary_of_digits_norms():
    x = torch.from_numpy(load_digits().data).float()  # real vectors [1797, 64]
    stats = RunningNormStats()
    for batch in torch.split(x, 256):  # ragged last batch
        stats.update_vectors(batch)
    assert stats.count == len(x)
    ref = numpy_summary(np.linalg.norm(x.numpy().astype(np.float64), axis=1))
    got = stats.summary()
    for key, value in ref.items():
        assert got[key] == pytest.approx(value, rel=1e-5), key
    stats.reset()
    assert stats.count == 0
    stats.update(torch.tensor([3.0, 4.0]))
    assert stats.summary()["mean"] == pytest.approx(3.5)


def test_non_finite_norms_propagate_instead_of_raising():
    got = norm_summary(torch.tensor([1.0, float("nan"), 2.0]))
    assert math.isnan(got["mean"])


def test_bad_input():
    with pytest.raises(ConfigError, match="norms"):
        norm_summary(torch.zeros(0))
    with pytest.raises(ConfigError, match="vectors"):
        RunningNormStats().update_vectors(torch.ones(5))
