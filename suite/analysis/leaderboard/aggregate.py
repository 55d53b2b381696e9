"""Trials -> one leaderboard row per experimental group.

Why: a single trial is noise; the leaderboard reports mean ± std over seeds of
every group of otherwise-equal settings, the change against the ``none``
baseline, and how many epochs each group needs to reach a fraction of the
baseline's final accuracy (the paper's convergence-speed claim).

Definitions (also in the README):

* group keys: ``dataset, backbone, method, intervention, epochs`` plus every
  other config column that takes more than one value *within* one combination
  of those five among completed trials (a column that only changes with the
  method, such as ``optimizer`` or ``method_args``, adds no information).
  ``--group-by`` replaces the whole list.
* ``std`` uses ddof=1 and is NaN for n=1; ``n`` counts completed trials; metric
  means skip NaN values.
* ``delta_<m>``: mean of the group minus mean of the baseline group (the row
  with ``intervention == "none"`` and all other keys equal; if none matches, a
  unique baseline equal on all keys except the intervention-derived
  ``weight_decay``), for the headline metrics (accuracies and ``--metric``).
  ``delta_<m>_ci_lo/_ci_hi``: its 95% t-interval over seeds — paired by seed
  when group and baseline have the same seeds, else Welch's — NaN with fewer
  than 2 seeds (pairs) and on the baseline row itself; ``delta_<m>_n`` the seeds
  (pairs; unpaired: the smaller group) behind it, ``delta_<m>_paired``, and
  ``delta_<m>_significant`` (the interval exists and excludes 0).
* ``gain_<m>_*``: where the trials carry ``<m>_init`` (the untrained network's
  score), mean/std/95% t-interval/n over seeds of ``<m> - <m>_init``, i.e. what
  training added over the floor a random network already reaches.
* ``baseline_differs``: the settings outside the group keys in which a group's
  trials differ from its baseline's (``lr 0.1 vs 0.3; warmup_epochs 4 vs 1``;
  NaN when none, or for the baseline itself): an intervention that carries
  its own settings (a sweep's ``cases``) is compared with a baseline that
  differs in those too, and Δ and convergence mix both effects.
* convergence: per trial, the first epoch at which its curve column reaches
  ``target * baseline mean final value``; per group the mean over the seeds
  that reached it (``conv_reached`` counts them), NaN if none did;
  ``conv_ratio`` = group epoch / baseline epoch. Only trained epochs (>= 1)
  count; ``conv_init_reached`` counts the seeds whose epoch-0 row (the
  untrained network) already reaches the threshold.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from suite.analysis.load import TRIAL_KEY
from suite.core.errors import ConfigError
from suite.core.stats import difference_interval, t_interval

CORE_KEYS = ["dataset", "backbone", "method", "intervention", "epochs"]
BASELINE = "none"
ACCURACY_COLUMNS = ["knn_top1_k200", "knn_top1_k20", "linear_top1"]
NORM_COLUMNS = ["emb_norm_mean", "feat_norm_mean"]
DEFAULT_CURVE_COLUMN = "knn_top1_k200"
# Derived from the intervention (``wd:x`` sets weight_decay), so ignored when no exact baseline matches.
INTERVENTION_DERIVED = ["weight_decay"]
LOWER_IS_BETTER = {"final_loss", "wall_time_s", "epoch_time_s"}
# Columns that are not experimental settings: identity, bookkeeping, outcomes, and
# operational knobs that should not change results.
NON_CONFIG = {
    "results_dir",
    "trial_id",
    "sweep",
    "status",
    "error",
    "notes",
    "seed",
    "name",
    "epochs_completed",
    "final_loss",
    "wall_time_s",
    "images_per_s",
    "epoch_time_s",
    "device",
    "workers",
    "num_threads",
    "checkpoint_every",
    "eval_every",
    "eval_batch_size",
    "channels_last",
    "trial_dir",
    "path",
    "hostname",
    "host",
    "started_at",
    "finished_at",
    "git_commit",
}
_OUTCOME_PATTERN = re.compile(
    r"^(val_)?(knn|linear)_top|(^|_)norm_|_auroc$|_spearman$|_time|_at$|_path$|_dir$|_ci_(lo|hi)$|_note$"
)
_DIAGNOSTIC_PATTERN = re.compile(r"^(emb|feat|proj)_.*(_auroc|_spearman)$|^test_(emb|feat|proj)_norm_")
INIT_SUFFIX = "_init"  # trials columns of the untrained network (epoch 0), e.g. knn_top1_k200_init


@dataclass
class Leaderboard:
    """The aggregated table plus what a renderer needs to explain it."""

    table: pd.DataFrame  # one row per group; machine-readable (mean/std/n columns)
    failures: pd.DataFrame  # trials whose status is not "completed", with their errors
    trials: pd.DataFrame  # completed trials: keys, seed, per-trial conv_epoch
    group_keys: list[str]
    metric: str
    curve_column: str | None  # curves column used for convergence (None: no curves)
    target: float
    expected_n: int
    metric_columns: list[str]  # columns aggregated as <c>_mean / <c>_std
    higher_is_better: bool


def config_columns(trials: pd.DataFrame) -> list[str]:
    """Columns that describe a trial's settings (not identity, outcomes or timings)."""
    return [
        c
        for c in trials.columns
        if c not in NON_CONFIG and not _OUTCOME_PATTERN.search(c) and not c.startswith("search_")
    ]  # search bookkeeping (suite.analysis.leaderboard.search)


def _hashable(series: pd.Series) -> pd.Series:
    """Lists/arrays/dicts (knn_k from Parquet) and JSON strings (method_args from CSV) become
    canonical JSON strings, so equal settings group together whichever format they came from."""
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return series

    def convert(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            v = v.tolist()
        if isinstance(v, str) and v[:1] in ("[", "{"):
            try:
                v = json.loads(v)
            except ValueError:
                return v
        return json.dumps(v, sort_keys=True, default=str) if isinstance(v, (list, tuple, dict)) else v

    return series.map(convert)


def detect_group_keys(completed: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Core keys plus config columns that vary within a combination of the core keys
    (minus ``exclude``: the hyper-parameters a search chose per cell)."""
    core = [k for k in CORE_KEYS if k in completed.columns]
    extra = []
    for column in config_columns(completed):
        if column in core or column in exclude:
            continue
        values = _hashable(completed[column])
        cells = values.groupby([completed[k] for k in core], dropna=False).nunique(dropna=False)
        if (cells > 1).any():
            extra.append(column)
    return core + extra


def _numeric_columns(trials: pd.DataFrame) -> list[str]:
    return [
        c
        for c in trials.columns
        if pd.api.types.is_numeric_dtype(trials[c]) and not pd.api.types.is_bool_dtype(trials[c])
    ]


def metric_choices(trials: pd.DataFrame) -> list[str]:
    """Numeric outcome columns a leaderboard can rank by."""
    return [
        c
        for c in _numeric_columns(trials)
        if c in ACCURACY_COLUMNS
        or c in LOWER_IS_BETTER
        or c == "images_per_s"
        or (c not in NON_CONFIG and _OUTCOME_PATTERN.search(c))
    ]


def _validate(trials: pd.DataFrame, metric: str, target: float, group_by: Sequence[str] | None) -> None:
    if metric not in metric_choices(trials):
        raise ConfigError("metric", metric, metric_choices(trials) or ACCURACY_COLUMNS)
    if isinstance(target, bool) or not (isinstance(target, (int, float)) and 0 < target <= 1):
        raise ConfigError("target", target, "a fraction in (0, 1]")
    if group_by is not None:
        bad = [c for c in group_by if c not in trials.columns or c in TRIAL_KEY or c == "status"]
        if bad or not group_by:
            raise ConfigError("group_by", list(group_by), config_columns(trials))


def _baseline_rows(table: pd.DataFrame, keys: list[str]) -> pd.Series:
    """For each group row, the index label of its baseline row (NaN if none)."""
    result = pd.Series(np.nan, index=table.index)
    if "intervention" not in keys:
        return result
    base = table[table["intervention"] == BASELINE]
    for match_on in (
        [k for k in keys if k != "intervention"],
        [k for k in keys if k != "intervention" and k not in INTERVENTION_DERIVED],
    ):
        todo = result.index[result.isna()]
        if len(todo) == 0:
            break
        if match_on:
            unique_base = base.drop_duplicates(match_on, keep=False)
        else:  # only the intervention varies: a single baseline row serves every group
            unique_base = base if len(base) == 1 else base.iloc[0:0]
        left = table.loc[todo, match_on].reset_index(names="_row")
        right = unique_base[match_on].reset_index(names="_base")
        merged = left.merge(right, on=match_on, how="left") if match_on else left.merge(right, how="cross")
        result.loc[merged["_row"].to_numpy()] = merged["_base"].to_numpy()
    return result


def first_epoch_reaching(curves: pd.DataFrame, thresholds: pd.DataFrame, column: str) -> pd.Series:
    """Per trial (indexed like ``thresholds``), the first trained epoch (>= 1) with ``curves[column] >= threshold``;
    NaN if never. The epoch-0 row (the untrained network) is not a convergence epoch: see ``reached_at_init``."""
    merged = curves[TRIAL_KEY + ["epoch", column]].merge(thresholds, on=TRIAL_KEY, how="inner")
    reached = merged[(merged[column] >= merged["threshold"]) & (merged["epoch"] >= 1)]
    first = reached.groupby(TRIAL_KEY)["epoch"].min().rename("conv_epoch")
    return thresholds.merge(first, left_on=TRIAL_KEY, right_index=True, how="left")["conv_epoch"].set_axis(
        thresholds.index
    )


def reached_at_init(curves: pd.DataFrame, thresholds: pd.DataFrame, column: str) -> pd.Series:
    """Per trial, whether its epoch-0 row (the untrained network) already reaches the threshold: then the
    target is below the floor a random network reaches, and "epochs to target" says little."""
    at_zero = curves.loc[curves["epoch"] == 0, TRIAL_KEY + [column]].drop_duplicates(TRIAL_KEY)
    merged = at_zero.merge(thresholds, on=TRIAL_KEY, how="right")
    return (merged[column] >= merged["threshold"]).set_axis(thresholds.index)


def _display_order(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Sort by keys with the baseline first within each setting."""
    order = table.assign(_not_base=(table["intervention"] != BASELINE) if "intervention" in table else False)
    sort_by = (
        [k for k in keys if k != "intervention"] + ["_not_base"] + (["intervention"] if "intervention" in keys else [])
    )
    return order.sort_values(sort_by, kind="stable", na_position="last").drop(columns="_not_base")


def _setting_text(values: pd.Series) -> str:
    """The distinct values of one setting in a group, as text (``0.1``, ``0.1/0.3``, ``—`` for unset)."""

    def one(v: Any) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "—"
        return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)

    return "/".join(sorted({one(v) for v in values}))


def _baseline_differences(completed: pd.DataFrame, base: pd.Series, keys: list[str]) -> list[str | float]:
    """Per group (``base``: group -> its baseline group), the settings outside the group keys whose
    values differ between the group's trials and its baseline's, as ``name own vs baseline``
    (NaN: no baseline, the baseline itself, or no difference; NaN survives a CSV round trip)."""
    columns = [
        c
        for c in config_columns(completed)
        if c not in keys and c != "intervention" and c not in INTERVENTION_DERIVED and not c.startswith("_")
    ]
    values = {c: _hashable(completed[c]) for c in columns}
    out = []
    for group, base_group in base.items():
        if pd.isna(base_group) or int(base_group) == group:
            out.append(np.nan)
            continue
        own, theirs = completed["_group"] == group, completed["_group"] == int(base_group)
        diffs = []
        for c in columns:
            mine, baseline = _setting_text(values[c][own]), _setting_text(values[c][theirs])
            if mine != baseline:
                diffs.append(f"{c} {mine} vs {baseline}")
        out.append("; ".join(diffs) or np.nan)
    return out


def _planned_counts(trials: pd.DataFrame, table: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """Per group: its trials of any status but ``stopped`` (a scheduler's early stop is not a
    missing seed), so a group short of its own planned seeds is flagged, while arms run on
    different numbers of seeds on purpose (a sweep case's own ``seeds``) are not."""
    counted = trials[trials["status"] != "stopped"].copy()
    for k in keys:
        counted[k] = _hashable(counted[k])
    sizes = counted.groupby(keys, dropna=False).size().rename("_planned").reset_index()
    merged = table[keys].merge(sizes, on=keys, how="left")  # merge matches NaN keys with NaN
    return np.maximum(merged["_planned"].fillna(0).to_numpy(dtype=np.int64), table["n"].to_numpy())


def _add_delta_intervals(table: pd.DataFrame, completed: pd.DataFrame, base: pd.Series, column: str) -> None:
    """``delta_<column>`` and its ``_ci_lo/_ci_hi/_n/_paired/_significant`` for every group with a
    baseline, all from one ``difference_interval`` per group (a loop over groups, not samples), so
    the estimate always sits inside its interval (paired on shared seeds, the difference of means is
    not the paired estimate when the baseline ran extra seeds)."""
    values = {g: sub[column].to_numpy(dtype=float) for g, sub in completed.groupby("_group")}
    seeds = {g: sub["seed"].to_numpy() for g, sub in completed.groupby("_group")} if "seed" in completed else {}
    lo, hi = np.full(len(table), np.nan), np.full(len(table), np.nan)
    delta = table[f"delta_{column}"].to_numpy(dtype=float).copy()
    n = np.zeros(len(table), dtype=np.int64)
    paired, significant = np.zeros(len(table), dtype=bool), np.zeros(len(table), dtype=bool)
    for i, (group, base_group) in enumerate(base.items()):
        if pd.isna(base_group) or int(base_group) == group:  # no baseline, or the baseline itself
            continue
        interval = difference_interval(
            values[group], values[int(base_group)], seeds.get(group), seeds.get(int(base_group))
        )
        delta[i] = interval.estimate  # paired on shared seeds: the mean per-seed difference
        lo[i], hi[i], n[i] = interval.lo, interval.hi, interval.n
        paired[i], significant[i] = interval.paired, interval.significant
    table[f"delta_{column}"] = delta
    table[f"delta_{column}_ci_lo"], table[f"delta_{column}_ci_hi"] = lo, hi
    table[f"delta_{column}_n"], table[f"delta_{column}_paired"] = n, paired
    table[f"delta_{column}_significant"] = significant


def _add_gain_over_init(table: pd.DataFrame, completed: pd.DataFrame, column: str, init: str) -> None:
    """``gain_<column>_mean/_std/_ci_lo/_ci_hi/_n``: per-trial final minus untrained score, over seeds."""
    gain = (completed[column] - completed[init]).groupby(completed["_group"])
    intervals = {g: t_interval(sub.to_numpy(dtype=float)) for g, sub in gain}
    table[f"gain_{column}_mean"] = [intervals[g].estimate for g in table.index]
    table[f"gain_{column}_std"] = gain.std().reindex(table.index).astype(float)
    table[f"gain_{column}_ci_lo"] = [intervals[g].lo for g in table.index]
    table[f"gain_{column}_ci_hi"] = [intervals[g].hi for g in table.index]
    table[f"gain_{column}_n"] = [intervals[g].n for g in table.index]


def build_leaderboard(
    trials: pd.DataFrame,
    curves: pd.DataFrame | None = None,
    *,
    metric: str = "knn_top1_k200",
    target: float = 0.9,
    group_by: Sequence[str] | None = None,
    searched: Sequence[str] = (),
) -> Leaderboard:
    """Aggregate completed trials per group; failed/running trials go to ``failures``
    (trials a search's scheduler stopped early are neither). ``searched``: config
    columns a search chose per cell, left out of the detected group keys."""
    _validate(trials, metric, target, group_by)
    completed_mask = trials["status"] == "completed"
    completed = trials[completed_mask].reset_index(drop=True)
    keys = list(group_by) if group_by is not None else detect_group_keys(completed, searched)
    for k in keys:
        completed[k] = _hashable(completed[k])

    fail_cols = (
        TRIAL_KEY + ["status"] + [k for k in keys if k in trials] + [c for c in ("seed", "error") if c in trials]
    )
    failures = trials.loc[
        ~completed_mask & (trials["status"] != "stopped"), list(dict.fromkeys(fail_cols))
    ].reset_index(drop=True)
    if "error" in failures:
        failures["error"] = [("" if pd.isna(e) else str(e)) for e in failures["error"]]

    curve_column = None
    if curves is not None and not curves.empty:
        curve_column = (
            metric
            if metric in curves.columns
            else (DEFAULT_CURVE_COLUMN if DEFAULT_CURVE_COLUMN in curves.columns else None)
        )
    numeric = set(_numeric_columns(completed))
    metric_columns = [c for c in ACCURACY_COLUMNS if c in numeric]
    for c in [metric, curve_column]:
        if c is not None and c in numeric and c not in metric_columns:
            metric_columns.append(c)
    metric_columns += [
        c
        for c in completed.columns
        if c in numeric
        and c not in metric_columns
        and (c in NORM_COLUMNS or _DIAGNOSTIC_PATTERN.search(c))
        and completed[c].notna().any()
    ]

    higher = metric not in LOWER_IS_BETTER
    completed["_group"] = completed.groupby(keys, dropna=False, sort=True).ngroup()
    by_group = completed.groupby("_group")
    table = by_group[keys].first()
    table["n"] = by_group.size()
    stats = by_group[metric_columns].agg(["mean", "std"])  # pandas std: ddof=1, NaN for n=1
    for c in metric_columns:
        table[f"{c}_mean"] = stats[(c, "mean")].astype(float)
        table[f"{c}_std"] = stats[(c, "std")].astype(float)
    table = table.copy()  # one block again after the per-column inserts (no PerformanceWarning)
    table["n_expected"] = _planned_counts(trials, table, keys)
    table["n_short"] = table["n"] < table["n_expected"]
    expected_n = int(table["n_expected"].max()) if len(table) else 0

    base = _baseline_rows(table, keys)
    table["baseline_differs"] = _baseline_differences(completed, base, keys)
    has_base = base.notna()
    base_idx = base[has_base].astype(int).to_numpy()

    def against_baseline(column: str, op) -> pd.Series:
        out = pd.Series(np.nan, index=table.index)
        out[has_base] = op(table.loc[has_base, column].to_numpy(), table.loc[base_idx, column].to_numpy())
        return out

    for c in metric_columns:
        if c in ACCURACY_COLUMNS or c == metric:
            table[f"delta_{c}"] = against_baseline(f"{c}_mean", np.subtract)
            _add_delta_intervals(table, completed, base, c)
    for c in ACCURACY_COLUMNS:
        init = f"{c}{INIT_SUFFIX}"
        if c in numeric and init in numeric and completed[init].notna().any():
            _add_gain_over_init(table, completed, c, init)

    table, completed = table.copy(), completed.copy()  # consolidate after the delta / gain columns
    table["conv_threshold"] = np.nan
    completed["conv_epoch"] = np.nan
    if curve_column is not None and len(table):
        baseline_final = against_baseline(f"{curve_column}_mean", lambda own, base_value: base_value)
        table["conv_threshold"] = target * baseline_final
        thresholds = completed[TRIAL_KEY].assign(threshold=completed["_group"].map(table["conv_threshold"]))
        completed["conv_epoch"] = first_epoch_reaching(curves, thresholds, curve_column)
        completed["conv_at_init"] = reached_at_init(curves, thresholds, curve_column)
    else:
        completed["conv_at_init"] = False
    table["conv_init_reached"] = completed.groupby("_group")["conv_at_init"].sum().astype(int)
    conv = completed.groupby("_group")["conv_epoch"]
    table["conv_epoch_mean"] = conv.mean().astype(float)
    table["conv_epoch_std"] = conv.std().astype(float)
    table["conv_reached"] = conv.count()
    table["conv_ratio"] = against_baseline("conv_epoch_mean", np.divide)

    scope = [table[k] for k in ("dataset", "backbone") if k in keys]
    col = table[f"{metric}_mean"]
    reducer = "max" if higher else "min"
    best_value = col.groupby(scope, dropna=False).transform(reducer) if scope else col.agg(reducer)
    table["best"] = col.notna() & (col == best_value)
    table = _display_order(table, keys).reset_index(drop=True)
    # Plots always split by method and intervention, even under a --group-by without them.
    plot_keys = [k for k in ("method", "intervention") if k not in keys]
    per_trial = completed[TRIAL_KEY + keys + plot_keys + (["seed"] if "seed" in completed else []) + ["conv_epoch"]]
    return Leaderboard(
        table=table,
        failures=failures,
        trials=per_trial,
        group_keys=keys,
        metric=metric,
        curve_column=curve_column,
        target=float(target),
        expected_n=expected_n,
        metric_columns=metric_columns,
        higher_is_better=higher,
    )
