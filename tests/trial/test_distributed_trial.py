"""Every registered method runs a whole trial data-parallel: `run_trial` -- the function each Ray Train
worker runs (`suite.sweep.trainable.train_worker_loop`) -- on two real gloo processes, data, training,
checkpoints and the final evaluation included. All methods share one spawned pair of processes, so the
ten trials pay for two interpreters, not for a Ray Train worker group each; what is Ray Train's own (its
worker group, reports from every rank, a restart from a checkpoint) is checked by the data-parallel sweep
test in tests/sweep/test_sweep_ray.py, and the step's exactness per method by test_distributed.py.
"""

from __future__ import annotations

import math
import os
import pickle

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from support import SMALL_HEADS, TINY_TRIAL

from methods import METHODS

pytestmark = pytest.mark.slow  # two gloo processes train ten short trials

WORLD = 2
BASE = dict(TINY_TRIAL, dataset="digits", batch_size=128, train_limit=256, warmup_epochs=0, linear_epochs=5)


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    from pathlib import Path

    from suite.config import make_config
    from suite.trial.train import run_trial

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        outcome = {}
        for name in sorted(METHODS):
            cfg = make_config(dict(BASE, method=name, method_args=SMALL_HEADS[name], workers=world))
            result = run_trial(cfg, Path(out_dir) / name, progress=False)
            outcome[name] = {"row": result.row, "epochs": [c["epoch"] for c in result.curves]}
        with open(os.path.join(out_dir, f"rank{rank}.pkl"), "wb") as f:
            pickle.dump(outcome, f)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ddp-trials")
    with pytest.MonkeyPatch.context() as patch:  # the spawned processes inherit a private dataset cache
        patch.setenv("NORMBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.spawn(_worker, args=(WORLD, str(out / "init"), str(out)), nprocs=WORLD, join=True)
    return [pickle.loads((out / f"rank{r}.pkl").read_bytes()) for r in range(WORLD)]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_completes_a_trial_on_two_gloo_workers(name, ranks):
    main, other = ranks[0][name], ranks[1][name]
    row = main["row"]
    assert row["status"] == "completed", row.get("error")
    assert row["workers"] == WORLD and row["epochs_completed"] == BASE["epochs"]
    assert math.isfinite(row["final_loss"])
    for col in ("knn_top1_k20", "linear_top1"):
        assert 0 <= row[col] <= 1, col
    assert main["epochs"] == list(range(1, BASE["epochs"] + 1))  # one curves row per epoch
    # the other rank trained the same epochs (a rank that stopped early would hang or fail the world)
    assert other["row"]["epochs_completed"] == BASE["epochs"] and other["row"]["status"] == "completed"
