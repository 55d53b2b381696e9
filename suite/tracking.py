"""Experiment tracking: MLflow, TensorBoard and Weights & Biases.

Sweeps use Ray Tune's own logger callbacks (`MLflowLoggerCallback`,
`TBXLoggerCallback`, `WandbLoggerCallback`), narrowed to what a reader of the
tracker wants: the resolved trial config as parameters, each epoch's curves
row as metrics at step = epoch, and the final `trials` row as ``final/*``
metrics. `normbench trial --track` logs the same with the libraries directly
(`LocalTracker`). After a sweep the leaderboard's plots go to an MLflow run of
their own (``<sweep>-leaderboard``).

Every tracker works offline: MLflow to a SQLite file (``sqlite:///x.db``, or a
plain path: a ``.db`` file or a directory that gets ``mlflow.db``),
TensorBoard to a directory, W&B with ``mode: offline``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from suite.errors import ConfigError

TRACKERS = ("mlflow", "tensorboard", "wandb")


def mlflow_uri(uri: str) -> str:
    """A tracking URI MLflow accepts (its plain file store is refused since MLflow 3.x):
    ``x.db`` -> ``sqlite:///abs/x.db``, a directory -> ``sqlite:///abs/dir/mlflow.db``."""
    if "://" in uri:
        return uri
    path = Path(uri).expanduser().resolve()
    if path.suffix != ".db":
        path = path / "mlflow.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def mlflow_experiment(uri: str, name: str) -> str:
    """The experiment's id, created on first use with its artifacts next to a SQLite store
    (MLflow's default would be ./mlruns under the current directory)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)


def _require(module: str, tracker: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"tracking.{tracker}", tracker, f"an installed {module}",
                          hint=f"pip install 'normbench[{extra}]'" if extra else f"pip install {module}")


def validate_tracking(tracking) -> None:
    """Before Ray starts: each requested tracker's library is importable."""
    if tracking is None:
        return
    if tracking.mlflow is not None:
        _require("mlflow", "mlflow", "track")
    if tracking.tensorboard is not None:
        _require("tensorboardX", "tensorboard", "")
    if tracking.wandb is not None:
        _require("wandb", "wandb", "")


def describe_tracking(tracking) -> str:
    parts = []
    if tracking.mlflow is not None:
        parts.append(f"mlflow {mlflow_uri_text(tracking.mlflow.uri)}")
    if tracking.tensorboard is not None:
        parts.append(f"tensorboard {tracking.tensorboard.dir}")
    if tracking.wandb is not None:
        parts.append(f"wandb ({tracking.wandb.mode})")
    return ", ".join(parts) or "none"


def mlflow_uri_text(uri: str) -> str:
    return uri if "://" in uri else f"{uri} (SQLite)"


def _numbers(row: dict[str, Any], prefix: str = "") -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v)}


def trial_params(item: dict[str, Any]) -> dict[str, Any]:
    """Parameters of a sweep trial: its resolved config (method_args flattened) and search columns."""
    from suite.results import flatten_config

    config = dict(item["config"])
    params = {f"method_args.{k}": v for k, v in (config.pop("method_args", None) or {}).items()}
    params.update(flatten_config(config))
    params.update(item.get("search", {}))
    return params


def _epoch_metrics(result: dict[str, Any]) -> tuple[int, dict[str, float]]:
    """(step, metrics) of a Tune result: epoch reports as curves, the final report as final/*."""
    epoch = int(result.get("epoch", 0) or 0)
    if result.get("kind") == "final":
        return epoch, _numbers(result.get("final", {}), "final/")
    skip = {"epoch"}
    return epoch, {k: v for k, v in _numbers(result).items() if k not in skip and "/" not in k
                   and not k.startswith(("time_", "timestamp", "training_iteration", "iterations_", "pid",
                                         "timesteps_", "episodes_", "done", "node_ip"))}


def tracking_callbacks(tracking, sweep: str, results_dir: Path) -> list:
    """Ray Tune logger callbacks for the spec's ``tracking:`` (empty without it)."""
    if tracking is None:
        return []
    callbacks = []
    if tracking.mlflow is not None:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        class NormbenchMLflow(MLflowLoggerCallback):
            def log_trial_start(self, trial) -> None:
                if trial not in self._trial_runs:
                    run = self.mlflow_util.start_run(tags={**self.tags, "trial_name": str(trial), "sweep": sweep},
                                                     run_name=str(trial))
                    self._trial_runs[trial] = run.info.run_id
                    self.mlflow_util.log_params(run_id=self._trial_runs[trial],
                                                params_to_log=trial_params(trial.config["trial"]))

            def log_trial_result(self, iteration: int, trial, result: dict) -> None:
                step, metrics = _epoch_metrics(result)
                self.mlflow_util.log_metrics(run_id=self._trial_runs[trial], metrics_to_log=metrics, step=step)

            def log_trial_end(self, trial, failed: bool = False) -> None:
                self.mlflow_util.end_run(run_id=self._trial_runs[trial], status="FAILED" if failed else "FINISHED")

        uri = mlflow_uri(tracking.mlflow.uri)
        experiment = tracking.mlflow.experiment or sweep
        mlflow_experiment(uri, experiment)
        callbacks.append(NormbenchMLflow(tracking_uri=uri, experiment_name=experiment))
    if tracking.tensorboard is not None:
        from ray.tune.logger import TBXLoggerCallback

        log_dir = Path(tracking.tensorboard.dir).expanduser().resolve()

        class NormbenchTBX(TBXLoggerCallback):
            def log_trial_start(self, trial) -> None:
                if trial in self._trial_writer:
                    self._trial_writer[trial].close()
                self._trial_writer[trial] = self._summary_writer_cls(str(log_dir / str(trial)), flush_secs=30)
                self._trial_result[trial] = {}

            def log_trial_result(self, iteration: int, trial, result: dict) -> None:
                if trial not in self._trial_writer:
                    self.log_trial_start(trial)
                step, metrics = _epoch_metrics(result)
                writer = self._trial_writer[trial]
                for key, value in metrics.items():
                    writer.add_scalar(key, value, global_step=step)
                if step == 0 or result.get("kind") == "final":
                    writer.add_text("config", json.dumps(trial_params(trial.config["trial"]), default=str), step)
                self._trial_result[trial] = metrics
                writer.flush()

        callbacks.append(NormbenchTBX())
    if tracking.wandb is not None:
        from ray.air.integrations.wandb import WandbLoggerCallback

        callbacks.append(WandbLoggerCallback(project=tracking.wandb.project or "normbench", group=sweep,
                                             mode=tracking.wandb.mode,
                                             dir=tracking.wandb.dir or str(results_dir),
                                             excludes=["curve_json", "row_json", "curves_json", "bins_json"]))
    return callbacks


def log_sweep_plots(tracking, sweep: str, results_dir: Path) -> Path | None:
    """The sweep's leaderboard (markdown, CSV, plots) as artifacts of an MLflow run
    ``<sweep>-leaderboard``; returns the leaderboard directory (None without MLflow)."""
    if tracking is None or tracking.mlflow is None or not (Path(results_dir) / "trials.parquet").is_file():
        return None
    from mlflow import MlflowClient

    from suite.leaderboard.cli import write_leaderboard

    out = Path(results_dir) / "leaderboard"
    write_leaderboard([results_dir], out, formats=("md", "csv"))
    uri = mlflow_uri(tracking.mlflow.uri)
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(mlflow_experiment(uri, tracking.mlflow.experiment or sweep),
                            run_name=f"{sweep}-leaderboard", tags={"sweep": sweep, "kind": "leaderboard"})
    client.log_artifacts(run.info.run_id, str(out), artifact_path="leaderboard")
    client.set_terminated(run.info.run_id)
    return out


def parse_track(items: list[str] | None):
    """``--track KIND=TARGET`` (repeatable): ``mlflow=URI``, ``tensorboard=DIR``,
    ``wandb=offline|online`` -> a `suite.sweep.spec.Tracking`."""
    from suite.sweep.spec import Tracking

    data: dict[str, Any] = {}
    for item in items or []:
        kind, sep, target = item.partition("=")
        kind = kind.strip().lower()
        if kind not in TRACKERS or (not sep and kind != "wandb") or (sep and not target):
            raise ConfigError("--track", item, "mlflow=URI, tensorboard=DIR, wandb=offline or wandb=online")
        if kind == "mlflow":
            data["mlflow"] = {"uri": target}
        elif kind == "tensorboard":
            data["tensorboard"] = {"dir": target}
        else:
            if (target or "offline") not in ("offline", "online"):
                raise ConfigError("--track", item, "wandb=offline or wandb=online")
            data["wandb"] = {"mode": target or "offline"}
    tracking = Tracking.model_validate(data) if data else None
    validate_tracking(tracking)
    return tracking


class LocalTracker:
    """`normbench trial --track`: the same parameters and metrics as a sweep's
    trackers, logged with the libraries directly."""

    def __init__(self, tracking, cfg, trial_dir: Path, experiment: str = "normbench-local") -> None:
        self.tracking, self.cfg, self.trial_dir = tracking, cfg, Path(trial_dir)
        self.params = trial_params({"config": cfg.model_dump()})
        self._mlflow = self._tb = self._wandb = None
        run_name = cfg.trial_id
        if tracking.mlflow is not None:
            from mlflow import MlflowClient

            uri = mlflow_uri(tracking.mlflow.uri)
            self._mlflow = MlflowClient(tracking_uri=uri)
            run = self._mlflow.create_run(mlflow_experiment(uri, tracking.mlflow.experiment or experiment),
                                          run_name=run_name, tags={"trial_id": cfg.trial_id})
            self._run_id = run.info.run_id
            for key, value in self.params.items():
                self._mlflow.log_param(self._run_id, key, value)
        if tracking.tensorboard is not None:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(Path(tracking.tensorboard.dir).expanduser() / run_name))
            self._tb.add_text("config", json.dumps(self.params, default=str), 0)
        if tracking.wandb is not None:
            import wandb

            self._wandb = wandb.init(project=tracking.wandb.project or "normbench", name=run_name,
                                     mode=tracking.wandb.mode, config=self.params,
                                     dir=tracking.wandb.dir or str(self.trial_dir.parent), reinit=True)

    def log_epoch(self, row: dict[str, Any], checkpoint_dir=None) -> None:
        """A `suite.train.run_trial` report: one curves row at step = its epoch."""
        step = int(row.get("epoch", 0))
        metrics = {k: v for k, v in _numbers(row).items() if k != "epoch"}
        if self._mlflow is not None:
            from mlflow.entities import Metric
            import time

            now = int(time.time() * 1000)
            self._mlflow.log_batch(self._run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])
        if self._tb is not None:
            for key, value in metrics.items():
                self._tb.add_scalar(key, value, global_step=step)
        if self._wandb is not None:
            self._wandb.log({**metrics, "epoch": step}, step=step)

    def finish(self, result) -> None:
        """The epoch-0 row and the last epoch's final-evaluation numbers (not known while
        it trained), the final row as ``final/*``, the trial's tables as artifacts."""
        for row in result.curves:
            if row.get("epoch") == 0 or row is result.curves[-1]:
                self.log_epoch(row)
        final = _numbers(result.row, "final/")
        status = str(result.row.get("status"))
        if self._mlflow is not None:
            for key, value in final.items():
                self._mlflow.log_metric(self._run_id, key, value)
            self._mlflow.set_tag(self._run_id, "status", status)
            for name in ("result.json", "curves.csv", "norm_bins.csv"):
                if (self.trial_dir / name).is_file():
                    self._mlflow.log_artifact(self._run_id, str(self.trial_dir / name))
            self._mlflow.set_terminated(self._run_id, "FINISHED" if status == "completed" else "FAILED")
        if self._tb is not None:
            for key, value in final.items():
                self._tb.add_scalar(key, value, global_step=int(result.row.get("epochs_completed", 0)))
            self._tb.close()
        if self._wandb is not None:
            self._wandb.summary.update({**final, "status": status})
            self._wandb.finish(exit_code=0 if status == "completed" else 1)
