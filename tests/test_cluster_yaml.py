"""ray_cluster.yaml is a valid Ray cluster-launcher config (the schema shipped in ray)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

ROOT = Path(__file__).parents[1]


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
    broken["available_node_types"]["worker.gpu.1x"]["min_worker"] = 0     # typo'd key
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    broken = copy.deepcopy(cluster)
    del broken["provider"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_cpu_head_and_autoscaling_spot_gpu_workers(cluster):
    types = cluster["available_node_types"]
    head = types[cluster["head_node_type"]]
    assert head["node_config"]["InstanceType"].startswith(("m", "c", "r"))          # a CPU instance
    assert "InstanceMarketOptions" not in head["node_config"]                      # on-demand head
    workers = {name: t for name, t in types.items() if name != cluster["head_node_type"]}
    assert workers
    for t in workers.values():
        assert t["node_config"]["InstanceType"].startswith(("g", "p"))             # GPU instances
        assert t["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
        assert t["min_workers"] == 0 and t["max_workers"] >= 1                      # autoscale from zero
    assert cluster["provider"]["type"] == "aws"


def test_nodes_install_normbench_and_mount_shared_storage(cluster):
    setup = "\n".join(cluster["setup_commands"])
    mount_target = next(iter(cluster["file_mounts"]))
    assert f"pip install -e \"{mount_target}" in setup                               # the shipped checkout
    assert "mount -t nfs4" in setup                                                # EFS for shared results
    example = yaml.safe_load((ROOT / "examples" / "sweeps" / "five_methods_cifar10.yaml").read_text())
    assert example["storage"].startswith("s3://")
    # The spec pins Tune drivers to the head through a resource the head provides.
    (driver_resource,) = example["resources"]["driver_resources"]
    assert driver_resource in cluster["available_node_types"][cluster["head_node_type"]]["resources"]
