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
from suite.analysis.claims import evidence
from suite.analysis.leaderboard.aggregate import Leaderboard
from suite.results import schema

OOD_BINS = 24
EMBEDDING = "embedding"  # the norm_bins / class_norms / eval_norms name of the `emb` vector


def _key(frame: pd.DataFrame) -> pd.Series:
    """``results_dir/trial_id``: a trial's identity across merged directories (the claims' key)."""
    return frame[schema.RESULTS_DIR].astype(str) + "/" + frame[schema.TRIAL_ID].astype(str)


def _of_trials(table: pd.DataFrame | None, trials: pd.DataFrame) -> pd.DataFrame | None:
    """Rows of ``table`` that belong to ``trials``, with their ``_key``, ``method`` and ``group``."""
    if table is None or table.empty:
        return None
    keyed = table.assign(_key=_key(table))
    keep = trials.assign(_key=_key(trials))[["_key", "method", "group"]]
    keyed = keyed.drop(columns=[c for c in ("method", "group") if c in keyed.columns])
    out = keyed.merge(keep, on="_key", how="inner")
    return out if len(out) else None


# ---------------------------------------------------------------- C2b / C3: log-log with a fitted slope
def _fits(points: pd.DataFrame) -> pd.DataFrame:
    """Per method, the OLS slope of log y on log x over all its points, and the line's two ends."""
    logs = pd.DataFrame({"_key": points["method"], "lx": np.log(points["x"]), "ly": np.log(points["y"])})
    fit = evidence.grouped_slope(logs, "lx", "ly")  # the claims' grouped OLS, grouped by method here
    means = logs.groupby("_key")[["lx", "ly"]].mean()
    fit = fit.join(means)
    fit = fit[np.isfinite(fit["slope"])]
    x0, x1 = points.groupby("method")["x"].min(), points.groupby("method")["x"].max()
    out = pd.DataFrame({"method": fit.index.astype(str), "slope": fit["slope"].to_numpy(), "n": fit["n"].to_numpy()})
    out["x0"], out["x1"] = x0.reindex(fit.index).to_numpy(), x1.reindex(fit.index).to_numpy()
    for end in ("x0", "x1"):  # the line through the means with the fitted slope
        offset = np.log(out[end].to_numpy(float)) - fit["lx"].to_numpy()
        out["y" + end[1]] = np.exp(fit["ly"].to_numpy() + fit["slope"].to_numpy() * offset)
    return out


def loglog(curves: pd.DataFrame | None, trials: pd.DataFrame, x: str, y: str, midpoint: bool = False):
    """(points, fits) of ``y`` against ``x`` over trained epochs (>= 1), positive values only.

    ``midpoint``: x is the mean of this and the previous evaluation's value of the trial (C3: the probe
    norm over the interval the probe moved, as `suite.analysis.claims.evidence.units_c3` defines it)."""
    empty = pd.DataFrame(columns=["method", "x", "y", "epoch", "trial"]), pd.DataFrame()
    c = _of_trials(curves, trials)
    if c is None or x not in c.columns or y not in c.columns:
        return empty
    frame = pd.DataFrame(
        {
            "_key": c["_key"],
            "method": c["method"].astype(str),
            "epoch": pd.to_numeric(c[schema.EPOCH], errors="coerce"),
            "x": pd.to_numeric(c[x], errors="coerce"),
            "y": pd.to_numeric(c[y], errors="coerce"),
        }
    )
    if midpoint:
        frame = frame[frame["x"].notna()].sort_values(["_key", "epoch"], kind="stable")
        frame["x"] = 0.5 * (frame["x"] + frame.groupby("_key")["x"].shift(1))
    frame = frame[(frame["epoch"] >= 1) & (frame["x"] > 0) & (frame["y"] > 0)]
    if frame.empty:
        return empty
    points = frame.rename(columns={"_key": "trial"})[["method", "x", "y", "epoch", "trial"]].reset_index(drop=True)
    return points, _fits(points)


# ---------------------------------------------------------------- C4 / C5: time to target per pair
def races(trials: pd.DataFrame, curves: pd.DataFrame | None, knn_column: str | None) -> pd.DataFrame:
    """One row per (claim, measure, arm) pair: the arm's and the baseline's epoch at the target, or
    ``never`` (censored), exactly as the claims' C4 (cut) and C5 (gradscale) tests pair and race them;
    on kNN only the settings shown to beat their untrained network (the claims' gate)."""
    columns = ["claim", "measure", "method", "arm", "base", "arm_epoch", "base_epoch", "outcome", "why"]
    c = _of_trials(curves, trials)
    if c is None or "intervention" not in trials:
        return pd.DataFrame(columns=columns)
    trials = trials.assign(_key=_key(trials))
    by_trial = compare.curves_by_trial(c, c["_key"])
    empty = c.iloc[0:0]
    k, why_no_k = evidence.primary_knn(trials)
    rows = []
    for claim, kind in (("C4", "cut"), ("C5", "gradscale")):
        for measure, column, falling in (("loss", schema.LOSS, True), ("knn", knn_column, False)):
            if not column or column not in c.columns:
                continue
            pool = evidence.gate(trials, k, why_no_k)[0] if measure == "knn" else trials
            kinds = pool["intervention"].map(compare.arm_kinds)
            arms = kinds.map(lambda found, kind=kind: found == {kind})
            pairs, _ = compare.baseline_pairs(pool, arms, compare.is_baseline(pool))
            for arm_label, base_label in pairs.itertuples(index=False):  # one race per pair, as the claims run
                arm, base = pool.loc[arm_label], pool.loc[base_label]
                arm_curve, base_curve = by_trial.get(arm["_key"], empty), by_trial.get(base["_key"], empty)
                race = compare.race(arm_curve, base_curve, column, falling)
                outcome = (
                    "not observable" if not race.observable else {1: "faster", -1: "slower", 0: "tied"}[race.direction]
                )
                rows.append(
                    {
                        "claim": claim,
                        "measure": measure,
                        "method": str(arm["method"]),
                        "arm": compare.label(arm),
                        "base": compare.label(base),
                        "arm_epoch": race.arm_epoch,
                        "base_epoch": race.base_epoch,
                        "outcome": outcome + (" (never)" if race.censored else ""),
                        "why": race.why,
                    }
                )
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------- C7: kNN accuracy per norm bin
def norm_bin_accuracy(norm_bins: pd.DataFrame | None, trials: pd.DataFrame) -> pd.DataFrame:
    """Mean kNN accuracy per (vector, binning, method, bin) over the trials, with the trial count."""
    b = _of_trials(norm_bins, trials)
    if b is None:
        return pd.DataFrame(columns=["vector", "binning", "method", "bin", "accuracy", "trials"])
    b = b.assign(
        binning=b[schema.BINNING].fillna("decile") if schema.BINNING in b else "decile",
        accuracy=pd.to_numeric(b["accuracy"], errors="coerce"),
    )
    out = (
        b.groupby([schema.BIN_VECTOR, "binning", "method", schema.BIN], sort=True)
        .agg(accuracy=("accuracy", "mean"), trials=("_key", "nunique"))
        .reset_index()
        .rename(columns={schema.BIN_VECTOR: "vector", schema.BIN: "bin"})
    )
    return out[out["accuracy"].notna()]


# ---------------------------------------------------------------- C8: OOD norm histograms
def ood_histograms(eval_norms: pd.DataFrame | None, trials: pd.DataFrame, labels: dict[int, str]) -> pd.DataFrame:
    """Per group whose trials have OOD samples: density histograms of the test and OOD embedding norms
    (seeds pooled, shared bin edges per group), pre-binned so no sample goes into the page."""
    columns = ["group", "label", "split", "lo", "hi", "density", "n"]
    e = _of_trials(eval_norms, trials)
    if e is None:
        return pd.DataFrame(columns=columns)
    e = e[(e["vector"] == EMBEDDING) & e["split"].isin(["test", "ood"])]
    norms = pd.to_numeric(e["norm"], errors="coerce")
    e = e.assign(norm=norms)[np.isfinite(norms)]
    rows = []
    for group, sub in e.groupby("group", sort=True):  # one numpy histogram per group and split
        if not (sub["split"] == "ood").any():
            continue
        edges = np.histogram_bin_edges(sub["norm"].to_numpy(float), bins=OOD_BINS)
        for split in ("test", "ood"):
            values = sub.loc[sub["split"] == split, "norm"].to_numpy(float)
            if not len(values):
                continue
            density, _ = np.histogram(values, bins=edges, density=True)
            for lo, hi, d in zip(edges[:-1], edges[1:], density):
                rows.append((int(group), labels.get(int(group), str(group)), split, lo, hi, d, len(values)))
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------- C9: class norm against class frequency
def class_frequency(class_norms: pd.DataFrame | None, trials: pd.DataFrame) -> pd.DataFrame:
    """Per long-tailed ``none`` trial and class: its training count, its mean test embedding norm and
    ``contrast``, log(norm / the balanced twin's norm of the same class), the claims' C9 pairing."""
    columns = ["method", "trial", "class", "train_count", "norm", "contrast"]
    cn = _of_trials(class_norms, trials)
    if cn is None or "imbalance" not in trials:
        return pd.DataFrame(columns=columns)
    imbalance = pd.to_numeric(trials["imbalance"], errors="coerce")
    none = compare.is_baseline(trials)
    long_tailed, balanced = none & (imbalance > 1), none & ~(imbalance > 1)
    if not long_tailed.any():
        return pd.DataFrame(columns=columns)
    keys = _key(trials)
    emb = cn[cn[schema.BIN_VECTOR] == EMBEDDING]
    lt = emb[emb["_key"].isin(set(keys[long_tailed]))]
    out = pd.DataFrame(
        {
            "method": lt["method"].astype(str),
            "trial": lt["_key"],
            "class": lt[schema.CLASS],
            "train_count": pd.to_numeric(lt[schema.TRAIN_COUNT], errors="coerce"),
            "norm": pd.to_numeric(lt[schema.CLASS_NORM_MEAN], errors="coerce"),
        }
    )
    pairs, _ = compare.baseline_pairs(trials, long_tailed, balanced, exclude=("imbalance",))
    twin = pd.Series(keys.loc[pairs["base"]].to_numpy(), index=keys.loc[pairs["arm"]].to_numpy())
    base_norm = emb.set_index(["_key", schema.CLASS])[schema.CLASS_NORM_MEAN]
    lookup = pd.MultiIndex.from_arrays([out["trial"].map(twin), out["class"]])
    balanced_norm = pd.to_numeric(base_norm.reindex(lookup), errors="coerce").to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["contrast"] = np.log(out["norm"].to_numpy() / balanced_norm)
    return out[out["norm"] > 0].reset_index(drop=True)


# ---------------------------------------------------------------- forest: Δ per intervention
def forest_rows(board: Leaderboard, labels: dict[int, str]) -> pd.DataFrame:
    """Per group with a Δ against its baseline: intervention, label (method, dataset, other keys), Δ and
    its 95% interval (accuracies in percentage points, as in the headline)."""
    t, c = board.table, board.metric
    columns = ["intervention", "label", "delta", "lo", "hi", "significant", "group"]
    if f"delta_{c}" not in t or "intervention" not in t:
        return pd.DataFrame(columns=columns)
    scale = 100.0 if schema.is_accuracy(c) else 1.0
    has = t[f"delta_{c}"].notna() & ~t["is_baseline"].astype(bool)
    sel = t[has]
    out = pd.DataFrame(
        {
            "intervention": sel["intervention"].astype(str),
            "label": sel["group"].map(labels),
            "delta": sel[f"delta_{c}"].to_numpy(float) * scale,
            "lo": sel[f"delta_{c}_ci_lo"].to_numpy(float) * scale,
            "hi": sel[f"delta_{c}_ci_hi"].to_numpy(float) * scale,
            "significant": sel[f"delta_{c}_significant"].astype(bool).to_numpy(),
            "group": sel["group"].astype(int),
        }
    )
    return out.sort_values(["intervention", "label"], kind="stable").reset_index(drop=True)
