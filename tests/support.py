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


def local_ray(tmp_path_factory, num_cpus: int):
    """A local Ray runtime for one test module, with a dataset cache its workers
    inherit; yields the GCS address and restores the environment afterwards."""
    import ray

    saved = os.environ.get("NORMBENCH_CACHE")
    os.environ["NORMBENCH_CACHE"] = str(tmp_path_factory.mktemp("ray-cache"))  # workers inherit it
    ray.init(num_cpus=num_cpus, include_dashboard=False)
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
