"""What `normbench simulate` writes: CSV tables, PNG figures (Altair specs rendered like the report's) and
the printed summary.

Kept apart from `dynamics` so the science stays a set of pure functions and the
figures can change without touching it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from suite.analysis.report.export import save_figures
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


def steps_figure(steps: pd.DataFrame, exps: pd.DataFrame) -> dict:
    """Log-log steps vs initial norm, one line per variant (mean over seeds), seeds as dots, runs that did
    not converge as crosses at the step limit; a Vega-Lite spec (the report's figure stack)."""
    import altair as alt

    slopes = dict(zip(exps["variant"], exps["exponent"]))
    frame = steps.assign(
        label=[f"{v} (a = {slopes.get(v, math.nan):.2f})" for v in steps["variant"]],
        y=np.where(steps["converged"], steps["steps"], steps["max_steps"]),
    )[["label", "radius", "y", "converged"]]
    order = list(dict.fromkeys(frame["label"]))
    ok = frame[frame["converged"]]
    mean = ok.groupby(["label", "radius"], sort=False, as_index=False)["y"].mean()
    x = alt.X("radius:Q", scale=alt.Scale(type="log"), title="initial norm r")
    y = alt.Y("y:Q", scale=alt.Scale(type="log"), title="SGD steps to mean cos > threshold")
    colour = alt.Color("label:N", sort=order, title="variant (fitted exponent a)")
    layers = [
        alt.Chart(mean).mark_line(point=True).encode(x=x, y=y, color=colour),
        alt.Chart(ok).mark_circle(size=14, opacity=0.5).encode(x=x, y=y, color=colour),
    ]
    failed = frame[~frame["converged"]]
    if len(failed):
        layers.append(alt.Chart(failed).mark_point(shape="cross", size=40).encode(x=x, y=y, color=colour))
    title = "Steps to converge vs initial embedding norm (x: did not converge)"
    return alt.layer(*layers).properties(width=420, height=300, title=title).to_dict()


def classes_figure(per_seed: pd.DataFrame) -> dict:
    """Final norm per class frequency: bars = mean over seeds, dots = each seed; a Vega-Lite spec."""
    import altair as alt

    summary = class_summary(per_seed)
    order = [f"{f:g}" for f in summary["frequency"]]
    bars = summary.assign(freq=order)[["freq", "mean_norm"]]
    dots = per_seed.assign(freq=[f"{f:g}" for f in per_seed["frequency"]])[["freq", "mean_norm"]]
    low = min(1.0, float(per_seed["mean_norm"].min())) * 0.95
    x = alt.X("freq:N", sort=order, title="relative class frequency", axis=alt.Axis(labelAngle=0))
    y = alt.Y("mean_norm:Q", scale=alt.Scale(domainMin=low, zero=False), title="final mean embedding norm")
    return (
        alt.layer(
            alt.Chart(bars).mark_bar(opacity=0.6, clip=True).encode(x=x, y=y),
            alt.Chart(dots).mark_circle(size=20, color="black").encode(x=x, y=y),
        )
        .properties(width=300, height=240, title="Norms vs class frequency (start norm 1)")
        .to_dict()
    )


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
    figures = {STEPS_FILE: steps_figure(steps, exps), CLASSES_FILE: classes_figure(class_seeds)}
    paths += save_figures(figures, out).values()  # the report's renderer: one figure stack
    return paths
