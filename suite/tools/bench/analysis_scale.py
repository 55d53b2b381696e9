"""`normbench claims` and `normbench leaderboard` on sweeps of thousands of trials.

The results directories are synthetic but have the real schema and realistic values: the
committed reference run's rows (``results/reference/digits-reference``: trials, curves, norm
bins, class norms) replicated with new trial ids and seeds and perturbed, so every column the
analyses read is there and varies. Replica ``r`` is a copy of the whole reference sweep whose
seeds are shifted by ``SEED_STRIDE * r`` and whose learning rates are scaled by a factor shared
by ``REPLICAS_PER_GRID_POINT`` replicas: a large sweep is a grid of many groups with a few seeds
each, and every arm keeps its baseline of the same group and seeds. Outcomes are multiplied by
``1 + N(0, NOISE)`` per row (fractions clipped to [0, 1]), so no two trials are equal.

Figures: seconds of each command at each size, and the growth ratio (seconds per trial at the
largest size over the smallest; linear growth reads 1, quadratic the ratio of the sizes).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd

from suite.results import schema, store
from suite.tools.bench.report import Figure, Report
from suite.tools.bench.timing import log

REFERENCE_RUN = Path(__file__).resolve().parents[3] / "results" / "reference" / "digits-reference"
SEED_STRIDE = 1000  # replica r's seeds: reference seed + SEED_STRIDE * r (never a reference seed)
REPLICAS_PER_GRID_POINT = 2  # replicas sharing a learning rate (so a group has twice the reference's seeds)
LR_STEP = 0.01  # grid point g scales every learning rate by 1 + LR_STEP * g
NOISE = 0.02
# Integer-valued columns that name things (an epoch, a bin, a class, a count): copied, never perturbed.
KEPT = {schema.EPOCH, schema.BIN, schema.CLASS, "count", schema.TRAIN_COUNT, schema.TEST_COUNT}
LEADERBOARD_FORMATS = ("md", "csv", "tex")


def reference_tables(reference: Path = REFERENCE_RUN) -> dict[str, pd.DataFrame]:
    tables = store.read_tables(reference)
    missing = [name for name, frame in tables.items() if frame is None]
    if missing:
        raise FileNotFoundError(f"the reference run {reference} lacks the tables {missing}")
    return {name: frame for name, frame in tables.items() if frame is not None}


def _new_ids(trial_ids: pd.Series, replicas: int) -> np.ndarray:
    """[replicas, trials] new trial ids: the reference id's name part, a new seed and hash."""
    out = np.empty((replicas, len(trial_ids)), dtype=object)
    for j, tid in enumerate(trial_ids):
        stem = tid.rsplit("-", 1)[0]
        for r in range(replicas):
            digest = hashlib.sha1(f"{tid}/{r}".encode()).hexdigest()[:8]
            out[r, j] = f"{stem}-r{r}-{digest}"
    return out


def _perturb(frame: pd.DataFrame, columns: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """Multiply ``columns`` by 1 + N(0, NOISE) per row; columns held in [0, 1] stay there."""
    for col in columns:
        values = frame[col].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        scaled = values * (1.0 + NOISE * rng.standard_normal(len(values)))
        if len(finite) and finite.min() >= 0.0 and finite.max() <= 1.0:
            scaled = np.clip(scaled, 0.0, 1.0)
        frame[col] = scaled
    return frame


def _numeric(frame: pd.DataFrame, exclude: set[str]) -> list[str]:
    return [
        c
        for c in frame.columns
        if c not in exclude and pd.api.types.is_float_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]


def synthetic_tables(trials: int, reference: dict[str, pd.DataFrame], seed: int = 0) -> dict[str, pd.DataFrame]:
    """The tables of a ``trials``-trial sweep built from the reference run's (see the module docstring)."""
    rng = np.random.default_rng(seed)
    base = reference["trials"]
    replicas = -(-trials // len(base))
    ids = _new_ids(base[schema.TRIAL_ID], replicas).reshape(-1)[:trials]
    source = np.tile(np.arange(len(base)), replicas)[:trials]
    replica = np.repeat(np.arange(replicas), len(base))[:trials]
    id_map = pd.DataFrame({"source_id": base[schema.TRIAL_ID].to_numpy()[source], "new_id": ids, "replica": replica})

    rows = base.iloc[source].reset_index(drop=True)
    rows[schema.TRIAL_ID] = ids
    rows["seed"] = rows["seed"].to_numpy() + SEED_STRIDE * replica
    rows["lr"] = rows["lr"].to_numpy() * (1.0 + LR_STEP * (replica // REPLICAS_PER_GRID_POINT))
    outcomes = [c for c in _numeric(rows, KEPT) if schema.role(c) == schema.OUTCOME]
    out = {"trials": _perturb(rows, outcomes, rng)}
    for name in ("curves", "norm_bins", "class_norms"):
        frame = reference[name]
        joined = id_map.merge(frame, left_on="source_id", right_on=schema.TRIAL_ID, how="inner", sort=False)
        joined[schema.TRIAL_ID] = joined["new_id"]
        joined = joined.drop(columns=["source_id", "new_id", "replica"])[list(frame.columns)]
        out[name] = _perturb(joined, _numeric(joined, KEPT | {schema.LR}), rng)
    return out


def write_synthetic_results(directory: Path, trials: int, reference: dict[str, pd.DataFrame]) -> Path:
    """A results directory of ``trials`` synthetic trials (consolidated Parquet tables only: the
    analyses read Parquet when it is there, and CSV copies of ~10^6 rows would only cost time)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in synthetic_tables(trials, reference).items():
        store.atomic_write_frame(frame, directory / name, formats=("parquet",))
    return directory


def run_claims(directory: Path) -> None:
    from suite.analysis.claims.cli import write_claims

    write_claims([directory], directory)


def run_leaderboard(directory: Path) -> None:
    from suite.analysis.leaderboard.cli import write_leaderboard

    write_leaderboard([directory], directory / "leaderboard", formats=LEADERBOARD_FORMATS, plots=False)


def measure_analysis_scale(report: Report, settings, workdir: Path) -> None:
    """Seconds of `normbench claims` then `normbench leaderboard` at each size, and their growth."""
    import contextlib
    import io

    sizes = settings.analysis_scale_trials
    reference = reference_tables()
    seconds: dict[str, dict[int, float]] = {"claims": {}, "leaderboard": {}}
    warm_up = write_synthetic_results(Path(workdir) / "analysis-warm-up", len(reference["trials"]), reference)
    with contextlib.redirect_stderr(io.StringIO()):  # imports and first calls, untimed
        run_claims(warm_up)
        run_leaderboard(warm_up)
    for n in sizes:
        log(f"analysis_scale: writing {n:,} synthetic trials")
        directory = write_synthetic_results(Path(workdir) / f"analysis-{n}", n, reference)
        # claims first: the leaderboard shows the claims.csv it finds, as after `normbench claims`.
        for command, fn in (("claims", run_claims), ("leaderboard", run_leaderboard)):
            log(f"analysis_scale: normbench {command} on {n:,} trials")
            start = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):  # input warnings would repeat per size
                fn(directory)
            seconds[command][n] = time.perf_counter() - start
    small, large = sizes[0], sizes[-1]
    for command, by_size in seconds.items():
        for n in sizes:
            report.add(
                "analysis_scale",
                command,
                Figure(
                    f"seconds_{n}",
                    f"normbench {command} on {n:,} trials"
                    + (f" (--formats {','.join(LEADERBOARD_FORMATS)} --no-plots)" if command == "leaderboard" else ""),
                    by_size[n],
                    "s",
                ),
            )
        report.add(
            "analysis_scale",
            command,
            Figure(
                f"growth_ratio_{large}_vs_{small}",
                f"seconds per trial, {large:,} vs {small:,} trials (linear growth: 1)",
                (by_size[large] / large) / (by_size[small] / small),
                "x",
            ),
        )
