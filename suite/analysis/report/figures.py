"""Every figure of the leaderboard and the report, decided here: the page's figures (the forest plot of Δ per
intervention and the evidence behind each claim, `build_figures`) and the leaderboard's PNG files
(`exported_figures`, saved by `suite.analysis.report.export`).

Why one module: each figure is a (data, chart, caption) triple, and the claims panel
links every verdict to its figure by id (``plot-<claim>``), so the ids, captions and
specs are decided together here; the numbers come from `plotdata`, the drawing from
`charts`. A figure both show (accuracy per norm bin, the OOD norm histograms) is one
function here, so the page and the files cannot draw it differently.
"""

from __future__ import annotations

from html import escape

import pandas as pd

import suite.analysis.report.charts as charts
import suite.analysis.report.plotdata as plotdata
from suite.analysis.claims.definitions import IDENTITY_TOL, SLOPE_TOL
from suite.analysis.compare import CONV_FRACTION
from suite.analysis.leaderboard.aggregate import Leaderboard
from suite.analysis.leaderboard.render import label
from suite.analysis.load import Results, load_eval_norms
from suite.analysis.report.data import completed_trials, group_labels
from suite.analysis.report.html import ClaimsView, Figure, claim_values, simple_table
from suite.core.tables import DASH
from suite.results import schema


def _epoch(value: float) -> str:
    return DASH if pd.isna(value) else f"{value:g}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _race_table(races: pd.DataFrame, claim: str) -> str:
    sub = races[races["claim"] == claim]
    if sub.empty:
        return ""
    rows = [
        [
            r.measure,
            r.arm,
            r.base,
            "never" if "never" in r.outcome else _epoch(r.arm_epoch),
            _epoch(r.base_epoch),
            r.outcome,
            r.why or "",
        ]
        for r in sub.itertuples(index=False)
    ]
    header = ["measure", "arm", "baseline", "arm's epoch", "baseline's epoch", "outcome", "why not observable"]
    table = simple_table(header, rows, table_id=f"pairs-{claim}")
    return f"<details><summary>Every pair ({len(rows)})</summary>{table}</details>"


def _methods(trials: pd.DataFrame) -> list[str]:
    """The methods of the trials, sorted: the colour domain of every per-method chart."""
    return sorted(trials[schema.METHOD].dropna().astype(str).unique()) if schema.METHOD in trials else []


def norm_bins_chart(results: Results, trials: pd.DataFrame) -> dict | None:
    """kNN accuracy per norm bin per method (claim C7's figure; the leaderboard's accuracy_per_norm_bin)."""
    return charts.norm_bins_spec(plotdata.norm_bin_accuracy(results.norm_bins, trials), _methods(trials))


def ood_chart(board: Leaderboard, trials: pd.DataFrame, labels: dict[int, str]) -> dict | None:
    """Test and OOD embedding-norm histograms per trial (claim C8's figure; the leaderboard's
    ood_norm_histograms), on a log axis where every bin's edge is positive."""
    hist = plotdata.ood_histograms(load_eval_norms(board.trials), trials, labels)
    return charts.ood_spec(hist, log=bool(len(hist)) and bool((hist["lo"] > 0).all()))


def exported_figures(results: Results, board: Leaderboard) -> dict[str, dict]:
    """The leaderboard's figures as Vega-Lite specs, by file stem, where the data has them: the primary kNN
    accuracy (else the ranking metric), the SSL loss and the embedding norm of the training batches against
    epoch (a panel per setting and method, a line per intervention, mean ± std over seeds), and the page's
    accuracy per norm bin (C7) and OOD norm histograms (C8)."""
    trials = completed_trials(results, board)
    curve = board.knn_column or board.metric
    percent = schema.is_accuracy(curve)
    emb_norm = schema.train_norm("emb", "mean")

    def curves(column: str, title: str, **kw) -> dict | None:
        return charts.curves_spec(plotdata.curve_summary(results.curves, trials, board, column), title, **kw)

    candidates = {
        f"{curve}_vs_epoch": curves(curve, label(curve).replace(" (%)", ""), percent=percent),
        "loss_vs_epoch": curves(schema.LOSS, "SSL loss"),
        "emb_norm_vs_epoch": curves(emb_norm, "mean embedding norm (log)", log=True),
        "accuracy_per_norm_bin": norm_bins_chart(results, trials),
        "ood_norm_histograms": ood_chart(board, trials, group_labels(board)),
    }
    return {name: spec for name, spec in candidates.items() if spec is not None}


def build_figures(
    results: Results, board: Leaderboard, trials: pd.DataFrame, labels: dict[int, str], claims: pd.DataFrame | None
):
    """(figures in page order, {chart key: Vega-Lite spec}, {claim: figure id}). A claim's figure ends its
    caption with that claim's rows of claims.csv (`html.claim_values`): the caption computes no statistic."""
    methods = _methods(trials)
    specs: dict[str, dict] = {}
    figures: list[Figure] = []
    view = ClaimsView.of(claims)

    def add(fig: Figure, spec: dict | None) -> None:
        fig.caption += "".join(" " + claim_values(view, claim) for claim in fig.claims)
        if spec is not None and fig.chart:
            specs[fig.chart] = spec
        else:
            fig.chart = None
        figures.append(fig)

    forest_labels = group_labels(board, exclude=(schema.INTERVENTION,), always=(schema.METHOD, schema.DATASET))
    rows = plotdata.forest_rows(board, forest_labels)
    add(
        Figure(
            "forest",
            "Δ against none, per intervention.",
            f"<code>{escape(schema.delta(board.metric))}</code> with its 95% interval over seeds "
            "(paired on shared seeds, "
            "else Welch's), one line per method and dataset; filled and coloured: the interval excludes 0.",
            "forest",
        ),
        charts.forest_spec(rows, board.metric),
    )

    checks = plotdata.mechanism_points(results.curves, trials)
    add(
        Figure(
            "plot-C2b",
            "C2b: the 1/‖z‖ law, checked exactly.",
            "Per trial and evaluation, on one fixed batch: the largest relative deviation of "
            "dL/dz·‖z‖ from the gradient at the normalized embedding (log axis); float rounding lies far below "
            f"the claim's tolerance {IDENTITY_TOL:g} (dashed) for a loss that normalizes its embedding.",
            "C2b",
            ("C2b",),
            missing="Not measured in this run (no emb_grad_identity_dev column): its trials predate the check.",
        ),
        charts.mechanism_spec(checks, methods, ["C2b: relative deviation"], "relative deviation", IDENTITY_TOL, True),
    )
    add(
        Figure(
            "plot-C3",
            "C3: the turn of one step against the rescaled embedding layer.",
            "Per trial and evaluation: the slope of log(turn) on log(a) when the embedding layer is scaled by a, "
            "minus the prediction (-2, or p - 2 under GradScale p), and the same for the placebo (the embedding "
            f"scaled after the layer: same norms, theory 0, so it lands near +2). The band is the claim's "
            f"tolerance ±{SLOPE_TOL:g}: measured slopes must fall in it and the placebo outside.",
            "C3",
            ("C3",),
            missing="Not measured in this run (no emb_step_turn_slope column): its trials predate the check.",
        ),
        charts.mechanism_spec(
            checks,
            methods,
            ["C3: measured - predicted slope", "C3: placebo - predicted slope"],
            "slope minus prediction",
            SLOPE_TOL,
            False,
        ),
    )

    races = plotdata.races(trials, results.curves, board.knn_column)
    for claim, kind in (("C4", "cut"), ("C5", "gradscale")):
        sub = races[races["claim"] == claim]
        add(
            Figure(
                f"plot-{claim}",
                f"{claim}: time to target, {kind} arms against none.",
                "Per (arm, baseline) pair of the same seed, science and protocol that passes its manipulation "
                "and collapse checks (the rest are listed with the reason): the epoch at which each reaches the "
                f"baseline's target (its epoch-1 value plus {CONV_FRACTION:g} of its later improvement); below "
                'the diagonal the arm is faster, "never": it did not reach it. The verdict reads the early-training '
                "effect; this race is its companion evidence. On kNN only the settings shown to beat their "
                "untrained network, as in the verdict.",
                claim,
                (claim,),
                extra=_race_table(races, claim),
                missing=f"No {kind} arm with a baseline pair whose target is observable.",
            ),
            charts.race_spec(sub, methods),
        )

    add(
        Figure(
            "plot-C7",
            "C7: kNN accuracy per norm bin.",
            "Per method, the share of correct kNN predictions among all samples in a bin, over its trials (every "
            "intervention); a point's size is the number of samples in its bin, and bins with fewer than "
            f"{plotdata.MIN_BIN_SAMPLES} samples are not drawn (a near-empty bin is 0% or 100% by chance). Bins "
            "run from the smallest norms (left) to the largest: deciles, and equal-width bins of the "
            "min-max-normalised norm.",
            "C7",
            ("C7",),
        ),
        norm_bins_chart(results, trials),
    )
    clip_lo, clip_hi = plotdata.OOD_CLIP
    add(
        Figure(
            "plot-C8",
            "C8: test and OOD embedding norms.",
            "One panel per trial with out-of-distribution samples (rows: groups, columns: seeds; seeds of one "
            "setting can sit at very different norms): the share of its test and of its OOD samples per "
            "embedding-norm bin at the final epoch, on a log axis; the tooltip gives each bin's count. Bins "
            f"span the trial's {_ordinal(clip_lo)} to {_ordinal(clip_hi)} percentile; the norms outside are "
            "counted in the end bins.",
            "C8",
            ("C8",),
            missing="No per-trial eval_norms files with OOD samples.",
        ),
        ood_chart(board, trials, labels),
    )
    classes = plotdata.class_frequency(results.class_norms, trials)
    add(
        Figure(
            "plot-C9",
            "C9: class norm against class frequency.",
            "Long-tailed trials (intervention none): each class's mean test embedding norm (left) and its log "
            "ratio to the balanced twin's of the same seed (right; the verdict's contrast) against its number "
            "of training images.",
            "C9",
            ("C9",),
            missing="No long-tailed trial with class norms.",
        ),
        charts.class_spec(classes, methods),
    )
    plots = {claim: fig.id for fig in figures for claim in fig.claims}
    return figures, specs, plots
