"""Optimizers and the learning-rate schedule."""
from __future__ import annotations

import math

import pytest
import timm.optim
import torch
from torch import nn

from suite.optim import build_optimizer, lr_at


def test_schedule_is_linear_warmup_then_cosine_to_zero():
    base, total, warm = 0.4, 100, 10
    # Warm-up: step s gets base * (s + 1) / warm.
    assert [lr_at(s, total, warm, base) for s in range(warm)] == pytest.approx([base * (s + 1) / warm for s in range(warm)])
    # Cosine: closed form over the remaining 90 steps.
    for s in (10, 32, 55, 77, 99):
        expected = 0.5 * base * (1 + math.cos(math.pi * (s - warm) / (total - warm)))
        assert lr_at(s, total, warm, base) == pytest.approx(expected)
    assert lr_at(total, total, warm, base) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(0, total, 0, base) == pytest.approx(base)  # no warm-up starts at the peak


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))


def test_weight_decay_groups_per_optimizer():
    net = _net()
    matrices = {id(p) for p in net.parameters() if p.ndim > 1}
    sgd = build_optimizer(net, "sgd", 0.1, 1e-4, 0.9)
    assert isinstance(sgd, torch.optim.SGD) and len(sgd.param_groups) == 1
    assert sgd.param_groups[0]["weight_decay"] == 1e-4  # SGD decays everything, as in the paper's sweeps
    for name, cls in (("lars", timm.optim.Lars), ("adamw", torch.optim.AdamW)):
        opt = build_optimizer(net, name, 0.1, 1e-4, 0.9)
        assert isinstance(opt, cls)
        decayed, plain = opt.param_groups
        assert {id(p) for p in decayed["params"]} == matrices and decayed["weight_decay"] == 1e-4
        assert all(p.ndim <= 1 for p in plain["params"]) and plain["weight_decay"] == 0.0


def test_sgd_step_matches_the_update_rule_by_hand():
    torch.manual_seed(0)
    layer = nn.Linear(3, 2)
    w0 = layer.weight.detach().clone()
    opt = build_optimizer(layer, "sgd", 0.5, 0.01, 0.9)
    layer(torch.randn(4, 3)).pow(2).sum().backward()
    grad = layer.weight.grad.clone()
    opt.step()
    torch.testing.assert_close(layer.weight.detach(), w0 - 0.5 * (grad + 0.01 * w0))
