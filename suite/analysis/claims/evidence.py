"""The units each claim's test runs on, computed from the results tables (through a `Context`).

Each ``units_*`` function returns `Units` (method, seed, value, label per unit) and
what it left out and why. Per-trial statistics over curves are grouped computations
(one pass over the curves table), never a loop that filters the table once per
trial, so claims on 10,000 trials take seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from suite.analysis import compare
from suite.analysis.claims import checks
from suite.analysis.claims.context import (
    Context,
    Units,
    absent,
    eval_every_hint,
    no_units,
    num,
    units_from,
)
from suite.analysis.claims.definitions import (
    EARLY_FRACTION,
    EMB_NORM,
    FINAL_EPOCHS,
    MIN_DOSE,
    NOT_MEASURED,
    NOT_TESTABLE,
    TEST_EMB_NORM,
)
from suite.core.stats import sign_flip_p, t_interval
from suite.measure.mechanism import theory_slope
from suite.results import schema

REMEASURE = (
    "this run's trials predate that instrument: train them again with this version of normbench (the same "
    "sweep spec into a new results directory, or `normbench trial ... eval_every=1`) to record it"
)


def not_measured(trials: pd.DataFrame, column: str, what: str) -> Units:
    return no_units(trials, verdict=NOT_MEASURED, reason=f"not measured in this run: no {column} ({what}); {REMEASURE}")


# ---------------------------------------------------------------- grouped curve statistics
def evaluated_curves(curves: pd.DataFrame, keys: pd.Series, columns, first_epoch: int = 1) -> pd.DataFrame:
    """Rows of epochs >= ``first_epoch`` of the trials in ``keys``, with the numeric ``columns``, sorted."""
    c = curves[curves["_key"].isin(set(keys))]
    out = pd.DataFrame({"_key": c["_key"], "epoch": num(c, schema.EPOCH)})
    for column in columns:
        out[column] = num(c, column)
    return out[out["epoch"] >= first_epoch].sort_values(["_key", "epoch"], kind="stable")


def grouped_slope(frame: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Per ``_key``: OLS slope of y on x, the number of points and the range of x (finite points only)."""
    f = frame[np.isfinite(frame[x]) & np.isfinite(frame[y])]
    g = f.groupby("_key")
    n, sx, sy = g[x].count(), g[x].sum(), g[y].sum()
    sxx, sxy = (f[x] * f[x]).groupby(f["_key"]).sum(), (f[x] * f[y]).groupby(f["_key"]).sum()
    var = sxx - sx * sx / n
    slope = (sxy - sx * sy / n) / var.where(var > 0)
    return pd.DataFrame({"slope": slope, "n": n, "range": g[x].max() - g[x].min()})


def _per_method(trials: pd.DataFrame, per_trial: pd.Series) -> dict[str, pd.Series]:
    values = trials["_key"].map(per_trial)
    return {
        str(m): values[trials[schema.METHOD].astype(str) == m].dropna()
        for m in trials[schema.METHOD].astype(str).unique()
    }


# ---------------------------------------------------------------- C1
def units_c1(ctx: Context) -> Units:
    """Per weight-decay-0 trial: log(final / untrained) test embedding norm, on the same clean test images."""
    trials = ctx.trials
    if reason := absent(trials, [schema.WEIGHT_DECAY], "trials"):
        return no_units(trials, reason=reason)
    wd0 = trials[num(trials, schema.WEIGHT_DECAY) == 0]
    if wd0.empty:
        listed = ", ".join(f"{w:g}" for w in sorted(num(trials, schema.WEIGHT_DECAY).dropna().unique()))
        return no_units(trials, reason=f"condition absent: no trial with weight_decay == 0 (weight decays: {listed})")
    if reason := absent(ctx.curves, [schema.EPOCH, TEST_EMB_NORM], "curves"):
        return no_units(trials, reason=reason + eval_every_hint(wd0))
    c = evaluated_curves(ctx.curves, wd0["_key"], [TEST_EMB_NORM], first_epoch=0)
    c = c[c[TEST_EMB_NORM] > 0]
    g = c.groupby("_key")[TEST_EMB_NORM]
    has_zero = c.assign(zero=c["epoch"] == 0).groupby("_key")["zero"].any()
    growth = np.log(g.last() / g.first()).where(has_zero & (g.count() >= 2))
    rose = c.groupby("_key")[TEST_EMB_NORM].apply(
        lambda s: float((np.diff(s.to_numpy()) > 0).mean()) if len(s) > 1 else np.nan
    )
    units = Units(units_from(wd0, wd0["_key"].map(growth), "{:+.3f}"))
    if units.frame.empty:
        units.reason = "no weight-decay-0 trial has an epoch-0 evaluation of its test norms" + eval_every_hint(wd0)
        return units
    share = _per_method(wd0, rose)
    units.notes.append(
        "share of evaluation intervals in which the test norm rose: "
        + ", ".join(f"{m} {s.mean():.2f}" for m, s in sorted(share.items()) if len(s))
    )
    return units


# ---------------------------------------------------------------- C2a, C2b, C3
def units_c2a(ctx: Context) -> Units:
    if reason := absent(ctx.curves, [schema.EPOCH, schema.GRAD_COS_ABS], "curves"):
        return no_units(ctx.trials, reason=reason)
    c = evaluated_curves(ctx.curves, ctx.trials["_key"], [schema.GRAD_COS_ABS])
    per_trial = c.groupby("_key")[schema.GRAD_COS_ABS].mean()
    units = Units(units_from(ctx.trials, ctx.trials["_key"].map(per_trial)))
    units.frame["label"] = [lab.rsplit(" ", 1)[0] for lab in units.frame["label"]]
    return units


def slope_decomposition(ctx: Context) -> dict[str, str]:
    """Per method (its balanced ``none`` trials), the across-epoch slope of log mean ||dL/dz|| on log mean ||z||
    split into its three
    exact terms -- -1 (the law), the slope of log mean(||dL/dz|| ||z||) (the direction gradient, which
    changes as the loss falls) and the slope of the aggregation gap log(mean g * mean z / mean(g z)) --
    described, never judged: a regression across epochs mixes the law with everything else that moved."""
    cols = [schema.GRAD_NORM, EMB_NORM, schema.DIR_GRAD_NORM]
    if ctx.curves is None or absent(ctx.curves, cols, "curves"):
        return {}
    trials = ctx.trials[compare.is_baseline(ctx.trials) & ~(num(ctx.trials, schema.IMBALANCE) > 1)]  # the clean arms
    c = evaluated_curves(ctx.curves, trials["_key"], cols)
    c = c[(c[cols] > 0).all(axis=1)]
    c = c.assign(lz=np.log(c[EMB_NORM]), lg=np.log(c[schema.GRAD_NORM]), ld=np.log(c[schema.DIR_GRAD_NORM]))
    c["gap"] = c["lg"] - c["ld"] + c["lz"]
    fits = {y: grouped_slope(c, "lz", y) for y in ("lg", "ld", "gap")}
    ok = fits["lg"]["n"] >= 3
    out = {}
    for method, slopes in _per_method(trials, fits["lg"]["slope"].where(ok)).items():
        if not len(slopes):
            continue
        direction = _per_method(trials, fits["ld"]["slope"].where(ok))[method].mean()
        gap = _per_method(trials, fits["gap"]["slope"].where(ok))[method].mean()
        out[method] = (
            f"described, not judged: across epochs the slope of log mean ||dL/dz|| on log mean ||z|| is "
            f"{slopes.mean():.3f} = -1 (the law) {direction:+.3f} (direction gradient, the loss falling) "
            f"{gap:+.3f} (aggregation gap), mean over the {len(slopes)} none trial(s)"
        )
    return out


def units_c2b(ctx: Context) -> Units:
    """Per trial: the largest deviation from the exact 1/||z|| identity over its evaluations."""
    column = schema.GRAD_IDENTITY_DEV
    if ctx.curves is None or column not in ctx.curves.columns or ctx.curves[column].notna().sum() == 0:
        units = not_measured(ctx.trials, column, "the exact gradient identity on a fixed batch")
    else:
        c = evaluated_curves(ctx.curves, ctx.trials["_key"], [column], first_epoch=0)
        units = Units(units_from(ctx.trials, ctx.trials["_key"].map(c.groupby("_key")[column].max()), "{:.2g}"))
    units.method_evidence.update(slope_decomposition(ctx))
    return units


def _gradscale_power(trials: pd.DataFrame) -> pd.Series:
    return trials[schema.INTERVENTION].map(lambda v: compare.intervention_of(v).gradscale or 0.0)


def units_c3(ctx: Context) -> Units:
    """Per trial: the largest |measured - predicted| slope of the probe step's turn on log a over its
    evaluations (prediction -2, p - 2 under GradScale p); the placebo's in the evidence."""
    column = schema.STEP_TURN_SLOPE
    if ctx.curves is None or column not in ctx.curves.columns or ctx.curves[column].notna().sum() == 0:
        return not_measured(ctx.trials, column, "the turn of one probe step against the rescaled embedding layer")
    c = evaluated_curves(ctx.curves, ctx.trials["_key"], [column, schema.STEP_TURN_PLACEBO], first_epoch=0)
    theory = ctx.trials.set_index("_key")[schema.INTERVENTION].map(
        lambda v: theory_slope(compare.intervention_of(v).gradscale)
    )
    c = c.assign(theory=c["_key"].map(theory))
    c = c.assign(dev=(c[column] - c["theory"]).abs(), placebo=(c[schema.STEP_TURN_PLACEBO] - c["theory"]).abs())
    worst = c.groupby("_key")["dev"].max()
    units = Units(units_from(ctx.trials, ctx.trials["_key"].map(worst), "{:.2g}"))
    placebo = c.groupby("_key")["placebo"].min()
    slopes = c.groupby("_key")[column].mean()
    for method, values in _per_method(ctx.trials, slopes).items():
        if not len(values):
            continue
        test = t_interval(values.to_numpy())
        caught = _per_method(ctx.trials, placebo)[method]
        interval = f"[{test.lo:.4f}, {test.hi:.4f}]" if math.isfinite(test.lo) else "(no spread)"
        units.method_evidence[method] = (
            f"mean measured slope {test.estimate:.4f}, 95% interval {interval} over {test.n} trial(s); the placebo "
            f"(the norm rescaled after the layer, theory 0) misses the prediction by at least {caught.min():.3f}"
        )
    return units


def placebo_passes(ctx: Context, tolerance: float) -> dict[str, str]:
    """Methods where the placebo lands within ``tolerance`` of the prediction in some trial: the test cannot
    tell the mechanism from a coincidence of norms there, so its verdict is inconclusive."""
    if ctx.curves is None or schema.STEP_TURN_PLACEBO not in ctx.curves.columns:
        return {}
    c = evaluated_curves(ctx.curves, ctx.trials["_key"], [schema.STEP_TURN_PLACEBO], first_epoch=0)
    theory = ctx.trials.set_index("_key")[schema.INTERVENTION].map(
        lambda v: theory_slope(compare.intervention_of(v).gradscale)
    )
    miss = (c[schema.STEP_TURN_PLACEBO] - c["_key"].map(theory)).abs().groupby(c["_key"]).min()
    out = {}
    for method, values in _per_method(ctx.trials, miss).items():
        if len(values) and values.min() < tolerance:
            out[method] = f"the placebo comes within {values.min():.3g} of the prediction: the test cannot tell"
    return out


# ---------------------------------------------------------------- C4, C5
def _window_effect(
    arm: compare.Trained, base: compare.Trained, start: float, falling: bool, epochs: int
) -> tuple[float, str]:
    """The area between the arm's and the baseline's curves over the first ``EARLY_FRACTION`` of
    training, in units of the baseline's whole improvement (positive: the arm ahead)."""
    be, bv = base
    ae, av = arm
    if be.size < 2:
        return math.nan, "the baseline has fewer than 2 trained evaluations"
    end = float(np.mean(bv[-FINAL_EPOCHS:]))
    scale = (start - end) if falling else (end - start)
    if not scale > 0:
        return math.nan, "the baseline does not improve over training"
    window = max(1, math.ceil(EARLY_FRACTION * epochs))
    shared = np.intersect1d(be[be <= window], ae[ae <= window])
    if shared.size == 0:
        return math.nan, "no evaluation in the early window shared by arm and baseline"
    a = np.array([av[ae == e][0] for e in shared])
    b = np.array([bv[be == e][0] for e in shared])
    diff = (b - a) if falling else (a - b)
    return float(diff.mean() / scale), ""


def units_effect(ctx: Context, kind: str, column: str, falling: bool) -> Units:
    """C4/C5: per (arm, baseline) pair of the same seed, science and protocol, that passes the manipulation
    and collapse checks, the early-training effect (`_window_effect`); the race to a target (which reaches
    the baseline's midway point first) and its sign-flip test go into the evidence."""
    trials = ctx.trials
    is_arm = trials[schema.INTERVENTION].map(lambda v: compare.arm_kinds(v) == {kind})
    if not is_arm.any():
        return no_units(trials, reason=f"condition absent: no {kind} arm among the interventions")
    bases = compare.is_baseline(trials)
    if not bases.any():
        return no_units(trials, reason="condition absent: no intervention-none baseline trials")
    if reason := absent(ctx.curves, [schema.EPOCH, column], "curves"):
        return no_units(trials, reason=reason + eval_every_hint(trials))
    left: dict[str, str] = {}
    pool = trials
    if column != schema.LOSS:
        pool, left = ctx.learning
        is_arm, bases = is_arm.loc[pool.index], bases.loc[pool.index]
    pairs, notes = compare.baseline_pairs(pool, is_arm, bases)
    units = Units(no_units(trials).frame, left, notes)
    if pairs.empty:
        units.reason = (
            f"no {kind} trial has a none trial with the same seed and settings"
            if not left
            else "no method left to judge (see the per-method rows)"
        )
        return units
    values = ctx.curve_values(column)
    start_values = ctx.curve_values(column) if falling else _with_epoch_zero(ctx, column)
    info = pool[
        ["_key", schema.METHOD, schema.INTERVENTION, schema.SEED, *[c for c in compare.PROTOCOL_COLUMNS if c in pool]]
    ]
    info = info.to_dict("index")
    rows, unobservable = [], {}
    for arm_label, base_label in pairs.itertuples(index=False):
        arm, base = info[arm_label], info[base_label]
        method = str(arm[schema.METHOD])
        failed = checks.pair_checks(ctx, arm, base, kind, column)
        if failed:
            units.checks.setdefault(method, []).append(f"{compare.label(arm)}: {failed}")
            continue
        base_curve = values.get(base["_key"], compare.NO_CURVE)
        start = _start(start_values.get(base["_key"], compare.NO_CURVE), falling)
        epochs = int(max(base_curve[0].max(initial=0), 1))
        effect, why = _window_effect(values.get(arm["_key"], compare.NO_CURVE), base_curve, start, falling, epochs)
        if not math.isfinite(effect):
            unobservable[why] = unobservable.get(why, 0) + 1
            continue
        race = compare.race_of(values.get(arm["_key"], compare.NO_CURVE), base_curve, falling)
        rows.append(
            {
                schema.METHOD: method,
                schema.SEED: arm[schema.SEED],
                "value": effect,
                "direction": float(race.direction) if race.observable else math.nan,
                "label": f"{compare.label(arm)} {effect:+.3f}",
            }
        )
    units.notes += [f"{n} pair(s) with no measurable effect: {why}" for why, n in unobservable.items()]
    units.frame = pd.DataFrame(rows, columns=[schema.METHOD, schema.SEED, "value", "direction", "label"])
    if not rows:
        units.reason = "no pair passes its checks with a measurable effect" + (
            ": " + "; ".join(units.notes) if units.notes else " (see checks)"
        )
    return units


def _with_epoch_zero(ctx: Context, column: str) -> dict[str, compare.Trained]:
    """Every trial's values of ``column`` from epoch 0 (the untrained network) on."""
    if ctx.curves is None or column not in ctx.curves.columns:
        return {}
    c = ctx.curves
    epochs, values = num(c, schema.EPOCH).to_numpy(float), num(c, column).to_numpy(float)
    out: dict[str, compare.Trained] = {}
    frame = pd.DataFrame({"_key": c["_key"].to_numpy(), "e": epochs, "v": values}).dropna()
    for key, g in frame.sort_values(["_key", "e"]).groupby("_key", sort=False):
        out[key] = (g["e"].to_numpy(), g["v"].to_numpy())
    return out


def _start(curve: compare.Trained, falling: bool) -> float:
    """Where the baseline starts: its untrained value (epoch 0, accuracies) or its first epoch's (the loss,
    which has no epoch-0 value); NaN without one."""
    epochs, values = curve
    if not epochs.size:
        return math.nan
    return float(values[np.argmin(epochs)])


def race_evidence(units: pd.DataFrame) -> str:
    """The time-to-target race over a method's pairs, beside the effect: faster / slower per pair and
    the exact sign-flip test of the per-seed net direction."""
    if "direction" not in units.columns:
        return ""
    d = units.dropna(subset=["direction"])
    if d.empty:
        return "race to the target: no observable pair"
    per_seed = d.groupby(schema.SEED)["direction"].mean().to_numpy()
    return (
        f"race to the baseline's midway target: {int((d['direction'] > 0).sum())} faster, "
        f"{int((d['direction'] < 0).sum())} slower, {int((d['direction'] == 0).sum())} tied; sign-flip p over "
        f"{per_seed.size} seed(s) {sign_flip_p(per_seed):.3g}"
    )


# ---------------------------------------------------------------- C6
def units_c6(ctx: Context) -> Units:
    """Groups of trials equal but for weight decay (same seed and arm), whose dose difference can act:
    log(final norm at the lowest / at the highest weight decay)."""
    trials = ctx.trials
    if reason := absent(trials, [schema.WEIGHT_DECAY, EMB_NORM, schema.INTERVENTION], "trials"):
        return no_units(trials, reason=reason)
    cols = [c for c in compare.setting_columns(trials, exclude=(schema.WEIGHT_DECAY,)) if c in trials.columns]
    frame = trials.assign(
        _arm=trials[schema.INTERVENTION].map(compare.arm_signature),
        _wd=num(trials, schema.WEIGHT_DECAY),
        _norm=num(trials, EMB_NORM),
        _lr_sum=checks.lr_sums(ctx),
    )
    frame = frame[frame["_wd"].notna() & (frame["_norm"] > 0)]
    protocol = [c for c in compare.PROTOCOL_COLUMNS if c in frame.columns]
    group_keys = compare.keys(frame, cols + [schema.SEED, "_arm", *protocol])
    frame = frame[[schema.METHOD, schema.SEED, "_arm", "_wd", "_norm", "_lr_sum"]]
    rows, weak = [], {}
    for _, g in frame.groupby(group_keys, sort=True):
        if g["_wd"].nunique() < 2:
            continue
        lo, hi = g.loc[g["_wd"].idxmin()], g.loc[g["_wd"].idxmax()]
        dose = (hi["_wd"] - lo["_wd"]) * hi["_lr_sum"]
        label = f"{lo['method']}/{lo['_arm']}/s{compare._text(lo['seed'])} wd {lo['_wd']:g} vs {hi['_wd']:g}"
        if not dose >= MIN_DOSE:
            weak.setdefault(str(lo[schema.METHOD]), []).append(f"{label}: dose {dose:.2g}")
            continue
        value = math.log(lo["_norm"] / hi["_norm"])
        rows.append(
            {
                schema.METHOD: str(lo[schema.METHOD]),
                schema.SEED: lo[schema.SEED],
                "value": value,
                "label": f"{label} {value:+.3f}",
            }
        )
    units = Units(pd.DataFrame(rows, columns=[schema.METHOD, schema.SEED, "value", "label"]))
    explain = (
        f"below the dose {MIN_DOSE:g} (weight-decay difference x the lr summed over training: decay alone would "
        f"shrink an untouched weight by a factor e^-dose, so below {MIN_DOSE:g} by less than "
        f"{100 * (1 - math.exp(-MIN_DOSE)):.1f}%, within the seed-to-seed spread of final norms)"
    )
    for method, groups in weak.items():
        units.checks.setdefault(method, []).append(f"{len(groups)} group(s) {explain}: " + ", ".join(groups[:6]))
        if method not in set(units.frame[schema.METHOD]):
            doses = ", ".join(g.rsplit(": dose ", 1)[1] for g in groups[:6])
            units.per_method_verdict[method] = (NOT_TESTABLE, f"every weight-decay pair is {explain}; doses {doses}")
    if not rows and not weak:
        units.reason = "condition absent: no trials that differ only in weight decay (same method, seed, settings)"
    elif not rows:
        units.verdict, units.reason = NOT_TESTABLE, f"every weight-decay pair is {explain}"
    return units


# ---------------------------------------------------------------- C7, C8
def units_controlled(ctx: Context, column: str, need_ood: bool) -> Units:
    """Per trial of a method shown to learn (collapsed trials left out): the diagnostic of the trained
    network minus that of the same trial's untrained network (epoch 0) -- what training added to what
    a random network's norms already carry."""
    trials = ctx.trials
    if column not in trials.columns:
        return not_measured(trials, column, "the diagnostic itself")
    pool = trials[has_ood(trials)] if need_ood else trials
    if pool.empty:
        return no_units(trials, reason="condition absent: no trial has holdout_classes or ood_dataset set")
    having = set(pool.loc[num(pool, column).notna(), schema.METHOD].astype(str))
    learning, left = ctx.learning
    learning = learning[learning["_key"].isin(set(pool["_key"])) & learning[schema.METHOD].astype(str).isin(having)]
    trained = num(pool, column)
    init = schema.init_of(column)
    if init not in trials.columns or num(trials, init).notna().sum() == 0:
        units = not_measured(
            trials, init, "the untrained network's value, the control every trained value is read against"
        )
        for m in sorted(having):
            values = trained[pool[schema.METHOD].astype(str) == m].dropna()
            units.method_evidence[m] = (
                f"described, not judged: the trained networks' {column} is {values.mean():.3f} (mean of "
                f"{len(values)} trial(s)); without the untrained value it cannot tell confidence from what a random "
                "network's norms already carry"
            )
        return units
    if learning.empty:
        return no_units(
            trials,
            left_out={m: why for m, why in left.items() if m in having},
            reason="no method is shown to beat its untrained network" + eval_every_hint(trials),
        )
    every = checks.every_collapse(ctx)
    collapsed = {key: every[key] for key in learning["_key"] if key in every}
    units = Units(no_units(trials).frame, {m: why for m, why in left.items() if m in having})
    for key, why in collapsed.items():
        row = learning[learning["_key"] == key].iloc[0]
        units.checks.setdefault(str(row[schema.METHOD]), []).append(f"{compare.label(row)}: {why}")
    kept = learning[~learning["_key"].isin(set(collapsed))]
    delta = num(kept, column) - num(kept, init)
    units.frame = units_from(kept, delta, "{:+.3f}")
    nan_rows = kept[delta.isna()]
    if len(nan_rows):
        notes = kept.get(schema.note(column), pd.Series("", index=kept.index)).fillna("")
        units.notes.append(
            f"{len(nan_rows)} trial(s) NaN, left out: "
            + "; ".join(
                f"{compare.label(t)} ({notes.loc[i] or 'degenerate untrained value'})" for i, t in nan_rows.iterrows()
            )
        )
    if units.frame.empty:
        units.reason = f"{column} minus its untrained value is NaN in every trial where the condition holds"
    return units


def has_ood(trials: pd.DataFrame) -> pd.Series:
    out = pd.Series(False, index=trials.index)
    for col in ("holdout_classes", "ood_dataset"):
        if col in trials.columns:
            text = trials[col].astype(str).str.strip().str.lower()
            out |= trials[col].notna() & ~text.isin(["", "nan", "none", "null", "[]", "<na>"])
    return out


# ---------------------------------------------------------------- C9
def _class_arrays(class_norms: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{trial key: (classes, train counts, norm means)} in the order of the trial's rows."""
    codes, uniques = pd.factorize(class_norms["_key"].to_numpy(dtype=object))
    order = np.argsort(codes, kind="stable")
    codes = codes[order]
    classes = class_norms[schema.CLASS].to_numpy()[order]
    counts = num(class_norms, schema.TRAIN_COUNT).to_numpy(dtype=np.float64, na_value=np.nan)[order]
    norms = num(class_norms, schema.CLASS_NORM_MEAN).to_numpy(dtype=np.float64, na_value=np.nan)[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if codes.size else np.empty(0, dtype=np.int64)
    ends = np.r_[starts[1:], codes.size]
    return {uniques[codes[a]]: (classes[a:b], counts[a:b], norms[a:b]) for a, b in zip(starts, ends)}


def units_c9(ctx: Context) -> Units:
    """Long-tailed none trials against their balanced twins: Spearman(train count, log norm ratio) over classes."""
    trials, class_norms = ctx.trials, ctx.class_norms
    if schema.IMBALANCE not in trials.columns or not (num(trials, schema.IMBALANCE) > 1).any():
        return no_units(trials, reason="condition absent: no long-tailed trial (imbalance unset in every trial)")
    if reason := absent(class_norms, list(schema.CLASS_NORMS_COLUMNS), "class_norms"):
        return no_units(
            trials, reason=reason + " (C9 compares each class's norms between a long-tailed and a balanced trial)"
        )
    none = compare.is_baseline(trials)
    long_tailed = none & (num(trials, schema.IMBALANCE) > 1)
    balanced = none & ~(num(trials, schema.IMBALANCE) > 1)
    pairs, notes = compare.baseline_pairs(trials, long_tailed, balanced, exclude=(schema.IMBALANCE,))
    if pairs.empty:
        return no_units(
            trials,
            notes=notes,
            reason="no long-tailed trial has a balanced trial of the same seed and settings to contrast with",
        )
    emb = class_norms[class_norms[schema.BIN_VECTOR] == "embedding"]
    per_trial = _class_arrays(emb)
    rows, missing = [], 0
    info = trials[["_key", schema.METHOD, schema.INTERVENTION, schema.SEED]].to_dict("index")
    for arm_label, base_label in pairs.itertuples(index=False):
        arm, base = info[arm_label], info[base_label]
        a, b = per_trial.get(arm["_key"]), per_trial.get(base["_key"])
        if a is None or b is None:
            missing += 1
            continue
        # the arm's classes in its rows' order, each with the balanced twin's norm of that class
        classes, train_count, norm = a
        twin = dict(zip(b[0].tolist(), b[2].tolist()))
        norm_bal = np.array([twin.get(c, np.nan) for c in classes.tolist()], dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            contrast = np.log(norm / norm_bal)
        ok = np.isfinite(contrast) & ~np.isnan(train_count)
        counts = train_count[ok]
        if ok.sum() < 3 or np.unique(counts).size < 2 or np.unique(contrast[ok]).size < 2:
            missing += 1
            continue
        rho = float(scipy_stats.spearmanr(counts, contrast[ok]).statistic)
        rows.append(
            {
                schema.METHOD: str(arm[schema.METHOD]),
                schema.SEED: arm[schema.SEED],
                "value": rho,
                "label": f"{compare.label(arm)} {rho:+.3f}",
            }
        )
    if missing:
        notes.append(f"{missing} pair(s) left out: class norms missing or constant")
    if not rows:
        return no_units(trials, notes=notes, reason="no pair has class norms to contrast")
    return Units(pd.DataFrame(rows), notes=notes)
