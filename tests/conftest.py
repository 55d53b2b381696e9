"""Shared test settings: tiny real models on the real digits images."""

from __future__ import annotations

import os

# Before torch loads its OpenMP runtime (every subprocess, Ray worker and actor of the tests inherits it):
# the tests run several torch processes at once on few cores (pytest-xdist workers, trial subprocesses,
# Ray's actors), and OpenMP threads that spin while they wait for work take the core another process
# needs. Sleeping instead made two concurrent one-thread trials on 2 cores run 2.9x faster (67 s -> 23 s).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402
from support import TINY_TRIAL

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Ray Train's controller polls its workers every 2 s (RAY_TRAIN_HEALTH_CHECK_INTERVAL_S); with trials of a
# few seconds those waits add up in the data-parallel tests (a five-method sweep test: 200 s -> 187 s).
# Set before any Ray runtime starts, so the raylets and their actors inherit it.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
# Two torch threads on a 2-core machine; one per worker when make test runs the tests on one pytest worker
# per core (pytest-xdist): OpenMP threads that outnumber the cores spin against each other.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


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
