"""One tracked run per trial and tracker: parameters once, metrics at step = epoch, the final row.

The same writers serve `normbench trial --track` (`suite.tracking.local`) and
sweeps (`suite.tracking.tune`), so a trial logs the same names wherever it runs:
the resolved config as parameters (``method_args.KEY`` flattened), each curves
row as metrics at its epoch, the final `trials` row as ``final/*`` metrics.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from suite.results.store import flatten_config
from suite.tracking.spec import Tracking, mlflow_uri


def numbers(row: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a row (what a tracker can plot)."""
    return {
        f"{prefix}{k}": float(v)
        for k, v in row.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def trial_params(config: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A trial's parameters: its resolved config with method_args flattened, plus ``extra`` (search columns)."""
    config = dict(config)
    params = {f"method_args.{k}": v for k, v in (config.pop("method_args", None) or {}).items()}
    params.update(flatten_config(config))
    params.update(extra or {})
    return params


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
        location = (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)


class MLflowRun:
    def __init__(self, uri: str, experiment: str, run_name: str, params: dict[str, Any], tags: dict[str, str]) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Param

        uri = mlflow_uri(uri)
        self.client = MlflowClient(tracking_uri=uri)
        self.run_id = self.client.create_run(
            mlflow_experiment(uri, experiment), run_name=run_name, tags=tags
        ).info.run_id
        items = [Param(k, str(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow's batch limit for parameters
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def finish(self, final: dict[str, float], status: str, files: list[Path]) -> None:
        if final:
            self.log(0, final)
        self.client.set_tag(self.run_id, "status", status)
        for path in files:
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, "FINISHED" if status == "completed" else "FAILED")


class TensorBoardRun:
    def __init__(self, log_dir: Path, params: dict[str, Any]) -> None:
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(str(log_dir), flush_secs=30)
        self.writer.add_text("config", json.dumps(params, default=str), 0)
        self.last_step = 0

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, global_step=step)
        self.last_step = max(self.last_step, step)
        self.writer.flush()

    def finish(self, final: dict[str, float], status: str, files: list[Path]) -> None:
        self.log(self.last_step, final)
        self.writer.add_text("status", status, self.last_step)
        self.writer.close()


class WandbRun:
    def __init__(self, project: str, mode: str, run_name: str, params: dict[str, Any], directory: str) -> None:
        import wandb

        self.run = wandb.init(project=project, name=run_name, mode=mode, config=params, dir=directory, reinit=True)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log({**metrics, "epoch": step}, step=step)

    def finish(self, final: dict[str, float], status: str, files: list[Path]) -> None:
        self.run.summary.update({**final, "status": status})
        self.run.finish(exit_code=0 if status == "completed" else 1)


def open_runs(
    tracking: Tracking,
    run_name: str,
    params: dict[str, Any],
    *,
    experiment: str,
    default_dir: Path,
    tags: dict[str, str] | None = None,
    wandb: bool = True,
) -> list:
    """One run per requested tracker (W&B left out with ``wandb=False``: sweeps use Ray's own callback)."""
    runs: list = []
    if tracking.mlflow is not None:
        runs.append(
            MLflowRun(
                tracking.mlflow.uri,
                tracking.mlflow.experiment or experiment,
                run_name,
                params,
                {"trial_id": run_name, **(tags or {})},
            )
        )
    if tracking.tensorboard is not None:
        runs.append(TensorBoardRun(Path(tracking.tensorboard.dir).expanduser().resolve() / run_name, params))
    if wandb and tracking.wandb is not None:
        runs.append(
            WandbRun(
                tracking.wandb.project or "normbench",
                tracking.wandb.mode,
                run_name,
                params,
                tracking.wandb.dir or str(default_dir),
            )
        )
    return runs
