"""The sweep driver's table maintenance at 100, 1,000 and 10,000 trials, without training or Ray.

`suite.sweep.tables.SweepTables` is what Tune's callback calls on every report (trial start,
each epoch's curves row, the final row with every curve, norm bin and class norm, retries,
errors, the trial's end). Here it is driven directly with synthetic reports whose rows are the
committed reference run's (``results/reference/digits-reference``: a real trials row, curves
rows renumbered to the sweep's epochs, its norm bins and class norms), so every write has the
size and columns of a real one.

At each size N the sweep is first filled with N - S finished trials (start, final report,
end: the state the driver is in when a sweep's last trials run), then S trials report in
Tune's interleaved order (all start; epoch 0, 1, ... of each in turn; then each trial's final
report and end), and that window is timed: its seconds per report are the figure, and the
largest size's over the smallest's (``per_report_ratio_<large>_vs_<small>``) must stay near 1
(target <= 2) for the cost of a report not to grow with the sweep. The fill is timed too (per
finished trial), and the driver's last consolidation of the tables (``close``) at that size.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from suite.results import schema, store
from suite.tools.bench.report import Figure, Report
from suite.tools.bench.timing import log

SWEEP = "bench-sweep-scale"


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A table row as plain Python values (what a Tune report's JSON decodes to)."""
    return {k: v.item() if hasattr(v, "item") and not hasattr(v, "__len__") else v for k, v in row.items()}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class SyntheticReports:
    """The payloads of one trial's reports, built from one reference trial's rows."""

    def __init__(self, epochs: int) -> None:
        from suite.tools.bench.analysis_scale import reference_tables

        tables = reference_tables()
        trials = tables["trials"]
        row = trials[trials[schema.STATUS] == schema.COMPLETED].iloc[0].to_dict()
        tid = row[schema.TRIAL_ID]
        self.epochs = epochs
        self.config = {
            k: v for k, v in _plain(row).items() if schema.role(k) in (schema.SCIENCE, schema.RUN) and not _missing(v)
        }
        self.config["epochs"] = epochs
        self.row = {**_plain(row), "epochs": epochs, schema.EPOCHS_COMPLETED: epochs}
        curves = tables["curves"]
        own = [_plain(r) for r in curves[curves[schema.TRIAL_ID] == tid].sort_values(schema.EPOCH).to_dict("records")]
        trained = [c for c in own if c[schema.EPOCH] > 0]
        self.curves = [{**own[0], schema.EPOCH: 0}] + [
            {**trained[(e - 1) % len(trained)], schema.EPOCH: e} for e in range(1, epochs + 1)
        ]
        for c in self.curves:
            c.pop(schema.TRIAL_ID, None)
        self.bins = self._rows(tables["norm_bins"], tid)
        self.class_norms = self._rows(tables["class_norms"], tid)

    @staticmethod
    def _rows(frame, tid: str) -> list[dict[str, Any]]:
        rows = [_plain(r) for r in frame[frame[schema.TRIAL_ID] == tid].to_dict("records")]
        for r in rows:
            r.pop(schema.TRIAL_ID, None)
        return rows

    def final(self, tid: str) -> tuple[dict, list[dict], list[dict], list[dict]]:
        return {**self.row, schema.TRIAL_ID: tid}, self.curves, self.bins, self.class_norms


def prefill(directory: Path, trial_ids: list[str], reports: SyntheticReports) -> None:
    """The consolidated tables of ``trial_ids``, finished: what an interrupted sweep leaves for
    ``--resume`` (its driver consolidates on the way out and drops the finished trials' parts)."""
    if not trial_ids:
        return
    row, curves, bins, class_norms = reports.final(trial_ids[0])
    n = len(trial_ids)

    def tiled(rows: list[dict[str, Any]]) -> pd.DataFrame:
        frame = pd.DataFrame(rows)
        frame = frame.loc[frame.index.repeat(n)].reset_index(drop=True) if len(rows) == 1 else pd.concat([frame] * n)
        frame.insert(0, schema.TRIAL_ID, np.repeat(trial_ids, len(rows)))
        return frame.reset_index(drop=True)

    trials = tiled([{k: v for k, v in row.items() if k != schema.TRIAL_ID} | {schema.SWEEP: SWEEP}])
    trials["seed"] = np.arange(n)
    store.write_tables(
        directory,
        {"trials": trials, "curves": tiled(curves), "norm_bins": tiled(bins), "class_norms": tiled(class_norms)},
    )


def drive_sweep(directory: Path, trials: int, window: int, reports: SyntheticReports) -> dict[str, float]:
    """A sweep of ``trials`` trials whose ``trials - window`` first ones have finished (`prefill`): a
    driver opens its tables (``--resume``), the last ``window`` trials report in Tune's interleaved
    order (one of them retried after its middle epoch, one failing instead of its final report
    when the window has three or more), and the driver closes the tables."""
    from suite.sweep.tables import SweepTables

    ids = [f"t{i:05d}" for i in range(trials)]
    planned = {tid: (i, dict(reports.config, seed=i)) for i, tid in enumerate(ids)}
    prefill(directory, ids[: trials - window], reports)
    tables = SweepTables(directory, SWEEP, planned)
    start = time.perf_counter()
    tables.open()
    opened = time.perf_counter()
    running = ids[trials - window :]
    retried, failing = running[0], running[1] if len(running) >= 3 else None
    count = 0
    for tid in running:
        tables.start(tid)
        count += 1
    middle = len(reports.curves) // 2
    for e, curve in enumerate(reports.curves):
        for tid in running:
            tables.epoch(tid, curve)
            count += 1
            if tid == retried and e == middle:  # the worker died; Tune restores it, which re-reports the epoch
                tables.retry(tid, 1, "RuntimeError: worker died (bench)")
                tables.epoch(tid, curve)
                count += 2
    for tid in running:
        if tid == failing:
            tables.error(tid, "ValueError: non-finite loss (bench)")
            count += 1
            continue
        tables.final(tid, *reports.final(tid))
        tables.ended(tid, "final", reports.epochs)
        count += 2
    reported = time.perf_counter()
    tables.close()
    closed = time.perf_counter()
    return {
        "per_report_ms": 1e3 * (reported - opened) / count,
        "reports": float(count),
        "reports_s": reported - opened,
        "open_s": opened - start,
        "close_s": closed - reported,
        "total_s": closed - start,
    }


def measure_sweep_scale(report: Report, settings, workdir: Path) -> None:
    sizes, epochs, window = settings.sweep_scale_trials, settings.sweep_scale_epochs, settings.sweep_scale_window
    reports = SyntheticReports(epochs)
    drive_sweep(Path(workdir) / "sweep-warm-up", 3, 3, SyntheticReports(2))  # imports and first writes, untimed
    results: dict[int, dict[str, float]] = {}
    for n in sizes:
        log(f"sweep_scale: {n:,} trials x {epochs} epochs, the last {window} reporting")
        r = results[n] = drive_sweep(Path(workdir) / f"sweep-{n}", n, window, reports)
        group = f"{n} trials x {epochs} epochs"
        for key, label, unit in (
            ("per_report_ms", f"per report ({int(r['reports'])} reports of the last {window} trials)", "ms"),
            ("reports_s", "those reports in total", "s"),
            ("open_s", f"open the tables of {n - window:,} finished trials (--resume)", "s"),
            ("close_s", "close: the last consolidation", "s"),
            ("total_s", "open, reports and close", "s"),
        ):
            report.add("sweep_scale", group, Figure(key, label, r[key], unit))
    small, large = sizes[0], sizes[-1]
    report.add(
        "sweep_scale",
        "growth",
        Figure(
            f"per_report_ratio_{large}_vs_{small}",
            f"per report, {large:,} trials vs {small:,} (target <= 2)",
            results[large]["per_report_ms"] / results[small]["per_report_ms"],
            "x",
        ),
    )
