"""What `normbench simulate` writes: CSV tables, PNG figures and the printed summary.

Kept apart from `dynamics` so the science stays a set of pure functions and the
figures can change without touching it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from suite.core.files import atomic_path
from suite.core.tables import text_table
from suite.results.store import atomic_write_frame
from suite.tools.simulate.dynamics import NOT_CONVERGED

STEPS_FILE, EXPONENTS_FILE, CLASSES_FILE, CLASS_SEEDS_FILE = (
    "steps_vs_norm",
    "exponents",
    "norms_by_class",
    "norms_by_class_seeds",
)


def class_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per class: mean over seeds of the class's mean norm, its std over seeds, draws per sample,
    and the norm relative to the most frequent class."""
    out = frame.groupby(["class_index", "frequency"], as_index=False).agg(
        mean_norm=("mean_norm", "mean"),
        seed_std=("mean_norm", "std"),
        draws_per_sample=("draws_per_sample", "mean"),
        seeds=("seed", "nunique"),
    )
    top = out.loc[out["frequency"].idxmax(), "mean_norm"]
    out["norm_vs_most_frequent"] = out["mean_norm"] / top
    return out


def _steps_cell(values: pd.Series, max_steps: int) -> str:
    if (values == NOT_CONVERGED).any():
        return f">{max_steps} (not conv.)"
    return f"{values.mean():.0f}"


def format_tables(steps: pd.DataFrame, exps: pd.DataFrame, classes: pd.DataFrame) -> str:
    """The summary printed after a run: steps per radius and variant, fitted exponents, class norms."""
    max_steps = int(steps["max_steps"].iloc[0])
    variants = list(dict.fromkeys(steps["variant"]))
    seeds = steps["seed"].nunique()
    header = ["r"] + variants
    body = [
        [f"{r:g}"]
        + [_steps_cell(steps[(steps["variant"] == v) & (steps["radius"] == r)]["steps"], max_steps) for v in variants]
        for r in sorted(steps["radius"].unique())
    ]
    first = steps.iloc[0]
    lines = [
        f"(a) SGD steps until mean cos > {first['threshold']:g}: n={first['n']} pairs, d={first['dim']}, "
        f"lr={first['lr']:g} on the mean loss, mean over {seeds} seed(s)"
    ]
    lines += _table(header, body)
    lines.append("")
    lines.append("fitted exponent a (steps ∝ r^a, least squares in log-log; theory: 2 - p for GradScale p)")
    lines += _table(
        ["variant", "a (pooled)", "a per seed (min..max)", "not converged"],
        [
            [
                row.variant,
                f"{row.exponent:.3f}",
                f"{row.exponent_seed_min:.3f}..{row.exponent_seed_max:.3f}",
                f"{row.not_converged}/{row.runs}",
            ]
            for row in exps.itertuples()
        ],
    )
    lines.append("")
    lines.append("(b) final embedding norm per class (NT-Xent on free embeddings, start norm 1), mean over seeds")
    lines += _table(
        ["class", "frequency", "mean norm", "± std over seeds", "draws/sample", "vs most frequent"],
        [
            [
                str(row.class_index),
                f"{row.frequency:g}",
                f"{row.mean_norm:.4f}",
                "—" if math.isnan(row.seed_std) else f"{row.seed_std:.4f}",
                f"{row.draws_per_sample:.1f}",
                f"{row.norm_vs_most_frequent:.3f}",
            ]
            for row in classes.itertuples()
        ],
    )
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return text_table(header, rows, right=range(len(header))).split("\n")


def steps_figure(steps: pd.DataFrame, exps: pd.DataFrame) -> Figure:
    """Log-log steps vs initial norm, one line per variant (mean over seeds), seeds as dots."""
    fig = Figure(figsize=(6.0, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    slopes = dict(zip(exps["variant"], exps["exponent"]))
    for variant, group in steps.groupby("variant", sort=False):
        ok = group[group["converged"]]
        mean = ok.groupby("radius")["steps"].mean()
        (line,) = ax.plot(
            mean.index, mean.values, marker="o", label=f"{variant} (a = {slopes.get(variant, math.nan):.2f})"
        )
        ax.scatter(ok["radius"], ok["steps"], s=8, color=line.get_color(), alpha=0.5)
        failed = group[~group["converged"]]
        if len(failed):
            ax.scatter(failed["radius"], failed["max_steps"], marker="x", color=line.get_color())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("initial norm r")
    ax.set_ylabel("SGD steps to mean cos > threshold")
    ax.set_title("Steps to converge vs initial embedding norm (x: did not converge)", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def classes_figure(per_seed: pd.DataFrame) -> Figure:
    """Final norm per class frequency: bars = mean over seeds, dots = each seed."""
    fig = Figure(figsize=(4.5, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    summary = class_summary(per_seed)
    positions = np.arange(len(summary))
    ax.bar(positions, summary["mean_norm"], color="tab:blue", alpha=0.6)
    for pos, freq in zip(positions, summary["frequency"]):
        values = per_seed[per_seed["frequency"] == freq]["mean_norm"]
        ax.scatter(np.full(len(values), pos), values, color="black", s=10)
    ax.set_xticks(positions, [f"{f:g}" for f in summary["frequency"]])
    ax.set_xlabel("relative class frequency")
    ax.set_ylabel("final mean embedding norm")
    ax.set_ylim(bottom=min(1.0, float(per_seed["mean_norm"].min())) * 0.95)
    ax.set_title("Norms vs class frequency (start norm 1)", fontsize=9)
    return fig


def write_outputs(steps: pd.DataFrame, exps: pd.DataFrame, class_seeds: pd.DataFrame, out: Path) -> list[Path]:
    """CSV tables and PNG figures under ``out``, each written atomically; returns the paths."""
    out = Path(out)
    paths = []
    for frame, stem in (
        (steps, STEPS_FILE),
        (exps, EXPONENTS_FILE),
        (class_summary(class_seeds), CLASSES_FILE),
        (class_seeds, CLASS_SEEDS_FILE),
    ):
        atomic_write_frame(frame, out / stem, formats=("csv",))
        paths.append(out / f"{stem}.csv")
    for fig, stem in ((steps_figure(steps, exps), STEPS_FILE), (classes_figure(class_seeds), CLASSES_FILE)):
        path = out / f"{stem}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        paths.append(path)
    return paths
