"""Optimizers and the learning-rate schedule."""

from __future__ import annotations

import copy
import math

import pytest
import timm.optim
import torch
from torch import nn

from suite.trial.optim import build_optimizer, lr_at


def test_schedule_is_linear_warmup_then_cosine_to_zero():
    base, total, warm = 0.4, 100, 10
    # Warm-up: step s gets base * (s + 1) / warm.
    assert [lr_at(s, total, warm, base) for s in range(warm)] == pytest.approx(
        [base * (s + 1) / warm for s in range(warm)]
    )
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
        if name == "lars":  # timm's flag: adapt matrices whatever the decay, never the 1-D parameters
            assert decayed["always_adapt"] is True and plain["always_adapt"] is False


def test_sgd_step_matches_the_update_rule_by_hand():
    torch.manual_seed(0)
    layer = nn.Linear(3, 2)
    w0 = layer.weight.detach().clone()
    opt = build_optimizer(layer, "sgd", 0.5, 0.01, 0.9)
    layer(torch.randn(4, 3)).pow(2).sum().backward()
    grad = layer.weight.grad.clone()
    opt.step()
    torch.testing.assert_close(layer.weight.detach(), w0 - 0.5 * (grad + 0.01 * w0))


@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
def test_lars_adapts_layers_also_at_zero_weight_decay_and_biases_take_the_sgd_step(weight_decay):
    """One LARS step against the closed form: for a matrix W with gradient g,
    trust = trust_coeff * ||W|| / (||g|| + wd * ||W|| + eps), LARC-clipped to min(trust / lr, 1), and
    W <- W - lr * min(trust / lr, 1) * (g + wd * W). 1-D parameters: W <- W - lr * g."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    sgd_net = copy.deepcopy(net)
    lr, trust_coeff, eps = 2.0, 0.02, 1e-8
    x = torch.randn(16, 5)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = build_optimizer(net, "lars", lr, weight_decay, 0.9)
    sgd = build_optimizer(sgd_net, "sgd", lr, 0.0, 0.9)
    assert all(g["trust_coeff"] == trust_coeff and g["trust_clip"] for g in opt.param_groups)
    for model in (net, sgd_net):
        model(x).pow(2).sum().backward()
    grads = {n: p.grad.detach().clone() for n, p in net.named_parameters()}
    opt.step()
    sgd.step()
    sgd_params = dict(sgd_net.named_parameters())
    for name, p in net.named_parameters():
        w, g = before[name].double(), grads[name].double()
        if p.ndim > 1:
            trust = trust_coeff * w.norm() / (g.norm() + weight_decay * w.norm() + eps)
            factor = min(float(trust) / lr, 1.0)
            assert factor < 0.5  # the adaptation really changes the step here
            expected = w - lr * factor * (g + weight_decay * w)
            assert not torch.allclose(p.detach(), sgd_params[name].detach())  # not SGD
        else:  # bias, BatchNorm weight and bias: excluded from adaptation and decay
            expected = w - lr * g
            torch.testing.assert_close(p.detach(), sgd_params[name].detach())
        torch.testing.assert_close(p.detach().double(), expected, rtol=1e-5, atol=1e-6)
