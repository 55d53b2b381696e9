"""Read one or more results directories into merged tables.

Why a module of its own: the trainer writes the tables (see "Results" in
docs/ARCHITECTURE.md) and the leaderboard must fail loudly, naming the file,
when a directory is empty, missing or corrupt, instead of producing a quietly
wrong leaderboard.

Tables are read from Parquet when present, else CSV. Every row gets a
``results_dir`` column; trials are identified by ``(results_dir, trial_id)``
so the same ``trial_id`` in two directories never mixes their curves.
Duplicate ``trial_id``s across directories are kept (both rows count) with a
warning; duplicates inside one directory's trials table are an error.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from suite.core.errors import ConfigError
from suite.results import schema, store

TRIAL_KEY = [schema.RESULTS_DIR, schema.TRIAL_ID]
REQUIRED_TRIAL_COLUMNS = [schema.TRIAL_ID, schema.STATUS, "dataset", "backbone", "method", "intervention"]
REQUIRED = {
    "curves": [schema.TRIAL_ID, schema.EPOCH],
    "norm_bins": [schema.TRIAL_ID, schema.BIN_VECTOR, schema.BIN, "accuracy"],
    "class_norms": list(schema.CLASS_NORMS_COLUMNS),
}
REQUIRED_EVAL_NORM_COLUMNS = list(schema.EVAL_NORMS_COLUMNS[:3])  # split, vector, norm


class LeaderboardWarning(UserWarning):
    """Something the user should know that does not stop the leaderboard."""


@dataclass
class Results:
    """Merged tables of every results directory read."""

    trials: pd.DataFrame
    curves: pd.DataFrame | None
    norm_bins: pd.DataFrame | None
    dirs: list[Path]
    class_norms: pd.DataFrame | None = None


def _required(frame: pd.DataFrame, required: Sequence[str], where: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ConfigError(
            "results table columns", where, f"a table with columns {list(required)}", hint=f"missing {missing}"
        )


def _read_dir(directory: Path) -> dict[str, pd.DataFrame | None]:
    if not directory.is_dir():
        raise ConfigError("results_dir", str(directory), "an existing results directory")
    tables = store.read_tables(directory)
    trials = tables["trials"]
    if trials is None:
        raise ConfigError("results_dir", str(directory), "a directory containing trials.parquet or trials.csv")
    if trials.empty:
        raise ConfigError("results table", str(directory / "trials"), "a trials table with at least one row")
    _required(trials, REQUIRED_TRIAL_COLUMNS, str(directory / "trials"))
    duplicated = trials[schema.TRIAL_ID][trials[schema.TRIAL_ID].duplicated()].unique().tolist()
    if duplicated:
        raise ConfigError(
            schema.TRIAL_ID, duplicated[:5], "unique trial ids within one trials table", hint=f"in {directory}"
        )
    out = {}
    for name, frame in tables.items():
        if frame is None:
            out[name] = None
            continue
        _required(frame, REQUIRED.get(name, ()), str(directory / name))
        frame = frame.copy()  # consolidated: per-column conversions fragment it
        frame.insert(0, schema.RESULTS_DIR, str(directory))
        out[name] = frame
    out["trials"][schema.STATUS] = out["trials"][schema.STATUS].astype(str)
    return out


def _concat(frames: list[pd.DataFrame | None]) -> pd.DataFrame | None:
    present = [f for f in frames if f is not None and not f.empty]
    return pd.concat(present, ignore_index=True) if present else None


def load_results(dirs: Sequence[str | Path]) -> Results:
    """Read and merge results directories (trials, curves, norm_bins, class_norms)."""
    if not dirs:
        raise ConfigError("results_dir", [], "one or more results directories")
    resolved: list[Path] = []
    for d in dirs:
        path = Path(d)
        if any(path.resolve() == p.resolve() for p in resolved):
            warnings.warn(f"results directory {path} given twice; read once", LeaderboardWarning, stacklevel=2)
            continue
        resolved.append(path)
    parts = [_read_dir(d) for d in resolved]
    trials = pd.concat([p["trials"] for p in parts], ignore_index=True)
    dup = trials[schema.TRIAL_ID][trials[schema.TRIAL_ID].duplicated()].unique().tolist()
    if dup:
        warnings.warn(
            f"trial_id(s) {dup[:5]} appear in more than one results directory; all copies are kept and counted",
            LeaderboardWarning,
            stacklevel=2,
        )
    return Results(
        trials=trials,
        curves=_concat([p["curves"] for p in parts]),
        norm_bins=_concat([p["norm_bins"] for p in parts]),
        class_norms=_concat([p["class_norms"] for p in parts]),
        dirs=resolved,
    )


def load_eval_norms(trials: pd.DataFrame) -> pd.DataFrame | None:
    """Concatenate each trial's ``<results_dir>/<trial_id>/eval_norms.{parquet,csv}``.

    Per-trial files are optional (only plots use them): a missing file is
    skipped, a corrupt one is skipped with a warning naming it.
    """
    frames = []
    for results_dir, trial_id in trials[TRIAL_KEY].itertuples(index=False):  # one file per trial
        path = store.table_path(Path(results_dir) / str(trial_id), "eval_norms")
        if path is None:
            continue
        try:
            frame = store.read_table_file(path)
            _required(frame, REQUIRED_EVAL_NORM_COLUMNS, str(path))
        except ConfigError as exc:
            warnings.warn(str(exc), LeaderboardWarning, stacklevel=2)
            continue
        frame = frame.drop(columns=[c for c in TRIAL_KEY if c in frame.columns])
        frame.insert(0, schema.TRIAL_ID, str(trial_id))
        frame.insert(0, schema.RESULTS_DIR, results_dir)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else None
