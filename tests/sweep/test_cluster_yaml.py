"""ray_cluster.yaml is a valid Ray cluster-launcher config (the schema shipped in ray)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())


def test_validates_against_rays_schema(schema, cluster):
    jsonschema.validate(cluster, schema)


def test_schema_check_catches_a_broken_config(schema, cluster):
    broken = copy.deepcopy(cluster)
    broken["available_node_types"]["worker.gpu.1x"]["min_worker"] = 0  # typo'd key
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    broken = copy.deepcopy(cluster)
    del broken["provider"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_cpu_head_and_autoscaling_spot_gpu_workers(cluster):
    types = cluster["available_node_types"]
    head = types[cluster["head_node_type"]]
    assert head["node_config"]["InstanceType"].startswith(("m", "c", "r"))  # a CPU instance
    assert "InstanceMarketOptions" not in head["node_config"]  # on-demand head
    workers = {name: t for name, t in types.items() if name != cluster["head_node_type"]}
    assert workers
    for t in workers.values():
        assert t["node_config"]["InstanceType"].startswith(("g", "p"))  # GPU instances
        assert t["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
        assert t["min_workers"] == 0 and t["max_workers"] >= 1  # autoscale from zero
    assert cluster["provider"]["type"] == "aws"


def test_nodes_install_normbench_and_mount_shared_storage(cluster):
    setup = "\n".join(cluster["setup_commands"])
    mount_target = next(iter(cluster["file_mounts"]))
    assert f'pip install -e "{mount_target}' in setup  # the shipped checkout
    assert "mount -t nfs4" in setup  # EFS for shared results
    example = yaml.safe_load((ROOT / "examples" / "sweeps" / "five_methods_cifar10.yaml").read_text())
    assert example["storage"].startswith("s3://")
    # The spec pins Tune drivers to the head through a resource the head provides.
    (driver_resource,) = example["resources"]["driver_resources"]
    assert driver_resource in cluster["available_node_types"][cluster["head_node_type"]]["resources"]


def test_every_node_starts_ray_with_token_auth_from_a_local_token_file(cluster):
    """RAY_AUTH_MODE=token on every `ray start` (head and workers), and the
    token file shipped to every node from the user's home, not from the repo."""
    starts = cluster["head_start_ray_commands"] + cluster["worker_start_ray_commands"]
    for commands in (cluster["head_start_ray_commands"], cluster["worker_start_ray_commands"]):
        ray_starts = [c for c in commands if "ray start" in c]
        assert ray_starts
        for command in ray_starts:
            assert "RAY_AUTH_MODE=token" in command and "RAY_AUTH_TOKEN_PATH=~/.ray/auth_token" in command, command
    assert all("RAY_AUTH_TOKEN=" not in c for c in starts)  # never a literal token
    # file_mounts reach the head and every worker type; the token comes from ~ on the launching machine.
    token_mounts = {
        remote: local for remote, local in cluster["file_mounts"].items() if remote.endswith("/.ray/auth_token")
    }
    assert list(token_mounts.values()) == ["~/.ray/auth_token"]
    (remote,) = token_mounts
    assert remote == f"/home/{cluster['auth']['ssh_user']}/.ray/auth_token"
    assert all(
        not t.get("worker_setup_commands") and not t.get("file_mounts")
        for t in cluster["available_node_types"].values()
    )
    assert any("RAY_AUTH_MODE=token" in c for c in cluster["setup_commands"])  # CLI calls on the nodes
    assert not list(ROOT.rglob("auth_token"))  # no token in the checkout


@pytest.fixture(scope="module")
def kuberay() -> dict:
    return yaml.safe_load((ROOT / "kuberay_cluster.yaml").read_text())


def test_kuberay_manifest_has_token_auth_a_cpu_driver_head_and_autoscaling_gpu_workers(kuberay):
    assert (kuberay["apiVersion"], kuberay["kind"]) == ("ray.io/v1", "RayCluster")
    spec = kuberay["spec"]
    assert spec["authOptions"]["mode"] == "token"
    assert tuple(int(x) for x in spec["rayVersion"].split(".")[:2]) >= (2, 52)  # token auth exists from 2.52
    assert spec["enableInTreeAutoscaling"] is True

    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert json.loads(json.loads(head["rayStartParams"]["resources"])) == {"sweep_driver": 64}
    (head_container,) = head["template"]["spec"]["containers"]
    assert "nvidia.com/gpu" not in head_container["resources"]["limits"]

    (gpu,) = spec["workerGroupSpecs"]
    assert gpu["minReplicas"] == 0 and gpu["maxReplicas"] >= 1
    (worker_container,) = gpu["template"]["spec"]["containers"]
    assert int(worker_container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    # The sweep spec's driver resource is one the head provides.
    example = yaml.safe_load((ROOT / "examples" / "sweeps" / "five_methods_cifar10.yaml").read_text())
    (driver_resource,) = example["resources"]["driver_resources"]
    assert driver_resource == "sweep_driver"
