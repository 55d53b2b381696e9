"""The sweep driver's tables: per-trial parts give, row for row, the tables a full rewrite of
every event gives (the way the driver used to keep them), through retries, a failure, a
killed driver and a resume; and a report never reads or writes more than its own trial."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from suite.results import schema, store
from suite.sweep.tables import SweepTables

CONFIG = {"method": "simclr", "epochs": 3}


def _curve(epoch: int, loss: float) -> dict:
    return {"epoch": epoch, "loss": loss, "knn_top1_k20": math.nan if epoch < 3 else 0.5 + loss / 10}


def _final(tid: str, loss: float) -> tuple[dict, list[dict], list[dict], list[dict]]:
    row = {
        "trial_id": tid,
        "status": "completed",
        "error": "",
        **CONFIG,
        "epochs_completed": 3,
        "final_loss": loss,
        "knn_top1_k20": 0.6,
    }
    curves = [_curve(e, loss + 1 - e / 3) for e in (0, 1, 2, 3)]
    bins = [{"vector": "embedding", "binning": "decile", "bin": b, "accuracy": b / 10} for b in range(3)]
    norms = [
        {"vector": "embedding", "class": c, "train_count": 10 - c, "test_count": 5, "norm_mean": 1.0 + c}
        for c in range(3)
    ]
    return row, curves, bins, norms


class FullRewrite:
    """The reference: every event updates in-memory tables that are written out whole."""

    def __init__(self, sweep: str, planned: dict) -> None:
        self.sweep, self.planned = sweep, planned
        self.trials, self.curves, self.bins, self.norms = {}, {}, {}, {}

    def base(self, tid, status, error=""):
        done = [e for (t, e) in self.curves if t == tid and e > 0]
        return {
            "trial_id": tid,
            "sweep": self.sweep,
            "status": status,
            "error": error,
            **self.planned[tid][1],
            "epochs_completed": max(done) if done else 0,
        }

    def start(self, tid):
        if self.trials.get(tid, {}).get("status") != "completed":
            self.trials[tid] = self.base(tid, "running")

    def epoch(self, tid, curve):
        self.curves[(tid, curve["epoch"])] = {**curve, "trial_id": tid}
        if self.trials.get(tid, {}).get("status") != "completed":
            self.trials[tid] = self.base(tid, "running", self.trials.get(tid, {}).get("error", ""))

    def final(self, tid, row, curves, bins, norms):
        for key in [k for k in self.curves if k[0] == tid]:
            del self.curves[key]
        for c in curves:
            self.curves[(tid, c["epoch"])] = {**c, "trial_id": tid}
        self.bins[tid] = [{**b, "trial_id": tid} for b in bins]
        self.norms[tid] = [{**n, "trial_id": tid} for n in norms]
        self.trials[tid] = {**row, "trial_id": tid, "sweep": self.sweep}

    def retry(self, tid, failures, error):
        self.trials[tid] = self.base(tid, "running", f"retrying ({failures} failure(s)): {error}")

    def error(self, tid, error):
        self.trials[tid] = {**self.trials.get(tid, {}), **self.base(tid, "failed", error)}

    def frames(self) -> dict[str, pd.DataFrame]:
        order = {t: i for t, (i, _) in self.planned.items()}
        return {
            "trials": pd.DataFrame(sorted(self.trials.values(), key=lambda r: order[r["trial_id"]])),
            "curves": pd.DataFrame([self.curves[k] for k in sorted(self.curves, key=lambda k: (order[k[0]], k[1]))]),
            "norm_bins": pd.DataFrame([r for t in sorted(self.bins, key=order.get) for r in self.bins[t]]),
            "class_norms": pd.DataFrame([r for t in sorted(self.norms, key=order.get) for r in self.norms[t]]),
        }


def _same(mine: pd.DataFrame, reference: pd.DataFrame, name: str) -> None:
    keys = list(store.ROW_KEYS[name])
    mine = mine.sort_values(keys).reset_index(drop=True)
    reference = reference.sort_values(keys).reset_index(drop=True)
    assert sorted(mine.columns) == sorted(reference.columns), name
    pd.testing.assert_frame_equal(
        mine[sorted(mine.columns)], reference[sorted(reference.columns)], check_dtype=False, obj=name
    )


@pytest.fixture
def planned() -> dict:
    return {f"t{i}": (i, dict(CONFIG)) for i in range(3)}


def _both(events, tables: SweepTables, reference: FullRewrite) -> None:
    for name, *args in events:
        getattr(tables, name)(*args)
        getattr(reference, name)(*args)


def test_parts_equal_a_full_rewrite_through_retries_a_failure_a_dead_driver_and_a_resume(tmp_path, planned):
    reference = FullRewrite("s", planned)
    first = SweepTables(tmp_path, "s", planned)
    first.open()
    _both(
        [
            ("start", "t0"),
            ("start", "t1"),
            ("start", "t2"),
            ("epoch", "t0", _curve(0, 9.0)),
            ("epoch", "t0", _curve(1, 2.0)),
            ("epoch", "t1", _curve(1, 2.5)),
            ("epoch", "t0", _curve(2, 1.5)),
            ("retry", "t0", 1, "RuntimeError: worker died"),
            ("epoch", "t0", _curve(2, 1.4)),  # re-reported after the restore: the latest wins
            ("final", "t0", *_final("t0", 1.0)),
            ("epoch", "t2", _curve(1, 3.0)),
            ("retry", "t1", 1, "OSError: node lost"),
            ("epoch", "t1", _curve(1, 2.4)),  # re-reported, no final yet: the latest wins
            ("error", "t2", "ValueError: non-finite loss"),
        ],
        first,
        reference,
    )
    # The driver dies here: no consolidation ran, yet the record reads whole.
    for name, frame in reference.frames().items():
        _same(store.read_tables(tmp_path, [name])[name], frame, name)

    second = SweepTables(tmp_path, "s", planned)  # --resume: a new driver takes over
    second.open()
    assert (tmp_path / "trials.parquet").is_file()  # opening consolidates what the dead driver left
    _both(
        [
            ("start", "t1"),
            ("epoch", "t1", _curve(2, 2.0)),
            ("final", "t1", *_final("t1", 1.2)),
            ("start", "t2"),
            ("epoch", "t2", _curve(1, 2.9)),
            ("final", "t2", *_final("t2", 1.3)),
        ],
        second,
        reference,
    )
    second.close()
    for name, frame in reference.frames().items():
        _same(store.read_tables(tmp_path, [name])[name], frame, name)
        consolidated = store.read_table_file(tmp_path / f"{name}.parquet")
        _same(consolidated, frame, name)
    assert not any((tmp_path / store.PARTS_DIR).rglob("*.parquet"))  # finished: the tables hold everything


def test_a_trial_dropped_from_the_spec_leaves_the_tables_when_a_driver_opens_them(tmp_path, planned):
    tables = SweepTables(tmp_path, "s", planned)
    tables.open()
    for tid in planned:
        tables.start(tid)
        tables.final(tid, *_final(tid, 1.0))
    tables.close()
    kept = {t: planned[t] for t in ("t0", "t2")}
    update = SweepTables(tmp_path, "s", kept)
    update.open()
    update.close()
    for name in schema.TABLES:
        assert set(store.read_tables(tmp_path, [name])[name]["trial_id"]) == {"t0", "t2"}, name


def test_an_interrupted_sweep_marks_its_unfinished_trials(tmp_path, planned):
    tables = SweepTables(tmp_path, "s", planned)
    tables.open()
    for tid in planned:
        tables.start(tid)
    tables.final("t0", *_final("t0", 1.0))
    tables.epoch("t1", _curve(1, 2.0))
    assert sorted(tables.interrupt("stopped by SIGINT")) == ["t1", "t2"]
    trials = store.read_tables(tmp_path, ["trials"])["trials"].set_index("trial_id")
    assert trials.loc["t0", "status"] == "completed"
    assert (trials.loc[["t1", "t2"], "status"] == "interrupted").all()
    assert trials.loc["t1", "epochs_completed"] == 1 and trials.loc["t1", "error"] == "stopped by SIGINT"


def test_a_report_touches_only_its_own_trials_files(tmp_path, planned):
    many = {f"t{i}": (i, dict(CONFIG)) for i in range(50)}
    tables = SweepTables(tmp_path, "s", many)
    tables.open()
    for tid in many:
        tables.start(tid)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / store.PARTS_DIR).rglob("*.parquet")}
    tables.epoch("t7", _curve(1, 2.0))
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / store.PARTS_DIR).rglob("*.parquet")}
    changed = {p.relative_to(tmp_path / store.PARTS_DIR).as_posix() for p in after if before.get(p) != after[p]}
    assert changed == {"trials/t7.parquet", "curves/t7.parquet"}


def test_an_interrupted_trials_own_files_agree_with_the_tables_after_its_last_report(tmp_path, planned):
    """The worker finished epoch 2 and saved its checkpoint after the driver's last report (epoch 1): the
    interrupted row, in the tables and in the trial's result.json, reads both from the trial's files."""
    import json

    import torch

    tables = SweepTables(tmp_path, "s", planned)
    tables.open()
    tables.start("t1")
    tables.epoch("t1", _curve(1, 2.0))
    trial_dir = tmp_path / "t1"
    store.write_result(trial_dir, {"trial_id": "t1", "status": "running", "epochs_completed": 0, "last_checkpoint": ""})
    pd.DataFrame([_curve(e, 2.0) for e in (1, 2)]).to_csv(trial_dir / "curves.csv", index=False)
    (trial_dir / "checkpoints" / "last").mkdir(parents=True)
    torch.save(
        {"model": {}, "optimizer": {}, "trial_id": "t1", "state": {"epoch": 2}},
        trial_dir / "checkpoints" / "last" / "state.pt",
    )
    assert tables.interrupt("stopped by SIGINT") == ["t1"]
    recorded = json.loads((trial_dir / "result.json").read_text())
    row = store.read_tables(tmp_path, ["trials"])["trials"].set_index("trial_id").loc["t1"]
    expected = f"epoch 2 ({trial_dir / 'checkpoints' / 'last'})"
    assert recorded["status"] == row["status"] == "interrupted" and recorded["error"] == row["error"]
    assert recorded["epochs_completed"] == row["epochs_completed"] == 2
    assert recorded["last_checkpoint"] == row["last_checkpoint"] == expected


def test_a_stopped_sweeps_summary_counts_the_trials_that_never_started(tmp_path, planned):
    from types import SimpleNamespace

    from suite.sweep.runner import _with_unstarted

    tables = SweepTables(tmp_path, "s", planned)
    tables.open()
    tables.start("t0")
    trials = [SimpleNamespace(trial_id=t) for t in planned]
    text = _with_unstarted("trials:\n...", trials, tables)
    assert text.endswith(f"{len(planned) - 1} of {len(planned)} planned trial(s) never started: t1, t2")
    assert _with_unstarted("x", trials[:1], tables) == "x"
