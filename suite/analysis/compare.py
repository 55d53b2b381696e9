"""Comparisons the claims and the leaderboard share: which trial is an arm's baseline, and
which of two trials reaches a target first.

One implementation of each, so the leaderboard's convergence column and the
claims' C4/C5 verdicts cannot follow different rules.

* **Arms and baselines.** An arm is a trial whose intervention is not ``none``;
  its baseline is the ``none`` trial of the same seed that agrees with it on
  every science column but the intervention and the *protocol* columns an arm
  may carry with it (learning rate, warm-up, and weight decay when a ``wd:X``
  part sets it). Among several such baselines the one with the arm's protocol
  is taken; a pair that stays ambiguous is left out and noted.
* **Time to target.** The target is anchored on the baseline's first trained
  epoch, so that a faster arm can be observed at all: for the loss,
  ``L1 - f (L1 - L_end)`` of the baseline's loss curve; for an accuracy,
  ``A1 + f (A_end - A1)``. The baseline therefore reaches it at epoch 2 or
  later, and an arm that reaches it at epoch 1 is faster. A pair whose baseline
  does not improve after epoch 1 has no observable target. Each pair gives a
  *direction*: faster (+1), slower (-1, also when the arm never reaches the
  target within its epochs: censored, but the direction is certain), or tied (0).
  No epoch count of a censored arm is invented.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from methods.intervention_spec import Intervention, parse_intervention
from suite.core.errors import ConfigError
from suite.results import schema

BASELINE = "none"
PROTOCOL_COLUMNS = ("lr", "warmup_epochs")  # an arm may bring its own (a sweep's `cases`)
CONV_FRACTION = 0.5
# Columns that never tell two trials of one setting apart (identity, outcomes are excluded by role).
_NOT_MATCHED = {"name", "intervention", "seed", *PROTOCOL_COLUMNS}


def intervention_of(spec) -> Intervention:
    """The parsed intervention of a table cell (NaN or empty: ``none``)."""
    if spec is None or (isinstance(spec, float) and math.isnan(spec)) or not str(spec).strip():
        return Intervention()
    try:
        return parse_intervention(str(spec))
    except ConfigError:
        return Intervention()


def arm_signature(spec) -> str:
    """The intervention without its ``wd:X`` part (weight decay is matched through its column)."""
    parsed = intervention_of(spec)
    return Intervention(cut=parsed.cut, gradscale=parsed.gradscale).to_spec()


def arm_kinds(spec) -> set[str]:
    """``{"cut"}``, ``{"gradscale"}``, ``{"cut", "gradscale"}`` or ``set()`` (``none`` and ``wd:X`` alone)."""
    parsed = intervention_of(spec)
    return {k for k in ("cut", "gradscale") if getattr(parsed, k) is not None}


def _text(value) -> str:
    """A cell as comparable text (NaN/None as "—", 3.0 as "3")."""
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return "—"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.ndarray):
        return str(value.tolist())
    return str(value)


def cell_texts(col: pd.Series) -> np.ndarray:
    """``_text`` of every cell of one column, computed once per distinct value (a sweep's science
    columns hold a handful of values over thousands of trials). Object columns, which may mix
    types that hash alike (``True`` and ``1``) or hold unhashable cells, go cell by cell."""
    if col.dtype == object:
        return col.map(_text).to_numpy(dtype=object)
    codes, uniques = pd.factorize(col)  # missing cells: code -1
    texts = np.array([_text(u) for u in uniques] + [_text(None)], dtype=object)
    return texts[codes]


def keys(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """One comparable string per row from ``columns``."""
    if not len(columns) or frame.empty:
        return pd.Series("", index=frame.index, dtype=object)
    texts = [cell_texts(frame[c]) for c in columns]
    return pd.Series(["|".join(row) for row in zip(*texts)], index=frame.index, dtype=object)


def setting_columns(frame: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """The science columns present that an arm and its baseline must share."""
    return [c for c in frame.columns if schema.role(c) == schema.SCIENCE and c not in _NOT_MATCHED and c not in exclude]


def is_baseline(trials: pd.DataFrame) -> pd.Series:
    """Trials that can serve as a baseline: intervention exactly ``none`` (a ``wd:X`` trial is an arm)."""
    return trials["intervention"].map(lambda v: intervention_of(v) == Intervention())


def baseline_pairs(
    trials: pd.DataFrame, arms: pd.Series, bases: pd.Series, exclude: Sequence[str] = (), match_seed: bool = True
) -> tuple[pd.DataFrame, list[str]]:
    """(pairs, notes): one row per arm trial (``arms``: a boolean mask) with its baseline among
    ``bases``; columns ``arm`` and ``base`` hold index labels of ``trials``. ``exclude`` names
    science columns that may differ within a pair (e.g. ``imbalance``: a long-tailed trial
    against its balanced twin); an arm whose intervention sets the weight decay (``wd:X``) is
    not matched on it. ``match_seed=False`` pairs across seeds (then an arm may find several
    baselines of one setting: one per seed, all returned)."""
    columns = [c for c in setting_columns(trials, exclude) + (["seed"] if match_seed else []) if c in trials.columns]
    key, key_no_wd = keys(trials, columns), keys(trials, [c for c in columns if c != "weight_decay"])
    sets_wd = trials["intervention"].map(lambda v: intervention_of(v).weight_decay is not None)
    base = trials[bases.astype(bool)]
    # among several candidates: the arm's own protocol, then its own results directory
    protocol = [c for c in (*PROTOCOL_COLUMNS, schema.RESULTS_DIR) if c in trials.columns]
    protocol_key = keys(trials, protocol)
    by_key = {k: list(idx) for k, idx in base.groupby(key.loc[base.index]).groups.items()}
    by_key_no_wd = {k: list(idx) for k, idx in base.groupby(key_no_wd.loc[base.index]).groups.items()}
    rows, notes = [], []
    for arm_label in trials.index[arms.astype(bool)]:
        lookup, arm_key = (by_key_no_wd, key_no_wd) if sets_wd.loc[arm_label] else (by_key, key)
        candidates = [b for b in lookup.get(arm_key.loc[arm_label], []) if b != arm_label]
        if not match_seed:
            rows += [(arm_label, b) for b in candidates]
            continue
        if len(candidates) > 1 and protocol:
            candidates = [b for b in candidates if protocol_key.loc[b] == protocol_key.loc[arm_label]] or candidates
        if len(candidates) == 1:
            rows.append((arm_label, candidates[0]))
        elif len(candidates) > 1:
            notes.append(f"{label(trials.loc[arm_label])}: {len(candidates)} equally good baselines, left out")
    return pd.DataFrame(rows, columns=["arm", "base"]), notes


def label(row: pd.Series) -> str:
    """``method/intervention/s<seed>`` of a trial row."""
    return f"{row.get('method', '?')}/{row.get('intervention', '?')}/s{_text(row.get('seed'))}"


# ---------------------------------------------------------------- time to target
@dataclass(frozen=True)
class Race:
    """Which of an arm and its baseline reaches the target first."""

    direction: int  # +1 arm faster, -1 arm slower, 0 tie; 0 also when not observable
    observable: bool
    censored: bool  # the arm never reached the target within its epochs
    arm_epoch: float  # NaN when censored or not observable
    base_epoch: float
    target: float
    why: str = ""  # why not observable


def _floats(values: pd.Series) -> np.ndarray:
    """A column as float64 with NaN for anything missing or not a number."""
    if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
        values = pd.to_numeric(values, errors="coerce")
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _trained(curve: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of the trained epochs (>= 1) where ``column`` has a number."""
    epochs, values = _floats(curve[schema.EPOCH]), _floats(curve[column])
    ok = (epochs >= 1) & ~np.isnan(values)
    return epochs[ok], values[ok]


Trained = tuple[np.ndarray, np.ndarray]  # (epochs >= 1, values) of one trial's curve, by epoch
NO_CURVE: Trained = (np.empty(0), np.empty(0))


def trained_by_trial(curves: pd.DataFrame, key: pd.Series, column: str) -> dict[str, Trained]:
    """Every trial's trained epochs and ``column`` values where it has a number, sorted by
    epoch, keyed by ``key`` (a column of ``curves`` aligned to it): what `race_of` reads, for
    all trials in a few array operations."""
    epochs, values = _floats(curves[schema.EPOCH]), _floats(curves[column])
    ok = (epochs >= 1) & ~np.isnan(values)
    codes, uniques = pd.factorize(np.asarray(key, dtype=object)[ok])
    order = np.lexsort((epochs[ok], codes))  # by trial, then epoch; stable
    codes, epochs, values = codes[order], epochs[ok][order], values[ok][order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if codes.size else np.empty(0, dtype=np.int64)
    ends = np.r_[starts[1:], codes.size]
    return {uniques[codes[a]]: (epochs[a:b], values[a:b]) for a, b in zip(starts, ends)}


def race(
    arm_curve: pd.DataFrame, base_curve: pd.DataFrame, column: str, falling: bool, fraction: float = CONV_FRACTION
) -> Race:
    """The pair's direction on ``column`` (``falling``: lower is better, the loss)."""
    return race_of(_trained(arm_curve, column), _trained(base_curve, column), falling, fraction)


def race_of(arm: Trained, base: Trained, falling: bool, fraction: float = CONV_FRACTION) -> Race:
    """`race` on the pair's trained (epochs, values) (`trained_by_trial`)."""
    be, bv = base
    if be.size < 2:
        return Race(0, False, False, math.nan, math.nan, math.nan, "the baseline has fewer than 2 trained epochs")
    order = np.argsort(be)
    be, bv = be[order], bv[order]
    first, last = bv[0], bv[-1]
    gain = (first - last) if falling else (last - first)
    if not gain > 0:
        return Race(0, False, False, math.nan, math.nan, math.nan, "the baseline does not improve after epoch 1")
    target = first - fraction * gain if falling else first + fraction * gain
    base_hit = be[(bv <= target) if falling else (bv >= target)]
    base_epoch = float(base_hit.min())
    ae, av = arm
    if ae.size == 0:
        return Race(0, False, False, math.nan, base_epoch, target, "the arm has no trained epoch")
    arm_hit = ae[(av <= target) if falling else (av >= target)]
    if arm_hit.size == 0:
        return Race(-1, True, True, math.nan, base_epoch, target)
    arm_epoch = float(arm_hit.min())
    return Race(int(np.sign(base_epoch - arm_epoch)), True, False, arm_epoch, base_epoch, target)


def curves_by_trial(curves: pd.DataFrame, key: pd.Series) -> dict[str, pd.DataFrame]:
    """The curves of each trial, keyed by ``key`` (a column of ``curves`` aligned to it), sorted by epoch."""
    # One sort of the whole table (groups keep the order of their rows), not one per trial.
    order = curves[schema.EPOCH].reset_index(drop=True).sort_values(kind="stable").index.to_numpy()
    return dict(tuple(curves.iloc[order].groupby(np.asarray(key)[order], sort=False)))
