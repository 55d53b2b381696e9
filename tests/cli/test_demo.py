"""The demo a new user runs first (`make demo`: examples/demo.yaml on the CPU testbed).

Its full run is the testbed search's SimCLR trial (the same trial id), so its gain is the one the
committed table records; the subprocess test runs a shortened copy as a user would and reads the
console: the plan first, then the untrained and trained kNN, the gain and the next commands.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from suite.config import load_config
from suite.core.stats import t_interval

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo.yaml"
TESTBED = REPO / "results" / "reference" / "testbed-search.csv"
MIN_GAIN_PP = 5.0  # the testbed's criterion (results/reference/testbed-search/criteria.md)


def test_the_demo_is_the_testbed_searchs_simclr_trial_and_every_recorded_run_of_it_gains():
    cfg = load_config(DEMO)
    assert "make demo" in (REPO / "Makefile").read_text() and "examples/demo.yaml" in (REPO / "Makefile").read_text()
    table = pd.read_csv(TESTBED)
    runs = table[table["trial_id"] == cfg.trial_id]
    assert len(runs) >= 2, "the demo's trial is not in the testbed table"
    assert set(runs["num_threads"]) >= {1, 2}  # the demo's 2 cores, and the reference sweep's one thread
    gain = 100 * (runs["knn_trained"] - runs["knn_untrained"])
    assert (gain >= MIN_GAIN_PP).all(), gain.tolist()
    # and it is a seed of the SimCLR setting whose gain interval meets the criterion over seeds
    confirm = table[
        (table["stage"] == "confirm") & (table["candidate"] == "digits-colour") & (table["method"] == "simclr")
    ]
    assert cfg.seed in set(confirm["seed"]) and t_interval(confirm["gain_knn_pp"]).lo >= MIN_GAIN_PP


@pytest.mark.slow  # trains a shortened demo in a subprocess
def test_the_demo_says_what_it_trains_first_and_ends_with_its_gain_and_what_to_run_next(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "suite.cli", "trial", "-c", str(DEMO), "epochs=2", "warmup_epochs=0", "eval_every=2"]
        + ["train_limit=1500", "num_threads=1", "--out", str(out)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "NORMBENCH_CACHE": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert err[0].startswith("simclr on digits-colour: 1,500 training and 5,000 test images at 16 px"), err[:3]
    assert "2 epochs of 46 steps of 32 images on cpu with 1 thread(s)" in err[0]
    summary = dict(re.match(r"(\S+)\s+(.*)", line).groups() for line in proc.stdout.splitlines() if line[:1] != " ")
    trained = float(re.search(r"k=20: ([\d.]+)%", summary["kNN"]).group(1))
    untrained = float(re.search(r"k=20: ([\d.]+)%", summary["untrained"]).group(1))
    gain = float(re.search(r"k=20: ([+-][\d.]+) points", summary["gain"]).group(1))
    assert gain == pytest.approx(trained - untrained, abs=0.011)  # the printed gain is the two printed figures'
    assert gain > 0, proc.stdout
    last = proc.stdout.splitlines()[-3:]  # the next commands
    assert last[0].startswith("next") and "intervention=cut:3" in last[0] and "epochs=2" in last[0], last
    assert f"normbench report {out}" in last[1] and "normbench sweep examples/sweeps/smoke_local.yaml" in last[2], last
