"""Sweeps on a real local Ray runtime: tables, worker crashes, data-parallel
trials, a dying sweep driver and `--resume`, and early resource errors.

Each crash is injected through the spec's `_fault_injection` hook: the worker
process exits (`os._exit`) like a preempted node, and the real Tune / Train
retry path has to bring the trial back from its last reported checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support import SMALL_HEADS, local_ray

from suite.config import make_config, resolve_config
from suite.core.errors import ConfigError
from suite.results import store
from suite.sweep.runner import experiment_path, run_sweep
from suite.sweep.spec import spec_from_dict
from suite.sweep.trainable import DONE_MARKER, TIMING_KEY

pytestmark = pytest.mark.ray

ROOT = Path(__file__).parents[2]
TINY = dict(
    dataset="digits",
    backbone="test_resnet",
    image_size=16,
    epochs=2,
    batch_size=64,
    train_limit=128,
    linear_epochs=5,
    eval_batch_size=512,
    device="cpu",
    num_threads=1,
)


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    """One local Ray runtime for the module (4 logical CPUs)."""
    yield from local_ray(tmp_path_factory, num_cpus=4)


def _spec(tmp_path: Path, name: str, **over):
    data = dict(name=name, base=dict(TINY), results_dir=str(tmp_path / "results" / name))
    data.update(over)
    return spec_from_dict(data)


def _tune_reports(spec, trial_id: str) -> list[tuple[str, int]]:
    """(kind, epoch) of every result Tune logged for the trial, across retries."""
    path = Path(experiment_path(spec)) / trial_id / "result.json"
    return [
        ("skipped" if r.get("skipped") else r["kind"], r["epoch"])
        for r in map(json.loads, path.read_text().splitlines())
    ]


def _expected_ids(grid: dict, base: dict) -> list[str]:
    import itertools

    keys = list(grid)
    return [make_config({**base, **dict(zip(keys, values))}).trial_id for values in itertools.product(*grid.values())]


def test_local_sweep_fills_tables_a_crashed_trial_resumes_and_update_reruns_only_changed_arms(ray_address, tmp_path):
    grid = {"method": ["simclr", "byol"], "intervention": ["none", "cut:3"]}
    spec = _spec(
        tmp_path,
        "grid",
        grid=grid,
        retries=1,
        max_concurrent_trials=4,
        _fault_injection={"marker_dir": str(tmp_path / "faults"), "after_epoch": 1, "times": 1, "trials": [0]},
    )
    outcome = run_sweep(spec)

    ids = _expected_ids(grid, TINY)
    trials = pd.read_parquet(outcome.results_dir / "trials.parquet")
    curves = pd.read_parquet(outcome.results_dir / "curves.parquet")
    assert list(trials["trial_id"]) == ids
    assert (trials["status"] == "completed").all() and (trials["sweep"] == "grid").all()
    assert (trials["epochs_completed"] == 2).all()
    for col in ("knn_top1_k200", "knn_top1_k20", "linear_top1"):
        assert trials[col].between(0, 1).all(), col
    assert (trials["emb_norm_mean"] > 0).all() and (trials["feat_norm_q95"] >= trials["feat_norm_q05"]).all()
    assert curves.groupby("trial_id")["epoch"].apply(list).to_dict() == {i: [1, 2] for i in ids}
    assert curves["loss"].map(math.isfinite).all()
    assert len(pd.read_parquet(outcome.results_dir / "norm_bins.parquet")["trial_id"].unique()) == 4

    # The tables hold what each trial itself recorded (rank-0 files), through Tune's reports.
    for _, row in trials.iterrows():
        own = json.loads((outcome.results_dir / row["trial_id"] / "result.json").read_text())
        for key in ("knn_top1_k200", "knn_top1_k20", "linear_top1", "emb_norm_mean", "feat_norm_std", "final_loss"):
            assert row[key] == pytest.approx(own[key], rel=1e-9), key
        own_curves = pd.read_csv(outcome.results_dir / row["trial_id"] / "curves.csv")
        mine = curves[curves["trial_id"] == row["trial_id"]].reset_index(drop=True)
        pd.testing.assert_series_equal(mine["loss"], own_curves["loss"], check_names=False)
        assert row["emb_norm_mean"] == pytest.approx(mine["emb_norm_mean"].iloc[-1])

    # Trial 0 died once (while finishing epoch 2) and was retried: it reported
    # epoch 1 exactly once, i.e. it resumed from the epoch-1 checkpoint instead
    # of starting over; the others never crashed.
    assert [p.name for p in (tmp_path / "faults").iterdir()] == [f"{ids[0]}.crash0"]
    assert all(_tune_reports(spec, i) == [("epoch", 1), ("epoch", 2), ("final", 2)] for i in ids)

    # The resumed trial ends exactly where an uninterrupted run ends.
    from suite.trial.train import run_trial

    clean = run_trial(
        make_config({**TINY, "method": "simclr", "intervention": "none"}), tmp_path / "clean", progress=False
    ).row
    assert trials.iloc[0]["final_loss"] == pytest.approx(clean["final_loss"], rel=1e-6)
    assert trials.iloc[0]["knn_top1_k20"] == pytest.approx(clean["knn_top1_k20"])

    # Same name again: refused before anything runs, pointing at --resume and --update.
    with pytest.raises(ConfigError, match="--update") as info:
        run_sweep(spec)
    assert info.value.field == "name"
    with pytest.raises(ConfigError, match="not together with --resume"):
        run_sweep(spec, update=True, resume=True)

    # --update with a changed spec (BYOL dropped, a GradScale arm added) trains the new arm only;
    # the unchanged finished trials are handed back as they were.
    changed = {"method": ["simclr"], "intervention": ["none", "cut:3", "gradscale:1"]}
    kept, new_id = ids[:2], _expected_ids(changed, TINY)[2]
    kept_files = {p: p.stat().st_mtime_ns for i in kept for p in (outcome.results_dir / i).rglob("*") if p.is_file()}
    updated = _spec(tmp_path, "grid", grid=changed, retries=0, max_concurrent_trials=4)
    after = run_sweep(updated, update=True).trials.set_index("trial_id")
    assert list(after.index) == [*kept, new_id] and (after["status"] == "completed").all()
    before = trials.set_index("trial_id")
    for col in ("final_loss", "knn_top1_k200", "wall_time_s", "emb_norm_mean"):
        assert (after.loc[kept, col] == before.loc[kept, col]).all(), col
    assert {p: p.stat().st_mtime_ns for p in kept_files} == kept_files
    assert all(_tune_reports(updated, i) == [("skipped", 2)] for i in kept)
    assert _tune_reports(updated, new_id) == [("epoch", 1), ("epoch", 2), ("final", 2)]
    # The removed arms leave the tables; their folders stay.
    assert set(pd.read_parquet(outcome.results_dir / "curves.parquet")["trial_id"]) == {*kept, new_id}
    assert all((outcome.results_dir / i / "result.json").is_file() for i in ids[2:])

    # Run settings are not science: changing how trials run (checkpoints, threads) keeps every trial's id,
    # so --update trains nothing; a new lr in one arm trains that arm only.
    run_only = _spec(
        tmp_path,
        "grid",
        base={**TINY, "checkpoint_every": 2, "num_threads": 1, "eval_batch_size": 256},
        grid=changed,
        retries=0,
        max_concurrent_trials=4,
    )
    again = run_sweep(run_only, update=True).trials.set_index("trial_id")
    assert list(again.index) == [*kept, new_id]
    assert all(_tune_reports(run_only, i) == [("skipped", 2)] for i in again.index)
    # The arm that trains here has no thread count set: it trains with as many threads as CPUs it holds (1),
    # not torch's default of one per core, which would oversubscribe a shared machine.
    assert len(os.sched_getaffinity(0)) > 1  # otherwise the two could not be told apart
    cases = [{"intervention": "none"}, {"intervention": "cut:3"}, {"intervention": "gradscale:1", "lr": 0.2}]
    science = _spec(
        tmp_path,
        "grid",
        base={**TINY, "num_threads": None},
        grid={"method": ["simclr"]},
        cases=cases,
        retries=0,
        max_concurrent_trials=4,
        resources={"cpus_per_worker": 1},
    )
    last = run_sweep(science, update=True).trials.set_index("trial_id")
    changed_id = make_config({**TINY, "method": "simclr", **cases[2]}).trial_id  # that arm's lr changed
    assert list(last.index) == [*kept, changed_id] and changed_id not in again.index
    assert all(_tune_reports(science, i) == [("skipped", 2)] for i in kept)
    assert _tune_reports(science, changed_id) == [("epoch", 1), ("epoch", 2), ("final", 2)]
    assert last.loc[changed_id, "torch_threads"] == 1


def test_killed_sweep_driver_resumes_without_rerunning_finished_trials(ray_address, tmp_path):
    grid = {"intervention": ["none", "cut:3", "gradscale:1"]}
    data = dict(
        name="resume",
        base=dict(TINY),
        grid=grid,
        results_dir=str(tmp_path / "results"),
        retries=0,
        max_concurrent_trials=1,
        # trial 1 dies once after its epoch-1 checkpoint (no retries left: it fails
        # for good); the sweep driver dies once two trials have ended.
        _fault_injection={
            "marker_dir": str(tmp_path / "faults"),
            "after_epoch": 1,
            "times": 1,
            "trials": [1],
            "driver_exit_after_trials": 2,
        },
    )
    spec_path = tmp_path / "resume.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "suite.cli", "sweep", str(spec_path), "--address", ray_address],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 3, proc.stderr[-3000:]  # the injected driver death

    ids = _expected_ids(grid, TINY)
    results_dir = tmp_path / "results"
    # A killed driver leaves its record in the parts, read like any table (the files are rebuilt at --resume).
    before = store.read_tables(results_dir, ["trials"])["trials"].set_index("trial_id")
    assert before.loc[ids[0], "status"] == "completed"
    assert before.loc[ids[1], "status"] == "failed" and before.loc[ids[1], "error"]
    assert ids[2] not in before.index or before.loc[ids[2], "status"] != "completed"
    finished_files = {p: p.stat().st_mtime_ns for p in (results_dir / ids[0]).rglob("*") if p.is_file()}

    spec = spec_from_dict(data)
    outcome = run_sweep(spec, resume=True)
    after = outcome.trials.set_index("trial_id")
    assert list(after.index) == ids and (after["status"] == "completed").all()
    # The finished trial was not trained again: same row, untouched files, one final report.
    for col in ("final_loss", "knn_top1_k200", "wall_time_s", "emb_norm_mean"):
        assert after.loc[ids[0], col] == before.loc[ids[0], col]
    assert {p: p.stat().st_mtime_ns for p in finished_files} == finished_files
    reports = _tune_reports(spec, ids[0])
    assert reports[:3] == [("epoch", 1), ("epoch", 2), ("final", 2)]
    # If Tune's saved state still had it running, it was handed back, not retrained.
    assert all(r == ("skipped", 2) for r in reports[3:])
    # The trial that failed for good continued from its epoch-1 checkpoint.
    assert _tune_reports(spec, ids[1]) == [("epoch", 1), ("epoch", 2), ("final", 2)]
    assert after.loc[ids[1], "epochs_completed"] == 2


def test_trial_larger_than_the_cluster_fails_before_any_trial_starts(ray_address, tmp_path):
    spec = _spec(tmp_path, "huge", grid={"method": ["simclr"]}, resources={"workers": 2, "cpus_per_worker": 64})
    with pytest.raises(ConfigError) as info:
        run_sweep(spec)
    assert info.value.field == "resources.cpus_per_worker" and "4 CPU" in str(info.value)
    assert not spec.results_path().exists() and not Path(experiment_path(spec)).exists()


def test_data_parallel_sweep_trial_completes_and_survives_a_dead_worker(ray_address, tmp_path):
    """Ray Train's side of a data-parallel sweep: a momentum method (its EMA target restored from the
    checkpoint, its BatchNorm synced and its gradients all-reduced in the process group Ray Train sets up)
    completes on two gloo workers, reports from every rank, and holds one thread per worker. Its rank 0
    dies once while finishing epoch 2: Ray Train restarts the worker group from the epoch-1 checkpoint.
    Every method's whole trial on two gloo workers, losses that gather across workers included:
    tests/trial/test_distributed_trial.py (the function these workers run, without a Ray Train worker
    group per method: each group starts about eight interpreters)."""
    names = ["byol"]
    base = dict(TINY, warmup_epochs=0, batch_size=128, train_limit=256, num_threads=None)  # threads: the CPUs held
    spec = spec_from_dict(
        dict(
            name="ddp",
            base=base,
            cases=[{"method": name, "method_args": SMALL_HEADS[name]} for name in names],
            retries=1,
            resources={"workers": 2, "cpus_per_worker": 0.9},
            results_dir=str(tmp_path / "results" / "ddp"),
            _fault_injection={"marker_dir": str(tmp_path / "faults"), "after_epoch": 1, "times": 1, "trials": [0]},
        )
    )
    outcome = run_sweep(spec)
    trials = outcome.trials.set_index("method")
    assert list(trials.index) == names
    assert (trials["status"] == "completed").all(), trials["error"].to_dict()
    assert (trials["workers"] == 2).all() and (trials["epochs_completed"] == 2).all()
    assert (trials["torch_threads"] == 1).all()  # each worker holds 0.9 CPU: one thread, not one per core
    assert trials["final_loss"].map(math.isfinite).all()
    for col in ("knn_top1_k20", "linear_top1"):
        assert trials[col].between(0, 1).all(), col
    dead = trials.loc[names[0], "trial_id"]
    assert (tmp_path / "faults" / f"{dead}.crash0").is_file()
    assert _tune_reports(spec, dead) == [("epoch", 1), ("epoch", 2), ("final", 2)]  # epoch 1 not repeated
    train_run = Path(experiment_path(spec)) / "_train" / f"train-{dead}"
    assert any(p.name.startswith("checkpoint_") for p in train_run.iterdir())


def test_failed_trial_row_names_the_root_cause(ray_address, tmp_path):
    """A trial whose training code raises (in the Tune actor, or in a Ray Train worker: one trial of each,
    side by side) records the exception's type, message and where it was raised."""
    spec = _spec(
        tmp_path,
        "raise",
        cases=[{"method": "simclr", "workers": 1, "seed": 0}, {"method": "simclr", "workers": 2, "seed": 1}],
        retries=0,
        max_concurrent_trials=2,
        resources={"cpus_per_worker": 1},
        _fault_injection={"marker_dir": str(tmp_path / "faults"), "after_epoch": 1, "times": 1, "mode": "raise"},
    )
    outcome = run_sweep(spec)
    rows = outcome.trials.set_index("workers")
    assert sorted(rows.index) == [1, 2]
    for workers, row in rows.iterrows():
        assert row["status"] == "failed", workers
        assert row["error"].startswith(f"RuntimeError: injected fault in trial {row['trial_id']} at epoch 2"), workers
        assert "in _maybe_inject_fault" in row["error"], workers


TIMING_COLUMNS = {"wall_time_s", "train_time_s", "eval_time_s", "images_per_s", "sweep"}
PLACE_COLUMNS = {"last_checkpoint"}  # "epoch N (its path)": the two runs write to different folders


@pytest.mark.parametrize("seed", [0, 1])
def test_local_trial_row_equals_the_sweep_row(sweep_rows, tmp_path, seed):
    """The sweep's row is the TrialResult a local `run_trial` returns for the
    same config, carried through Tune's reports -- equal except for timing. The
    second trial ran in the first one's actor (Tune reuses actors): nothing a trial
    leaves in its process changes the next one."""
    from suite.trial.train import run_trial

    outcome, base = sweep_rows
    swept = outcome.trials.set_index("seed").loc[seed].to_dict()
    swept["seed"] = seed
    local = run_trial(resolve_config({**base, "method": "byol", "seed": seed}), tmp_path / "local", progress=False).row
    assert swept["status"] == local["status"] == "completed"
    assert set(local) - TIMING_COLUMNS == set(swept) - TIMING_COLUMNS
    for key in PLACE_COLUMNS:
        assert local[key].startswith("epoch 2 (") and swept[key].startswith("epoch 2 ("), key
    for key in sorted(set(local) - TIMING_COLUMNS - PLACE_COLUMNS):
        mine, theirs = local[key], swept[key]
        if isinstance(mine, float) and math.isnan(mine):
            assert theirs is None or (isinstance(theirs, float) and math.isnan(theirs)), key
        elif isinstance(mine, float):
            assert theirs == pytest.approx(mine, rel=1e-9, abs=1e-12), key
        else:
            assert theirs == mine or (mine == "" and theirs is None), key
    curves = pd.read_parquet(outcome.results_dir / "curves.parquet")
    trial_curves = curves[curves["trial_id"] == swept["trial_id"]]
    assert list(trial_curves["epoch"]) == [0, 1, 2]  # epoch 0: the untrained network


@pytest.fixture(scope="module")
def sweep_rows(ray_address, tmp_path_factory):
    """Two seeds, one at a time: the second runs in the first one's (reused) actor."""
    base = dict(TINY, eval_every=1)
    results = tmp_path_factory.mktemp("same") / "results" / "same"
    spec = spec_from_dict(
        dict(
            name="same",
            base=base,
            grid={"method": ["byol"]},
            seeds=[0, 1],
            max_concurrent_trials=1,
            retries=0,
            results_dir=str(results),
        )
    )
    outcome = run_sweep(spec)
    timings = [json.loads(json.loads(p.read_text())[TIMING_KEY]) for p in results.glob(f"*/{DONE_MARKER}")]
    first, second = sorted(timings, key=lambda t: t["entered_at"])
    assert second["imports_s"] < first["imports_s"] / 10  # torch was already imported: the actor was reused
    return outcome, base


def test_a_finished_sweep_keeps_one_copy_of_each_trials_model(sweep_rows):
    """Everything the sweep left on disk -- results, Tune's state, checkpoints -- against what one copy of each
    completed trial's model weighs (its state dict, computed here from the model itself): Ray references the
    trial's checkpoint instead of copying it, and a completed trial keeps the model only."""
    from suite.trial.train import build_model

    outcome, base = sweep_rows
    model = build_model(make_config({**base, "method": "byol"}))
    one_copy = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    on_disk = sum(f.stat().st_size for f in outcome.results_dir.rglob("*") if f.is_file())
    trials = len(outcome.trials)
    assert trials == 2 and one_copy > 1_000_000  # large enough that a second copy would show
    assert on_disk < trials * one_copy * 1.25 + 3_000_000, (on_disk, one_copy)  # + tables, curves, Tune's state
