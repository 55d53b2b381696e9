"""MoCo v3, NNCLR, SwAV, Barlow Twins and VICReg x every intervention, through the real trainer on the digits.

A couple of optimizer steps each (64 images, batch 32, one epoch): what is checked is that every path
runs and records its norms, not what it learns. Cut-initialization happens before any momentum copy.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from support import SMALL_HEADS

from suite.config import make_config
from suite.trial.train import build_model, run_trial

NEW_METHODS = ("mocov3", "nnclr", "swav", "barlow", "vicreg")
INTERVENTIONS = ("none", "cut:3", "gradscale:1", "wd:0", "cut:3+gradscale:1")
TWO_STEPS = dict(
    backbone="test_resnet",
    image_size=16,
    batch_size=32,
    train_limit=64,
    epochs=1,
    warmup_epochs=0,
    linear_epochs=2,
    eval_batch_size=512,
    knn_k=[20],
)


@pytest.mark.slow  # 25 trials; the fast tier trains every method with `none` (tests/trial/test_trial.py)
@pytest.mark.parametrize("intervention", INTERVENTIONS)
@pytest.mark.parametrize("method", NEW_METHODS)
def test_every_new_method_and_intervention_trains_and_records_its_norms(tmp_path, method, intervention):
    cfg = make_config({**TWO_STEPS, "method": method, "intervention": intervention, "method_args": SMALL_HEADS[method]})
    row = run_trial(cfg, tmp_path / cfg.trial_id, progress=False).row
    assert row["status"] == "completed", row["error"]
    for column in ("final_loss", "emb_norm_mean", "feat_norm_mean", "test_emb_norm_mean", "test_feat_norm_mean"):
        assert math.isfinite(row[column]) and row[column] != 0, (column, row[column])
    assert 0.0 <= row["knn_top1_k20"] <= 1.0 and 0.0 <= row["linear_top1"] <= 1.0
    if intervention == "wd:0":
        assert row["weight_decay"] == 0.0
    curves = pd.read_csv(tmp_path / cfg.trial_id / "curves.csv")
    assert list(curves["epoch"]) == [1] and curves["emb_norm_mean"].map(math.isfinite).all()
    assert math.isfinite(curves.loc[0, "emb_grad_norm_mean"]) and curves.loc[0, "emb_grad_norm_mean"] > 0


@pytest.mark.parametrize("method", NEW_METHODS)
def test_cut_divides_every_parameter_and_the_momentum_copy_is_made_after_it(method):
    base = build_model(make_config({**TWO_STEPS, "method": method, "method_args": SMALL_HEADS[method]}))
    cut = build_model(
        make_config({**TWO_STEPS, "method": method, "method_args": SMALL_HEADS[method], "intervention": "cut:3"})
    )
    cut_params = dict(cut.named_parameters())
    for name, p0 in base.named_parameters():  # online and target (frozen) parameters alike
        torch.testing.assert_close(cut_params[name], p0 / 3, msg=name)
    for online, target in cut.target_pairs():
        for p_online, p_target in zip(online.parameters(), target.parameters()):
            assert torch.equal(p_online, p_target) and not p_target.requires_grad
