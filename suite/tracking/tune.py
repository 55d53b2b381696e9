"""Sweep tracking on the Tune driver: one tracked run per trial, through Ray Tune's public Callback API.

MLflow and TensorBoard runs are written by `suite.tracking.runs` (the writers
`normbench trial --track` uses); W&B goes through Ray's own
`WandbLoggerCallback`, which runs W&B in a process per trial. After a sweep the
leaderboard goes to an MLflow run of its own (``<sweep>-leaderboard``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune import Callback

from suite.results import schema
from suite.tracking.runs import mlflow_experiment, numbers, open_runs, trial_params
from suite.tracking.spec import Tracking, mlflow_uri

# Tune's own bookkeeping, not a metric of the trial.
_TUNE_KEYS = (
    "time_",
    "timestamp",
    "training_iteration",
    "iterations_",
    "pid",
    "timesteps_",
    "episodes_",
    "done",
    "node_ip",
    "hostname",
    "date",
    "experiment_",
    "trial_id",
    "config",
)
# The report fields that carry whole rows as JSON (suite.sweep.trainable).
ROW_FIELDS = ["curve_json", "row_json", "curves_json", "bins_json", "class_norms_json"]


def report_metrics(result: dict[str, Any]) -> tuple[int, dict[str, float]]:
    """(step, metrics) of a Tune result: epoch reports as curves, the final report as final/*."""
    epoch = int(result.get(schema.EPOCH, 0) or 0)
    if result.get("kind") == "final":
        return epoch, numbers(result.get("final", {}), "final/")
    return epoch, {
        k: v for k, v in numbers(result).items() if k != schema.EPOCH and "/" not in k and not k.startswith(_TUNE_KEYS)
    }


class TrackingCallback(Callback):
    """Opens each trial's runs when it starts, logs every report, closes them when it ends."""

    def __init__(self, tracking: Tracking, sweep: str, results_dir: Path) -> None:
        self.tracking, self.sweep, self.results_dir = tracking, sweep, Path(results_dir)
        self._runs: dict[str, list] = {}
        self._status: dict[str, str] = {}

    def _open(self, trial) -> list:
        item = trial.config["trial"]  # the sweep's trial item: its resolved config and search columns
        tid = item["trial_id"]
        if tid not in self._runs:
            self._runs[tid] = open_runs(
                self.tracking,
                tid,
                trial_params(item["resolved"].config.model_dump(), item.get("search")),
                experiment=self.sweep,
                default_dir=self.results_dir,
                tags={"sweep": self.sweep},
                wandb=False,
            )
        return self._runs[tid]

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._open(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        step, metrics = report_metrics(result)
        if result.get("kind") == "final":
            self._status[trial.config["trial"]["trial_id"]] = str(result.get(schema.STATUS, schema.COMPLETED))
        for run in self._open(trial):
            run.log(step, metrics)

    def _close(self, trial, failed: bool) -> None:
        tid = trial.config["trial"]["trial_id"]
        status = schema.FAILED if failed else self._status.pop(tid, schema.COMPLETED)
        for run in self._runs.pop(tid, []):
            run.finish({}, status, [])

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._close(trial, failed=False)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._close(trial, failed=True)


def tracking_callbacks(tracking: Tracking | None, sweep: str, results_dir: Path) -> list:
    """Ray Tune callbacks for the spec's ``tracking:`` (empty without it)."""
    if tracking is None:
        return []
    callbacks: list = []
    if tracking.mlflow is not None or tracking.tensorboard is not None:
        callbacks.append(TrackingCallback(tracking, sweep, results_dir))
    if tracking.wandb is not None:
        from ray.air.integrations.wandb import WandbLoggerCallback

        callbacks.append(
            WandbLoggerCallback(
                project=tracking.wandb.project or "normbench",
                group=sweep,
                mode=tracking.wandb.mode,
                dir=tracking.wandb.dir or str(results_dir),
                excludes=ROW_FIELDS,
            )
        )
    return callbacks


def log_sweep_plots(tracking: Tracking | None, sweep: str, results_dir: Path) -> Path | None:
    """The sweep's leaderboard (markdown, CSV, plots) as artifacts of an MLflow run
    ``<sweep>-leaderboard``; returns the leaderboard directory (None without MLflow)."""
    if tracking is None or tracking.mlflow is None or not (Path(results_dir) / "trials.parquet").is_file():
        return None
    from mlflow import MlflowClient

    from suite.analysis.leaderboard.cli import write_leaderboard

    out = Path(results_dir) / "leaderboard"
    write_leaderboard([results_dir], out, formats=("md", "csv"))
    uri = mlflow_uri(tracking.mlflow.uri)
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(
        mlflow_experiment(uri, tracking.mlflow.experiment or sweep),
        run_name=f"{sweep}-leaderboard",
        tags={"sweep": sweep, "kind": "leaderboard"},
    )
    client.log_artifacts(run.info.run_id, str(out), artifact_path="leaderboard")
    client.set_terminated(run.info.run_id)
    return out
