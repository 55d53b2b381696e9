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

TRIAL_KEY = ["results_dir", "trial_id"]
REQUIRED_TRIAL_COLUMNS = ["trial_id", "status", "dataset", "backbone", "method", "intervention"]
REQUIRED_CURVE_COLUMNS = ["trial_id", "epoch"]
REQUIRED_NORM_BIN_COLUMNS = ["trial_id", "vector", "bin", "accuracy"]
REQUIRED_EVAL_NORM_COLUMNS = ["split", "vector", "norm"]


class LeaderboardWarning(UserWarning):
    """Something the user should know that does not stop the leaderboard."""


@dataclass
class Results:
    """Merged tables of every results directory read."""

    trials: pd.DataFrame
    curves: pd.DataFrame | None
    norm_bins: pd.DataFrame | None
    dirs: list[Path]


def _table_path(directory: Path, stem: str) -> Path | None:
    for suffix in (".parquet", ".csv"):
        path = directory / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def read_table(path: Path, required: Sequence[str]) -> pd.DataFrame:
    """Read a Parquet/CSV table; ConfigError naming the path if unreadable or incomplete."""
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # any reader failure means a corrupt file for the user
        raise ConfigError(
            "results table", str(path), "a readable Parquet or CSV table", hint=f"{type(exc).__name__}: {exc}"
        ) from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ConfigError(
            "results table columns", str(path), f"a table with columns {list(required)}", hint=f"missing {missing}"
        )
    if "trial_id" in frame.columns:
        frame["trial_id"] = frame["trial_id"].astype(str)
    return frame


def _read_optional(directory: Path, stem: str, required: Sequence[str]) -> pd.DataFrame | None:
    path = _table_path(directory, stem)
    if path is None:
        return None
    frame = read_table(path, required).copy()  # consolidated: per-column conversions fragment it
    frame.insert(0, "results_dir", str(directory))
    return frame


def _read_dir(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    if not directory.is_dir():
        raise ConfigError("results_dir", str(directory), "an existing results directory")
    path = _table_path(directory, "trials")
    if path is None:
        raise ConfigError("results_dir", str(directory), "a directory containing trials.parquet or trials.csv")
    trials = read_table(path, REQUIRED_TRIAL_COLUMNS)
    if trials.empty:
        raise ConfigError("results table", str(path), "a trials table with at least one row")
    duplicated = trials["trial_id"][trials["trial_id"].duplicated()].unique().tolist()
    if duplicated:
        raise ConfigError("trial_id", duplicated[:5], "unique trial ids within one trials table", hint=f"in {path}")
    trials = trials.copy()  # consolidated: per-column conversions fragment it
    trials["status"] = trials["status"].astype(str)
    trials.insert(0, "results_dir", str(directory))
    curves = _read_optional(directory, "curves", REQUIRED_CURVE_COLUMNS)
    norm_bins = _read_optional(directory, "norm_bins", REQUIRED_NORM_BIN_COLUMNS)
    return trials, curves, norm_bins


def _concat(frames: list[pd.DataFrame | None]) -> pd.DataFrame | None:
    present = [f for f in frames if f is not None and not f.empty]
    return pd.concat(present, ignore_index=True) if present else None


def load_results(dirs: Sequence[str | Path]) -> Results:
    """Read and merge results directories (trials, curves, norm_bins)."""
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
    trials = pd.concat([p[0] for p in parts], ignore_index=True)
    dup = trials["trial_id"][trials["trial_id"].duplicated()].unique().tolist()
    if dup:
        warnings.warn(
            f"trial_id(s) {dup[:5]} appear in more than one results directory; all copies are kept and counted",
            LeaderboardWarning,
            stacklevel=2,
        )
    return Results(
        trials=trials, curves=_concat([p[1] for p in parts]), norm_bins=_concat([p[2] for p in parts]), dirs=resolved
    )


def load_eval_norms(trials: pd.DataFrame) -> pd.DataFrame | None:
    """Concatenate each trial's ``<results_dir>/<trial_id>/eval_norms.{parquet,csv}``.

    Per-trial files are optional (only plots use them): a missing file is
    skipped, a corrupt one is skipped with a warning naming it.
    """
    frames = []
    for results_dir, trial_id in trials[TRIAL_KEY].itertuples(index=False):  # one file per trial
        path = _table_path(Path(results_dir) / str(trial_id), "eval_norms")
        if path is None:
            continue
        try:
            frame = read_table(path, REQUIRED_EVAL_NORM_COLUMNS)
        except ConfigError as exc:
            warnings.warn(str(exc), LeaderboardWarning, stacklevel=2)
            continue
        frame = frame.drop(columns=[c for c in TRIAL_KEY if c in frame.columns])
        frame.insert(0, "trial_id", str(trial_id))
        frame.insert(0, "results_dir", results_dir)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else None
