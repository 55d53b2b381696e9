"""The paper's claims, registered: each one's statement, the test normbench applies, its units and judge.

Draganov et al., "On the Importance of Embedding Norms in Self-Supervised Learning"
(ICML 2025). The mechanism claims (C2a, C2b, C3) are exact identities checked on a
fixed batch at fixed checkpoints (`suite.measure.mechanism`); the intervention
claims (C4, C5) compare arms that pass their manipulation, collapse and protocol
checks (`suite.analysis.claims.checks`) with their own baselines; the
diagnostics (C7, C8) are read against the same trial's untrained network.
"""

from __future__ import annotations

from functools import partial

from suite.analysis.claims import evidence
from suite.analysis.claims.definitions import (
    CLASS_CONTRAST,
    CONFIDENCE,
    CORRECT_AUROC,
    CORRECT_AUROC_WITHIN,
    EARLY_FRACTION,
    FINAL_EPOCHS,
    GRAD_COS_ABS,
    IDENTITY_TOL,
    KNN,
    LOSS,
    MIN_DOSE,
    MIN_SEEDS,
    OOD_AUROC,
    ORTHOGONALITY_TOL,
    SLOPE_TOL,
    TEST_EMB_NORM,
)
from suite.analysis.claims.judge import judge_identity, judge_mean
from suite.analysis.claims.registry import Claim, register
from suite.results import schema

CLUSTERED = (
    f"Units are averaged within each seed (every arm of a seed shares its initialization, and arms share their "
    f"baseline); a Student-t interval ({CONFIDENCE:.0%}) over the seed means, which needs >= {MIN_SEEDS} seeds; "
    "p-values Holm-adjusted over the methods; pooled: random effects over the methods"
)
CHECKED = (
    "Pairs: each arm with the intervention-none trial of the same seed, science and protocol (lr, warm-up). A "
    "pair enters only if the arm passes its manipulation check (cut: epoch-1 embedding norm below the "
    "baseline's; gradscale:p: the p-th power of its training norms above 1 on average, else it damps) and "
    "neither trial collapsed (final kNN below its own untrained network, or final loss at the method's "
    "collapsed-network value); failures are listed in checks. Per pair, the effect: the mean over the first "
    f"{EARLY_FRACTION:.0%} of the epochs of (arm - baseline) on {{what}}, in units of the baseline's whole "
    f"improvement ({{start}} to the mean of its last {FINAL_EPOCHS} evaluations); > 0: the arm is ahead. "
    f"{CLUSTERED}; holds if above 0. Beside it, the time-to-target race (which reaches the baseline's midway "
    "point first) and its exact sign-flip test."
)


def _effect_units(ctx, kind: str, measure: str):
    """C4/C5 units on the loss, or on kNN with the run's primary k."""
    if measure == LOSS:
        return evidence.units_effect(ctx, kind, schema.LOSS, falling=True)
    if ctx.k is None:
        return evidence.no_units(ctx.trials, reason=ctx.why_no_k)
    return evidence.units_effect(ctx, kind, schema.knn(ctx.k), falling=False)


def _effect(claim: str, kind: str, measure: str, what: str, start: str, statement: str) -> Claim:
    return Claim(
        claim,
        measure,
        statement,
        CHECKED.format(what=what, start=start)
        + (" Methods not shown to beat their untrained network are left out." if measure == KNN else ""),
        units=partial(_effect_units, kind=kind, measure=measure),
        judge=judge_mean,
        statistic=f"mean early-training effect of {kind} arms on {what} (fraction of the baseline's improvement)",
        options={"evidence": evidence.race_evidence},
        normalizing_only=True,
    )


def _placebo_guarded(claim: Claim, units, ctx):
    """C3's judge: an identity, inconclusive where the placebo would pass it too."""
    rows = judge_identity(claim, units, ctx)
    for method, why in evidence.placebo_passes(ctx, claim.tolerance).items():
        for row in rows:
            if row.method == method and row.verdict in ("holds", "does not hold"):
                row.verdict, row.reason = "inconclusive", why
    return rows


CATALOG: tuple[Claim, ...] = (
    Claim(
        "C1",
        TEST_EMB_NORM,
        "Without weight decay, embedding norms grow during training.",
        "Trials with weight_decay == 0. Per trial: log(final / untrained) of the mean embedding norm of the clean "
        "test images (the epoch-0 evaluation is the anchor: a training-batch mean misses the first epoch's "
        f"transient); the share of evaluation intervals in which it rose is in the evidence. {CLUSTERED}; holds "
        "if above 0.",
        units=evidence.units_c1,
        judge=judge_mean,
        statistic="mean log(final / untrained test embedding norm), weight_decay 0",
    ),
    Claim(
        "C2a",
        GRAD_COS_ABS,
        "The gradient of the loss w.r.t. the embedding z is orthogonal to z.",
        "Per trial: mean over training epochs of emb_grad_cos_abs_mean (mean |cos(dL/dz, z)| over every sample). "
        f"An identity: holds if the largest per-trial mean is below {ORTHOGONALITY_TOL:g} (float rounding). Not "
        "applicable to a loss that does not L2-normalize z.",
        units=evidence.units_c2a,
        judge=judge_identity,
        statistic="largest per-trial mean |cos(dL/dz, z)|",
        tolerance=ORTHOGONALITY_TOL,
        normalizing_only=True,
    ),
    Claim(
        "C2b",
        schema.GRAD_IDENTITY_DEV,
        "The gradient w.r.t. the embedding scales as 1/||z||.",
        "At every evaluation, on one fixed batch with fixed views: dL/dz_i * ||z_i|| against dL/du_i at the "
        "normalized embedding u_i = z_i / ||z_i||, as vectors, sample by sample (the exact form of the law). "
        f"An identity: holds if the largest relative deviation over every trial is below {IDENTITY_TOL:g} (float "
        "rounding). The across-epoch slope of gradient on norm is described in the evidence, split into its "
        "three terms, never judged: it mixes the law with the falling loss. Not applicable to a loss that does not "
        "L2-normalize z.",
        units=evidence.units_c2b,
        judge=judge_identity,
        statistic="largest relative deviation |dL/dz ||z|| - dL/du| / |dL/du|",
        tolerance=IDENTITY_TOL,
        normalizing_only=True,
    ),
    Claim(
        "C3",
        schema.STEP_TURN_SLOPE,
        "Larger norms move less on the sphere (angular step ~ 1/||z||^2).",
        "At every evaluation, on one fixed batch: the last layer of the embedding path scaled by a in {1/2, 1, 2} "
        "(the embedding becomes a z, the loss and every direction unchanged), one tiny plain-SGD step of that "
        "layer alone, and the mean angle each embedding turns; the slope of log angle on log a. Theory: -2 "
        "(p - 2 under GradScale p). A placebo scales the embedding after the layer (the same norms, theory 0) "
        f"and must miss. An identity: holds if the largest |measured - predicted| over every trial is below "
        f"{SLOPE_TOL:g} and the placebo misses by more; inconclusive where the placebo passes. Not applicable to "
        "a loss that does not L2-normalize z. Momentum adds earlier gradients that turn the embedding as a^-1, "
        "Adam's per-coordinate scaling gives a^-1 (docs: the claims guide).",
        units=evidence.units_c3,
        judge=_placebo_guarded,
        statistic="largest |measured - predicted| slope of log turn on log a",
        tolerance=SLOPE_TOL,
        normalizing_only=True,
    ),
    _effect("C4", "cut", LOSS, "the loss", "its epoch-1 loss", "Cut-initialization speeds up early convergence."),
    _effect(
        "C4",
        "cut",
        KNN,
        "kNN top-1 with the primary k (knn_k[0])",
        "its untrained network's kNN",
        "Cut-initialization speeds up early convergence.",
    ),
    _effect("C5", "gradscale", LOSS, "the loss", "its epoch-1 loss", "GradScale speeds up convergence."),
    _effect(
        "C5",
        "gradscale",
        KNN,
        "kNN top-1 with the primary k (knn_k[0])",
        "its untrained network's kNN",
        "GradScale speeds up convergence.",
    ),
    Claim(
        "C6",
        schema.train_norm("emb", "mean"),
        "Weight decay limits the growth of embedding norms.",
        "Groups of trials equal in everything but weight decay (and a wd:X part of the intervention), same seed: "
        "log(final emb_norm_mean at the lowest / at the highest wd) per group, judged only where the dose (the "
        f"weight-decay difference x the lr summed over training) is >= {MIN_DOSE:g}, enough for decay alone to "
        f"shrink an untouched weight by a few percent; below it the method is not testable. {CLUSTERED}; holds if "
        "above 0.",
        units=evidence.units_c6,
        judge=judge_mean,
        statistic="mean log(final emb_norm_mean at the lowest / at the highest weight decay)",
    ),
    *(
        Claim(
            "C7",
            column,
            statement,
            f"Per trial of a method shown to beat its untrained network (collapsed trials left out): {column} of "
            "the trained network minus that of the same trial's untrained network (epoch 0), with correctness "
            f"from kNN with the primary k (knn_k[0]). {CLUSTERED}; holds if above 0."
            + (" Within each class, so class-level norm differences cannot pose as confidence." if within else ""),
            units=partial(evidence.units_controlled, column=column, need_ood=False),
            judge=judge_mean,
            statistic=f"mean {column} trained minus untrained",
        )
        for column, statement, within in (
            (
                CORRECT_AUROC["emb"],
                "The embedding norm predicts whether the kNN prediction is correct.",
                False,
            ),
            (
                CORRECT_AUROC_WITHIN,
                "Within a class, the embedding norm predicts whether the kNN prediction is correct.",
                True,
            ),
            (
                CORRECT_AUROC["proj"],
                "The projector output's norm predicts whether the kNN prediction is correct.",
                False,
            ),
        )
    ),
    Claim(
        "C8",
        OOD_AUROC,
        "Out-of-distribution samples have smaller embedding norms.",
        "Per trial with an OOD set (holdout_classes, best rotate:K so the classes change with the seed, or "
        "ood_dataset) of a method shown to learn: emb_ood_auroc (AUROC of minus the norm for 'sample is OOD') "
        f"minus the same trial's untrained value. {CLUSTERED}; holds if above 0.",
        units=partial(evidence.units_controlled, column=OOD_AUROC, need_ood=True),
        judge=judge_mean,
        statistic="mean emb_ood_auroc trained minus untrained",
    ),
    Claim(
        "C9",
        CLASS_CONTRAST,
        "Rarer classes get smaller embedding norms.",
        "Pairs: each long-tailed trial (imbalance > 1, intervention none; its class order drawn with the seed) with "
        "the balanced trial of the same seed and settings. Per pair: Spearman correlation, over classes, of the "
        "class's training count in the long-tailed trial and log(mean test norm long-tailed / balanced) of its "
        "embeddings: a class's own norm level cancels, so class identity cannot pose as frequency. "
        f"{CLUSTERED}; holds if above 0.",
        units=evidence.units_c9,
        judge=judge_mean,
        statistic="mean Spearman(class training count, log class norm long-tailed / balanced)",
    ),
)

for _claim in CATALOG:
    register(_claim)
