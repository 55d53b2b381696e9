"""The vocabulary of a verdict: its values, the thresholds the tests use, and the shape of a claims row.

What each claim states and how it is tested lives with the claim itself, in the
registry (`suite.analysis.claims.registry`, filled by `suite.analysis.claims.catalog`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from suite.results import schema

HOLDS, NOT_HOLD, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
# A claim about losses that L2-normalize the embedding, on a method whose loss does not.
NOT_APPLICABLE = "not applicable"
# The run lacks the instrument or control the test needs (e.g. trials from before it existed).
NOT_MEASURED = "not measured"
# The manipulation is too weak to act (a weight-decay dose far below what could move a norm).
NOT_TESTABLE = "not testable"
VERDICTS = (HOLDS, NOT_HOLD, INCONCLUSIVE, NOT_APPLICABLE, NOT_MEASURED, NOT_TESTABLE)
POOLED = "all"

MIN_SEEDS = 3  # seeds an interval-based verdict needs
CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
ORTHOGONALITY_TOL = 1e-3  # C2a: largest per-trial mean |cos(dL/dz, z)| still called orthogonal
IDENTITY_TOL = 1e-3  # C2b: largest relative deviation of dL/dz ||z|| from dL/du still called float rounding
SLOPE_TOL = 0.05  # C3: largest |measured - predicted| turn slope still called the law (the step is ~1e-6)
MIN_DOSE = 0.05  # C6: weight-decay dose (delta wd x sum of lr) below which the decay cannot move a norm visibly
COLLAPSE_LOSS_TOL = 0.01  # a final loss within 1% of the method's collapsed-network loss is a collapse
EARLY_FRACTION = 0.5  # C4/C5: the effect is averaged over the first half of training
FINAL_EPOCHS = 3  # C4/C5: a curve's end is the mean of its last evaluations (one is too noisy)
AUROC_CHANCE = 0.5

# What the claims measure, named by the result schema, so a renamed column renames the claim's measure.
EMB_NORM = schema.train_norm("emb", "mean")
TEST_EMB_NORM = schema.eval_norm("test", "emb", "mean")
GRAD_COS_ABS, LOSS = schema.GRAD_COS_ABS, schema.LOSS
CORRECT_AUROC = {v: schema.diagnostic(v, schema.CORRECT_AUROC) for v in ("emb", "proj")}
CORRECT_AUROC_WITHIN = schema.diagnostic("emb", schema.CORRECT_AUROC_WITHIN)
OOD_AUROC = schema.diagnostic("emb", schema.OOD_AUROC)
KNN = "knn"  # the curves' kNN top-1 with the run's primary k (schema.primary_k): a column per k
CLASS_CONTRAST = "class_norm_contrast"  # computed from the class_norms table, not a column

ROW_COLUMNS = [
    "claim",
    "measure",
    "method",
    "statement",
    "test",
    "verdict",
    "statistic",
    "value",
    "ci_lo",
    "ci_hi",
    "p_value",
    "p_holm",
    "n",
    "n_seeds",
    "evidence",
    "checks",
    "reason",
]


@dataclass
class ClaimRow:
    """One line of claims.csv: a claim and measure, for one method or pooled (``all``)."""

    claim: str
    measure: str
    method: str
    statement: str
    test: str
    verdict: str = INCONCLUSIVE
    statistic: str = ""
    value: float = math.nan
    ci_lo: float = math.nan
    ci_hi: float = math.nan
    p_value: float = math.nan
    p_holm: float = math.nan  # p adjusted (Holm) over the methods judged on this claim and measure
    n: int = 0
    n_seeds: int = 0
    evidence: str = ""
    checks: str = ""  # units a manipulation, collapse, protocol, dose or design check left out, with the numbers
    reason: str = ""
