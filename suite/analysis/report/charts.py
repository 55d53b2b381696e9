"""Every chart of the leaderboard and the report, as Vega-Lite specs written by Altair (``chart.to_dict()``): the report
page renders them in the browser by vega-embed from the one inlined copy of the library, and the
leaderboard saves some as PNG files through vl-convert (`suite.analysis.report.export`).

Why Altair: a well-kept library that writes standalone, interactive Vega-Lite, so
the page draws crisp, zoomable charts with tooltips and needs no server, and the
same spec renders offline to PNG or SVG for a paper. Data is
inlined columnar (one array per field, expanded in the browser by Vega-Lite's
``flatten`` transform) so the page stays small; the detail pane's spec is a
template with a named data source the page's script fills for the clicked row.
Each builder returns None when it has nothing to draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd

from suite.analysis.compare import BASELINE
from suite.analysis.leaderboard.render import label as column_label
from suite.analysis.report.data import rounded
from suite.results import schema

CURVE_DATA = "curve"  # the detail template's named data source, filled by report.js
PANEL_W, PANEL_H = 230, 150
METHOD_SCHEME = "category10"
EPOCH_AXIS = {"tickMinStep": 1, "format": "d"}  # epochs are whole numbers: no 0.5 ticks, no "1.0" labels
ROLES = ("this group", "none baseline")  # the detail pane's curves: the group's trials, their paired baselines


@dataclass(frozen=True)
class Panel:
    """One chart of the detail pane: which curves columns it draws (each a named series)."""

    id: str
    title: str
    series: tuple[tuple[str, str], ...]  # (curves column, series name)
    log: bool = False
    percent: bool = False
    untrained: bool = False  # some series has epoch-0 values: mark them


def detail_panels(knn_column: str | None, present: Sequence[str], at_epoch0: Sequence[str] = ()) -> list[Panel]:
    """The detail pane's panels whose columns the curves table has: loss, kNN, embedding norm (train
    batches; test set, whose epoch 0 is the untrained network), gradient, probe angle. One series per
    panel, so a line's dash is free to mark the baseline. ``at_epoch0``: the columns with values at
    epoch 0 (training-batch columns have none)."""
    candidates = [
        Panel("loss", "SSL loss", ((schema.LOSS, "train"),)),
        Panel("knn", column_label(knn_column or "") or "kNN", ((knn_column or "", "test"),), percent=True),
        Panel("norm", "embedding norm, train batches (log)", ((schema.train_norm("emb", "mean"), "train"),), log=True),
        Panel(
            "testnorm",
            "embedding norm, test set (log)",
            ((schema.eval_norm("test", "emb", "mean"), "test set"),),
            log=True,
        ),
        Panel("grad", "‖dL/dz‖ at the embedding (log)", ((schema.GRAD_NORM, "train"),), log=True),
        Panel("angle", "probe angle change (log)", ((schema.PROBE_ANGLE, "probe"),), log=True),
    ]
    out = []
    for panel in candidates:
        series = tuple(s for s in panel.series if s[0] and s[0] in present)
        if series:
            untrained = any(column in at_epoch0 for column, _ in series)
            out.append(Panel(panel.id, panel.title, series, panel.log, panel.percent, untrained))
    return out


def vegalite_version() -> str | None:
    """The Vega-Lite version (major.minor) Altair writes its specs for, where vl-convert bundles it (None:
    vl-convert's default); the page's inlined library and the static exports both use it."""
    import vl_convert

    version = ".".join(alt.VEGALITE_VERSION.split(".")[:2])
    return version if version in vl_convert.get_vegalite_versions() else None


def _inline(frame: pd.DataFrame, name: str = "values") -> tuple[alt.NamedData, list[str], dict[str, list]]:
    """A frame as one columnar record (expanded by ``flatten``), far smaller than one object per row:
    (the named data a chart reads, its fields, the spec's ``datasets`` entry that `_spec` adds)."""
    values: dict[str, list] = {}
    for column_name in frame.columns:
        column = frame[column_name]
        if pd.api.types.is_bool_dtype(column):
            values[column_name] = [bool(v) for v in column]
        elif pd.api.types.is_integer_dtype(column):
            values[column_name] = [int(v) for v in column]
        elif pd.api.types.is_numeric_dtype(column):
            values[column_name] = rounded(column)
        else:
            values[column_name] = [None if pd.isna(v) else str(v) for v in column]
    return alt.NamedData(name=name), list(values), {name: [values]}


def _spec(chart: alt.TopLevelMixin, *datasets: dict[str, list]) -> dict:
    """``chart.to_dict()``, the data added afterwards: Altair would walk and validate every value (1 s a page)."""
    spec = chart.to_dict()
    spec.setdefault("datasets", {})
    for entry in datasets:
        spec["datasets"].update(entry)
    return spec


def _methods(methods: Sequence[str]) -> alt.Scale:
    """One colour per method on every chart (a fixed domain, so byol is the same colour everywhere)."""
    return alt.Scale(domain=list(methods), scheme=METHOD_SCHEME)


def detail_spec(panels: Sequence[Panel]) -> dict | None:
    """The detail pane's template: one chart per panel, one line per trial (seed), the paired ``none``
    trial of the same seed dashed and lighter in the same colour, the untrained network (epoch 0) of the
    group's own trials as a black diamond. Rows come from report.js as ``{p, s, seed, role, epoch, v}``."""
    if not panels:
        return None
    charts = []
    for panel in panels:
        base = alt.Chart(alt.NamedData(name=CURVE_DATA)).transform_filter(alt.datum.p == panel.id)
        if panel.log:
            base = base.transform_filter(alt.datum.v > 0)
        y = alt.Y(
            "v:Q",
            title=None,
            scale=alt.Scale(type="log") if panel.log else alt.Scale(zero=False),
            axis=alt.Axis(format=".0%") if panel.percent else alt.Axis(),
        )
        x = alt.X("epoch:Q", title="epoch", axis=alt.Axis(**EPOCH_AXIS))
        tip = [
            alt.Tooltip("seed:N", title="trial"),
            alt.Tooltip("role:N", title="curve"),
            alt.Tooltip("s:N", title="series"),
            alt.Tooltip("epoch:Q", format="d"),
            alt.Tooltip("v:Q", title="value", format=".1%" if panel.percent else ".4g"),
        ]
        line = base.mark_line(point=alt.OverlayMarkDef(size=14), strokeWidth=1.5).encode(
            x=x,
            y=y,
            color=alt.Color("seed:N", title="trial"),
            strokeDash=alt.StrokeDash(
                "role:N",
                title="curve",
                scale=alt.Scale(domain=list(ROLES), range=[[1, 0], [5, 3]]),
                legend=alt.Legend(symbolType="stroke", symbolStrokeWidth=2),
            ),
            opacity=alt.condition(alt.datum.role == ROLES[1], alt.value(0.45), alt.value(1.0)),
            tooltip=tip,
        )
        layers = [line]
        if panel.untrained:  # only where epoch 0 exists: an empty layer has no extent to draw
            layers.append(
                base.transform_filter((alt.datum.epoch == 0) & (alt.datum.role == ROLES[0]))
                .mark_point(shape="diamond", size=110, filled=True, color="black")
                .encode(x=x, y=y, tooltip=tip)
            )
        charts.append(alt.layer(*layers).properties(width=PANEL_W, height=PANEL_H, title=panel.title))
    return alt.concat(*charts, columns=3).to_dict()


def curves_spec(summary: pd.DataFrame, y_title: str, log: bool = False, percent: bool = False) -> dict | None:
    """A curves column against epoch (``summary`` of `plotdata.curve_summary`): one panel per setting and
    method (a column per method), one line per intervention (``none`` first, one colour each on every
    panel), the mean over seeds with a band of ± one std (none for one seed); ``log``: a log axis, as
    norms span decades across interventions; ``percent``: fractions shown in %."""
    if summary.empty:
        return None
    frame = summary[["panel", "intervention", "epoch", "mean", "std", "n", "lo", "hi"]]
    if log:  # a log axis has no place for a band's end at or below 0
        frame = frame.assign(lo=frame["lo"].where(frame["lo"] > 0))
    data, fields, values = _inline(frame)
    interventions = sorted(set(frame["intervention"]), key=lambda v: (v != BASELINE, v))
    panels = list(dict.fromkeys(summary.sort_values("order", kind="stable")["panel"]))
    scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
    axis = alt.Axis(format=".0%") if percent else alt.Axis()
    x = alt.X("epoch:Q", title="epoch", axis=alt.Axis(**EPOCH_AXIS))
    colors = alt.Scale(domain=interventions, scheme=METHOD_SCHEME)
    legend = alt.Legend(symbolType="stroke", symbolStrokeWidth=2, symbolOpacity=1)  # lines, not the bands
    number = ".1%" if percent else ".4g"
    band = (
        alt.Chart()
        .transform_filter("isValid(datum.lo) && isValid(datum.hi)")
        .mark_area(opacity=0.2)
        .encode(
            x=x,
            y=alt.Y("lo:Q", scale=scale, axis=axis, title=y_title),
            y2="hi:Q",
            color=alt.Color("intervention:N", scale=colors, legend=legend),
        )
    )
    line = (
        alt.Chart()
        .mark_line(point=alt.OverlayMarkDef(size=14), strokeWidth=1.5)
        .encode(
            x=x,
            y=alt.Y("mean:Q", scale=scale, axis=axis, title=y_title),
            color=alt.Color("intervention:N", scale=colors, legend=legend),
            tooltip=[
                "intervention:N",
                alt.Tooltip("epoch:Q", format="d"),
                alt.Tooltip("mean:Q", format=number),
                alt.Tooltip("std:Q", format=number),
                alt.Tooltip("n:Q", title="seeds"),
            ],
        )
    )
    chart = (
        alt.layer(band, line)
        .properties(width=PANEL_W, height=PANEL_H)
        .facet(
            facet=alt.Facet("panel:N", sort=panels, title=None, header=alt.Header(labelFontSize=11)),
            columns=min(summary["method"].nunique(), len(panels)),
            data=data,
        )
        .transform_flatten(fields)
        .resolve_scale(y="independent")
    )
    return _spec(chart, values)


def forest_spec(rows: pd.DataFrame, metric: str) -> dict | None:
    """Per intervention (one panel each), Δ of the metric against ``none`` with its 95% interval, one
    line per method and dataset; filled: the interval excludes 0."""
    if rows.empty:
        return None
    unit = " (pp)" if schema.is_accuracy(metric) else ""
    data, fields, values = _inline(rows[["intervention", "label", "delta", "lo", "hi", "significant"]])
    ends = np.r_[rows["delta"], rows["lo"], rows["hi"], 0.0].astype(float)
    lo, hi = np.nanmin(ends), np.nanmax(ends)
    pad = 0.05 * (hi - lo) or 1.0
    # a fixed domain, shared by the panels: no extent computed over an intervention's empty intervals
    domain = alt.Scale(domain=[float(lo - pad), float(hi + pad)])
    x = alt.X("delta:Q", title=f"Δ {column_label(metric).replace(' (%)', '')} vs none{unit}", scale=domain)
    y = alt.Y("label:N", title=None, sort=None)
    tip = [
        alt.Tooltip("label:N", title="group"),
        alt.Tooltip("delta:Q", title="Δ", format="+.2f"),
        alt.Tooltip("lo:Q", title="95% lo", format="+.2f"),
        alt.Tooltip("hi:Q", title="95% hi", format="+.2f"),
    ]
    panels = []
    for intervention in sorted(rows["intervention"].unique()):  # one panel per intervention, a shared x axis
        base = alt.Chart().transform_filter(alt.datum.intervention == intervention)
        interval = (  # one seed or no spread: no interval to draw
            base.transform_filter("isValid(datum.lo) && isValid(datum.hi)")
            .mark_rule(strokeWidth=2)
            .encode(x=alt.X("lo:Q", scale=domain), x2="hi:Q", y=y)
        )
        point = base.mark_point(size=60, filled=True).encode(
            x=x,
            y=y,
            shape=alt.Shape("significant:N", title="interval excludes 0"),
            color=alt.Color("significant:N", title="interval excludes 0"),
            tooltip=tip,
        )
        zero = base.mark_rule(color="#888", strokeDash=[4, 3]).encode(x=alt.datum(0))
        title = alt.TitleParams(str(intervention), anchor="start", fontSize=12)
        panels.append(alt.layer(zero, interval, point).properties(width=420, height=alt.Step(18), title=title))
    chart = alt.vconcat(*panels, data=data).transform_flatten(fields).resolve_scale(x="shared")
    return _spec(chart, values)


def mechanism_spec(
    points: pd.DataFrame, methods: Sequence[str], checks: Sequence[str], y_title: str, tolerance: float, log: bool
) -> dict | None:
    """A mechanism check per trial and evaluation (``points`` of `plotdata.mechanism_points`, the rows of
    ``checks``), one column of points per method, with the tolerance the claim judges with: a rule at it
    (``log``: deviations on a log axis) or a band of +-tolerance around 0 (differences from the prediction)."""
    shown = points[points["check"].isin(checks)]
    if shown.empty:
        return None
    frame = shown[["method", "check", "value", "epoch"]].copy()
    if log:
        frame["value"] = frame["value"].clip(lower=1e-16)  # an exact 0 sits at the axis floor
    data, fields, values = _inline(frame, "checks")
    y = alt.Y("value:Q", title=y_title, scale=alt.Scale(type="log") if log else alt.Scale(zero=False))
    dots = (
        alt.Chart(data)
        .transform_flatten(fields)
        .mark_point(filled=True, opacity=0.6, size=28)
        .encode(
            x=alt.X("method:N", title=None, scale=alt.Scale(domain=list(methods))),
            xOffset=alt.XOffset("check:N"),
            y=y,
            color=alt.Color("check:N", title=None),
            tooltip=["method:N", "check:N", alt.Tooltip("epoch:Q", format="d"), alt.Tooltip("value:Q", format=".3g")],
        )
    )
    if log:
        guide = alt.Chart(pd.DataFrame({"y": [tolerance]})).mark_rule(color="#b00", strokeDash=[4, 3]).encode(y="y:Q")
    else:
        band = pd.DataFrame({"lo": [-tolerance], "hi": [tolerance]})
        guide = alt.Chart(band).mark_rect(color="#2a2", opacity=0.15).encode(y="lo:Q", y2="hi:Q")
    chart = alt.layer(guide, dots).properties(width=460, height=260)
    return _spec(chart, values)


def _epoch_ticks(last: int) -> list[int]:
    step = max(1, math.ceil(last / 8))
    return list(range(0, last + 1, step))


def race_spec(races: pd.DataFrame, methods: Sequence[str]) -> dict | None:
    """Time to target per (arm, baseline) pair: the baseline's epoch (x) against the arm's (y; "never"
    above the last epoch), per measure; below the diagonal the arm is faster. Size: pairs at the point."""
    shown = races[~races["outcome"].isin(["not observable", "left out"])]
    if shown.empty:
        return None
    last = int(np.nanmax(np.r_[shown["base_epoch"].to_numpy(float), shown["arm_epoch"].to_numpy(float)]))
    never = last + 1
    pairs = pd.DataFrame(
        {
            "measure": shown["measure"].astype(str),
            "method": shown["method"].astype(str),
            "outcome": shown["outcome"].astype(str),
            "x": shown["base_epoch"].astype(float),
            "y": shown["arm_epoch"].fillna(never).astype(float),
            "kind": "pair",
        }
    )
    diagonal = pd.DataFrame(
        {
            "measure": np.repeat(sorted(pairs["measure"].unique()), 2),
            "method": None,
            "outcome": None,
            "x": [0.5, last + 0.5] * pairs["measure"].nunique(),
            "y": [0.5, last + 0.5] * pairs["measure"].nunique(),
            "kind": "diagonal",
        }
    )
    data, fields, values = _inline(pd.concat([pairs, diagonal], ignore_index=True))
    scale = alt.Scale(domain=[0, never + 0.5], nice=False)
    x = alt.X(
        "x:Q",
        title="baseline's epoch at the target",
        scale=alt.Scale(domain=[0, last + 0.5], nice=False),
        axis=alt.Axis(values=_epoch_ticks(last), **EPOCH_AXIS),
    )
    y = alt.Y(
        "y:Q",
        title="arm's epoch at the target",
        scale=scale,
        axis=alt.Axis(
            values=[*_epoch_ticks(last), never],
            labelExpr=f"datum.value > {last} ? 'never' : datum.label",
            **EPOCH_AXIS,
        ),
    )
    diag = alt.Chart().transform_filter(alt.datum.kind == "diagonal").mark_line(color="#999", strokeDash=[4, 3])
    diag = diag.encode(x=x, y=y)
    points = (
        alt.Chart()
        .transform_filter(alt.datum.kind == "pair")
        .mark_point(filled=True, opacity=0.75)
        .encode(
            x=x,
            y=y,
            color=alt.Color("method:N", scale=_methods(methods)),
            shape=alt.Shape("outcome:N"),
            size=alt.Size("count():Q", title="pairs", scale=alt.Scale(range=[30, 300], zero=False)),
            tooltip=[
                "method:N",
                "outcome:N",
                alt.Tooltip("count():Q", title="pairs"),
                alt.Tooltip("x:Q", title="baseline's epoch", format="d"),
                alt.Tooltip("y:Q", title="arm's epoch", format="d"),
            ],
        )
    )
    chart = (
        alt.layer(diag, points)
        .properties(width=260, height=220)
        .facet(column=alt.Column("measure:N", title="time to target on"), data=data)
        .transform_flatten(fields)
    )
    return _spec(chart, values)


def norm_bins_spec(bins: pd.DataFrame, methods: Sequence[str]) -> dict | None:
    """kNN accuracy per norm bin (small norms left) per method, each point sized by the samples in its
    bin; panels per vector (rows) and binning (columns). Near-empty bins are not in ``bins``."""
    if bins.empty:
        return None
    data, fields, values = _inline(bins[["vector", "binning", "method", "bin", "accuracy", "samples", "trials"]])
    x = alt.X("bin:Q", title="norm bin (small → large)", axis=alt.Axis(tickMinStep=1, format="d"))
    y = alt.Y("accuracy:Q", title="kNN accuracy in bin", axis=alt.Axis(format=".0%"), scale=alt.Scale(zero=False))
    color = alt.Color("method:N", scale=_methods(methods))
    tip = [
        "method:N",
        alt.Tooltip("bin:Q", format="d"),
        alt.Tooltip("accuracy:Q", format=".1%"),
        alt.Tooltip("samples:Q", title="samples in bin"),
        "trials:Q",
    ]
    line = alt.Chart().mark_line(opacity=0.8).encode(x=x, y=y, color=color)
    points = (
        alt.Chart()
        .mark_point(filled=True, opacity=0.85)
        .encode(
            x=x,
            y=y,
            color=color,
            size=alt.Size("samples:Q", title="samples in bin", scale=alt.Scale(range=[8, 160], zero=True)),
            tooltip=tip,
        )
    )
    chart = (
        alt.layer(line, points)
        .properties(width=260, height=160)
        .facet(row=alt.Row("vector:N", title=None), column=alt.Column("binning:N", title=None), data=data)
        .transform_flatten(fields)
        .resolve_scale(x="independent")
    )
    return _spec(chart, values)


def ood_spec(hist: pd.DataFrame, log: bool = True) -> dict | None:
    """Per trial with OOD samples (a row per group, a panel per seed): the share of its test and of its OOD
    samples per embedding-norm bin (pre-binned, ``log``: on a log axis), the count in the tooltip."""
    if hist.empty:
        return None
    data, fields, values = _inline(hist[["label", "seed", "split", "lo", "hi", "count", "share", "n", "clipped"]])
    scale = alt.Scale(type="log", nice=False) if log else alt.Scale(zero=False, nice=False)
    bars = (
        alt.Chart()
        .mark_bar(opacity=0.55, binSpacing=0)
        .encode(
            x=alt.X("lo:Q", title=None, scale=scale, axis=alt.Axis(labelOverlap="greedy", format="~g", tickCount=4)),
            x2="hi:Q",
            y=alt.Y("share:Q", stack=None, title=None, axis=alt.Axis(format=".0%", tickCount=3)),
            y2=alt.datum(0),
            color=alt.Color("split:N", scale=alt.Scale(domain=["test", "ood"], range=["#4c78a8", "#e45756"])),
            tooltip=[
                alt.Tooltip("label:N", title="group"),
                "seed:N",
                "split:N",
                alt.Tooltip("lo:Q", format=".4g", title="from"),
                alt.Tooltip("hi:Q", format=".4g", title="to"),
                alt.Tooltip("count:Q", title="samples in bin"),
                alt.Tooltip("n:Q", title="samples in split"),
                alt.Tooltip("clipped:Q", title="clipped into the end bins"),
            ],
        )
        .properties(width=130, height=55)
    )
    rows = []
    for label in dict.fromkeys(hist["label"]):  # one row per group, only its own seeds
        title = alt.TitleParams(str(label), anchor="start", fontSize=11, fontWeight="normal")
        rows.append(
            bars.facet(column=alt.Column("seed:N", title=None, header=alt.Header(labelFontSize=10)), data=data)
            .transform_flatten(fields)  # each row reads the one inlined dataset
            .transform_filter(alt.datum.label == label)
            .resolve_scale(x="independent", y="independent")
            .properties(title=title)
        )
    chart = alt.vconcat(*rows, spacing=6)
    return _spec(chart, values)


def class_spec(classes: pd.DataFrame, methods: Sequence[str]) -> dict | None:
    """Long-tailed trials: each class's mean test norm (left) and its log ratio to the balanced twin's
    (right, the claims' C9 contrast) against its training count; one line per trial."""
    if classes.empty:
        return None
    frame = classes[["method", "trial", "class", "train_count", "norm", "contrast"]].sort_values(
        ["trial", "train_count"], kind="stable"
    )
    data, fields, values = _inline(frame.assign(**{"class": frame["class"].astype(str)}))
    base = alt.Chart(data).transform_flatten(fields)
    x = alt.X("train_count:Q", scale=alt.Scale(type="log"), title="class's training images (log)")
    color = alt.Color("method:N", scale=_methods(methods))
    tip = [
        "method:N",
        "class:N",
        "train_count:Q",
        alt.Tooltip("norm:Q", format=".4g"),
        alt.Tooltip("contrast:Q", format="+.3f"),
    ]
    norm = base.mark_line(point=True, opacity=0.6).encode(
        x=x,
        y=alt.Y("norm:Q", scale=alt.Scale(type="log"), title="mean test embedding norm (log)"),
        color=color,
        detail="trial:N",
        tooltip=tip,
    )
    contrast = (
        base.transform_filter("isValid(datum.contrast)")
        .mark_line(point=True, opacity=0.6)
        .encode(
            x=x, y=alt.Y("contrast:Q", title="log(norm / balanced twin's)"), color=color, detail="trial:N", tooltip=tip
        )
    )
    return _spec(
        alt.hconcat(norm.properties(width=300, height=220), contrast.properties(width=300, height=220)), values
    )
