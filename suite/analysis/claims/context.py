"""What every claim's test reads: the completed trials (on the seeds every arm shares), their curves and
class norms, the primary k, which methods learn, and what each method's loss does to its embedding.

Built once per `evaluate_claims` call; the units functions of the registry read from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from methods import get_method
from suite.analysis import compare
from suite.analysis.load import TRIAL_KEY
from suite.core.errors import ConfigError
from suite.core.stats import t_interval
from suite.results import schema

# what "does this method learn here" is asked of
SETTING_COLUMNS = (schema.DATASET, schema.BACKBONE, schema.METHOD, schema.IMBALANCE)
UNIT_COLUMNS = [schema.METHOD, schema.SEED, "value", "label"]


@dataclass
class Units:
    """A claim's units and what did not make it, with the reasons."""

    frame: pd.DataFrame
    left_out: dict[str, str] = field(default_factory=dict)  # method -> why it has no units
    notes: list[str] = field(default_factory=list)  # evidence beyond the units
    reason: str = ""  # why there are no units at all
    checks: dict[str, list[str]] = field(default_factory=dict)  # method -> units a check left out, with numbers
    verdict: str = ""  # a verdict decided before judging (not measured, not testable), with ``reason``
    per_method_verdict: dict[str, tuple[str, str]] = field(default_factory=dict)  # method -> (verdict, reason)
    method_evidence: dict[str, str] = field(default_factory=dict)  # method -> evidence beyond its units


def num(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce")


def absent(frame: pd.DataFrame | None, columns, table: str) -> str:
    """Why a test cannot run for want of columns ("" when all are there with values)."""
    if frame is None:
        return f"no {table} table in the results directory"
    for column in columns:
        if column not in frame.columns:
            return f"the {table} table has no column {column}"
        if frame[column].notna().sum() == 0:
            return f"column {column} of the {table} table has no values"
    return ""


def eval_every_hint(trials: pd.DataFrame) -> str:
    """Why evaluation-epoch values (the epoch-0 row, per-epoch kNN and probe) are missing, when the trials
    say: every trial ran with ``eval_every`` 0, which evaluates only the final network ("" otherwise)."""
    every = num(trials, "eval_every")
    if len(trials) and every.notna().all() and (every <= 0).all():
        return (
            "; every trial ran with eval_every 0, which evaluates only the final network: eval_every >= 1 "
            "adds the untrained network (epoch 0) and per-epoch evaluations"
        )
    return ""


def labels(trials: pd.DataFrame) -> pd.Series:
    """``method/intervention/s<seed>`` of every trial (`compare.label`, vectorized)."""
    return (
        trials[schema.METHOD].astype(str)
        + "/"
        + trials[schema.INTERVENTION].astype(str)
        + "/s"
        + trials[schema.SEED].map(compare._text).astype(str)
    )


def units_from(trials: pd.DataFrame, values: pd.Series, fmt: str = "{:.3g}") -> pd.DataFrame:
    """Units from per-trial values (indexed like ``trials``), finite ones only."""
    values = pd.to_numeric(values.reindex(trials.index), errors="coerce")
    ok = np.isfinite(values.to_numpy(float))
    sel, vals = trials[ok], values[ok]
    return pd.DataFrame(
        {
            schema.METHOD: sel[schema.METHOD].astype(str).to_numpy(),
            schema.SEED: sel[schema.SEED].to_numpy(),
            "value": vals.to_numpy(float),
            "label": (labels(sel) + " " + vals.map(fmt.format).astype(str)).to_numpy(),
        }
    )


def no_units(trials: pd.DataFrame, **kw) -> Units:
    """Units with an empty frame (and whatever reason or verdict ``kw`` gives)."""
    return Units(units_from(trials.iloc[0:0], pd.Series(dtype=float)), **kw)


def trial_key(frame: pd.DataFrame) -> pd.Series:
    """Trial identity across merged directories (`suite.analysis.load.TRIAL_KEY`) as one text per row,
    ``results_dir/trial_id``: what the claims, the leaderboard's races and the report's figures match
    trials, curves, class norms and per-sample norms on. A table without ``results_dir`` (read from one
    directory) has ``""`` there; one without ``trial_id``, its index."""
    parts = []
    for column in TRIAL_KEY:
        if column in frame.columns:
            parts.append(frame[column].astype(str))
        elif column == schema.TRIAL_ID:
            parts.append(pd.Series(frame.index.astype(str), index=frame.index))
        else:
            parts.append("")
    key = parts[0]
    for part in parts[1:]:
        key = key + "/" + part
    return key


def _seed_list(seeds) -> str:
    values = sorted({int(s) if float(s).is_integer() else s for s in seeds})
    runs, start = [], None
    for i, s in enumerate(values):  # 0, 1, 2, 3, 7 -> 0-3, 7
        if start is None:
            start = s
        if i + 1 == len(values) or values[i + 1] != s + 1:
            runs.append(f"{start}" if start == s else f"{start}-{s}")
            start = None
    return ", ".join(runs)


def _arm_names(group: pd.DataFrame, arm: pd.Series, science: list[str]) -> dict[str, str]:
    """{arm key: its intervention, plus the science values in which it departs from the method's usual one}."""
    texts = {c: pd.Series(compare.cell_texts(group[c]), index=group.index) for c in science}
    usual = {c: t.mode().iloc[0] for c, t in texts.items()}
    names = {}
    for a, rows in group.groupby(arm, sort=True):
        first = rows.index[0]
        extra = [
            f"{c} {texts[c][first]}"
            for c in science
            if c not in (schema.INTERVENTION, schema.WEIGHT_DECAY) and texts[c][first] != usual[c]
        ]
        intervention = str(group.loc[first, schema.INTERVENTION]) if schema.INTERVENTION in group else "?"
        names[a] = intervention + (f" ({', '.join(extra)})" if extra else "")
    return names


def seed_design(trials: pd.DataFrame) -> tuple[pd.Series, dict[str, str]]:
    """(keep, notes): the trials on the seeds that *every* arm of their method runs (an arm: every
    science column but the seed), and per method a note naming the arms and seeds that break an
    equal design. Seed means over unequal arms mix arms (seed 3 holding only a baseline is not
    the same unit as seed 0 holding every arm), so units use the shared seeds only."""
    keep = pd.Series(True, index=trials.index)
    notes: dict[str, str] = {}
    science = [c for c in schema.science_columns(trials.columns) if c != schema.SEED]
    if schema.SEED not in trials.columns or not science or trials.empty:
        return keep, notes
    arm = compare.keys(trials, science)
    group_cols = [c for c in (schema.DATASET, schema.BACKBONE, schema.METHOD) if c in trials.columns]
    for _, group in trials.groupby([trials[c].astype(str) for c in group_cols], sort=True):
        seeds = {a: set(g[schema.SEED].tolist()) for a, g in group.groupby(arm.loc[group.index], sort=True)}
        shared = set.intersection(*seeds.values())
        if all(s == shared for s in seeds.values()):
            continue
        method = str(group[schema.METHOD].iloc[0])
        named = _arm_names(group, arm.loc[group.index], science)
        by_seeds: dict[str, list[str]] = {}
        for a, s in seeds.items():
            by_seeds.setdefault(_seed_list(s), []).append(named[a])
        listing = "; ".join(f"{', '.join(sorted(arms))}: seeds {s}" for s, arms in sorted(by_seeds.items()))
        if not shared:
            notes[method] = f"{method}: arms run different seeds ({listing}) and no seed is common to all"
            continue
        dropped = group[~group[schema.SEED].isin(shared)]
        keep.loc[dropped.index] = False
        notes[method] = (
            f"{method}: arms run different seeds ({listing}); units use the seeds every arm shares "
            f"({_seed_list(shared)}), leaving out {len(dropped)} trial(s): {', '.join(labels(dropped))}"
        )
    return keep, notes


def primary_knn(trials: pd.DataFrame) -> tuple[int | None, str]:
    """The k every kNN-based test uses: the trials' primary k (knn_k[0]) when they agree."""
    if schema.KNN_K not in trials.columns or trials[schema.KNN_K].isna().all():
        return None, "the trials table has no knn_k column"
    ks = {schema.primary_k(v) for v in trials[schema.KNN_K].dropna()}
    if len(ks) != 1:
        return None, f"the trials' knn_k differ in their first k ({sorted(ks)}): no single k to judge on"
    return ks.pop(), ""


def k_note(k: int | None, class_norms: pd.DataFrame | None) -> str:
    """A warning when the primary k exceeds the smallest training class (its vote then always counts
    other classes' images), with the rule of thumb: k about a tenth of the smallest class."""
    if k is None or class_norms is None or schema.TRAIN_COUNT not in class_norms.columns:
        return ""
    emb = class_norms
    if schema.BIN_VECTOR in class_norms.columns:
        emb = class_norms[class_norms[schema.BIN_VECTOR] == "embedding"]
    counts = num(emb, schema.TRAIN_COUNT)
    per_trial = counts[counts > 0].groupby(emb["_key"]).min()
    if per_trial.empty:
        return ""
    smallest = int(per_trial.median())
    if k <= smallest:
        return ""
    return (
        f"the primary k = {k} exceeds the smallest training class of a typical trial ({smallest} images, the median "
        f"over trials): every kNN@{k} vote counts "
        f"other classes' images; choose k as about a tenth of the smallest class (here <= {max(1, smallest // 10)}) "
        "by listing it first in knn_k"
    )


def setting_of(trials: pd.DataFrame) -> pd.Series:
    cols = [c for c in SETTING_COLUMNS if c in trials.columns]
    texts = [compare.cell_texts(trials[c]) for c in cols]
    return pd.Series(list(zip(*texts)) if cols else [()] * len(trials), index=trials.index, dtype=object)


def learning_status(trials: pd.DataFrame, k: int) -> dict[tuple, tuple[bool | None, str]]:
    """Whether each setting (dataset, backbone, method, imbalance) beats its own untrained network.

    The gain of a trial is its final kNN top-1 with k minus its epoch-0 score (``knn_top1_k<k>_init``); a
    setting is shown to learn when the 95% t-interval of the mean gain over its ``none`` trials (all its
    trials without one) lies above 0 (with no spread between seeds: the exact sign test, p < 0.05)."""
    out: dict[tuple, tuple[bool | None, str]] = {}
    gain = num(trials, schema.knn(k)) - num(trials, schema.knn_init(k))
    cols = [c for c in SETTING_COLUMNS if c in trials.columns]
    baseline = compare.is_baseline(trials)
    for setting, group in trials.groupby([trials[c].map(compare._text) for c in cols], sort=True):
        setting = setting if isinstance(setting, tuple) else (setting,)
        base = group[baseline.loc[group.index]]
        base = base if len(base) else group
        g = gain.loc[base.index].dropna()
        name = "/".join(v if c != schema.IMBALANCE else f"imbalance {v}" for c, v in zip(cols, setting) if v != "—")
        if g.empty:
            out[setting] = (
                None,
                f"{name}: the untrained kNN@{k} is unknown ({schema.knn_init(k)} has no values"
                f"{eval_every_hint(group)})",
            )
            continue
        test = t_interval(g.to_numpy(float))
        learns = (test.estimate > 0 and test.p_value < 0.05) if test.sign_test else bool(test.lo > 0)
        verdict = "beats" if learns else "does not beat" if test.estimate <= 0 else "not shown to beat"
        interval = (
            f"[{test.lo:+.4f}, {test.hi:+.4f}]"
            if math.isfinite(test.lo)
            else "no spread"
            if test.sign_test
            else "no interval"
        )
        final = num(base, schema.knn(k)).mean()
        out[setting] = (
            learns,
            f"{name}: kNN@{k} {final:.4f} vs untrained {final - test.estimate:.4f}, gain "
            f"{test.estimate:+.4f} {interval} over {test.n} trial(s) ({verdict} its untrained "
            f"network)",
        )
    return out


def gate(trials: pd.DataFrame, k: int | None, why_no_k: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """The trials of settings shown to learn, and per method left out the reason."""
    if k is None:
        return trials.iloc[0:0], {m: why_no_k for m in trials[schema.METHOD].astype(str).unique()}
    status = learning_status(trials, k)
    settings = setting_of(trials)
    keep = settings.map(lambda s: bool(status.get(s, (False,))[0]))
    left = {}
    for setting, (learns, why) in status.items():
        if not learns:
            method = trials.loc[settings == setting, schema.METHOD].astype(str).iloc[0]
            left[method] = (left[method] + "; " if method in left else "") + f"left out {why}"
    return trials[keep], left


@dataclass
class Context:
    """The tables a claim's test reads, prepared once."""

    trials: pd.DataFrame  # completed trials on the seeds every arm of their method shares, with ``_key``
    curves: pd.DataFrame | None  # their curves, with ``_key``
    class_norms: pd.DataFrame | None
    all_trials: pd.DataFrame  # every completed trial (before the equal-seeds restriction)
    k: int | None
    why_no_k: str
    design: dict[str, str]  # method -> how its arms' seeds differ (empty when every arm runs the same seeds)
    notes: list[str]  # run-level warnings, printed by the CLI and written into claims.md
    _curve_cache: dict[str, dict] = field(default_factory=dict, repr=False)
    cache: dict[str, object] = field(default_factory=dict, repr=False)  # what a units function computes once

    @classmethod
    def build(
        cls, trials: pd.DataFrame, curves: pd.DataFrame | None = None, class_norms: pd.DataFrame | None = None
    ) -> Context:
        trials = trials.copy()
        if schema.STATUS in trials.columns:
            trials = trials[trials[schema.STATUS].astype(str) == schema.COMPLETED]
        if schema.INTERVENTION not in trials.columns:
            trials[schema.INTERVENTION] = "none"
        if schema.SEED not in trials.columns:
            trials[schema.SEED] = 0
        trials["_key"] = trial_key(trials)
        keep, design = seed_design(trials)
        kept = trials[keep]
        k, why_no_k = primary_knn(trials)
        class_norms = _keyed(class_norms, kept)
        notes = [note for note in [k_note(k, class_norms), *design.values()] if note]
        return cls(kept, _keyed(curves, kept), class_norms, trials, k, why_no_k, design, notes)

    @cached_property
    def learning(self) -> tuple[pd.DataFrame, dict[str, str]]:
        """(trials of the settings shown to beat their untrained network, method -> why left out)."""
        return gate(self.trials, self.k, self.why_no_k)

    @property
    def methods(self) -> list[str]:
        return sorted(self.trials[schema.METHOD].astype(str).unique()) if len(self.trials) else []

    def normalizes(self, method: str) -> bool | None:
        """Whether ``method``'s loss L2-normalizes its embedding (None for a method normbench does not know)."""
        try:
            return bool(get_method(method).loss_normalizes_embedding)
        except ConfigError:
            return None

    def curve_values(self, column: str) -> dict[str, compare.Trained]:
        """Every trial's trained epochs (>= 1) and ``column`` values, by trial key (`compare.trained_by_trial`;
        computed once per column)."""
        if self.curves is None or column not in self.curves.columns:
            return {}
        if column not in self._curve_cache:
            self._curve_cache[column] = compare.trained_by_trial(self.curves, self.curves["_key"], column)
        return self._curve_cache[column]


def _keyed(table: pd.DataFrame | None, trials: pd.DataFrame) -> pd.DataFrame | None:
    if table is None:
        return None
    table = table.copy()
    table["_key"] = trial_key(table)
    return table[table["_key"].isin(set(trials["_key"]))]
