"""Sweep specs: grid expansion, validation before any work, dry run, resource checks.

No Ray runtime here (see test_sweep_ray.py); everything is the pure planning path
that `normbench sweep --dry-run` and a real run share.
"""

from __future__ import annotations

import itertools

import pytest
import yaml

from suite.cli import main as normbench
from suite.config import make_config
from suite.core.errors import ConfigError
from suite.sweep.grid import check_fits_cluster, expand_grid, trial_request
from suite.sweep.spec import load_spec, spec_from_dict

BASE = dict(dataset="digits", backbone="test_resnet", image_size=16, epochs=2, batch_size=64)


def _spec(**over):
    data = dict(name="t", base=dict(BASE), grid={"method": ["simclr", "byol"], "intervention": ["none", "cut:3"]})
    data.update(over)
    return spec_from_dict(data)


def test_grid_is_the_cartesian_product_times_seeds_with_validated_configs():
    spec = _spec(seeds=[0, 7], grid={"method": ["simclr", "moco"], "method_args.temperature": [0.2, 0.5]})
    trials = expand_grid(spec)
    # Independent expansion: every combination, each config built directly.
    expected = []
    for method, temp, seed in itertools.product(["simclr", "moco"], [0.2, 0.5], [0, 7]):
        expected.append(make_config({**BASE, "method": method, "seed": seed, "method_args": {"temperature": temp}}))
    assert [t.trial_id for t in trials] == [c.trial_id for c in expected]
    assert len({t.trial_id for t in trials}) == 8
    assert trials[3].axes == {"method": "simclr", "method_args.temperature": 0.5, "seed": 7}
    assert trials[3].config.method_args["temperature"] == 0.5
    # The dumped config survives the round trip a Ray worker makes (same trial id).
    assert all(make_config(t.config.model_dump()).trial_id == t.trial_id for t in trials)


def test_resources_workers_sets_the_trial_workers_and_requests():
    spec = _spec(resources={"workers": 2, "cpus_per_worker": 3, "gpus_per_worker": 1, "driver_resources": {"CPU": 0.5}})
    trials = expand_grid(spec)
    assert {t.config.workers for t in trials} == {2}
    req = trial_request(spec, trials[0].config)
    assert req.bundles() == [{"CPU": 0.5}, {"CPU": 3.0, "GPU": 1.0}, {"CPU": 3.0, "GPU": 1.0}]
    assert req.total() == {"CPU": 6.5, "GPU": 2.0}
    single = trial_request(_spec(resources={"cpus_per_worker": 2}), trials[0].config.model_copy(update={"workers": 1}))
    assert single.bundles() == [{"CPU": 2.0}]


@pytest.mark.parametrize(
    "data, field, value",
    [
        ({"grid": {"methd": ["simclr"]}}, "grid.methd", "methd"),  # unknown axis
        ({"grid": {"backbone.depth": [1]}}, "grid.backbone.depth", "backbone.depth"),  # dotted outside method_args
        ({"grid": {}}, "grid", "{}"),  # empty grid
        ({"grid": {"method": []}}, "grid.method", "[]"),  # empty axis
        ({"grid": {"method": ["simclr", "nosuchmethod"]}}, "method", "nosuchmethod"),  # unknown method
        ({"grid": {"intervention": ["cut:0.5"]}}, "intervention", "cut:0.5"),  # bad intervention value
        ({"seeds": [0], "grid": {"seed": [1, 2]}}, "seeds", "[0]"),  # two seed axes
        ({"resoures": {}}, "resoures", "{}"),  # unknown spec key
        ({"retries": -1}, "retries", "-1"),
        ({"grid": {"method": ["simclr", "simclr"]}}, "grid", "simclr"),  # duplicate trials
    ],
)
def test_bad_specs_fail_naming_field_and_value(data, field, value):
    with pytest.raises(ConfigError) as info:
        expand_grid(_spec(**data))
    assert info.value.field == field
    assert value in str(info.value)


def test_cluster_check_names_the_resource_a_trial_cannot_get():
    cluster = {"CPU": 4.0, "memory": 1e10}
    nodes = [{"CPU": 4.0}]
    fits = _spec(resources={"workers": 2, "cpus_per_worker": 1})
    check_fits_cluster(fits, expand_grid(fits), cluster, nodes)

    too_many_cpus = _spec(resources={"workers": 2, "cpus_per_worker": 3})  # 0.1 + 2 x 3 > 4
    with pytest.raises(ConfigError) as info:
        check_fits_cluster(too_many_cpus, expand_grid(too_many_cpus), cluster, nodes)
    assert info.value.field == "resources.cpus_per_worker" and "4 CPU" in str(info.value)

    gpus = _spec(resources={"gpus_per_worker": 1})
    with pytest.raises(ConfigError) as info:
        check_fits_cluster(gpus, expand_grid(gpus), cluster, nodes)
    assert info.value.field == "resources.gpus_per_worker" and "0 GPU" in str(info.value)

    # Enough in total but not on one node: a worker bundle must fit a node.
    split = _spec(resources={"cpus_per_worker": 3})
    with pytest.raises(ConfigError) as info:
        check_fits_cluster(split, expand_grid(split), {"CPU": 4.0}, [{"CPU": 2.0}, {"CPU": 2.0}])
    assert info.value.field == "resources"


def test_dry_run_prints_every_trial_and_the_resources(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "base": BASE,
                "grid": {"method": ["simclr", "byol"]},
                "seeds": [0, 1],
                # More than this machine has: the plan is for a cluster (the fit test is below).
                "resources": {"workers": 2, "cpus_per_worker": 2, "check_cluster": False},
                "results_dir": str(tmp_path / "r"),
            }
        )
    )
    assert normbench(["sweep", str(path), "--dry-run", "--name", "dry"]) == 0
    out = capsys.readouterr().out
    ids = [
        make_config({**BASE, "method": m, "seed": s, "workers": 2}).trial_id
        for m, s in itertools.product(["simclr", "byol"], [0, 1])
    ]
    assert "sweep dry: 4 trial(s)" in out
    assert all(i in out for i in ids)
    assert "Ray Train 2 x {CPU: 2}" in out and "gloo" in out
    assert not (tmp_path / "r").exists()  # nothing started, nothing written


def test_cli_bad_spec_exits_2_with_the_field(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "base": BASE, "grid": {"lr_typo": [0.1]}}))
    assert normbench(["sweep", str(path), "--dry-run"]) == 2
    assert "grid.lr_typo" in capsys.readouterr().err
    assert normbench(["sweep", str(tmp_path / "missing.yaml")]) == 2


def test_spec_name_defaults_to_the_file_stem(tmp_path):
    path = tmp_path / "my-sweep.yaml"
    path.write_text(yaml.safe_dump({"base": BASE}))
    spec = load_spec(path)
    assert spec.name == "my-sweep"
    assert [t.config.seed for t in expand_grid(spec)] == [0]


def test_resume_without_tune_state_says_to_run_without_it_and_writes_nothing(tmp_path, capsys):
    """A fresh clone of a committed run has its tables but no Tune state (it is not committed)."""
    results = tmp_path / "results"
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"base": BASE, "results_dir": str(results)}))
    assert normbench(["sweep", str(path), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("normbench: error: --resume:")
    assert f"run without --resume; finished trials in {results} are kept" in err
    assert not results.exists()


def test_cases_cross_the_grid_each_carrying_its_own_settings():
    cases = [
        {"intervention": "none"},
        {"intervention": "gradscale:1", "warmup_epochs": 1, "lr": 0.1},
        {"intervention": "wd:0", "method_args.proj_output_dim": 32},
    ]
    spec = _spec(grid={"method": ["simclr", "byol"]}, cases=cases, seeds=[0, 3])
    trials = expand_grid(spec)
    # Independent expansion: grid x cases x seeds, each config built directly from base + case.
    expected = []
    for method, (i, case), seed in itertools.product(["simclr", "byol"], enumerate(cases), [0, 3]):
        method_args = {"proj_output_dim": 32} if "method_args.proj_output_dim" in case else {}
        plain = {k: v for k, v in case.items() if "." not in k}
        expected.append((i, make_config({**BASE, "method": method, "seed": seed, **plain, "method_args": method_args})))
    assert [t.trial_id for t in trials] == [c.trial_id for _, c in expected]
    assert [t.case for t in trials] == [i for i, _ in expected]
    assert len(trials) == 12 and len({t.trial_id for t in trials}) == 12
    gs = [t.config for t in trials if t.case == 1]
    assert {(c.lr, c.warmup_epochs, c.intervention.to_spec()) for c in gs} == {(0.1, 1, "gradscale:1")}
    base_case = [t.config for t in trials if t.case == 0 and t.config.method == "byol"][0]
    assert base_case.lr == make_config({**BASE, "method": "byol"}).lr  # the method default, untouched
    assert trials[5].axes == {"method": "simclr", "seed": 3}


def test_a_case_with_its_own_seeds_replaces_the_spec_seeds_for_that_case_only():
    cases = [{"intervention": "none", "seeds": [0, 1, 2, 3]}, {"intervention": "cut:3"}]
    spec = _spec(grid={"method": ["simclr", "byol"]}, cases=cases, seeds=[0, 1])
    trials = expand_grid(spec)
    # Independent expansion: per method, case 0 on seeds 0-3, then case 1 on the spec's seeds 0-1.
    expected = [(m, i, s) for m in ["simclr", "byol"] for i, seeds in [(0, [0, 1, 2, 3]), (1, [0, 1])] for s in seeds]
    assert [(t.config.method, t.case, t.config.seed) for t in trials] == expected
    assert [t.index for t in trials] == list(range(12))
    ids = [
        make_config({**BASE, "method": m, "intervention": ["none", "cut:3"][i], "seed": s}).trial_id
        for m, i, s in expected
    ]
    assert [t.trial_id for t in trials] == ids
    assert all("seeds" not in t.config.model_dump() for t in trials)


def test_spec_without_cases_keeps_its_trial_ids_and_order():
    spec = _spec(seeds=[0, 1])
    ids = [
        make_config({**BASE, "method": m, "intervention": i, "seed": s}).trial_id
        for m, i, s in itertools.product(["simclr", "byol"], ["none", "cut:3"], [0, 1])
    ]
    trials = expand_grid(spec)
    assert [t.trial_id for t in trials] == ids
    assert {t.case for t in trials} == {None}


@pytest.mark.parametrize(
    "data, field, value, allowed",
    [
        (
            {"grid": {"method": ["simclr"]}, "cases": [{"intervention": "none"}, {"intervention": "cut:0.5"}]},
            "cases[1].intervention",
            "cut:0.5",
            "C > 1",
        ),
        ({"cases": [{"lr": -1}]}, "cases[0].lr", "-1", "a number > 0"),
        ({"cases": [{"lr_typo": 0.1}]}, "cases[0].lr_typo", "lr_typo", "did you mean 'lr'?"),
        ({"cases": [{"backbone.depth": 1}]}, "cases[0].backbone.depth", "backbone.depth", "method_args"),
        (
            {"grid": {"method": ["simclr"]}, "cases": [{"method_args.temprature": 0.1}]},
            "cases[0].method_args.temprature",
            "temprature",
            "temperature",
        ),
        (
            {"grid": {"method": ["simclr"]}, "cases": [{"lr": 0.1}, {"warmup_epochs": 5}]},
            "cases[1].warmup_epochs",
            "5",
            "< epochs",
        ),
        ({"cases": [{"method": "byol"}]}, "cases[0].method", "byol", "not a grid axis"),
        ({"seeds": [0], "cases": [{"seed": 3}]}, "cases[0].seed", "3", "seeds"),
        ({"cases": [{"lr": 0.1, "seeds": []}]}, "cases[0].seeds", "[]", "non-empty list of integer seeds"),
        ({"cases": [{"lr": 0.1, "seeds": [0, "1"]}]}, "cases[0].seeds", "'1'", "integer seeds >= 0"),
        ({"cases": [{"lr": 0.1, "seeds": [0, 0]}]}, "cases[0].seeds", "[0, 0]", "distinct seeds"),
        ({"cases": [{"seed": 3, "seeds": [1, 2]}]}, "cases[0].seeds", "[1, 2]", "sets `seed`"),
        (
            {"grid": {"seed": [0, 1]}, "cases": [{"lr": 0.1, "seeds": [1, 2]}]},
            "cases[0].seeds",
            "[1, 2]",
            "`seed` axis",
        ),
        ({"cases": []}, "cases", "[]", "non-empty list"),
        ({"cases": [{"lr": 0.1}, {}]}, "cases[1]", "{}", "non-empty mapping"),
        ({"cases": ["lr=0.1"]}, "cases[0]", "lr=0.1", "mapping"),
        (
            {"grid": {"method": ["simclr"]}, "cases": [{"intervention": "none"}, {"intervention": "none"}]},
            "cases",
            "case",
            "distinct trials",
        ),
    ],
)
def test_invalid_case_is_refused_naming_the_case_and_the_field(data, field, value, allowed):
    with pytest.raises(ConfigError) as info:
        expand_grid(_spec(**data))
    assert info.value.field == field
    assert value in str(info.value) and allowed in str(info.value)


def test_dry_run_shows_the_cases(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "base": BASE,
                "grid": {"method": ["simclr"]},
                "seeds": [0],
                "cases": [{"intervention": "none"}, {"intervention": "gradscale:1", "lr": 0.1, "warmup_epochs": 1}],
            }
        )
    )
    assert normbench(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "sweep c: 2 trial(s)" in out
    assert "case 1: intervention=gradscale:1, lr=0.1, warmup_epochs=1" in out
    header = next(line for line in out.splitlines() if line.startswith("#"))
    assert header.split() == ["#", "trial_id", "method", "seed", "case", "workers"]


@pytest.mark.slow  # a dry run per committed example, each building its backbone
def test_every_example_spec_passes_dry_run(capsys):
    from pathlib import Path

    examples = sorted((Path(__file__).parents[2] / "examples" / "sweeps").glob("*.yaml"))
    assert examples
    for path in examples:
        assert expand_grid(load_spec(path)), path
        # A fresh name: a committed example's own storage may hold its run (a plain dry run refuses reuse).
        argv = ["sweep", str(path), "--dry-run", "--name", f"dry-{path.stem}"]
        assert normbench(argv) == 0, (path, capsys.readouterr().err)
        assert "trial(s)" in capsys.readouterr().out
