"""The command line: bad input fails before any work, names field/value/allowed, writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from suite.cli import main

TINY_ARGS = ["backbone=test_resnet", "image_size=16", "batch_size=64", "train_limit=128", "epochs=1", "linear_epochs=5"]


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*")] if root.exists() else []


@pytest.mark.parametrize(
    "override, field, value, allowed",
    [
        ("method=simclrr", "method", "simclrr", "simclr"),
        ("dataset=cifar11", "dataset", "cifar11", "cifar10"),
        ("backbone=resnet1800", "backbone", "resnet1800", "resnet18"),
        ("intervention=cut", "intervention", "cut", "cut:C"),
        ("intervention=cut:0", "intervention", "cut:0", "C > 1"),
        ("intervention=cut:-3", "intervention", "cut:-3", "C > 1"),
        ("intervention=gradscale:x", "intervention", "gradscale:x", "gradscale:P"),
        ("batch_size=1", "batch_size", "1", ">= 2"),
        ("learning_rate=0.1", "learning_rate", "0.1", "lr"),
        ("method_args.temprature=0.1", "method_args.temprature", "temprature", "temperature"),
        ("optimizer=adam", "optimizer", "adam", "sgd"),
        ("epochs=0", "epochs", "0", "an integer >= 1"),
        ("holdout_classes=[42]", "holdout_classes", "42", "0"),
    ],
)
def test_bad_input_exits_2_names_field_value_allowed_and_writes_nothing(
    tmp_path, capsys, override, field, value, allowed
):
    out = tmp_path / "out"
    code = main(["trial", *TINY_ARGS, override, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert field in err and value in err and allowed in err, err
    assert _files(out) == []


def test_unknown_yaml_key_and_missing_config_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: simclr\nepoch: 3\n")
    assert main(["trial", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "epoch" in err and "epochs" in err
    assert main(["trial", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_yaml_config_with_overrides_runs_then_refuses_to_clobber_then_resumes(tmp_path, capsys):
    cfg_file = tmp_path / "t.yaml"
    cfg_file.write_text(
        "method: simsiam\nbackbone: test_resnet\nimage_size: 16\nbatch_size: 64\n"
        "train_limit: 128\nepochs: 3\nlinear_epochs: 5\n"
    )
    out = tmp_path / "res"
    assert main(["trial", "--config", str(cfg_file), "epochs=1", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "kNN top-1" in printed and "linear" in printed and "images/s" in printed
    trials = pd.read_csv(out / "trials.csv")
    assert list(trials["method"]) == ["simsiam"] and list(trials["epochs"]) == [1]
    before = sorted(p.stat().st_mtime_ns for p in _files(out) if p.is_file())

    # Same config again without --resume/--overwrite: refused, nothing touched.
    assert main(["trial", "--config", str(cfg_file), "epochs=1", "--out", str(out), "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert sorted(p.stat().st_mtime_ns for p in _files(out) if p.is_file()) == before

    # --resume of a completed trial shows the stored results and trains nothing.
    assert main(["trial", "--config", str(cfg_file), "epochs=1", "--out", str(out), "--resume", "--quiet"]) == 0
    assert "already completed" in capsys.readouterr().out
    assert sorted(p.stat().st_mtime_ns for p in _files(out) if p.is_file()) == before


def test_cli_resume_continues_an_interrupted_trial(tmp_path, capsys):
    from suite.config import load_config
    from suite.trial import checkpoint
    from suite.trial.train import run_trial

    args = [*TINY_ARGS, "epochs=2"]
    cfg = load_config(None, args)
    out = tmp_path / "res"

    def stop(metrics, ckpt_dir):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg, out / cfg.trial_id, progress=False, report=stop)
    assert checkpoint.has_checkpoint(out / cfg.trial_id / "checkpoints")
    assert main(["trial", *args, "--out", str(out), "--resume"]) == 0
    assert f"resuming {cfg.trial_id} from its last checkpoint" in capsys.readouterr().out
    row = json.loads((out / cfg.trial_id / "result.json").read_text())
    assert row["status"] == "completed" and row["epochs_completed"] == 2
    assert len(pd.read_csv(out / cfg.trial_id / "curves.csv")) == 2


def test_console_script_help_and_list(capsys):
    """The installed entry point (python -m suite.cli is the same code) answers --help and list."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for argv in (["--help"], ["trial", "--help"]):  # the same parser in this process: no interpreter start
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0 and "usage: normbench" in capsys.readouterr().out
    proc = subprocess.run(
        [sys.executable, "-m", "suite.cli", "list"], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    listing = proc.stdout
    for word in (
        "simclr",
        "moco",
        "byol",
        "simsiam",
        "dino",
        "cut",
        "gradscale",
        "wd",
        "digits",
        "cifar10",
        "resnet18",
    ):
        assert word in listing, word
    assert main(["trial", "method=nope"]) == 2
    err = capsys.readouterr().err
    assert "method" in err and "nope" in err


def test_every_clamp_is_in_the_dry_run_the_console_and_the_row(capsys, tmp_path):
    """A k larger than the kNN bank and MoCo's queue cut to the data, said by --dry-run (with the defaults
    this machine resolves), once at the start of the run, and in the row's notes."""
    args = ["method=moco", "backbone=test_resnet", "image_size=16", "batch_size=32", "train_limit=64", "epochs=1"]
    args += ["knn_k=[20,200]", "linear_epochs=2", "method_args.proj_hidden_dim=32"]
    assert main(["trial", "--dry-run", *args]) == 0
    out, err = capsys.readouterr()
    queue = "moco queue clamped from 4096 to 32 keys"
    bank = "knn_k 200 exceeds the 64 training images of the kNN bank: knn_top1_k200 votes with all 64 of them"
    assert queue in err and bank in err, err
    for resolved in ("cifar_stem        true", "device            cpu", "precision         fp32"):
        assert resolved in out, out
    assert main(["trial", *args, "--out", str(tmp_path)]) == 0
    _, err = capsys.readouterr()
    assert err.count(queue) == 1 and err.count(bank) == 1, err
    (row,) = [json.loads(p.read_text()) for p in tmp_path.glob("*/result.json")]
    assert queue in row["notes"] and bank in row["notes"]


def test_settings_that_make_little_sense_get_a_note(capsys):
    assert main(["trial", "--dry-run", "method=dino", "epochs=5", "backbone=test_resnet"]) == 0
    assert "teacher-temperature warm-up (30 epochs) is longer than the run (5 epochs)" in capsys.readouterr().err
    assert main(["trial", "--dry-run", "backbone=vit_tiny_patch16_224", "image_size=16"]) == 0
    assert "cuts 16-pixel images into 1 patch token(s) of 16 pixels" in capsys.readouterr().err


@pytest.mark.slow  # over 10 s on 2 cores: make test runs it, test-fast does not
def test_no_carriage_return_bars_in_a_log_and_the_leaderboard_prints_its_table(tmp_path, capsys):
    """Output to a file (not a terminal): no progress bar of any library draws into it; the leaderboard
    command ends with its headline table, not only paths; an unknown metric gets a did-you-mean (the
    leaderboard runs in this process: what it prints does not depend on a terminal)."""
    env = {**os.environ, "NORMBENCH_CACHE": str(tmp_path / "cache")}
    log = tmp_path / "simulate.log"
    with log.open("w") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "suite.cli", "simulate", "--out", str(tmp_path / "sim"), "--seeds", "1",
             "--max-steps", "200"],
            stdout=out, stderr=subprocess.STDOUT, env=env, timeout=600,
        )  # fmt: skip
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert "\r" not in log.read_text()
    trial = subprocess.run(
        [sys.executable, "-m", "suite.cli", "trial", *TINY_ARGS, "--out", str(tmp_path / "res")],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert trial.returncode == 0 and "\r" not in trial.stdout + trial.stderr, trial.stderr[-2000:]
    capsys.readouterr()
    assert main(["leaderboard", str(tmp_path / "res"), "--no-plots", "--formats", "md"]) == 0
    printed = capsys.readouterr().out
    assert "ranked by kNN@200 (%):" in printed
    table = printed.split("ranked by kNN@200 (%):")[1].split("md:")[0]
    assert len(table.strip().splitlines()) == 3  # header, rule, the one row
    assert "method" in table and "simclr" in table and "kNN@200 (%)" in table
    assert main(["leaderboard", str(tmp_path / "res"), "--metric", "linear"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'linear_top1'?" in err and len(err.splitlines()) == 1, err
