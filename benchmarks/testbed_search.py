"""Testbed search: a built-in, offline, CPU-sized dataset on which every SSL
method clearly beats its own untrained network, chosen from a committed table.

Why: on the scikit-learn digits an untrained test_resnet already reaches kNN@20 ~ 94 %, so no
claim about convergence in accuracy can be decided there. Candidates here are variants of the
`digits-synth` generator (suite/data/synthetic.py, `SynthStyle`), trained through the real trial
code (`suite.trial.train.run_trial`) with the per-method recipes below.

Criteria, fixed before the search (also in results/reference/testbed-search/criteria.md):

1. Gain. For each of simclr, moco, byol, simsiam and dino, the gain of a trial is its final
   kNN@20 minus the kNN@20 of its own untrained network (the epoch-0 row, same seed and same
   initial weights), in points. Over >= 3 seeds the 95 % Student-t interval of the gain has a
   lower end >= 5 points. (Untrained and trained linear top-1 are recorded too; not a criterion.)
2. Test set >= 2,000 images.
3. Time. One trial -- data generation, training and every evaluation -- takes <= ~180 s wall
   on the 2-core machine with 2 threads; the 1-thread time of the chosen setting is recorded as
   well, since the planned reference sweep runs two 1-thread trials side by side (~3 min each
   on 1 thread is the real target: ~160-240 trials in <= ~6 h).

k = 20 because every candidate has >= 300 training images per class, so 20 neighbours all come
from a dense part of one class's cloud; k = 200 would be about the whole class of the smallest
training sets and add nothing but vote smoothing (and the committed digits runs used k = 20).

Every trial run is one row of results/reference/testbed-search.csv (pilots, marked `pilot`;
untrained-only floor scans, marked `floor`; confirmation runs, marked `confirm`), with the
command that reruns it. `summary` reads that table back: per candidate x recipe x method, the
mean gain with its 95 % t-interval over seeds, the time, and whether the criteria hold.

    python benchmarks/testbed_search.py candidates
    python benchmarks/testbed_search.py floor gray24 clutter24            # untrained networks only
    python benchmarks/testbed_search.py run gray24 --methods simclr --seeds 0 --stage pilot --set epochs=10
    python benchmarks/testbed_search.py run gray24 --methods all --seeds 0 1 2 --stage confirm --jobs 2
    python benchmarks/testbed_search.py summary
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from suite.config import apply_overrides, make_config
from suite.config.model import TrialConfig
from suite.core.machine import cpu_model
from suite.core.stats import t_interval
from suite.data.synthetic import DIGITS_COLOUR, SynthStyle, register_candidate
from suite.measure.knn import knn_evaluate
from suite.measure.linear_probe import linear_probe
from suite.trial.evaluate import EvalSettings, encode, settled_batchnorm
from suite.trial.runtime import fit_threads
from suite.trial.train import build_model, load_data, run_trial

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "results" / "reference" / "testbed-search.csv"
METHODS = ("simclr", "moco", "byol", "simsiam", "dino")
K = 20
MIN_GAIN_PP = 5.0
MIN_TEST_IMAGES = 2_000
MAX_TRIAL_S = 180.0
MIN_SEEDS = 3


@dataclass(frozen=True)
class Candidate:
    """A dataset (a generator style at one image size) and the backbone it is trained with."""

    style: SynthStyle
    image_size: int
    backbone: str = "test_resnet"
    cifar_stem: bool | None = None  # None: the suite's rule (on for ResNets at <= 64 px)
    note: str = ""


CANDIDATES: dict[str, Candidate] = {
    # digits-synth itself, re-sized: random colours, placement and scale (the pilots).
    "synth16": Candidate(SynthStyle(sizes=(5_000, 5_000)), 16, note="digits-synth's style at 16 px"),
    # Achromatic: colour is no instance shortcut; placement, scale, polarity and gradient remain.
    "gray16": Candidate(SynthStyle(sizes=(5_000, 5_000), palette="gray"), 16, note="gray palette"),
    "gray24": Candidate(SynthStyle(sizes=(5_000, 5_000), palette="gray"), 24, note="gray palette, 24 px"),
    # Smaller digits on the canvas: more placement nuisance for the untrained network.
    "gray24s": Candidate(
        SynthStyle(sizes=(5_000, 5_000), palette="gray", scale=(0.35, 0.7)), 24, note="gray, small digits"
    ),
    # Clutter: a smooth background texture and fragments of other digits in the digit's colour.
    "clutter16": Candidate(
        SynthStyle(sizes=(5_000, 5_000), palette="gray", texture=0.15, distractors=3),
        16,
        note="gray, texture 0.15, 3 distractor fragments",
    ),
    "clutter24": Candidate(
        SynthStyle(sizes=(5_000, 5_000), palette="gray", texture=0.15, distractors=3),
        24,
        note="gray, texture 0.15, 3 distractor fragments, 24 px",
    ),
    "colourclutter16": Candidate(
        SynthStyle(sizes=(5_000, 5_000), texture=0.15, distractors=3),
        16,
        note="colour, texture 0.15, 3 distractor fragments",
    ),
    # Large, nearly centred digits: the nuisance is mostly colour, which colour jitter and
    # grayscale views target directly (the untrained network's kNN groups images by colour).
    "colour16c": Candidate(SynthStyle(sizes=(5_000, 5_000), scale=(0.8, 0.95)), 16, note="colour, centred, large"),
    "colour16m": Candidate(SynthStyle(sizes=(5_000, 5_000), scale=(0.6, 0.95)), 16, note="colour, scale 0.6-0.95"),
    "gray16c": Candidate(
        SynthStyle(sizes=(5_000, 5_000), palette="gray", scale=(0.8, 0.95)), 16, note="gray, centred, large"
    ),
    # The same at 24 and 32 px with timm's own stem (stride 4 before layer1): 2.5-4x cheaper
    # per image than 16 px with the CIFAR stem, so more steps fit the time.
    "colour24c": Candidate(
        SynthStyle(sizes=(5_000, 5_000), scale=(0.8, 0.95)), 24, cifar_stem=False, note="colour16c at 24 px, timm stem"
    ),
    "colour32c": Candidate(
        SynthStyle(sizes=(5_000, 5_000), scale=(0.8, 0.95)), 32, cifar_stem=False, note="colour16c at 32 px, timm stem"
    ),
    "colour16t": Candidate(
        SynthStyle(sizes=(5_000, 5_000), scale=(0.8, 0.95)), 16, cifar_stem=False, note="colour16c, timm stem"
    ),
    # Colour where every channel of the digit is on the same side of the background: the digit
    # survives grayscale views (with `colour`, a digit of the background's luminance vanishes).
    "polar16t": Candidate(
        SynthStyle(sizes=(5_000, 5_000), scale=(0.8, 0.95), palette="polar"),
        16,
        cifar_stem=False,
        note="polar colour, centred, timm stem",
    ),
    "polar32c": Candidate(
        SynthStyle(sizes=(5_000, 5_000), scale=(0.8, 0.95), palette="polar"),
        32,
        cifar_stem=False,
        note="polar colour, centred, 32 px, timm stem",
    ),
    # The chosen setting, registered as the built-in `digits-colour` (the same style as polar16t).
    "digits-colour": Candidate(DIGITS_COLOUR, 16, cifar_stem=False, note="built-in: polar16t's style"),
}


@dataclass(frozen=True)
class Recipe:
    """The training protocol: shared config keys plus each method's own (lr, method_args)."""

    shared: dict[str, Any]
    per_method: dict[str, dict[str, Any]] = field(default_factory=dict)

    def config(self, method: str) -> dict[str, Any]:
        return {**self.shared, **self.per_method.get(method, {}), "method": method}


# What worked on the digits (examples/sweeps/reference_digits.yaml): SimSiam, BYOL and DINO at lr
# 0.5, MoCo at 0.06 with a 256-key queue, DINO with Sinkhorn-Knopp centering and a sharp teacher,
# BYOL with a faster target (momentum 0.9). No flips (a mirrored digit is another digit).
DIGITS_METHODS: dict[str, dict[str, Any]] = {
    "simclr": {},
    "moco": {"lr": 0.06, "method_args": {"queue_size": 256}},
    "byol": {"lr": 0.5, "method_args": {"momentum_base": 0.9}},
    "simsiam": {"lr": 0.5},
    "dino": {
        "lr": 0.5,
        "method_args": {
            "centering": "sinkhorn",
            "num_prototypes": 256,
            "teacher_temp": 0.005,
            "warmup_teacher_temp_epochs": 0,
            "momentum_base": 0.99,
        },
    },
}
RECIPES: dict[str, Recipe] = {
    "base": Recipe(
        {
            "epochs": 8,
            "warmup_epochs": 1,
            "batch_size": 64,
            "augment": {"flip_p": 0.0, "crop_scale": [0.3, 1.0], "jitter_strength": 1.0, "grayscale_p": 0.5},
        },
        DIGITS_METHODS,
    ),
    # Colour is the nuisance, so views differ mostly in colour (grayscale 0.8, jitter 1.0) and
    # only mildly in framing (crops of 60-100 %: the digit fills the image and must stay whole).
    "colour": Recipe(
        {
            "epochs": 8,
            "warmup_epochs": 1,
            "batch_size": 64,
            "augment": {"flip_p": 0.0, "crop_scale": [0.6, 1.0], "jitter_strength": 1.0, "grayscale_p": 0.8},
        },
        DIGITS_METHODS,
    ),
    # The colour recipe at 32 images a step (twice the steps for the same images), with heads
    # scaled to test_resnet's 96-d features (512-wide hidden layers instead of 2048-4096: a third
    # of the step time of the defaults), BYOL's target at momentum 0.99 (0.9 peaked at epoch 2
    # and fell back) and SimSiam at lr 0.2 (0.5 gained nothing on kNN; 0.1 and 0.03 less than 0.2).
    "testbed": Recipe(
        {
            "epochs": 8,
            "warmup_epochs": 1,
            "batch_size": 32,
            "augment": {"flip_p": 0.0, "crop_scale": [0.6, 1.0], "jitter_strength": 1.0, "grayscale_p": 0.8},
        },
        {
            "simclr": {},
            "moco": {"lr": 0.06, "method_args": {"queue_size": 256, "proj_hidden_dim": 512}},
            "byol": {
                "lr": 0.5,
                "method_args": {"momentum_base": 0.99, "proj_hidden_dim": 512, "pred_hidden_dim": 512},
            },
            "simsiam": {
                "lr": 0.2,
                "method_args": {"proj_hidden_dim": 512, "proj_output_dim": 512, "pred_hidden_dim": 128},
            },
            "dino": {
                "lr": 0.5,
                "method_args": {**DIGITS_METHODS["dino"]["method_args"], "head_hidden_dim": 512},
            },
        },
    ),
}
# Evaluation settings every trial shares (science, but not searched): k, the BatchNorm
# re-estimation set (<= the training set) and the probe.
EVAL = {"knn_k": [K], "eval_bn_images": 2_048, "linear_probe": "lbfgs", "eval_batch_size": 1_024}


def trial_config(
    candidate: str, recipe: str, method: str, seed: int, overrides: list[str], threads: int
) -> TrialConfig:
    """The trial's full config: candidate dataset, recipe, evaluation settings, then overrides."""
    cand = CANDIDATES[candidate]
    register_candidate(candidate, cand.style, cand.image_size)
    data = {
        "dataset": candidate,
        "backbone": cand.backbone,
        "cifar_stem": cand.cifar_stem,
        "image_size": cand.image_size,
        **RECIPES[recipe].config(method),
        **EVAL,
        "seed": seed,
        "device": "cpu",
        "num_threads": threads,
        "checkpoint_every": 1_000,
    }
    data = apply_overrides(data, overrides)
    data.setdefault("eval_every", data["epochs"])  # epoch 0 (untrained) and the end only
    return make_config(data)


def command(candidate: str, recipe: str, method: str, seed: int, stage: str, threads: int, overrides: list[str]) -> str:
    """The shell command that reruns one trial (and appends its row again)."""
    parts = [".venv/bin/python", "benchmarks/testbed_search.py", "run" if stage != "floor" else "floor", candidate]
    parts += ["--recipe", recipe, "--methods", method, "--seeds", str(seed), "--threads", str(threads)]
    parts += ["--stage", stage] if stage != "floor" else []
    return shlex.join(parts + (["--set", *overrides] if overrides else []))


@torch.no_grad()
def untrained_scores(cfg: TrialConfig) -> dict[str, float]:
    """kNN@k and linear top-1 of the trial's untrained network (same seed, so the same initial
    weights as the trial's epoch-0 row), with the evaluation's BatchNorm re-estimation."""
    start = time.perf_counter()
    splits = load_data(cfg)
    method = build_model(cfg)
    s = EvalSettings(cfg.eval_batch_size, torch.device("cpu"), cfg.precision, False)
    with settled_batchnorm(method, splits, cfg, s):
        train = encode(method, splits.train_images, splits.mean, splits.std, s).features
        test = encode(method, splits.test_images, splits.mean, splits.std, s).features
    knn = knn_evaluate(
        train,
        splits.train_labels,
        test,
        splits.test_labels,
        ks=(K,),
        temperature=cfg.knn_temperature,
        num_classes=splits.num_classes,
    )
    probe = linear_probe(
        train,
        splits.train_labels,
        test,
        splits.test_labels,
        num_classes=splits.num_classes,
        probe=cfg.linear_probe,
        epochs=cfg.linear_epochs,
        seed=cfg.seed,
        device="cpu",
    )
    return {
        "knn_untrained_recomputed": float(knn.accuracy[K]),
        "linear_untrained": float(probe["top1"]),
        "train_size": len(splits.train_labels),
        "test_size": len(splits.test_labels),
        "untrained_eval_s": time.perf_counter() - start,
    }


def base_row(cfg: TrialConfig, candidate: str, recipe: str, stage: str, overrides: list[str]) -> dict[str, Any]:
    cand = CANDIDATES[candidate]
    return {
        "stage": stage,
        "candidate": candidate,
        "recipe": recipe,
        "overrides": " ".join(overrides),
        "style": json.dumps(asdict(cand.style), sort_keys=True),
        "backbone": cfg.backbone,
        "cifar_stem": cfg.cifar_stem,
        "image_size": cfg.image_size,
        "method": cfg.method,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "warmup_epochs": cfg.warmup_epochs,
        "batch_size": cfg.batch_size,
        "optimizer": cfg.optimizer,
        "lr": cfg.lr,
        "weight_decay": cfg.weight_decay,
        "method_args": json.dumps(cfg.method_args, sort_keys=True),
        "augment": json.dumps(cfg.augment, sort_keys=True),
        "eval_bn_images": cfg.eval_bn_images,
        "linear_probe": cfg.linear_probe,
    }


def run_one(
    candidate: str, recipe: str, method: str, seed: int, stage: str, threads: int, overrides: list[str]
) -> dict:
    """Train one trial (or, for `floor`, measure its untrained network only) and return its row."""
    fit_threads(threads)
    cfg = trial_config(candidate, recipe, method, seed, overrides, threads)
    row = base_row(cfg, candidate, recipe, stage, overrides)
    row["load_before"] = os.getloadavg()[0]  # other work on the machine slows a trial: say how much there was
    if stage != "floor":
        with tempfile.TemporaryDirectory(prefix="testbed-") as tmp:
            start = time.perf_counter()
            result = run_trial(cfg, Path(tmp) / cfg.trial_id, progress=False)
            process_s = time.perf_counter() - start
        trial = result.row
        if trial["status"] != "completed":
            raise RuntimeError(f"{cfg.trial_id}: {trial['status']}: {trial['error']}")
        row.update(
            {
                "knn_untrained": trial[f"knn_top1_k{K}_init"],
                "knn_trained": trial[f"knn_top1_k{K}"],
                "linear_trained": trial["linear_top1"],
                "final_loss": trial["final_loss"],
                "first_loss": next((c["loss"] for c in result.curves if c["epoch"] == 1), math.nan),
                "images_per_s": trial["images_per_s"],
                "train_s": trial["train_time_s"],
                "eval_s": trial["eval_time_s"],
                "trial_wall_s": trial["wall_time_s"],
                "process_s": process_s,
                "trial_id": trial["trial_id"],
                "knn_curve": json.dumps(
                    {
                        c["epoch"]: round(c[f"knn_top1_k{K}"], 4)
                        for c in result.curves
                        if c.get(f"knn_top1_k{K}") == c.get(f"knn_top1_k{K}")
                    }
                ),
            }
        )
    untrained = untrained_scores(cfg)
    row.update(untrained)
    row.setdefault("knn_untrained", untrained["knn_untrained_recomputed"])
    row["gain_knn_pp"] = 100 * (row.get("knn_trained", math.nan) - row["knn_untrained"])
    row["gain_linear_pp"] = 100 * (row.get("linear_trained", math.nan) - row["linear_untrained"])
    row.update(
        {
            "load_after": os.getloadavg()[0],
            "num_threads": threads,
            "cpu_model": cpu_model(),
            "torch_version": torch.__version__,
            "git_commit": git_commit(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "command": command(candidate, recipe, method, seed, stage, threads, overrides),
        }
    )
    return row


def git_commit() -> str:
    """HEAD of the checkout, with ``+dirty`` when the working tree differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True)
    except OSError:
        return ""
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Exclusive lock beside ``path``: parallel trials append whole rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def append_row(row: dict[str, Any], path: Path = CSV) -> None:
    """Append one row; a new column widens the table (old rows get blanks)."""
    with locked(path):
        old = pd.read_csv(path) if path.exists() else pd.DataFrame()
        table = pd.concat([old, pd.DataFrame([row])], ignore_index=True)
        tmp = path.with_suffix(".tmp")
        table.to_csv(tmp, index=False, float_format="%.6g")
        os.replace(tmp, path)


GROUP = ["candidate", "recipe", "overrides"]


def _settings(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    table["overrides"] = table["overrides"].fillna("")
    return table


def summarise(table: pd.DataFrame, stages: tuple[str, ...] = ("pilot", "confirm")) -> pd.DataFrame:
    """Per stage x candidate x recipe x overrides x method: seeds, untrained and trained kNN@20,
    the gain's mean and 95 % t-interval (points), linear top-1 and the time per thread count."""
    trained = _settings(table[table["stage"].isin(stages)])
    keys = ["stage", *GROUP, "method"]
    rows = []
    for key, group in trained.groupby(keys, sort=False):
        gain = t_interval(group["gain_knn_pp"])
        one, two = (group.loc[group["num_threads"] == t, "process_s"] for t in (1, 2))
        rows.append(
            {
                **dict(zip(keys, key)),
                "seeds": group["seed"].nunique(),
                "test_size": int(group["test_size"].min()),
                "knn_untrained": 100 * group["knn_untrained"].mean(),
                "knn_trained": 100 * group["knn_trained"].mean(),
                "gain_pp": gain.estimate,
                "gain_lo": gain.lo,
                "gain_hi": gain.hi,
                "linear_untrained": 100 * group["linear_untrained"].mean(),
                "linear_trained": 100 * group["linear_trained"].mean(),
                "time_1t_s": one.mean() if len(one) else math.nan,
                "time_2t_s": two.mean() if len(two) else math.nan,
            }
        )
    return pd.DataFrame(rows)


def timings(table: pd.DataFrame) -> pd.DataFrame:
    """Per setting x method x threads, over confirmation and timing runs: the trial's time
    (data generation, training and every evaluation) and the machine's load while it ran."""
    runs = _settings(table[table["stage"].isin(("confirm", "timing"))])
    if runs.empty:
        return pd.DataFrame()
    keys = [*GROUP, "method", "num_threads"]
    out = runs.groupby(keys, sort=False).agg(
        trials=("process_s", "size"),
        mean_s=("process_s", "mean"),
        max_s=("process_s", "max"),
        train_s=("train_s", "mean"),
        eval_s=("eval_s", "mean"),
        images_per_s=("images_per_s", "mean"),
        load_before=("load_before", "mean"),
    )
    return out.reset_index()


def criteria_met(table: pd.DataFrame, min_seeds: int = MIN_SEEDS) -> pd.DataFrame:
    """Per confirmed setting: does every method meet every criterion? The time criterion is the
    slowest method's mean 2-thread time (NaN, not met, until a 2-thread run is recorded)."""
    summary = summarise(table, ("confirm",))
    if summary.empty:
        return summary
    times = timings(table)
    out = []
    for key, group in summary.groupby(GROUP, sort=False):
        mine = times[(times[GROUP] == pd.Series(key, index=GROUP)).all(axis=1)]
        two = mine.loc[mine["num_threads"] == 2].groupby("method")["mean_s"].mean()
        one = mine.loc[mine["num_threads"] == 1].groupby("method")["mean_s"].mean()
        slowest_2t = float(two.max()) if len(two) and set(two.index) >= set(group["method"]) else math.nan
        out.append(
            {
                **dict(zip(GROUP, key)),
                "all_methods": set(METHODS) <= set(group["method"]),
                "min_seeds": int(group["seeds"].min()),
                "worst_gain_lo": float(group["gain_lo"].min()),
                "gain_ok": bool((group["gain_lo"] >= MIN_GAIN_PP).all() and group["seeds"].min() >= min_seeds),
                "test_size": int(group["test_size"].min()),
                "test_ok": bool((group["test_size"] >= MIN_TEST_IMAGES).all()),
                "slowest_1t_s": float(one.max()) if len(one) else math.nan,
                "slowest_2t_s": slowest_2t,
                "time_ok": bool(slowest_2t <= MAX_TRIAL_S),
            }
        )
    return pd.DataFrame(out)


def cmd_candidates(_: argparse.Namespace) -> int:
    for name, cand in CANDIDATES.items():
        print(f"{name:<16} {cand.image_size:>3} px  {cand.backbone:<12} {cand.note}")
        print(f"{'':<16} {json.dumps(asdict(cand.style))}")
    for name, recipe in RECIPES.items():
        print(f"recipe {name}: {json.dumps(recipe.shared)}; per method {json.dumps(recipe.per_method)}")
    return 0


def cmd_run(args: argparse.Namespace, stage: str) -> int:
    methods = list(METHODS) if args.methods == ["all"] else args.methods
    jobs = [(c, m, s) for c in args.candidates for m in methods for s in args.seeds]
    if args.jobs > 1:  # one process per trial, at most `jobs` at once
        running: list[subprocess.Popen] = []
        failed = 0
        for candidate, method, seed in jobs:
            while len(running) >= args.jobs:
                running, failed = _reap(running, failed)
            cmd = shlex.split(command(candidate, args.recipe, method, seed, stage, args.threads, args.overrides))
            running.append(subprocess.Popen([sys.executable, *cmd[1:]], cwd=ROOT))
        while running:
            running, failed = _reap(running, failed)
        return 1 if failed else 0
    for candidate, method, seed in jobs:
        row = run_one(candidate, args.recipe, method, seed, stage, args.threads, args.overrides)
        append_row(row, Path(args.csv))
        print(
            f"{stage} {candidate} {method} s{seed}: kNN@{K} {100 * row['knn_untrained']:.1f} -> "
            f"{100 * row.get('knn_trained', math.nan):.1f} (gain {row['gain_knn_pp']:+.1f}), linear "
            f"{100 * row['linear_untrained']:.1f} -> {100 * row.get('linear_trained', math.nan):.1f}, "
            f"{row.get('process_s', row['untrained_eval_s']):.0f} s",
            flush=True,
        )
    return 0


def _reap(running: list[subprocess.Popen], failed: int) -> tuple[list[subprocess.Popen], int]:
    time.sleep(1.0)
    still = [p for p in running if p.poll() is None]
    failed += sum(1 for p in running if p.poll() not in (None, 0))
    return still, failed


def cmd_summary(args: argparse.Namespace) -> int:
    table = pd.read_csv(args.csv)
    summary, times, verdict = summarise(table), timings(table), criteria_met(table)
    if args.write:
        summary.to_csv(args.write, index=False, float_format="%.4g")
    with pd.option_context("display.width", 250, "display.max_rows", 500, "display.max_colwidth", 70):
        for title, frame in (("gains (points)", summary), ("times (s)", times), ("criteria", verdict)):
            print(f"\n{title}:")
            print(frame.to_string(index=False, float_format=lambda v: f"{v:.1f}") if len(frame) else "  none yet")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="testbed_search.py", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--csv", default=str(CSV), help=f"the search table (default {CSV.relative_to(ROOT)})")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("candidates", help="list the candidates and recipes")
    for name, what in (("run", "train trials and append their rows"), ("floor", "untrained networks only")):
        s = sub.add_parser(name, help=what)
        s.add_argument("candidates", nargs="+", choices=sorted(CANDIDATES), metavar="CANDIDATE")
        s.add_argument("--recipe", default="base", choices=sorted(RECIPES))
        s.add_argument("--methods", nargs="+", default=["simclr"], choices=[*METHODS, "all"])
        s.add_argument("--seeds", nargs="+", type=int, default=[0])
        s.add_argument("--threads", type=int, default=1, help="torch threads per trial (default 1)")
        s.add_argument("--jobs", type=int, default=1, help="trials side by side, one process each (default 1)")
        if name == "run":
            s.add_argument(
                "--stage",
                default="pilot",
                choices=["pilot", "confirm", "timing"],
                help="pilot: exploring; confirm: the seeds that judge a setting; timing: reruns for the time only",
            )
        s.add_argument(
            "--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides (epochs=12)"
        )
    summary = sub.add_parser("summary", help="per candidate x method: gains with 95%% t-intervals, times, criteria")
    summary.add_argument("--write", metavar="CSV", help="also write the gains table there")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "candidates":
        return cmd_candidates(args)
    if args.command == "summary":
        return cmd_summary(args)
    return cmd_run(args, "floor" if args.command == "floor" else args.stage)


if __name__ == "__main__":
    raise SystemExit(main())
