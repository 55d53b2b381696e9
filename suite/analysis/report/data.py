"""The data the page embeds for its own scripts: compact JSON, columnar where a table is long.

Why a module of its own: the page must stay small (the reference run's page under
2 MB with the chart library inlined), so every number is rounded once here
(``rounded``), NaN becomes ``null`` (``JSON.parse`` refuses NaN), and per-trial
curves travel as one array per column instead of one object per row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from suite.analysis import compare
from suite.analysis.leaderboard.aggregate import Leaderboard
from suite.analysis.leaderboard.render import Column
from suite.analysis.load import TRIAL_KEY, Results
from suite.core.tables import DASH
from suite.results import schema

DIGITS = 4  # significant digits of every embedded float: far below what a chart can show


def rounded(values: Iterable, digits: int = DIGITS) -> list[float | None]:
    """Floats to ``digits`` significant digits (shortest JSON text), non-finite values to None."""
    array = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(dtype=float)
    fmt = f"{{:.{digits}g}}"
    return [float(fmt.format(v)) if math.isfinite(v) else None for v in array.tolist()]


def sort_keys(values: Sequence) -> list:
    """A headline column's sort values: numbers rounded (6 digits: ties stay ties), text as is, None last."""
    out: list = []
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(float(f"{v:.6g}") if math.isfinite(v) else None)
        else:
            out.append(None if v is None else str(v))
    return out


def to_json(payload: Any) -> str:
    """Compact JSON safe inside ``<script type="application/json">``: every ``<`` escaped, so no
    ``</script>`` or ``<!--`` in a cell can end the element early."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c")


def text(value: Any) -> str:
    """A config cell as people read it: lists as lists, 3.0 as 3, unset as —."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return DASH
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)


def group_labels(board: Leaderboard, exclude: Sequence[str] = (), always: Sequence[str] = ()) -> dict[int, str]:
    """Per group id, its name for people: the values of the group keys that differ between groups, and of
    ``always`` (``moco · cut:3``; keys other than the four axes as ``imbalance=10``; unset ones left out)."""
    table = board.table
    keys = [k for k in board.group_keys if k not in exclude]
    varying = [k for k in keys if k in always or table[k].map(text).nunique() > 1] or keys[:1]
    labels = {}
    for row in table[[schema.GROUP, *varying]].itertuples(index=False):  # one per group, not per trial
        parts = []
        for key, value in zip(varying, row[1:]):
            shown = text(value)
            if shown != DASH:
                named = key in (schema.METHOD, schema.INTERVENTION, schema.DATASET, schema.BACKBONE)
                parts.append(shown if named else f"{key}={shown}")
        labels[int(row[0])] = " · ".join(parts) or f"group {row[0]}"
    return labels


def completed_trials(results: Results, board: Leaderboard) -> pd.DataFrame:
    """The full trials rows of the board's (completed, selected) trials, with their ``group``."""
    return board.trials[[*TRIAL_KEY, schema.GROUP]].merge(results.trials, on=TRIAL_KEY, how="left", suffixes=("", "_"))


def headline_payload(columns: Sequence[Column]) -> dict:
    """What the sorter needs: the column keys and, per column, one sort value per row (rank order)."""
    return {"keys": [c.key for c in columns], "sort": [sort_keys(c.sort) for c in columns]}


def config_payload(trials: pd.DataFrame) -> tuple[list[str], dict[int, list[str]]]:
    """(columns, per group the text of each column): the science and run settings of a group's trials,
    distinct values joined by "/" (the seeds, an arm's own lr, ...)."""
    columns = [c for c in trials.columns if schema.role(c) in (schema.SCIENCE, schema.RUN)]
    texts = pd.DataFrame({c: trials[c].map(text) for c in columns})
    joined = texts.groupby(trials[schema.GROUP].to_numpy()).agg(lambda s: "/".join(sorted(set(s))))
    return columns, {int(g): row.tolist() for g, row in joined.iterrows()}


def curve_columns(board: Leaderboard, curves: pd.DataFrame | None) -> list[str]:
    """The curves columns the detail pane plots, in the order of `charts.DETAIL_PANELS`, when present."""
    wanted = [
        schema.LOSS,
        board.knn_column,
        schema.train_norm("emb", "mean"),
        schema.eval_norm("test", "emb", "mean"),
        schema.GRAD_NORM,
        schema.PROBE_ANGLE,
    ]
    present = set(curves.columns) if curves is not None else set()
    return [c for c in wanted if c and c in present]


def untrained_columns(curves: pd.DataFrame | None, columns: Sequence[str]) -> list[str]:
    """The ``columns`` with a value at epoch 0 (the untrained network) in some trial."""
    if curves is None or curves.empty:
        return []
    first = curves[pd.to_numeric(curves[schema.EPOCH], errors="coerce") == 0]
    return [c for c in columns if first[c].notna().any()]


def baseline_trials(trials: pd.DataFrame) -> dict[int, int]:
    """Per arm trial (its position in ``trials``, the board's order), the position of its ``none`` trial of
    the same seed and science: the claims' pairing (`suite.analysis.compare.baseline_pairs`), so the
    detail pane overlays the very curve the arm's Δ and race are measured against."""
    if trials.empty or schema.INTERVENTION not in trials:
        return {}
    frame = trials.reset_index(drop=True)
    bases = compare.is_baseline(frame)
    pairs, _ = compare.baseline_pairs(frame, ~bases, bases)
    return {int(a): int(b) for a, b in pairs.itertuples(index=False)}


def trials_payload(
    results: Results, board: Leaderboard, columns: Sequence[str], baselines: dict[int, int] | None = None
) -> list[dict]:
    """One entry per trial of the board (its order): group, seed, label, folder, the index of its paired
    ``none`` trial (``baseline``, from `baseline_trials`; None for a baseline or an unpaired arm) and its
    curves columnar (``{"epoch": [...], "loss": [...], ...}``), every column rounded in one pass."""
    trials = board.trials.reset_index(drop=True)
    if trials.empty:
        return []
    seeds = trials[schema.SEED] if schema.SEED in trials else pd.Series(np.nan, index=trials.index)
    seed_text = seeds.map(text)
    # duplicate seeds in one group (the same trial in two directories): number them
    nth = seed_text.groupby([trials[schema.GROUP], seed_text]).cumcount()
    labels = ("seed " + seed_text).where(nth == 0, "seed " + seed_text + " #" + (nth + 1).astype(str))
    paths = [
        (str(d).rstrip("/") + "/" if str(d) else "") + str(t)
        for d, t in zip(trials[schema.RESULTS_DIR], trials[schema.TRIAL_ID])
    ]
    out = [
        {
            "group": int(g),
            "seed": None if pd.isna(s) else text(s),
            "label": lab,
            "path": p,
            "baseline": (baselines or {}).get(i),
            "curve": {},
        }
        for i, (g, s, lab, p) in enumerate(zip(trials[schema.GROUP], seeds, labels, paths))
    ]
    if results.curves is None or results.curves.empty:
        return out
    index = trials[TRIAL_KEY].assign(_trial=np.arange(len(trials)))
    index[schema.RESULTS_DIR] = index[schema.RESULTS_DIR].astype(str)
    curves = results.curves.assign(**{schema.RESULTS_DIR: results.curves[schema.RESULTS_DIR].astype(str)})
    curves = curves.merge(index, on=TRIAL_KEY, how="inner").sort_values(["_trial", schema.EPOCH], kind="stable")
    epochs = pd.to_numeric(curves[schema.EPOCH], errors="coerce")
    flat = {schema.EPOCH: [None if pd.isna(e) else int(e) for e in epochs]}
    flat.update({c: rounded(curves[c]) for c in columns})
    order = curves["_trial"].to_numpy()
    starts = np.flatnonzero(np.r_[True, order[1:] != order[:-1]])
    ends = np.r_[starts[1:], len(order)]
    for start, end in zip(starts, ends):  # one slice per trial of the already-rounded columns
        out[int(order[start])]["curve"] = {c: values[start:end] for c, values in flat.items()}
    return out
