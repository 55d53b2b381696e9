"""The tables behind the page's figures, computed from the results tables (no chart code here).

Why apart from the charts: what a figure shows is a claim's evidence and must be
computed the way the claim computes it (the same pairing and race for C4/C5,
`suite.analysis.compare`; the same learning gate for kNN), which is testable on
frames; how it is drawn is `suite.analysis.report.charts`. Every function is a
grouped computation over its table (per-sample norms are binned with numpy per
group), and returns an empty frame when its data is absent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from suite.analysis import compare
from suite.analysis.claims import checks
from suite.analysis.claims.context import Context, num, trial_key
from suite.analysis.leaderboard.aggregate import Leaderboard
from suite.analysis.report.data import text
from suite.core.tables import DASH
from suite.measure.mechanism import theory_slope
from suite.results import schema

OOD_BINS = 20
OOD_CLIP = (1, 99)  # percentiles of a trial's norms that bound its histogram; the rest go to the end bins
MIN_BIN_SAMPLES = 50  # pooled samples below which a norm bin's accuracy is not drawn
EMBEDDING = "embedding"  # the norm_bins / class_norms / eval_norms name of the `emb` vector


def _of_trials(table: pd.DataFrame | None, trials: pd.DataFrame) -> pd.DataFrame | None:
    """Rows of ``table`` that belong to ``trials``, with their ``_key``, ``method`` and ``group``."""
    if table is None or table.empty:
        return None
    keyed = table.assign(_key=trial_key(table))
    keep = trials.assign(_key=trial_key(trials))[["_key", schema.METHOD, schema.GROUP]]
    keyed = keyed.drop(columns=[c for c in (schema.METHOD, schema.GROUP) if c in keyed.columns])
    out = keyed.merge(keep, on="_key", how="inner")
    return out if len(out) else None


# ---------------------------------------------------------------- C4 / C5: time to target per pair
def races(trials: pd.DataFrame, curves: pd.DataFrame | None, knn_column: str | None) -> pd.DataFrame:
    """One row per (claim, measure, arm) pair: the arm's and the baseline's epoch at the target, or
    ``never`` (censored), exactly as the claims' C4 (cut) and C5 (gradscale) tests pair them: on the seeds
    every arm shares, on kNN only the settings shown to beat their untrained network, and a pair that fails
    its protocol, manipulation or collapse check is listed with the reason (outcome ``left out``)."""
    columns = ["claim", "measure", "method", "arm", "base", "arm_epoch", "base_epoch", "outcome", "why"]
    c = _of_trials(curves, trials)
    if c is None or schema.INTERVENTION not in trials:
        return pd.DataFrame(columns=columns)
    ctx = Context.build(trials.drop(columns=[schema.GROUP], errors="ignore"), c.drop(columns=["_key"]))
    rows = []
    for claim, kind in (("C4", "cut"), ("C5", "gradscale")):
        for measure, column, falling in (("loss", schema.LOSS, True), ("knn", knn_column, False)):
            if not column or column not in c.columns:
                continue
            pool = ctx.learning[0] if measure == "knn" else ctx.trials
            arms = pool[schema.INTERVENTION].map(lambda v, kind=kind: compare.arm_kinds(v) == {kind})
            pairs, _ = compare.baseline_pairs(pool, arms, compare.is_baseline(pool))
            values = ctx.curve_values(column)
            for arm_label, base_label in pairs.itertuples(index=False):  # one race per pair, as the claims run
                arm, base = pool.loc[arm_label].to_dict(), pool.loc[base_label].to_dict()
                failed = checks.pair_checks(ctx, arm, base, kind, column)
                race = compare.race_of(
                    values.get(arm["_key"], compare.NO_CURVE), values.get(base["_key"], compare.NO_CURVE), falling
                )
                outcome = (
                    "left out"
                    if failed
                    else "not observable"
                    if not race.observable
                    else {1: "faster", -1: "slower", 0: "tied"}[race.direction] + (" (never)" if race.censored else "")
                )
                rows.append(
                    {
                        "claim": claim,
                        "measure": measure,
                        "method": str(arm[schema.METHOD]),
                        "arm": compare.label(arm),
                        "base": compare.label(base),
                        "arm_epoch": race.arm_epoch,
                        "base_epoch": race.base_epoch,
                        "outcome": outcome,
                        "why": failed or race.why,
                    }
                )
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------- C2b / C3: the mechanism checks
def mechanism_points(curves: pd.DataFrame | None, trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (trial, evaluation, check): the C2b identity's deviation, and C3's measured and placebo
    slopes minus the prediction (-2, p - 2 under GradScale p), as the claims read them."""
    columns = ["method", "trial", "epoch", "check", "value"]
    c = _of_trials(curves, trials)
    if c is None or schema.GRAD_IDENTITY_DEV not in c.columns:
        return pd.DataFrame(columns=columns)
    interventions = trials.assign(_key=trial_key(trials)).set_index("_key")[schema.INTERVENTION]
    theory = c["_key"].map(interventions).map(lambda v: theory_slope(compare.intervention_of(v).gradscale))
    frames = []
    for check, values in (
        ("C2b: relative deviation", num(c, schema.GRAD_IDENTITY_DEV)),
        ("C3: measured - predicted slope", num(c, schema.STEP_TURN_SLOPE) - theory),
        ("C3: placebo - predicted slope", num(c, schema.STEP_TURN_PLACEBO) - theory),
    ):
        frames.append(
            pd.DataFrame(
                {
                    "method": c[schema.METHOD].astype(str),
                    "trial": c["_key"],
                    "epoch": num(c, schema.EPOCH),
                    "check": check,
                    "value": values,
                }
            ).dropna(subset=["value"])
        )
    return pd.concat(frames, ignore_index=True)[columns]


# ---------------------------------------------------------------- C7: kNN accuracy per norm bin
def norm_bin_accuracy(norm_bins: pd.DataFrame | None, trials: pd.DataFrame) -> pd.DataFrame:
    """Per (vector, binning, method, bin): the share of correct kNN predictions among every sample in that
    bin over the method's trials (each trial's accuracy weighted by its count), the samples and the trials.
    Bins with fewer than `MIN_BIN_SAMPLES` samples are left out: a bin of one or two samples is 0 % or 100 %
    by chance, and drawn as a jump it reads as a finding."""
    columns = ["vector", "binning", "method", "bin", "accuracy", "samples", "trials"]
    b = _of_trials(norm_bins, trials)
    if b is None:
        return pd.DataFrame(columns=columns)
    count = pd.to_numeric(b["count"], errors="coerce").fillna(0.0)
    accuracy = pd.to_numeric(b["accuracy"], errors="coerce")
    known = accuracy.notna() & (count > 0)
    b = b.assign(
        binning=b[schema.BINNING].fillna("decile") if schema.BINNING in b else "decile",
        _correct=(accuracy * count).where(known, 0.0),
        _samples=count.where(known, 0.0),
    )
    out = (
        b.groupby([schema.BIN_VECTOR, "binning", schema.METHOD, schema.BIN], sort=True)
        .agg(correct=("_correct", "sum"), samples=("_samples", "sum"), trials=("_key", "nunique"))
        .reset_index()
        .rename(columns={schema.BIN_VECTOR: "vector", schema.BIN: "bin"})
    )
    out = out[out["samples"] >= MIN_BIN_SAMPLES]
    out = out.assign(accuracy=out["correct"] / out["samples"], samples=out["samples"].round().astype(int))
    return out[columns].reset_index(drop=True)


# ---------------------------------------------------------------- C8: OOD norm histograms
def ood_histograms(eval_norms: pd.DataFrame | None, trials: pd.DataFrame, labels: dict[int, str]) -> pd.DataFrame:
    """Per trial with OOD samples (one panel per seed: seeds of one setting can sit at norms far apart, so a
    pooled histogram shows the seeds, not the splits): the share and count of its test and OOD embedding
    norms per bin. Bins are log-spaced over the trial's `OOD_CLIP` percentiles of both splits together;
    samples outside go into the end bins (``clipped`` counts them), so one trial's long tail does not
    squeeze every other sample into a single bar. Pre-binned: no sample goes into the page."""
    columns = ["group", "label", "seed", "split", "lo", "hi", "count", "share", "n", "clipped"]
    e = _of_trials(eval_norms, trials)
    if e is None:
        return pd.DataFrame(columns=columns)
    e = e[(e["vector"] == EMBEDDING) & e["split"].isin(["test", "ood"])]
    norms = pd.to_numeric(e["norm"], errors="coerce")
    e = e.assign(norm=norms)[np.isfinite(norms)]
    seeds = trial_seed_labels(trials)
    rows = []
    for (group, key), sub in e.groupby([schema.GROUP, "_key"], sort=True):  # one numpy histogram per trial and split
        if not (sub["split"] == "ood").any():
            continue
        values = sub["norm"].to_numpy(float)
        lo, hi = np.percentile(values, OOD_CLIP)
        if not hi > lo:  # every norm equal: one bin around it
            lo, hi = lo - 0.5 * abs(lo) - 1e-12, hi + 0.5 * abs(hi) + 1e-12
        edges = np.geomspace(lo, hi, OOD_BINS + 1) if lo > 0 else np.linspace(lo, hi, OOD_BINS + 1)
        for split in ("test", "ood"):
            x = sub.loc[sub["split"] == split, "norm"].to_numpy(float)
            if not len(x):
                continue
            counts, _ = np.histogram(np.clip(x, lo, hi), bins=edges)
            clipped = int(((x < lo) | (x > hi)).sum())
            for a, b, c in zip(edges[:-1], edges[1:], counts):
                rows.append(
                    (int(group), labels.get(int(group), str(group)), seeds[key], split, a, b, int(c))
                    + (c / len(x), len(x), clipped)
                )
    return pd.DataFrame(rows, columns=columns)


def trial_seed_labels(trials: pd.DataFrame) -> dict[str, str]:
    """Per trial key, ``seed N`` (``seed N #2`` for a second trial of that seed in its group)."""
    keys = trial_key(trials)
    seed = trials[schema.SEED].map(lambda v: "?" if pd.isna(v) else f"{v:g}" if isinstance(v, float) else str(v))
    nth = seed.groupby([trials[schema.GROUP], seed]).cumcount()
    text = ("seed " + seed).where(nth == 0, "seed " + seed + " #" + (nth + 1).astype(str))
    return dict(zip(keys, text))


# ---------------------------------------------------------------- C9: class norm against class frequency
def class_frequency(class_norms: pd.DataFrame | None, trials: pd.DataFrame) -> pd.DataFrame:
    """Per long-tailed ``none`` trial and class: its training count, its mean test embedding norm and
    ``contrast``, log(norm / the balanced twin's norm of the same class), the claims' C9 pairing."""
    columns = ["method", "trial", "class", "train_count", "norm", "contrast"]
    cn = _of_trials(class_norms, trials)
    if cn is None or schema.IMBALANCE not in trials:
        return pd.DataFrame(columns=columns)
    imbalance = pd.to_numeric(trials[schema.IMBALANCE], errors="coerce")
    none = compare.is_baseline(trials)
    long_tailed, balanced = none & (imbalance > 1), none & ~(imbalance > 1)
    if not long_tailed.any():
        return pd.DataFrame(columns=columns)
    keys = trial_key(trials)
    emb = cn[cn[schema.BIN_VECTOR] == EMBEDDING]
    lt = emb[emb["_key"].isin(set(keys[long_tailed]))]
    out = pd.DataFrame(
        {
            "method": lt[schema.METHOD].astype(str),
            "trial": lt["_key"],
            "class": lt[schema.CLASS],
            "train_count": pd.to_numeric(lt[schema.TRAIN_COUNT], errors="coerce"),
            "norm": pd.to_numeric(lt[schema.CLASS_NORM_MEAN], errors="coerce"),
        }
    )
    pairs, _ = compare.baseline_pairs(trials, long_tailed, balanced, exclude=(schema.IMBALANCE,))
    twin = pd.Series(keys.loc[pairs["base"]].to_numpy(), index=keys.loc[pairs["arm"]].to_numpy())
    base_norm = emb.set_index(["_key", schema.CLASS])[schema.CLASS_NORM_MEAN]
    lookup = pd.MultiIndex.from_arrays([out["trial"].map(twin), out["class"]])
    balanced_norm = pd.to_numeric(base_norm.reindex(lookup), errors="coerce").to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["contrast"] = np.log(out["norm"].to_numpy() / balanced_norm)
    return out[out["norm"] > 0].reset_index(drop=True)


# ---------------------------------------------------------------- a curves column per setting and intervention
def curve_summary(curves: pd.DataFrame | None, trials: pd.DataFrame, board: Leaderboard, column: str) -> pd.DataFrame:
    """Per panel (the board's settings besides method and intervention, then the method), intervention and
    epoch: the mean, std (ddof=1; NaN for one seed) and number of ``column``'s values over the seeds, and
    ``lo``/``hi`` = mean ∓ std. Panels come in order of their settings, then method; ``panel`` names them
    (``byol · dataset=digits, epochs=5``), ``order`` gives their position."""
    columns = ["panel", "order", "method", "intervention", "epoch", "mean", "std", "n", "lo", "hi"]
    c = _of_trials(curves, trials)
    if c is None or column not in c.columns:
        return pd.DataFrame(columns=columns)
    settings = [k for k in board.group_keys if k not in (schema.METHOD, schema.INTERVENTION)]
    info = trials.assign(_key=trial_key(trials)).set_index("_key")
    frame = pd.DataFrame(
        {
            **{k: c["_key"].map(info[k]) for k in settings},
            "method": c[schema.METHOD],
            "intervention": c["_key"].map(info[schema.INTERVENTION]).astype(str),
            "epoch": num(c, schema.EPOCH),
            "value": num(c, column),
        }
    ).dropna(subset=["value", "epoch"])
    if frame.empty:
        return pd.DataFrame(columns=columns)
    panels = settings + ["method"]
    out = (
        frame.groupby([*panels, "intervention", "epoch"], dropna=False, sort=True)["value"]
        .agg(["mean", "std", "count"])
        .reset_index()
        .rename(columns={"count": "n"})
    )
    names = []
    for values in out[panels].itertuples(index=False, name=None):
        shown = ", ".join(f"{k}={text(v)}" for k, v in zip(settings, values) if text(v) != DASH)
        names.append(f"{values[-1]} · {shown}" if shown else str(values[-1]))
    out = out.assign(
        panel=names,
        order=out.groupby(panels, dropna=False, sort=True).ngroup(),  # settings, then method
        method=out["method"].astype(str),
        lo=out["mean"] - out["std"],
        hi=out["mean"] + out["std"],
    )
    return out[columns].reset_index(drop=True)


# ---------------------------------------------------------------- forest: Δ per intervention
def forest_rows(board: Leaderboard, labels: dict[int, str]) -> pd.DataFrame:
    """Per group with a Δ against its baseline: intervention, label (method, dataset, other keys), Δ and
    its 95% interval (accuracies in percentage points, as in the headline)."""
    t, c = board.table, board.metric
    columns = ["intervention", "label", "delta", "lo", "hi", "significant", "group"]
    if schema.delta(c) not in t or schema.INTERVENTION not in t:
        return pd.DataFrame(columns=columns)
    scale = 100.0 if schema.is_accuracy(c) else 1.0
    has = t[schema.delta(c)].notna() & ~t[schema.IS_BASELINE].astype(bool)
    sel = t[has]
    out = pd.DataFrame(
        {
            "intervention": sel[schema.INTERVENTION].astype(str),
            "label": sel[schema.GROUP].map(labels),
            "delta": sel[schema.delta(c)].to_numpy(float) * scale,
            "lo": sel[schema.delta(c, "ci_lo")].to_numpy(float) * scale,
            "hi": sel[schema.delta(c, "ci_hi")].to_numpy(float) * scale,
            "significant": sel[schema.delta(c, "significant")].astype(bool).to_numpy(),
            "group": sel[schema.GROUP].astype(int),
        }
    )
    return out.sort_values(["intervention", "label"], kind="stable").reset_index(drop=True)
