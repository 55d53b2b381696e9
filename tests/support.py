"""Helpers the tests share (importable from every test folder: pytest's pythonpath holds tests/)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# A real timm model and the real digits images, sized so a 2-epoch trial takes seconds on 2 CPU cores.
TINY_TRIAL = dict(
    backbone="test_resnet",
    image_size=16,
    batch_size=64,
    train_limit=192,
    epochs=2,
    linear_epochs=10,
    eval_batch_size=512,
)

# Heads narrower than each method's defaults (Barlow Twins' and VICReg's 8192-wide projectors, DINO's
# 65,536 prototypes): what a test that only needs a method to run its every path trains, in seconds.
SMALL_HEADS: dict[str, dict[str, int]] = {
    "simclr": {"proj_hidden_dim": 128},
    "moco": {"proj_hidden_dim": 128, "queue_size": 256},
    "byol": {"proj_hidden_dim": 128, "pred_hidden_dim": 128},
    "simsiam": {"proj_hidden_dim": 128, "proj_output_dim": 128, "pred_hidden_dim": 64},
    "dino": {"head_hidden_dim": 128, "bottleneck_dim": 64, "num_prototypes": 256},
    "mocov3": {"proj_hidden_dim": 128, "pred_hidden_dim": 128},
    "nnclr": {"proj_hidden_dim": 128, "pred_hidden_dim": 128},
    "swav": {"proj_hidden_dim": 128, "num_prototypes": 64, "freeze_prototypes_steps": 1},
    "barlow": {"proj_hidden_dim": 128, "proj_output_dim": 128},
    "vicreg": {"proj_hidden_dim": 128, "proj_output_dim": 128},
}


def local_ray(tmp_path_factory, num_cpus: int, **init):
    """A local Ray runtime for one test module, with a dataset cache its workers
    inherit; yields the GCS address and restores the environment afterwards.
    ``init``: more arguments of ``ray.init`` (e.g. a ``runtime_env``)."""
    import ray

    saved = os.environ.get("NORMBENCH_CACHE")
    os.environ["NORMBENCH_CACHE"] = str(tmp_path_factory.mktemp("ray-cache"))  # workers inherit it
    ray.init(num_cpus=num_cpus, include_dashboard=False, **init)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("NORMBENCH_CACHE", None)
        else:
            os.environ["NORMBENCH_CACHE"] = saved


def free_port() -> int:
    """A loopback port nothing listens on (at the moment of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
