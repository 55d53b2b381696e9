"""Keep the sweep's `trials` / `curves` / `norm_bins` tables current.

A Tune callback on the sweep driver: every report, start, retry, error and
completion rewrites the tables atomically (`suite.results.store.write_tables`), so a
half-finished sweep already has a usable table, and a trial that fails for good
gets a row with status "failed" and its error while the sweep goes on.
Everything comes through Tune's reports, so this works on a multi-node cluster
without a shared file system.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pandas as pd
from ray.tune import Callback

from suite.results import store as results
from suite.sweep.failures import MAX_CHARS, describe_failure


def _read_table(results_dir: Path, name: str) -> list[dict[str, Any]]:
    path = results_dir / f"{name}.parquet"
    return pd.read_parquet(path).to_dict("records") if path.is_file() else []


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


class SweepTables(Callback):
    """Tune callback that owns the sweep's tables under ``results_dir``.

    ``planned`` maps trial id -> (grid index, flat config columns); rows of
    other trials found on disk are dropped, rows of planned trials are kept
    (that is how `--resume` keeps the finished ones).
    """

    def __init__(
        self,
        results_dir: str,
        sweep: str,
        planned: dict[str, tuple[int, dict[str, Any]]],
        exit_after: tuple[int, str] | None = None,
        epoch_write_interval_s: float = 30.0,
        searched: bool = False,
    ) -> None:
        self.results_dir = str(results_dir)
        self.sweep = sweep
        self.planned = planned
        # A search sweep's trials are drawn as it runs: each registers from its Tune
        # config, and every row already in the results directory is the sweep's own.
        self.searched = searched
        self.exit_after = exit_after  # test hook: (ended trials, marker dir)
        self._trials: dict[str, dict[str, Any]] = {}
        self._curves: dict[tuple[str, int], dict[str, Any]] = {}
        self._epochs_done: dict[str, int] = {}
        self._bins: dict[str, list[dict[str, Any]]] = {}
        self._ended_now = 0
        # Per-epoch reports rewrite the tables at most this often (a 300-trial x
        # 200-epoch sweep would otherwise rewrite a growing table 60,000 times);
        # starts, final reports, errors and the end of the sweep always write.
        self.epoch_write_interval_s = epoch_write_interval_s
        self._last_write = -math.inf

    # -- state ---------------------------------------------------------------
    def setup(self, **info) -> None:
        root = Path(self.results_dir)
        if self.searched:
            for r in _read_table(root, "trials"):
                self.planned.setdefault(
                    r["trial_id"],
                    (int(r.get("search_index", 0)), {k: v for k, v in r.items() if k in self._config_columns(r)}),
                )
        self._trials = {r["trial_id"]: r for r in _read_table(root, "trials") if r.get("trial_id") in self.planned}
        self._curves, self._epochs_done = {}, {}
        for r in _read_table(root, "curves"):
            if r.get("trial_id") in self.planned:
                self._add_curve(r["trial_id"], r)
        self._bins = {}
        for r in _read_table(root, "norm_bins"):
            if r.get("trial_id") in self.planned:
                self._bins.setdefault(r["trial_id"], []).append(r)

    def _base_row(self, tid: str, status: str, error: str = "") -> dict[str, Any]:
        epochs = self._epochs_done.get(tid, 0)
        return {
            "trial_id": tid,
            "sweep": self.sweep,
            "status": status,
            "error": error,
            **self.planned[tid][1],
            "epochs_completed": epochs,
        }

    def _add_curve(self, tid: str, row: dict[str, Any]) -> None:
        epoch = int(row["epoch"])
        self._curves[(tid, epoch)] = row
        self._epochs_done[tid] = max(self._epochs_done.get(tid, 0), epoch)

    def write(self) -> None:
        order = {tid: idx for tid, (idx, _) in self.planned.items()}
        trials = sorted(self._trials.values(), key=lambda r: order[r["trial_id"]])
        curves = sorted(self._curves.values(), key=lambda r: (order[r["trial_id"]], r["epoch"]))
        bins = [r for tid in sorted(self._bins, key=order.get) for r in self._bins[tid]]
        results.write_tables(Path(self.results_dir), trials, curves, bins)
        self._last_write = time.monotonic()

    @staticmethod
    def _config_columns(row: dict[str, Any]) -> list[str]:
        from suite.config import CONFIG_FIELDS

        return [k for k in row if k in CONFIG_FIELDS or k.startswith("search_")]

    # -- Tune hooks ------------------------------------------------------------
    def _tid(self, trial) -> str:
        item = trial.config["trial"]
        tid = item["trial_id"]
        if tid not in self.planned and "search" in item:
            self.planned[tid] = (
                item["index"],
                {**results.flatten_config(item["config"]), **item["search"], "search_index": item["index"]},
            )
        return tid

    def _search_columns(self, tid: str) -> dict[str, Any]:
        return {k: v for k, v in self.planned[tid][1].items() if k.startswith("search_")}

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        tid = self._tid(trial)
        if self._trials.get(tid, {}).get("status") != "completed":
            self._trials[tid] = self._base_row(tid, "running")
            self.write()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        tid = self._tid(trial)
        kind = result.get("kind")
        if kind == "epoch":
            row = json.loads(result["curve_json"])
            row["trial_id"] = tid
            # A retried trial re-reports the epochs after its checkpoint: keep the latest.
            self._add_curve(tid, row)
            if self._trials.get(tid, {}).get("status") != "completed":
                self._trials[tid] = self._base_row(tid, "running")
            if time.monotonic() - self._last_write < self.epoch_write_interval_s:
                return
        elif kind == "final":
            row = json.loads(result["row_json"])
            row.update(trial_id=tid, sweep=self.sweep, **self._search_columns(tid))
            self._trials[tid] = row
            for key in [k for k in self._curves if k[0] == tid]:  # once per trial
                del self._curves[key]
            self._epochs_done.pop(tid, None)
            for c in json.loads(result["curves_json"]):
                c["trial_id"] = tid
                self._add_curve(tid, c)
            self._bins[tid] = [{**b, "trial_id": tid} for b in json.loads(result["bins_json"])]
        else:
            return
        self.write()

    def on_experiment_end(self, trials, **info) -> None:
        self.write()

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        tid = self._tid(trial)
        self._trials[tid] = self._base_row(
            tid, "running", f"retrying ({trial.num_failures} failure(s)): {error_text(trial)}"
        )
        self.write()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        tid = self._tid(trial)
        row = self._trials.get(tid) or self._base_row(tid, "failed")
        if row.get("status") != "completed":
            row = {**self._base_row(tid, "failed"), **{k: v for k, v in row.items() if k not in ("status", "error")}}
            row.update(status="failed", error=error_text(trial))
            self._trials[tid] = row
        self.write()
        self._trial_ended()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        tid = self._tid(trial)
        row = self._trials.get(tid)
        last = trial.last_result or {}
        if row is not None and row.get("status") == "running" and self.searched and last.get("kind") == "epoch":
            # Ended by the scheduler (ASHA) after an epoch report: stopped early, not failed.
            self._trials[tid] = self._stopped_row(tid, int(last.get("epoch", 0)))
        elif row is None or row.get("status") == "running":
            self._trials[tid] = self._base_row(tid, "failed", "trial ended without a final report")
        self.write()
        self._trial_ended()

    def _stopped_row(self, tid: str, epoch: int) -> dict[str, Any]:
        """Status ``stopped``, the epoch reached and the metrics of its last evaluated epoch."""
        row = self._base_row(tid, "stopped")
        row.update(epochs_completed=epoch, notes=f"stopped early by the scheduler (ASHA) after epoch {epoch}")
        curves = [self._curves[k] for k in sorted(k for k in self._curves if k[0] == tid)]
        for curve in curves:
            row.update(
                {
                    k: v
                    for k, v in curve.items()
                    if k.startswith(("knn_top1_", "val_knn_top1_")) and isinstance(v, (int, float)) and math.isfinite(v)
                }
            )
        if curves:
            row["final_loss"] = curves[-1].get("loss", math.nan)
        return row

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
