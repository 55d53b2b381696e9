"""The paper's claims as tests on the results tables: one verdict per claim (and measure).

Why a module of its own: a benchmark about embedding norms earns trust by saying,
claim by claim and with the number behind it, where the paper's statements hold
in its own runs and where the runs cannot decide. Every test is stated here, in
``CLAIMS`` (the text that goes into ``claims.md``) and in the docstring of the
function that computes it.

Verdict rules (``decide``):

* **holds** — the 95% interval of the statistic lies entirely on the claim's
  side of its threshold (for C2b: inside the equivalence band);
* **does not hold** — the interval lies entirely on the other side (C2a: the
  measured |cos| exceeds the tolerance; C2b: the interval misses the band);
* **inconclusive** — anything else, and always when
  - a column the test needs is absent ("column X absent (run predates it)") or
    has no values, or the claim's conditions are absent from the run (no
    weight-decay-0 trials, no OOD set, no long-tailed trials, no baseline...);
  - fewer than ``MIN_SEEDS`` (3) independent units (trials, or seed pairs
    against the baseline) from fewer than ``MIN_SEEDS`` distinct seeds
    back the statistic — the statistic and its interval are still reported;
  - an accuracy-based test (C4/C5 on kNN, C7) would rest on a method not shown
    to beat its own untrained network on kNN@20 (the 95% interval of its gain
    over seeds must lie above 0; ``learning_status``):
    such methods are left out, and when none is left the verdict is inconclusive.

Intervals are two-sided 95% Student-t intervals of a mean over units
(ddof = 1); ``p_value`` is the two-sided one-sample t-test of the same mean
against the threshold (``scipy.stats.ttest_1samp``); when every unit gives the same
value there is no interval and the exact sign test decides (p < 0.05, i.e. >= 6
units). Only completed trials count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

HOLDS, NOT_HOLD, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
VERDICTS = (HOLDS, NOT_HOLD, INCONCLUSIVE)

MIN_SEEDS = 3  # independent units AND distinct seeds a test needs
CONFIDENCE = 0.95
ORTHOGONALITY_TOL = 1e-3  # C2a: largest per-trial mean |cos(dL/dz, z)| still called orthogonal
SLOPE_TARGET = -1.0  # C2b: theory, d log||dL/dz|| / d log||z||
SLOPE_MARGIN = 0.25  # C2b: equivalence band SLOPE_TARGET ± SLOPE_MARGIN
MIN_SLOPE_EPOCHS = 3  # C2b/C3: evaluation epochs a per-trial slope needs (C3: + one per covariate)
MIN_LOG_NORM_RANGE = 0.05  # C2b/C3: a trial whose log-norm varies less has no slope to measure
CONV_FRACTION = 0.5  # C4/C5: target = this fraction of the baseline's total loss decrease / kNN gain
KNN_COLUMN = "knn_top1_k20"  # C4/C5 kNN measure and the "beats its untrained network" rule
KNN_INIT_COLUMN = "knn_top1_k20_init"
AUROC_CHANCE = 0.5
# Columns that must be equal for two trials to be a pair differing only in the intervention (C4/C5)
# or only in weight decay (C6). LR and warm-up are not among them: they belong to an arm's
# protocol (issue 11: GradScale is run with its own long warm-up), and are preferred equal when
# several baselines qualify.
PAIR_COLUMNS = (
    "dataset",
    "backbone",
    "method",
    "seed",
    "epochs",
    "weight_decay",
    "imbalance",
    "holdout_classes",
    "ood_dataset",
    "image_size",
    "batch_size",
    "train_limit",
    "optimizer",
    "method_args",
    "cifar_stem",
)
# A setting is judged on whether it learns (accuracy-based claims): a long-tailed training set is its
# own setting, so its none trials neither vouch for nor count against the balanced ones.
SETTING_COLUMNS = ("dataset", "backbone", "method", "imbalance")


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
        "emb_norm_mean",
        "Without weight decay, embedding norms grow during training.",
        "Trials with weight_decay == 0 (any method/intervention). Per trial: log(last / first) of the curves' "
        "emb_norm_mean over epochs >= 1 (training-batch means; epoch 0 is left out because its row, if any, "
        "holds evaluation-set norms). 95% t-interval of the mean over trials; holds if it lies above 0.",
    ),
    Claim(
        "C2a",
        "emb_grad_cos_abs_mean",
        "The gradient of the loss w.r.t. the embedding z is orthogonal to z.",
        f"Per trial: mean over evaluation epochs of the curves' emb_grad_cos_abs_mean (mean |cos(dL/dz, z)|). "
        f"Holds if the largest per-trial mean is below {ORTHOGONALITY_TOL:g} (float rounding), else does not "
        "hold. Deterministic identity: no interval.",
    ),
    Claim(
        "C2b",
        "emb_grad_norm_mean",
        "The gradient w.r.t. the embedding scales as 1/||z||.",
        f"Per trial: OLS slope of log emb_grad_norm_mean on log emb_norm_mean over epochs >= 1 (>= "
        f"{MIN_SLOPE_EPOCHS} epochs, log-norm range >= {MIN_LOG_NORM_RANGE:g}). 95% t-interval of the mean slope "
        f"over trials; holds if inside {SLOPE_TARGET:g} ± {SLOPE_MARGIN:g}, does not hold if disjoint from it. "
        "Caveat: across epochs the direction gradient also changes as the loss falls, which this slope absorbs.",
    ),
    Claim(
        "C3",
        "probe_angle_change_mean",
        "Larger norms move less on the sphere (angular step ~ 1/||z||^2).",
        "Per trial: OLS of log probe_angle_change_mean on log(probe norm) and log(lr) over evaluation epochs "
        ">= 1 (probe norm = mean of probe_emb_norm_mean at this and the previous evaluation; lr = the curves' lr "
        "of the epoch, dropped as a covariate when constant), controlling for the learning rate. 95% t-interval "
        "of the mean norm coefficient over trials; holds if below 0 (theory: -2).",
    ),
    Claim(
        "C4",
        "loss",
        "Cut-initialization speeds up early convergence.",
        f"Pairs: each cut:c arm (no GradScale) with the intervention-none trial of the same seed and settings "
        f"({', '.join(PAIR_COLUMNS)}). Target: the baseline's first-epoch loss minus {CONV_FRACTION:g} x its "
        "total decrease (first to last epoch). Per pair: epochs_to_target(none) - epochs_to_target(cut) (epochs "
        ">= 1; never reached = last epoch + 1). 95% t-interval of the mean; holds if above 0.",
    ),
    Claim(
        "C4",
        "knn_top1_k20",
        "Cut-initialization speeds up early convergence.",
        f"As C4 on the loss, on the curves' knn_top1_k20: target = untrained (epoch 0 / knn_top1_k20_init) + "
        f"{CONV_FRACTION:g} x the baseline's gain to its final kNN@20. Methods that do not beat their untrained "
        "network are left out.",
    ),
    Claim(
        "C5",
        "loss",
        "GradScale speeds up convergence.",
        "As C4 on the loss, with gradscale:p arms (no cut) against intervention none.",
    ),
    Claim(
        "C5",
        "knn_top1_k20",
        "GradScale speeds up convergence.",
        "As C4 on kNN@20, with gradscale:p arms (no cut) against intervention none.",
    ),
    Claim(
        "C6",
        "emb_norm_mean",
        "Weight decay limits the growth of embedding norms.",
        "Groups of trials equal in everything but weight decay (and a wd:X part of the intervention), same "
        "seed: log(final emb_norm_mean at the lowest wd / at the highest wd) per group. 95% t-interval of the "
        "mean over groups; holds if above 0.",
    ),
    Claim(
        "C7",
        "emb_correct_auroc",
        "The embedding norm predicts whether the kNN prediction is correct.",
        "Per trial: emb_correct_auroc (AUROC of the norm for 'kNN correct'; its 95% bootstrap interval is counted "
        "in the evidence). 95% t-interval of the mean over trials of methods that beat their untrained "
        "network; holds if above 0.5.",
    ),
    Claim(
        "C8",
        "emb_ood_auroc",
        "Out-of-distribution samples have smaller embedding norms.",
        "Per trial with an OOD set (holdout_classes or ood_dataset): emb_ood_auroc, the AUROC of minus the norm "
        "for 'sample is OOD' (suite.measure.diagnostics: > 0.5 means OOD norms are smaller). 95% t-interval of the "
        "mean "
        "over trials; holds if above 0.5.",
    ),
    Claim(
        "C9",
        "emb_freq_spearman",
        "Rarer classes get smaller embedding norms.",
        "Per long-tailed trial (imbalance set, > 1): emb_freq_spearman (Spearman correlation of class training "
        "frequency and mean test norm). 95% t-interval of the mean over trials; holds if above 0.",
    ),
)

ROW_COLUMNS = [
    "claim",
    "measure",
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
    """One line of claims.csv."""

    claim: str
    measure: str
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


@dataclass
class Units:
    """Per-unit values of a test (one per trial, pair or group) with their seeds and labels."""

    values: list[float] = field(default_factory=list)
    seeds: list = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def add(self, value: float, seed, label: str) -> None:
        if value is not None and math.isfinite(value):
            self.values.append(float(value))
            self.seeds.append(seed)
            self.labels.append(label)


# ---------------------------------------------------------------- statistics
@dataclass(frozen=True)
class MeanTest:
    estimate: float
    lo: float
    hi: float
    p_value: float
    n: int
    n_seeds: int
    sign_test: bool = False  # no spread: p is the exact sign test's, there is no interval


def mean_interval(values: Sequence[float], seeds: Sequence, threshold: float) -> MeanTest:
    """Mean with its two-sided 95% Student-t interval (ddof=1) and the one-sample t-test p against ``threshold``.

    With no spread (every unit gives the same value, e.g. every seed pair converges
    the same number of epochs earlier) a t-interval would have zero width, certainty
    from no evidence of variability; then there is no interval and p is the exact
    two-sided sign test (``scipy.stats.binomtest``) of the units against the threshold.
    """
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    n_seeds = len({str(s) for s in seeds})
    if n == 0:
        return MeanTest(math.nan, math.nan, math.nan, math.nan, 0, 0)
    mean = float(x.mean())
    if n < 2:
        return MeanTest(mean, math.nan, math.nan, math.nan, n, n_seeds)
    sd = float(x.std(ddof=1))
    if sd <= 1e-12 * max(1.0, float(np.abs(x).max())):  # equal up to float round-off: no spread
        sd = 0.0
    if sd == 0:
        above, below = int((x > threshold).sum()), int((x < threshold).sum())
        p = float(scipy_stats.binomtest(above, above + below).pvalue) if above + below else 1.0
        return MeanTest(mean, math.nan, math.nan, p, n, n_seeds, sign_test=True)
    half = float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sd / math.sqrt(n)
    p = float(scipy_stats.ttest_1samp(x, threshold).pvalue)
    return MeanTest(mean, mean - half, mean + half, p, n, n_seeds)


def decide(
    test: MeanTest, threshold: float, claim_above: bool = True, band: tuple[float, float] | None = None
) -> tuple[str, str]:
    """(verdict, reason) from a mean test: the rules in the module docstring."""
    if test.n == 0:
        return INCONCLUSIVE, "no usable values"
    if test.n < MIN_SEEDS or test.n_seeds < MIN_SEEDS:
        return INCONCLUSIVE, (
            f"too few seeds: {test.n} unit(s) from {test.n_seeds} distinct seed(s); "
            f"a verdict needs >= {MIN_SEEDS} of each"
        )
    if test.sign_test:
        if not test.p_value < 1 - CONFIDENCE:
            return INCONCLUSIVE, (
                f"no spread: all {test.n} units equal {test.estimate:.4g}, so no t-interval; "
                f"the sign test gives p = {test.p_value:.3g}"
            )
        lo = hi = test.estimate  # significant by the sign test: decide on the common value
    else:
        lo, hi = test.lo, test.hi
    if band is not None:
        if band[0] <= lo and hi <= band[1]:
            return HOLDS, ""
        if hi < band[0] or lo > band[1]:
            return NOT_HOLD, ""
        return INCONCLUSIVE, f"95% interval [{lo:.4g}, {hi:.4g}] overlaps the band [{band[0]:g}, {band[1]:g}] partly"
    above, below = lo > threshold, hi < threshold
    if (above and claim_above) or (below and not claim_above):
        return HOLDS, ""
    if above or below:
        return NOT_HOLD, ""
    return INCONCLUSIVE, f"95% interval [{lo:.4g}, {hi:.4g}] contains the threshold {threshold:g}"


# ---------------------------------------------------------------- table helpers
def _absent(frame: pd.DataFrame | None, columns: Iterable[str], table: str) -> str:
    """Reason a test cannot run for want of columns ("" when all are there with values)."""
    if frame is None:
        return f"no {table} table in the results directory"
    for col in columns:
        if col not in frame.columns:
            return f"column {col} absent from the {table} table (run predates it)"
        if frame[col].notna().sum() == 0:
            return f"column {col} of the {table} table has no values"
    return ""


def _num(frame: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(frame[col], errors="coerce") if col in frame.columns else pd.Series(np.nan, index=frame.index)


def _key(frame: pd.DataFrame) -> pd.Series:
    """Trial identity across merged directories: ``results_dir/trial_id``."""
    rd = frame["results_dir"].astype(str) if "results_dir" in frame.columns else ""
    return rd + "/" + frame["trial_id"].astype(str)


def _text(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return "—"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _key_strings(frame: pd.DataFrame, cols: Sequence[str]) -> pd.Series:
    """One comparable string per row from ``cols`` (NaN/None as "—", 3.0 as "3")."""
    if not cols:
        return pd.Series("", index=frame.index)
    return frame[list(cols)].apply(lambda col: col.map(_text)).agg("|".join, axis=1)


def _label(row: pd.Series) -> str:
    return f"{row.get('method', '?')}/{row.get('intervention', '?')}/s{_text(row.get('seed'))}"


def intervention_parts(spec) -> dict[str, str]:
    """``"cut:3+wd:1e-4"`` -> ``{"cut": "3", "wd": "1e-4"}``; ``none`` -> ``{}``."""
    text = str(spec).strip().lower()
    if text in ("", "none", "nan"):
        return {}
    parts = {}
    for part in text.split("+"):
        kind, _, value = part.strip().partition(":")
        parts[kind] = value
    return parts


def arm_signature(spec) -> str:
    """The intervention without its ``wd:X`` part (weight decay is matched through the weight_decay column)."""
    parts = {k: v for k, v in intervention_parts(spec).items() if k != "wd"}
    return "+".join(f"{k}:{v}" for k, v in sorted(parts.items())) or "none"


def _curve_of(curves: pd.DataFrame, key: str) -> pd.DataFrame:
    return curves[curves["_key"] == key].sort_values("epoch")


def _ols_slopes(y: np.ndarray, covariates: list[np.ndarray]) -> np.ndarray | None:
    """OLS coefficients (without the intercept) of y on the covariates; None if rank-deficient."""
    design = np.column_stack([np.ones_like(y), *covariates])
    if design.shape[0] <= design.shape[1] or np.linalg.matrix_rank(design) < design.shape[1]:
        return None
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return coef[1:]


def learning_status(trials: pd.DataFrame, curves: pd.DataFrame | None = None) -> dict[tuple, tuple[bool | None, str]]:
    """Whether each setting (dataset, backbone, method, imbalance) beats its own untrained network on kNN@20.

    The gain of a trial is ``knn_top1_k20 - knn_top1_k20_init`` (its own epoch-0
    evaluation); a setting is shown to learn when the 95% t-interval of the mean gain
    over its ``none`` trials (all its trials if it has no ``none`` arm) lies above 0
    (with no spread between seeds: the exact sign test, p < 0.05). A positive mean
    whose interval reaches 0, or a single seed, does not show it. The untrained score
    comes from the trials column, else from the curves' epoch-0 row. ``None``
    (unknown) when neither exists: accuracy-based verdicts then cannot rest on the
    setting either.
    """
    out: dict[tuple, tuple[bool | None, str]] = {}
    init = _num(trials, KNN_INIT_COLUMN)
    if init.isna().all() and curves is not None and {"epoch", KNN_COLUMN}.issubset(curves.columns):
        zero = curves[pd.to_numeric(curves["epoch"], errors="coerce") == 0].set_index("_key")[KNN_COLUMN]
        init = _key(trials).map(pd.to_numeric(zero, errors="coerce").groupby(level=0).first())
        init.index = trials.index
    gain = _num(trials, KNN_COLUMN) - init
    cols = [c for c in SETTING_COLUMNS if c in trials.columns]
    groups = trials.groupby(cols, dropna=False, sort=True) if cols else [((), trials)]
    for setting, group in groups:
        setting = tuple(_text(v) for v in (setting if isinstance(setting, tuple) else (setting,)))
        # exactly `none` (a wd:X arm is an intervention too): the README's learning table uses the same trials
        base = group[group["intervention"].map(intervention_parts) == {}] if "intervention" in group else group
        base = base if len(base) else group
        g = gain.loc[base.index].dropna()
        name = "/".join(v if c != "imbalance" else f"imbalance {v}" for c, v in zip(cols, setting) if v != _text(None))
        if g.empty:
            out[setting] = (None, f"{name}: untrained kNN@20 unknown ({KNN_INIT_COLUMN} absent, no epoch-0 row)")
            continue
        seeds = base.loc[g.index, "seed"] if "seed" in base else g.index
        test = mean_interval(g.to_numpy(float), list(seeds), 0.0)
        if test.sign_test:
            learns = test.estimate > 0 and test.p_value < 0.05
        else:
            learns = bool(test.lo > 0)  # NaN (one seed) compares False
        verdict = "beats" if learns else "does not beat" if test.estimate <= 0 else "not shown to beat"
        interval = (
            f"[{test.lo:+.4f}, {test.hi:+.4f}]"
            if math.isfinite(test.lo)
            else "no spread"
            if test.sign_test
            else "no interval"
        )
        final = _num(base, KNN_COLUMN).mean()
        out[setting] = (
            learns,
            f"{name}: kNN@20 {final:.4f} vs untrained {final - test.estimate:.4f}, gain "
            f"{test.estimate:+.4f} {interval} over {test.n} trial(s) ({verdict} its untrained network)",
        )
    return out


def _not_learning_reason(left_out: dict, consequence: str) -> str:
    """Why an accuracy-based test has no setting left (``left_out``: setting -> learning_status text)."""
    unknown = [w for w in left_out.values() if "unknown" in w]
    if len(unknown) == len(left_out):
        return (
            f"cannot tell whether any method beats its untrained network ({KNN_INIT_COLUMN} absent and no "
            f"epoch-0 curve row: run predates them), so {consequence}"
        )
    return (
        f"no method is shown to beat its untrained network on {KNN_COLUMN} (95% interval of the gain above 0; "
        f"see evidence), so {consequence}"
    )


def _setting(row: pd.Series) -> tuple:
    """The key of ``learning_status`` for a trial row (values as text, so NaN matches NaN)."""
    return tuple(_text(row.get(c)) for c in SETTING_COLUMNS if c in row.index)


# ---------------------------------------------------------------- the claims
def _row(claim_id: str, measure: str) -> ClaimRow:
    claim = next(c for c in CLAIMS if c.claim == claim_id and c.measure == measure)
    return ClaimRow(claim.claim, claim.measure, claim.statement, claim.test)


def _fill(
    row: ClaimRow,
    units: Units,
    threshold: float,
    claim_above: bool = True,
    band: tuple[float, float] | None = None,
    extra_evidence: str = "",
) -> ClaimRow:
    test = mean_interval(units.values, units.seeds, threshold)
    row.value, row.ci_lo, row.ci_hi, row.p_value = test.estimate, test.lo, test.hi, test.p_value
    row.n, row.n_seeds = test.n, test.n_seeds
    row.verdict, row.reason = decide(test, threshold, claim_above, band)
    seeds = sorted({_text(s) for s in units.seeds})
    parts = [
        f"{test.n} unit(s): " + ", ".join(units.labels[:12]) + (" …" if len(units.labels) > 12 else ""),
        f"seeds {', '.join(seeds)}" if seeds else "",
    ]
    if extra_evidence:
        parts.append(extra_evidence)
    row.evidence = "; ".join(p for p in parts if p)
    return row


def claim_c1(trials: pd.DataFrame, curves: pd.DataFrame | None) -> ClaimRow:
    """C1 — per wd-0 trial, log(last/first) of curves.emb_norm_mean over epochs >= 1; mean > 0."""
    row = _row("C1", "emb_norm_mean")
    row.statistic = "mean log(last/first epoch emb_norm_mean) over weight_decay=0 trials"
    if reason := _absent(trials, ["weight_decay"], "trials"):
        row.reason = reason
        return row
    wd0 = trials[_num(trials, "weight_decay") == 0]
    if wd0.empty:
        wds = sorted(_num(trials, "weight_decay").dropna().unique())
        listed = ", ".join(f"{w:g}" for w in wds)
        row.reason = f"condition absent: no trial with weight_decay == 0 (weight decays: {listed})"
        return row
    if reason := _absent(curves, ["epoch", "emb_norm_mean"], "curves"):
        row.reason = reason
        return row
    units = Units()
    for _, t in wd0.iterrows():
        c = _curve_of(curves, t["_key"])
        norms = _num(c, "emb_norm_mean")[(_num(c, "epoch") >= 1)].dropna()
        norms = norms[norms > 0]
        if len(norms) >= 2:
            units.add(math.log(norms.iloc[-1] / norms.iloc[0]), t.get("seed"), _label(t))
    if not units.values:
        row.reason = "no weight_decay=0 trial has two epochs (>= 1) with a positive emb_norm_mean"
        return row
    return _fill(row, units, 0.0)


def claim_c2(trials: pd.DataFrame, curves: pd.DataFrame | None) -> list[ClaimRow]:
    """C2a — max over trials of the mean emb_grad_cos_abs_mean < ORTHOGONALITY_TOL.
    C2b — per-trial OLS slope of log emb_grad_norm_mean on log emb_norm_mean (epochs >= 1), mean in -1 ± 0.25."""
    ortho = _row("C2a", "emb_grad_cos_abs_mean")
    ortho.statistic = "largest per-trial mean |cos(dL/dz, z)|"
    if reason := _absent(curves, ["epoch", "emb_grad_cos_abs_mean"], "curves"):
        ortho.reason = reason
    else:
        c = curves[_num(curves, "epoch") >= 1]
        per_trial = _num(c, "emb_grad_cos_abs_mean").groupby(c["_key"]).mean().dropna()
        per_trial = per_trial[per_trial.index.isin(trials["_key"])]
        if per_trial.empty:
            ortho.reason = "no completed trial has emb_grad_cos_abs_mean values"
        else:
            worst = per_trial.idxmax()
            ortho.value, ortho.n = float(per_trial.max()), int(per_trial.size)
            if "seed" in trials:
                ortho.n_seeds = int(trials[trials["_key"].isin(per_trial.index)]["seed"].nunique())
            ortho.verdict = HOLDS if ortho.value < ORTHOGONALITY_TOL else NOT_HOLD
            ortho.evidence = (
                f"{per_trial.size} trial(s); median of the per-trial means {per_trial.median():.3g}; "
                f"largest in {worst.rsplit('/', 1)[-1]}"
            )

    scale = _row("C2b", "emb_grad_norm_mean")
    scale.statistic = "mean over trials of the slope d log||dL/dz|| / d log||z||"
    if reason := _absent(curves, ["epoch", "emb_grad_norm_mean", "emb_norm_mean"], "curves"):
        scale.reason = reason
        return [ortho, scale]
    units, dir_units, flat = Units(), Units(), 0
    for _, t in trials.iterrows():
        c = _curve_of(curves, t["_key"])
        c = c[_num(c, "epoch") >= 1]
        g, z, d = _num(c, "emb_grad_norm_mean"), _num(c, "emb_norm_mean"), _num(c, "emb_dir_grad_norm_mean")
        ok = (g > 0) & (z > 0)
        if ok.sum() < MIN_SLOPE_EPOCHS:
            continue
        lz, lg = np.log(z[ok].to_numpy()), np.log(g[ok].to_numpy())
        if np.ptp(lz) < MIN_LOG_NORM_RANGE:
            flat += 1
            continue
        coef = _ols_slopes(lg, [lz])
        if coef is not None:
            units.add(float(coef[0]), t.get("seed"), _label(t))
        ok_d = ok & (d > 0)
        if ok_d.sum() >= MIN_SLOPE_EPOCHS:  # the direction gradient ||dL/dz||·||z||: by the 1/||z|| law, slope 0
            coef_d = _ols_slopes(np.log(d[ok_d].to_numpy()), [np.log(z[ok_d].to_numpy())])
            if coef_d is not None:
                dir_units.add(float(coef_d[0]), t.get("seed"), _label(t))
    extra = f"{flat} trial(s) left out: log-norm range < {MIN_LOG_NORM_RANGE:g}" if flat else ""
    if dir_units.values:
        d_test = mean_interval(dir_units.values, dir_units.seeds, 0.0)
        extra = "; ".join(
            filter(
                None,
                [
                    extra,
                    (
                        f"not used by the verdict: slope of log emb_dir_grad_norm_mean on log emb_norm_mean (theory 0) "
                        f"{d_test.estimate:.3g} [{d_test.lo:.3g}, {d_test.hi:.3g}] over {d_test.n} trial(s)"
                    ),
                ],
            )
        )
    if not units.values:
        scale.reason = (
            f"no trial has >= {MIN_SLOPE_EPOCHS} epochs with gradient and norm values "
            f"and a log-norm range >= {MIN_LOG_NORM_RANGE:g}"
        )
        scale.evidence = extra
        return [ortho, scale]
    _fill(
        scale,
        units,
        SLOPE_TARGET,
        band=(SLOPE_TARGET - SLOPE_MARGIN, SLOPE_TARGET + SLOPE_MARGIN),
        extra_evidence=extra,
    )
    return [ortho, scale]


def claim_c3(trials: pd.DataFrame, curves: pd.DataFrame | None) -> ClaimRow:
    """C3 — per trial, OLS of log angle on log(mean probe norm of the interval) and log lr; mean norm coef < 0."""
    row = _row("C3", "probe_angle_change_mean")
    row.statistic = "mean over trials of the coefficient of log probe norm in log angle ~ log norm + log lr"
    if reason := _absent(curves, ["epoch", "probe_angle_change_mean", "probe_emb_norm_mean", "lr"], "curves"):
        row.reason = reason
        return row
    units, skipped = Units(), 0
    for _, t in trials.iterrows():
        c = _curve_of(curves, t["_key"])
        c = c[_num(c, "probe_emb_norm_mean").notna()]
        norm = _num(c, "probe_emb_norm_mean").to_numpy()
        interval_norm = np.r_[np.nan, 0.5 * (norm[1:] + norm[:-1])]
        angle, lr, epoch = (_num(c, k).to_numpy() for k in ("probe_angle_change_mean", "lr", "epoch"))
        ok = (epoch >= 1) & (angle > 0) & (interval_norm > 0) & (lr > 0)
        ok &= np.isfinite(angle) & np.isfinite(interval_norm) & np.isfinite(lr)
        ln, la, ll = np.log(interval_norm[ok]), np.log(angle[ok]), np.log(lr[ok])
        covs = [ln] + ([ll] if ll.size and np.ptp(ll) > 1e-12 else [])
        if ln.size < MIN_SLOPE_EPOCHS + len(covs) - 1 or np.ptp(ln) < MIN_LOG_NORM_RANGE:
            skipped += 1
            continue
        coef = _ols_slopes(la, covs)
        if coef is None:
            skipped += 1
            continue
        units.add(float(coef[0]), t.get("seed"), _label(t))
    extra = (
        (
            f"{skipped} trial(s) left out: too few epochs, log-norm range < {MIN_LOG_NORM_RANGE:g} "
            "or collinear norm and lr"
        )
        if skipped
        else ""
    )
    if not units.values:
        row.reason = "no trial has enough evaluation epochs with probe angle, probe norm and lr values"
        row.evidence = extra
        return row
    return _fill(row, units, 0.0, claim_above=False, extra_evidence=extra)


def _pairs(trials: pd.DataFrame, is_arm: Callable[[str], bool]) -> tuple[list[tuple[pd.Series, pd.Series]], list[str]]:
    """(arm trial, baseline trial) pairs: equal PAIR_COLUMNS, baseline arm signature ``none``.

    Among several qualifying baselines the one with the arm's lr and warmup_epochs is taken;
    a pair that stays ambiguous is left out (noted)."""
    cols = [c for c in PAIR_COLUMNS if c in trials.columns]
    sig = trials["intervention"].map(arm_signature)
    keyed = _key_strings(trials, cols)
    bases = trials[sig == "none"]
    notes: list[str] = []
    pairs = []
    for idx, arm in trials[sig.map(is_arm)].iterrows():
        cand = bases[keyed.loc[bases.index] == keyed.loc[idx]]
        if len(cand) > 1:
            same = cand
            for col in ("lr", "warmup_epochs"):
                if col in cand.columns:
                    same = same[same[col].map(_text) == _text(arm[col])]
            cand = same
        if len(cand) == 1:
            pairs.append((arm, cand.iloc[0]))
        elif len(cand) > 1:
            notes.append(f"{_label(arm)}: {len(cand)} equally good none baselines, left out")
    return pairs, notes


def _epochs_to(curve: pd.DataFrame, column: str, target: float, falling: bool) -> tuple[float, bool]:
    """First epoch >= 1 at which ``column`` reaches ``target``; (last epoch + 1, True) if never (censored)."""
    c = curve[(_num(curve, "epoch") >= 1) & _num(curve, column).notna()]
    if c.empty:
        return math.nan, False
    v, e = _num(c, column), _num(c, "epoch")
    hit = e[(v <= target) if falling else (v >= target)]
    if hit.empty:
        return float(e.max() + 1), True
    return float(hit.min()), False


def _convergence(
    claim_id: str, arm_name: str, is_arm: Callable[[str], bool], trials: pd.DataFrame, curves: pd.DataFrame | None
) -> list[ClaimRow]:
    """C4/C5 — per (arm, none) pair of the same seed: epochs_to_target(none) - epochs_to_target(arm); mean > 0."""
    loss_row, knn_row = _row(claim_id, "loss"), _row(claim_id, KNN_COLUMN)
    loss_row.statistic = (
        f"mean over seed pairs of epochs to target (none - {arm_name}); target: loss down by "
        f"{CONV_FRACTION:g} of the baseline's decrease"
    )
    knn_row.statistic = (
        f"mean over seed pairs of epochs to target (none - {arm_name}); target: untrained + "
        f"{CONV_FRACTION:g} of the baseline's kNN@20 gain"
    )
    rows = [loss_row, knn_row]
    if reason := _absent(trials, ["intervention"], "trials"):
        for r in rows:
            r.reason = reason
        return rows
    arms = sorted({s for s in trials["intervention"].map(arm_signature) if is_arm(s)})
    if not arms:
        for r in rows:
            r.reason = f"condition absent: no {arm_name} arm among the interventions"
        return rows
    if not (trials["intervention"].map(arm_signature) == "none").any():
        for r in rows:
            r.reason = "condition absent: no intervention-none baseline trials"
        return rows
    pairs, notes = _pairs(trials, is_arm)
    if not pairs:
        for r in rows:
            r.reason = f"no {arm_name} trial has a none trial with the same seed and settings"
            r.evidence = "; ".join(notes)
        return rows

    # loss
    if reason := _absent(curves, ["epoch", "loss"], "curves"):
        loss_row.reason = reason
    else:
        units, skipped, censored = Units(), [], 0
        for arm, base in pairs:
            bc = _curve_of(curves, base["_key"])
            bl = _num(bc, "loss")[(_num(bc, "epoch") >= 1)].dropna()
            if len(bl) < 2 or not bl.iloc[0] - bl.iloc[-1] > 0:
                skipped.append(f"{_label(base)}: baseline loss did not decrease")
                continue
            target = bl.iloc[0] - CONV_FRACTION * (bl.iloc[0] - bl.iloc[-1])
            eb, _ = _epochs_to(bc, "loss", target, falling=True)
            ea, cens = _epochs_to(_curve_of(curves, arm["_key"]), "loss", target, falling=True)
            censored += cens
            units.add(eb - ea, arm.get("seed"), f"{_label(arm)} {eb - ea:+g}")
        extra = "; ".join(
            filter(
                None,
                [
                    f"{censored} arm trial(s) never reached the target (counted as last epoch + 1)" if censored else "",
                    *dict.fromkeys(skipped),
                    *notes,
                ],
            )
        )
        if units.values:
            _fill(loss_row, units, 0.0, extra_evidence=extra)
        else:
            loss_row.reason, loss_row.evidence = "no usable pair (see evidence)", extra

    # kNN
    if reason := _absent(curves, ["epoch", KNN_COLUMN], "curves"):
        knn_row.reason = reason
        return rows
    learning = learning_status(trials, curves)
    init = _num(trials, KNN_INIT_COLUMN)
    units, skipped, censored, left_out = Units(), [], 0, {}
    for arm, base in pairs:
        learns, why = learning.get(_setting(base), (None, "unknown setting"))
        if not learns:
            left_out[_setting(base)] = why
            continue
        bc = _curve_of(curves, base["_key"])
        zero = _num(bc, KNN_COLUMN)[_num(bc, "epoch") == 0].dropna()
        a0 = float(zero.iloc[0]) if len(zero) else float(init.get(base.name, math.nan))
        a1 = float(pd.to_numeric(pd.Series([base.get(KNN_COLUMN)]), errors="coerce").iloc[0])
        if not (math.isfinite(a0) and math.isfinite(a1) and a1 > a0):
            skipped.append(f"{_label(base)}: no kNN@20 gain over the untrained network")
            continue
        target = a0 + CONV_FRACTION * (a1 - a0)
        eb, _ = _epochs_to(bc, KNN_COLUMN, target, falling=False)
        ea, cens = _epochs_to(_curve_of(curves, arm["_key"]), KNN_COLUMN, target, falling=False)
        censored += cens
        units.add(eb - ea, arm.get("seed"), f"{_label(arm)} {eb - ea:+g}")
    extra = "; ".join(
        filter(
            None,
            [
                *(f"left out {w}" for w in left_out.values()),
                f"{censored} arm trial(s) never reached the target" if censored else "",
                *dict.fromkeys(skipped),
                *notes,
            ],
        )
    )
    if units.values:
        _fill(knn_row, units, 0.0, extra_evidence=extra)
    else:
        knn_row.evidence = extra
        knn_row.reason = (
            _not_learning_reason(left_out, "kNN cannot measure their convergence")
            if left_out
            else "no usable pair (see evidence)"
        )
    return rows


def _only(kind: str) -> Callable[[str], bool]:
    return lambda sig: sig != "none" and set(intervention_parts(sig)) == {kind}


def claim_c6(trials: pd.DataFrame) -> ClaimRow:
    """C6 — groups equal but for weight decay: log(norm at lowest wd / norm at highest wd) > 0."""
    row = _row("C6", "emb_norm_mean")
    row.statistic = "mean over groups of log(final emb_norm_mean at lowest / at highest weight decay)"
    if reason := _absent(trials, ["weight_decay", "emb_norm_mean", "intervention"], "trials"):
        row.reason = reason
        return row
    cols = [c for c in PAIR_COLUMNS if c in trials.columns and c != "weight_decay"] + [
        c for c in ("lr", "warmup_epochs") if c in trials.columns
    ]
    frame = trials.assign(
        _arm=trials["intervention"].map(arm_signature),
        _wd=_num(trials, "weight_decay"),
        _norm=_num(trials, "emb_norm_mean"),
    )
    units = Units()
    for _, g in frame.groupby(cols + ["_arm"], dropna=False, sort=True):
        g = g[g["_wd"].notna() & (g["_norm"] > 0)]
        if g["_wd"].nunique() < 2:
            continue
        lo_wd, hi_wd = g.loc[g["_wd"].idxmin()], g.loc[g["_wd"].idxmax()]
        units.add(
            math.log(lo_wd["_norm"] / hi_wd["_norm"]),
            lo_wd.get("seed"),
            f"{lo_wd.get('method')}/{lo_wd['_arm']}/s{_text(lo_wd.get('seed'))} "
            f"wd {lo_wd['_wd']:g} vs {hi_wd['_wd']:g}",
        )
    if not units.values:
        row.reason = "condition absent: no trials that differ only in weight decay (same method, seed, settings)"
        return row
    return _fill(row, units, 0.0)


def _auroc_claim(
    row: ClaimRow,
    trials: pd.DataFrame,
    column: str,
    threshold: float,
    subset: pd.Series | None,
    condition: str,
    accuracy_based: bool,
    curves: pd.DataFrame | None,
) -> ClaimRow:
    """Mean over trials of a per-trial statistic, its t-interval, and the per-trial intervals counted."""
    if column not in trials.columns:
        row.reason = f"column {column} absent from the trials table (run predates it)"
        return row
    sel = trials if subset is None else trials[subset]
    if sel.empty:
        row.reason = f"condition absent: {condition}"
        return row
    extra: list[str] = []
    if accuracy_based:
        learning = learning_status(sel, curves)
        bad = {s: why for s, (ok, why) in learning.items() if not ok}
        keep = sel.apply(lambda r: bool(learning.get(_setting(r), (False,))[0]), axis=1) if len(sel) else sel
        extra += [f"left out {why}" for why in bad.values()]
        sel = sel[keep.astype(bool)]
        if sel.empty:
            row.reason = _not_learning_reason(bad, "kNN correctness cannot support the claim")
            row.evidence = "; ".join(extra)
            return row
    values = _num(sel, column)
    note_col = f"{column}_note"
    nan_rows = sel[values.isna()]
    if len(nan_rows):
        notes = (
            nan_rows[note_col].fillna("no note").astype(str)
            if note_col in sel
            else pd.Series("no note", index=nan_rows.index)
        )
        extra.append(
            f"{len(nan_rows)} trial(s) NaN, left out: "
            + "; ".join(f"{_label(t)} ({notes.loc[i] or 'no note'})" for i, t in nan_rows.iterrows())
        )
    lo_c, hi_c = f"{column}_ci_lo", f"{column}_ci_hi"
    if lo_c in sel and hi_c in sel:
        lo, hi = _num(sel, lo_c), _num(sel, hi_c)
        extra.append(
            f"per-trial 95% bootstrap intervals: {(lo > threshold).sum()} above {threshold:g}, "
            f"{(hi < threshold).sum()} below, {((lo <= threshold) & (hi >= threshold)).sum()} spanning it"
        )
    units = Units()
    for idx, t in sel.iterrows():
        units.add(values.loc[idx], t.get("seed"), f"{_label(t)} {values.loc[idx]:.3f}")
    if not units.values:
        row.reason = f"{column} is NaN in every trial where the condition holds"
        row.evidence = "; ".join(extra)
        return row
    return _fill(row, units, threshold, extra_evidence="; ".join(extra))


def claim_c7(trials: pd.DataFrame, curves: pd.DataFrame | None) -> ClaimRow:
    """C7 — mean emb_correct_auroc over trials of methods that beat their untrained network > 0.5."""
    row = _row("C7", "emb_correct_auroc")
    row.statistic = "mean emb_correct_auroc over trials"
    return _auroc_claim(row, trials, "emb_correct_auroc", AUROC_CHANCE, None, "", True, curves)


def _set(series: pd.Series) -> pd.Series:
    text = series.astype(str).str.strip().str.lower()
    return series.notna() & ~text.isin(["", "nan", "none", "null", "[]", "<na>"])


def claim_c8(trials: pd.DataFrame) -> ClaimRow:
    """C8 — mean emb_ood_auroc (score = -norm, OOD positive) over trials with an OOD set > 0.5."""
    row = _row("C8", "emb_ood_auroc")
    row.statistic = "mean emb_ood_auroc (AUROC of -norm for OOD) over trials with an OOD set"
    has_ood = pd.Series(False, index=trials.index)
    for col in ("holdout_classes", "ood_dataset"):
        if col in trials.columns:
            has_ood |= _set(trials[col])
    return _auroc_claim(
        row,
        trials,
        "emb_ood_auroc",
        AUROC_CHANCE,
        has_ood,
        "no trial has holdout_classes or ood_dataset set",
        False,
        None,
    )


def claim_c9(trials: pd.DataFrame) -> ClaimRow:
    """C9 — mean emb_freq_spearman over long-tailed trials (imbalance > 1) > 0."""
    row = _row("C9", "emb_freq_spearman")
    row.statistic = "mean emb_freq_spearman over long-tailed trials"
    if "imbalance" not in trials.columns:
        row.reason = "column imbalance absent from the trials table (run predates it)"
        return row
    long_tailed = _num(trials, "imbalance") > 1
    return _auroc_claim(
        row,
        trials,
        "emb_freq_spearman",
        0.0,
        long_tailed,
        "no long-tailed trial (imbalance unset in every trial)",
        False,
        None,
    )


def evaluate_claims(trials: pd.DataFrame, curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """All claims on merged tables (``suite.analysis.load.load_results``); one row per claim and measure."""
    trials = trials.copy()
    if "status" in trials.columns:
        trials = trials[trials["status"].astype(str) == "completed"]
    trials["_key"] = _key(trials)
    if "intervention" not in trials.columns:
        trials["intervention"] = "none"
    if curves is not None:
        curves = curves.copy()
        curves["_key"] = _key(curves)
        curves = curves[curves["_key"].isin(trials["_key"])]
    rows: list[ClaimRow] = [
        claim_c1(trials, curves),
        *claim_c2(trials, curves),
        claim_c3(trials, curves),
        *_convergence("C4", "cut", _only("cut"), trials, curves),
        *_convergence("C5", "gradscale", _only("gradscale"), trials, curves),
        claim_c6(trials),
        claim_c7(trials, curves),
        claim_c8(trials),
        claim_c9(trials),
    ]
    frame = pd.DataFrame([asdict(r) for r in rows], columns=ROW_COLUMNS)
    frame[["n", "n_seeds"]] = frame[["n", "n_seeds"]].astype(int)
    return frame
