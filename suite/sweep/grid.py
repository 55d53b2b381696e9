"""Expand a sweep spec into resolved trial configs, and size their Ray requests.

Everything here is pure (no Ray calls), so `--dry-run` and the early checks of
a real run share one code path and fail before any trial starts. Each trial's
config is resolved here, once (`suite.config.resolve_config`); its `TrialItem`
carries that `ResolvedConfig` to the Ray worker, which never resolves it again.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from suite.config import CONFIG_FIELDS, ResolvedConfig, TrialConfig, resolve_config, set_dotted
from suite.config.load import MAPPING_FIELDS, config_key_error
from suite.core.errors import ConfigError
from suite.core.tables import text_table
from suite.sweep.spec import SweepSpec


@dataclass(frozen=True)
class PlannedTrial:
    """One point of the grid: its position, its varied values, its resolved config, its case (index
    into ``spec.cases``, None without cases) and the mapping that was resolved (base, grid point and
    case: where a searcher's draws start from)."""

    index: int
    axes: dict[str, Any]
    resolved: ResolvedConfig
    case: int | None = None
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> TrialConfig:
        return self.resolved.config

    @property
    def trial_id(self) -> str:
        return self.resolved.trial_id


@dataclass(frozen=True)
class TrialRequest:
    """Ray resources of one trial: the Tune trial's own bundle plus, for W > 1,
    the W Ray Train worker bundles it launches (``workers`` is the config's, sized here)."""

    workers: int
    tune_bundle: dict[str, float]
    worker_bundle: dict[str, float] = field(default_factory=dict)

    def bundles(self) -> list[dict[str, float]]:
        return [self.tune_bundle] + ([self.worker_bundle] * self.workers if self.workers > 1 else [])

    def total(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for bundle in self.bundles():
            for key, value in bundle.items():
                out[key] = out.get(key, 0.0) + value
        return out


class TrialItem(TypedDict):
    """What the Tune trial of one planned (or searched) trial gets, as ``config["trial"]``: its position, its
    resolved config and its resources, plus, for a searched trial, its cell and draw (the search columns
    of its row). Tune keeps it with the trial (the experiment state and the Tuner's param space that
    ``--resume`` restores included) and hands the worker the resolved config as it is.

    A plain dict on purpose: Tune swaps the objects of a param space for placeholders and names a trial
    before it swaps them back, so the name (the trial id, also the resolved config's) is a plain value."""

    index: int
    trial_id: str
    resolved: ResolvedConfig
    request: TrialRequest
    search: NotRequired[dict[str, Any]]


def trial_item(
    index: int, resolved: ResolvedConfig, request: TrialRequest, search: dict[str, Any] | None = None
) -> TrialItem:
    item = TrialItem(index=index, trial_id=resolved.trial_id, resolved=resolved, request=request)
    if search is not None:
        item["search"] = search
    return item


def _validate_key(key: str, where: str) -> None:
    """A grid axis or case key: a config field, or ``<mapping field>.<name>`` (``method_args.temperature``,
    ``augment.flip_p``); ``where`` prefixes the field."""
    head = key.split(".", 1)[0]
    if head not in CONFIG_FIELDS:
        raise config_key_error(key, key, f"{where}.")
    if "." in key and head not in MAPPING_FIELDS:
        raise ConfigError(
            f"{where}.{key}", key, f"plain config fields, or a dotted key under {', '.join(MAPPING_FIELDS)}"
        )


def _validate_cases(spec: SweepSpec, grid: dict[str, list[Any]]) -> tuple[list[dict[str, Any]], list[list[int] | None]]:
    """Each case's keys are checked like grid axes; a case may not also set a grid axis,
    the seed (when ``seeds`` is given) or ``workers`` (when ``resources.workers`` is).

    A case's ``seeds`` list replaces the spec's ``seeds`` for that case (e.g. more
    seeds for the baselines a verdict pairs against); returns (overrides, seeds per case).
    """
    cases = [dict(c) for c in spec.cases or []]
    case_seeds: list[list[int] | None] = []
    for i, case in enumerate(cases):
        seeds = case.pop("seeds", None)
        if seeds is not None:
            _validate_case_seeds(spec, grid, case, i, seeds)
        case_seeds.append(seeds)
        for key, value in case.items():
            _validate_key(key, f"cases[{i}]")
            if key in grid:
                raise ConfigError(
                    f"cases[{i}].{key}",
                    value,
                    "a field that is not a grid axis",
                    hint=f"`{key}` is a grid axis; set it in the grid or in the cases, not both",
                )
            if key == "seed" and spec.seeds is not None:
                raise ConfigError(f"cases[{i}].seed", value, "unset when `seeds` is given (one seed axis)")
            if key == "workers" and spec.resources.workers is not None:
                raise ConfigError(
                    f"cases[{i}].workers", value, f"unset when resources.workers is given ({spec.resources.workers})"
                )
    return cases, case_seeds


def _validate_case_seeds(spec: SweepSpec, grid: dict[str, list[Any]], case: dict[str, Any], i: int, seeds: Any) -> None:
    where = f"cases[{i}].seeds"
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        raise ConfigError(where, seeds, "a non-empty list of integer seeds >= 0")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(where, seeds, "distinct seeds")
    if "seed" in case:
        raise ConfigError(where, seeds, "unset when the case sets `seed` (one seed axis)")
    if "seed" in grid:
        raise ConfigError(where, seeds, "unset when grid has a `seed` axis (one seed axis)")
    if spec.search is not None:
        raise ConfigError(where, seeds, "unset in a searched sweep (every search cell runs the spec's `seeds`)")


def _case_field(case: dict[str, Any], field_name: str) -> str | None:
    """The case key an error's field comes from (``method_args.x`` errors name their key)."""
    if field_name in case:
        return field_name
    if field_name == "method_args" and any(k.startswith("method_args.") for k in case):
        return next(k for k in case if k.startswith("method_args."))
    return None


def describe_case(case: dict[str, Any]) -> str:
    """``key=value, ...`` of one case, for messages and the dry-run listing."""
    return ", ".join(f"{k}={v}" for k, v in case.items())


def _base_with_workers(spec: SweepSpec) -> dict[str, Any]:
    base = copy.deepcopy(spec.base)
    w = spec.resources.workers
    if w is not None:
        if "workers" in (spec.grid or {}):
            raise ConfigError("resources.workers", w, "unset when grid has a `workers` axis")
        if "workers" in base and base["workers"] != w:
            raise ConfigError("resources.workers", w, f"unset or equal to base.workers ({base['workers']})")
        base["workers"] = w
    return base


def expand_grid(spec: SweepSpec) -> list[PlannedTrial]:
    """The cartesian product of the grid axes (in spec order) times the seeds,
    each resolved by `suite.config.resolve_config` (the one resolution of a sweep's trial)."""
    grid = dict(spec.grid or {})
    for axis in grid:
        _validate_key(axis, "grid")
    if spec.seeds is not None and "seed" in grid:
        raise ConfigError("seeds", spec.seeds, "unset when grid has a `seed` axis (one seed axis)")
    cases, case_seeds = _validate_cases(spec, grid)
    base = _base_with_workers(spec)

    # Order: grid axes (spec order), then the case, then the seed -- so a spec without
    # cases expands exactly as before (same indices, same trial ids). A case's own
    # `seeds` replaces the spec's for that case.
    axes = list(grid)
    spec_seeds: list[int | None] = list(spec.seeds) if spec.seeds is not None else [None]
    case_choices: list[tuple[int | None, list[int | None]]] = (
        [(i, list(s) if s is not None else spec_seeds) for i, s in enumerate(case_seeds)]
        if cases
        else [(None, spec_seeds)]
    )
    trials: list[PlannedTrial] = []
    seen: dict[str, int] = {}
    combos = (
        (values, case_index, seed)
        for values in itertools.product(*(grid[a] for a in axes))
        for case_index, seeds in case_choices
        for seed in seeds
    )
    for index, (values, case_index, seed) in enumerate(combos):
        point = dict(zip(axes, values))
        if seed is not None:
            point["seed"] = seed
        case = cases[case_index] if case_index is not None else {}
        data = copy.deepcopy(base)
        for key, value in {**point, **case}.items():
            set_dotted(data, key, copy.deepcopy(value))
        try:
            resolved = resolve_config(data)
        except ConfigError as err:
            where = ", ".join(f"{k}={v}" for k, v in point.items()) or "base"
            key = _case_field(case, err.field)
            if key is not None:
                raise ConfigError(
                    f"cases[{case_index}].{key}",
                    err.value,
                    err.allowed,
                    hint=f"case #{case_index} ({describe_case(case)}), in trial #{index} ({where})",
                ) from None
            if case_index is not None:
                where += f", case #{case_index}"
            raise ConfigError(err.field, err.value, err.allowed, hint=f"in trial #{index} ({where})") from None
        if resolved.trial_id in seen:
            what = dict(point, case=case_index) if case_index is not None else point
            raise ConfigError(
                "cases" if case_index is not None else "grid",
                what,
                "distinct trials",
                hint=f"same config as trial #{seen[resolved.trial_id]}",
            )
        seen[resolved.trial_id] = index
        trials.append(PlannedTrial(index, point, resolved, case_index, data))
    return trials


def trial_request(spec: SweepSpec, cfg: TrialConfig) -> TrialRequest:
    r = spec.resources
    worker = {"CPU": r.cpus_per_worker, "GPU": r.gpus_per_worker}
    worker = {k: float(v) for k, v in worker.items() if v > 0}
    if cfg.workers == 1:
        # The Tune trial trains in-process and needs a non-empty bundle.
        return TrialRequest(1, worker or {"CPU": 1.0})
    return TrialRequest(cfg.workers, dict(r.driver_resources), worker)


def trial_items(spec: SweepSpec, trials: list[PlannedTrial]) -> list[TrialItem]:
    """What the trainable gets of each planned trial (with `search:`, of each search cell)."""
    return [trial_item(t.index, t.resolved, trial_request(spec, t.config)) for t in trials]


def check_fits_cluster(
    spec: SweepSpec, trials: list[PlannedTrial], cluster: dict[str, float], nodes: list[dict[str, float]]
) -> None:
    """Fail before scheduling when one trial could never run: Ray would wait
    for it forever (Ray Train even retries worker-group startup without end).

    ``cluster`` is the cluster's total resources, ``nodes`` each alive node's.
    """
    for trial in trials:
        req = trial_request(spec, trial.config)
        for key, need in req.total().items():
            have = float(cluster.get(key, 0.0))
            if need > have + 1e-9:
                field_name = {"CPU": "resources.cpus_per_worker", "GPU": "resources.gpus_per_worker"}.get(
                    key, "resources.driver_resources"
                )
                value = {"CPU": spec.resources.cpus_per_worker, "GPU": spec.resources.gpus_per_worker}.get(
                    key, spec.resources.driver_resources
                )
                raise ConfigError(
                    field_name,
                    value,
                    f"a request that fits the cluster ({have:g} {key} in total)",
                    hint=f"trial {trial.trial_id} needs {need:g} {key} for {req.workers} worker(s); "
                    "set resources.check_cluster: false on an autoscaling cluster",
                )
        for bundle in req.bundles():
            if nodes and not any(all(node.get(k, 0.0) + 1e-9 >= v for k, v in bundle.items()) for node in nodes):
                raise ConfigError(
                    "resources",
                    bundle,
                    "a per-worker bundle that fits on one node",
                    hint=f"largest node: {max(nodes, key=lambda n: n.get('CPU', 0))}",
                )


def format_plan(spec: SweepSpec, trials: list[PlannedTrial]) -> str:
    """The `--dry-run` output: one line per trial, then what Ray will be asked for."""
    axes = list(trials[0].axes) if trials else []
    with_cases = bool(spec.cases)
    headers = ["#", "trial_id", *axes, *(["case"] if with_cases else []), "workers"]
    rows = [
        [
            str(t.index),
            t.trial_id,
            *(str(t.axes[a]) for a in axes),
            *([str(t.case)] if with_cases else []),
            str(t.config.workers),
        ]
        for t in trials
    ]
    title = f"sweep {spec.name}: {len(trials)} trial(s)"
    if spec.search is not None:
        title = (
            f"sweep {spec.name}: {len(trials)} search cell(s) (grid point x case x seed) x "
            f"{spec.search.num_samples} sample(s) = {len(trials) * spec.search.num_samples} trial(s)"
        )
    lines = [title, text_table(headers, rows)]
    if with_cases:
        lines.append("")
        lines.append("cases (overrides crossed with the grid):")
        lines += [f"  case {i}: {describe_case(c)}" for i, c in enumerate(spec.cases or [])]

    requests = {t.config.workers: trial_request(spec, t.config) for t in trials}
    lines.append("")
    lines.append("resources per trial:")
    for w, req in sorted(requests.items()):
        if w == 1:
            lines.append(f"  workers=1: one Tune trial holding {_fmt(req.tune_bundle)} (trains in-process)")
        else:
            lines.append(
                f"  workers={w}: Tune driver {_fmt(req.tune_bundle)} + Ray Train {w} x {_fmt(req.worker_bundle)}"
                f" (total {_fmt(req.total())}; {'NCCL' if spec.resources.gpus_per_worker > 0 else 'gloo'})"
            )
    lines.append(
        f"max concurrent trials: {spec.max_concurrent_trials or 'as resources allow'}; "
        f"retries per trial: {spec.retries}"
    )
    lines.append(f"storage (checkpoints, Tune state): {spec.storage_path()}/{spec.name}")
    lines.append(f"results tables: {spec.results_path()}")
    from suite.sweep.search import describe_space

    lines += describe_space(spec, len(trials))
    if spec.tracking is not None:
        from suite.tracking.spec import describe_tracking

        lines.append(f"tracking: {describe_tracking(spec.tracking)}")
    return "\n".join(lines)


def _fmt(bundle: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in bundle.items()) + "}"
