"""Results on disk: per-trial files and the `trials` / `curves` / `norm_bins` tables.

Every write goes to a temporary file in the same directory and is renamed into
place, so a crash or a concurrent reader never sees half a table. The tables
are rebuilt from the per-trial directories, which makes a half-finished sweep
(or several processes writing into one results directory) always consistent.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from suite.core.files import atomic_path
from suite.core.jsonio import write_json

TABLES = ("trials", "curves", "norm_bins")
RESULT_FILE = "result.json"
CURVES_FILE = "curves.csv"
BINS_FILE = "norm_bins.csv"
EVAL_NORMS_FILE = "eval_norms.parquet"


def atomic_write_frame(frame: pd.DataFrame, path_stem: Path, formats: Iterable[str] = ("parquet", "csv")) -> None:
    """Write ``<stem>.parquet`` and ``<stem>.csv`` atomically."""
    for fmt in formats:
        with atomic_path(Path(path_stem).with_suffix(f".{fmt}")) as tmp:
            if fmt == "parquet":
                frame.to_parquet(tmp, index=False)
            else:
                frame.to_csv(tmp, index=False)


def write_result(trial_dir: Path, row: dict[str, Any]) -> None:
    """The trial's row, as ``result.json`` in its directory (atomically)."""
    write_json(Path(trial_dir) / RESULT_FILE, row)


def flatten_config(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """Config columns for the tables: lists and dicts become JSON strings."""
    flat = {}
    for key, value in cfg_dict.items():
        flat[key] = json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value
    return flat


def _numeric_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for col in frame.columns:
        if frame[col].dtype == object:
            converted = pd.to_numeric(frame[col], errors="coerce")
            if converted.notna().sum() == frame[col].notna().sum() and frame[col].notna().any():
                frame[col] = converted
    return frame


def write_tables(results_dir: Path, trials_rows: list[dict], curves_rows: list[dict], bins_rows: list[dict] | None = None) -> None:
    results_dir = Path(results_dir)
    atomic_write_frame(_numeric_frame(trials_rows), results_dir / "trials")
    atomic_write_frame(_numeric_frame(curves_rows), results_dir / "curves")
    if bins_rows is not None:
        atomic_write_frame(pd.DataFrame(bins_rows), results_dir / "norm_bins")


def load_trial_dir(trial_dir: Path) -> tuple[dict | None, list[dict], list[dict]]:
    """(result row or None, curves rows, norm-bin rows) of one trial directory."""
    result_path = trial_dir / RESULT_FILE
    if not result_path.is_file():
        return None, [], []
    row = json.loads(result_path.read_text())
    curves = pd.read_csv(trial_dir / CURVES_FILE).to_dict("records") if (trial_dir / CURVES_FILE).is_file() else []
    bins = pd.read_csv(trial_dir / BINS_FILE).to_dict("records") if (trial_dir / BINS_FILE).is_file() else []
    return row, curves, bins


def collect_results(results_dir: Path) -> pd.DataFrame:
    """Rebuild the three tables from every trial directory; returns `trials`."""
    results_dir = Path(results_dir)
    trials, curves, bins = [], [], []
    for trial_dir in sorted(p for p in results_dir.iterdir() if p.is_dir()):
        row, c, b = load_trial_dir(trial_dir)
        if row is None:
            continue
        trials.append(row)
        curves += c
        bins += b
    write_tables(results_dir, trials, curves, bins)
    return pd.DataFrame(trials)
