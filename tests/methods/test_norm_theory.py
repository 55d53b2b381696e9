"""The paper's theory on free embeddings (rows of an nn.Parameter), plain SGD.

For any loss of z/||z|| the gradient is orthogonal to z, so one SGD step gives
||z + dz||^2 = ||z||^2 + ||dz||^2: norms never decrease. The angular step is
||dz||/||z|| ~ lr/||z||^2, so the number of steps to converge grows about
quadratically with the initial norm; GradScale with power p multiplies the
gradient by ||z||^p, turning that into ||z||^(2-p).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from methods.interventions import grad_scale
from methods.simclr import nt_xent_loss
from methods.simsiam import simsiam_loss

N, D = 16, 8


def _symmetric_simsiam(z1, z2):
    return 0.5 * (simsiam_loss(z1, z2) + simsiam_loss(z2, z1))


def _nt_xent(z1, z2):
    return nt_xent_loss(z1, z2, 0.5)


def _free_embeddings(scale: float, seed: int = 0) -> torch.nn.Parameter:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2 * N, D, generator=g, dtype=torch.float64)
    return torch.nn.Parameter(scale * z / z.norm(dim=1, keepdim=True))


def _sgd_trajectory(loss_fn, steps: int, lr: float, weight_decay: float = 0.0):
    """Row norms before/after each step and each step's update."""
    z = _free_embeddings(1.0, seed=3)
    opt = torch.optim.SGD([z], lr=lr, momentum=0.0, weight_decay=weight_decay)
    records = []
    for _ in range(steps):
        before = z.detach().clone()
        opt.zero_grad()
        loss_fn(z[:N], z[N:]).backward()
        opt.step()
        records.append((before, z.detach().clone()))
    return records


@pytest.mark.parametrize("loss_fn", [_nt_xent, _symmetric_simsiam])
def test_norms_never_decrease_and_updates_are_orthogonal(loss_fn):
    records = _sgd_trajectory(loss_fn, steps=60, lr=2.0)
    for before, after in records:
        step = after - before
        n_before, n_after = before.norm(dim=1), after.norm(dim=1)
        assert torch.all(n_after >= n_before - 1e-12)  # every row, every step
        pythagoras = (before**2).sum(1) + (step**2).sum(1)
        assert torch.allclose((after**2).sum(1), pythagoras, rtol=1e-10, atol=1e-12)
        assert torch.allclose((before * step).sum(1), torch.zeros(2 * N, dtype=torch.float64), atol=1e-12)
    first, last = records[0][0].norm(dim=1), records[-1][1].norm(dim=1)
    assert torch.all(last > first)  # and they do grow


def test_weight_decay_breaks_monotonicity():
    """Control: the same check catches shrinking norms once weight decay acts."""
    records = _sgd_trajectory(_symmetric_simsiam, steps=20, lr=0.5, weight_decay=0.1)
    before, after = records[-1]
    assert torch.any(after.norm(dim=1) < before.norm(dim=1))


def _steps_to_align(scale: float, power: float | None, lr: float = 0.05, threshold: float = 0.99) -> int:
    """SGD steps until every positive pair has cosine > threshold."""
    z = _free_embeddings(scale)
    opt = torch.optim.SGD([z], lr=lr)
    for step in range(20_000):
        if F.cosine_similarity(z[:N], z[N:], dim=1).min().item() > threshold:
            return step
        zz = z if power is None else grad_scale(z, power)
        loss = -F.cosine_similarity(zz[:N], zz[N:], dim=1).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    raise AssertionError("did not converge")


@pytest.mark.parametrize("power, expected_ratio", [(None, 4.0), (1.0, 2.0), (2.0, 1.0)])
def test_steps_to_converge_scale_as_norm_to_the_2_minus_p(power, expected_ratio):
    """Doubling the initial norm multiplies the steps by 2^(2-p) (p = 0 without GradScale)."""
    steps = [_steps_to_align(scale, power) for scale in (1.0, 2.0, 4.0)]
    for small, large in zip(steps[:-1], steps[1:]):
        assert large / small == pytest.approx(expected_ratio, rel=0.15)
    if power is None:
        assert steps[0] < steps[1] < steps[2]
