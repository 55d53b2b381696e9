"""The paper's claims as tests on the results tables: verdicts per method and pooled.

Why a package of its own: a benchmark about embedding norms earns trust by saying,
claim by claim, method by method and with the number behind it, where the paper's
statements hold in its own runs and where the runs cannot decide. The tests are
stated in `suite.analysis.claims.definitions`, their units computed in
`suite.analysis.claims.evidence` and judged in `suite.analysis.claims.judge`
(seed-clustered intervals, sign-flip tests for time to target, a pooled row that
may not contradict a method). Only completed trials count.
"""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd

from suite.analysis.claims import definitions, evidence
from suite.analysis.claims.definitions import (
    AUROC_CHANCE,
    HOLDS,
    INCONCLUSIVE,
    MIN_SEEDS,
    NOT_HOLD,
    ORTHOGONALITY_TOL,
    POOLED,
    ROW_COLUMNS,
    SLOPE_MARGIN,
    SLOPE_TARGET,
    VERDICTS,
    ClaimRow,
    claim_of,
)
from suite.analysis.claims.judge import judge_max, judge_mean, judge_race
from suite.analysis.compare import CONV_FRACTION
from suite.results import schema

__all__ = ["evaluate_claims", "HOLDS", "NOT_HOLD", "INCONCLUSIVE", "VERDICTS", "POOLED", "ROW_COLUMNS", "MIN_SEEDS"]


def _key(frame: pd.DataFrame) -> pd.Series:
    """Trial identity across merged directories: ``results_dir/trial_id``."""
    rd = frame[schema.RESULTS_DIR].astype(str) if schema.RESULTS_DIR in frame.columns else ""
    return rd + "/" + frame[schema.TRIAL_ID].astype(str)


def _only_pooled(claim: str, measure: str, reason: str, statistic: str = "", evidence_text: str = "") -> list[ClaimRow]:
    c = claim_of(claim, measure)
    return [
        ClaimRow(
            c.claim, c.measure, POOLED, c.statement, c.test, statistic=statistic, reason=reason, evidence=evidence_text
        )
    ]


def _mean_rows(
    claim: str,
    measure: str,
    units: evidence.Units,
    threshold: float,
    statistic: str,
    extra: dict[str, str] | None = None,
    **kw,
) -> list[ClaimRow]:
    if units.frame.empty:
        rows = judge_mean(claim, measure, units.frame, threshold, statistic=statistic, left_out=units.left_out)
        rows[-1].reason = units.reason or rows[-1].reason
        rows[-1].evidence = "; ".join(units.notes)
        return rows
    return judge_mean(
        claim,
        measure,
        units.frame,
        threshold,
        statistic=statistic,
        left_out=units.left_out,
        extra={**(extra or {}), POOLED: "; ".join(units.notes)},
        **kw,
    )


def _race_rows(claim: str, kind: str, trials, curves, k: int | None, why_no_k: str) -> list[ClaimRow]:
    loss = evidence.units_race(trials, curves, kind, schema.LOSS, falling=True)
    knn_column = schema.knn(k) if k is not None else ""
    knn = (
        evidence.units_race(trials, curves, kind, knn_column, falling=False, k=k, why_no_k=why_no_k)
        if k is not None
        else evidence.Units(evidence._units(trials.iloc[0:0], pd.Series(dtype=float)), reason=why_no_k)
    )
    rows = []
    for measure, units, what in (
        (definitions.LOSS, loss, "the loss"),
        (definitions.KNN, knn, f"kNN@{k}" if k else "kNN"),
    ):
        statistic = (
            f"net share of seed pairs faster to {what}'s target (epoch-1 value + {CONV_FRACTION:g} of the "
            f"baseline's later improvement), {kind} vs none"
        )
        if units.frame.empty:
            judged = judge_race(claim, measure, units.frame, statistic=statistic, left_out=units.left_out)
            judged[-1].reason = units.reason or judged[-1].reason
            judged[-1].evidence = "; ".join(units.notes)
        else:
            judged = judge_race(
                claim, measure, units.frame, statistic=statistic, left_out=units.left_out, extra="; ".join(units.notes)
            )
        rows += judged
    return rows


def evaluate_claims(
    trials: pd.DataFrame, curves: pd.DataFrame | None = None, class_norms: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Every claim on merged tables (`suite.analysis.load.load_results`): per method, then pooled (``all``)."""
    trials = trials.copy()
    if schema.STATUS in trials.columns:
        trials = trials[trials[schema.STATUS].astype(str) == schema.COMPLETED]
    if "intervention" not in trials.columns:
        trials["intervention"] = "none"
    if "seed" not in trials.columns:
        trials["seed"] = 0
    trials["_key"] = _key(trials)
    curves = _keyed(curves, trials)
    class_norms = _keyed(class_norms, trials)
    k, why_no_k = evidence.primary_knn(trials)

    rows: list[ClaimRow] = []
    rows += _mean_rows(
        "C1",
        definitions.EMB_NORM,
        evidence.units_c1(trials, curves),
        0.0,
        "mean log(last / first epoch emb_norm_mean), weight_decay 0",
    )
    c2a = evidence.units_c2a(trials, curves)
    rows += (
        judge_max(
            "C2a",
            definitions.GRAD_COS_ABS,
            c2a.frame,
            ORTHOGONALITY_TOL,
            statistic="largest per-trial mean |cos(dL/dz, z)|",
        )
        if not c2a.frame.empty
        else _only_pooled("C2a", definitions.GRAD_COS_ABS, c2a.reason)
    )
    rows += _mean_rows(
        "C2b",
        definitions.GRAD_NORM,
        evidence.units_c2b(trials, curves),
        SLOPE_TARGET,
        "mean slope d log||dL/dz|| / d log||z||",
        band=(SLOPE_TARGET - SLOPE_MARGIN, SLOPE_TARGET + SLOPE_MARGIN),
    )
    rows += _mean_rows(
        "C3",
        definitions.PROBE_ANGLE,
        evidence.units_c3(trials, curves),
        0.0,
        "mean coefficient of log probe norm in log angle ~ log norm + log lr",
        claim_above=False,
    )
    rows += _race_rows("C4", "cut", trials, curves, k, why_no_k)
    rows += _race_rows("C5", "gradscale", trials, curves, k, why_no_k)
    rows += _mean_rows(
        "C6",
        definitions.EMB_NORM,
        evidence.units_c6(trials),
        0.0,
        "mean log(final emb_norm_mean at the lowest / at the highest weight decay)",
    )
    learning, left = evidence.gate(trials, k, why_no_k)
    for column in definitions.CORRECT_AUROC.values():  # the measure is the column
        # the methods that have this vector at all (only BYOL and SimSiam have a projector output apart)
        having = set(trials.loc[evidence.num(trials, column).notna(), "method"].astype(str))
        pool = learning[learning["method"].astype(str).isin(having)]
        units = evidence.units_column(pool, column, None, "no method shown to beat its untrained network")
        judged = set(units.frame["method"]) if len(units.frame) else set()
        units.left_out = {m: why for m, why in left.items() if m in having and m not in judged}
        if units.frame.empty and not len(pool):
            units.reason = (
                f"no method is shown to beat its untrained network on kNN@{k}{evidence.eval_every_hint(trials)}"
                if k
                else why_no_k
            )
        statistic = f"mean {column} (kNN@{k} correctness)" if k else f"mean {column}"
        extra = {m: why for m, why in left.items() if m in judged}
        rows += _mean_rows("C7", column, units, AUROC_CHANCE, statistic, extra=extra)
    has_ood = pd.Series(False, index=trials.index)
    for col in ("holdout_classes", "ood_dataset"):
        if col in trials.columns:
            text = trials[col].astype(str).str.strip().str.lower()
            has_ood |= trials[col].notna() & ~text.isin(["", "nan", "none", "null", "[]", "<na>"])
    rows += _mean_rows(
        "C8",
        definitions.OOD_AUROC,
        evidence.units_column(
            trials,
            definitions.OOD_AUROC,
            has_ood,
            "no trial has holdout_classes or ood_dataset set",
        ),
        AUROC_CHANCE,
        "mean emb_ood_auroc (AUROC of -norm for OOD)",
    )
    rows += _mean_rows(
        "C9",
        definitions.CLASS_CONTRAST,
        evidence.units_c9(trials, class_norms),
        0.0,
        "mean Spearman(class training count, log class norm long-tailed / balanced)",
    )
    frame = pd.DataFrame([asdict(r) for r in rows], columns=ROW_COLUMNS)
    frame[["n", "n_seeds"]] = frame[["n", "n_seeds"]].astype(int)
    return frame


def _keyed(table: pd.DataFrame | None, trials: pd.DataFrame) -> pd.DataFrame | None:
    if table is None:
        return None
    table = table.copy()
    table["_key"] = _key(table)
    return table[table["_key"].isin(set(trials["_key"]))]
