"""The units each claim's test runs on, computed from the results tables.

Each ``units_*`` function returns a units frame (method, seed, value, label) and
what it left out and why; `suite.analysis.claims.judge` turns units into
verdicts. Per-trial statistics over curves are grouped computations (one pass
over the curves table), never a loop that filters the table once per trial, so
claims on 10,000 trials take seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from suite.analysis import compare
from suite.analysis.claims.definitions import MIN_LOG_NORM_RANGE, MIN_SLOPE_EPOCHS
from suite.core.stats import t_interval
from suite.results import schema

SETTING_COLUMNS = ("dataset", "backbone", "method", "imbalance")  # what "does this method learn here" is asked of


@dataclass
class Units:
    """A claim's units and what did not make it, with the reasons."""

    frame: pd.DataFrame
    left_out: dict[str, str] = field(default_factory=dict)  # method -> why it has no units
    notes: list[str] = field(default_factory=list)  # evidence beyond the units
    reason: str = ""  # why there are no units at all


def num(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce")


def absent(frame: pd.DataFrame | None, columns, table: str) -> str:
    """Why a test cannot run for want of columns ("" when all are there with values)."""
    if frame is None:
        return f"no {table} table in the results directory"
    for column in columns:
        if column not in frame.columns:
            return f"the {table} table has no column {column}"
        if frame[column].notna().sum() == 0:
            return f"column {column} of the {table} table has no values"
    return ""


def eval_every_hint(trials: pd.DataFrame) -> str:
    """Why evaluation-epoch values (the epoch-0 row, per-epoch kNN and probe) are missing, when the trials
    say: every trial ran with ``eval_every`` 0, which evaluates only the final network ("" otherwise)."""
    every = num(trials, "eval_every")
    if len(trials) and every.notna().all() and (every <= 0).all():
        return (
            "; every trial ran with eval_every 0, which evaluates only the final network: eval_every >= 1 "
            "adds the untrained network (epoch 0) and per-epoch evaluations"
        )
    return ""


def labels(trials: pd.DataFrame) -> pd.Series:
    """``method/intervention/s<seed>`` of every trial (`compare.label`, vectorized)."""
    return (
        trials["method"].astype(str)
        + "/"
        + trials["intervention"].astype(str)
        + "/s"
        + trials["seed"].map(compare._text).astype(str)
    )


def _units(trials: pd.DataFrame, values: pd.Series, fmt: str = "{:.3g}") -> pd.DataFrame:
    """Units from per-trial values (indexed like ``trials``), finite ones only."""
    values = pd.to_numeric(values.reindex(trials.index), errors="coerce")
    ok = np.isfinite(values.to_numpy(float))
    sel, vals = trials[ok], values[ok]
    return pd.DataFrame(
        {
            "method": sel["method"].astype(str).to_numpy(),
            "seed": sel["seed"].to_numpy(),
            "value": vals.to_numpy(float),
            "label": (labels(sel) + " " + vals.map(fmt.format).astype(str)).to_numpy(),
        }
    )


# ---------------------------------------------------------------- grouped curve statistics
def trained_curves(curves: pd.DataFrame, keys: pd.Series, columns) -> pd.DataFrame:
    """Rows of epochs >= 1 of the trials in ``keys``, with the numeric ``columns``, sorted by trial and epoch."""
    c = curves[curves["_key"].isin(set(keys))]
    out = pd.DataFrame({"_key": c["_key"], "epoch": num(c, schema.EPOCH)})
    for column in columns:
        out[column] = num(c, column)
    return out[out["epoch"] >= 1].sort_values(["_key", "epoch"], kind="stable")


def grouped_slope(frame: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Per ``_key``: OLS slope of y on x, the number of points and the range of x (finite points only)."""
    f = frame[np.isfinite(frame[x]) & np.isfinite(frame[y])]
    g = f.groupby("_key")
    n, sx, sy = g[x].count(), g[x].sum(), g[y].sum()
    sxx, sxy = (f[x] * f[x]).groupby(f["_key"]).sum(), (f[x] * f[y]).groupby(f["_key"]).sum()
    var = sxx - sx * sx / n
    slope = (sxy - sx * sy / n) / var.where(var > 0)
    return pd.DataFrame({"slope": slope, "n": n, "range": g[x].max() - g[x].min()})


# ---------------------------------------------------------------- learning gate
def primary_knn(trials: pd.DataFrame) -> tuple[int | None, str]:
    """The k every kNN-based test uses: the trials' primary k (knn_k[0]) when they agree."""
    if "knn_k" not in trials.columns or trials["knn_k"].isna().all():
        return None, "the trials table has no knn_k column"
    ks = {schema.primary_k(v) for v in trials["knn_k"].dropna()}
    if len(ks) != 1:
        return None, f"the trials' knn_k differ in their first k ({sorted(ks)}): no single k to judge on"
    return ks.pop(), ""


def learning_status(trials: pd.DataFrame, k: int) -> dict[tuple, tuple[bool | None, str]]:
    """Whether each setting (dataset, backbone, method, imbalance) beats its own untrained network.

    The gain of a trial is its final kNN top-1 with k minus its epoch-0 score (``knn_top1_k<k>_init``); a
    setting is shown to learn when the 95% t-interval of the mean gain over its ``none`` trials (all its
    trials without one) lies above 0 (with no spread between seeds: the exact sign test, p < 0.05)."""
    out: dict[tuple, tuple[bool | None, str]] = {}
    gain = num(trials, schema.knn(k)) - num(trials, schema.knn_init(k))
    cols = [c for c in SETTING_COLUMNS if c in trials.columns]
    baseline = compare.is_baseline(trials)
    for setting, group in trials.groupby([trials[c].map(compare._text) for c in cols], sort=True):
        setting = setting if isinstance(setting, tuple) else (setting,)
        base = group[baseline.loc[group.index]]
        base = base if len(base) else group
        g = gain.loc[base.index].dropna()
        name = "/".join(v if c != "imbalance" else f"imbalance {v}" for c, v in zip(cols, setting) if v != "—")
        if g.empty:
            out[setting] = (
                None,
                f"{name}: the untrained kNN@{k} is unknown ({schema.knn_init(k)} has no values"
                f"{eval_every_hint(group)})",
            )
            continue
        test = t_interval(g.to_numpy(float))
        learns = (test.estimate > 0 and test.p_value < 0.05) if test.sign_test else bool(test.lo > 0)
        verdict = "beats" if learns else "does not beat" if test.estimate <= 0 else "not shown to beat"
        interval = (
            f"[{test.lo:+.4f}, {test.hi:+.4f}]"
            if math.isfinite(test.lo)
            else "no spread"
            if test.sign_test
            else "no interval"
        )
        final = num(base, schema.knn(k)).mean()
        out[setting] = (
            learns,
            f"{name}: kNN@{k} {final:.4f} vs untrained {final - test.estimate:.4f}, gain "
            f"{test.estimate:+.4f} {interval} over {test.n} trial(s) ({verdict} its untrained "
            f"network)",
        )
    return out


def setting_of(trials: pd.DataFrame) -> pd.Series:
    cols = [c for c in SETTING_COLUMNS if c in trials.columns]
    texts = [compare.cell_texts(trials[c]) for c in cols]
    return pd.Series(list(zip(*texts)) if cols else [()] * len(trials), index=trials.index, dtype=object)


def gate(trials: pd.DataFrame, k: int | None, why_no_k: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """The trials of settings shown to learn, and per method left out the reason."""
    if k is None:
        return trials.iloc[0:0], {m: why_no_k for m in trials["method"].astype(str).unique()}
    status = learning_status(trials, k)
    settings = setting_of(trials)
    keep = settings.map(lambda s: bool(status.get(s, (False,))[0]))
    left = {}
    for setting, (learns, why) in status.items():
        if not learns:
            method = trials.loc[settings == setting, "method"].astype(str).iloc[0]
            left[method] = (left[method] + "; " if method in left else "") + f"left out {why}"
    return trials[keep], left


# ---------------------------------------------------------------- the claims
def units_c1(trials: pd.DataFrame, curves: pd.DataFrame | None) -> Units:
    """Per weight-decay-0 trial, log(last / first) of the epoch means of emb_norm_mean (epochs >= 1)."""
    if reason := absent(trials, ["weight_decay"], "trials"):
        return Units(_units(trials.iloc[0:0], pd.Series(dtype=float)), reason=reason)
    wd0 = trials[num(trials, "weight_decay") == 0]
    if wd0.empty:
        listed = ", ".join(f"{w:g}" for w in sorted(num(trials, "weight_decay").dropna().unique()))
        return Units(
            _units(wd0, pd.Series(dtype=float)),
            reason=f"condition absent: no trial with weight_decay == 0 (weight decays: {listed})",
        )
    if reason := absent(curves, [schema.EPOCH, schema.train_norm("emb", "mean")], "curves"):
        return Units(_units(wd0, pd.Series(dtype=float)), reason=reason)
    col = schema.train_norm("emb", "mean")
    c = trained_curves(curves, wd0["_key"], [col])
    c = c[c[col] > 0]
    g = c.groupby("_key")[col]
    growth = np.log(g.last() / g.first()).where(g.count() >= 2)
    return Units(_units(wd0, wd0["_key"].map(growth), "{:+.3f}"))


def units_c2a(trials: pd.DataFrame, curves: pd.DataFrame | None) -> Units:
    if reason := absent(curves, [schema.EPOCH, schema.GRAD_COS_ABS], "curves"):
        return Units(_units(trials.iloc[0:0], pd.Series(dtype=float)), reason=reason)
    c = trained_curves(curves, trials["_key"], [schema.GRAD_COS_ABS])
    per_trial = c.groupby("_key")[schema.GRAD_COS_ABS].mean()
    units = _units(trials, trials["_key"].map(per_trial))
    units["label"] = [lab.rsplit(" ", 1)[0] for lab in units["label"]]
    return Units(units)


def units_c2b(trials: pd.DataFrame, curves: pd.DataFrame | None) -> Units:
    cols = [schema.GRAD_NORM, schema.train_norm("emb", "mean")]
    if reason := absent(curves, [schema.EPOCH, *cols], "curves"):
        return Units(_units(trials.iloc[0:0], pd.Series(dtype=float)), reason=reason)
    c = trained_curves(curves, trials["_key"], [*cols, schema.DIR_GRAD_NORM])
    c = c[(c[cols[0]] > 0) & (c[cols[1]] > 0)]
    c = c.assign(
        lz=np.log(c[cols[1]]),
        lg=np.log(c[cols[0]]),
        ld=np.log(c[schema.DIR_GRAD_NORM].where(c[schema.DIR_GRAD_NORM] > 0)),
    )
    fit = grouped_slope(c, "lz", "lg")
    flat = fit[(fit["n"] >= MIN_SLOPE_EPOCHS) & (fit["range"] < MIN_LOG_NORM_RANGE)]
    ok = fit[(fit["n"] >= MIN_SLOPE_EPOCHS) & (fit["range"] >= MIN_LOG_NORM_RANGE)]["slope"]
    units = Units(_units(trials, trials["_key"].map(ok), "{:.3g}"))
    if len(flat):
        units.notes.append(f"{len(flat)} trial(s) left out: log-norm range < {MIN_LOG_NORM_RANGE:g}")
    direction = grouped_slope(c[np.isfinite(c["ld"])], "lz", "ld")
    direction = direction[(direction["n"] >= MIN_SLOPE_EPOCHS) & (direction["range"] >= MIN_LOG_NORM_RANGE)]
    if len(direction):
        d = t_interval(direction["slope"].dropna().to_numpy())
        units.notes.append(
            f"not used by the verdict: slope of log {schema.DIR_GRAD_NORM} on log emb norm (theory 0) "
            f"{d.estimate:.3g} [{d.lo:.3g}, {d.hi:.3g}] over {d.n} trial(s)"
        )
    if units.frame.empty:
        units.reason = (
            f"no trial has >= {MIN_SLOPE_EPOCHS} epochs with gradient and norm values and a log-norm "
            f"range >= {MIN_LOG_NORM_RANGE:g}"
        )
    return units


def units_c3(trials: pd.DataFrame, curves: pd.DataFrame | None) -> Units:
    cols = [schema.PROBE_ANGLE, schema.PROBE_NORM, schema.LR]
    if reason := absent(curves, [schema.EPOCH, *cols], "curves"):  # the probe is measured at evaluations only
        return Units(_units(trials.iloc[0:0], pd.Series(dtype=float)), reason=reason + eval_every_hint(trials))
    c = curves[curves["_key"].isin(set(trials["_key"]))]
    c = pd.DataFrame(
        {
            "_key": c["_key"],
            "epoch": num(c, schema.EPOCH),
            "angle": num(c, schema.PROBE_ANGLE),
            "norm": num(c, schema.PROBE_NORM),
            "lr": num(c, schema.LR),
        }
    )
    c = c[c["norm"].notna()].sort_values(["_key", "epoch"], kind="stable")
    c["mid"] = 0.5 * (c["norm"] + c.groupby("_key")["norm"].shift(1))  # the norm over the interval moved
    c = c[(c["epoch"] >= 1) & (c["angle"] > 0) & (c["mid"] > 0) & (c["lr"] > 0)]
    c = c.assign(la=np.log(c["angle"]), ln=np.log(c["mid"]), ll=np.log(c["lr"]))
    coef = _norm_coefficient(c)
    units = Units(_units(trials, trials["_key"].map(coef), "{:.3g}"))
    skipped = len(trials) - len(units.frame)
    if skipped:
        units.notes.append(
            f"{skipped} trial(s) left out: too few epochs, log-norm range < {MIN_LOG_NORM_RANGE:g} "
            "or collinear norm and lr"
        )
    if units.frame.empty:
        units.reason = (
            "no trial has enough evaluation epochs with probe angle, probe norm and lr values" + eval_every_hint(trials)
        )
    return units


def _norm_coefficient(c: pd.DataFrame) -> pd.Series:
    """Per trial, the coefficient of ln in la ~ 1 + ln (+ ll where the lr varies), by the normal equations."""
    g = c.groupby("_key")
    lr_varies = (g["ll"].max() - g["ll"].min()) > 1e-12
    n, ln_range = g["ln"].count(), g["ln"].max() - g["ln"].min()
    simple = grouped_slope(c, "ln", "la")["slope"]
    # two covariates: centre within the trial, then solve the 2x2 normal equations per trial
    centred = c[["ln", "ll", "la"]] - g[["ln", "ll", "la"]].transform("mean")
    sums = (
        pd.DataFrame(
            {
                "nn": centred["ln"] ** 2,
                "nl": centred["ln"] * centred["ll"],
                "ll": centred["ll"] ** 2,
                "na": centred["ln"] * centred["la"],
                "la": centred["ll"] * centred["la"],
            }
        )
        .groupby(c["_key"])
        .sum()
    )
    det = sums["nn"] * sums["ll"] - sums["nl"] ** 2
    two = (sums["ll"] * sums["na"] - sums["nl"] * sums["la"]) / det.where(det.abs() > 1e-12 * sums["nn"] * sums["ll"])
    coef = two.where(lr_varies, simple)
    need = MIN_SLOPE_EPOCHS + lr_varies.astype(int)
    return coef.where((n >= need) & (ln_range >= MIN_LOG_NORM_RANGE))


def units_race(
    trials: pd.DataFrame,
    curves: pd.DataFrame | None,
    kind: str,
    column: str,
    falling: bool,
    k: int | None = None,
    why_no_k: str = "",
) -> Units:
    """C4/C5: one direction per (arm, baseline) pair whose target is observable."""
    is_arm = trials["intervention"].map(lambda v: compare.arm_kinds(v) == {kind})
    empty = _units(trials.iloc[0:0], pd.Series(dtype=float))
    if not is_arm.any():
        return Units(empty, reason=f"condition absent: no {kind} arm among the interventions")
    bases = compare.is_baseline(trials)
    if not bases.any():
        return Units(empty, reason="condition absent: no intervention-none baseline trials")
    if reason := absent(curves, [schema.EPOCH, column] if column else [schema.EPOCH], "curves"):
        return Units(empty, reason=reason)
    left: dict[str, str] = {}
    pool = trials
    if k is not None or why_no_k:
        pool, left = gate(trials, k, why_no_k)
        is_arm, bases = is_arm.loc[pool.index], bases.loc[pool.index]
    pairs, notes = compare.baseline_pairs(pool, is_arm, bases)
    if pairs.empty:
        reason = (
            f"no {kind} trial has a none trial with the same seed and settings"
            if not left
            else "no method left to judge (see the per-method rows)"
        )
        return Units(empty, left, notes, reason)
    by_trial = compare.trained_by_trial(curves, curves["_key"], column)
    rows, unobservable = [], {}
    info = _row_lookup(pool, ["_key", "method", "intervention", "seed"])
    for arm_label, base_label in pairs.itertuples(index=False):
        arm, base = info[arm_label], info[base_label]
        race = compare.race_of(
            by_trial.get(arm["_key"], compare.NO_CURVE), by_trial.get(base["_key"], compare.NO_CURVE), falling
        )
        if not race.observable:
            unobservable[race.why] = unobservable.get(race.why, 0) + 1
            continue
        word = {1: "faster", -1: "slower", 0: "tied"}[race.direction]
        at = "never" if race.censored else f"epoch {race.arm_epoch:g}"
        rows.append(
            {
                "method": str(arm["method"]),
                "seed": arm["seed"],
                "value": float(race.direction),
                "censored": race.censored,
                "label": f"{compare.label(arm)} {word} ({at} vs {race.base_epoch:g})",
            }
        )
    notes += [f"{n} pair(s) with no observable target: {why}" for why, n in unobservable.items()]
    frame = pd.DataFrame(rows, columns=["method", "seed", "value", "censored", "label"])
    return Units(frame, left, notes, "" if rows else "no target is observable: " + "; ".join(notes))


def units_c6(trials: pd.DataFrame) -> Units:
    """Groups of trials equal but for weight decay (same seed and arm): log(norm at lowest / at highest wd)."""
    empty = _units(trials.iloc[0:0], pd.Series(dtype=float))
    if reason := absent(trials, ["weight_decay", schema.train_norm("emb", "mean"), "intervention"], "trials"):
        return Units(empty, reason=reason)
    cols = [c for c in compare.setting_columns(trials, exclude=("weight_decay",)) if c in trials.columns]
    frame = trials.assign(
        _arm=trials["intervention"].map(compare.arm_signature),
        _wd=num(trials, "weight_decay"),
        _norm=num(trials, schema.train_norm("emb", "mean")),
    )
    frame = frame[frame["_wd"].notna() & (frame["_norm"] > 0)]
    rows = []
    protocol = [c for c in compare.PROTOCOL_COLUMNS if c in frame.columns]  # tables from before `cases` lack them
    group_keys = compare.keys(frame, cols + ["seed", "_arm", *protocol])
    frame = frame[["method", "seed", "_arm", "_wd", "_norm"]]  # what a group's rows are read for
    for _, g in frame.groupby(group_keys, sort=True):
        if g["_wd"].nunique() < 2:
            continue
        lo, hi = g.loc[g["_wd"].idxmin()], g.loc[g["_wd"].idxmax()]
        value = math.log(lo["_norm"] / hi["_norm"])
        rows.append(
            {
                "method": str(lo["method"]),
                "seed": lo["seed"],
                "value": value,
                "label": f"{lo['method']}/{lo['_arm']}/s{compare._text(lo['seed'])} wd {lo['_wd']:g} vs "
                f"{hi['_wd']:g} {value:+.3f}",
            }
        )
    if not rows:
        return Units(
            empty, reason="condition absent: no trials that differ only in weight decay (same method, seed, settings)"
        )
    return Units(pd.DataFrame(rows))


def units_column(trials: pd.DataFrame, column: str, subset: pd.Series | None, condition: str) -> Units:
    """Per-trial values of a trials column (C7, C8), with the trials whose value is NaN noted with why."""
    empty = _units(trials.iloc[0:0], pd.Series(dtype=float))
    if column not in trials.columns:
        return Units(empty, reason=f"the trials table has no column {column}")
    sel = trials if subset is None else trials[subset.reindex(trials.index).fillna(False).astype(bool)]
    if sel.empty:
        return Units(empty, reason=f"condition absent: {condition}")
    values = num(sel, column)
    units = Units(_units(sel, values))
    nan_rows = sel[values.isna()]
    if len(nan_rows):
        notes = sel.get(schema.note(column), pd.Series("", index=sel.index)).fillna("")
        units.notes.append(
            f"{len(nan_rows)} trial(s) NaN, left out: "
            + "; ".join(f"{compare.label(t)} ({notes.loc[i] or 'no note'})" for i, t in nan_rows.iterrows())
        )
    lo, hi = num(sel, schema.ci_lo(column)), num(sel, schema.ci_hi(column))
    if lo.notna().any():
        threshold = 0.5
        units.notes.append(
            f"per-trial 95% bootstrap intervals: {(lo > threshold).sum()} above {threshold:g}, "
            f"{(hi < threshold).sum()} below, {((lo <= threshold) & (hi >= threshold)).sum()} spanning it"
        )
    if units.frame.empty:
        units.reason = f"{column} is NaN in every trial where the condition holds"
    return units


def _row_lookup(frame: pd.DataFrame, columns: list[str]) -> dict:
    """{index label: {column: value}} of a few columns: a pair loop reads these per trial, and
    ``frame.loc[label]`` would build a Series of every column each time."""
    present = [c for c in columns if c in frame.columns]
    return frame[present].to_dict("index")


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


def units_c9(trials: pd.DataFrame, class_norms: pd.DataFrame | None) -> Units:
    """Long-tailed none trials against their balanced twins: Spearman(train count, log norm ratio) over classes."""
    empty = _units(trials.iloc[0:0], pd.Series(dtype=float))
    if "imbalance" not in trials.columns or not (num(trials, "imbalance") > 1).any():
        return Units(empty, reason="condition absent: no long-tailed trial (imbalance unset in every trial)")
    if reason := absent(class_norms, list(schema.CLASS_NORMS_COLUMNS), "class_norms"):
        return Units(
            empty, reason=reason + " (C9 compares each class's norms between a long-tailed and a balanced trial)"
        )
    none = compare.is_baseline(trials)
    long_tailed = none & (num(trials, "imbalance") > 1)
    balanced = none & ~(num(trials, "imbalance") > 1)
    pairs, notes = compare.baseline_pairs(trials, long_tailed, balanced, exclude=("imbalance",))
    if pairs.empty:
        return Units(
            empty,
            notes=notes,
            reason="no long-tailed trial has a balanced trial of the same seed and settings to contrast with",
        )
    emb = class_norms[class_norms[schema.BIN_VECTOR] == "embedding"]
    per_trial = _class_arrays(emb)
    rows, missing = [], 0
    info = _row_lookup(trials, ["_key", "method", "intervention", "seed"])
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
                "method": str(arm["method"]),
                "seed": arm["seed"],
                "value": rho,
                "label": f"{compare.label(arm)} {rho:+.3f}",
            }
        )
    if missing:
        notes.append(f"{missing} pair(s) left out: class norms missing or constant")
    if not rows:
        return Units(empty, notes=notes, reason="no pair has class norms to contrast")
    return Units(pd.DataFrame(rows), notes=notes)
