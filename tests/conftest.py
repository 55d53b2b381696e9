"""Shared test settings: tiny real models on the real digits images."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Ray Train's controller polls its workers every 2 s (RAY_TRAIN_HEALTH_CHECK_INTERVAL_S); with trials of a
# few seconds those waits add up in the data-parallel tests (the five-method sweep test: 200 s -> 187 s).
# Set before any Ray runtime starts, so the raylets and their actors inherit it.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
torch.set_num_threads(2)

# A real timm model and the real digits images, sized so a 2-epoch trial takes seconds on 2 CPU cores.
TINY_TRIAL = dict(backbone="test_resnet", image_size=16, batch_size=64, train_limit=192, epochs=2,
                  linear_epochs=10, eval_batch_size=512)


@pytest.fixture
def tiny_trial() -> dict:
    return dict(TINY_TRIAL)


@pytest.fixture(scope="session", autouse=True)
def _inductor_cache_in_basetemp(tmp_path_factory):
    """torch.compile's cache (a 158 MB precompiled header per run on CPU) in the
    session's temp dir, which pytest prunes, instead of a /tmp dir that grows."""
    saved = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path_factory.mktemp("inductor-cache"))
    yield
    if saved is None:
        os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
    else:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = saved


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Dataset cache per test session, never the user's home."""
    monkeypatch.setenv("NORMBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "normbench-cache"))


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
