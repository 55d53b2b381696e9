"""Leaderboard figures (PNG through matplotlib's Agg canvas, no pyplot state).

Why: the paper's claims are about dynamics (norms grow, large norms slow
convergence) and about what norms encode (confidence, novelty); a table of
final numbers cannot show either. Every function returns a ``Figure`` (or
None when the data is absent) whose ``axes`` are exactly the panels drawn.

Layout: one panel per method and setting (dataset, backbone, ...), one
column per method; one line per intervention, mean over seeds with a ± std
band (no band for a single seed).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from suite.analysis.leaderboard.aggregate import BASELINE, Leaderboard
from suite.analysis.leaderboard.render import label
from suite.analysis.load import TRIAL_KEY, Results, load_eval_norms
from suite.results import schema

PANEL_W, PANEL_H = 4.0, 3.0


def _setting_keys(board: Leaderboard) -> list[str]:
    return [k for k in board.group_keys if k not in ("method", "intervention")]


def _label(keys: list[str], values: tuple) -> str:
    """``key=value`` of the settings that are set (an unset one, NaN, says nothing)."""
    shown = [
        f"{k}={v}"
        for k, v in zip(keys, values)
        if not (v is None or (isinstance(v, float) and np.isnan(v))) and str(v) not in ("nan", "None", "—")
    ]
    return textwrap.fill(", ".join(shown), width=45)


def _with_groups(frame: pd.DataFrame, board: Leaderboard) -> pd.DataFrame:
    """Attach each completed trial's group keys to its rows (failed trials drop out here)."""
    frame = frame.drop(columns=[c for c in frame.columns if c in board.trials.columns and c not in TRIAL_KEY])
    return frame.merge(board.trials, on=TRIAL_KEY, how="inner")


def _grid(positions: list[int], ncols: int) -> tuple[Figure, list]:
    """Axes only at the given 0-based grid positions, so ``fig.axes`` are exactly the panels."""
    ncols = min(ncols, len(positions))
    nrows = max(positions) // ncols + 1
    fig = Figure(figsize=(PANEL_W * ncols, PANEL_H * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(nrows, ncols, p + 1) for p in positions]


def _intervention_order(values) -> list:
    return sorted(set(values), key=lambda v: (v != BASELINE, str(v)))


def _line_panels(
    frame: pd.DataFrame,
    x: str,
    y: str,
    row_keys: list[str],
    ylabel: str,
    xlabel: str,
    log: bool = False,
    scale: float = 1.0,
) -> Figure | None:
    """Panels (row settings × methods), lines per intervention: mean over seeds, ± std band."""
    frame = frame.dropna(subset=[y])
    if frame.empty:
        return None
    groups = list(frame.groupby(row_keys + ["method"], dropna=False, sort=True))
    # Sorted by setting then method, packed row-major with one column per method: a full
    # cross of settings x methods gives the aligned grid, sparse sweeps leave no holes.
    n_methods = len({values[-1] for values, _ in groups})
    fig, axes = _grid(list(range(len(groups))), ncols=n_methods)
    colors = {iv: f"C{i}" for i, iv in enumerate(_intervention_order(frame["intervention"]))}
    for ax, (values, sub) in zip(axes, groups):
        row, method = values[:-1], values[-1]
        sub = (
            sub.assign(**{y: sub[y] * scale})
            .groupby(["intervention", x], dropna=False)[y]
            .agg(["mean", "std"])
            .reset_index()
        )
        for iv in _intervention_order(sub["intervention"]):
            line = sub[sub["intervention"] == iv].sort_values(x)
            ax.plot(line[x], line["mean"], marker="o", ms=3, color=colors[iv], label=str(iv))
            ax.fill_between(
                line[x],
                line["mean"] - line["std"],
                line["mean"] + line["std"],
                color=colors[iv],
                alpha=0.2,
                linewidth=0,
            )
        ax.set_title(f"{method}\n{_label(row_keys, row)}" if row_keys else str(method), fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if log:  # norms span orders of magnitude across interventions
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7, title="intervention", title_fontsize=7)
    return fig


def plot_curves(
    curves: pd.DataFrame | None, board: Leaderboard, column: str, ylabel: str, log: bool = False, scale: float = 1.0
) -> Figure | None:
    """``column`` (e.g. knn_top1_k200, emb_norm_mean) against epoch."""
    if curves is None or column not in curves.columns:
        return None
    return _line_panels(_with_groups(curves, board), "epoch", column, _setting_keys(board), ylabel, "epoch", log, scale)


def plot_norm_bins(norm_bins: pd.DataFrame | None, board: Leaderboard) -> Figure | None:
    """Accuracy per norm bin (bin 0 = smallest norms), one row of panels per vector and binning
    (equal-count deciles, and the paper's equal-width bins of the min-max-normalized norm).
    Tables written before the ``binning`` column existed hold deciles only."""
    if norm_bins is None:
        return None
    frame = _with_groups(norm_bins, board)
    frame = frame.assign(accuracy=frame["accuracy"] * 100)
    if "binning" not in frame.columns:
        frame = frame.assign(binning="decile")
    frame["binning"] = frame["binning"].fillna("decile")
    return _line_panels(
        frame,
        "bin",
        "accuracy",
        _setting_keys(board) + ["vector", "binning"],
        "kNN accuracy in bin (%)",
        "norm bin (small → large)",
    )


def plot_ood_histograms(
    eval_norms: pd.DataFrame | None, board: Leaderboard, vector: str = "embedding", max_cols: int = 4
) -> Figure | None:
    """Norm histograms of test vs OOD samples, one panel per group with OOD data (seeds pooled)."""
    if eval_norms is None:
        return None
    frame = _with_groups(eval_norms[eval_norms["vector"] == vector], board)
    with_ood = frame.groupby(TRIAL_KEY)["split"].transform(lambda s: (s == "ood").any())
    frame = frame[with_ood & frame["split"].isin(["test", "ood"])]
    if frame.empty:
        return None
    keys = board.group_keys
    groups = [(v if isinstance(v, tuple) else (v,), sub) for v, sub in frame.groupby(keys, dropna=False, sort=True)]
    groups.sort(key=lambda g: [(k == "intervention" and v != BASELINE, str(v)) for k, v in zip(keys, g[0])])
    fig, axes = _grid(list(range(len(groups))), ncols=min(max_cols, len(groups)))
    for ax, (values, sub) in zip(axes, groups):
        edges = np.histogram_bin_edges(sub["norm"].to_numpy(dtype=float), bins=30)
        for split, color in (("test", "C0"), ("ood", "C3")):
            norms = sub.loc[sub["split"] == split, "norm"].to_numpy(dtype=float)
            ax.hist(norms, bins=edges, density=True, alpha=0.5, color=color, label=f"{split} (n={len(norms)})")
        named = dict(zip(keys, values))
        rest = [k for k in keys if k not in ("method", "intervention")]
        ax.set_title(
            f"{named.get('method')} / {named.get('intervention')}\n{_label(rest, tuple(named[k] for k in rest))}",
            fontsize=9,
        )
        ax.set_xlabel(f"{vector} norm")
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
    return fig


def build_figures(results: Results, board: Leaderboard) -> dict[str, Figure]:
    """Every figure the data supports, by file stem."""
    curve = board.knn_column or board.metric
    candidates = {
        f"{curve}_vs_epoch": plot_curves(
            results.curves, board, curve, label(curve), scale=100.0 if schema.is_accuracy(curve) else 1.0
        ),
        "loss_vs_epoch": plot_curves(results.curves, board, schema.LOSS, "SSL loss"),
        "emb_norm_vs_epoch": plot_curves(
            results.curves, board, schema.train_norm("emb", "mean"), "mean embedding norm (log)", log=True
        ),
        "accuracy_per_norm_bin": plot_norm_bins(results.norm_bins, board),
        "ood_norm_histograms": plot_ood_histograms(load_eval_norms(board.trials), board),
    }
    return {name: fig for name, fig in candidates.items() if fig is not None}


def save_figures(figures: dict[str, Figure], out_dir: Path, dpi: int = 100) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, fig in figures.items():
        path = out_dir / f"{name}.png"
        fig.savefig(path, format="png", dpi=dpi)
        paths[name] = path
    return paths
