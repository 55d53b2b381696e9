"""The paper's claims, the test normbench applies to each, and the shape of a verdict row.

Every test is stated here in words (the text that goes into ``claims.md`` and the
docs); `suite.analysis.claims.evidence` computes the units each test runs on and
`suite.analysis.claims.judge` turns them into verdicts, per method and pooled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from suite.analysis.compare import CONV_FRACTION
from suite.results import schema

HOLDS, NOT_HOLD, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
VERDICTS = (HOLDS, NOT_HOLD, INCONCLUSIVE)
POOLED = "all"

MIN_SEEDS = 3  # seed clusters a mean-based verdict needs
CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
ORTHOGONALITY_TOL = 1e-3  # C2a: largest per-trial mean |cos(dL/dz, z)| still called orthogonal
SLOPE_TARGET = -1.0  # C2b: theory, d log||dL/dz|| / d log||z||
SLOPE_MARGIN = 0.25  # C2b: equivalence band SLOPE_TARGET ± SLOPE_MARGIN
MIN_SLOPE_EPOCHS = 3  # C2b/C3: evaluation epochs a per-trial slope needs (C3: + one per covariate)
MIN_LOG_NORM_RANGE = 0.05  # C2b/C3: a trial whose log-norm varies less has no slope to measure
AUROC_CHANCE = 0.5

# What each claim measures, named by the result schema, so a renamed column renames the claim's measure.
EMB_NORM = schema.train_norm("emb", "mean")
GRAD_COS_ABS, GRAD_NORM, PROBE_ANGLE, LOSS = schema.GRAD_COS_ABS, schema.GRAD_NORM, schema.PROBE_ANGLE, schema.LOSS
CORRECT_AUROC = {v: schema.diagnostic(v, schema.CORRECT_AUROC) for v in ("emb", "proj")}
OOD_AUROC = schema.diagnostic("emb", schema.OOD_AUROC)
KNN = "knn"  # the curves' kNN top-1 with the run's primary k (schema.primary_k): a column per k
CLASS_CONTRAST = "class_norm_contrast"  # computed from the class_norms table, not a column

CLUSTERED = (
    f"Units are averaged within each seed (every arm and method of a seed shares its initialization, and "
    f"arms share their baseline), methods weighing the same; a Student-t interval ({CONFIDENCE:.0%}) over "
    f"the seed means, which needs >= {MIN_SEEDS} seeds"
)
SIGN_FLIP = (
    "Per seed, the net direction over its pairs (faster +1, slower -1, tied 0; methods weighing the same); an "
    "exact two-sided sign-flip test over the seeds, which needs >= 6 seeds to reach p < 0.05"
)


@dataclass(frozen=True)
class Claim:
    """A claim of the paper and the test normbench applies to it."""

    claim: str
    measure: str
    statement: str
    test: str


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "C1",
        EMB_NORM,
        "Without weight decay, embedding norms grow during training.",
        "Trials with weight_decay == 0. Per trial: log(last / first) of the curves' emb_norm_mean over epochs "
        f">= 1 (training-batch means). {CLUSTERED}; holds if it lies above 0.",
    ),
    Claim(
        "C2a",
        GRAD_COS_ABS,
        "The gradient of the loss w.r.t. the embedding z is orthogonal to z.",
        "Per trial: mean over epochs >= 1 of the curves' emb_grad_cos_abs_mean (mean |cos(dL/dz, z)|). Holds "
        f"if the largest per-trial mean is below {ORTHOGONALITY_TOL:g} (float rounding), else does not hold. A "
        "deterministic identity: no interval.",
    ),
    Claim(
        "C2b",
        GRAD_NORM,
        "The gradient w.r.t. the embedding scales as 1/||z||.",
        "Per trial: OLS slope of log emb_grad_norm_mean on log emb_norm_mean over epochs >= 1 (>= "
        f"{MIN_SLOPE_EPOCHS} epochs, log-norm range >= {MIN_LOG_NORM_RANGE:g}). {CLUSTERED}; holds if inside "
        f"{SLOPE_TARGET:g} ± {SLOPE_MARGIN:g}, does not hold if disjoint from it. Across epochs the direction "
        "gradient also changes as the loss falls, which this slope absorbs.",
    ),
    Claim(
        "C3",
        PROBE_ANGLE,
        "Larger norms move less on the sphere (angular step ~ 1/||z||^2).",
        "Per trial: OLS of log probe_angle_change_mean on log(probe norm) and log(lr) over evaluation epochs >= 1 "
        "(probe norm = mean of probe_emb_norm_mean at this and the previous evaluation; log lr dropped when "
        f"constant). The norm coefficient; {CLUSTERED}; holds if it lies below 0 (theory: -2).",
    ),
    Claim(
        "C4",
        LOSS,
        "Cut-initialization speeds up early convergence.",
        "Pairs: each cut:c arm (no GradScale) with the intervention-none trial of the same seed and the same "
        "science but its protocol (lr, warm-up). Target: the baseline's epoch-1 loss minus "
        f"{CONV_FRACTION:g} x its decrease from epoch 1 to the end, so the baseline reaches it at epoch 2 or "
        "later and a speed-up is observable. Per pair, a direction: the arm reaches the target earlier (faster), "
        "later or never within its epochs (slower), at the same epoch (tie). "
        f"{SIGN_FLIP}; holds if significant and net faster.",
    ),
    Claim(
        "C4",
        KNN,
        "Cut-initialization speeds up early convergence.",
        "As C4 on the loss, on the curves' kNN top-1 with the primary k (knn_k[0]): target = the baseline's epoch-1 "
        f"kNN + {CONV_FRACTION:g} x its gain from epoch 1 to the end. Methods not shown to beat their untrained "
        "network are left out.",
    ),
    Claim(
        "C5",
        LOSS,
        "GradScale speeds up convergence.",
        "As C4 on the loss, with gradscale:p arms (no cut) against intervention none.",
    ),
    Claim(
        "C5",
        KNN,
        "GradScale speeds up convergence.",
        "As C4 on kNN, with gradscale:p arms (no cut) against intervention none.",
    ),
    Claim(
        "C6",
        EMB_NORM,
        "Weight decay limits the growth of embedding norms.",
        "Groups of trials equal in everything but weight decay (and a wd:X part of the intervention), same "
        f"seed: log(final emb_norm_mean at the lowest / at the highest wd) per group. {CLUSTERED}; holds if "
        "it lies above 0.",
    ),
    Claim(
        "C7",
        CORRECT_AUROC["emb"],
        "The embedding norm predicts whether the kNN prediction is correct.",
        "Per trial: emb_correct_auroc, the AUROC of the norm for 'the kNN prediction with the primary k "
        f"(knn_k[0]) is correct'. {CLUSTERED}, over trials of methods shown to beat their untrained network; "
        "holds if it lies above 0.5.",
    ),
    Claim(
        "C7",
        CORRECT_AUROC["proj"],
        "The projector output's norm predicts whether the kNN prediction is correct.",
        f"As C7 on the projector output's {CORRECT_AUROC['proj']} (BYOL and SimSiam, whose embedding is the "
        "predictor output; the paper's confidence figures use the projector).",
    ),
    Claim(
        "C8",
        OOD_AUROC,
        "Out-of-distribution samples have smaller embedding norms.",
        "Per trial with an OOD set (holdout_classes or ood_dataset): emb_ood_auroc, the AUROC of minus the norm "
        f"for 'sample is OOD'. {CLUSTERED}; holds if it lies above 0.5.",
    ),
    Claim(
        "C9",
        CLASS_CONTRAST,
        "Rarer classes get smaller embedding norms.",
        "Pairs: each long-tailed trial (imbalance > 1, intervention none; its class order drawn with the seed) with "
        "the balanced trial of the same seed and settings. Per pair: Spearman correlation, over classes, of the "
        "class's training count in the long-tailed trial and log(mean test norm long-tailed / balanced) of its "
        "embeddings: a class's own norm level cancels, so class identity cannot pose as frequency. "
        f"{CLUSTERED}; holds if it lies above 0.",
    ),
)

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
    "n",
    "n_seeds",
    "evidence",
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
    n: int = 0
    n_seeds: int = 0
    evidence: str = ""
    reason: str = ""


def claim_of(claim: str, measure: str) -> Claim:
    return next(c for c in CLAIMS if c.claim == claim and c.measure == measure)
