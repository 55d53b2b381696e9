"""val_fraction: a stratified, seeded, disjoint validation split of the training set,
and validation kNN in the curves and the trials row."""

from __future__ import annotations

import math

import pytest
import torch

from suite.config import make_config
from suite.core.errors import ConfigError
from suite.data.subsets import validation_split
from suite.trial.train import load_data, run_trial

TINY = dict(
    dataset="digits",
    backbone="test_resnet",
    image_size=16,
    epochs=2,
    batch_size=64,
    train_limit=128,
    linear_epochs=5,
    device="cpu",
    num_threads=1,
)


def test_split_is_stratified_seeded_and_disjoint():
    # class 0: 10 images, class 1: 5, class 2: 1 (keeps its one image), class 3: 4
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] + [3] * 4)[
        torch.randperm(20, generator=torch.Generator().manual_seed(3))
    ]
    keep, val = validation_split(labels, 0.3)
    # By hand: round-half-up(n_c * 0.3) capped at n_c - 1 -> 3, 2 (1.5), 0 (cap), 1 (1.2)
    assert torch.bincount(labels[val], minlength=4).tolist() == [3, 2, 0, 1]
    assert torch.bincount(labels[keep], minlength=4).tolist() == [7, 3, 1, 3]
    assert set(keep.tolist()).isdisjoint(val.tolist()) and sorted(keep.tolist() + val.tolist()) == list(range(20))
    # The same draw as a hand replay: one generator seeded 0, classes in label order.
    g, expected = torch.Generator().manual_seed(0), []
    for c, count in zip(range(4), [3, 2, 0, 1]):
        members = torch.nonzero(labels == c).flatten()
        expected += members[torch.randperm(len(members), generator=g)[:count]].tolist()
    assert val.tolist() == sorted(expected)
    again_keep, again_val = validation_split(labels, 0.3)
    assert torch.equal(again_val, val) and torch.equal(again_keep, keep)
    assert not torch.equal(validation_split(labels, 0.3, seed=1)[1], val)  # the seed matters
    assert len(validation_split(labels, 0.0)[1]) == 0


@pytest.mark.parametrize("value", [0.5, -0.1, 0.7])
def test_val_fraction_out_of_range_names_the_field(value):
    with pytest.raises(ConfigError) as info:
        make_config({**TINY, "val_fraction": value})
    assert info.value.field == "val_fraction"


def test_trial_seed_does_not_move_the_split_and_training_excludes_it():
    a = load_data(make_config({**TINY, "val_fraction": 0.25, "seed": 0}))
    b = load_data(make_config({**TINY, "val_fraction": 0.25, "seed": 5}))
    assert torch.equal(a.val_images.materialize(), b.val_images.materialize()) and torch.equal(
        a.train_labels, b.train_labels
    )
    full = load_data(make_config(TINY))
    assert len(a.train_labels) + len(a.val_labels) == len(full.train_labels) == 128
    assert len(a.val_labels) == pytest.approx(32, abs=5)
    # every validation image is one of the limited training images, none stays in training
    flat = lambda x: {bytes(img.numpy().tobytes()) for img in x}  # noqa: E731
    assert flat(a.val_images.materialize()) <= flat(full.train_images.materialize()) and not flat(
        a.val_images.materialize()
    ) & flat(a.train_images.materialize())
    assert make_config(TINY).trial_id != make_config({**TINY, "val_fraction": 0.25}).trial_id


def test_trial_reports_validation_knn_in_curves_and_row(tmp_path):
    result = run_trial(make_config({**TINY, "val_fraction": 0.25, "eval_every": 1}), tmp_path, progress=False)
    for key in ("val_knn_top1_k20", "val_knn_top1_k200"):
        assert 0 <= result.row[key] <= 1
        assert [math.isfinite(c[key]) for c in result.curves] == [True, True, True]
        assert result.curves[-1][key] == result.row[key]
    assert "val_knn_top1_k20" not in run_trial(make_config(TINY), tmp_path / "no-val", progress=False).row
