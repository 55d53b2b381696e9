"""End to end: real timm model, real digits, the real training function."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from support import REPO, SMALL_HEADS

from methods import METHODS as REGISTRY
from suite.config import make_config
from suite.results import store as results
from suite.trial.train import build_model, load_data, run_trial

METHODS = sorted(REGISTRY)  # a new method is tested end to end as soon as it is registered
INTERVENTIONS = ["none", "cut:3", "gradscale:1"]

# Every column the trials table promises (docs/ARCHITECTURE.md).
TRIAL_COLUMNS = [
    "trial_id",
    "status",
    "error",
    "method",
    "backbone",
    "dataset",
    "intervention",
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "weight_decay",
    "seed",
    "image_size",
    "method_args",
    "knn_top1_k200",
    "knn_top1_k20",
    "linear_top1",
    *(f"{v}_norm_{s}" for v in ("emb", "feat") for s in ("mean", "std", "q05", "q50", "q95")),
    "test_emb_norm_mean",
    "test_emb_norm_std",
    "test_feat_norm_mean",
    "test_feat_norm_std",
    "emb_correct_auroc",
    "feat_correct_auroc",
    "emb_ood_auroc",
    "feat_ood_auroc",
    "emb_freq_spearman",
    "feat_freq_spearman",
    "epochs_completed",
    "final_loss",
    "wall_time_s",
    "images_per_s",
    "notes",
    "knn_top1_k200_init",
    "knn_top1_k20_init",
    "eval_bn",
    "eval_bn_images",
]
FINITE_COLUMNS = [
    "knn_top1_k200",
    "knn_top1_k20",
    "linear_top1",
    "emb_norm_mean",
    "feat_norm_mean",
    "test_emb_norm_mean",
    "test_feat_norm_mean",
    "emb_correct_auroc",
    "feat_correct_auroc",
    "final_loss",
    "wall_time_s",
    "images_per_s",
]
CURVE_COLUMNS = [
    "trial_id",
    "epoch",
    "loss",
    "lr",
    "emb_norm_mean",
    "emb_norm_std",
    "emb_norm_q05",
    "emb_norm_q50",
    "emb_norm_q95",
    "feat_norm_mean",
    "images_per_s",
    "epoch_time_s",
    "knn_top1_k200",
    "knn_top1_k20",
    "emb_grad_norm_mean",
    "emb_grad_cos_abs_mean",
    "emb_dir_grad_norm_mean",
]


# The fast tier trains every method with `none` and every intervention on SimCLR; `make test` runs every pair.
# `none` trains each method's default heads (Barlow Twins' 8192-wide projector, DINO's 65,536 prototypes);
# an intervention acts on the backbone, the embedding or the optimizer whatever the heads' width, so the
# intervention pairs train the narrow SMALL_HEADS in a fraction of the time.
METHOD_INTERVENTION = [
    pytest.param(m, i, marks=() if i == "none" or m == "simclr" else pytest.mark.slow)
    for m in METHODS
    for i in INTERVENTIONS
]


@pytest.mark.parametrize(
    ("method", "intervention"), METHOD_INTERVENTION, ids=[f"{m}-{i}" for m in METHODS for i in INTERVENTIONS]
)
def test_every_method_and_intervention_trains_two_epochs(tmp_path, tiny_trial, method, intervention):
    normalizes = REGISTRY[method].loss_normalizes_embedding
    # GradScale on a loss that does not normalize (the controls) has no 1/||z|| to cancel: it multiplies the
    # step by ||z||, which diverges at the default lr within these few steps
    lr = {"lr": 0.003} if "gradscale" in intervention and not normalizes else {}
    heads = {} if intervention == "none" else {"method_args": SMALL_HEADS[method]}
    cfg = make_config({**tiny_trial, "method": method, "intervention": intervention, **lr, **heads})
    row = run_trial(cfg, tmp_path / cfg.trial_id, progress=False).row
    assert row["status"] == "completed", row["error"]
    assert row["epochs_completed"] == 2
    for col in FINITE_COLUMNS:
        if col.endswith("_auroc") and row.get(f"{col}_note"):
            continue  # near-constant norms (a tiny cut-init run): NaN with its reason, never a fake 0.5
        assert math.isfinite(row[col]), (col, row[col])
    for col in ("knn_top1_k200", "knn_top1_k20", "linear_top1"):
        assert 0.0 <= row[col] <= 1.0

    trials = results.collect_results(tmp_path)
    missing = [c for c in TRIAL_COLUMNS if c not in trials.columns]
    assert not missing, missing
    table = pd.read_parquet(tmp_path / "trials.parquet")
    assert len(table) == 1 and table.loc[0, "status"] == "completed"
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert list(curves["epoch"]) == [1, 2]
    assert [c for c in CURVE_COLUMNS if c not in curves.columns] == []
    assert curves["loss"].map(math.isfinite).all()
    # The paper's first claim, in a real network: the loss's gradient at the embedding is orthogonal to it
    # (where the loss L2-normalizes it; the controls' is not).
    assert (curves["emb_grad_norm_mean"] > 0).all()
    cos = curves["emb_grad_cos_abs_mean"]
    assert (cos < 1e-4).all() if normalizes else (cos > 1e-2).all()
    # kNN is evaluated at the final epoch only (eval_every=0) and equals the final row.
    assert math.isnan(curves.loc[0, "knn_top1_k200"])
    assert curves.loc[1, "knn_top1_k200"] == pytest.approx(row["knn_top1_k200"])


def test_cut_init_shrinks_the_initial_norms(tiny_trial):
    base = build_model(make_config({**tiny_trial, "method": "byol"}))
    cut = build_model(make_config({**tiny_trial, "method": "byol", "intervention": "cut:3"}))
    for (name, p0), (_, p1) in zip(base.state_dict().items(), cut.state_dict().items()):
        if p0.is_floating_point() and "running" not in name:
            torch.testing.assert_close(p1, p0 / 3, msg=name)


def _interrupt_after_epoch(epoch: int):
    def report(metrics, checkpoint_dir):
        if metrics["epoch"] == epoch:
            assert checkpoint_dir is not None and (checkpoint_dir / "state.pt").is_file()
            raise KeyboardInterrupt

    return report


_interrupt_after_first_epoch = _interrupt_after_epoch(1)


# Narrow heads keep the test quick; MoCo's queue (512 keys, 576 pushed in 3 epochs) wraps around after the resume.
RESUME_HEADS = {
    "byol": {"proj_hidden_dim": 256, "pred_hidden_dim": 256},
    "moco": {"proj_hidden_dim": 256, "queue_size": 512},
}


@pytest.mark.slow  # three trials of three epochs: over 10 s on 2 cores
@pytest.mark.parametrize("method", ["byol", "moco"])  # EMA targets, momentum encoder and a queue must all resume
def test_resume_after_interrupt_matches_uninterrupted_run(tmp_path, tiny_trial, method):
    cfg = make_config({**tiny_trial, "method": method, "epochs": 3, "method_args": RESUME_HEADS[method]})
    full = run_trial(cfg, tmp_path / "full", progress=False).row

    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg, tmp_path / "cut", progress=False, report=_interrupt_after_first_epoch)
    partial = json.loads((tmp_path / "cut" / "result.json").read_text())
    assert partial["status"] == "interrupted" and len(pd.read_csv(tmp_path / "cut" / "curves.csv")) == 1
    assert "SIGINT after epoch 1" in partial["error"] and partial["epochs_completed"] == 1
    assert partial["last_checkpoint"].startswith("epoch 1")

    resumed = run_trial(
        cfg, tmp_path / "cut", resume_from=tmp_path / "cut" / "checkpoints" / "last", progress=False
    ).row
    for key in ("final_loss", "knn_top1_k200", "knn_top1_k20", "linear_top1", "emb_norm_mean", "test_emb_norm_mean"):
        assert resumed[key] == full[key], key  # bit-for-bit on CPU
    assert resumed["epochs_completed"] == 3
    full_curves = pd.read_csv(tmp_path / "full" / "curves.csv")
    resumed_curves = pd.read_csv(tmp_path / "cut" / "curves.csv")
    pd.testing.assert_series_equal(full_curves["loss"], resumed_curves["loss"])
    assert resumed["wall_time_s"] >= resumed["train_time_s"]  # the resumed state counted its epochs' wall time


def test_a_reference_leads_back_to_the_checkpoint_of_its_epoch_and_a_completed_trial_keeps_its_model_only(
    tmp_path, tiny_trial
):
    """What a sweep hands Ray is a reference (a few bytes), followed back to ``last``, or to ``previous`` when
    the trial saved once more after its report; a completed trial keeps the model of its last checkpoint,
    which export reads, and nothing a resume would need."""
    from suite.core.errors import ConfigError
    from suite.trial import checkpoint as ckpt
    from suite.trial.export import export_trial

    cfg = make_config({**tiny_trial, "method": "simclr", "epochs": 3})
    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg, tmp_path / "t", progress=False, report=_interrupt_after_epoch(2))
    checkpoints = tmp_path / "t" / "checkpoints"
    ref = ckpt.write_reference(tmp_path / "ref", checkpoints / "last", epoch=2)
    assert sum(f.stat().st_size for f in ref.iterdir()) < 512
    assert ckpt.follow_reference(ref) == checkpoints / "last"
    older = ckpt.write_reference(tmp_path / "older", checkpoints / "last", epoch=1)
    assert ckpt.follow_reference(older) == checkpoints / "previous"
    gone = ckpt.write_reference(tmp_path / "gone", checkpoints / "last", epoch=7)
    with pytest.raises(ConfigError, match="a checkpoint of epoch 7"):
        ckpt.follow_reference(gone)

    done = run_trial(cfg, tmp_path / "t", resume_from=ckpt.follow_reference(ref), progress=False).row
    assert done["status"] == "completed" and not (checkpoints / "previous").exists()
    kept = ckpt.read(checkpoints / "last")
    assert kept["optimizer"] is None and kept["completed"] and kept["state"]["epoch"] == 3
    model = build_model(cfg)
    model.load_state_dict(kept["model"])  # the whole model is there
    export_trial(tmp_path / "t", tmp_path / "exported")
    assert (tmp_path / "exported" / "model.safetensors").is_file()
    with pytest.raises(ConfigError, match="the trial completed"):
        ckpt.load(checkpoints, model, torch.optim.SGD(model.parameters(), lr=0.1), cfg)


SIGNAL_CHECKS = """
import json, os, signal, sys, threading, time
from pathlib import Path

from suite.config import make_config
from suite.trial import checkpoint as ckpt
from suite.trial.train import run_trial

# Ctrl-C raises KeyboardInterrupt, as in a terminal, even where this process inherited SIGINT ignored (a
# shell's background job, `make test &`).
signal.signal(signal.SIGINT, signal.default_int_handler)

# Holds nest: the inner block's end does not deliver what arrived, the outermost does. A second thread
# is running, as torch's are in a trial: the kernel may hand it the signal (masking the main thread
# alone held nothing).
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
for _ in range(20):
    heard = []
    signal.signal(signal.SIGTERM, lambda *_: heard.append("SIGTERM"))
    with ckpt.signals_held():
        with ckpt.signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.001)
        assert heard == [], heard
    assert heard == ["SIGTERM"], heard
signal.signal(signal.SIGTERM, signal.SIG_DFL)

# SIGINT sent the moment a save returns is held until the trial has recorded that checkpoint.
real_save = ckpt.save


def save_then_stop(*args, **kwargs):
    saved = real_save(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGINT)  # delivered at once unless something holds it
    return saved


ckpt.save = save_then_stop
try:
    run_trial(make_config(json.loads(sys.argv[1])), Path(sys.argv[2]), progress=False)
except KeyboardInterrupt:
    print("interrupted")
"""


def _trial_in_its_own_process(script: str, cfg: dict, out: Path) -> subprocess.CompletedProcess:
    """`script` (given the config as JSON and the output folder) in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-c", script, json.dumps(cfg), str(out)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow  # over 10 s on 2 cores: make test runs it, test-fast does not
def test_a_stop_the_moment_a_checkpoint_is_saved_still_records_that_checkpoint(tmp_path, tiny_trial):
    """The race a user's Ctrl-C can hit: the row and the message name the checkpoint just saved, and
    signal holds nest. In its own process: Python delivers signals to the main thread, which is not
    the one running the test under pytest-xdist."""
    cfg = {**tiny_trial, "epochs": 3, "checkpoint_every": 1}
    proc = _trial_in_its_own_process(SIGNAL_CHECKS, cfg, tmp_path / "t")
    assert proc.returncode == 0 and proc.stdout.strip() == "interrupted", proc.stderr[-3000:]
    row = json.loads((tmp_path / "t" / "result.json").read_text())
    assert row["status"] == "interrupted" and row["epochs_completed"] == 1
    assert row["last_checkpoint"].startswith("epoch 1 (") and "last checkpoint: epoch 1 (" in row["error"]


IMPORTS_OF_A_TRIAL = """
import json, sys
from pathlib import Path

from suite.config import make_config
from suite.trial.train import run_trial

row = run_trial(make_config(json.loads(sys.argv[1])), Path(sys.argv[2]), progress=False).row
print(json.dumps({"status": row["status"], "imported": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def test_a_trial_process_imports_neither_scikit_learn_nor_scipy(tmp_path, tiny_trial):
    """A sweep starts a process per trial, and these two cost each one about two seconds of CPU: the
    digits are read from scikit-learn's bundled file and the evaluation ranks in numpy. In its own
    process, from the imports to the final evaluation: this one has imported both for the tests."""
    cfg = {**tiny_trial, "epochs": 1, "train_limit": 64, "linear_epochs": 1}
    proc = _trial_in_its_own_process(IMPORTS_OF_A_TRIAL, cfg, tmp_path / "t")
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "completed" and {"torch", "timm"} <= set(outcome["imported"])
    assert {"sklearn", "scipy"} & set(outcome["imported"]) == set()


def test_same_seed_repeats_and_other_seed_differs(tmp_path, tiny_trial):
    cfg = make_config({**tiny_trial, "epochs": 1})
    a = run_trial(cfg, tmp_path / "a", progress=False).row
    b = run_trial(cfg, tmp_path / "b", progress=False).row
    c = run_trial(make_config({**tiny_trial, "epochs": 1, "seed": 1}), tmp_path / "c", progress=False).row
    assert a["final_loss"] == b["final_loss"] and a["emb_norm_mean"] == b["emb_norm_mean"]
    assert a["final_loss"] != c["final_loss"]


def test_non_finite_loss_fails_the_trial_and_records_why(tmp_path, tiny_trial):
    cfg = make_config({**tiny_trial, "epochs": 4, "lr": 1e30, "warmup_epochs": 0})
    row = run_trial(cfg, tmp_path / "t", progress=False).row
    assert row["status"] == "failed"
    assert "non-finite loss" in row["error"]
    assert row["epochs_completed"] < 4
    stored = json.loads((tmp_path / "t" / "result.json").read_text())
    assert stored["status"] == "failed" and stored["error"] == row["error"]


def test_eval_every_records_knn_curve(tmp_path, tiny_trial):
    cfg = make_config({**tiny_trial, "epochs": 2, "eval_every": 1})
    run_trial(cfg, tmp_path / "t", progress=False)
    curves = pd.read_csv(tmp_path / "t" / "curves.csv")
    assert curves["knn_top1_k200"].notna().all() and curves["knn_top1_k20"].notna().all()


def test_holdout_classes_give_ood_diagnostics(tmp_path, tiny_trial):
    cfg = make_config({**tiny_trial, "holdout_classes": [8, 9], "train_limit": None, "batch_size": 256, "epochs": 1})
    splits = load_data(cfg)
    assert not torch.isin(splits.train_labels, torch.tensor([8, 9])).any() or splits.num_classes == 8
    assert splits.num_classes == 8 and splits.ood_images is not None
    row = run_trial(cfg, tmp_path / "t", progress=False).row
    for col in ("emb_ood_auroc", "feat_ood_auroc", "emb_correct_auroc"):
        assert 0.0 <= row[col] <= 1.0, col
    norms = pd.read_parquet(tmp_path / "t" / results.EVAL_NORMS_FILE)
    assert set(norms["split"]) == {"test", "ood"}
    assert (norms["split"] == "ood").sum() == 2 * len(splits.ood_images)  # embedding + features
    bins = pd.read_csv(tmp_path / "t" / "norm_bins.csv")
    assert set(bins["vector"]) == {"embedding", "features"}


def test_imbalanced_training_set_reports_frequency_norm_correlation(tmp_path, tiny_trial):
    cfg = make_config({**tiny_trial, "imbalance": 8.0, "train_limit": None, "batch_size": 128, "epochs": 1})
    splits = load_data(cfg)
    counts = torch.bincount(splits.train_labels, minlength=10)
    most, least = splits.frequency_order[0], splits.frequency_order[-1]
    assert counts[most] / counts[least] == pytest.approx(8.0, rel=0.1)
    row = run_trial(cfg, tmp_path / "t", progress=False).row
    for col in ("emb_freq_spearman", "feat_freq_spearman"):
        assert -1.0 <= row[col] <= 1.0, col
    assert math.isnan(row["emb_ood_auroc"])  # no OOD set in this trial


@pytest.mark.slow  # over 10 s on 2 cores: make test runs it, test-fast does not
def test_trial_tables_feed_the_leaderboard(tmp_path, tiny_trial):
    """The real trainer's tables (not hand-written ones) through the leaderboard CLI."""
    from suite.cli import main

    out = tmp_path / "res"
    for intervention in ("none", "cut:3"):
        cfg = make_config({**tiny_trial, "intervention": intervention, "eval_every": 1})
        run_trial(cfg, out / cfg.trial_id, progress=False)
    results.collect_results(out)
    assert main(["leaderboard", str(out), "--out", str(tmp_path / "lb"), "--formats", "md,csv"]) == 0
    board = pd.read_csv(tmp_path / "lb" / "leaderboard.csv")
    trials = pd.read_parquet(out / "trials.parquet").set_index("intervention")
    assert sorted(board["intervention"]) == ["cut:3", "none"]
    for _, group in board.iterrows():
        assert group["knn_top1_k200_mean"] == pytest.approx(trials.loc[group["intervention"], "knn_top1_k200"])
    cut = board.set_index("intervention").loc["cut:3"]
    assert cut["delta_knn_top1_k200"] == pytest.approx(
        trials.loc["cut:3", "knn_top1_k200"] - trials.loc["none", "knn_top1_k200"]
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"optimizer": "lars"},
        {"optimizer": "adamw", "lr": 1e-3, "backbone": "test_vit"},
        {"precision": "bf16", "channels_last": True},  # the CUDA defaults, run here on the CPU
    ],
)
def test_optimizers_and_precision_paths_train(tmp_path, tiny_trial, overrides):
    cfg = make_config({**tiny_trial, "epochs": 1, **overrides})
    row = run_trial(cfg, tmp_path / "t", progress=False).row
    assert row["status"] == "completed" and math.isfinite(row["final_loss"])
    assert 0.0 <= row["knn_top1_k20"] <= 1.0


def test_checkpoint_every_n_epochs_and_at_the_end(tmp_path, tiny_trial):
    cfg = make_config({**tiny_trial, "epochs": 3, "checkpoint_every": 2})
    saved = []
    run_trial(cfg, tmp_path / "t", progress=False, report=lambda m, d: saved.append((m["epoch"], d is not None)))
    assert saved == [(1, False), (2, True), (3, True)]


def test_threads_default_to_the_cpus_the_trial_holds_and_the_row_records_them(tmp_path, tiny_trial):
    import os

    from suite.trial.runtime import fit_threads

    cpus = len(os.sched_getaffinity(0))
    before = torch.get_num_threads()
    cfg = make_config({**tiny_trial, "epochs": 1, "num_threads": None})
    assert run_trial(cfg, tmp_path / "a", progress=False).row["torch_threads"] == cpus == torch.get_num_threads()
    pinned = make_config({**tiny_trial, "epochs": 1, "num_threads": 1})
    assert run_trial(pinned, tmp_path / "b", progress=False).row["torch_threads"] == 1 == torch.get_num_threads()
    held = run_trial(cfg, tmp_path / "c", progress=False, cpus=1).row  # a launcher that knows what it granted
    assert held["torch_threads"] == 1
    fit_threads(before)  # leave the process as the other tests expect it


def test_the_row_records_the_software_and_cpu_it_ran_on(tmp_path, tiny_trial):
    """Same numbers need the same machine, software and threads: the row says which it had."""
    import platform
    from pathlib import Path

    row = run_trial(make_config({**tiny_trial, "epochs": 1}), tmp_path / "t", progress=False).row
    assert row["torch_version"] == torch.__version__
    cpuinfo = Path("/proc/cpuinfo")
    names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
    assert row["cpu_model"] == (names[0] if names else platform.processor() or platform.machine())
    assert {"torch_version", "cpu_model", "torch_threads"} <= set(results.read_result(tmp_path / "t"))
