"""What `normbench sweep` checks of Ray before `ray.init`: the head `--address` names, that something
answers there, and that Ray Train V2 is on (no Ray runtime started)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from support import REPO, free_port

from suite.core.errors import ConfigError
from suite.sweep.runner import _gcs_endpoint


@pytest.fixture
def no_recorded_cluster(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    "address, endpoint",
    [
        ("10.0.0.5:6379", ("10.0.0.5", 6379)),
        ("ray://head.example:10001", ("head.example", 10001)),
        ("[::1]:6380", ("::1", 6380)),
        ("local", None),
    ],
)
def test_explicit_addresses(no_recorded_cluster, address, endpoint):
    assert _gcs_endpoint(address) == endpoint


def test_auto_joins_what_the_last_ray_start_recorded_as_ray_does(no_recorded_cluster, monkeypatch):
    import ray._private.services
    from ray._private.services import get_ray_address_from_environment  # Ray's own rule, as the reference

    # Ray's rule also joins a Ray runtime it finds running on this machine (any process's, e.g. a sweep
    # beside these tests); ours reads only what `ray start` recorded. Compared where none runs.
    monkeypatch.setattr(ray._private.services, "find_gcs_addresses", lambda: [])

    (no_recorded_cluster / "ray").mkdir()
    (no_recorded_cluster / "ray" / "ray_current_cluster").write_text("192.168.7.3:6390\n")
    assert get_ray_address_from_environment("auto", None) == "192.168.7.3:6390"
    assert _gcs_endpoint("auto") == ("192.168.7.3", 6390)

    monkeypatch.setenv("RAY_TMPDIR", str(no_recorded_cluster / "elsewhere"))  # RAY_TMPDIR wins over TMPDIR
    (no_recorded_cluster / "elsewhere" / "ray").mkdir(parents=True)
    (no_recorded_cluster / "elsewhere" / "ray" / "ray_current_cluster").write_text("10.1.1.1:7000")
    assert get_ray_address_from_environment("auto", None) == "10.1.1.1:7000"
    assert _gcs_endpoint("auto") == ("10.1.1.1", 7000)

    monkeypatch.setenv("RAY_ADDRESS", "10.2.2.2:6379")  # RAY_ADDRESS wins over the file
    assert get_ray_address_from_environment("auto", None) == "10.2.2.2:6379"
    assert _gcs_endpoint("auto") == ("10.2.2.2", 6379)


def test_auto_with_no_cluster_recorded_says_so(no_recorded_cluster):
    with pytest.raises(ConfigError, match="--address") as info:
        _gcs_endpoint("auto")
    assert "ray start" in str(info.value) and "auto" in str(info.value)


@pytest.mark.parametrize("address", ["head", "head:", ":6379", "head:port", "head:70000"])
def test_a_malformed_address_names_the_field_and_the_form(no_recorded_cluster, address):
    with pytest.raises(ConfigError, match="host:port") as info:
        _gcs_endpoint(address)
    assert repr(address) in str(info.value) or address in str(info.value)


@pytest.mark.parametrize("value", [None, "1", "true", "TRUE", "True", "0", "false", "", "yes", "on", " 1", "2"])
def test_train_v2_is_required_exactly_when_ray_would_turn_it_off(monkeypatch, value):
    from ray.train.v2._internal.constants import is_v2_enabled  # Ray's own reading, as the reference

    from suite.sweep.runner import require_train_v2

    if value is None:
        monkeypatch.delenv("RAY_TRAIN_V2_ENABLED", raising=False)
    else:
        monkeypatch.setenv("RAY_TRAIN_V2_ENABLED", value)
    if is_v2_enabled():
        require_train_v2()
    else:
        with pytest.raises(ConfigError, match="RAY_TRAIN_V2_ENABLED"):
            require_train_v2()


def test_an_unreachable_address_fails_fast_with_an_explanation(tmp_path):
    """The whole command, in its own process: nothing answers at the address, so no Ray runtime is
    joined or started, the exit code is 2 and the message says what to check."""
    address = f"127.0.0.1:{free_port()}"
    base = dict(dataset="digits", backbone="test_resnet", image_size=16, epochs=1, train_limit=128)
    data = dict(name="nowhere", base=base, results_dir=str(tmp_path / "results"))
    (tmp_path / "nowhere.yaml").write_text(yaml.safe_dump(data))
    proc = subprocess.run(
        [sys.executable, "-m", "suite.cli", "sweep", str(tmp_path / "nowhere.yaml"), "--address", address]
        + ["--connect-timeout", "2"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,  # a hang fails here instead of waiting forever
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "--address" in proc.stderr and address in proc.stderr
    assert "nothing answered" in proc.stderr and "ray status" in proc.stderr
    assert not (tmp_path / "results").exists()
