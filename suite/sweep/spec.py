"""The sweep spec: a YAML file describing a grid of trials and how to run them.

```yaml
name: norms-vs-methods          # results land in results/<name>/
base: {dataset: cifar10, backbone: resnet18, epochs: 200}
grid:                           # the cartesian product of every axis
  method: [simclr, byol]
  intervention: [none, "cut:3", "gradscale:1"]
  method_args.temperature: [0.1, 0.5]     # dotted keys reach into method_args
cases:                          # optional: override sets crossed with the grid, so an
  - {intervention: none}        # intervention carries its own settings (a protocol)
  - {intervention: "gradscale:1", lr: 0.1, warmup_epochs: 100}
  - {intervention: "wd:0", seeds: [0, 1, 2, 3, 4]}   # a case's own seeds replace `seeds`
seeds: [0, 1, 2]
search:                         # optional: tune each grid cell (x case x seed) on the same budget
  num_samples: 8                # per cell; chosen on validation (needs base.val_fraction > 0)
  algorithm: optuna             # or random
  metric: val_knn_top1_k20
  mode: max
  space:
    lr: {loguniform: [0.01, 1.0]}
    method_args.temperature: {choice: [0.1, 0.2, 0.5]}
scheduler: {type: asha, grace_period: 2, reduction_factor: 2}   # early stopping within each cell
tracking: {mlflow: {uri: "sqlite:///mlflow.db"}, tensorboard: {dir: tb}, wandb: {mode: offline}}
resources: {workers: 2, gpus_per_worker: 1, cpus_per_worker: 8}
storage: s3://bucket/normbench          # checkpoints + Tune state (or a shared FS path)
max_concurrent_trials: 4
retries: 2                              # per trial, from the last checkpoint
```

Validation happens here and in `suite.sweep.grid` before Ray is touched, so a
typo in a 300-trial sweep fails in a second with a `ConfigError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from methods.errors import config_error
from suite.core.errors import ConfigError
from suite.tracking.spec import Tracking

SPEC_KEYS_HELP = (
    "name, base, grid, cases, seeds, search, scheduler, tracking, resources, storage, results_dir, "
    "max_concurrent_trials, retries"
)


class Resources(BaseModel):
    """What one trial asks Ray for.

    A trial with ``workers`` W > 1 is a Ray Train run of W workers, each holding
    ``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs; its Tune trial is only
    a light driver holding ``driver_resources`` (Ray needs a non-empty request; 0.1 CPU by default).
    With W == 1 the Tune trial
    trains itself and holds the per-worker resources.
    """

    model_config = ConfigDict(extra="forbid")

    workers: int | None = Field(None, ge=1, description="data-parallel workers per trial (default: base.workers or 1)")
    cpus_per_worker: float = Field(1.0, ge=0)
    gpus_per_worker: float = Field(0.0, ge=0)
    driver_resources: dict[str, float] = Field(
        default_factory=lambda: {"CPU": 0.1},
        description="Ray resources of the Tune driver of a multi-worker trial "
        "(e.g. {sweep_driver: 1} to pin drivers to on-demand nodes)",
    )
    check_cluster: bool = Field(
        True,
        description="fail early if one trial cannot fit the cluster "
        "(turn off on autoscaling clusters that start with no GPU nodes)",
    )


class FaultInjection(BaseModel):
    """Test hook: make chosen trials die, to exercise retries and resume.

    A trial dies (``os._exit``: the worker process vanishes, as on a spot
    preemption) while finishing epoch ``after_epoch + 1``, before that epoch is
    reported -- so its last checkpoint is the one of epoch ``after_epoch``. Each
    death leaves a marker file in ``marker_dir``; a trial dies at most ``times``
    times. ``driver_exit_after_trials`` makes the sweep driver itself exit once
    that many trials have ended, completed or failed (for testing ``--resume``).
    """

    model_config = ConfigDict(extra="forbid")

    marker_dir: str
    after_epoch: int = Field(1, ge=1)
    times: int = Field(1, ge=0)
    trials: list[int] | None = Field(None, description="grid indices of trials to fault (default: all)")
    driver_exit_after_trials: int | None = Field(None, ge=1)
    mode: Literal["exit", "raise"] = Field(
        "exit", description="exit: the process vanishes (preemption); raise: the training code raises (a bug)"
    )


SPACE_KINDS = ("loguniform", "uniform", "choice", "randint")


class Search(BaseModel):
    """Hyper-parameter search inside every grid cell (x case x seed): each gets
    ``num_samples`` trials, chosen on a validation metric (checked in `suite.sweep.search`)."""

    model_config = ConfigDict(extra="forbid")

    num_samples: int = Field(ge=1, description="trials per grid cell (x case x seed): the same budget for every cell")
    algorithm: Literal["optuna", "random"] = "random"
    metric: str = Field(description="a per-epoch validation metric, e.g. val_knn_top1_k20")
    mode: Literal["max", "min"] = "max"
    space: dict[str, dict[str, Any]] = Field(
        description="config field (method_args.x allowed) -> {loguniform|uniform|randint: [lo, hi]} or {choice: [...]}"
    )
    seed: int = Field(0, ge=0, description="seed of the searchers (cell i uses seed + i)")


class Scheduler(BaseModel):
    """Early stopping within each grid cell: Tune's ASHA on the search metric, time = epochs."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["asha"]
    grace_period: int = Field(1, ge=1, description="epochs every trial runs before it can be stopped")
    reduction_factor: float = Field(2.0, gt=1)


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    base: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] | None = None
    cases: list[dict[str, Any]] | None = Field(
        None,
        description="override mappings, each crossed with the grid (a protocol: an intervention with its own settings)",
    )
    seeds: list[int] | None = None
    search: Search | None = None
    scheduler: Scheduler | None = None
    tracking: Tracking | None = None
    resources: Resources = Field(default_factory=Resources)
    storage: str | None = Field(None, description="Ray storage path: local dir, shared FS path or s3://...")
    results_dir: str | None = Field(None, description="default results/<name>")
    max_concurrent_trials: int | None = Field(None, ge=1)
    retries: int = Field(2, ge=0, description="max_failures per trial")
    fault_injection: FaultInjection | None = Field(None, alias="_fault_injection")

    def results_path(self) -> Path:
        return Path(self.results_dir or Path("results") / self.name).expanduser().resolve()

    def storage_path(self) -> str:
        """Absolute local path or URI; default ``<results_dir>/_ray``."""
        if self.storage is None:
            return str(self.results_path() / "_ray")
        if "://" in self.storage:
            return self.storage
        return str(Path(self.storage).expanduser().resolve())


def spec_from_dict(data: dict[str, Any], *, name: str | None = None) -> SweepSpec:
    """Validate a raw mapping; ``name`` overrides the spec's name (``--name``)."""
    if not isinstance(data, dict):
        raise ConfigError("spec", type(data).__name__, "a YAML mapping with keys " + SPEC_KEYS_HELP)
    data = dict(data)
    if name is not None:
        data["name"] = name
    if "name" not in data:
        raise ConfigError("name", None, "a sweep name (spec key `name` or --name)")
    if "grid" in data and not data["grid"]:
        raise ConfigError(
            "grid", data["grid"], "a mapping of config field -> non-empty list of values (or no `grid` key)"
        )
    for axis, values in (data.get("grid") or {}).items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{axis}", values, "a non-empty list of values")
    cases = data.get("cases")
    if cases is not None and (not isinstance(cases, list) or not cases):
        raise ConfigError("cases", cases, "a non-empty list of override mappings (or no `cases` key)")
    for i, case in enumerate(cases or []):
        if not isinstance(case, dict) or not case:
            raise ConfigError(
                f"cases[{i}]",
                case,
                "a non-empty mapping of config field -> value, e.g. {intervention: 'gradscale:1', lr: 0.1}",
            )
    if data.get("seeds") is not None and (not isinstance(data["seeds"], list) or not data["seeds"]):
        raise ConfigError("seeds", data["seeds"], "a non-empty list of integer seeds")
    if isinstance(data.get("base"), dict):
        check_base(data["base"])
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as err:
        raise config_error(err, SweepSpec) from None


def check_base(base: dict[str, Any]) -> None:
    """The spec's ``base`` on its own: every key a config key, every value of its type, named ``base.<key>``
    (a typo there is the spec's, not the first trial's)."""
    from suite.config.load import config_key_error, pydantic_error, set_dotted
    from suite.config.model import TrialConfig

    data: dict[str, Any] = {}
    for key, value in base.items():
        set_dotted(data, str(key), value, where="base.")
    try:
        TrialConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        if first["type"] == "extra_forbidden":
            raise config_key_error(".".join(str(p) for p in first["loc"]), first.get("input"), "base.") from None
        raise pydantic_error(err, prefix="base.") from None


def load_spec(path: str | Path, *, name: str | None = None) -> SweepSpec:
    from suite.config import load_yaml

    p = Path(path)
    data = load_yaml(p, field="spec", what="sweep YAML file")
    if isinstance(data, dict) and name is None and "name" not in data:
        name = p.stem  # a spec file names its sweep unless it says otherwise
    return spec_from_dict(data, name=name)
