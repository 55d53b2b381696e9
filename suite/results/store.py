"""Results on disk: per-trial files, per-trial table parts, and the consolidated tables.

A results directory holds:

* one folder per trial (``config.yaml``, ``result.json``, ``curves.csv``,
  ``norm_bins.csv``, ``class_norms.csv``, ``eval_norms.parquet``, checkpoints),
  written by the trial itself (`suite.trial.train`);
* for a sweep, ``_parts/<table>/<trial_id>.parquet``: each trial's rows of each
  table, rewritten by the sweep driver as that trial reports. A report costs the
  size of one trial's rows, never the size of the sweep;
* the consolidated tables ``trials``, ``curves``, ``norm_bins``, ``class_norms``
  (Parquet and CSV) that people open: rebuilt from the trial folders (local
  trials) or from the parts (sweeps: periodically, at the end, at ``--resume``).

Every reader goes through `read_tables`, which lays the parts over the
consolidated tables, so a running or killed sweep reads exactly as a finished
one. Every write is atomic (`suite.core.files`): a crash or a concurrent reader
never sees half a file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from suite.core.errors import ConfigError
from suite.core.files import atomic_path
from suite.core.jsonio import write_json
from suite.results import schema

TABLES = schema.TABLES
RESULT_FILE = "result.json"
CURVES_FILE = "curves.csv"
BINS_FILE = "norm_bins.csv"
CLASS_NORMS_FILE = "class_norms.csv"
EVAL_NORMS_FILE = "eval_norms.parquet"
PARTS_DIR = "_parts"
TRIAL_FILES = {"curves": CURVES_FILE, "norm_bins": BINS_FILE, "class_norms": CLASS_NORMS_FILE}
# The columns that identify a row of each table: a later row with the same key replaces an earlier one.
ROW_KEYS = {
    "trials": (schema.TRIAL_ID,),
    "curves": (schema.TRIAL_ID, schema.EPOCH),
    "norm_bins": (schema.TRIAL_ID, schema.BIN_VECTOR, schema.BINNING, schema.BIN),
    "class_norms": (schema.TRIAL_ID, schema.BIN_VECTOR, schema.CLASS),
}


def atomic_write_frame(frame: pd.DataFrame, path_stem: Path, formats: Iterable[str] = ("parquet", "csv")) -> None:
    """Write ``<stem>.parquet`` and ``<stem>.csv`` atomically."""
    for fmt in formats:
        with atomic_path(Path(path_stem).with_suffix(f".{fmt}")) as tmp:
            if fmt == "parquet":
                frame.to_parquet(tmp, index=False)
            else:
                frame.to_csv(tmp, index=False)


# ---------------------------------------------------------------- one trial's folder
def write_result(trial_dir: Path, row: dict[str, Any]) -> None:
    """The trial's row, as ``result.json`` in its directory (atomically)."""
    write_json(Path(trial_dir) / RESULT_FILE, row)


def read_result(trial_dir: Path) -> dict | None:
    """The row in ``result.json`` (None when the trial never started writing)."""
    path = Path(trial_dir) / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def write_trial_files(
    trial_dir: Path,
    row: dict[str, Any],
    curves: list[dict],
    norm_bins: list[dict],
    class_norms: list[dict],
    eval_norms: pd.DataFrame | None,
) -> None:
    """Everything a finished trial leaves in its directory; the row last, so a row on disk
    always has its curves and tables beside it."""
    trial_dir = Path(trial_dir)
    for rows, name in ((curves, CURVES_FILE), (norm_bins, BINS_FILE), (class_norms, CLASS_NORMS_FILE)):
        if rows:
            atomic_write_frame(pd.DataFrame(rows), trial_dir / Path(name).stem, formats=("csv",))
    if eval_norms is not None:
        atomic_write_frame(eval_norms, trial_dir / Path(EVAL_NORMS_FILE).stem, formats=("parquet",))
    write_result(trial_dir, row)


def load_trial_dir(trial_dir: Path) -> dict[str, list[dict]] | None:
    """The tables' rows of one trial directory (``trials``: its one row), or None without a row."""
    row = read_result(trial_dir)
    if row is None:
        return None
    out = {"trials": [row]}
    for name, file in TRIAL_FILES.items():
        path = Path(trial_dir) / file
        out[name] = pd.read_csv(path).to_dict("records") if path.is_file() else []
    return out


def flatten_config(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """Config columns for the tables: lists and dicts become JSON strings."""
    return {k: json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v for k, v in cfg_dict.items()}


# ---------------------------------------------------------------- consolidated tables
def _frame(rows: list[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Rows as a frame whose numeric columns are numeric even when some rows had None."""
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    for col in frame.columns:
        if frame[col].dtype == object:
            converted = pd.to_numeric(frame[col], errors="coerce")
            if converted.notna().sum() == frame[col].notna().sum() and frame[col].notna().any():
                frame[col] = converted
    return frame


def write_tables(results_dir: Path, tables: Mapping[str, list[dict] | pd.DataFrame]) -> None:
    """Write each named table (``schema.TABLES``) as Parquet and CSV, atomically."""
    results_dir = Path(results_dir)
    for name in schema.TABLES:
        if name in tables:
            atomic_write_frame(_frame(tables[name]), results_dir / name)


def table_path(results_dir: Path, name: str) -> Path | None:
    """The consolidated table's file: Parquet when present, else CSV, else None."""
    for suffix in (".parquet", ".csv"):
        path = Path(results_dir) / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def read_table_file(path: Path) -> pd.DataFrame:
    """One table file; ConfigError naming it when it cannot be read."""
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # any reader failure means a corrupt file for the user
        raise ConfigError(
            "results table", str(path), "a readable Parquet or CSV table", hint=f"{type(exc).__name__}: {exc}"
        ) from exc
    if schema.TRIAL_ID in frame.columns:
        frame[schema.TRIAL_ID] = frame[schema.TRIAL_ID].astype(str)
    return frame


def collect_results(results_dir: Path) -> pd.DataFrame:
    """Local trials: rebuild the tables from every trial directory; returns `trials`."""
    results_dir = Path(results_dir)
    tables: dict[str, list[dict]] = {name: [] for name in schema.TABLES}
    for trial_dir in sorted(p for p in results_dir.iterdir() if p.is_dir() and p.name != PARTS_DIR):
        for name, rows in (load_trial_dir(trial_dir) or {}).items():
            tables[name] += rows
    write_tables(results_dir, tables)
    return pd.DataFrame(tables["trials"])


# ---------------------------------------------------------------- per-trial parts (sweeps)
def part_path(results_dir: Path, table: str, trial_id: str) -> Path:
    return Path(results_dir) / PARTS_DIR / table / f"{trial_id}.parquet"


def write_part(results_dir: Path, table: str, trial_id: str, rows: list[dict[str, Any]]) -> None:
    """Replace one trial's rows of one table (no rows: the trial has none in that table)."""
    path = part_path(results_dir, table, trial_id)
    if not rows:
        path.unlink(missing_ok=True)
        return
    frame = _frame(rows)
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)


def drop_parts(results_dir: Path, trial_ids: Iterable[str]) -> None:
    """Forget trials (e.g. ones a changed spec no longer plans): their parts go."""
    for trial_id in trial_ids:
        for table in schema.TABLES:
            part_path(results_dir, table, trial_id).unlink(missing_ok=True)
    parts = Path(results_dir) / PARTS_DIR
    for directory in [*(parts / t for t in schema.TABLES), parts]:  # no empty folders left behind
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()


def part_trial_ids(results_dir: Path) -> set[str]:
    """Trials that have a part in the ``trials`` table."""
    directory = Path(results_dir) / PARTS_DIR / "trials"
    return {p.stem for p in directory.glob("*.parquet")} if directory.is_dir() else set()


def _read_parts(results_dir: Path, table: str, trial_ids: Iterable[str] | None = None) -> pd.DataFrame | None:
    directory = Path(results_dir) / PARTS_DIR / table
    if not directory.is_dir():
        return None
    files = (
        sorted(directory.glob("*.parquet"))
        if trial_ids is None
        else [p for p in (directory / f"{t}.parquet" for t in trial_ids) if p.is_file()]
    )
    if not files:
        return None
    pieces = [pq.read_table(f) for f in files]
    frame = pa.concat_tables(pieces, promote_options="permissive").to_pandas()
    frame[schema.TRIAL_ID] = frame[schema.TRIAL_ID].astype(str)
    return frame


def read_tables(
    results_dir: Path, names: Iterable[str] = schema.TABLES, order: Mapping[str, int] | None = None
) -> dict[str, pd.DataFrame | None]:
    """Every table as readers see it (None where a table has no rows anywhere).

    A trial with parts (a sweep's driver writes them) is owned by its parts: its rows of
    every table come from them, and whatever an earlier consolidation wrote of it is
    replaced. ``order`` (trial -> position, e.g. the sweep's grid order) sorts the rows."""
    owned = part_trial_ids(results_dir)
    out: dict[str, pd.DataFrame | None] = {}
    for name in names:
        path = table_path(results_dir, name)
        base = read_table_file(path) if path is not None else None
        if base is not None and owned:
            base = base[~base[schema.TRIAL_ID].isin(owned)]
        pieces = [f for f in (base, _read_parts(results_dir, name)) if f is not None and len(f)]
        frame = pd.concat(pieces, ignore_index=True) if pieces else None
        if frame is not None and order is not None:
            keys = [k for k in ROW_KEYS[name][1:] if k in frame.columns]
            frame = (
                frame.assign(_order=frame[schema.TRIAL_ID].map(order).fillna(len(order)))
                .sort_values(["_order", *keys], kind="stable")
                .drop(columns="_order")
                .reset_index(drop=True)
            )
        out[name] = frame
    return out


def consolidate(results_dir: Path, order: Mapping[str, int] | None = None) -> dict[str, pd.DataFrame | None]:
    """Write the consolidated tables from the parts and what was consolidated before."""
    tables = read_tables(results_dir, order=order)
    write_tables(results_dir, {k: v for k, v in tables.items() if v is not None})
    return tables
