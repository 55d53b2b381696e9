"""Training images/s per method: the real trainer against the plain loop.

The trainer side is ``suite.trial.train.run_trial`` itself on a small ``train_limit``,
its images/s read from the per-epoch curves it records (the row's
``images_per_s`` averages every epoch, the cold first one included, so both are
reported). Running the real entry point rather than a copy of its step means the
figure moves when the trainer changes, which is the point of the comparison.
The reference is ``suite.tools.bench.loop``: the same model, views and optimizer in a
minimal loop. Both sides report their best epoch after the first (warm-up).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from suite.tools.bench.loop import build_setup, run_epoch
from suite.tools.bench.report import Report, speedup
from suite.tools.bench.timing import log

TrialRecord = tuple[dict[str, Any], list[dict[str, Any]]]


def trial_outputs(result: Any, trial_dir: Path) -> TrialRecord:
    """(row, curves) of a finished trial, whether ``run_trial`` returns the row dict or a
    ``TrialResult`` with ``.row`` and ``.curves``."""
    row = result.row if hasattr(result, "row") else result
    if hasattr(result, "curves"):
        curves = [dict(c) for c in result.curves]
    else:
        curves = pd.read_csv(Path(trial_dir) / "curves.csv").to_dict("records")
    return row, curves


def run_suite_trial(cfg, trial_dir: Path) -> TrialRecord:
    """One real trial; a failed trial is an error here (its figures would mean nothing)."""
    from suite.trial.train import run_trial

    row, curves = trial_outputs(run_trial(cfg, Path(trial_dir), progress=False), trial_dir)
    if row.get("status") != "completed":
        raise RuntimeError(f"bench trial {cfg.trial_id} did not complete: {row.get('error')}")
    return row, curves


def warm(values: list[float]) -> list[float]:
    """The epochs after the first (the first pays one-time costs), or the only one."""
    return values[1:] if len(values) > 1 else values


def measure_training(report: Report, settings, splits, workdir: Path) -> dict[str, TrialRecord]:
    """Per method: trainer vs plain-loop images/s; returns each trial's (row, curves) for the breakdown."""
    trials: dict[str, TrialRecord] = {}
    for name in settings.methods:
        cfg = settings.trial_config(name)
        log(f"training: {name} plain loop, {cfg.epochs} epochs of {settings.train_limit} images")
        setup = build_setup(cfg, splits)
        epochs = [run_epoch(setup, epoch) for epoch in range(1, cfg.epochs + 1)]
        plain_best = max(e.images_per_s for e in warm(epochs))
        plain_all = sum(e.images for e in epochs) / sum(e.seconds for e in epochs)
        del setup
        log(f"training: {name} run_trial")
        row, curves = run_suite_trial(cfg, workdir / "trials" / name)
        trials[name] = (row, curves)
        suite_best = max(float(c["images_per_s"]) for c in warm(curves))
        report.add(
            "training",
            name,
            speedup(
                "images_per_s",
                "trainer run_trial (best warm epoch)",
                suite_best,
                "images/s",
                "plain_loop_images_per_s",
                "plain loop (best warm epoch)",
                plain_best,
                "plain_loop_ratio",
            ),
        )
        report.add(
            "training",
            name,
            speedup(
                "row_images_per_s",
                "trainer row images_per_s (all epochs)",
                float(row["images_per_s"]),
                "images/s",
                "plain_loop_all_epochs_images_per_s",
                "plain loop (all epochs)",
                plain_all,
                "plain_loop_ratio_all_epochs",
            ),
        )
    return trials
