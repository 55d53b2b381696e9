"""The mechanism checks behind claims C2b and C3 (`suite.measure.mechanism`), against the theory.

C2b: for every method whose loss L2-normalizes its embedding, dL/dz * ||z|| equals the gradient at the
normalized embedding to float rounding, on embeddings spanning norms 0.1-10; a loss that does not
normalize (written here) fails. C3: on a one-layer model under plain SGD the turn of one step scales as
a^-2 (a^(p-2) under GradScale p), and the placebo (the same norms, carried by no parameter) does not.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods import METHODS, get_method
from methods.base import HParams, SSLMethod
from methods.byol import byol_loss
from methods.interventions import parse_intervention
from methods.moco import moco_loss
from methods.simclr import nt_xent_loss
from methods.simsiam import simsiam_loss
from suite.measure.mechanism import (
    ALPHAS,
    gradient_identity_deviation,
    step_turn_slopes,
    theory_slope,
)
from suite.trial.backbones import build_backbone


def _spread_norms(z: Tensor, seed: int) -> Tensor:
    """Rows rescaled to norms spread evenly over [0.1, 10.1], in a shuffled order."""
    g = torch.Generator().manual_seed(seed)
    norms = torch.linspace(0.1, 10.1, z.shape[0], dtype=z.dtype)[torch.randperm(z.shape[0], generator=g)]
    return F.normalize(z, dim=1) * norms[:, None]


QUEUE = torch.randn(32, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


@pytest.mark.parametrize(
    "loss",
    [
        lambda z, t: nt_xent_loss(z[:8], z[8:], 0.5),
        lambda z, t: moco_loss(z, t, QUEUE, 0.2),
        lambda z, t: byol_loss(z, t),
        lambda z, t: simsiam_loss(z, t),
    ],
    ids=["simclr", "moco", "byol", "simsiam"],
)
def test_the_losses_gradient_times_the_norm_is_the_gradient_at_the_unit_vector(loss):
    """The identity the C2b instrument measures, by hand on the pure loss functions in float64."""
    torch.manual_seed(0)
    z = _spread_norms(torch.randn(16, 12, dtype=torch.float64), 1).requires_grad_()
    target = torch.randn(16, 12, dtype=torch.float64)
    (g,) = torch.autograd.grad(loss(z, target), z)
    u = (z.detach() / z.detach().norm(dim=1, keepdim=True)).requires_grad_()
    (g_u,) = torch.autograd.grad(loss(u, target), u)
    assert z.detach().norm(dim=1).min() == pytest.approx(0.1) and z.detach().norm(dim=1).max() == pytest.approx(10.1)
    torch.testing.assert_close(g * z.detach().norm(dim=1, keepdim=True), g_u, rtol=1e-12, atol=1e-15)


class _IdentityBackbone(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)


class _OneLayerHparams(HParams):
    normalize: bool = True


class OneLayer(SSLMethod):
    """A one-layer model (identity backbone, one Linear head) with a negative-cosine loss between its two
    views' embeddings -- or, with ``normalize`` False, a squared distance, which does not normalize."""

    name = "one_layer"
    Hparams = _OneLayerHparams

    def build_online(self) -> None:
        self.head = nn.Linear(self.feature_dim, 6)

    def embedding_layer(self) -> nn.Module:
        return self.head

    def embedding(self, features: Tensor) -> Tensor:
        return self.head(features)

    def forward(self, views: list[Tensor]) -> dict:
        z1, z2 = (self.intervene(self.head(self.backbone(v))) for v in views)
        if self.hparams.normalize:
            loss = -F.cosine_similarity(z1, z2.detach(), dim=-1).mean() - F.cosine_similarity(z2, z1.detach()).mean()
        else:
            loss = ((z1 - z2.detach()) ** 2).sum(dim=1).mean() + ((z2 - z1.detach()) ** 2).sum(dim=1).mean()
        return self._output(loss, [z1, z2], [v.flatten(1) for v in views])


def _one_layer(normalize: bool = True, intervention: str = "none") -> tuple[OneLayer, list[Tensor]]:
    torch.manual_seed(0)
    model = OneLayer(_IdentityBackbone(), 10, {"normalize": normalize}, parse_intervention(intervention))
    x = torch.randn(32, 10)
    return model, [x + 0.3 * torch.randn_like(x), x + 0.3 * torch.randn_like(x)]


def test_c2b_identity_holds_for_a_normalizing_loss_and_fails_for_one_that_is_not():
    model, views = _one_layer(normalize=True)
    assert gradient_identity_deviation(model, views) < 1e-5
    broken, views = _one_layer(normalize=False)
    assert gradient_identity_deviation(broken, views) > 0.1


def _turns_by_hand(model: OneLayer, views: list[Tensor], alpha: float, eta: float, placebo: bool) -> float:
    """One plain-SGD step of the head alone, written out with a fresh copy of the model (float64)."""
    import copy

    m = copy.deepcopy(model).double().eval()
    views = [v.double() for v in views]
    with torch.no_grad():
        if not placebo:
            m.head.weight.mul_(alpha)
            m.head.bias.mul_(alpha)
    tap = (lambda z: z * alpha) if placebo else (lambda z: z)
    with m.embedding_tap(tap):
        before = torch.cat([m.head(v) for v in views]).detach()
        loss = m(views).loss
    grads = torch.autograd.grad(loss, [m.head.weight, m.head.bias])
    with torch.no_grad():
        m.head.weight.sub_(eta * grads[0])
        m.head.bias.sub_(eta * grads[1])
        after = torch.cat([m.head(v) for v in views])
    cos = F.cosine_similarity(before, after, dim=1).clamp(-1, 1)
    return float(torch.arccos(cos).mean())


@pytest.mark.parametrize("p", [None, 1.0, 0.5])
def test_c3_on_a_one_layer_model_under_plain_sgd_the_slope_is_p_minus_two_and_the_placebo_zero(p):
    model, views = _one_layer(intervention="none" if p is None else f"gradscale:{p:g}")
    slope, placebo = step_turn_slopes(model, views)
    assert slope == pytest.approx(theory_slope(p), abs=1e-4)
    assert placebo == pytest.approx(0.0, abs=1e-4)
    # an independent step written out (float64, a visible eta): the same power law within its finite step
    turns = [_turns_by_hand(model, views, a, 1e-4, placebo=False) for a in ALPHAS]
    by_hand = math.log(turns[2] / turns[1]) / math.log(ALPHAS[2] / ALPHAS[1])
    assert by_hand == pytest.approx(theory_slope(p), abs=0.02)
    fake = [_turns_by_hand(model, views, a, 1e-4, placebo=True) for a in ALPHAS]
    assert math.log(fake[2] / fake[1]) / math.log(4.0) == pytest.approx(0.0, abs=0.02)


def test_c3_is_not_the_law_for_a_loss_that_does_not_normalize():
    model, views = _one_layer(normalize=False)
    slope, _ = step_turn_slopes(model, views)
    assert abs(slope - theory_slope(None)) > 0.5


def test_the_checks_leave_the_model_exactly_as_they_found_it():
    model, views = _one_layer()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gradient_identity_deviation(model, views)
    step_turn_slopes(model, views)
    assert model.training and model._embedding_tap is None
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


SMALL_HEADS = {
    "simclr": {"proj_hidden_dim": 32, "proj_output_dim": 16},
    "moco": {"proj_hidden_dim": 32, "proj_output_dim": 16, "queue_size": 64},
    "byol": {"proj_hidden_dim": 32, "proj_output_dim": 16, "pred_hidden_dim": 32},
    "simsiam": {"proj_hidden_dim": 32, "proj_output_dim": 16, "pred_hidden_dim": 8},
    "dino": {"head_hidden_dim": 32, "bottleneck_dim": 16, "num_prototypes": 32},
    "mocov3": {"proj_hidden_dim": 32, "proj_output_dim": 16, "pred_hidden_dim": 32},
    "nnclr": {"proj_hidden_dim": 32, "proj_output_dim": 16, "pred_hidden_dim": 32, "support_size": 64},
    "swav": {"proj_hidden_dim": 32, "proj_output_dim": 16, "num_prototypes": 32, "num_local_crops": 2},
    "barlow": {"proj_hidden_dim": 32, "proj_output_dim": 16},
    "vicreg": {"proj_hidden_dim": 32, "proj_output_dim": 16},
}


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("intervention", ["none", "gradscale:1"])
def test_every_method_passes_both_checks_with_its_real_heads(name, intervention):
    """Every method's embedding layer is the last layer before the loss, so the identity and the slope hold
    on its real modules (tiny backbone and heads), with its queue, centre and running statistics untouched.
    For the losses that do not L2-normalize (Barlow Twins, VICReg: the controls) the identity clearly
    fails, as it must; C3's law is not theirs either, so only its instrument running is checked."""
    cls = get_method(name)
    torch.manual_seed(0)
    backbone, dim = build_backbone("test_resnet", 16)
    model = cls(backbone, dim, cls.build_hparams(SMALL_HEADS[name]), parse_intervention(intervention))
    views = [torch.randn(16, 3, s.size, s.size) for s in model.view_specs(16)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    deviation = gradient_identity_deviation(model, views)
    slope, placebo = step_turn_slopes(model, views)
    if cls.loss_normalizes_embedding:
        assert deviation < 1e-3
        p = parse_intervention(intervention).gradscale
        assert slope == pytest.approx(theory_slope(p), abs=1e-3) and placebo == pytest.approx(0.0, abs=1e-3)
    else:
        assert deviation > 0.1
        assert math.isfinite(slope) and math.isfinite(placebo)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    # the layer really is the embedding: its output is what the loss receives
    seen: list[Tensor] = []
    layer_out: list[Tensor] = []
    hook = model.embedding_layer().register_forward_hook(lambda m, a, out: layer_out.append(out.detach()))
    with torch.no_grad(), model.embedding_tap(lambda z: seen.append(z.detach()) or z):
        model.eval()
        model(views)
    hook.remove()
    assert len(seen) >= 2 and all(torch.equal(a, b) for a, b in zip(layer_out, seen))
