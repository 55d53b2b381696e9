"""Every loss against an independent reference written here (values and gradients)."""

from __future__ import annotations

import math
import os
import tempfile

import pytest
import torch
import torch.multiprocessing as mp

from methods.byol import byol_loss
from methods.dino import dino_loss, sinkhorn_knopp
from methods.moco import moco_loss
from methods.simclr import nt_xent_loss
from methods.simsiam import simsiam_loss


def _grads(loss, tensors):
    return torch.autograd.grad(loss, tensors)


def _leaf(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(True)


def _cos(a, b):
    return (a * b).sum() / (a.norm() * b.norm())


# --- NT-Xent ---------------------------------------------------------------


def nt_xent_reference(z1, z2, temperature):
    """Explicit double loop over the 2N samples (SimCLR paper, Alg. 1)."""
    z = torch.cat([z1, z2])
    two_n = z.shape[0]
    n = two_n // 2
    total = 0.0
    for i in range(two_n):
        pos = (i + n) % two_n
        denominator = 0.0
        for j in range(two_n):
            if j != i:
                denominator = denominator + torch.exp(_cos(z[i], z[j]) / temperature)
        total = total - torch.log(torch.exp(_cos(z[i], z[pos]) / temperature) / denominator)
    return total / two_n


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_matches_double_loop(temperature):
    z1, z2 = _leaf(5, 7, seed=0), _leaf(5, 7, seed=1)
    ours = nt_xent_loss(z1, z2, temperature)
    ref = nt_xent_reference(z1, z2, temperature)
    assert torch.allclose(ours, ref, atol=1e-10)
    for g_ours, g_ref in zip(_grads(ours, [z1, z2]), _grads(ref, [z1, z2])):
        assert torch.allclose(g_ours, g_ref, atol=1e-10)


def test_nt_xent_perfect_alignment_lower_than_random():
    z = _leaf(8, 16, seed=2)
    aligned = nt_xent_loss(z, z.detach().clone(), 0.5)
    shuffled = nt_xent_loss(z, z.detach()[torch.randperm(8)], 0.5)
    assert aligned < shuffled


# --- MoCo ------------------------------------------------------------------


def moco_reference(q, k, queue, temperature):
    """Per-query loop with explicit log-sum-exp over [positive, negatives]."""
    total = 0.0
    for i in range(q.shape[0]):
        qi = q[i] / q[i].norm()
        ki = k[i].detach() / k[i].detach().norm()
        logits = [torch.dot(qi, ki) / temperature]
        for row in queue:
            logits.append(torch.dot(qi, row / row.norm()) / temperature)
        logits = torch.stack(logits)
        total = total - (logits[0] - torch.log(torch.exp(logits).sum()))
    return total / q.shape[0]


def test_moco_loss_matches_explicit_logits():
    q, k, queue = _leaf(4, 6, seed=3), _leaf(4, 6, seed=4), _leaf(9, 6, seed=5)
    ours = moco_loss(q, k, queue, 0.2)
    ref = moco_reference(q, k, queue, 0.2)
    assert torch.allclose(ours, ref, atol=1e-10)
    g_ours, g_ref = _grads(ours, [q]), _grads(ref, [q])
    assert torch.allclose(g_ours[0], g_ref[0], atol=1e-10)
    # keys and queue are constants for the query loss (momentum-encoder outputs)
    assert torch.autograd.grad(ours, [k, queue], allow_unused=True) == (None, None)


# --- BYOL / SimSiam ----------------------------------------------------------


@pytest.mark.parametrize("loss_fn", [byol_loss, simsiam_loss])
def test_negative_cosine_losses(loss_fn):
    p, z = _leaf(6, 5, seed=6), _leaf(6, 5, seed=7)
    ours = loss_fn(p, z)
    ref = -sum(_cos(p[i], z[i]) for i in range(6)) / 6
    assert torch.allclose(ours, ref, atol=1e-12)
    assert torch.allclose(_grads(ours, [p])[0], _grads(ref, [p])[0], atol=1e-12)
    # stop-gradient on the target
    assert torch.autograd.grad(ours, [z], allow_unused=True) == (None,)
    # perfectly aligned predictions reach the minimum -1
    assert torch.allclose(loss_fn(z.detach() * 3.0, z), torch.tensor(-1.0, dtype=torch.float64))


# --- DINO ------------------------------------------------------------------


def dino_reference(student, teacher, center, student_temp, teacher_temp):
    """Explicit loops over crop pairs, samples and prototypes."""
    total, pairs = 0.0, 0
    for it, t in enumerate(teacher):
        for js, s in enumerate(student):
            if it == js:
                continue
            pair_loss = 0.0
            for b in range(t.shape[0]):
                te = torch.exp((t[b].detach() - center[0]) / teacher_temp)
                q = te / te.sum()
                se = s[b] / student_temp
                log_p = se - torch.log(torch.exp(se).sum())
                pair_loss = pair_loss - sum(q[k] * log_p[k] for k in range(t.shape[1]))
            total = total + pair_loss / t.shape[0]
            pairs += 1
    return total / pairs


@pytest.mark.parametrize("n_local", [0, 2])
def test_dino_loss_matches_pair_loops(n_local):
    teacher = [_leaf(3, 5, seed=10 + i) for i in range(2)]
    student = [_leaf(3, 5, seed=20 + i) for i in range(2 + n_local)]
    center = torch.randn(1, 5, generator=torch.Generator().manual_seed(30), dtype=torch.float64)
    ours = dino_loss(student, teacher, center, 0.1, 0.04)
    ref = dino_reference(student, teacher, center, 0.1, 0.04)
    assert torch.allclose(ours, ref, atol=1e-10)
    for g_ours, g_ref in zip(_grads(ours, student), _grads(ref, student)):
        assert torch.allclose(g_ours, g_ref, atol=1e-10)
    assert torch.autograd.grad(ours, teacher, allow_unused=True) == (None, None)


def test_dino_loss_needs_a_pair():
    x = _leaf(2, 3, seed=0)
    with pytest.raises(ValueError):
        dino_loss([x], [x], torch.zeros(1, 3, dtype=torch.float64), 0.1, 0.04)


def sinkhorn_reference(logits, temperature, iterations):
    """DINOv2's teacher Sinkhorn-Knopp loop, transposed to [K, B], no shift (float64)."""
    q = torch.exp(logits / temperature).t()
    n_protos, n_rows = q.shape
    q = q / q.sum()
    for _ in range(iterations):
        q = q / q.sum(dim=1, keepdim=True) / n_protos
        q = q / q.sum(dim=0, keepdim=True) / n_rows
    return (q * n_rows).t()


def test_sinkhorn_matches_the_dinov2_loop_and_survives_low_temperatures():
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(sinkhorn_knopp(logits, 0.5), sinkhorn_reference(logits, 0.5, 3), rtol=0, atol=1e-7)
    g = torch.Generator().manual_seed(2)
    cosines = torch.nn.functional.normalize(torch.randn(64, 8, generator=g), dim=1) @ torch.nn.functional.normalize(
        torch.randn(8, 256, generator=g), dim=0
    )  # DINO's logits: cosines
    sharp = sinkhorn_knopp(cosines, 0.01)  # exp(1 / 0.01) overflows float32 without the shift
    assert sharp.dtype == torch.float32 and torch.isfinite(sharp).all()
    torch.testing.assert_close(sharp.sum(dim=1), torch.ones(64))
    assert sinkhorn_knopp(cosines.bfloat16(), 0.04).dtype == torch.float32


def test_sinkhorn_converges_to_the_equipartitioned_scaling_of_exp_logits():
    """At convergence Q has unit rows, B/K per prototype, and log Q - L/t is a row term
    plus a column term (Q = diag(u) exp(L/t) diag(v)): the Sinkhorn solution is the
    unique matrix with both properties."""
    n_rows, n_protos, temperature = 12, 4, 0.3
    logits = torch.randn(n_rows, n_protos, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    q = sinkhorn_knopp(logits, temperature, iterations=500).double()
    torch.testing.assert_close(q.sum(dim=1), torch.ones(n_rows, dtype=torch.float64), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        q.sum(dim=0), torch.full((n_protos,), n_rows / n_protos, dtype=torch.float64), rtol=0, atol=1e-5
    )
    residual = q.log() - logits / temperature
    interaction = residual - residual.mean(1, keepdim=True) - residual.mean(0, keepdim=True) + residual.mean()
    assert interaction.abs().max() < 1e-4
    assert q.argmax(dim=1).unique().numel() > 1  # not every row on one prototype


def test_sinkhorn_refuses_zero_iterations():
    with pytest.raises(ValueError, match="iterations"):
        sinkhorn_knopp(torch.zeros(2, 2), 0.1, iterations=0)


# --- NT-Xent across two real worker processes (gloo) -------------------------


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    from methods.distributed import all_reduce_mean_, concat_all_gather_no_grad
    from methods.simclr import nt_xent_loss as loss_fn

    torch.set_default_dtype(torch.float64)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        g = torch.Generator().manual_seed(0)
        full1, full2 = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
        z1 = full1[rank * 4 : (rank + 1) * 4].clone().requires_grad_(True)
        z2 = full2[rank * 4 : (rank + 1) * 4].clone().requires_grad_(True)
        loss = loss_fn(z1, z2, 0.3)
        g1, g2 = torch.autograd.grad(loss, [z1, z2])
        gathered = concat_all_gather_no_grad(z1.detach())
        mean = all_reduce_mean_(torch.tensor([float(rank)]))
        torch.save(
            {"loss": loss.detach(), "g1": g1, "g2": g2, "gathered": gathered, "mean": mean},
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def test_nt_xent_two_workers_equals_one_worker():
    world = 2
    with tempfile.TemporaryDirectory() as out_dir:
        # A file rendezvous: no TCP port that another process could take in between.
        mp.spawn(_worker, args=(world, os.path.join(out_dir, "init"), out_dir), nprocs=world, join=True)
        results = [torch.load(os.path.join(out_dir, f"rank{r}.pt")) for r in range(world)]
    g = torch.Generator().manual_seed(0)
    full1 = torch.randn(8, 5, generator=g, dtype=torch.float64).requires_grad_(True)
    full2 = torch.randn(8, 5, generator=g, dtype=torch.float64).requires_grad_(True)
    single = nt_xent_reference(full1, full2, 0.3)
    s1, s2 = torch.autograd.grad(single, [full1, full2])
    # the single-worker loss is the mean of the workers' losses ...
    assert math.isclose(sum(r["loss"].item() for r in results) / world, single.item(), rel_tol=1e-9)
    # ... and each worker's gradient (which includes the other worker's loss through the
    # gathered negatives) is world x the single-worker gradient of its shard; data-parallel
    # averaging of parameter gradients divides the factor back out.
    for r, res in enumerate(results):
        shard = slice(r * 4, (r + 1) * 4)
        assert torch.allclose(res["g1"] / world, s1[shard], atol=1e-10)
        assert torch.allclose(res["g2"] / world, s2[shard], atol=1e-10)
        assert torch.allclose(res["gathered"], full1.detach())
        assert res["mean"].item() == pytest.approx(0.5)
