"""Every loss against an independent reference written here (values and gradients)."""

from __future__ import annotations

import math
import os
import tempfile

import pytest
import timm
import torch
import torch.multiprocessing as mp

from methods.barlow import barlow_twins_loss
from methods.byol import byol_loss
from methods.dino import dino_loss, sinkhorn_knopp
from methods.moco import moco_loss
from methods.mocov3 import mocov3_loss
from methods.nnclr import nnclr_loss
from methods.simclr import nt_xent_loss
from methods.simsiam import simsiam_loss
from methods.swav import swav_loss
from methods.vicreg import vicreg_loss


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


@pytest.mark.slow  # two spawned gloo processes: over 10 s on 2 cores
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


# --- MoCo v3 -----------------------------------------------------------------


def _info_nce_rows(anchors, candidates, temperature):
    """Mean over anchors i of -log(exp(cos(a_i, c_i) / t) / sum_j exp(cos(a_i, c_j) / t)), by loops."""
    total = 0.0
    for i in range(anchors.shape[0]):
        logits = torch.stack([_cos(anchors[i], candidates[j]) / temperature for j in range(candidates.shape[0])])
        total = total - (logits[i] - torch.log(torch.exp(logits).sum()))
    return total / anchors.shape[0]


def mocov3_reference(q1, q2, k1, k2, temperature):
    """MoCo v3 (Alg. 1): ctr(q1, k2) + ctr(q2, k1), each cross-entropy times 2t, keys constants."""
    return (
        2 * temperature * (_info_nce_rows(q1, k2.detach(), temperature) + _info_nce_rows(q2, k1.detach(), temperature))
    )


def test_mocov3_loss_matches_loops_and_is_symmetric():
    q1, q2, k1, k2 = (_leaf(5, 6, seed=40 + i) for i in range(4))
    ours = mocov3_loss(q1, q2, k1, k2, 0.2)
    ref = mocov3_reference(q1, q2, k1, k2, 0.2)
    assert torch.allclose(ours, ref, atol=1e-10)
    for g_ours, g_ref in zip(_grads(ours, [q1, q2]), _grads(ref, [q1, q2])):
        assert torch.allclose(g_ours, g_ref, atol=1e-10)
    assert torch.autograd.grad(ours, [k1, k2], allow_unused=True) == (None, None)
    # one direction only (twice) is a different loss, and it gives q2 no gradient
    one_way = 2 * 2 * 0.2 * _info_nce_rows(q1, k2.detach(), 0.2)
    assert not torch.allclose(ours, one_way, rtol=1e-3)


def test_mocov3_collapse_loss():
    from methods.mocov3 import MoCoV3

    z = torch.ones(8, 4, dtype=torch.float64)
    hp = MoCoV3.build_hparams({"temperature": 0.3})
    assert mocov3_loss(z, z, z, z, 0.3).item() == pytest.approx(MoCoV3.collapse_loss(hp, 8))


# --- NNCLR -------------------------------------------------------------------


def nnclr_reference(z1, z2, p1, p2, support, temperature):
    """NNCLR eq. 2, symmetrized: the positive of p2_i is the support row nearest (cosine) to z1_i."""

    def nearest(z):
        rows = []
        for i in range(z.shape[0]):
            sims = [_cos(z[i], s) for s in support]
            rows.append(support[int(torch.stack(sims).argmax())] / support[int(torch.stack(sims).argmax())].norm())
        return torch.stack(rows)

    return 0.5 * (_info_nce_rows(nearest(z1), p2, temperature) + _info_nce_rows(nearest(z2), p1, temperature))


def test_nnclr_loss_matches_loops_with_the_nearest_neighbour_as_positive():
    z1, z2, p1, p2 = (_leaf(6, 5, seed=50 + i) for i in range(4))
    support = torch.randn(20, 5, generator=torch.Generator().manual_seed(55), dtype=torch.float64)
    ours = nnclr_loss(z1, z2, p1, p2, support, 0.2)
    ref = nnclr_reference(z1, z2, p1, p2, support, 0.2)
    assert torch.allclose(ours, ref, atol=1e-10)
    for g_ours, g_ref in zip(_grads(ours, [p1, p2]), _grads(ref, [p1, p2])):
        assert torch.allclose(g_ours, g_ref, atol=1e-10)
    # the neighbours are constants: no gradient reaches the projections
    assert torch.autograd.grad(ours, [z1, z2], allow_unused=True) == (None, None)
    # the plain two-view positive (z itself, SimCLR with a predictor) is another loss
    plain = 0.5 * (_info_nce_rows(z1.detach(), p2, 0.2) + _info_nce_rows(z2.detach(), p1, 0.2))
    assert not torch.allclose(ours, plain, rtol=1e-3)
    # a support set holding z itself gives that plain loss back
    assert torch.allclose(nnclr_loss(z1, z2, p1, p2, torch.cat([z1, z2]).detach(), 0.2), plain, atol=1e-10)


# --- SwAV --------------------------------------------------------------------


def swav_reference(scores, codes, temperature):
    """SwAV's loop (main_swav.py): for each global crop i, every other crop v predicts code i."""
    total = 0.0
    for i, q in enumerate(codes):
        sub = 0.0
        others = [v for v in range(len(scores)) if v != i]
        for v in others:
            for b in range(q.shape[0]):
                x = scores[v][b] / temperature
                log_p = x - torch.log(torch.exp(x).sum())
                sub = sub - sum(q[b, k] * log_p[k] for k in range(q.shape[1])) / q.shape[0]
        total = total + sub / len(others)
    return total / len(codes)


@pytest.mark.parametrize("n_local", [0, 2])
def test_swav_loss_matches_loops_and_swaps_the_codes(n_local):
    scores = [_leaf(4, 6, seed=60 + i) for i in range(2 + n_local)]
    codes = [
        torch.softmax(torch.randn(4, 6, generator=torch.Generator().manual_seed(70 + i)), 1).double() for i in (0, 1)
    ]
    ours = swav_loss(scores, codes, 0.1)
    ref = swav_reference(scores, codes, 0.1)
    assert torch.allclose(ours, ref, atol=1e-10)
    for g_ours, g_ref in zip(_grads(ours, scores), _grads(ref, scores)):
        assert torch.allclose(g_ours, g_ref, atol=1e-10)
    # predicting a crop's own code (no swap) is another loss
    unswapped = sum(-(codes[i] * torch.log_softmax(scores[i] / 0.1, dim=1)).sum(1).mean() for i in (0, 1)) / 2
    assert not torch.allclose(ours, unswapped, rtol=1e-3)


def test_swav_codes_come_from_each_crops_own_scores_over_the_batch():
    """The code of crop i is the Sinkhorn-Knopp assignment of crop i's scores (SwAV: per crop, epsilon 0.05)."""
    from methods.swav import SwAV

    torch.manual_seed(0)
    backbone = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    model = SwAV(backbone, backbone.num_features, {"proj_hidden_dim": 16, "proj_output_dim": 8, "num_prototypes": 5})
    scores = [torch.randn(6, 5, dtype=torch.float64) for _ in range(2)]
    codes = model.codes(scores, torch.eye(5, 8))
    for s, q in zip(scores, codes):
        torch.testing.assert_close(q, sinkhorn_reference(s, 0.05, 3).to(q.dtype), rtol=0, atol=1e-6)


# --- Barlow Twins ----------------------------------------------------------------


def barlow_reference(z1, z2, lambd, eps=1e-5):
    """Closed form, by loops over dimensions: standardize each column (biased variance + eps, as
    BatchNorm), C_ij = sum_b a_bi b_bj / N, sum_i (1 - C_ii)^2 + lambd sum_{i != j} C_ij^2."""
    n, d = z1.shape

    def standardized(z):
        cols = []
        for j in range(d):
            mean = z[:, j].sum() / n
            var = ((z[:, j] - mean) ** 2).sum() / n
            cols.append((z[:, j] - mean) / torch.sqrt(var + eps))
        return torch.stack(cols, dim=1)

    a, b = standardized(z1), standardized(z2)
    total = 0.0
    for i in range(d):
        for j in range(d):
            c = (a[:, i] * b[:, j]).sum() / n
            total = total + ((1 - c) ** 2 if i == j else lambd * c**2)
    return total


def test_barlow_twins_loss_matches_the_closed_form_and_standardizes_each_dimension():
    z1, z2 = _leaf(7, 4, seed=80), _leaf(7, 4, seed=81)
    with torch.no_grad():  # dimensions of very different scales: standardization matters
        z1.mul_(torch.tensor([1.0, 10.0, 0.1, 3.0], dtype=torch.float64))
    ours = barlow_twins_loss(z1, z2, 0.0051)
    ref = barlow_reference(z1, z2, 0.0051)
    assert torch.allclose(ours, ref, atol=1e-8)
    for g_ours, g_ref in zip(_grads(ours, [z1, z2]), _grads(ref, [z1, z2])):
        assert torch.allclose(g_ours, g_ref, atol=1e-8)
    # without the per-dimension standardization (centred only, raw scale) it is another loss
    a, b = z1 - z1.mean(0), z2 - z2.mean(0)
    c = a.T @ b / 7
    raw = (torch.diagonal(c) - 1).pow(2).sum() + 0.0051 * (c.pow(2).sum() - torch.diagonal(c).pow(2).sum())
    assert not torch.allclose(ours, raw, rtol=1e-2)
    # ... and the real one does not see a dimension's scale or shift (up to BatchNorm's eps)
    shifted = barlow_twins_loss(z1, z2 * torch.tensor([2.0, 0.5, 7.0, 1.0], dtype=torch.float64) + 3.0, 0.0051)
    assert torch.allclose(ours, shifted, rtol=1e-4)


def test_barlow_twins_collapse_and_identity():
    from methods.barlow import BarlowTwins

    hp = BarlowTwins.build_hparams({"proj_output_dim": 6})
    collapsed = torch.ones(8, 6, dtype=torch.float64)
    assert barlow_twins_loss(collapsed, collapsed, 0.0051).item() == pytest.approx(BarlowTwins.collapse_loss(hp, 8))
    # two identical views with uncorrelated standardized columns reach the minimum 0
    m = torch.randn(8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    m[:, 0] = 1.0
    q, _ = torch.linalg.qr(m)  # q's first column is along the ones vector, the others orthogonal to it
    z = q[:, 1:7] * 8**0.5  # mean 0, variance 1, uncorrelated columns
    assert barlow_twins_loss(z, z, 0.0051).item() == pytest.approx(0.0, abs=1e-8)


# --- VICReg ------------------------------------------------------------------


def vicreg_reference(z1, z2, sim, var, cov, biased=False):
    """VICReg eqs. 1-6 by loops: MSE, hinge on sqrt(Var + 1e-4) (unbiased unless ``biased``), squared
    off-diagonal covariances (over N - 1) summed and divided by d, for each view."""
    n, d = z1.shape
    invariance = sum((z1[b, j] - z2[b, j]) ** 2 for b in range(n) for j in range(d)) / (n * d)

    def hinge(z):
        out = 0.0
        for j in range(d):
            mean = z[:, j].sum() / n
            variance = ((z[:, j] - mean) ** 2).sum() / (n if biased else n - 1)
            out = out + torch.clamp(1 - torch.sqrt(variance + 1e-4), min=0)
        return out / d

    def covariance(z):
        centred = z - z.sum(0) / n
        out = 0.0
        for i in range(d):
            for j in range(d):
                if i != j:
                    out = out + ((centred[:, i] * centred[:, j]).sum() / (n - 1)) ** 2
        return out / d

    return sim * invariance + var * (hinge(z1) + hinge(z2)) / 2 + cov * (covariance(z1) + covariance(z2))


def test_vicreg_loss_matches_loops_with_the_unbiased_std():
    z1, z2 = _leaf(4, 5, seed=90) * 0.3, _leaf(4, 5, seed=91) * 0.3  # std < 1: the hinge is active
    ours = vicreg_loss(z1, z2, 25.0, 25.0, 1.0)
    ref = vicreg_reference(z1, z2, 25.0, 25.0, 1.0)
    assert torch.allclose(ours, ref, atol=1e-10)
    for g_ours, g_ref in zip(_grads(ours, [z1, z2]), _grads(ref, [z1, z2])):
        assert torch.allclose(g_ours, g_ref, atol=1e-10)
    # the biased std (a small batch makes the difference plain) is another loss
    assert not torch.allclose(ours, vicreg_reference(z1, z2, 25.0, 25.0, 1.0, biased=True), rtol=1e-3)


def test_vicreg_collapse_loss_and_scale_dependence():
    from methods.vicreg import VICReg

    hp = VICReg.build_hparams({})
    z = torch.full((6, 4), 2.0, dtype=torch.float64)
    assert vicreg_loss(z, z, 25.0, 25.0, 1.0).item() == pytest.approx(VICReg.collapse_loss(hp, 6))
    # no normalization anywhere: scaling the embeddings changes the loss
    a, b = _leaf(6, 4, seed=92), _leaf(6, 4, seed=93)
    assert not torch.allclose(vicreg_loss(a, b, 25.0, 25.0, 1.0), vicreg_loss(3 * a, 3 * b, 25.0, 25.0, 1.0))
