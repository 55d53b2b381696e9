"""The Tune side of ``search:`` and ``scheduler:``: a searcher and an ASHA per search cell.

`suite.sweep.search` checks the spec (no Ray); this module builds what
`tune.TuneConfig` takes, through Tune's public `Searcher` and `FIFOScheduler`
base classes. How cells compose with the grid is explained there.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import Searcher

from suite.results import schema
from suite.sweep.grid import PlannedTrial, TrialItem, trial_item, trial_items
from suite.sweep.search import cell_config, tune_domains
from suite.sweep.spec import SweepSpec


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


class CellSearch(Searcher):
    """One inner searcher per search cell; cells are served round-robin until
    each has had ``num_samples`` trials. Suggestions are complete trial items
    (``{"trial": TrialItem}``), the shape the grid's have: each draw is resolved here,
    on the driver, from the cell's input (``inputs``, one per cell) and the drawn values."""

    def __init__(
        self,
        cells: list[TrialItem],
        inputs: list[dict[str, Any]],
        space: dict[str, dict[str, Any]],
        algorithm: str,
        num_samples: int,
        metric: str,
        mode: str,
        seed: int = 0,
    ) -> None:
        # Metric and mode stay off the base class: Tune would then demand the metric in
        # every report, and a trial reports validation kNN only in evaluated epochs.
        super().__init__()
        self.search_metric, self.search_mode = metric, mode
        self.cells, self.inputs, self.space, self.num_samples = cells, inputs, space, num_samples
        domains = tune_domains(space)
        if algorithm == "optuna":
            from ray.tune.search.optuna import OptunaSearch

            distributions = OptunaSearch.convert_search_space(domains)
            self.inner = [
                OptunaSearch(space=copy.deepcopy(distributions), metric=metric, mode=mode, seed=seed + i)
                for i in range(len(cells))
            ]
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
        resolved = cell_config(self.inputs[cell], values)
        sample = self.issued[cell]
        self.issued[cell] += 1
        self.owner[trial_id] = cell
        item = trial_item(
            base["index"] * self.num_samples + sample,
            resolved,
            base["request"],  # workers is never searched: the cell's resources
            search={
                schema.SEARCH_CELL: base["index"],
                schema.SEARCH_METRIC: self.search_metric,
                schema.SEARCH_MODE: self.search_mode,
                **{schema.search_sample(k): v for k, v in values.items()},
            },
        )
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


class CellASHA(FIFOScheduler):
    """One `ASHAScheduler` per search cell (trials compete only within their cell)."""

    def __init__(
        self, max_epochs: dict[int, int], metric: str, mode: str, grace_period: int, reduction_factor: float
    ) -> None:
        super().__init__()  # no metric of its own: see CellSearch
        self.cells = {
            cell: ASHAScheduler(
                time_attr="epoch",
                metric=metric,
                mode=mode,
                max_t=epochs,
                grace_period=grace_period,
                reduction_factor=reduction_factor,
            )
            for cell, epochs in max_epochs.items()
        }

    def _of(self, trial):
        return self.cells[trial.config["trial"]["search"][schema.SEARCH_CELL]]

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


def build_search(spec: SweepSpec, trials: list[PlannedTrial]):
    """(search_alg, scheduler, total trials) for `tune.TuneConfig`; every planned trial is a search cell."""
    search = spec.search
    cells = trial_items(spec, trials)
    searcher = CellSearch(
        cells,
        [t.inputs for t in trials],
        search.space,
        search.algorithm,
        search.num_samples,
        search.metric,
        search.mode,
        search.seed,
    )
    scheduler = None
    if spec.scheduler is not None:
        max_epochs = {c["index"]: c["resolved"].config.epochs for c in cells}
        scheduler = CellASHA(
            max_epochs, search.metric, search.mode, spec.scheduler.grace_period, spec.scheduler.reduction_factor
        )
    return searcher, scheduler, len(cells) * search.num_samples
