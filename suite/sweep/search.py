"""Search and early stopping inside grid cells: the spec's ``search:`` and ``scheduler:``.

How a searcher composes with the grid. Optuna (through Tune's `OptunaSearch`)
cannot take `tune.grid_search` dimensions, and one searcher or one ASHA across
methods would compare methods with each other: ASHA would stop the trials of a
method that starts slowly and Optuna would spend the budget where the best
method already is. So every *search cell* -- a grid point x case x seed, i.e.
one trial of the plain grid -- gets its own searcher and its own ASHA, and one
`tune.Tuner` runs all cells at once (no cell waits for another):

* `CellSearch` (a Tune `Searcher`) hands out trials round-robin over the cells
  until each has had ``num_samples``; each cell's values come from its own
  `OptunaSearch` (seeded ``search.seed + cell``) or a seeded random sampler,
  are set on the cell's input (the mapping its config was resolved from) and
  resolved like any trial config, once, on the driver.
* `CellASHA` (a Tune scheduler) keeps one `ASHAScheduler` per cell, with
  ``time_attr="epoch"`` and ``max_t`` the cell's epochs.

Every cell therefore gets exactly the same budget, and the trial kept for a
cell (the leaderboard's default view) is the one with the best validation
metric among that cell's completed trials. Test metrics are reported, never
read by the searcher or the scheduler.
"""

from __future__ import annotations

import copy
from typing import Any

from suite.config import CONFIG_FIELDS, ResolvedConfig, TrialConfig, resolve_config, set_dotted
from suite.core.errors import ConfigError
from suite.results import schema
from suite.sweep.spec import SPACE_KINDS, SweepSpec


def validation_metrics(cfg: TrialConfig) -> list[str]:
    """The per-epoch validation metrics a trial of this config reports."""
    return [schema.knn(k, "val") for k in cfg.knn_k] if cfg.val_fraction > 0 else []


def _check_range(key: str, kind: str, bounds: Any) -> None:
    where = f"search.space.{key}.{kind}"
    if not (
        isinstance(bounds, list)
        and len(bounds) == 2
        and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
    ):
        raise ConfigError(where, bounds, "[low, high] (two numbers)")
    lo, hi = bounds
    if not lo < hi:
        raise ConfigError(where, bounds, "[low, high] with low < high")
    if kind == "loguniform" and lo <= 0:
        raise ConfigError(where, bounds, "[low, high] with 0 < low < high (log scale)")
    if kind == "randint" and not all(isinstance(b, int) for b in bounds):
        raise ConfigError(where, bounds, "[low, high] integers (high excluded)")


def _space_entry(key: str, entry: dict[str, Any]) -> tuple[str, Any]:
    if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in SPACE_KINDS:
        raise ConfigError(
            f"search.space.{key}",
            entry,
            "one of {loguniform: [lo, hi]}, {uniform: [lo, hi]}, "
            "{randint: [lo, hi]} (high excluded), {choice: [v1, v2, ...]}",
        )
    kind, arg = next(iter(entry.items()))
    if kind == "choice":
        if not isinstance(arg, list) or not arg:
            raise ConfigError(f"search.space.{key}.choice", arg, "a non-empty list of values")
    else:
        _check_range(key, kind, arg)
    return kind, arg


def corner_values(kind: str, arg: Any) -> list[Any]:
    """Values that bound what the searcher can draw (checked before Ray starts)."""
    if kind == "choice":
        return list(arg)
    if kind == "randint":
        return [arg[0], arg[1] - 1]
    return list(arg)


def validate_search(spec: SweepSpec, cells: list) -> None:
    """Every check of ``search:`` and ``scheduler:`` against the planned cells
    (`suite.sweep.grid.PlannedTrial`), before anything runs."""
    search, scheduler = spec.search, spec.scheduler
    if scheduler is not None and search is None:
        raise ConfigError(
            "scheduler",
            scheduler.model_dump(),
            "a scheduler together with `search:` (ASHA stops trials on search.metric)",
        )
    if search is None:
        return
    if not search.space:
        raise ConfigError("search.space", search.space, "a non-empty mapping of config field -> distribution")
    if search.algorithm == "optuna":
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise ConfigError(
                "search.algorithm",
                "optuna",
                "random, or optuna once installed",
                hint="pip install 'normbench[search]' (optuna)",
            ) from None
    fixed = set(spec.grid or {}) | {k for case in spec.cases or [] for k in case}
    for key, entry in search.space.items():
        head = key.split(".", 1)[0]
        if head not in CONFIG_FIELDS or ("." in key and head != "method_args"):
            raise ConfigError(
                f"search.space.{key}",
                key,
                CONFIG_FIELDS,
                hint="unknown config field; dotted keys only under method_args",
            )
        if key in ("seed", "workers", "epochs", "val_fraction", "eval_every", "device") or key in fixed:
            raise ConfigError(
                f"search.space.{key}",
                key,
                "a hyper-parameter that is not a grid axis, case key, "
                "seed, epochs, workers, device, val_fraction or eval_every",
            )
        _space_entry(key, entry)

    metric = search.metric
    if schema.is_test_metric(metric):
        raise ConfigError(
            "search.metric",
            metric,
            "a validation metric (val_knn_top1_k<k>, with val_fraction > 0)",
            hint="test-set metrics are reported but never select hyper-parameters",
        )
    for cell in cells:
        cfg = cell.config
        where = f"cell #{cell.index} ({', '.join(f'{k}={v}' for k, v in cell.axes.items()) or 'base'})"
        if cfg.val_fraction <= 0:
            raise ConfigError(
                "base.val_fraction",
                cfg.val_fraction,
                "a fraction in (0, 0.5) when `search:` is given",
                hint=f"{where}: hyper-parameters are chosen on a validation split, never on the test set",
            )
        if metric not in validation_metrics(cfg):
            raise ConfigError(
                "search.metric",
                metric,
                validation_metrics(cfg),
                hint=f"a metric every epoch report carries ({where}, knn_k={cfg.knn_k})",
            )
        if scheduler is not None:
            if cfg.eval_every <= 0:
                raise ConfigError(
                    "base.eval_every",
                    cfg.eval_every,
                    "an integer >= 1 with scheduler asha",
                    hint=f"{where}: ASHA compares trials on the validation metric of evaluated epochs",
                )
            if scheduler.grace_period > cfg.epochs:
                raise ConfigError(
                    "scheduler.grace_period", scheduler.grace_period, f"<= epochs ({cfg.epochs})", hint=where
                )
        for key, entry in search.space.items():
            kind, arg = _space_entry(key, entry)
            for value in corner_values(kind, arg):
                cell_config(cell.inputs, {key: value}, field=f"search.space.{key}", hint=where)


def cell_config(
    inputs: dict[str, Any], values: dict[str, Any], field: str = "search.space", hint: str = ""
) -> ResolvedConfig:
    """A trial of a search cell: the cell's input (`suite.sweep.grid.PlannedTrial.inputs`) with the
    searched values set (dotted keys reach into method_args), resolved -- so its notes are those of
    its own config (a warm-up shortened because the user left it unset included)."""
    data = copy.deepcopy(inputs)
    for key, value in values.items():
        set_dotted(data, key, copy.deepcopy(value))
    try:
        return resolve_config(data)
    except ConfigError as err:
        raise ConfigError(
            field if err.field.split(".")[0] in field else f"{field} -> {err.field}", err.value, err.allowed, hint=hint
        ) from None


def tune_domains(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from ray import tune

    make = {
        "loguniform": lambda a: tune.loguniform(*a),
        "uniform": lambda a: tune.uniform(*a),
        "randint": lambda a: tune.randint(*a),
        "choice": lambda a: tune.choice(a),
    }
    return {key: make[next(iter(entry))](next(iter(entry.values()))) for key, entry in space.items()}


def describe_space(spec: SweepSpec, num_cells: int) -> list[str]:
    """The dry run's lines about the search (space and budget)."""
    search = spec.search
    if search is None:
        return []
    seeds = len(spec.seeds) if spec.seeds else 1
    cells = num_cells // seeds
    lines = [
        "",
        f"search: {search.algorithm}, {search.mode} {search.metric} (validation), per cell "
        f"(grid point x case x seed, listed above as trials):",
    ]
    lines += [f"  {key}: {next(iter(entry))} {next(iter(entry.values()))}" for key, entry in search.space.items()]
    lines.append(
        f"budget: {cells} cell(s) x {search.num_samples} sample(s) x {seeds} seed(s) = "
        f"{num_cells * search.num_samples} trials"
    )
    sch = spec.scheduler
    lines.append(
        f"scheduler: ASHA per cell on {search.metric}, grace_period {sch.grace_period} epoch(s), "
        f"reduction_factor {sch.reduction_factor:g}, max_t = epochs"
        if sch
        else "scheduler: none (every trial runs all its epochs)"
    )
    return lines
