"""The digits-colour reference run, and its extension with the non-normalizing controls, are the runs
their committed specs designed, before they trained.

Each run's preregistration.json holds its spec's sha256 from when it was committed, and the power
calculation its seed count rests on; an edit of a spec after that fails here. A spec gives every arm
the same seeds (the extension the main run's), the six arms its header names per method, and a run's
tables hold only its trials.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from suite.analysis.claims.definitions import MIN_DOSE
from suite.core.stats import seeds_for_power
from suite.sweep.grid import expand_grid
from suite.sweep.spec import load_spec
from suite.trial.optim import lr_sum

REPO = Path(__file__).resolve().parents[2]
RUNS = REPO / "results" / "reference"
# each run's folder and the methods its spec trains
METHODS = {
    "colour-reference": {"simclr", "moco", "byol", "simsiam", "dino"},
    "colour-controls": {"barlow", "vicreg"},
}


def _registration(run: str) -> dict:
    return json.loads((RUNS / run / "preregistration.json").read_text())


def _plan(run: str) -> list:
    return expand_grid(load_spec(REPO / _registration(run)["spec"]))


@pytest.fixture(scope="module", params=sorted(METHODS))
def run(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def planned(run):
    return _plan(run)


def _arm(cfg) -> str:
    """Everything that makes a trial but its seed."""
    data = cfg.model_dump(mode="json")
    data.pop("seed")
    return json.dumps(data, sort_keys=True)


def test_the_spec_is_the_one_registered_before_its_results(run):
    registration = _registration(run)
    assert hashlib.sha256((REPO / registration["spec"]).read_bytes()).hexdigest() == registration["sha256"]


def _seeds(planned) -> set[frozenset[int]]:
    seeds: dict[str, set[int]] = defaultdict(set)
    for t in planned:
        seeds[_arm(t.config)].add(t.config.seed)
    return {frozenset(s) for s in seeds.values()}


def test_every_arm_runs_the_same_seeds_as_many_as_the_power_calculation_asks(run, planned):
    (seeds,) = _seeds(planned)  # one set of seeds: every arm runs the same
    registration = _registration(run)
    power = registration["power"]
    assert len(seeds) == registration["seeds"] >= 8
    assert seeds_for_power(power["effect"], alpha=power["alpha"], power=power["power"]) <= len(seeds)


def test_the_controls_extend_the_main_run_with_its_seeds_and_protocol():
    controls, main = _plan("colour-controls"), _plan("colour-reference")
    assert _registration("colour-controls")["extends"] == "results/reference/colour-reference"
    assert _seeds(controls) == _seeds(main)
    protocol = {"method", "intervention", "lr", "imbalance", "method_args", "seed", "weight_decay"}

    def settings(plan) -> set[str]:
        return {
            json.dumps({k: v for k, v in t.config.model_dump(mode="json").items() if k not in protocol}, sort_keys=True)
            for t in plan
        }

    assert len(settings(main)) == 1 and settings(controls) == settings(main)


def test_each_method_has_the_six_designed_arms_and_the_weight_decay_arm_acts(run, planned):
    arms: dict[str, dict[str, object]] = defaultdict(dict)
    for t in planned:
        c = t.config
        label = "imbalance" if c.imbalance else c.model_dump(mode="json")["intervention"]
        if label.startswith("cut:"):
            label = "cut"  # its C is the pilot's, per method
        elif label.startswith("wd:") and label != "wd:0":
            label = "wd acting"
        arms[c.method][label] = c
    assert set(arms) == METHODS[run]
    for method, by_label in arms.items():
        labels = sorted(by_label)
        assert len(labels) == 6, (method, labels)
        none = by_label["none"]
        for label, c in by_label.items():
            assert (c.lr, c.warmup_epochs, c.batch_size, c.epochs) == (
                none.lr,
                none.warmup_epochs,
                none.batch_size,
                none.epochs,
            ), (method, label)  # every arm at the baseline's protocol, GradScale's included
        assert labels == ["cut", "gradscale:1", "imbalance", "none", "wd acting", "wd:0"], (method, labels)
        acting = by_label["wd acting"]
        steps = (5_000 * 8 // 10) // none.batch_size  # two of ten classes held out
        dose = acting.weight_decay * lr_sum(steps * none.epochs, steps * none.warmup_epochs, none.scaled_lr())
        assert dose >= 2 * MIN_DOSE, (method, dose)


def test_the_run_tables_hold_only_trials_of_the_spec(run, planned):
    """Its tables and its trial folders hold planned trials only (a run not started yet: neither); beside them
    only the leaderboard `normbench leaderboard` writes into the first folder."""
    folder = RUNS / run
    table = folder / "trials.csv"
    ids = set(pd.read_csv(table)["trial_id"]) if table.is_file() else set()
    trial_dirs = {
        p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("_") and p.name != "leaderboard"
    }
    assert ids == trial_dirs
    assert ids <= {t.trial_id for t in planned}
