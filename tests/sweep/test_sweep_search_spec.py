"""`search:`, `scheduler:` and `tracking:` in the sweep spec: every key validated
before Ray starts (field, value, what is allowed), and the dry run's space and budget."""

from __future__ import annotations

import pytest
import yaml

from suite.cli import main as normbench
from suite.core.errors import ConfigError
from suite.sweep.grid import expand_grid
from suite.sweep.search import validate_search
from suite.sweep.spec import spec_from_dict
from suite.tracking.spec import mlflow_uri, parse_track, validate_tracking

BASE = dict(
    dataset="digits", backbone="test_resnet", image_size=16, epochs=4, batch_size=64, val_fraction=0.2, eval_every=1
)
SEARCH = dict(
    num_samples=3,
    algorithm="random",
    metric="val_knn_top1_k20",
    mode="max",
    space={"lr": {"loguniform": [0.01, 1.0]}, "method_args.temperature": {"choice": [0.1, 0.5]}},
)
ASHA = dict(type="asha", grace_period=1, reduction_factor=2)


def _check(**over):
    data = dict(name="s", base=dict(BASE), grid={"method": ["simclr", "moco"]}, search=dict(SEARCH))
    data.update(over)
    spec = spec_from_dict(data)
    validate_search(spec, expand_grid(spec))
    validate_tracking(spec.tracking)
    return spec


def test_a_valid_search_spec_passes():
    spec = _check(scheduler=ASHA, tracking={"mlflow": {"uri": "sqlite:///x.db"}})
    assert spec.search.num_samples == 3 and spec.scheduler.grace_period == 1


@pytest.mark.parametrize(
    "over, field, value",
    [
        ({"search": {**SEARCH, "space": {"lr_typo": {"uniform": [0, 1]}}}}, "search.space.lr_typo", "lr_typo"),
        (
            {"search": {**SEARCH, "space": {"backbone.depth": {"choice": [1]}}}},
            "search.space.backbone.depth",
            "backbone.depth",
        ),
        (
            {"search": {**SEARCH, "space": {"method": {"choice": ["byol"]}}}},
            "search.space.method",
            "method",
        ),  # a grid axis
        ({"search": {**SEARCH, "space": {"seed": {"randint": [0, 3]}}}}, "search.space.seed", "seed"),
        ({"search": {**SEARCH, "space": {"lr": {"normal": [0, 1]}}}}, "search.space.lr", "normal"),
        ({"search": {**SEARCH, "space": {"lr": {"loguniform": [0, 1]}}}}, "search.space.lr.loguniform", "[0, 1]"),
        ({"search": {**SEARCH, "space": {"lr": {"uniform": [1, 0.5]}}}}, "search.space.lr.uniform", "[1, 0.5]"),
        (
            {"search": {**SEARCH, "space": {"batch_size": {"randint": [32.5, 64]}}}},
            "search.space.batch_size.randint",
            "32.5",
        ),
        ({"search": {**SEARCH, "space": {"lr": {"choice": []}}}}, "search.space.lr.choice", "[]"),
        (
            {"search": {**SEARCH, "space": {"lr": {"uniform": [-1.0, 0.5]}}}},
            "search.space.lr",
            "-1.0",
        ),  # lr must be > 0
        ({"search": {**SEARCH, "space": {}}}, "search.space", "{}"),
        ({"search": {**SEARCH, "metric": "knn_top1_k20"}}, "search.metric", "knn_top1_k20"),  # a test metric
        ({"search": {**SEARCH, "metric": "linear_top1"}}, "search.metric", "linear_top1"),
        ({"search": {**SEARCH, "metric": "val_knn_top1_k5"}}, "search.metric", "val_knn_top1_k5"),
        ({"search": {**SEARCH, "mode": "best"}}, "search.mode", "best"),
        ({"search": {**SEARCH, "algorithm": "hyperopt"}}, "search.algorithm", "hyperopt"),
        ({"search": {**SEARCH, "num_samples": 0}}, "search.num_samples", "0"),
        ({"search": {**SEARCH, "budget": 3}}, "search.budget", "3"),
        ({"base": {**BASE, "val_fraction": 0.0}}, "base.val_fraction", "0.0"),
        ({"scheduler": {**ASHA, "type": "pbt"}}, "scheduler.type", "pbt"),
        ({"scheduler": {**ASHA, "reduction_factor": 1}}, "scheduler.reduction_factor", "1"),
        ({"scheduler": {**ASHA, "grace_period": 9}}, "scheduler.grace_period", "9"),  # > epochs
        ({"scheduler": ASHA, "base": {**BASE, "eval_every": 0}}, "base.eval_every", "0"),
        ({"scheduler": ASHA, "search": None}, "scheduler", "asha"),
        ({"tracking": {"mlflow": {}}}, "tracking.mlflow.uri", "{}"),
        ({"tracking": {"wandb": {"mode": "sometimes"}}}, "tracking.wandb.mode", "sometimes"),
        ({"tracking": {"neptune": {}}}, "tracking.neptune", "{}"),
        ({"cases": [{"lr": 0.1, "seeds": [0, 1]}]}, "cases[0].seeds", "[0, 1]"),  # one seed list per search cell
    ],
)
def test_bad_search_scheduler_and_tracking_keys_fail_naming_field_and_value(over, field, value):
    with pytest.raises(ConfigError) as info:
        _check(**over)
    assert info.value.field == field
    assert value in str(info.value)


def test_test_metric_refusal_says_why():
    with pytest.raises(ConfigError, match="never select"):
        _check(search={**SEARCH, "metric": "knn_top1_k200"})


def test_dry_run_prints_the_space_and_the_budget(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "base": BASE,
                "grid": {"method": ["simclr", "moco"]},
                "seeds": [0, 1, 2],
                "search": SEARCH,
                "scheduler": ASHA,
                "results_dir": str(tmp_path / "r"),
            }
        )
    )
    assert normbench(["sweep", str(path), "--dry-run", "--name", "dry"]) == 0
    out = capsys.readouterr().out
    assert "6 search cell(s)" in out and "= 18 trial(s)" in out
    assert "budget: 2 cell(s) x 3 sample(s) x 3 seed(s) = 18 trials" in out
    assert "lr: loguniform [0.01, 1.0]" in out and "method_args.temperature: choice [0.1, 0.5]" in out
    assert "ASHA per cell on val_knn_top1_k20, grace_period 1" in out
    assert not (tmp_path / "r").exists()


def test_cli_bad_search_exits_2_naming_the_field(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "base": {**BASE, "val_fraction": 0}, "search": SEARCH}))
    assert normbench(["sweep", str(path), "--dry-run"]) == 2
    assert "base.val_fraction" in capsys.readouterr().err


def test_update_is_refused_for_a_searched_sweep_and_next_to_resume(tmp_path, capsys):
    path = tmp_path / "searched.yaml"
    path.write_text(
        yaml.safe_dump({"name": "searched", "base": BASE, "search": SEARCH, "results_dir": str(tmp_path / "results")})
    )
    assert normbench(["sweep", str(path), "--update"]) == 2  # refused before Ray starts
    err = capsys.readouterr().err
    assert "--update" in err and "without `search:`" in err and "--name" in err
    assert not (tmp_path / "results").exists()
    with pytest.raises(SystemExit) as info:  # argparse: one of the two
        normbench(["sweep", str(path), "--update", "--resume"])
    assert info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_update_drops_the_previous_tune_state_on_uri_storage_too(tmp_path):
    """`storage:` may be a URI (s3://...): the old state goes through pyarrow's filesystem, here file://."""
    from suite.sweep.runner import _drop_experiment_state

    state = tmp_path / "_ray" / "sweep"
    (state / "trial-a").mkdir(parents=True)
    (state / "trial-a" / "result.json").write_text("{}")
    (tmp_path / "keep.csv").write_text("x")
    _drop_experiment_state(state.as_uri())
    assert not state.exists() and (tmp_path / "_ray").is_dir() and (tmp_path / "keep.csv").is_file()


def test_track_option_parses_each_tracker(tmp_path):
    tracking = parse_track([f"mlflow={tmp_path / 'm'}", f"tensorboard={tmp_path / 'tb'}"])
    assert tracking.mlflow.uri == str(tmp_path / "m") and tracking.tensorboard.dir == str(tmp_path / "tb")
    assert mlflow_uri(str(tmp_path / "m")) == f"sqlite:///{tmp_path / 'm' / 'mlflow.db'}"
    assert mlflow_uri(str(tmp_path / "x.db")) == f"sqlite:///{tmp_path / 'x.db'}"
    assert mlflow_uri("http://server:5000") == "http://server:5000"
    for bad in ("neptune=x", "mlflow", "wandb=sometimes", "tensorboard="):
        with pytest.raises(ConfigError) as info:
            parse_track([bad])
        assert info.value.field == "--track"


def test_leaderboard_selection_uses_the_validation_metric_not_the_test_metric():
    import pandas as pd

    from suite.analysis.leaderboard.search import searched_columns, select_search_trials

    rows = []
    # cell 0: the test-best trial (a) is not the validation-best (b); c was stopped; d failed
    for tid, cell, status, val, test in [
        ("a", 0, "completed", 0.50, 0.90),
        ("b", 0, "completed", 0.70, 0.60),
        ("c", 0, "stopped", 0.95, 0.95),
        ("d", 0, "failed", None, None),
        ("e", 1, "completed", 0.40, 0.10),
        ("f", 1, "completed", 0.30, 0.99),
    ]:
        rows.append(
            {
                "results_dir": "r",
                "trial_id": tid,
                "status": status,
                "search_cell": cell,
                "seed": 0,
                "method": "simclr",
                "search_metric": "val_knn_top1_k20",
                "search_mode": "max",
                "search_sample_lr": 0.1,
                "search_sample_method_args.temperature": 0.2,
                "val_knn_top1_k20": val,
                "knn_top1_k200": test,
            }
        )
    rows.append(
        {"results_dir": "r", "trial_id": "grid", "status": "completed", "method": "byol", "knn_top1_k200": 0.5}
    )  # a plain grid trial in the same directory is kept as it is
    kept, chosen = select_search_trials(pd.DataFrame(rows))
    assert list(chosen["trial_id"]) == ["b", "e"]
    assert sorted(kept["trial_id"]) == ["b", "d", "e", "grid"]  # the failure stays visible
    assert searched_columns(pd.DataFrame(rows)) == ["lr", "method_args"]
    rows = [dict(r, search_mode="min") for r in rows if r["trial_id"] in "ab"]
    assert list(select_search_trials(pd.DataFrame(rows))[1]["trial_id"]) == ["a"]
