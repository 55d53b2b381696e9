"""The paper's claims as tests on the results tables: verdicts per method and pooled.

Why a package of its own: a benchmark about embedding norms earns trust by saying,
claim by claim, method by method and with the number behind it, where the paper's
statements hold in its own runs and where the runs cannot decide. Each claim is one
entry of the registry (`suite.analysis.claims.registry`, the paper's claims in
`suite.analysis.claims.catalog`): its units are computed from a `Context` built once
here and judged by its judge (`suite.analysis.claims.judge`). Only completed trials
count, and only on the seeds every arm of their method shares.
"""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd

from suite.analysis.claims import catalog  # noqa: F401  (registers the paper's claims)
from suite.analysis.claims.context import Context
from suite.analysis.claims.definitions import (
    HOLDS,
    INCONCLUSIVE,
    MIN_SEEDS,
    NOT_APPLICABLE,
    NOT_HOLD,
    NOT_MEASURED,
    NOT_TESTABLE,
    POOLED,
    ROW_COLUMNS,
    VERDICTS,
)
from suite.analysis.claims.registry import REGISTRY

__all__ = [
    "evaluate_claims",
    "claims_context",
    "HOLDS",
    "NOT_HOLD",
    "INCONCLUSIVE",
    "NOT_APPLICABLE",
    "NOT_MEASURED",
    "NOT_TESTABLE",
    "VERDICTS",
    "POOLED",
    "ROW_COLUMNS",
    "MIN_SEEDS",
]


def claims_context(
    trials: pd.DataFrame, curves: pd.DataFrame | None = None, class_norms: pd.DataFrame | None = None
) -> Context:
    """What every claim reads, prepared once (its ``notes`` are the run-level warnings)."""
    return Context.build(trials, curves, class_norms)


def evaluate_claims(
    trials: pd.DataFrame, curves: pd.DataFrame | None = None, class_norms: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Every registered claim on merged tables (`suite.analysis.load.load_results`): per method, then pooled
    (``all``). ``frame.attrs["notes"]`` holds the run-level warnings (unequal seeds across arms, a primary k
    larger than the classes)."""
    ctx = claims_context(trials, curves, class_norms)
    rows = [row for claim in REGISTRY for row in claim.evaluate(ctx)]
    frame = pd.DataFrame([asdict(r) for r in rows], columns=ROW_COLUMNS)
    frame[["n", "n_seeds"]] = frame[["n", "n_seeds"]].astype(int)
    frame.attrs["notes"] = list(ctx.notes)
    return frame
