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
    POOLED,
    ROW_COLUMNS,
    evaluate_claims,
)
from suite.analysis.compare import arm_signature
from suite.cli import main
from suite.core import stats as core_stats

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
        knn_k="[20, 200]",  # the primary k (knn_k[0]) the accuracy-based tests use: 20
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


def run(trials: list[dict], curves: list[dict] | None = None, class_norms: list[dict] | None = None) -> pd.DataFrame:
    return evaluate_claims(
        pd.DataFrame(trials),
        pd.DataFrame(curves) if curves else None,
        pd.DataFrame(class_norms) if class_norms else None,
    )


def row(frame: pd.DataFrame, claim: str, measure: str | None = None, method: str = POOLED) -> pd.Series:
    sel = frame[(frame["claim"] == claim) & (frame["method"] == method)]
    if measure is not None:
        sel = sel[sel["measure"] == measure]
    assert len(sel) == 1, (claim, measure, method, sel)
    return sel.iloc[0]


def t_interval(values) -> tuple[float, float, float]:
    x = np.asarray(values, dtype=float)
    lo, hi = stats.t.interval(0.95, x.size - 1, loc=x.mean(), scale=stats.sem(x))
    return float(x.mean()), float(lo), float(hi)


def assert_stat(r: pd.Series, values, threshold: float = 0.0) -> None:
    """The row's mean, interval and p equal scipy's over ``values`` (one unit per seed: clustering changes nothing)."""
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


def test_every_claim_gets_a_pooled_row_with_the_required_columns():
    frame = run([trial()])
    assert list(frame.columns) == ROW_COLUMNS
    pooled = frame[frame["method"] == POOLED]
    assert [f"{c}/{m}" for c, m in zip(pooled["claim"], pooled["measure"])] == [
        "C1/emb_norm_mean",
        "C2a/emb_grad_cos_abs_mean",
        "C2b/emb_grad_norm_mean",
        "C3/probe_angle_change_mean",
        "C4/loss",
        "C4/knn",
        "C5/loss",
        "C5/knn",
        "C6/emb_norm_mean",
        "C7/emb_correct_auroc",
        "C7/proj_correct_auroc",
        "C8/emb_ood_auroc",
        "C9/class_norm_contrast",
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
    assert row(run(*c1_world(growth)), "C1", method="simclr")["verdict"] == verdict  # one method: the same


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
    assert a["verdict"] == ortho == row(frame, "C2a", method="simclr")["verdict"]
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
        assert r["verdict"] == INCONCLUSIVE and "the curves table has no column emb_grad" in r["reason"]
        assert "predates" not in r["reason"]


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
    assert r["verdict"] == INCONCLUSIVE and "the curves table has no column probe_angle_change_mean" in r["reason"]


# ---------------------------------------------------------------- C4 / C5: time to target
def linear_curve(start: float, end: float, speed: float):
    """start -> end over `EPOCHS / speed` epochs (then flat); epoch 0 is the untrained network."""
    return lambda e: start + (end - start) * min(1.0, e * speed / EPOCHS)


def convergence_world(
    arm: str, speedups: list[float], seeds=None, learns: bool = True, arm_extra=None, method: str = "simclr"
):
    """Baseline loss 10 -> 0 and kNN@20 0.5 -> 0.9 over 10 epochs; the arm runs at `speedup` x that speed
    (0: it never moves, so it never reaches the target)."""
    trials, curves = [], []
    seeds = seeds if seeds is not None else range(len(speedups))
    for seed, s in zip(seeds, speedups):
        final_knn = (0.9 if learns else 0.45) - 0.01 * (seed % 3)  # seeds differ: "learns" needs an interval
        base = trial(method=method, seed=seed, knn_top1_k20=final_knn)
        other = trial(method=method, intervention=arm, seed=seed, knn_top1_k20=final_knn, **(arm_extra or {}))
        trials += [base, other]
        for t, speed in ((base, 1.0), (other, s)):
            curves += curve(
                t,
                loss=lambda e, sp=speed: NAN if e == 0 else linear_curve(10.0, 0.0, sp)(e),
                knn_top1_k20=linear_curve(0.5, final_knn, speed),
            )
    return trials, curves


def _first_epoch(values: dict[int, float], target: float, falling: bool) -> int | None:
    hits = [e for e, v in sorted(values.items()) if e >= 1 and (v <= target if falling else v >= target)]
    return hits[0] if hits else None


def _expected_directions(trials, curves, measure: str) -> list[int]:
    """Independent recomputation: target from the baseline's epoch 1, direction per pair, censored = slower."""
    c = pd.DataFrame(curves)
    by_id = {tid: dict(zip(g["epoch"], g[measure])) for tid, g in c.groupby("trial_id")}
    out = []
    for base in (t for t in trials if t["intervention"] == "none"):
        arm = next(
            t
            for t in trials
            if t["intervention"] != "none" and t["seed"] == base["seed"] and t["method"] == base["method"]
        )
        b, a = by_id[base["trial_id"]], by_id[arm["trial_id"]]
        falling = measure == "loss"
        first, last = b[1], b[max(b)]
        target = first - 0.5 * (first - last) if falling else first + 0.5 * (last - first)
        tb, ta = _first_epoch(b, target, falling), _first_epoch(a, target, falling)
        out.append(-1 if ta is None else int(np.sign(tb - ta)))
    return out


@pytest.mark.parametrize("claim, arm", [("C4", "cut:3"), ("C5", "gradscale:1")])
@pytest.mark.parametrize(
    "speedups, verdict",
    [
        ([2.0, 2.5, 1.7, 3.0, 2.2, 1.9], HOLDS),  # six seeds, all faster: p = 2/64
        ([0.5, 0.6, 0.4, 0.7, 0.3, 0.5], NOT_HOLD),
        ([2.0, 0.5, 2.0, 0.5, 2.0, 0.5], INCONCLUSIVE),
        ([2.0, 2.5, 1.7], INCONCLUSIVE),  # three seeds can never reach p < 0.05
    ],
)
def test_c4_c5_directions_to_a_target_on_loss_and_knn(claim, arm, speedups, verdict):
    trials, curves = convergence_world(arm, speedups)
    frame = run(trials, curves)
    for measure in ("loss", "knn"):
        r = row(frame, claim, measure)
        directions = _expected_directions(trials, curves, "loss" if measure == "loss" else "knn_top1_k20")
        assert r["verdict"] == verdict, (measure, r["reason"])
        assert r["value"] == pytest.approx(np.mean(directions)) and r["n"] == len(directions)
        assert r["p_value"] == pytest.approx(core_stats.sign_flip_p(directions))
        assert math.isnan(r["ci_lo"])  # directions, not epochs: no interval is invented
        if len(speedups) == 3:
            assert "cannot reach p < 0.05" in r["reason"] and "needs >= 6 seeds" in r["reason"]
    other = row(frame, "C5" if claim == "C4" else "C4", "loss")
    assert other["verdict"] == INCONCLUSIVE and other["reason"].startswith("condition absent")


def test_an_arm_that_never_reaches_the_target_counts_as_slower_never_as_an_epoch():
    """Only censoring decides here: every arm stays flat (never reaches the target), every baseline reaches
    it; the old rule would have counted last epoch + 1 and averaged those invented epochs."""
    trials, curves = convergence_world("cut:3", [0.0] * 6)
    r = row(run(trials, curves), "C4", "loss")
    assert r["verdict"] == NOT_HOLD and r["value"] == -1.0
    assert r["p_value"] == pytest.approx(2 / 2**6)
    assert "0 faster, 6 slower (6 never reached the target within their epochs)" in r["evidence"]
    assert "slower (never vs" in r["evidence"]


def test_a_baseline_that_stops_improving_after_epoch_1_has_no_observable_target():
    trials, curves = convergence_world("cut:3", [2.0] * 3)
    for c in curves:
        if "cut" not in c["trial_id"] and c["epoch"] >= 1:
            c["loss"] = 5.0  # the baseline is flat from epoch 1 on: nothing a faster arm could beat
    r = row(run(trials, curves), "C4", "loss")
    assert r["verdict"] == INCONCLUSIVE and r["reason"].startswith("no target is observable")
    assert "the baseline does not improve after epoch 1" in r["reason"]


def test_c4_knn_leaves_out_a_method_that_does_not_beat_its_untrained_network():
    trials, curves = convergence_world("cut:3", [2.0] * 6, learns=False)
    frame = run(trials, curves)
    assert row(frame, "C4", "loss")["verdict"] == HOLDS  # the loss still decides
    knn = row(frame, "C4", "knn", method="simclr")
    assert knn["verdict"] == INCONCLUSIVE and "does not beat its untrained network" in knn["reason"]


def test_c5_pairs_an_arm_with_its_own_protocol_and_refuses_other_settings():
    # GradScale with its own LR and warm-up still pairs with `none` of the same seed ...
    trials, curves = convergence_world("gradscale:1", [2.0] * 6, arm_extra=dict(lr=0.5, warmup_epochs=5))
    assert row(run(trials, curves), "C5", "loss")["verdict"] == HOLDS
    # ... but not with a baseline of another weight decay
    trials, curves = convergence_world("gradscale:1", [2.0] * 6, arm_extra=dict(weight_decay=0.0))
    r = row(run(trials, curves), "C5", "loss")
    assert r["verdict"] == INCONCLUSIVE and "same seed and settings" in r["reason"]


def test_arm_signature_ignores_weight_decay_parts():
    assert arm_signature("wd:1e-4") == "none"
    assert arm_signature("cut:3+wd:0") == "cut:3"
    assert arm_signature("gradscale:1+cut:3") == "cut:3+gradscale:1"


# ---------------------------------------------------------------- per method and pooled
def test_methods_that_disagree_get_opposite_verdicts_and_an_inconclusive_pooled_row():
    grow, shrink = c1_world([0.5, 0.7, 0.6]), c1_world([-0.5, -0.7, -0.6])
    for t in shrink[0]:
        old = t["trial_id"]
        t.update(method="moco", trial_id=old.replace("simclr", "moco"))
    for c in shrink[1]:
        c["trial_id"] = c["trial_id"].replace("simclr", "moco")
    frame = run(grow[0] + shrink[0], grow[1] + shrink[1])
    assert row(frame, "C1", method="simclr")["verdict"] == HOLDS
    assert row(frame, "C1", method="moco")["verdict"] == NOT_HOLD
    pooled = row(frame, "C1")
    assert pooled["verdict"] == INCONCLUSIVE and pooled["value"] == pytest.approx(0.0, abs=1e-12)


def test_a_pooled_interval_that_would_hold_while_a_method_does_not_is_inconclusive():
    grow, shrink = c1_world([2.0, 2.2, 2.1]), c1_world([-0.2, -0.25, -0.22])
    for t in shrink[0]:
        t.update(method="moco", trial_id=t["trial_id"].replace("simclr", "moco"))
    for c in shrink[1]:
        c["trial_id"] = c["trial_id"].replace("simclr", "moco")
    pooled = row(run(grow[0] + shrink[0], grow[1] + shrink[1]), "C1")
    assert pooled["ci_lo"] > 0  # the pooled interval alone says "holds"
    assert pooled["verdict"] == INCONCLUSIVE and "methods disagree (moco: does not hold" in pooled["reason"]


def test_a_pooled_verdict_needs_every_contributing_method_to_show_it():
    """One method holds clearly, another is undecided (its seeds straddle 0): pooled, the interval says
    holds, yet the claim is not shown for every method, so the pooled row is inconclusive."""
    grow, mixed = c1_world([2.0, 2.2, 2.1]), c1_world([0.4, -0.3, 0.1])
    for t in mixed[0]:
        t.update(method="moco", trial_id=t["trial_id"].replace("simclr", "moco"))
    for c in mixed[1]:
        c["trial_id"] = c["trial_id"].replace("simclr", "moco")
    frame = run(grow[0] + mixed[0], grow[1] + mixed[1])
    assert row(frame, "C1", method="simclr")["verdict"] == HOLDS
    assert row(frame, "C1", method="moco")["verdict"] == INCONCLUSIVE
    pooled = row(frame, "C1")
    assert pooled["ci_lo"] > 0  # the pooled interval alone says "holds"
    assert pooled["verdict"] == INCONCLUSIVE and pooled["reason"].startswith("not every method shows it")
    assert "moco: inconclusive" in pooled["reason"] and "simclr: holds" in pooled["reason"]


def test_the_clustered_interval_is_wider_than_the_naive_one_when_methods_share_seeds():
    """Five methods x four seeds whose units share a seed effect: the naive t-interval over 20 units is too
    narrow; on independent seeds (one unit per seed) clustering changes nothing."""
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0, 1.0, 4)
    values = np.array([0.3 + seed_effect[s] + rng.normal(0, 0.1) for m in range(5) for s in range(4)])
    seeds = [s for m in range(5) for s in range(4)]
    methods = [m for m in range(5) for s in range(4)]
    clustered = core_stats.clustered_t_interval(values, seeds, methods)
    naive = core_stats.t_interval(values)
    assert clustered.n == 4 and naive.n == 20
    assert clustered.hi - clustered.lo > 2 * (naive.hi - naive.lo)
    means = [np.mean([values[i] for i in range(20) if seeds[i] == s]) for s in range(4)]
    lo, hi = stats.t.interval(0.95, 3, loc=np.mean(means), scale=stats.sem(means))
    assert (clustered.lo, clustered.hi) == pytest.approx((lo, hi))
    independent = core_stats.clustered_t_interval(values, range(20), methods)
    assert (independent.lo, independent.hi) == pytest.approx((naive.lo, naive.hi))


def test_sign_flip_p_is_the_exact_randomization_distribution():
    assert core_stats.sign_flip_p([1, 1, 1, 1, 1, 1]) == pytest.approx(2 / 64)
    assert core_stats.sign_flip_p([1, 1, 1]) == pytest.approx(0.25)
    assert core_stats.sign_flip_p([0, 0, 0]) == 1.0
    # brute force over the 2^4 sign assignments of unequal scores
    x = np.array([0.5, 1.0, -0.25, 1.0])
    sums = [
        abs(sum(sg * v for sg, v in zip(signs, x)))
        for signs in np.ndindex(*(2,) * 4)
        for signs in [[1 - 2 * b for b in signs]]
    ]
    assert core_stats.sign_flip_p(x) == pytest.approx(np.mean([s >= abs(x.sum()) - 1e-12 for s in sums]))


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


def test_every_claim_runs_on_tables_without_the_protocol_columns():
    """Tables written before sweeps had `cases` have no lr / warmup_epochs columns: nothing may depend on them."""
    trials = [{k: v for k, v in t.items() if k not in ("lr", "warmup_epochs")} for t in c6_world([2.0, 3.0, 2.5])]
    frame = run(trials)
    assert row(frame, "C6")["verdict"] == HOLDS and set(frame["claim"]) >= {"C1", "C6", "C9"}


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
    r = row(run(trials), "C7", "emb_correct_auroc")
    assert r["verdict"] == verdict
    assert_stat(r, values, threshold=0.5)
    assert "1 trial(s) NaN, left out: simclr/cut:3/s99 (norms nearly constant)" in r["evidence"]


def test_c7_leaves_out_a_method_that_does_not_beat_its_untrained_network():
    good = [trial(seed=s, emb_correct_auroc=0.7 + 0.01 * s) for s in range(3)]
    flat = [
        trial(method="dino", seed=s, emb_correct_auroc=0.9, knn_top1_k20=0.5, knn_top1_k20_init=0.5) for s in range(3)
    ]
    frame = run(good + flat)
    pooled = row(frame, "C7", "emb_correct_auroc")
    assert pooled["verdict"] == HOLDS and pooled["n"] == 3  # DINO's trials left out, SimCLR's decide
    dino = row(frame, "C7", "emb_correct_auroc", method="dino")
    assert dino["verdict"] == INCONCLUSIVE and "dino: kNN@20 0.5000 vs untrained 0.5000, gain +0.0000" in dino["reason"]
    assert "(does not beat its untrained network)" in dino["reason"]
    r = row(run(flat), "C7", "emb_correct_auroc")
    assert r["verdict"] == INCONCLUSIVE and "no method is shown to beat its untrained network" in r["reason"]
    unknown = [{k: v for k, v in t.items() if not k.endswith("_init")} for t in good]
    r = row(run(unknown), "C7", "emb_correct_auroc", method="simclr")
    assert r["verdict"] == INCONCLUSIVE and "untrained kNN@20 is unknown" in r["reason"]


def test_c7_judges_the_projector_output_of_the_methods_that_have_one():
    byol = [
        trial(method="byol", seed=s, emb_correct_auroc=0.5 + 0.01 * s, proj_correct_auroc=0.7 + 0.01 * s)
        for s in range(3)
    ]
    simclr = [trial(seed=s, emb_correct_auroc=0.7 + 0.01 * s) for s in range(3)]
    frame = run(byol + simclr)
    proj = frame[(frame["claim"] == "C7") & (frame["measure"] == "proj_correct_auroc")]
    assert set(proj["method"]) == {"byol", POOLED}  # SimCLR has no projector output apart from its embedding
    assert row(frame, "C7", "proj_correct_auroc")["verdict"] == HOLDS
    assert row(frame, "C7", "emb_correct_auroc", method="byol")["verdict"] == INCONCLUSIVE


def test_the_primary_k_comes_from_the_runs_knn_k():
    """A run that measured only k=200 is judged on kNN@200 (no "column absent"); runs whose first k differ
    cannot be judged on one k, and say so."""
    only_200 = [
        trial(
            seed=s,
            knn_k="[200]",
            knn_top1_k200=0.8 + 0.01 * s,
            knn_top1_k200_init=0.5,
            emb_correct_auroc=0.7 + 0.01 * s,
        )
        for s in range(3)
    ]
    for t in only_200:
        del t["knn_top1_k20"], t["knn_top1_k20_init"]
    frame = run(only_200)
    r = row(frame, "C7", "emb_correct_auroc")
    assert r["verdict"] == HOLDS and "kNN@200" in r["statistic"]
    assert not frame["reason"].str.contains("predates").any()
    mixed = only_200 + [trial(seed=5, emb_correct_auroc=0.7)]
    r = row(run(mixed), "C7", "emb_correct_auroc", method="simclr")
    assert r["verdict"] == INCONCLUSIVE and "knn_k differ in their first k ([20, 200])" in r["reason"]


def test_a_long_tailed_setting_is_judged_on_its_own_untrained_network():
    """Long-tailed none trials that lose accuracy must not overturn the balanced setting's
    "it learns" (and are themselves left out of the accuracy-based tests)."""
    balanced = [trial(seed=s, emb_correct_auroc=0.7 + 0.01 * s) for s in range(3)]
    tail = [
        trial(seed=s, imbalance=10.0, emb_correct_auroc=0.2, knn_top1_k20=0.3, knn_top1_k20_init=0.5) for s in range(3)
    ]
    r = row(run(balanced + tail), "C7", "emb_correct_auroc", method="simclr")
    assert r["verdict"] == HOLDS and r["n"] == 3
    assert "digits/test_resnet/simclr/imbalance 10: kNN@20 0.3000 vs untrained 0.5000, gain -0.2000" in r["evidence"]


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
    frame = run([trial(seed=s, emb_ood_auroc=NAN) for s in range(3)])
    for claim in ("C8", "C9"):
        r = row(frame, claim)
        assert r["verdict"] == INCONCLUSIVE and r["reason"].startswith("condition absent"), r["reason"]


# ---------------------------------------------------------------- C9: class frequency, without the class confound
CLASSES = 8


def c9_world(seeds: int, frequency_effect: float, order_by_seed: bool, intrinsic: float = 0.3):
    """Per seed a balanced and a long-tailed none trial with their class norms. A class's norm is its own
    level (``intrinsic`` x -index: some classes simply get larger norms) times (count / max)^frequency_effect
    in the long-tailed trial. The long tail's class order is drawn with the seed, or (``order_by_seed``
    False) always class 0 first, as before the fix."""
    trials, norms = [], []
    for seed in range(seeds):
        rng = np.random.default_rng(100 + seed)
        order = list(rng.permutation(CLASSES)) if order_by_seed else list(range(CLASSES))
        counts = {c: int(180 * 10.0 ** (-r / (CLASSES - 1))) for r, c in enumerate(order)}
        noise = rng.normal(0, 0.1, CLASSES)  # the long-tailed trial's own noise per class
        jitter = rng.normal(0, 0.1, CLASSES)  # this seed's class levels (shared by its two trials)
        for tail in (False, True):
            t = trial(seed=seed, imbalance=10.0 if tail else NAN)
            t["trial_id"] += "-lt" if tail else ""
            level = {c: 5.0 * math.exp(-intrinsic * c + jitter[c]) for c in range(CLASSES)}
            for c in range(CLASSES):
                norm = level[c] * ((counts[c] / 180) ** frequency_effect if tail else 1.0) * math.exp(noise[c] * tail)
                norms.append(
                    {
                        "trial_id": t["trial_id"],
                        "vector": "embedding",
                        "class": c,
                        "train_count": counts[c] if tail else 180,
                        "test_count": 20,
                        "norm_mean": norm,
                    }
                )
            if tail:  # the per-trial statistic of the old C9: Spearman(frequency, mean class norm)
                t["emb_freq_spearman"] = float(
                    stats.spearmanr(
                        [counts[c] for c in range(CLASSES)], [n["norm_mean"] for n in norms[-CLASSES:]]
                    ).statistic
                )
            trials.append(t)
    return trials, norms


def test_c9_holds_when_frequency_shrinks_norms_whatever_the_class():
    trials, norms = c9_world(4, frequency_effect=0.2, order_by_seed=True)
    r = row(run(trials, None, norms), "C9")
    assert r["verdict"] == HOLDS and r["value"] > 0.5
    # the statistic is Spearman(count, log(lt / balanced)) per pair, recomputed here
    frame = pd.DataFrame(norms)
    rhos = []
    for t in (t for t in trials if t["imbalance"] == 10.0):
        lt = frame[frame["trial_id"] == t["trial_id"]].set_index("class")
        bal = frame[frame["trial_id"] == t["trial_id"][: -len("-lt")]].set_index("class")
        rhos.append(stats.spearmanr(lt["train_count"], np.log(lt["norm_mean"] / bal["norm_mean"])).statistic)
    assert_stat(r, rhos)


def test_c9_a_class_confound_without_frequency_effect_fooled_the_old_test_but_not_the_new_one():
    """Norms depend on the class (class 0 largest) and not on frequency; with class 0 always the most
    frequent (the old long-tail profile), the old statistic "holds"; the paired contrast does not."""
    trials, norms = c9_world(4, frequency_effect=0.0, order_by_seed=False)
    old = [t["emb_freq_spearman"] for t in trials if t["imbalance"] == 10.0]
    lo, _ = stats.t.interval(0.95, len(old) - 1, loc=np.mean(old), scale=stats.sem(old))
    assert lo > 0  # the old C9's rule: mean Spearman over long-tailed trials, interval above 0
    r = row(run(trials, None, norms), "C9")
    assert r["verdict"] != HOLDS


def test_c9_without_class_norms_says_why():
    trials, _ = c9_world(3, frequency_effect=0.2, order_by_seed=True)
    r = row(run(trials), "C9")
    assert r["verdict"] == INCONCLUSIVE and "no class_norms table" in r["reason"]


def test_failed_trials_do_not_count():
    trials = [trial(seed=s, holdout_classes="[8, 9]", emb_ood_auroc=0.8 + 0.01 * s) for s in range(3)]
    trials[2]["status"] = "failed"
    r = row(run(trials), "C8")
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
    trials, curves = convergence_world("cut:3", [2.0] * 6)
    results = _write_results(tmp_path / "sweep", trials, curves, fmt="csv")
    assert main(["claims", str(results)]) == 0
    printed = capsys.readouterr().out
    assert "C4     loss" in printed and HOLDS in printed
    written = pd.read_csv(results / "claims.csv")
    assert list(written.columns) == ROW_COLUMNS
    assert row(written, "C4", "loss")["verdict"] == HOLDS
    md = (results / "claims.md").read_text()
    assert "### C4 (loss)" in md and "**all**: holds" in md and "Why inconclusive: condition absent" in md
    assert not list(results.glob(".*.tmp"))  # atomic writes leave no temporaries
    assert main(["leaderboard", str(results), "--no-plots", "--formats", "md"]) == 0
    board = (results / "leaderboard" / "leaderboard.md").read_text()
    assert "## Paper claims (`normbench claims`)" in board and "| C4 | loss | all | holds |" in board
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


def test_a_run_without_the_instruments_is_inconclusive_with_reasons(tmp_path):
    """The committed reference run, stripped to what a run without the instruments records (no
    epoch-0 row or *_init scores, no gradient or probe columns, no wd=0 / OOD / long-tailed arm, no
    class norms): each claim that needs what is missing says what it misses, never "predates"."""
    from suite.analysis.load import load_results

    ref = load_results([str(REFERENCE)])
    trials = ref.trials.drop(columns=[c for c in ref.trials.columns if c.endswith("_init")])
    trials = trials[(pd.to_numeric(trials["weight_decay"]) > 0) & ~(pd.to_numeric(trials["imbalance"]) > 1)]
    trials = trials.assign(holdout_classes=None, emb_ood_auroc=NAN)
    curves = ref.curves[pd.to_numeric(ref.curves["epoch"]) > 0]
    curves = curves.drop(columns=[c for c in curves.columns if c.startswith(("emb_grad", "emb_dir_grad", "probe_"))])
    frame = evaluate_claims(trials.reset_index(drop=True), curves.reset_index(drop=True))
    pooled = frame[frame["method"] == POOLED]
    reasons = dict(zip(pooled["claim"] + "/" + pooled["measure"], pooled["reason"]))
    assert reasons["C1/emb_norm_mean"].startswith("condition absent: no trial with weight_decay == 0")
    assert "no column emb_grad_cos_abs_mean" in reasons["C2a/emb_grad_cos_abs_mean"]
    assert "no column probe_angle_change_mean" in reasons["C3/probe_angle_change_mean"]
    simclr_c7 = row(frame, "C7", "emb_correct_auroc", method="simclr")["reason"]
    assert "untrained kNN@200 is unknown" in simclr_c7
    assert reasons["C8/emb_ood_auroc"].startswith("condition absent")
    assert reasons["C9/class_norm_contrast"].startswith("condition absent")
    for key in (
        "C1/emb_norm_mean",
        "C2a/emb_grad_cos_abs_mean",
        "C3/probe_angle_change_mean",
        "C7/emb_correct_auroc",
        "C8/emb_ood_auroc",
        "C9/class_norm_contrast",
    ):
        assert dict(zip(pooled["claim"] + "/" + pooled["measure"], pooled["verdict"]))[key] == INCONCLUSIVE, key
    assert not frame["reason"].str.contains("predates").any()


def test_a_run_evaluated_only_at_the_end_says_eval_every_0_is_why():
    """The reference run as eval_every 0 records it (no epoch-0 row or *_init scores; kNN, norms and probe
    only in each trial's last curves row): the claims that need evaluation epochs name eval_every as the
    cause. The same tables with eval_every 1 (an instrumented run that lost them) do not."""
    from suite.analysis.load import load_results
    from suite.results import schema

    ref = load_results([str(REFERENCE)])
    trials = ref.trials.drop(columns=[c for c in ref.trials.columns if c.endswith(schema.INIT_SUFFIX)])
    curves = ref.curves[pd.to_numeric(ref.curves["epoch"]) > 0].copy()
    last = curves.groupby(["results_dir", "trial_id"])["epoch"].transform("max")
    evaluated = [c for c in curves.columns if schema.parse_knn(c) or c.startswith(("probe_", "test_", "ood_"))]
    curves.loc[curves["epoch"] != last, evaluated] = NAN
    hint = "every trial ran with eval_every 0"
    for eval_every, expected in ((0, True), (1, False)):
        frame = evaluate_claims(trials.assign(eval_every=eval_every).reset_index(drop=True), curves.reset_index())
        c3 = row(frame, "C3", "probe_angle_change_mean")
        c7 = row(frame, "C7", "emb_correct_auroc")
        simclr_c7 = row(frame, "C7", "emb_correct_auroc", method="simclr")
        assert c3["verdict"] == c7["verdict"] == INCONCLUSIVE
        assert (hint in c3["reason"]) is expected and (hint in c7["reason"]) is expected
        assert "untrained kNN@200 is unknown" in simclr_c7["reason"] and (hint in simclr_c7["reason"]) is expected
        # a run with eval_every 0 writes no probe columns at all
        no_probe = curves.drop(columns=[c for c in curves.columns if c.startswith("probe_")]).reset_index()
        frame = evaluate_claims(trials.assign(eval_every=eval_every).reset_index(drop=True), no_probe)
        c3 = row(frame, "C3", "probe_angle_change_mean")["reason"]
        assert "no column probe_angle_change_mean" in c3 and (hint in c3) is expected


def test_every_claim_measure_is_a_column_the_runs_write_and_its_test_names_it():
    """The claims' measures come from the result schema: each (bar the kNN race and the class contrast,
    which are computed from several columns) is a column of the committed reference run's tables."""
    from suite.analysis.claims.definitions import CLAIMS, CLASS_CONTRAST, KNN, LOSS
    from suite.analysis.load import load_results

    ref = load_results([str(REFERENCE)])
    written = set(ref.trials.columns) | set(ref.curves.columns)
    for claim in CLAIMS:
        if claim.measure in (KNN, CLASS_CONTRAST):
            continue
        assert claim.measure in written, (claim.claim, claim.measure)
        assert claim.measure == LOSS or claim.measure in claim.test, (claim.claim, claim.measure)


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
    r = row(run(shaky), "C7", "emb_correct_auroc")
    assert r["verdict"] == INCONCLUSIVE and "no method is shown to beat its untrained network" in r["reason"]
    lo, hi = stats.t.interval(0.95, len(gains) - 1, loc=np.mean(gains), scale=stats.sem(gains))
    assert lo < 0 < hi
    why = row(run(shaky), "C7", "emb_correct_auroc", method="simclr")["reason"]
    assert f"gain {np.mean(gains):+.4f} [{lo:+.4f}, {hi:+.4f}] over 3 trial(s) (not shown to beat" in why
    sure = [dict(t, knn_top1_k20=0.6 + 0.01 * t["seed"]) for t in shaky]
    r = row(run(sure), "C7", "emb_correct_auroc")
    assert r["verdict"] == HOLDS and "left out" not in r["evidence"]  # nothing left out


def test_gains_equal_up_to_round_off_have_no_spread_and_three_seeds_do_not_show_learning():
    same = [trial(seed=s, emb_correct_auroc=0.7 + 0.01 * s, knn_top1_k20=0.9, knn_top1_k20_init=0.5) for s in range(3)]
    r = row(run(same), "C7", "emb_correct_auroc", method="simclr")
    assert r["verdict"] == INCONCLUSIVE
    assert "gain +0.4000 no spread over 3 trial(s) (not shown to beat" in r["reason"]
    six = [
        trial(seed=s, emb_correct_auroc=0.7 + 0.01 * (s % 3), knn_top1_k20=0.9, knn_top1_k20_init=0.5) for s in range(6)
    ]
    assert row(run(six), "C7", "emb_correct_auroc")["verdict"] == HOLDS  # exact sign test: 6 of 6 above 0, p = 0.03


def test_only_the_none_arm_decides_whether_a_method_learns():
    """A wd:0 arm is an intervention: its (large) gains must not rescue a `none` arm whose interval reaches 0."""
    shaky = [
        trial(seed=s, emb_correct_auroc=0.7 + 0.01 * s, knn_top1_k20=0.5 + g) for s, g in enumerate([0.05, -0.01, 0.02])
    ]
    wd0 = [
        trial(intervention="wd:0", seed=s, weight_decay=0.0, emb_correct_auroc=0.7, knn_top1_k20=0.8 + 0.01 * s)
        for s in range(3)
    ]
    r = row(run(shaky + wd0), "C7", "emb_correct_auroc", method="simclr")
    assert r["verdict"] == INCONCLUSIVE and "over 3 trial(s) (not shown to beat" in r["reason"]
