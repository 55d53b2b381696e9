"""Norm interventions: spec parsing, GradScale, cut-initialization."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from methods import METHODS
from methods.interventions import INTERVENTION_KINDS, GradScale, Intervention, cut_init, grad_scale, parse_intervention
from suite.core.errors import ConfigError

# --- parsing -----------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("none", Intervention()),
        ("cut:3", Intervention(cut=3.0)),
        ("gradscale:1", Intervention(gradscale=1.0)),
        ("gradscale:-0.5", Intervention(gradscale=-0.5)),
        ("wd:5e-4", Intervention(weight_decay=5e-4)),
        ("wd:0", Intervention(weight_decay=0.0)),
        ("cut:3+gradscale:1", Intervention(cut=3.0, gradscale=1.0)),
        (" GradScale:2 + cut:9 + wd:1e-6 ", Intervention(cut=9.0, gradscale=2.0, weight_decay=1e-6)),
    ],
)
def test_parse_valid(spec, expected):
    parsed = parse_intervention(spec)
    assert parsed == expected
    assert parse_intervention(parsed.to_spec()) == parsed


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "cut:0",
        "cut:-2",
        "cut:1",
        "cut:0.5",
        "cut:abc",
        "cut:",
        "cut",
        "foo:1",
        "none+cut:3",
        "cut:3+cut:2",
        "wd:-1",
        "gradscale:inf",
        "gradscale:nan",
        "cut:3+",
        3,
        None,
    ],
)
def test_parse_invalid(spec):
    with pytest.raises(ConfigError) as err:
        parse_intervention(spec)
    assert err.value.field == "intervention"
    assert "cut:C" in err.value.allowed


def test_kinds_listed():
    assert set(INTERVENTION_KINDS) == {"none", "cut:C", "gradscale:P", "wd:X"}


# --- GradScale ---------------------------------------------------------------


@pytest.mark.parametrize("p", [0.0, 1.0, 2.0, -1.0])
def test_gradscale_identity_forward_scaled_backward(p):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(6, 4, generator=g, dtype=torch.float64)
    out = grad_scale(z, p)
    assert torch.equal(out, z)
    (grad,) = torch.autograd.grad(out, z, grad_outputs=upstream)
    norms = torch.sqrt((z.detach() ** 2).sum(dim=1, keepdim=True))
    assert torch.allclose(grad, upstream * norms**p, atol=1e-12)


def _cosine_grad_norm(z: torch.Tensor, target: torch.Tensor, p: float | None) -> torch.Tensor:
    z = z.clone().requires_grad_(True)
    zz = z if p is None else GradScale.apply(z, p)
    loss = -F.cosine_similarity(zz, target, dim=1).sum()
    (grad,) = torch.autograd.grad(loss, z)
    return grad.norm(dim=1)


def test_gradscale_p1_cancels_norm_dependence():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(5, 8, generator=g, dtype=torch.float64)
    target = torch.randn(5, 8, generator=g, dtype=torch.float64)
    plain_small, plain_large = _cosine_grad_norm(z, target, None), _cosine_grad_norm(10 * z, target, None)
    assert torch.allclose(plain_large, plain_small / 10, rtol=1e-8)  # 1/||z|| without GradScale
    scaled_small, scaled_large = _cosine_grad_norm(z, target, 1.0), _cosine_grad_norm(10 * z, target, 1.0)
    assert torch.allclose(scaled_large, scaled_small, rtol=1e-8)  # p = 1: no shrinkage


# --- cut-initialization ------------------------------------------------------


def test_cut_init_divides_every_parameter_not_buffers():
    torch.manual_seed(0)
    model = nn.Sequential(
        timm.create_model("test_resnet", pretrained=False, num_classes=0), nn.Linear(96, 16), nn.BatchNorm1d(16)
    )
    with torch.no_grad():  # non-trivial BN affines / running stats, so division is visible everywhere
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-1, 1), m.running_mean.uniform_(-1, 1)
    reference = copy.deepcopy(model)
    cut_init(model, 3.0)
    params, ref_params = dict(model.named_parameters()), dict(reference.named_parameters())
    assert len(params) > 10
    for name, p in params.items():
        assert torch.allclose(p, ref_params[name] / 3.0), name
    for (name, b), (_, rb) in zip(model.named_buffers(), reference.named_buffers()):
        assert torch.equal(b, rb), name


def _build(name: str, intervention: str, seed: int = 0):
    torch.manual_seed(seed)
    backbone = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    small = {
        "simclr": dict(proj_hidden_dim=32),
        "moco": dict(proj_hidden_dim=32, queue_size=16),
        "byol": dict(proj_hidden_dim=32, pred_hidden_dim=32),
        "simsiam": dict(proj_hidden_dim=32, proj_output_dim=32, pred_hidden_dim=8),
        "dino": dict(head_hidden_dim=32, num_prototypes=64),
        "mocov3": dict(proj_hidden_dim=32, pred_hidden_dim=32),
        "nnclr": dict(proj_hidden_dim=32, pred_hidden_dim=32),
        "swav": dict(proj_hidden_dim=32, num_prototypes=64),
        "barlow": dict(proj_hidden_dim=32, proj_output_dim=32),
        "vicreg": dict(proj_hidden_dim=32, proj_output_dim=32),
    }.get(name, {})  # small heads; defaults for new methods
    return METHODS[name](backbone, backbone.num_features, small, parse_intervention(intervention))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_cut_applies_to_all_online_parameters(name):
    plain, cut = _build(name, "none"), _build(name, "cut:4")
    online = {n: p for n, p in plain.named_parameters() if p.requires_grad}
    cut_params = dict(cut.named_parameters())
    assert any(n.startswith("backbone.") for n in online) and any(not n.startswith("backbone.") for n in online)
    for n, p in online.items():
        assert torch.allclose(cut_params[n], p / 4.0), n


@pytest.mark.parametrize(
    "name, pairs",
    [
        ("moco", [("backbone", "backbone_momentum"), ("projector", "projector_momentum")]),
        ("byol", [("backbone", "backbone_target"), ("projector", "projector_target")]),
        ("dino", [("backbone", "backbone_teacher"), ("head", "head_teacher")]),
        ("mocov3", [("backbone", "backbone_momentum"), ("projector", "projector_momentum")]),
    ],
)
def test_targets_start_as_copies_of_the_cut_online_network(name, pairs):
    plain, model = _build(name, "none"), _build(name, "cut:3+gradscale:1")
    for online_name, target_name in pairs:
        online, target = getattr(model, online_name), getattr(model, target_name)
        uncut = getattr(plain, online_name)
        online_params, target_params = list(online.parameters()), list(target.parameters())
        assert len(online_params) == len(target_params) > 0
        for po, pt, pu in zip(online_params, target_params, uncut.parameters()):
            assert torch.equal(po, pt)
            assert torch.allclose(pt, pu / 3.0)
            assert not pt.requires_grad
