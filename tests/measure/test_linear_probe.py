"""Linear probes: the L-BFGS probe against scikit-learn on real features, the penalty chosen without
the test set, invariance to feature scale, determinism; the AdamW probe kept for old results."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from support import TINY_TRIAL

from suite.config import make_config
from suite.core.errors import ConfigError
from suite.measure.linear_probe import L2_GRID, adamw_probe, lbfgs_probe, linear_probe, stratified_split
from suite.trial import checkpoint
from suite.trial.evaluate import EvalSettings, encode
from suite.trial.train import CHECKPOINTS, build_model, load_data, run_trial


def separable(n_per_class: int, seed: int):
    """10 Gaussian blobs with far-apart random means, scaled and shifted features."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(10, 32, generator=torch.Generator().manual_seed(123)) * 4.0
    y = torch.arange(10).repeat_interleave(n_per_class)
    x = means[y] + torch.randn(len(y), 32, generator=g)
    scale = torch.linspace(0.01, 100.0, 32)  # wildly different feature scales: needs standardizing
    return x * scale + 7.0, y


def pixels():
    """The digits' 64 raw pixels: real data with always-zero (constant) columns."""
    x, y = load_digits(return_X_y=True)
    return (
        torch.from_numpy(x[:1200]).float(),
        torch.from_numpy(y[:1200]),
        torch.from_numpy(x[1200:]).float(),
        torch.from_numpy(y[1200:]),
    )


@pytest.fixture(scope="module")
def trained_features(tmp_path_factory):
    """Backbone features of the digits' training and test images from a SimCLR trial trained 2 epochs."""
    cfg = make_config({**TINY_TRIAL, "method": "simclr", "epochs": 2, "train_limit": None})
    trial_dir = tmp_path_factory.mktemp("probe-trial")
    run_trial(cfg, trial_dir, progress=False)
    model = build_model(cfg)
    model.load_state_dict(checkpoint.read(trial_dir / CHECKPOINTS / checkpoint.LAST)["model"])
    splits = load_data(cfg)
    s = EvalSettings(batch_size=512, device=torch.device("cpu"), precision="fp32", channels_last=False)
    train = encode(model, splits.train_images, splits.mean, splits.std, s).features
    test = encode(model, splits.test_images, splits.mean, splits.std, s).features
    return train, splits.train_labels, test, splits.test_labels


def sklearn_predictions(train_f, train_y, test_f, l2: float | None = None) -> np.ndarray:
    """scikit-learn's multinomial LogisticRegression (lbfgs) on standardized features: its default
    penalty C = 1, or ``l2`` of our mean objective (C = 1 / (l2 * N_train))."""
    x, y = train_f.double().numpy(), train_y.numpy()
    scaler = StandardScaler().fit(x)
    c = 1.0 if l2 is None else 1.0 / (l2 * len(y))
    clf = LogisticRegression(C=c, max_iter=2000, tol=1e-6).fit(scaler.transform(x), y)
    return clf.predict(scaler.transform(test_f.double().numpy()))


@pytest.mark.slow  # trains a trial first (the raw-pixel comparison below is the fast tier's)
@pytest.mark.parametrize("factor", [1.0, 1e-9], ids=["as encoded", "scaled by 1e-9"])
def test_lbfgs_probe_reaches_sklearns_accuracy_on_trained_features(trained_features, factor):
    """The same objective solved by an independent implementation gives the same predictions, at
    scikit-learn's default penalty (C = 1) and at well-posed grid values. The nearly unpenalized end
    of the grid is left out: there the features are close to separable and both solvers stop at
    different points of a flat valley, so equal predictions are not a property of either."""
    train_f, train_y, test_f, test_y = trained_features
    n_test, n_train = len(test_y), len(train_y)
    for l2 in (1.0 / n_train, 1e-2, 1e-3):  # 1 / N_train is scikit-learn's default C = 1
        ours = lbfgs_probe(train_f * factor, train_y, test_f * factor, test_y, num_classes=10, seed=0, l2_grid=(l2,))
        same = sklearn_predictions(train_f, train_y, test_f, l2=l2)
        ref = float((same == test_y.numpy()).mean())
        assert abs(ours["top1"] - ref) * n_test <= 1 + 1e-9, (l2, ours["top1"], ref)
        assert int((ours["predictions"].numpy() != same).sum()) <= 2, l2
    selected = lbfgs_probe(train_f * factor, train_y, test_f * factor, test_y, num_classes=10, seed=0)
    assert selected["l2"] in L2_GRID
    assert selected["top1"] > 0.5  # two epochs of SimCLR: far above chance (0.1)


def test_lbfgs_probe_matches_sklearn_on_raw_pixels_and_is_deterministic():
    xtr, ytr, xte, yte = pixels()
    before = torch.random.get_rng_state()
    a = lbfgs_probe(xtr, ytr, xte, yte, num_classes=10, seed=0)
    assert torch.equal(before, torch.random.get_rng_state())  # global RNG untouched
    same = sklearn_predictions(xtr, ytr, xte, l2=a["l2"])
    assert abs(a["top1"] - float((same == yte.numpy()).mean())) * len(yte) <= 1 + 1e-9
    assert a["top1"] == pytest.approx(float((a["predictions"] == yte).double().mean()))  # recomputed here
    assert a["predictions"].dtype == torch.int64 and a["predictions"].shape == yte.shape
    b = lbfgs_probe(xtr, ytr, xte, yte, num_classes=10, seed=0)
    assert torch.equal(a["predictions"], b["predictions"]) and a["final_loss"] == b["final_loss"]


def test_the_penalty_is_chosen_without_looking_at_the_test_set():
    """Shuffling the test labels changes the score, never the fit: predictions stay identical."""
    xtr, ytr, xte, yte = pixels()
    a = lbfgs_probe(xtr, ytr, xte, yte, num_classes=10, seed=0)
    shuffled = yte[torch.randperm(len(yte), generator=torch.Generator().manual_seed(1))]
    b = lbfgs_probe(xtr, ytr, xte, shuffled, num_classes=10, seed=0)
    assert torch.equal(a["predictions"], b["predictions"]) and a["l2"] == b["l2"]
    assert b["top1"] < a["top1"]


def test_the_chosen_penalty_is_the_best_on_the_validation_split():
    """Brute force: fit every grid value on the fit part by scikit-learn and score it on the
    validation part; the probe's choice scores as well as the best of them (to one sample)."""
    xtr, ytr, xte, yte = pixels()
    out = lbfgs_probe(xtr, ytr, xte, yte, num_classes=10, seed=0)
    fit_idx, val_idx = stratified_split(ytr, 0.2, torch.Generator().manual_seed(0))
    scores = {
        l2: float((sklearn_predictions(xtr[fit_idx], ytr[fit_idx], xtr[val_idx], l2=l2) == ytr[val_idx].numpy()).mean())
        for l2 in L2_GRID
    }
    assert scores[out["l2"]] * len(val_idx) >= max(scores.values()) * len(val_idx) - 1 - 1e-9, scores
    assert out["val_top1"] * len(val_idx) == pytest.approx(scores[out["l2"]] * len(val_idx), abs=1 + 1e-9)


def test_stratified_split_keeps_every_class_on_both_sides():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 2 + [3])
    fit, val = stratified_split(labels, 0.2, torch.Generator().manual_seed(0))
    assert sorted(torch.cat([fit, val]).tolist()) == list(range(len(labels)))  # a partition
    counts = torch.bincount(labels[val], minlength=4).tolist()
    assert counts == [2, 1, 1, 0]  # round(0.2 n), at least one, never a singleton class's only sample


@pytest.mark.parametrize("probe", ["lbfgs", "adamw"])
@pytest.mark.parametrize("scale", ["1e-9", "per-feature 1e-12..1e3"])
def test_accuracy_is_invariant_to_feature_scale(probe, scale):
    """A cut-initialized network's features can sit near 1e-9: they must still be standardized.

    Digits pixels include always-zero columns, so the constant-feature rule is exercised too.
    """
    xtr, ytr, xte, yte = pixels()
    assert (xtr.std(0) == 0).any()  # constant pixels present
    factor = (
        torch.tensor(1e-9)
        if scale == "1e-9"
        else torch.logspace(-12, 3, xtr.shape[1])[
            torch.randperm(xtr.shape[1], generator=torch.Generator().manual_seed(0))
        ]
    )
    kw = dict(num_classes=10, probe=probe, epochs=20, seed=0)
    ref = linear_probe(xtr, ytr, xte, yte, **kw)
    scaled = linear_probe(xtr * factor, ytr, xte * factor, yte, **kw)
    assert ref["top1"] > 0.85
    assert abs(scaled["top1"] - ref["top1"]) * len(yte) <= 1 + 1e-9
    assert int((scaled["predictions"] != ref["predictions"]).sum()) <= 2


def test_adamw_probe_classifies_separable_features_and_its_seed_drives_the_batch_order():
    xtr, ytr = separable(100, 0)
    xte, yte = separable(50, 1)
    a = adamw_probe(xtr, ytr, xte, yte, num_classes=10, epochs=30, seed=0)
    assert a["top1"] > 0.9
    assert a["top1"] == pytest.approx(float((a["predictions"] == yte).float().mean()))
    b = adamw_probe(xtr, ytr, xte, yte, num_classes=10, epochs=30, seed=0)
    assert torch.equal(a["predictions"], b["predictions"]) and a["final_loss"] == b["final_loss"]
    c = adamw_probe(xtr, ytr, xte, yte, num_classes=10, epochs=30, seed=1)
    assert c["final_loss"] != a["final_loss"]


def test_adamw_probe_approaches_sklearn_on_digits_pixels():
    xtr, ytr, xte, yte = pixels()
    ref = float((sklearn_predictions(xtr, ytr, xte) == yte.numpy()).mean())
    out = adamw_probe(xtr, ytr, xte, yte, num_classes=10, epochs=40, batch_size=128, seed=0)
    assert out["top1"] > 0.85 and abs(out["top1"] - ref) < 0.04 and out["train_top1"] > 0.97


def test_bad_input_names_the_field():
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    with pytest.raises(ConfigError, match="linear_probe"):
        linear_probe(x, y, x, y, num_classes=2, probe="sgd")
    with pytest.raises(ConfigError, match="epochs"):
        adamw_probe(x, y, x, y, num_classes=2, epochs=0)
    with pytest.raises(ConfigError, match="lr"):
        adamw_probe(x, y, x, y, num_classes=2, lr=-1.0)
    with pytest.raises(ConfigError, match="l2_grid"):
        lbfgs_probe(x, y, x, y, num_classes=2, l2_grid=(0.1, -1.0))
    with pytest.raises(ConfigError, match="val_fraction"):
        lbfgs_probe(x, y, x, y, num_classes=2, val_fraction=1.0)
    for probe in ("lbfgs", "adamw"):
        with pytest.raises(ConfigError, match="test_labels"):
            linear_probe(x, y, x, y + 3, num_classes=2, probe=probe)
        with pytest.raises(ConfigError, match="test_features"):
            linear_probe(x, y, torch.randn(8, 4), y, num_classes=2, probe=probe)
