"""What to track and where: the ``tracking:`` section of a sweep spec and ``normbench trial --track``.

Every tracker works offline: MLflow to a SQLite file (``sqlite:///x.db``, or a
plain path: a ``.db`` file or a directory that gets ``mlflow.db``),
TensorBoard to a directory, W&B with ``mode: offline``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from suite.core.errors import ConfigError

TRACKERS = ("mlflow", "tensorboard", "wandb")


class MLflowTracking(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uri: str = Field(description="MLflow tracking URI: a directory, file:///..., sqlite:///x.db or http://server")
    experiment: str | None = Field(None, description="MLflow experiment (default: the sweep name)")


class TensorBoardTracking(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dir: str = Field(description="TensorBoard log directory (one subdirectory per trial)")


class WandbTracking(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["offline", "online"] = "offline"
    project: str | None = Field(None, description="W&B project (default: normbench)")
    dir: str | None = Field(None, description="where W&B writes its files (default: the results directory)")


class Tracking(BaseModel):
    """Experiment trackers a sweep (or `normbench trial --track`) logs to."""

    model_config = ConfigDict(extra="forbid")

    mlflow: MLflowTracking | None = None
    tensorboard: TensorBoardTracking | None = None
    wandb: WandbTracking | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """``mlflow: URI``, ``tensorboard: DIR`` and ``wandb: offline`` mean what they say."""
        if isinstance(data, dict):
            data = dict(data)
            for key, inner in (("mlflow", "uri"), ("tensorboard", "dir"), ("wandb", "mode")):
                if isinstance(data.get(key), str):
                    data[key] = {inner: data[key]}
        return data


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


def mlflow_uri_text(uri: str) -> str:
    return uri if "://" in uri else f"{uri} (SQLite)"


def _require(module: str, tracker: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"tracking.{tracker}",
            tracker,
            f"an installed {module}",
            hint=f"pip install 'normbench[{extra}]'" if extra else f"pip install {module}",
        )


def validate_tracking(tracking: Tracking | None) -> None:
    """Before anything runs: each requested tracker's library is importable."""
    if tracking is None:
        return
    if tracking.mlflow is not None:
        _require("mlflow", "mlflow", "track")
    if tracking.tensorboard is not None:
        _require("tensorboardX", "tensorboard", "")
    if tracking.wandb is not None:
        _require("wandb", "wandb", "")


def describe_tracking(tracking: Tracking) -> str:
    parts = []
    if tracking.mlflow is not None:
        parts.append(f"mlflow {mlflow_uri_text(tracking.mlflow.uri)}")
    if tracking.tensorboard is not None:
        parts.append(f"tensorboard {tracking.tensorboard.dir}")
    if tracking.wandb is not None:
        parts.append(f"wandb ({tracking.wandb.mode})")
    return ", ".join(parts) or "none"


def parse_track(items: list[str] | None) -> Tracking | None:
    """``--track KIND=TARGET`` (repeatable): ``mlflow=URI``, ``tensorboard=DIR``,
    ``wandb=offline|online``."""
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
