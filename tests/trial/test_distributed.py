"""Data parallelism is exact, for every registered method: two real gloo workers
taking two steps on halves of a fixed batch end in the state one process
reaches on the whole batch -- same loss, same parameters, same BatchNorm
statistics, and for momentum methods the same EMA target, MoCo queue and DINO
centre (the whole state_dict is compared).

The workers are wired exactly as `suite.trial.train.run_trial` wires them
(`suite.trial.runtime.prepare_data_parallel`: synchronized BatchNorm, then DDP).
Two steps, because DDP only notices a parameter that received no gradient at
the start of the *next* iteration. The views are fixed tensors (no
augmentation randomness). All methods share one pair of spawned processes.

Everything runs in float64: the logic must match to 1e-9, and float32
round-off (amplified by BatchNorm over 8-sample shards) cannot hide a real
difference behind a loose tolerance.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from methods import METHODS
from suite.config import make_config
from suite.trial.runtime import GlooSyncBatchNorm, convert_sync_batchnorm

pytestmark = pytest.mark.slow  # two gloo worker processes per test

BATCH, STEPS, LR = 16, 2, 0.5
# Small heads keep the test fast (what is compared is how the workers combine, not the widths: the
# defaults' float64 states were 360 MB); extra hyper-parameters make a method's test stronger (BN in
# SimCLR's projector must be synced too).
EXTRA_ARGS = {
    "simclr": {"proj_batch_norm": True, "proj_hidden_dim": 64, "proj_output_dim": 32},
    "moco": {"queue_size": 64, "proj_hidden_dim": 64, "proj_output_dim": 32},
    "byol": {"proj_hidden_dim": 64, "proj_output_dim": 32, "pred_hidden_dim": 64},
    "simsiam": {"proj_hidden_dim": 64, "proj_output_dim": 64, "pred_hidden_dim": 32},
    "dino": {"head_hidden_dim": 64, "bottleneck_dim": 32, "num_prototypes": 128},
    "mocov3": {"proj_hidden_dim": 64, "proj_output_dim": 32, "pred_hidden_dim": 64},
    "nnclr": {"proj_hidden_dim": 64, "proj_output_dim": 32, "pred_hidden_dim": 64, "support_size": 24},
    # the queue is full after the first step (16 rows), so the second step's codes use it; the prototypes
    # are frozen for the first step only; two local crops take the multi-crop path
    "swav": {
        "proj_hidden_dim": 64,
        "proj_output_dim": 32,
        "num_prototypes": 48,
        "freeze_prototypes_steps": 1,
        "queue_size": 16,
        "queue_start_epoch": 0,
        "num_local_crops": 2,
    },
    "barlow": {"proj_hidden_dim": 64, "proj_output_dim": 32},
    "vicreg": {"proj_hidden_dim": 64, "proj_output_dim": 32},
}
# Every method, plus the variants whose losses talk across workers differently:
# DINO's Sinkhorn-Knopp centering all-reduces its marginals instead of a mean centre.
VARIANTS = {
    **{name: (name, EXTRA_ARGS.get(name, {})) for name in METHODS},
    "dino-sinkhorn": ("dino", {**EXTRA_ARGS["dino"], "centering": "sinkhorn"}),
}


def _config(name: str):
    method, method_args = VARIANTS[name]
    return make_config(
        dict(
            method=method,
            backbone="test_resnet",
            image_size=16,
            batch_size=BATCH,
            device="cpu",
            method_args=method_args,
        )
    )


def _model(name: str) -> nn.Module:
    from suite.trial.train import build_model

    return build_model(_config(name))


def _views(model: nn.Module, step: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    return [torch.randn(BATCH, 3, spec.size, spec.size, generator=g) for spec in model.view_specs(16)]


def _train(model: nn.Module, method: nn.Module, shard) -> list[float]:
    """STEPS optimizer steps + EMA updates; returns the (local) losses."""
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=LR)
    losses = []
    for step in range(STEPS):
        loss = model([shard(v) for v in _views(method, step)]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        method.update_target((step + 1) / 10)
        method.after_step(step + 1)
        losses.append(loss.detach())
    return losses


def _snapshot(method: nn.Module, losses) -> dict:
    return {
        "loss": torch.stack(losses),
        "state": {k: v.detach().clone() for k, v in method.state_dict().items()},
        "requires_grad": {k: p.requires_grad for k, p in method.named_parameters()},
    }


def _train_variants(rank: int, world: int) -> dict:
    """Every variant's two data-parallel steps on this rank's half of the batch (float64)."""
    from suite.trial.runtime import prepare_data_parallel

    per = BATCH // world
    results = {}
    for name in VARIANTS:
        method = _model(name)
        model = prepare_data_parallel(method, torch.device("cpu"))
        losses = _train(model, method, lambda v: v[rank * per : (rank + 1) * per])
        losses = [dist.all_reduce(loss) or loss / world for loss in losses]
        results[name] = _snapshot(method, losses)
    return results


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """One pair of processes for both checks of this module (each pair costs two interpreters)."""
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        results = {"train": _train_variants(rank, world), "grads": _one_step_each(rank, world)}
        if rank == 0:
            torch.save(results, os.path.join(out_dir, "ddp.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_pair(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, str(out / "init"), str(out)), nprocs=2, join=True)
    results = torch.load(out / "ddp.pt")
    (out / "ddp.pt").unlink()  # a module fixture's dir outlives the module
    return results


@pytest.fixture(scope="module")
def ddp_results(ddp_pair) -> dict:
    return ddp_pair["train"]


@pytest.fixture(scope="module")
def single_results() -> dict:
    results = {}
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for name in VARIANTS:
            method = _model(name)
            initial = {k: v.detach().clone() for k, v in method.state_dict().items()}
            results[name] = {**_snapshot(method, _train(method, method, lambda v: v)), "initial": initial}
    finally:
        torch.set_default_dtype(saved)
    return results


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_two_workers_equal_one_process(name, ddp_results, single_results):
    ddp, single = ddp_results[name], single_results[name]
    assert single["loss"].dtype == torch.float64
    torch.testing.assert_close(ddp["loss"], single["loss"], rtol=1e-9, atol=1e-12)
    assert ddp["requires_grad"] == single["requires_grad"]
    assert ddp["state"].keys() == single["state"].keys()
    for key, value in single["state"].items():
        torch.testing.assert_close(ddp["state"][key], value, rtol=1e-7, atol=1e-10, msg=f"{name}: {key}")
    moved = [
        k for k, v in single["state"].items() if v.is_floating_point() and not torch.equal(v, single["initial"][k])
    ]
    assert len(moved) > len(single["state"]) // 3  # the steps really changed weights and statistics


@pytest.mark.parametrize("name", sorted(METHODS))
def test_momentum_state_really_moves(name, single_results):
    """The comparison above covers EMA targets, queue and centre only if they change."""
    single = single_results[name]
    state, initial = single["state"], single["initial"]

    def moved(key: str) -> bool:
        return not torch.equal(state[key], initial[key])

    for key in ("queue", "center", "support", "steps_done"):
        if key in state:
            assert moved(key), key
    # Each EMA target tensor moves wherever its online tensor really moved (a bias that a BatchNorm after
    # it cancels gets no gradient but round-off, which the EMA's small step does not carry), and the
    # targets move as a whole.
    method = _model(name)
    names = {id(module): prefix for prefix, module in method.named_modules()}
    pairs = [
        (f"{names[id(online)]}.{key}", f"{names[id(target)]}.{key}")
        for online, target in method.target_pairs()
        for key in online.state_dict()
        if state[f"{names[id(online)]}.{key}"].is_floating_point()
    ]
    assert [t for o, t in pairs if (state[o] - initial[o]).abs().max() > 1e-9 and not moved(t)] == []
    assert pairs == [] or sum(moved(t) for _, t in pairs) > len(pairs) // 2


@pytest.mark.parametrize("path", ["cpu", "cuda"])
@pytest.mark.parametrize("name", sorted(METHODS))
def test_sync_batchnorm_conversion_keeps_frozen_modules_frozen(name, path):
    """Both conversions (ours for gloo, torch's for NCCL) keep each BatchNorm's
    parameter objects, so requires_grad and EMA targets survive. torch's
    converter only builds modules, so its path is checked without a GPU."""
    method = _model(name)
    before = dict(method.named_parameters())
    buffers = dict(method.named_buffers())
    convert_sync_batchnorm(method, torch.device(path))
    sync_type = GlooSyncBatchNorm if path == "cpu" else nn.SyncBatchNorm
    bns = [m for m in method.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bns and all(isinstance(m, sync_type) for m in bns)
    after = dict(method.named_parameters())
    assert after.keys() == before.keys()
    for key, param in after.items():
        assert param is before[key], key
    for key, buf in method.named_buffers():
        assert buf is buffers[key], key
    if method.target_pairs():
        assert any(not p.requires_grad for p in after.values())


def test_gloo_sync_batchnorm_evaluates_projector_inputs():
    """Projector BatchNorm1d becomes GlooSyncBatchNorm: eval mode on (N, C) must work."""
    bn = nn.BatchNorm1d(4)
    bn.running_mean.fill_(1.0)
    sync = GlooSyncBatchNorm.from_batchnorm(bn).eval()
    x = torch.randn(3, 4)
    torch.testing.assert_close(sync(x), bn.eval()(x))


# --- one step, every gradient: the new methods' cross-worker statistics, and the bugs that break them ------
#
# Each broken variant is a plausible bug in that method's cross-worker code. Barlow Twins, VICReg and NNCLR
# gather embeddings whose other workers' rows must pass gradient back: a gather that keeps only the own
# slice differentiable leaves the loss exactly right and the gradients wrong (the off-by-1/world bug the
# anchors fixed). MoCo v3 contrasts against the keys of the global batch, SwAV equipartitions its codes
# over it: keys or Sinkhorn left local change the loss too.

GRAD_METHODS = ("barlow", "mocov3", "nnclr", "swav", "vicreg")
GRAD_ARGS = {
    name: {**EXTRA_ARGS[name], **({"freeze_prototypes_steps": 0} if name == "swav" else {})} for name in GRAD_METHODS
}


def _own_slice_gather(x: torch.Tensor) -> torch.Tensor:
    """all_gather without autograd, the own rows put back with their gradient."""
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts)


@torch.no_grad()
def _local_sinkhorn(logits: torch.Tensor, temperature: float, iterations: int = 3) -> torch.Tensor:
    """Sinkhorn-Knopp over this worker's rows only (SwAV's loop, no all-reduce)."""
    q = torch.exp((logits - logits.max()) / temperature).t()
    q = q / q.sum()
    n_protos, n_rows = q.shape
    for _ in range(iterations):
        q = q / q.sum(dim=1, keepdim=True) / n_protos
        q = q / q.sum(dim=0, keepdim=True) / n_rows
    return (q * n_rows).t()


BROKEN = {
    "barlow": {"methods.barlow.gather_with_grad": _own_slice_gather},
    "vicreg": {"methods.vicreg.gather_with_grad": _own_slice_gather},
    "nnclr": {"methods.nnclr.gather_with_grad": _own_slice_gather},
    "mocov3": {"methods.mocov3.concat_all_gather_no_grad": lambda x: x, "methods.mocov3.rank": lambda: 0},
    "swav": {"methods.swav.sinkhorn_knopp": _local_sinkhorn},
}


def _grad_model(name: str) -> nn.Module:
    from suite.trial.train import build_model

    cfg = make_config(
        dict(
            method=name,
            backbone="test_resnet",
            image_size=16,
            batch_size=BATCH,
            device="cpu",
            method_args=GRAD_ARGS[name],
        )
    )
    return build_model(cfg)


def _one_step(model: nn.Module, method: nn.Module, shard) -> dict:
    loss = model([shard(v) for v in _views(method, 0)]).loss
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in method.named_parameters() if p.requires_grad}
    return {"loss": loss.detach(), "grads": grads}


def _one_step_each(rank: int, world: int) -> dict:
    """Each GRAD_METHODS method's first data-parallel step on this rank's half, with its cross-worker
    gather intact and with it replaced by a local one (BROKEN)."""
    import importlib

    from suite.trial.runtime import prepare_data_parallel

    per = BATCH // world
    results = {}
    for name in GRAD_METHODS:
        for broken in (False, True):
            patches = BROKEN[name] if broken else {}
            saved = {}
            for target, replacement in patches.items():
                module, attr = target.rsplit(".", 1)
                saved[target] = getattr(importlib.import_module(module), attr)
                setattr(importlib.import_module(module), attr, replacement)
            try:
                method = _grad_model(name)
                model = prepare_data_parallel(method, torch.device("cpu"))
                step = _one_step(model, method, lambda v: v[rank * per : (rank + 1) * per])
            finally:
                for target, original in saved.items():
                    module, attr = target.rsplit(".", 1)
                    setattr(importlib.import_module(module), attr, original)
            dist.all_reduce(step["loss"])
            step["loss"] /= world  # DDP averaged the gradients already
            results[(name, broken)] = step
    return results


@pytest.fixture(scope="module")
def ddp_grads(ddp_pair) -> dict:
    return ddp_pair["grads"]


def _max_relative_gap(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).norm() / b[k].norm().clamp_min(1e-300)) for k in b)


@pytest.mark.parametrize("name", GRAD_METHODS)
def test_two_workers_give_every_parameter_the_one_process_gradient_and_a_broken_gather_does_not(name, ddp_grads):
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        method = _grad_model(name)
        single = _one_step(method, method, lambda v: v)
    finally:
        torch.set_default_dtype(saved)
    ddp, broken = ddp_grads[(name, False)], ddp_grads[(name, True)]
    torch.testing.assert_close(ddp["loss"], single["loss"], rtol=1e-9, atol=1e-12)
    assert ddp["grads"].keys() == single["grads"].keys() and len(single["grads"]) > 10
    # (a residual branch after timm's zero-initialized BatchNorm gets no gradient on the first step)
    assert sum(bool(g.abs().max() > 0) for g in single["grads"].values()) > len(single["grads"]) // 2
    for key, grad in single["grads"].items():
        torch.testing.assert_close(ddp["grads"][key], grad, rtol=1e-7, atol=1e-12, msg=f"{name}: {key}")
    assert _max_relative_gap(broken["grads"], single["grads"]) > 1e-2
    if name in ("barlow", "vicreg", "nnclr"):  # only the gradients tell this bug
        torch.testing.assert_close(broken["loss"], single["loss"], rtol=1e-9, atol=1e-12)
