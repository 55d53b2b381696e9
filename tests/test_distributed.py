"""Data parallelism is exact: a 2-worker gloo SimCLR step equals one process on
the concatenated batch (same loss, same parameter update).

The workers are wired as `suite.train.run_trial` wires them under Ray Train:
the model from `build_model`, BatchNorm synchronized by
`suite.runtime.convert_sync_batchnorm`, DDP without buffer broadcast; each
worker holds half of a fixed batch of views (no augmentation randomness).
"""
from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from suite.config import make_config

CFG = dict(method="simclr", backbone="test_resnet", image_size=16, batch_size=16, device="cpu",
           method_args={"proj_batch_norm": True})       # BN in the projector too: it must be synced
LR = 0.5


def _views() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    return [torch.randn(16, 3, 16, 16, generator=g) for _ in range(2)]


def _model():
    from suite.runtime import seed_everything
    from suite.train import build_model

    seed_everything(0)
    return build_model(make_config(CFG))


def _step(model, views, optimizer) -> torch.Tensor:
    loss = model(views)["loss"]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    from torch.nn.parallel import DistributedDataParallel

    from suite.runtime import convert_sync_batchnorm

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        method = convert_sync_batchnorm(_model(), torch.device("cpu"))
        model = DistributedDataParallel(method, broadcast_buffers=False)
        optimizer = torch.optim.SGD(method.parameters(), lr=LR)
        per = 16 // world
        views = [v[rank * per:(rank + 1) * per] for v in _views()]
        loss = _step(model, views, optimizer)
        dist.all_reduce(loss)
        if rank == 0:
            torch.save({"loss": loss / world, "params": {k: v.detach().clone() for k, v in method.named_parameters()},
                        "running_mean": {k: v.clone() for k, v in method.state_dict().items() if k.endswith("running_mean")}},
                       os.path.join(out_dir, "ddp.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_result(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, str(out / "init"), str(out)), nprocs=2, join=True)
    return torch.load(out / "ddp.pt")


@pytest.fixture(scope="module")
def single_result() -> dict:
    method = _model()
    optimizer = torch.optim.SGD(method.parameters(), lr=LR)
    initial = {k: v.detach().clone() for k, v in method.named_parameters()}
    loss = _step(method, _views(), optimizer)
    return {"loss": loss, "initial": initial, "params": dict(method.named_parameters()),
            "running_mean": {k: v for k, v in method.state_dict().items() if k.endswith("running_mean")}}


def test_two_workers_compute_the_single_process_loss(ddp_result, single_result):
    torch.testing.assert_close(ddp_result["loss"], single_result["loss"], rtol=1e-5, atol=1e-6)


def test_two_workers_make_the_single_process_update(ddp_result, single_result):
    moved = 0
    for name, after in single_result["params"].items():
        update_single = after.detach() - single_result["initial"][name]
        update_ddp = ddp_result["params"][name] - single_result["initial"][name]
        torch.testing.assert_close(update_ddp, update_single, rtol=1e-4, atol=1e-6, msg=name)
        moved += int(update_single.abs().max() > 0)
    assert moved > len(single_result["params"]) // 2      # the step really changed the weights


def test_synced_batchnorm_sees_the_whole_batch(ddp_result, single_result):
    assert ddp_result["running_mean"].keys() == single_result["running_mean"].keys()
    for name, value in single_result["running_mean"].items():
        torch.testing.assert_close(ddp_result["running_mean"][name], value, rtol=1e-4, atol=1e-6, msg=name)
