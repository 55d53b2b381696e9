"""Training images/s per method: the real trainer against the plain loop.

The trainer side is ``suite.trial.train.run_trial`` itself on a small ``train_limit``,
its images/s read from the per-epoch curves it records (the row's
``images_per_s`` averages every epoch, the cold first one included, so both are
reported). Running the real entry point rather than a copy of its step means the
figure moves when the trainer changes, which is the point of the comparison.
The reference is ``suite.tools.bench.loop``: the same model, views and optimizer in a
minimal loop. Both sides report their best epoch after the first (warm-up).

One pass cannot tell a real cost from a busy spell on a shared machine, so both sides run
``rounds`` times in alternation (plain, trainer, plain, trainer, ...) and each ratio is the
median of the per-round ratios, shown with its lowest and highest: a ratio whose whole range
sits below 1 is a cost of the trainer; one whose range straddles 1 is load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import pandas as pd

from suite.results import schema
from suite.tools.bench.loop import build_setup, run_epoch
from suite.tools.bench.report import Figure, Report
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
    if row.get(schema.STATUS) != schema.COMPLETED:
        raise RuntimeError(f"bench trial {cfg.trial_id} did not complete: {row.get(schema.ERROR)}")
    return row, curves


def warm(values: list[float]) -> list[float]:
    """The epochs after the first (the first pays one-time costs), or the only one."""
    return values[1:] if len(values) > 1 else values


@dataclass
class Round:
    """One plain-loop run and one trainer run of a method, back to back."""

    plain_best: float  # images/s, best warm epoch
    plain_all: float  # images/s over every epoch
    suite_best: float
    suite_all: float

    @property
    def ratio(self) -> float:
        return self.suite_best / self.plain_best

    @property
    def ratio_all(self) -> float:
        return self.suite_all / self.plain_all


def plain_loop_round(cfg, splits) -> tuple[float, float, int]:
    """(best warm epoch images/s, all-epoch images/s, steps in a warm epoch) of the plain loop."""
    setup = build_setup(cfg, splits)
    epochs = [run_epoch(setup, epoch) for epoch in range(1, cfg.epochs + 1)]
    steps = setup.steps_per_epoch
    del setup
    return (
        max(e.images_per_s for e in warm(epochs)),
        sum(e.images for e in epochs) / sum(e.seconds for e in epochs),
        steps,
    )


def spread_figures(key: str, label: str, ratios: list[float]) -> list[Figure]:
    """``<key>_min`` and ``<key>_max`` of a ratio measured once per round."""
    return [
        Figure(f"{key}_min", f"{label}, lowest of {len(ratios)} rounds", min(ratios), "x"),
        Figure(f"{key}_max", f"{label}, highest of {len(ratios)} rounds", max(ratios), "x"),
    ]


def measure_training(report: Report, settings, splits, workdir: Path) -> dict[str, TrialRecord]:
    """Per method: trainer vs plain-loop images/s over ``settings.rounds`` rounds, each the plain
    loop then ``run_trial`` (ABAB...), so a slow spell of a shared machine lands on both sides of
    some round; every ratio is the median of the rounds' with their min and max. Returns each
    method's last trial (row, curves) for the breakdown."""
    trials: dict[str, TrialRecord] = {}
    for name in settings.methods:
        cfg = settings.trial_config(name)
        rounds: list[Round] = []
        for r in range(1, settings.rounds + 1):
            log(f"training: {name} round {r}/{settings.rounds}: plain loop, {cfg.epochs} epochs")
            plain_best, plain_all, steps = plain_loop_round(cfg, splits)
            log(f"training: {name} round {r}/{settings.rounds}: run_trial")
            row, curves = run_suite_trial(cfg, workdir / "trials" / f"{name}-round{r}")
            trials[name] = (row, curves)
            rounds.append(
                Round(
                    plain_best,
                    plain_all,
                    max(float(c[schema.IMAGES_PER_S]) for c in warm(curves)),
                    float(row[schema.IMAGES_PER_S]),
                )
            )
        warm_label = f"best warm epoch of {steps} steps, median of {len(rounds)} rounds"
        report.add(
            "training",
            name,
            Figure(
                "images_per_s",
                f"trainer run_trial ({warm_label})",
                median(r.suite_best for r in rounds),
                "images/s",
                "plain_loop_images_per_s",
                "plain loop (same)",
                median(r.plain_best for r in rounds),
                "plain_loop_ratio",
                median(r.ratio for r in rounds),
            ),
        )
        for figure in spread_figures("plain_loop_ratio", "trainer / plain loop", [r.ratio for r in rounds]):
            report.add("training", name, figure)
        report.add(
            "training",
            name,
            Figure(
                "row_images_per_s",
                f"trainer row images_per_s (all epochs, median of {len(rounds)} rounds)",
                median(r.suite_all for r in rounds),
                "images/s",
                "plain_loop_all_epochs_images_per_s",
                "plain loop (all epochs)",
                median(r.plain_all for r in rounds),
                "plain_loop_ratio_all_epochs",
                median(r.ratio_all for r in rounds),
            ),
        )
        for figure in spread_figures(
            "plain_loop_ratio_all_epochs", "trainer / plain loop, all epochs", [r.ratio_all for r in rounds]
        ):
            report.add("training", name, figure)
        report.add("training", name, Figure("warm_steps", "optimizer steps in the warm epoch", float(steps), "steps"))
    return trials
