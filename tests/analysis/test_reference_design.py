"""The digits-colour reference run is the run its committed spec designed, before it trained.

preregistration.json holds the spec's sha256 from when it was committed, and the power calculation
its seed count rests on; an edit of the spec after that fails here. The spec gives every arm the
same seeds, the six arms its header names per method, and the run's tables hold only its trials.
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
RUN = REPO / "results" / "reference" / "colour-reference"
PREREGISTRATION = json.loads((RUN / "preregistration.json").read_text())
SPEC = REPO / PREREGISTRATION["spec"]
METHODS = {"simclr", "moco", "byol", "simsiam", "dino"}


@pytest.fixture(scope="module")
def planned():
    return expand_grid(load_spec(SPEC))


def _arm(cfg) -> str:
    """Everything that makes a trial but its seed."""
    data = cfg.model_dump(mode="json")
    data.pop("seed")
    return json.dumps(data, sort_keys=True)


def test_the_spec_is_the_one_registered_before_its_results():
    assert hashlib.sha256(SPEC.read_bytes()).hexdigest() == PREREGISTRATION["sha256"]


def test_every_arm_runs_the_same_seeds_as_many_as_the_power_calculation_asks(planned):
    seeds: dict[str, set[int]] = defaultdict(set)
    for t in planned:
        seeds[_arm(t.config)].add(t.config.seed)
    assert len({frozenset(s) for s in seeds.values()}) == 1, "arms with different seeds"
    n = len(next(iter(seeds.values())))
    power = PREREGISTRATION["power"]
    assert n == PREREGISTRATION["seeds"] >= 8
    assert seeds_for_power(power["effect"], alpha=power["alpha"], power=power["power"]) <= n


def test_each_method_has_the_six_designed_arms_and_the_weight_decay_arm_acts(planned):
    arms: dict[str, dict[str, object]] = defaultdict(dict)
    for t in planned:
        c = t.config
        label = "imbalance" if c.imbalance else c.model_dump(mode="json")["intervention"]
        if label.startswith("cut:"):
            label = "cut"  # its C is the pilot's, per method
        elif label.startswith("wd:") and label != "wd:0":
            label = "wd acting"
        arms[c.method][label] = c
    assert set(arms) == METHODS
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


def test_the_run_tables_hold_only_trials_of_the_spec(planned):
    table = RUN / "trials.csv"
    if not table.is_file():
        pytest.skip("no trial of the reference run has finished yet")
    ids = set(pd.read_csv(table)["trial_id"])
    assert ids <= {t.trial_id for t in planned}
