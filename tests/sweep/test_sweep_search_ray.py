"""Search sweeps on a real local Ray runtime: a random search on validation kNN
whose leaderboard keeps the validation-best trial per cell, ASHA stopping trials
(recorded as `stopped`, with their epoch), Optuna through Tune's OptunaSearch,
and MLflow tracking read back through the MLflow client."""

from __future__ import annotations

import math
import os

import pandas as pd
import pytest
from support import local_ray

from suite.analysis.leaderboard.cli import write_leaderboard
from suite.results import store
from suite.sweep.runner import run_sweep
from suite.sweep.spec import spec_from_dict

pytestmark = pytest.mark.ray

TINY = dict(
    dataset="digits",
    backbone="test_resnet",
    image_size=16,
    epochs=2,
    batch_size=64,
    train_limit=160,
    linear_epochs=5,
    eval_batch_size=512,
    device="cpu",
    num_threads=1,
    val_fraction=0.2,
    eval_every=1,
)
SPACE = {"lr": {"loguniform": [0.001, 1.0]}, "method_args.temperature": {"choice": [0.1, 0.5]}}


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    """One local Ray runtime for the module (2 logical CPUs)."""
    yield from local_ray(tmp_path_factory, num_cpus=2)


def _spec(tmp_path, name, **over):
    data = dict(name=name, base=dict(TINY), results_dir=str(tmp_path / "results" / name), retries=0)
    data.update(over)
    return spec_from_dict(data)


def test_random_search_reports_validation_and_the_leaderboard_keeps_the_validation_best(ray_address, tmp_path):
    spec = _spec(
        tmp_path,
        "search",
        grid={"method": ["simclr", "moco"]},
        search={
            "num_samples": 2,
            "algorithm": "random",
            "metric": "val_knn_top1_k20",
            "mode": "max",
            "space": SPACE,
            "seed": 3,
        },
    )
    outcome = run_sweep(spec)
    trials, curves = outcome.trials, pd.read_parquet(outcome.results_dir / "curves.parquet")
    assert len(trials) == 4 and (trials["status"] == "completed").all()
    # every cell got the same budget, each trial a distinct sampled setting
    assert trials.groupby("search_cell").size().to_dict() == {0: 2, 1: 2}
    assert trials["lr"].nunique() == 4 and trials["lr"].between(0.001, 1.0).all()
    assert set(trials["search_sample_method_args.temperature"]) <= {0.1, 0.5}
    assert (trials["lr"] == trials["search_sample_lr"]).all()
    for key in ("val_knn_top1_k20", "val_knn_top1_k200", "knn_top1_k20"):
        assert trials[key].between(0, 1).all(), key
    # per-epoch validation kNN in the curves (epoch 0, 1 and the final epoch 2)
    assert curves.groupby("trial_id")["val_knn_top1_k20"].apply(lambda s: s.notna().sum()).eq(3).all()

    out = tmp_path / "board"
    written = write_leaderboard([outcome.results_dir], out, formats=("csv",), plots=False)
    chosen = pd.read_csv(written["search_selection"])
    expected = trials.loc[trials.groupby("search_cell")["val_knn_top1_k20"].idxmax(), "trial_id"]
    assert sorted(chosen["trial_id"]) == sorted(expected)
    board = pd.read_csv(written["csv"])
    assert sorted(board["method"]) == ["moco", "simclr"] and (board["n"] == 1).all()
    by_id = trials.set_index("trial_id")
    for tid in expected:
        row = board[board["method"] == by_id.loc[tid, "method"]].iloc[0]
        assert row["knn_top1_k200_mean"] == pytest.approx(by_id.loc[tid, "knn_top1_k200"])  # its test metric
    everyone = pd.read_csv(
        write_leaderboard([outcome.results_dir], tmp_path / "all", formats=("csv",), plots=False, all_trials=True)[
            "csv"
        ]
    )
    assert everyone["n"].sum() == 4


def test_asha_stops_trials_which_are_recorded_as_stopped_with_their_epoch(ray_address, tmp_path):
    # 4 samples of 4 epochs in one cell, run one at a time: ASHA (grace 1, factor 2) must stop
    # some of them at its rungs; a chance-level lr range makes the cut deterministic enough.
    spec = _spec(
        tmp_path,
        "asha",
        base={**TINY, "epochs": 4},
        max_concurrent_trials=1,
        search={
            "num_samples": 4,
            "algorithm": "random",
            "metric": "val_knn_top1_k20",
            "space": {"lr": {"loguniform": [1e-4, 3.0]}},
            "seed": 1,
        },
        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2},
    )
    outcome = run_sweep(spec)
    trials = outcome.trials
    assert len(trials) == 4 and set(trials["status"]) <= {"completed", "stopped"}, trials[["status", "error"]]
    stopped = trials[trials["status"] == "stopped"]
    assert len(stopped) >= 1 and outcome.num_failed == 0
    assert (trials["status"] == "completed").any() and (
        trials.loc[trials["status"] == "completed", "epochs_completed"] == 4
    ).all()
    assert stopped["epochs_completed"].between(1, 3).all()
    assert stopped["notes"].str.contains("stopped early").all()
    assert stopped["val_knn_top1_k20"].map(math.isfinite).all()
    board = write_leaderboard([outcome.results_dir], tmp_path / "board", formats=("csv",), plots=False)
    assert pd.read_csv(board["failures_csv"]).empty  # stopped is not failed


def test_optuna_search_and_mlflow_tracking(ray_address, tmp_path):
    pytest.importorskip("optuna")
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    db = tmp_path / "mlflow" / "runs.db"
    spec = _spec(
        tmp_path,
        "optuna",
        base={**TINY, "epochs": 1},
        search={
            "num_samples": 2,
            "algorithm": "optuna",
            "metric": "val_knn_top1_k20",
            "space": {"lr": {"uniform": [0.01, 0.5]}},
        },
        tracking={"mlflow": {"uri": str(db)}, "tensorboard": {"dir": str(tmp_path / "tb")}},
    )
    outcome = run_sweep(spec)
    trials = outcome.trials
    assert len(trials) == 2 and (trials["status"] == "completed").all() and trials["lr"].nunique() == 2

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("optuna")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(trials["trial_id"]) | {"optuna-leaderboard"} == set(runs)
    for _, row in trials.iterrows():
        run = runs[row["trial_id"]]
        assert run.info.status == "FINISHED"
        assert float(run.data.params["lr"]) == pytest.approx(row["lr"])
        assert run.data.params["method"] == "simclr" and run.data.params["val_fraction"] == "0.2"
        assert run.data.metrics["final/knn_top1_k200"] == pytest.approx(row["knn_top1_k200"])
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [m.step for m in history] == [1] and history[0].value == pytest.approx(row["final_loss"])
    board_run = runs["optuna-leaderboard"]
    files = [f.path for f in client.list_artifacts(board_run.info.run_id, "leaderboard")]
    assert "leaderboard/leaderboard.md" in files
    assert any((tmp_path / "tb").rglob("events.out.tfevents*"))


def test_killed_search_sweep_resumes_within_its_budget(ray_address, tmp_path):
    """The sweep driver dies after the first trial; `--resume` restores Tune's searcher
    state and runs exactly the rest of the budget (no trial lost, none extra)."""
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    data = dict(
        name="resume-search",
        base={**TINY},
        results_dir=str(tmp_path / "results"),
        retries=0,
        max_concurrent_trials=1,
        search={
            "num_samples": 3,
            "algorithm": "random",
            "metric": "val_knn_top1_k20",
            "space": {"lr": {"loguniform": [0.01, 1.0]}},
        },
        _fault_injection={"marker_dir": str(tmp_path / "faults"), "times": 0, "driver_exit_after_trials": 1},
    )
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "NORMBENCH_CACHE": str(tmp_path / "cache")}
    env.pop("RAY_ADDRESS", None)
    # Both drivers join the module's Ray (as on a cluster), so no Ray start-up per driver.
    first = subprocess.run(
        [sys.executable, "-m", "suite.cli", "sweep", str(path), "--address", ray_address],
        env=env,
        capture_output=True,
        text=True,
    )
    assert first.returncode == 3, first.stderr[-2000:]  # the injected driver exit
    done_before = store.read_tables(tmp_path / "results", ["trials"])["trials"]  # the killed driver's record
    done_before = set(done_before.loc[done_before["status"] == "completed", "trial_id"])
    assert len(done_before) == 1
    second = subprocess.run(
        [sys.executable, "-m", "suite.cli", "sweep", str(path), "--resume", "--address", ray_address],
        env=env,
        capture_output=True,
        text=True,
    )
    assert second.returncode == 0, second.stderr[-2000:]
    trials = pd.read_parquet(tmp_path / "results" / "trials.parquet")
    assert len(trials) == 3 and (trials["status"] == "completed").all() and trials["lr"].nunique() == 3
    assert done_before <= set(trials["trial_id"]) and sorted(trials["search_index"]) == [0, 1, 2]
