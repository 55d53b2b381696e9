"""`normbench claims`: synthetic tables built so each claim holds, does not hold, or cannot be decided.

Each scenario is a small hand-made trials/curves table in the results schema.
Verdicts are checked exactly; the statistics against independent computations
with scipy (t-intervals, linear regressions, least squares) done here by hand.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import linalg, stats

from suite.analysis.claims import report
from suite.analysis.claims.verdicts import (
    HOLDS,
    INCONCLUSIVE,
    MIN_SEEDS,
    NOT_HOLD,
    ROW_COLUMNS,
    arm_signature,
    evaluate_claims,
)
from suite.cli import main

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "results" / "reference" / "digits-reference"
NAN = float("nan")
EPOCHS = 10


def trial(method="simclr", intervention="none", seed=0, **extra) -> dict:
    row = dict(
        trial_id="",
        status="completed",
        dataset="digits",
        backbone="test_resnet",
        method=method,
        intervention=intervention,
        seed=seed,
        epochs=EPOCHS,
        weight_decay=1e-4,
        lr=0.1,
        warmup_epochs=0,
        batch_size=64,
        image_size=16,
        imbalance=NAN,
        holdout_classes=None,
        ood_dataset=None,
        knn_top1_k200=0.9,
        knn_top1_k20=0.9,
        knn_top1_k200_init=0.5,
        knn_top1_k20_init=0.5,
        emb_norm_mean=5.0,
        emb_correct_auroc=NAN,
        emb_ood_auroc=NAN,
        emb_freq_spearman=NAN,
    )
    row["knn_top1_k20"] = 0.9 - 0.01 * (seed % 3)  # seeds differ: the "learns" rule needs an interval
    row.update(extra)
    row["trial_id"] = f"{method}-{intervention}-s{seed}-wd{row['weight_decay']:g}-lr{row['lr']:g}"
    return row


def curve(t: dict, epochs: int = EPOCHS, **series) -> list[dict]:
    """Curve rows for trial ``t``: epoch 0..epochs; each series is a function of the epoch (NaN allowed)."""
    rows = []
    for e in range(epochs + 1):
        row = {"trial_id": t["trial_id"], "epoch": e, "lr": t["lr"]}
        row.update({k: f(e) for k, f in series.items()})
        rows.append(row)
    return rows


def run(trials: list[dict], curves: list[dict] | None = None) -> pd.DataFrame:
    return evaluate_claims(pd.DataFrame(trials), pd.DataFrame(curves) if curves else None)


def row(frame: pd.DataFrame, claim: str, measure: str | None = None) -> pd.Series:
    sel = frame[frame["claim"] == claim]
    if measure is not None:
        sel = sel[sel["measure"] == measure]
    assert len(sel) == 1, (claim, measure, sel)
    return sel.iloc[0]


def t_interval(values) -> tuple[float, float, float]:
    x = np.asarray(values, dtype=float)
    lo, hi = stats.t.interval(0.95, x.size - 1, loc=x.mean(), scale=stats.sem(x))
    return float(x.mean()), float(lo), float(hi)


def assert_stat(r: pd.Series, values, threshold: float = 0.0) -> None:
    if np.ptp(values) == 0:  # no spread: no interval, the exact sign test
        above, below = sum(v > threshold for v in values), sum(v < threshold for v in values)
        assert r["value"] == pytest.approx(values[0]) and math.isnan(r["ci_lo"]) and math.isnan(r["ci_hi"])
        assert r["p_value"] == pytest.approx(stats.binomtest(above, above + below).pvalue)
        assert r["n"] == len(values)
        return
    mean, lo, hi = t_interval(values)
    assert r["value"] == pytest.approx(mean, rel=1e-9, abs=1e-12)
    assert r["ci_lo"] == pytest.approx(lo, rel=1e-9, abs=1e-12)
    assert r["ci_hi"] == pytest.approx(hi, rel=1e-9, abs=1e-12)
    assert r["p_value"] == pytest.approx(stats.ttest_1samp(values, threshold).pvalue, rel=1e-9)
    assert r["n"] == len(values)


def test_every_claim_gets_a_row_with_the_required_columns():
    frame = run([trial()])
    assert list(frame.columns) == ROW_COLUMNS
    assert [f"{c}/{m}" for c, m in zip(frame["claim"], frame["measure"])] == [
        "C1/emb_norm_mean",
        "C2a/emb_grad_cos_abs_mean",
        "C2b/emb_grad_norm_mean",
        "C3/probe_angle_change_mean",
        "C4/loss",
        "C4/knn_top1_k20",
        "C5/loss",
        "C5/knn_top1_k20",
        "C6/emb_norm_mean",
        "C7/emb_correct_auroc",
        "C8/emb_ood_auroc",
        "C9/emb_freq_spearman",
    ]
    assert set(frame["verdict"]) <= {HOLDS, NOT_HOLD, INCONCLUSIVE}
    assert (frame["statement"].str.len() > 10).all() and (frame["test"].str.len() > 20).all()
    # every inconclusive row says why
    assert (frame.loc[frame["verdict"] == INCONCLUSIVE, "reason"].str.len() > 0).all()


# ---------------------------------------------------------------- C1
def c1_world(growth: list[float], wd: float = 0.0):
    trials, curves = [], []
    for seed, g in enumerate(growth):
        t = trial(seed=seed, weight_decay=wd)
        trials.append(t)
        # epoch 0 holds an evaluation-set norm that must be ignored (set far off on purpose)
        curves += curve(t, emb_norm_mean=lambda e, g=g: 100.0 if e == 0 else 2.0 * math.exp(g * (e - 1) / (EPOCHS - 1)))
    return trials, curves


@pytest.mark.parametrize(
    "growth, verdict",
    [
        ([0.5, 0.7, 0.6], HOLDS),
        ([-0.5, -0.7, -0.6], NOT_HOLD),
        ([0.5, -0.6, 0.1], INCONCLUSIVE),  # interval spans 0
        ([0.5, 0.7], INCONCLUSIVE),  # too few seeds
    ],
)
def test_c1_norm_growth_without_weight_decay(growth, verdict):
    r = row(run(*c1_world(growth)), "C1")
    assert r["verdict"] == verdict
    assert_stat(r, growth) if len(growth) >= 2 else None
    if len(growth) < MIN_SEEDS:
        assert "too few seeds" in r["reason"]
    elif verdict == INCONCLUSIVE:
        assert "contains the threshold 0" in r["reason"]


def test_c1_condition_absent_without_wd0_trials():
    r = row(run(*c1_world([0.5, 0.7, 0.6], wd=1e-4)), "C1")
    assert r["verdict"] == INCONCLUSIVE and r["reason"].startswith("condition absent: no trial with weight_decay == 0")


# ---------------------------------------------------------------- C2
def c2_world(exponents: list[float], cos: float = 1e-7):
    trials, curves = [], []
    for seed, p in enumerate(exponents):
        t = trial(seed=seed)
        trials.append(t)
        rng = np.random.default_rng(seed)
        noise = rng.normal(0, 0.02, EPOCHS + 1)
        norm = lambda e: 1.0 + e  # noqa: E731
        curves += curve(
            t,
            emb_norm_mean=norm,
            emb_grad_norm_mean=lambda e, p=p: 3.0 * norm(e) ** p * math.exp(noise[e]),
            emb_dir_grad_norm_mean=lambda e, p=p: 3.0 * norm(e) ** (p + 1) * math.exp(noise[e]),
            emb_grad_cos_abs_mean=lambda e: cos * (1 + e % 2),
        )
    return trials, curves


def _slopes(curves: list[dict]) -> list[float]:
    c = pd.DataFrame(curves)
    c = c[c["epoch"] >= 1]
    return [
        stats.linregress(np.log(g["emb_norm_mean"]), np.log(g["emb_grad_norm_mean"])).slope
        for _, g in c.groupby("trial_id", sort=False)
    ]


@pytest.mark.parametrize(
    "exponents, ortho, scale",
    [
        ([-1.0, -1.0, -1.0], HOLDS, HOLDS),
        ([-2.0, -2.1, -1.9], HOLDS, NOT_HOLD),  # orthogonal, but not 1/||z||
        ([-1.0, -0.5, -1.5], HOLDS, INCONCLUSIVE),  # interval wider than the band
        ([-1.0, -1.0], HOLDS, INCONCLUSIVE),  # two seeds
    ],
)
def test_c2_orthogonal_and_inverse_norm(exponents, ortho, scale):
    trials, curves = c2_world(exponents)
    frame = run(trials, curves)
    a, b = row(frame, "C2a"), row(frame, "C2b")
    assert a["verdict"] == ortho
    assert a["value"] == pytest.approx(1e-7 * (1 + 5 / 10))  # per-trial mean over epochs 1..10 of cos*(1 + e%2)
    assert b["verdict"] == scale
    assert_stat(b, _slopes(curves), threshold=-1.0)
    dir_mean = np.mean(_slopes(curves)) + 1  # ||g||·||z|| has the slope of ||g|| plus one
    shown = re.search(r"\(theory 0\) (\S+) \[", b["evidence"]).group(1)
    assert float(shown) == pytest.approx(dir_mean, rel=5e-3, abs=1e-9)


def test_c2_not_orthogonal_and_columns_absent():
    trials, curves = c2_world([-1.0, -1.0, -1.0], cos=0.05)
    assert row(run(trials, curves), "C2a")["verdict"] == NOT_HOLD
    bare = [{k: v for k, v in c.items() if not k.startswith("emb_grad")} for c in curves]
    frame = run(trials, bare)
    for claim in ("C2a", "C2b"):
        r = row(frame, claim)
        assert r["verdict"] == INCONCLUSIVE and "absent from the curves table (run predates it)" in r["reason"]


# ---------------------------------------------------------------- C3
def c3_world(exponents: list[float]):
    """angle = lr * norm^p with lr and norm varying independently, norm evaluated as the interval mean."""
    trials, curves = [], []
    for seed, p in enumerate(exponents):
        t = trial(seed=seed)
        trials.append(t)
        rng = np.random.default_rng(10 + seed)
        norms = np.exp(np.cumsum(rng.uniform(0.05, 0.3, EPOCHS + 1)))
        lrs = rng.uniform(0.01, 0.2, EPOCHS + 1)
        noise = rng.normal(0, 0.05, EPOCHS + 1)
        mid = lambda e: 0.5 * (norms[e] + norms[e - 1])  # noqa: E731
        rows = curve(
            t,
            probe_emb_norm_mean=lambda e: norms[e],
            probe_angle_change_mean=lambda e, p=p: NAN if e == 0 else lrs[e] * mid(e) ** p * math.exp(noise[e]),
        )
        for r in rows:
            r["lr"] = lrs[r["epoch"]]
        curves += rows
    return trials, curves


def _c3_coefs(curves: list[dict]) -> list[float]:
    out = []
    for _, g in pd.DataFrame(curves).groupby("trial_id", sort=False):
        n = g["probe_emb_norm_mean"].to_numpy()
        mid = 0.5 * (n[1:] + n[:-1])
        y = np.log(g["probe_angle_change_mean"].to_numpy()[1:])
        design = np.column_stack([np.ones_like(y), np.log(mid), np.log(g["lr"].to_numpy()[1:])])
        out.append(linalg.lstsq(design, y)[0][1])
    return out


@pytest.mark.parametrize(
    "exponents, verdict",
    [
        ([-2.0, -2.0, -2.0], HOLDS),
        ([1.0, 1.0, 1.0], NOT_HOLD),
        ([-2.0, -2.0], INCONCLUSIVE),
    ],
)
def test_c3_larger_norms_move_less_controlling_for_lr(exponents, verdict):
    trials, curves = c3_world(exponents)
    r = row(run(trials, curves), "C3")
    assert r["verdict"] == verdict
    coefs = _c3_coefs(curves)
    assert coefs == pytest.approx(exponents, abs=0.3)  # the world is what it claims to be
    assert_stat(r, coefs)


def test_c3_columns_absent():
    trials, curves = c2_world([-1.0, -1.0, -1.0])
    r = row(run(trials, curves), "C3")
    assert r["verdict"] == INCONCLUSIVE and "probe_angle_change_mean absent" in r["reason"]


# ---------------------------------------------------------------- C4 / C5
def linear_curve(start: float, end: float, speed: float):
    """start -> end over `EPOCHS / speed` epochs (then flat); epoch 0 is the untrained network."""
    return lambda e: start + (end - start) * min(1.0, e * speed / EPOCHS)


def convergence_world(arm: str, speedups: list[float], seeds=None, learns: bool = True, arm_extra=None):
    """Baseline loss 10 -> 0 and kNN@20 0.5 -> 0.9 over 10 epochs; the arm runs at `speedup` x that speed."""
    trials, curves = [], []
    seeds = seeds if seeds is not None else range(len(speedups))
    for seed, s in zip(seeds, speedups):
        final_knn = (0.9 if learns else 0.45) - 0.01 * (seed % 3)  # seeds differ: "learns" needs an interval
        base = trial(seed=seed, knn_top1_k20=final_knn)
        other = trial(intervention=arm, seed=seed, knn_top1_k20=final_knn, **(arm_extra or {}))
        trials += [base, other]
        for t, speed in ((base, 1.0), (other, s)):
            curves += curve(
                t,
                loss=lambda e, sp=speed: NAN if e == 0 else linear_curve(10.0, 0.0, sp)(e),
                knn_top1_k20=linear_curve(0.5, final_knn, speed),
            )
    return trials, curves


def _epochs_to(values: dict[int, float], target: float, falling: bool) -> int:
    hits = [e for e, v in sorted(values.items()) if e >= 1 and (v <= target if falling else v >= target)]
    return hits[0] if hits else max(values) + 1


def _expected_differences(trials, curves, measure: str) -> list[float]:
    c = pd.DataFrame(curves)
    by_id = {tid: dict(zip(g["epoch"], g[measure])) for tid, g in c.groupby("trial_id")}
    out = []
    for base in (t for t in trials if t["intervention"] == "none"):
        arm = next(t for t in trials if t["intervention"] != "none" and t["seed"] == base["seed"])
        b, a = by_id[base["trial_id"]], by_id[arm["trial_id"]]
        if measure == "loss":
            first, last = b[1], b[max(b)]
            target, falling = first - 0.5 * (first - last), True
        else:
            target, falling = b[0] + 0.5 * (base["knn_top1_k20"] - b[0]), False
        out.append(_epochs_to(b, target, falling) - _epochs_to(a, target, falling))
    return out


@pytest.mark.parametrize("claim, arm", [("C4", "cut:3"), ("C5", "gradscale:1")])
@pytest.mark.parametrize(
    "speedups, verdict",
    [
        ([2.0, 2.5, 1.7], HOLDS),
        ([0.5, 0.6, 0.4], NOT_HOLD),
        ([2.0, 0.5, 1.0], INCONCLUSIVE),
        ([2.0, 1.25], INCONCLUSIVE),
    ],
)
def test_c4_c5_epochs_to_target_on_loss_and_knn(claim, arm, speedups, verdict):
    trials, curves = convergence_world(arm, speedups)
    frame = run(trials, curves)
    for measure in ("loss", "knn_top1_k20"):
        r = row(frame, claim, measure)
        assert r["verdict"] == verdict, (measure, r["reason"])
        assert_stat(r, _expected_differences(trials, curves, measure))
        assert r["measure"] == measure
    # the other convergence claim has no arm of its kind
    other = row(frame, "C5" if claim == "C4" else "C4", "loss")
    assert other["verdict"] == INCONCLUSIVE and other["reason"].startswith("condition absent")


@pytest.mark.parametrize("n_seeds, verdict", [(3, INCONCLUSIVE), (6, HOLDS)])
def test_c4_equal_gains_in_every_pair_are_decided_by_the_sign_test(n_seeds, verdict):
    trials, curves = convergence_world("cut:3", [2.0] * n_seeds)
    r = row(run(trials, curves), "C4", "loss")
    diffs = _expected_differences(trials, curves, "loss")
    assert np.ptp(diffs) == 0 and diffs[0] > 0
    assert r["verdict"] == verdict
    assert_stat(r, diffs)
    if verdict == INCONCLUSIVE:
        assert r["reason"].startswith("no spread") and "sign test" in r["reason"]


def test_c4_knn_is_inconclusive_when_the_method_does_not_beat_its_untrained_network():
    trials, curves = convergence_world("cut:3", [2.0, 2.5, 1.7], learns=False)
    frame = run(trials, curves)
    assert row(frame, "C4", "loss")["verdict"] == HOLDS  # the loss still decides
    knn = row(frame, "C4", "knn_top1_k20")
    assert knn["verdict"] == INCONCLUSIVE
    assert "beat its untrained network" in knn["reason"] and "does not beat" in knn["evidence"]


def test_c4_knn_untrained_score_from_the_epoch0_row_or_inconclusive_without_either():
    trials, curves = convergence_world("cut:3", [2.0, 2.5, 1.7])
    trials = [{k: v for k, v in t.items() if not k.endswith("_init")} for t in trials]
    assert row(run(trials, curves), "C4", "knn_top1_k20")["verdict"] == HOLDS  # epoch-0 row gives the floor
    no_zero = [c for c in curves if c["epoch"] > 0]
    knn = row(run(trials, no_zero), "C4", "knn_top1_k20")
    assert knn["verdict"] == INCONCLUSIVE and "cannot tell whether any method beats" in knn["reason"]
    assert row(run(trials, no_zero), "C4", "loss")["verdict"] == HOLDS


def test_c5_pairs_an_arm_with_its_own_protocol_and_refuses_other_settings():
    # GradScale with its own LR and warm-up still pairs with `none` of the same seed ...
    trials, curves = convergence_world("gradscale:1", [2.0, 2.5, 1.7], arm_extra=dict(lr=0.5, warmup_epochs=5))
    assert row(run(trials, curves), "C5", "loss")["verdict"] == HOLDS
    # ... but not with a baseline of another weight decay or another method
    trials, curves = convergence_world("gradscale:1", [2.0, 2.5, 1.7], arm_extra=dict(weight_decay=0.0))
    r = row(run(trials, curves), "C5", "loss")
    assert r["verdict"] == INCONCLUSIVE and "same seed and settings" in r["reason"]


def test_arm_signature_ignores_weight_decay_parts():
    assert arm_signature("wd:1e-4") == "none"
    assert arm_signature("cut:3+wd:0") == "cut:3"
    assert arm_signature("gradscale:1+cut:3") == "cut:3+gradscale:1"


# ---------------------------------------------------------------- C6
def c6_world(norm_ratios: list[float], via_intervention: bool = False):
    trials = []
    for seed, r in enumerate(norm_ratios):
        low = trial(
            seed=seed, weight_decay=0.0, emb_norm_mean=4.0 * r, **({"intervention": "wd:0"} if via_intervention else {})
        )
        high = trial(
            seed=seed,
            weight_decay=5e-4,
            emb_norm_mean=4.0,
            **({"intervention": "wd:0.0005"} if via_intervention else {}),
        )
        trials += [low, high]
    return trials


@pytest.mark.parametrize(
    "ratios, verdict",
    [
        ([2.0, 3.0, 2.5], HOLDS),
        ([0.5, 0.4, 0.6], NOT_HOLD),
        ([2.0, 0.5, 1.0], INCONCLUSIVE),
        ([2.0, 3.0], INCONCLUSIVE),
    ],
)
@pytest.mark.parametrize("via_intervention", [False, True])
def test_c6_weight_decay_limits_norms(ratios, verdict, via_intervention):
    r = row(run(c6_world(ratios, via_intervention)), "C6")
    assert r["verdict"] == verdict
    assert_stat(r, np.log(ratios))


def test_c6_condition_absent_when_weight_decay_never_varies_alone():
    # weight decay differs only across methods, as in the old reference run
    trials = [trial(method="simclr", seed=s, weight_decay=1e-6) for s in range(3)]
    trials += [trial(method="byol", seed=s, weight_decay=5e-4) for s in range(3)]
    r = row(run(trials), "C6")
    assert r["verdict"] == INCONCLUSIVE and r["reason"].startswith("condition absent")


# ---------------------------------------------------------------- C7 / C8 / C9
@pytest.mark.parametrize(
    "values, verdict",
    [
        ([0.70, 0.72, 0.68, 0.71], HOLDS),
        ([0.30, 0.35, 0.32], NOT_HOLD),
        ([0.60, 0.40, 0.52], INCONCLUSIVE),
        ([0.70, 0.72], INCONCLUSIVE),
    ],
)
def test_c7_norm_predicts_knn_correctness(values, verdict):
    trials = [
        trial(seed=s, emb_correct_auroc=v, emb_correct_auroc_ci_lo=v - 0.05, emb_correct_auroc_ci_hi=v + 0.05)
        for s, v in enumerate(values)
    ]
    trials.append(
        trial(seed=99, intervention="cut:3", emb_correct_auroc=NAN, emb_correct_auroc_note="norms nearly constant")
    )
    r = row(run(trials), "C7")
    assert r["verdict"] == verdict
    assert_stat(r, values, threshold=0.5)
    assert "1 trial(s) NaN, left out: simclr/cut:3/s99 (norms nearly constant)" in r["evidence"]


def test_c7_inconclusive_for_a_method_that_does_not_beat_its_untrained_network():
    good = [trial(seed=s, emb_correct_auroc=0.7 + 0.01 * s) for s in range(3)]
    flat = [
        trial(method="dino", seed=s, emb_correct_auroc=0.9, knn_top1_k20=0.5, knn_top1_k20_init=0.5) for s in range(3)
    ]
    r = row(run(good + flat), "C7")
    assert r["verdict"] == HOLDS and r["n"] == 3  # DINO's trials left out, SimCLR's decide
    assert "dino: kNN@20 0.5000 vs untrained 0.5000, gain +0.0000" in r["evidence"]
    assert "(does not beat its untrained network)" in r["evidence"]
    r = row(run(flat), "C7")
    assert r["verdict"] == INCONCLUSIVE and "no method is shown to beat its untrained network" in r["reason"]
    unknown = [{k: v for k, v in t.items() if not k.endswith("_init")} for t in good]
    r = row(run(unknown), "C7")
    assert r["verdict"] == INCONCLUSIVE and "knn_top1_k20_init absent" in r["reason"]


def test_a_long_tailed_setting_is_judged_on_its_own_untrained_network():
    """Long-tailed none trials that lose accuracy must not overturn the balanced setting's
    "it learns" (and are themselves left out of the accuracy-based tests)."""
    balanced = [trial(seed=s, emb_correct_auroc=0.7 + 0.01 * s) for s in range(3)]
    tail = [
        trial(seed=s, imbalance=10.0, emb_correct_auroc=0.2, knn_top1_k20=0.3, knn_top1_k20_init=0.5) for s in range(3)
    ]
    r = row(run(balanced + tail), "C7")
    assert r["verdict"] == HOLDS and r["n"] == 3
    assert "digits/test_resnet/simclr/imbalance 10: kNN@20 0.3000 vs untrained 0.5000, gain -0.2000" in r["evidence"]
    assert "(does not beat its untrained network)" in r["evidence"]


@pytest.mark.parametrize(
    "values, verdict",
    [
        ([0.80, 0.85, 0.75], HOLDS),
        ([0.20, 0.25, 0.30], NOT_HOLD),
        ([0.60, 0.40, 0.55], INCONCLUSIVE),
        ([0.80, 0.85], INCONCLUSIVE),
    ],
)
def test_c8_ood_samples_have_smaller_norms(values, verdict):
    trials = [trial(seed=s, holdout_classes="[8, 9]", emb_ood_auroc=v) for s, v in enumerate(values)]
    trials.append(trial(seed=7, emb_ood_auroc=0.1))  # no OOD set: must not count
    r = row(run(trials), "C8")
    assert r["verdict"] == verdict
    assert_stat(r, values, threshold=0.5)


def test_c8_and_c9_condition_absent():
    frame = run([trial(seed=s, emb_ood_auroc=NAN, emb_freq_spearman=NAN) for s in range(3)])
    for claim in ("C8", "C9"):
        r = row(frame, claim)
        assert r["verdict"] == INCONCLUSIVE and r["reason"].startswith("condition absent"), r["reason"]


@pytest.mark.parametrize(
    "values, verdict",
    [
        ([0.8, 0.9, 0.7], HOLDS),
        ([-0.8, -0.9, -0.7], NOT_HOLD),
        ([0.8, -0.9, 0.1], INCONCLUSIVE),
        ([0.8, 0.9], INCONCLUSIVE),
    ],
)
def test_c9_rarer_classes_have_smaller_norms(values, verdict):
    trials = [trial(seed=s, imbalance=10.0, emb_freq_spearman=v) for s, v in enumerate(values)]
    trials.append(trial(seed=5, emb_freq_spearman=-1.0))  # balanced: must not count
    r = row(run(trials), "C9")
    assert r["verdict"] == verdict
    assert_stat(r, values)


def test_failed_trials_do_not_count():
    trials = [trial(seed=s, imbalance=10.0, emb_freq_spearman=0.8 + 0.01 * s) for s in range(3)]
    trials[2]["status"] = "failed"
    r = row(run(trials), "C9")
    assert r["verdict"] == INCONCLUSIVE and r["n"] == 2


# ---------------------------------------------------------------- CLI, files, leaderboard
def _write_results(directory: Path, trials: list[dict], curves: list[dict], fmt: str = "parquet") -> Path:
    directory.mkdir(parents=True)
    for name, rows in (("trials", trials), ("curves", curves)):
        frame = pd.DataFrame(rows)
        frame.to_parquet(directory / f"{name}.parquet") if fmt == "parquet" else frame.to_csv(
            directory / f"{name}.csv", index=False
        )
    return directory


def test_cli_writes_claims_and_the_leaderboard_shows_them(tmp_path, capsys):
    trials, curves = convergence_world("cut:3", [2.0, 2.5, 1.7])
    results = _write_results(tmp_path / "sweep", trials, curves, fmt="csv")
    assert main(["claims", str(results)]) == 0
    printed = capsys.readouterr().out
    assert "C4     loss" in printed and HOLDS in printed
    written = pd.read_csv(results / "claims.csv")
    assert list(written.columns) == ROW_COLUMNS
    assert row(written, "C4", "loss")["verdict"] == HOLDS
    md = (results / "claims.md").read_text()
    assert "### C4 (loss): holds" in md and "Why inconclusive: condition absent" in md
    assert not list(results.glob(".*.tmp"))  # atomic writes leave no temporaries
    assert main(["leaderboard", str(results), "--no-plots", "--formats", "md,html"]) == 0
    board = (results / "leaderboard" / "leaderboard.md").read_text()
    assert "## Paper claims (`normbench claims`)" in board and "| C4 | loss | Cut-initialization" in board
    assert "Paper claims" in (results / "leaderboard" / "leaderboard.html").read_text()
    # --out elsewhere: the results directory stays untouched
    assert main(["claims", str(results), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "claims.csv").is_file()


def test_leaderboard_without_claims_has_no_claims_section(tmp_path):
    trials, curves = convergence_world("cut:3", [2.0, 2.5, 1.7])
    results = _write_results(tmp_path / "sweep", trials, curves)
    assert main(["leaderboard", str(results), "--no-plots", "--formats", "md"]) == 0
    assert "Paper claims" not in (results / "leaderboard" / "leaderboard.md").read_text()


@pytest.mark.parametrize(
    "case, allowed",
    [("missing", "an existing results directory"), ("empty", "a directory containing trials.parquet or trials.csv")],
)
def test_cli_bad_input_exits_2_naming_argument_value_and_allowed(tmp_path, capsys, case, allowed):
    target = tmp_path / case
    if case == "empty":
        target.mkdir()
    assert main(["claims", str(target)]) == 2
    err = capsys.readouterr().err
    assert f"RESULTS_DIR: invalid value '{target}'" in err and allowed in err
    assert not (target / "claims.csv").exists()


def test_cli_out_must_be_a_directory(tmp_path, capsys):
    trials, curves = convergence_world("cut:3", [2.0, 2.5, 1.7])
    results = _write_results(tmp_path / "sweep", trials, curves)
    (tmp_path / "file").write_text("x")
    assert main(["claims", str(results), "--out", str(tmp_path / "file")]) == 2
    assert "--out: invalid value" in capsys.readouterr().err
    assert not (results / "claims.csv").exists()


def test_cli_help_names_every_claim(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["claims", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for claim in ("C1", "C2a", "C2b", "C3", "C4", "C5", "C6", "C7", "C8", "C9", "inconclusive", "--out"):
        assert claim in text


def test_a_run_that_predates_the_instruments_is_inconclusive_with_reasons(tmp_path):
    """The committed reference run, stripped to what a run before the instruments recorded
    (no epoch-0 row or *_init scores, no gradient or probe columns, no wd=0 / OOD /
    long-tailed arm): each claim that needs what is missing says so."""
    from suite.analysis.load import load_results

    ref = load_results([str(REFERENCE)])
    trials = ref.trials.drop(columns=[c for c in ref.trials.columns if c.endswith("_init")])
    trials = trials[(pd.to_numeric(trials["weight_decay"]) > 0) & ~(pd.to_numeric(trials["imbalance"]) > 1)]
    trials = trials.assign(holdout_classes=None, emb_ood_auroc=NAN)
    curves = ref.curves[pd.to_numeric(ref.curves["epoch"]) > 0]
    curves = curves.drop(columns=[c for c in curves.columns if c.startswith(("emb_grad", "emb_dir_grad", "probe_"))])
    frame = evaluate_claims(trials.reset_index(drop=True), curves.reset_index(drop=True))
    assert len(frame) == 12
    reasons = dict(zip(frame["claim"] + "/" + frame["measure"], frame["reason"]))
    verdicts = dict(zip(frame["claim"] + "/" + frame["measure"], frame["verdict"]))
    assert reasons["C1/emb_norm_mean"].startswith("condition absent: no trial with weight_decay == 0")
    assert "run predates it" in reasons["C2a/emb_grad_cos_abs_mean"]
    assert "run predates it" in reasons["C3/probe_angle_change_mean"]
    assert "knn_top1_k20_init absent" in reasons["C7/emb_correct_auroc"]
    assert reasons["C8/emb_ood_auroc"].startswith("condition absent")
    assert reasons["C9/emb_freq_spearman"].startswith("condition absent")
    for key in (
        "C1/emb_norm_mean",
        "C2a/emb_grad_cos_abs_mean",
        "C3/probe_angle_change_mean",
        "C7/emb_correct_auroc",
        "C8/emb_ood_auroc",
        "C9/emb_freq_spearman",
    ):
        assert verdicts[key] == INCONCLUSIVE, key


def test_load_claims_skips_a_corrupt_file_with_a_warning(tmp_path):
    (tmp_path / "claims.csv").write_text("not,a\nclaims,table\n")
    from suite.analysis.load import LeaderboardWarning

    with pytest.warns(LeaderboardWarning, match="no claim/verdict columns"):
        assert report.load_claims([tmp_path]) is None


def test_a_method_learns_only_when_the_interval_of_its_gain_lies_above_zero():
    """Positive mean gain whose 95% interval reaches 0: not shown to learn, so C7 cannot rest on it.
    The interval in the evidence is scipy's t-interval of the per-seed gains."""
    from scipy import stats

    gains = [0.05, -0.01, 0.02]
    shaky = [trial(seed=s, emb_correct_auroc=0.7 + 0.01 * s, knn_top1_k20=0.5 + g) for s, g in enumerate(gains)]
    r = row(run(shaky), "C7")
    assert r["verdict"] == INCONCLUSIVE and "no method is shown to beat its untrained network" in r["reason"]
    lo, hi = stats.t.interval(0.95, len(gains) - 1, loc=np.mean(gains), scale=stats.sem(gains))
    assert lo < 0 < hi
    assert f"gain {np.mean(gains):+.4f} [{lo:+.4f}, {hi:+.4f}] over 3 trial(s) (not shown to beat" in r["evidence"]
    sure = [dict(t, knn_top1_k20=0.6 + 0.01 * t["seed"]) for t in shaky]
    r = row(run(sure), "C7")
    assert r["verdict"] == HOLDS and "(beats its untrained network)" not in r["evidence"]  # nothing left out


def test_gains_equal_up_to_round_off_have_no_spread_and_three_seeds_do_not_show_learning():
    same = [trial(seed=s, emb_correct_auroc=0.7 + 0.01 * s, knn_top1_k20=0.9, knn_top1_k20_init=0.5) for s in range(3)]
    r = row(run(same), "C7")
    assert r["verdict"] == INCONCLUSIVE
    assert "gain +0.4000 no spread over 3 trial(s) (not shown to beat" in r["evidence"]
    six = [
        trial(seed=s, emb_correct_auroc=0.7 + 0.01 * (s % 3), knn_top1_k20=0.9, knn_top1_k20_init=0.5) for s in range(6)
    ]
    assert row(run(six), "C7")["verdict"] == HOLDS  # exact sign test: 6 of 6 above 0, p = 0.03


def test_only_the_none_arm_decides_whether_a_method_learns():
    """A wd:0 arm is an intervention: its (large) gains must not rescue a `none` arm whose interval reaches 0."""
    shaky = [
        trial(seed=s, emb_correct_auroc=0.7 + 0.01 * s, knn_top1_k20=0.5 + g) for s, g in enumerate([0.05, -0.01, 0.02])
    ]
    wd0 = [
        trial(intervention="wd:0", seed=s, weight_decay=0.0, emb_correct_auroc=0.7, knn_top1_k20=0.8 + 0.01 * s)
        for s in range(3)
    ]
    r = row(run(shaky + wd0), "C7")
    assert r["verdict"] == INCONCLUSIVE and "over 3 trial(s) (not shown to beat" in r["evidence"]
