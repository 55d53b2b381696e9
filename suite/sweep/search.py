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
  are merged into the cell's config and validated like any trial config.
* `CellASHA` (a Tune scheduler) keeps one `ASHAScheduler` per cell, with
  ``time_attr="epoch"`` and ``max_t`` the cell's epochs.

Every cell therefore gets exactly the same budget, and the trial kept for a
cell (the leaderboard's default view) is the one with the best validation
metric among that cell's completed trials. Test metrics are reported, never
read by the searcher or the scheduler.
"""
from __future__ import annotations

import copy
import math
from typing import Any

from suite.config import CONFIG_FIELDS, TrialConfig, make_config, set_dotted
from suite.errors import ConfigError
from suite.sweep.spec import SPACE_KINDS, SweepSpec

# Columns a search sweep adds to its trials rows (the leaderboard selects with them).
CELL_COLUMN = "search_cell"
METRIC_COLUMN = "search_metric"
MODE_COLUMN = "search_mode"
TEST_METRIC_PREFIXES = ("knn_top1_", "linear_top1", "test_")


def validation_metrics(cfg: TrialConfig) -> list[str]:
    """The per-epoch validation metrics a trial of this config reports."""
    return [f"val_knn_top1_k{k}" for k in cfg.knn_k] if cfg.val_fraction > 0 else []


def _check_range(key: str, kind: str, bounds: Any) -> None:
    where = f"search.space.{key}.{kind}"
    if not (isinstance(bounds, list) and len(bounds) == 2
            and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)):
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
        raise ConfigError(f"search.space.{key}", entry, "one of {loguniform: [lo, hi]}, {uniform: [lo, hi]}, "
                                                        "{randint: [lo, hi]} (high excluded), {choice: [v1, v2, ...]}")
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
        raise ConfigError("scheduler", scheduler.model_dump(), "a scheduler together with `search:` "
                                                               "(ASHA stops trials on search.metric)")
    if search is None:
        return
    if not search.space:
        raise ConfigError("search.space", search.space, "a non-empty mapping of config field -> distribution")
    if search.algorithm == "optuna":
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise ConfigError("search.algorithm", "optuna", "random, or optuna once installed",
                              hint="pip install 'normbench[search]' (optuna)") from None
    fixed = set(spec.grid or {}) | {k for case in spec.cases or [] for k in case}
    for key, entry in search.space.items():
        head = key.split(".", 1)[0]
        if head not in CONFIG_FIELDS or ("." in key and head != "method_args"):
            raise ConfigError(f"search.space.{key}", key, CONFIG_FIELDS,
                              hint="unknown config field; dotted keys only under method_args")
        if key in ("seed", "workers", "epochs", "val_fraction", "eval_every", "device") or key in fixed:
            raise ConfigError(f"search.space.{key}", key, "a hyper-parameter that is not a grid axis, case key, "
                                                          "seed, epochs, workers, device, val_fraction or eval_every")
        _space_entry(key, entry)

    metric = search.metric
    if metric.startswith(TEST_METRIC_PREFIXES):
        raise ConfigError("search.metric", metric, "a validation metric (val_knn_top1_k<k>, with val_fraction > 0)",
                          hint="test-set metrics are reported but never select hyper-parameters")
    for cell in cells:
        cfg = cell.config
        where = f"cell #{cell.index} ({', '.join(f'{k}={v}' for k, v in cell.axes.items()) or 'base'})"
        if cfg.val_fraction <= 0:
            raise ConfigError("base.val_fraction", cfg.val_fraction, "a fraction in (0, 0.5) when `search:` is given",
                              hint=f"{where}: hyper-parameters are chosen on a validation split, never on the test set")
        if metric not in validation_metrics(cfg):
            raise ConfigError("search.metric", metric, validation_metrics(cfg),
                              hint=f"a metric every epoch report carries ({where}, knn_k={cfg.knn_k})")
        if scheduler is not None:
            if cfg.eval_every <= 0:
                raise ConfigError("base.eval_every", cfg.eval_every, "an integer >= 1 with scheduler asha",
                                  hint=f"{where}: ASHA compares trials on the validation metric of evaluated epochs")
            if scheduler.grace_period > cfg.epochs:
                raise ConfigError("scheduler.grace_period", scheduler.grace_period, f"<= epochs ({cfg.epochs})",
                                  hint=where)
        for key, entry in search.space.items():
            kind, arg = _space_entry(key, entry)
            for value in corner_values(kind, arg):
                cell_config(cfg, {key: value}, field=f"search.space.{key}", hint=where)


def cell_config(base: TrialConfig, values: dict[str, Any], field: str = "search.space", hint: str = "") -> TrialConfig:
    """The cell's config with the searched values set (dotted keys reach into method_args)."""
    data = base.model_dump(mode="json")
    for key, value in values.items():
        set_dotted(data, key, copy.deepcopy(value))
    try:
        return make_config(data)
    except ConfigError as err:
        raise ConfigError(field if err.field.split(".")[0] in field else f"{field} -> {err.field}", err.value,
                          err.allowed, hint=hint) from None


def tune_domains(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from ray import tune

    make = {"loguniform": lambda a: tune.loguniform(*a), "uniform": lambda a: tune.uniform(*a),
            "randint": lambda a: tune.randint(*a), "choice": lambda a: tune.choice(a)}
    return {key: make[next(iter(entry))](next(iter(entry.values()))) for key, entry in space.items()}


def describe_space(spec: SweepSpec, num_cells: int) -> list[str]:
    """The dry run's lines about the search (space and budget)."""
    search = spec.search
    if search is None:
        return []
    seeds = len(spec.seeds) if spec.seeds else 1
    cells = num_cells // seeds
    lines = ["", f"search: {search.algorithm}, {search.mode} {search.metric} (validation), per cell "
                 f"(grid point x case x seed, listed above as trials):"]
    lines += [f"  {key}: {next(iter(entry))} {next(iter(entry.values()))}" for key, entry in search.space.items()]
    lines.append(f"budget: {cells} cell(s) x {search.num_samples} sample(s) x {seeds} seed(s) = "
                 f"{num_cells * search.num_samples} trials")
    sch = spec.scheduler
    lines.append(f"scheduler: ASHA per cell on {search.metric}, grace_period {sch.grace_period} epoch(s), "
                 f"reduction_factor {sch.reduction_factor:g}, max_t = epochs" if sch else "scheduler: none (every trial "
                 "runs all its epochs)")
    return lines


class _RandomSampler:
    """Seeded independent draws from Tune domains (the ``random`` algorithm)."""

    def __init__(self, domains: dict[str, Any], seed: int) -> None:
        import numpy as np

        self.domains = domains
        self.rng = np.random.default_rng(seed)

    def suggest(self, trial_id: str) -> dict[str, Any]:
        out = {}
        for key, domain in self.domains.items():
            value = domain.sample(random_state=self.rng)
            out[key] = value.item() if hasattr(value, "item") else value
        return out

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        pass

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass


def _searcher_class():
    from ray.tune.search import Searcher

    class CellSearch(Searcher):
        """One inner searcher per search cell; cells are served round-robin until
        each has had ``num_samples`` trials. Suggestions are complete trial items
        (``{"trial": {...}}``), the shape the grid's items have."""

        def __init__(self, cells: list[dict[str, Any]], space: dict[str, dict[str, Any]], algorithm: str,
                     num_samples: int, metric: str, mode: str, seed: int = 0) -> None:
            # Metric and mode stay off the base class: Tune would then demand the metric in
            # every report, and a trial reports validation kNN only in evaluated epochs.
            super().__init__()
            self.search_metric, self.search_mode = metric, mode
            self.cells, self.space, self.num_samples = cells, space, num_samples
            domains = tune_domains(space)
            if algorithm == "optuna":
                from ray.tune.search.optuna import OptunaSearch

                distributions = OptunaSearch.convert_search_space(domains)
                self.inner = [OptunaSearch(space=copy.deepcopy(distributions), metric=metric, mode=mode,
                                           seed=seed + i) for i in range(len(cells))]
            else:
                self.inner = [_RandomSampler(domains, seed + i) for i in range(len(cells))]
            self.issued = [0] * len(cells)
            self.owner: dict[str, int] = {}
            self.last_value: dict[str, float] = {}

        def set_search_properties(self, metric, mode, config, **spec) -> bool:
            return True  # metric and mode are the spec's; the Tuner's param_space holds no domains

        def suggest(self, trial_id: str):
            open_cells = [c for c in range(len(self.cells)) if self.issued[c] < self.num_samples]
            if not open_cells:
                return Searcher.FINISHED
            cell = min(open_cells, key=lambda c: (self.issued[c], c))
            values = self.inner[cell].suggest(trial_id)
            if values is None:
                return None
            base = self.cells[cell]
            cfg = cell_config(TrialConfig.model_validate(base["config"]), values)
            sample = self.issued[cell]
            self.issued[cell] += 1
            self.owner[trial_id] = cell
            item = {**base, "config": cfg.model_dump(), "trial_id": cfg.trial_id,
                    "index": base["index"] * self.num_samples + sample,
                    "search": {CELL_COLUMN: base["index"], METRIC_COLUMN: self.search_metric, MODE_COLUMN: self.search_mode,
                               **{f"search_sample_{k}": v for k, v in values.items()}}}
            return {"trial": item}

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            value = result.get(self.search_metric)
            if isinstance(value, (int, float)) and math.isfinite(value):  # an evaluated epoch
                self.last_value[trial_id] = float(value)
                if trial_id in self.owner:
                    self.inner[self.owner[trial_id]].on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            if trial_id not in self.owner:
                return
            result = dict(result or {})
            if not isinstance(result.get(self.search_metric), (int, float)) and trial_id in self.last_value:
                result[self.search_metric] = self.last_value[trial_id]  # stopped between evaluations
            self.inner[self.owner[trial_id]].on_trial_complete(trial_id, result, error=error)

        def save(self, checkpoint_path: str) -> None:
            import cloudpickle

            with open(checkpoint_path, "wb") as f:
                cloudpickle.dump(self.__dict__, f)

        def restore(self, checkpoint_path: str) -> None:
            import cloudpickle

            with open(checkpoint_path, "rb") as f:
                self.__dict__.update(cloudpickle.load(f))

    return CellSearch


def _scheduler_class():
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    class CellASHA(FIFOScheduler):
        """One `ASHAScheduler` per search cell (trials compete only within their cell)."""

        def __init__(self, max_epochs: dict[int, int], metric: str, mode: str, grace_period: int,
                     reduction_factor: float) -> None:
            super().__init__()  # no metric of its own: see CellSearch
            self.cells = {cell: ASHAScheduler(time_attr="epoch", metric=metric, mode=mode, max_t=epochs,
                                              grace_period=grace_period, reduction_factor=reduction_factor)
                          for cell, epochs in max_epochs.items()}

        def _of(self, trial):
            return self.cells[trial.config["trial"]["search"][CELL_COLUMN]]

        def set_search_properties(self, metric, mode, **spec) -> bool:
            return True

        def on_trial_add(self, tune_controller, trial) -> None:
            self._of(trial).on_trial_add(tune_controller, trial)

        def on_trial_result(self, tune_controller, trial, result: dict) -> str:
            decision = self._of(trial).on_trial_result(tune_controller, trial, result)
            # The final report (epoch == max_t) ends the trial anyway; ASHA's STOP there must not
            # race the trial's own end. The last epoch's report carries no validation metric
            # (that epoch is evaluated by the final evaluation), so ASHA never stops it either.
            return self.CONTINUE if result.get("kind") == "final" else decision

        def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
            self._of(trial).on_trial_complete(tune_controller, trial, result)

        def on_trial_remove(self, tune_controller, trial) -> None:
            self._of(trial).on_trial_remove(tune_controller, trial)

        def debug_string(self) -> str:
            return f"ASHA per search cell ({len(self.cells)} cells)"

    return CellASHA


def build_search(spec: SweepSpec, cells: list[dict[str, Any]]):
    """(search_alg, scheduler, total trials) for `tune.TuneConfig`."""
    search = spec.search
    searcher = _searcher_class()(cells, search.space, search.algorithm, search.num_samples, search.metric,
                                 search.mode, search.seed)
    scheduler = None
    if spec.scheduler is not None:
        max_epochs = {c["index"]: int(c["config"]["epochs"]) for c in cells}
        scheduler = _scheduler_class()(max_epochs, search.metric, search.mode, spec.scheduler.grace_period,
                                       spec.scheduler.reduction_factor)
    return searcher, scheduler, len(cells) * search.num_samples
