"""Linear probe: accuracy on separable data, agreement with sklearn, determinism."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from suite.core.errors import ConfigError
from suite.measure.linear_probe import linear_probe


def separable(n_per_class: int, seed: int):
    """10 Gaussian blobs with far-apart random means, scaled and shifted features."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(10, 32, generator=torch.Generator().manual_seed(123)) * 4.0
    y = torch.arange(10).repeat_interleave(n_per_class)
    x = means[y] + torch.randn(len(y), 32, generator=g)
    scale = torch.linspace(0.01, 100.0, 32)  # wildly different feature scales: needs standardizing
    return x * scale + 7.0, y


def test_separable_features_are_classified_and_deterministic():
    xtr, ytr = separable(100, 0)
    xte, yte = separable(50, 1)
    a = linear_probe(xtr, ytr, xte, yte, num_classes=10, epochs=30, seed=0)
    assert a["top1"] > 0.9
    # Independent check of the reported accuracy and predictions.
    assert a["top1"] == pytest.approx(float((a["predictions"] == yte).float().mean()))
    assert a["predictions"].dtype == torch.int64 and a["predictions"].shape == yte.shape
    b = linear_probe(xtr, ytr, xte, yte, num_classes=10, epochs=30, seed=0)
    assert torch.equal(a["predictions"], b["predictions"]) and a["final_loss"] == b["final_loss"]
    c = linear_probe(xtr, ytr, xte, yte, num_classes=10, epochs=30, seed=1)
    assert c["final_loss"] != a["final_loss"]  # the seed drives the batch order


def test_digits_probe_matches_sklearn_logistic_regression():
    x, y = load_digits(return_X_y=True)
    xtr, ytr, xte, yte = x[:1200], y[:1200], x[1200:], y[1200:]
    scaler = StandardScaler().fit(xtr)
    ref = LogisticRegression(max_iter=2000).fit(scaler.transform(xtr), ytr).score(scaler.transform(xte), yte)
    before = torch.random.get_rng_state()
    out = linear_probe(
        torch.from_numpy(xtr).float(),
        torch.from_numpy(ytr),
        torch.from_numpy(xte).float(),
        torch.from_numpy(yte),
        num_classes=10,
        epochs=40,
        batch_size=128,
        seed=0,
    )
    assert torch.equal(before, torch.random.get_rng_state())  # global RNG untouched
    assert out["top1"] > 0.85
    assert abs(out["top1"] - ref) < 0.04
    assert out["train_top1"] > 0.97


def test_bad_input():
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    with pytest.raises(ConfigError, match="epochs"):
        linear_probe(x, y, x, y, num_classes=2, epochs=0)
    with pytest.raises(ConfigError, match="lr"):
        linear_probe(x, y, x, y, num_classes=2, lr=-1.0)
    with pytest.raises(ConfigError, match="test_labels"):
        linear_probe(x, y, x, y + 3, num_classes=2)
    with pytest.raises(ConfigError, match="test_features"):
        linear_probe(x, y, torch.randn(8, 4), y, num_classes=2)


@pytest.mark.parametrize("scale", ["1e-9", "per-feature 1e-12..1e3"])
def test_accuracy_is_invariant_to_feature_scale(scale):
    """A cut-initialized network's features can sit near 1e-9: they must still be standardized.

    Digits pixels include always-zero columns, so the constant-feature rule is exercised too.
    """
    x, y = load_digits(return_X_y=True)
    xtr, ytr, xte, yte = (
        torch.from_numpy(x[:1200]).float(),
        torch.from_numpy(y[:1200]),
        torch.from_numpy(x[1200:]).float(),
        torch.from_numpy(y[1200:]),
    )
    assert (xtr.std(0) == 0).any()  # constant pixels present
    factor = (
        torch.tensor(1e-9)
        if scale == "1e-9"
        else torch.logspace(-12, 3, x.shape[1])[torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(0))]
    )
    kw = dict(num_classes=10, epochs=20, batch_size=128, seed=0)
    ref = linear_probe(xtr, ytr, xte, yte, **kw)
    scaled = linear_probe(xtr * factor, ytr, xte * factor, yte, **kw)
    assert ref["top1"] > 0.85
    n_test = len(yte)
    assert abs(scaled["top1"] - ref["top1"]) * n_test <= 1 + 1e-9
    assert int((scaled["predictions"] != ref["predictions"]).sum()) <= 2
