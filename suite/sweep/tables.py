"""The sweep's tables, kept by the driver at a cost per report that does not grow with the sweep.

Every report a trial sends through Tune (an epoch's curves row, then the final
row with all curves, norm bins and class norms) rewrites only *that trial's*
parts (`suite.results.store.write_part`), so a report costs the size of one
trial, however many trials the sweep has. The consolidated ``trials`` /
``curves`` / ``norm_bins`` / ``class_norms`` files are rebuilt from the parts
when the driver starts (``--resume``, ``--update``), in a background thread at
most every minute while it runs (off Tune's event loop), and at the end.
Everything arrives through Tune's reports, so this works on a multi-node
cluster without a shared file system.

`SweepTables` is the bookkeeping (plain Python, tested on recorded event
streams); `TablesCallback` feeds it from Tune's callback hooks.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import cloudpickle
from ray.tune import Callback

from suite.results import schema, store
from suite.sweep import console
from suite.sweep.failures import MAX_CHARS, describe_failure

CONSOLIDATE_EVERY_S = 60.0


class SweepTables:
    """What the driver records of each planned trial, written as that trial's parts.

    ``planned`` maps trial id -> (position in the sweep, flat config columns). Rows of
    trials no longer planned leave the tables when a driver opens them (``--update``
    over a changed spec); a searched sweep registers its trials as the searcher draws
    them, and keeps every trial already recorded."""

    def __init__(
        self,
        results_dir: str | Path,
        sweep: str,
        planned: dict[str, tuple[int, dict[str, Any]]],
        searched: bool = False,
    ) -> None:
        self.results_dir = Path(results_dir)
        self.sweep = sweep
        self.planned = dict(planned)
        self.searched = searched
        self._rows: dict[str, dict[str, Any]] = {}  # the trials row of every trial seen
        self._curves: dict[str, dict[int, dict]] = {}  # curves of the trials still running
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment (Tuner.restore brings them back);
        # the records themselves are re-read from disk by `open`.
        return {**self.__dict__, "_lock": None, "_rows": {}, "_curves": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- opening and closing ----------------------------------------------------------------
    def open(self) -> None:
        """Take over what earlier drivers recorded (``--resume``, ``--update``): finished trials
        keep their rows, unfinished ones their curves so far; rows of trials not planned go."""
        tables = store.read_tables(self.results_dir)
        trials = tables["trials"]
        if trials is not None and self.searched:
            for row in trials.to_dict("records"):  # drawn by an earlier driver: its row holds config and draw
                columns = {
                    k: v
                    for k, v in _clean(row).items()
                    if (schema.role(k) in (schema.SCIENCE, schema.RUN) or k.startswith(schema.SEARCH_PREFIX))
                    and not _missing(v)
                }
                self.planned.setdefault(row[schema.TRIAL_ID], (int(columns.get(schema.SEARCH_INDEX, 0)), columns))
        known = set(trials[schema.TRIAL_ID]) if trials is not None else set()
        store.drop_parts(self.results_dir, (known | store.part_trial_ids(self.results_dir)) - set(self.planned))
        for row in trials.to_dict("records") if trials is not None else []:
            if row[schema.TRIAL_ID] in self.planned:
                self._rows[row[schema.TRIAL_ID]] = _clean(row)
        curves = tables["curves"]
        if curves is not None:
            unfinished = {t for t, r in self._rows.items() if r.get(schema.STATUS) not in schema.FINISHED_STATUSES}
            for row in curves[curves[schema.TRIAL_ID].isin(unfinished)].to_dict("records"):
                self._curves.setdefault(row[schema.TRIAL_ID], {})[int(row[schema.EPOCH])] = _clean(row)
        self.consolidate()

    def consolidate(self) -> None:
        """Rebuild the consolidated tables (the planned trials only, in the sweep's order)."""
        with self._lock:
            tables = store.read_tables(self.results_dir, order=self.order())
            store.write_tables(
                self.results_dir,
                {
                    name: frame[frame[schema.TRIAL_ID].isin(set(self.planned))]
                    for name, frame in tables.items()
                    if frame is not None
                },
            )

    def close(self) -> None:
        """The last consolidation; the parts of finished trials then go (the tables hold them),
        those of unfinished trials stay for the next driver."""
        self.consolidate()
        done = [
            tid
            for tid, row in self._rows.items()
            if row.get(schema.STATUS) in (*schema.FINISHED_STATUSES, schema.FAILED)
        ]
        store.drop_parts(self.results_dir, done)

    def order(self) -> dict[str, int]:
        return {tid: index for tid, (index, _) in self.planned.items()}

    # -- events -------------------------------------------------------------------------------
    def register(self, tid: str, index: int, columns: dict[str, Any]) -> None:
        """A trial a searcher drew (grid sweeps plan every trial up front)."""
        self.planned.setdefault(tid, (index, columns))

    def start(self, tid: str) -> None:
        if self._status(tid) != schema.COMPLETED:
            self._set_row(tid, self._base_row(tid, schema.RUNNING))

    def epoch(self, tid: str, curve: dict[str, Any]) -> None:
        """One finished epoch (a retried trial re-reports the epochs after its checkpoint: the latest wins)."""
        self._curves.setdefault(tid, {})[int(curve[schema.EPOCH])] = {**curve, schema.TRIAL_ID: tid}
        self._write(tid, "curves", list(self._sorted_curves(tid)))
        if self._status(tid) != schema.COMPLETED:
            self._set_row(tid, self._base_row(tid, schema.RUNNING, self._rows.get(tid, {}).get(schema.ERROR, "")))

    def final(
        self, tid: str, row: dict[str, Any], curves: list[dict], bins: list[dict], class_norms: list[dict]
    ) -> None:
        """The trial's final report: its row, every curve row, its norm bins and class norms."""
        self._curves[tid] = {int(c[schema.EPOCH]): {**c, schema.TRIAL_ID: tid} for c in curves}
        self._write(tid, "curves", list(self._sorted_curves(tid)))
        self._write(tid, "norm_bins", [{**b, schema.TRIAL_ID: tid} for b in bins])
        self._write(tid, "class_norms", [{**c, schema.TRIAL_ID: tid} for c in class_norms])
        search = {k: v for k, v in self.planned.get(tid, (0, {}))[1].items() if k.startswith(schema.SEARCH_PREFIX)}
        self._set_row(tid, {**row, schema.TRIAL_ID: tid, schema.SWEEP: self.sweep, **search})
        self._curves.pop(tid, None)  # finished: its curves live in its part

    def retry(self, tid: str, failures: int, error: str) -> None:
        self._set_row(tid, self._base_row(tid, schema.RUNNING, f"retrying ({failures} failure(s)): {error}"))

    def error(self, tid: str, error: str) -> None:
        """Failed for good: the row keeps what the trial reported and names the root cause."""
        if self._status(tid) != schema.COMPLETED:
            self._set_row(tid, {**self._rows.get(tid, {}), **self._base_row(tid, schema.FAILED, error)})
        self._curves.pop(tid, None)

    def ended(self, tid: str, last_kind: str | None, last_epoch: int) -> None:
        """Tune says the trial is done: completed (it sent its final report), stopped early by
        a scheduler after an epoch report, or gone without a final report (failed)."""
        status = self._status(tid)
        if status == schema.RUNNING and self.searched and last_kind == "epoch":
            self._set_row(tid, self._stopped_row(tid, last_epoch))
        elif status in (None, schema.RUNNING):
            self._set_row(tid, self._base_row(tid, schema.FAILED, "trial ended without a final report"))
        self._curves.pop(tid, None)

    def interrupt(self, reason: str) -> list[str]:
        """The sweep was stopped (SIGINT, SIGTERM): every unfinished trial is ``interrupted``, in the tables
        and in its own ``result.json``, with the epochs its curves hold and its newest checkpoint on disk
        (the worker may have finished an epoch, or saved one, after the driver's last report)."""
        from suite.trial import checkpoint as ckpt  # torch: only when a sweep was stopped
        from suite.trial.train import CHECKPOINTS

        stopped = [tid for tid, row in self._rows.items() if row.get(schema.STATUS) == schema.RUNNING]
        for tid in stopped:
            trial_dir = Path(self.results_dir) / tid
            row = self._base_row(tid, schema.INTERRUPTED, reason)
            row[schema.EPOCHS_COMPLETED] = max(row[schema.EPOCHS_COMPLETED], _epochs_on_disk(trial_dir))
            row[schema.LAST_CHECKPOINT] = ckpt.newest(trial_dir / CHECKPOINTS)
            self._set_row(tid, row)
            recorded = store.read_result(trial_dir)
            if recorded is not None:
                recorded.update({k: row[k] for k in schema.STATUS_COLUMNS if k in row and k != schema.NOTES})
                store.write_result(trial_dir, recorded)
        return stopped

    # -- rows -----------------------------------------------------------------------------------
    def rows(self) -> dict[str, dict[str, Any]]:
        return dict(self._rows)

    def _status(self, tid: str) -> str | None:
        return self._rows.get(tid, {}).get(schema.STATUS)

    def _epochs_done(self, tid: str) -> int:
        epochs = [e for e in self._curves.get(tid, {}) if e > 0]
        return max(epochs) if epochs else int(self._rows.get(tid, {}).get(schema.EPOCHS_COMPLETED) or 0)

    def _base_row(self, tid: str, status: str, error: str = "") -> dict[str, Any]:
        return {
            schema.TRIAL_ID: tid,
            schema.SWEEP: self.sweep,
            schema.STATUS: status,
            schema.ERROR: error,
            **self.planned.get(tid, (0, {}))[1],
            schema.EPOCHS_COMPLETED: self._epochs_done(tid),
        }

    def _stopped_row(self, tid: str, epoch: int) -> dict[str, Any]:
        """Status ``stopped``, the epoch reached and the metrics of its last evaluated epoch."""
        row = self._base_row(tid, schema.STOPPED)
        row.update(
            {schema.EPOCHS_COMPLETED: epoch, schema.NOTES: f"stopped early by the scheduler (ASHA) after epoch {epoch}"}
        )
        curves = list(self._sorted_curves(tid))
        for curve in curves:
            row.update(
                {
                    k: v
                    for k, v in curve.items()
                    if schema.parse_knn(k) is not None and isinstance(v, (int, float)) and math.isfinite(v)
                }
            )
        if curves:
            row[schema.FINAL_LOSS] = curves[-1].get(schema.LOSS, math.nan)
        return row

    def _sorted_curves(self, tid: str):
        curves = self._curves.get(tid, {})
        return (curves[e] for e in sorted(curves))

    def _set_row(self, tid: str, row: dict[str, Any]) -> None:
        self._rows[tid] = row
        self._write(tid, "trials", [row])
        view = console.current()
        if view is not None and row.get(schema.STATUS) == schema.RUNNING:
            view.started(tid)
        elif view is not None:
            view.ended(tid, row)

    def _write(self, tid: str, table: str, rows: list[dict]) -> None:
        store.write_part(self.results_dir, table, tid, rows)


def _epochs_on_disk(trial_dir: Path) -> int:
    """The last epoch the trial's own curves.csv holds (the trainer writes it after every epoch); 0 without."""
    path = trial_dir / "curves.csv"
    if not path.is_file():
        return 0
    try:
        import pandas as pd

        epochs = pd.to_numeric(pd.read_csv(path, usecols=[schema.EPOCH])[schema.EPOCH], errors="coerce")
    except (OSError, ValueError, KeyError):
        return 0
    return int(epochs.max()) if epochs.notna().any() else 0


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """A row read back from a table: numpy scalars and NaN-for-missing as plain Python values."""
    out = {}
    for key, value in row.items():
        if hasattr(value, "item") and not hasattr(value, "__len__"):
            value = value.item()
        out[key] = value
    return out


# ---------------------------------------------------------------- the Tune side
def error_text(trial) -> str:
    """The root cause of the trial's failure: exception type, message and where
    it was raised (the full trace stays in Tune's error.txt).

    Read from the trial's local files: Tune writes them just before it calls
    the callbacks, and syncs them to the storage path only later."""
    pickled = trial.pickled_error_file
    if pickled and Path(pickled).is_file():
        try:
            return describe_failure(cloudpickle.loads(Path(pickled).read_bytes()))
        except Exception:  # an exception class this process cannot unpickle
            pass
    text = Path(trial.error_file).read_text() if trial.error_file and Path(trial.error_file).is_file() else ""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:MAX_CHARS] if lines else "trial errored (Ray recorded no error)"


class _Consolidator(threading.Thread):
    """Rebuilds the consolidated tables off Tune's event loop, at most every ``every_s`` seconds
    and never more than a tenth of the time (a 10,000-trial sweep takes a while to consolidate)."""

    def __init__(self, tables: SweepTables, every_s: float) -> None:
        super().__init__(name="normbench-tables", daemon=True)
        self.tables, self.every_s = tables, every_s
        self.stop = threading.Event()

    def run(self) -> None:
        wait = self.every_s
        while not self.stop.wait(wait):
            start = time.monotonic()
            try:
                self.tables.consolidate()
            except Exception:  # a failed interim consolidation costs nothing: the parts are the record
                pass
            wait = max(self.every_s, 10 * (time.monotonic() - start))


class TablesCallback(Callback):
    """Tune callback that feeds `SweepTables` from the trials' reports and fates."""

    def __init__(
        self,
        tables: SweepTables,
        exit_after: tuple[int, str] | None = None,
        consolidate_every_s: float = CONSOLIDATE_EVERY_S,
    ) -> None:
        self.tables = tables
        self.exit_after = exit_after  # test hook: (ended trials, marker dir)
        self.consolidate_every_s = consolidate_every_s
        self._ended_now = 0
        self._consolidator: _Consolidator | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_consolidator": None}

    def setup(self, **info) -> None:
        self.tables.open()
        self._consolidator = _Consolidator(self.tables, self.consolidate_every_s)
        self._consolidator.start()
        _ACTIVE.append(self)

    def _tid(self, trial) -> str:
        item = trial.config["trial"]  # a suite.sweep.grid.TrialItem
        if "search" in item:
            config = item["resolved"].config.model_dump()
            self.tables.register(
                item["trial_id"],
                item["index"],
                {**store.flatten_config(config), **item["search"], schema.SEARCH_INDEX: item["index"]},
            )
        return item["trial_id"]

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.tables.start(self._tid(trial))

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        tid = self._tid(trial)
        if result.get("kind") == "epoch":
            self.tables.epoch(tid, json.loads(result["curve_json"]))
        elif result.get("kind") == "final":
            self.tables.final(
                tid,
                json.loads(result["row_json"]),
                json.loads(result["curves_json"]),
                json.loads(result["bins_json"]),
                json.loads(result.get("class_norms_json", "[]")),
            )

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self.tables.retry(self._tid(trial), trial.num_failures, error_text(trial))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.tables.error(self._tid(trial), error_text(trial))
        self._trial_ended()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        last = trial.last_result or {}
        self.tables.ended(self._tid(trial), last.get("kind"), int(last.get("epoch", 0) or 0))
        self._trial_ended()

    def on_experiment_end(self, trials, **info) -> None:
        self.close()

    def close(self) -> None:
        """Stop the background consolidation and write the tables one last time (once)."""
        if self not in _ACTIVE:
            return
        _ACTIVE.remove(self)
        if self._consolidator is not None:
            self._consolidator.stop.set()
            self._consolidator.join()
            self._consolidator = None
        self.tables.close()

    def _trial_ended(self) -> None:
        self._ended_now += 1
        if self.exit_after is not None and self._ended_now >= self.exit_after[0]:
            # Test hook (FaultInjection.driver_exit_after_trials): the sweep driver
            # dies here, once; the restored callback of `--resume` sees the marker.
            marker = Path(self.exit_after[1]) / "driver.exit"
            if not marker.exists():
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(str(self._ended_now))
                os._exit(3)


# The tables callbacks of the sweep this process drives, restored ones included (Tune unpickles those
# itself): the runner closes them when Tune returns, interrupted or not.
_ACTIVE: list[TablesCallback] = []


def close_active() -> None:
    for callback in list(_ACTIVE):
        callback.close()
