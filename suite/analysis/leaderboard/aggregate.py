"""Trials -> one leaderboard row per experimental group.

Why: a single trial is noise; the leaderboard reports mean ± std over seeds of
every group of otherwise-equal settings, the change against the ``none``
baseline with its interval, the gain over the untrained network, and which arm
reaches its baseline's target first (the claims' C4/C5 rule, per seed pair).

Definitions (stated in the docs too):

* group keys: ``dataset, backbone, method, intervention, epochs`` plus every
  other *science* column (`suite.results.schema.role`) that takes more than one
  value within one combination of those five among completed trials. Run
  settings never make groups. ``--group-by`` replaces the whole list.
* ``std`` uses ddof=1 and is NaN for n=1; ``n`` counts completed trials.
* baseline: a group's trials are paired with their baselines by the claims' rule
  (`suite.analysis.compare.baseline_pairs`: the ``none`` trial of the same seed
  and science, protocol aside; across seeds when no seed matches); the group of
  those baselines, when it is one group, is the group's baseline.
* ``delta_<m>``: the group's mean minus the baseline's, with its 95% interval
  (`suite.core.stats.difference_interval`: paired on shared seeds, else Welch),
  ``_n``, ``_paired``, ``_significant``; NaN on the baseline row itself.
* ``gain_<m>_*``: mean/std/95% t-interval/n over seeds of ``<m> - <m>_init``
  (the same trial untrained, epoch 0).
* ``conv_<loss|knn>_faster/_slower/_tied/_censored``: over the group's (arm,
  baseline) seed pairs, which reaches the baseline's target first
  (`suite.analysis.compare.race`).
* ``baseline_differs``: the science outside the group keys in which a group's
  trials differ from its baseline's (e.g. an arm's own ``lr``): Δ then mixes
  their effect with the intervention's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from methods.errors import suggestion
from suite.analysis import compare
from suite.analysis.claims.context import trial_key
from suite.analysis.load import TRIAL_KEY
from suite.core.errors import ConfigError
from suite.core.stats import difference_interval, t_interval
from suite.results import schema

CORE_KEYS = [schema.DATASET, schema.BACKBONE, schema.METHOD, schema.INTERVENTION, schema.EPOCHS]
BASELINE = compare.BASELINE
NORM_COLUMNS = [schema.train_norm("emb", "mean"), schema.train_norm("feat", "mean")]
# Science columns that never make a group: the per-trial label and the unit of replication.
NOT_GROUPING = {schema.NAME, schema.SEED}


@dataclass
class Leaderboard:
    """The aggregated table plus what a renderer needs to explain it."""

    table: pd.DataFrame  # one row per group, in rank order; machine-readable (mean/std/n columns)
    failures: pd.DataFrame  # trials whose status is not completed (nor stopped by a scheduler), with their errors
    trials: pd.DataFrame  # completed trials: keys, seed, group
    group_keys: list[str]
    metric: str
    metric_columns: list[str]  # columns aggregated as <c>_mean / <c>_std
    accuracy_columns: list[str]  # the leading ones, with Δ and gain
    higher_is_better: bool
    knn_column: str | None  # the primary kNN column (convergence on kNN)


def config_columns(trials: pd.DataFrame) -> list[str]:
    """Science columns that can make groups."""
    return [c for c in schema.science_columns(trials.columns) if c not in NOT_GROUPING]


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
    """Core keys plus science columns that vary within a combination of the core keys
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
        c for c in _numeric_columns(trials) if schema.role(c) == schema.OUTCOME and not c.endswith(schema.CI_SUFFIXES)
    ]


def accuracy_columns(trials: pd.DataFrame) -> list[str]:
    """The test accuracies present, kNN by k descending, then the linear probe."""
    cols = list(schema.knn_columns(trials.columns).values())
    return cols + ([schema.LINEAR_TOP1] if schema.LINEAR_TOP1 in trials.columns else [])


def default_metric(trials: pd.DataFrame) -> str:
    """The primary kNN column (knn_k[0] of the trials) when it exists, else the first accuracy."""
    if schema.KNN_K in trials.columns and trials[schema.KNN_K].notna().any():
        primary = schema.knn(schema.primary_k(trials[schema.KNN_K].dropna().iloc[0]))
        if primary in trials.columns:
            return primary
    accuracies = accuracy_columns(trials)
    return accuracies[0] if accuracies else schema.FINAL_LOSS


def _validate(trials: pd.DataFrame, metric: str, group_by: Sequence[str] | None) -> None:
    choices = metric_choices(trials)
    if metric not in choices:
        raise ConfigError(
            "--metric",
            metric,
            f"an accuracy ({', '.join(accuracy_columns(trials)) or 'none in these tables'}) or another of the "
            f"{len(choices)} numeric outcome columns of trials.csv (final_loss, emb_norm_mean, ...)",
            hint=suggestion(metric, accuracy_columns(trials)) or suggestion(metric, choices),  # accuracies first
        )
    if group_by is not None:
        bad = [c for c in group_by if c not in trials.columns or c in TRIAL_KEY or c == schema.STATUS]
        if bad or not group_by:
            raise ConfigError("--group-by", list(group_by), config_columns(trials))


def _baseline_groups(completed: pd.DataFrame) -> tuple[pd.Series, list[str]]:
    """Per group, the group of its trials' baselines (NaN: none, or not one group)."""
    if completed.empty:
        return pd.Series(dtype=float), []
    arms = ~compare.is_baseline(completed) if schema.INTERVENTION in completed else pd.Series(False, completed.index)
    bases = ~arms
    seeded, notes = compare.baseline_pairs(completed, arms, bases)
    unpaired = completed.index[arms & ~completed.index.isin(seeded["arm"])]
    across, _ = compare.baseline_pairs(
        completed, pd.Series(completed.index.isin(unpaired), completed.index), bases, match_seed=False
    )
    pairs = pd.concat([seeded, across], ignore_index=True)
    group = completed["_group"]
    mapped = pd.DataFrame({"g": group.loc[pairs["arm"]].to_numpy(), "b": group.loc[pairs["base"]].to_numpy()})
    found = mapped.drop_duplicates().groupby("g")["b"].agg(lambda b: b.iloc[0] if len(b) == 1 else np.nan)
    ambiguous = mapped.drop_duplicates().groupby("g")["b"].nunique()
    notes += [f"group {g}: its trials pair with {n} baseline groups; no Δ" for g, n in ambiguous.items() if n > 1]
    out = pd.Series(np.nan, index=sorted(group.unique()), dtype=float)
    out.loc[found.index] = found.astype(float)
    base_groups = group.loc[bases[bases].index].unique()
    out.loc[base_groups] = base_groups  # a baseline is its own baseline: Δ = — there
    return out, notes


def _setting_text(values: pd.Series) -> str:
    """The distinct values of one setting in a group, as text (``0.1``, ``0.1/0.3``, ``—`` for unset)."""

    def one(v: Any) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "—"
        return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)

    return "/".join(sorted({one(v) for v in values}))


def _baseline_differences(completed: pd.DataFrame, base: pd.Series, keys: list[str]) -> list[str | float]:
    """Per group, the science outside the group keys that differs from its baseline's
    (``name own vs baseline``); NaN where there is none, no baseline, or for the baseline itself."""
    columns = [
        c
        for c in config_columns(completed)
        if c not in keys and c not in (schema.INTERVENTION, schema.WEIGHT_DECAY) and not c.startswith("_")
    ]
    texts = pd.DataFrame(
        {c: _hashable(completed[c]).groupby(completed["_group"]).agg(_setting_text) for c in columns}, index=base.index
    )
    out = []
    for group, base_group in base.items():
        if pd.isna(base_group) or int(base_group) == group:
            out.append(np.nan)
            continue
        mine, theirs = texts.loc[group], texts.loc[int(base_group)]
        diffs = [f"{c} {mine[c]} vs {theirs[c]}" for c in columns if mine[c] != theirs[c]]
        out.append("; ".join(diffs) or np.nan)
    return out


def _planned_counts(trials: pd.DataFrame, table: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """Per group: its trials of any status but ``stopped`` (a scheduler's early stop is not a
    missing seed), so a group short of its own planned seeds is flagged, while arms run on
    different numbers of seeds on purpose (a sweep case's own ``seeds``) are not."""
    counted = trials[trials[schema.STATUS] != schema.STOPPED].copy()
    for k in keys:
        counted[k] = _hashable(counted[k])
    sizes = counted.groupby(keys, dropna=False).size().rename("_planned").reset_index()
    merged = table[keys].merge(sizes, on=keys, how="left")  # merge matches NaN keys with NaN
    return np.maximum(merged["_planned"].fillna(0).to_numpy(dtype=np.int64), table["n"].to_numpy())


def _add_delta_intervals(table: pd.DataFrame, completed: pd.DataFrame, base: pd.Series, column: str) -> None:
    """``schema.delta(column)`` and its `schema.DELTA_PARTS` (interval, n, paired, significant) for every
    group with a baseline (one `difference_interval` per group: paired on shared seeds, else Welch)."""
    values = {g: sub[column].to_numpy(dtype=float) for g, sub in completed.groupby("_group")}
    seeds = (
        {g: sub[schema.SEED].to_numpy() for g, sub in completed.groupby("_group")} if schema.SEED in completed else {}
    )
    n_rows = len(table)
    delta, lo, hi = np.full(n_rows, np.nan), np.full(n_rows, np.nan), np.full(n_rows, np.nan)
    n = np.zeros(n_rows, dtype=np.int64)
    paired, significant = np.zeros(n_rows, dtype=bool), np.zeros(n_rows, dtype=bool)
    for i, group in enumerate(table.index):
        base_group = base.get(group, np.nan)
        if pd.isna(base_group) or int(base_group) == group:  # no baseline, or the baseline itself
            continue
        interval = difference_interval(
            values[group], values[int(base_group)], seeds.get(group), seeds.get(int(base_group))
        )
        delta[i], lo[i], hi[i], n[i] = interval.estimate, interval.lo, interval.hi, interval.n
        paired[i], significant[i] = interval.paired, interval.significant
    table[schema.delta(column)] = delta
    for part, values_of_part in zip(schema.DELTA_PARTS, (lo, hi, n, paired, significant)):
        table[schema.delta(column, part)] = values_of_part


def _add_gain_over_init(table: pd.DataFrame, completed: pd.DataFrame, column: str, init: str) -> None:
    """``schema.gain(column, part)`` for each of `schema.GAIN_PARTS`: per-trial final minus untrained score,
    over seeds (mean, std, 95% t-interval, n)."""
    gain = (completed[column] - completed[init]).groupby(completed["_group"])
    intervals = {g: t_interval(sub.to_numpy(dtype=float)) for g, sub in gain}
    table[schema.gain(column, schema.MEAN)] = [intervals[g].estimate for g in table.index]
    table[schema.gain(column, schema.STD)] = gain.std().reindex(table.index).astype(float)
    table[schema.gain(column, "ci_lo")] = [intervals[g].lo for g in table.index]
    table[schema.gain(column, "ci_hi")] = [intervals[g].hi for g in table.index]
    table[schema.gain(column, "n")] = [intervals[g].n for g in table.index]


CONVERGENCE = schema.CONVERGENCE_MEASURES


def _add_convergence(
    table: pd.DataFrame, completed: pd.DataFrame, curves: pd.DataFrame | None, knn_column: str | None
) -> None:
    """``schema.convergence(measure, outcome)``: the claims' race over each group's seed pairs, counted per
    outcome (`schema.RACE_OUTCOMES`)."""
    for measure in CONVERGENCE:
        for outcome in schema.RACE_OUTCOMES:
            table[schema.convergence(measure, outcome)] = 0
    if curves is None or curves.empty or schema.INTERVENTION not in completed or completed.empty:
        return
    curve_key = trial_key(curves)
    key_of = trial_key(completed).to_dict()
    group_of = completed["_group"].to_dict()
    arms = ~compare.is_baseline(completed)
    pairs, _ = compare.baseline_pairs(completed, arms, ~arms)
    for measure, column, falling in (("loss", schema.LOSS, True), ("knn", knn_column, False)):
        if column is None or column not in curves.columns:
            continue
        by_trial = compare.trained_by_trial(curves, curve_key, column)
        counts: dict[tuple[int, str], int] = {}
        for arm, base in pairs.itertuples(index=False):
            race = compare.race_of(
                by_trial.get(key_of[arm], compare.NO_CURVE), by_trial.get(key_of[base], compare.NO_CURVE), falling
            )
            if not race.observable:
                continue
            group = int(group_of[arm])
            outcome = {1: "faster", -1: "slower", 0: "tied"}[race.direction]
            counts[(group, outcome)] = counts.get((group, outcome), 0) + 1
            if race.censored:
                counts[(group, "censored")] = counts.get((group, "censored"), 0) + 1
        for (group, outcome), count in counts.items():
            table.loc[group, schema.convergence(measure, outcome)] = count


def build_leaderboard(
    trials: pd.DataFrame,
    curves: pd.DataFrame | None = None,
    *,
    metric: str | None = None,
    group_by: Sequence[str] | None = None,
    searched: Sequence[str] = (),
) -> Leaderboard:
    """Aggregate completed trials per group, rank the groups by ``metric`` (default: the primary kNN);
    failed, running and interrupted trials go to ``failures`` (trials a search's scheduler stopped
    early are neither). ``searched``: science a search chose per cell, left out of the group keys."""
    if schema.RESULTS_DIR not in trials.columns:
        trials = trials.assign(results_dir="")
    if metric is None:
        metric = default_metric(trials)
        if metric not in trials.columns:  # nothing finished yet (an interrupted sweep): the board lists the trials
            trials = trials.assign(**{metric: float("nan")})
    _validate(trials, metric, group_by)
    completed_mask = trials[schema.STATUS] == schema.COMPLETED
    completed = trials[completed_mask].reset_index(drop=True)
    keys = list(group_by) if group_by is not None else detect_group_keys(completed, searched)
    for k in keys:
        completed[k] = _hashable(completed[k])

    fail_cols = (
        TRIAL_KEY
        + [schema.STATUS]
        + [k for k in keys if k in trials]
        + [c for c in (schema.SEED, schema.EPOCHS_COMPLETED, schema.ERROR) if c in trials]
    )
    failures = trials.loc[
        ~completed_mask & (trials[schema.STATUS] != schema.STOPPED), list(dict.fromkeys(fail_cols))
    ].reset_index(drop=True)
    if schema.ERROR in failures:
        failures[schema.ERROR] = [("" if pd.isna(e) else str(e)) for e in failures[schema.ERROR]]

    numeric = set(_numeric_columns(completed))
    accuracies = [c for c in accuracy_columns(completed) if c in numeric]
    if metric not in accuracies and metric in numeric:
        accuracies.append(metric)
    metric_columns = accuracies + [
        c
        for c in completed.columns
        if c in numeric
        and c not in accuracies
        and (
            c in NORM_COLUMNS
            or c in (schema.eval_norm("test", "emb", "mean"), schema.eval_norm("test", "feat", "mean"))
            or c.endswith(tuple(schema.DIAGNOSTICS))
        )
        and completed[c].notna().any()
    ]

    higher = metric not in schema.LOWER_IS_BETTER
    completed["_group"] = completed.groupby(keys, dropna=False, sort=True).ngroup()
    by_group = completed.groupby("_group")
    table = by_group[keys].first()
    table[schema.N] = by_group.size()
    stats = by_group[metric_columns].agg([schema.MEAN, schema.STD])  # pandas std: ddof=1, NaN for n=1
    table = pd.concat(
        [
            table,
            pd.DataFrame(
                {
                    schema.over_seeds(c, s): stats[(c, s)].astype(float)
                    for c in metric_columns
                    for s in (schema.MEAN, schema.STD)
                },
                index=table.index,
            ),
        ],
        axis=1,
    )
    table[schema.N_EXPECTED] = _planned_counts(trials, table, keys)
    table[schema.N_SHORT] = table[schema.N] < table[schema.N_EXPECTED]
    table[schema.SEEDS] = (
        by_group[schema.SEED].agg(lambda s: ", ".join(compare._text(v) for v in sorted(s)))
        if schema.SEED in completed
        else ""
    )

    base, _ = _baseline_groups(completed) if schema.INTERVENTION in keys else (pd.Series(np.nan, table.index), [])
    table[schema.BASELINE_GROUP] = base.reindex(table.index)
    table[schema.IS_BASELINE] = table[schema.BASELINE_GROUP] == table.index
    table[schema.BASELINE_DIFFERS] = _baseline_differences(completed, table[schema.BASELINE_GROUP], keys)
    for c in accuracies:
        _add_delta_intervals(table, completed, table[schema.BASELINE_GROUP], c)
        init = schema.init_of(c)
        if init in numeric and completed[init].notna().any():
            _add_gain_over_init(table, completed, c, init)
    knn_column = default_metric(completed) if schema.parse_knn(default_metric(completed)) else None
    _add_convergence(table, completed, curves, knn_column)

    ranked_by = schema.over_seeds(metric, schema.MEAN)
    col = table[ranked_by]
    scope = [table[k] for k in (schema.DATASET, schema.BACKBONE) if k in keys]
    reducer = "max" if higher else "min"
    best_value = col.groupby(scope, dropna=False).transform(reducer) if scope else col.agg(reducer)
    table[schema.BEST] = col.notna() & (col == best_value)
    table[schema.GROUP] = table.index
    table = table.sort_values(ranked_by, ascending=not higher, na_position="last", kind="stable")
    table = table.reset_index(drop=True).copy()
    plot_keys = [k for k in (schema.METHOD, schema.INTERVENTION) if k not in keys]
    seed = [schema.SEED] if schema.SEED in completed else []
    per_trial = completed[TRIAL_KEY + keys + plot_keys + seed + ["_group"]]
    return Leaderboard(
        table=table,
        failures=failures,
        trials=per_trial.rename(columns={"_group": schema.GROUP}),
        group_keys=keys,
        metric=metric,
        metric_columns=metric_columns,
        accuracy_columns=accuracies,
        higher_is_better=higher,
        knn_column=knn_column,
    )
