"""The result schema: the one place that names every column of the ``trials``,
``curves`` and ``norm_bins`` tables and says what each column is.

Training and evaluation build their rows with these names; the sweep tables,
the leaderboard, the claims and the command line read them back through the
same functions (``knn(k)``, ``parse_knn(name)``, ``role(name)``...), so a
column is spelled in one place and a reader can ask which k a run measured
instead of assuming one.

Roles of a ``trials`` column (``role``):

* ``identity``   -- which trial: ``trial_id``, ``sweep``, ``results_dir``;
* ``status``     -- how it ended: ``status``, ``error``, ``notes``, ``epochs_completed``
                    and a search sweep's ``search_*`` bookkeeping;
* ``science``    -- a config field that is part of the trial id (`suite.config`);
* ``run``        -- a config field that says how the trial ran, plus what the
                    run resolved on the machine (``torch_threads``, ``torch_version``,
                    ``cpu_model``: the same seed gives the same numbers only on the same
                    machine, software and threads);
* ``outcome``    -- everything measured.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from suite.config.model import CONFIG_FIELDS, RUN_FIELDS, SCIENCE_FIELDS, TrialConfig

# ---------------------------------------------------------------- identity and status
TRIAL_ID, SWEEP, RESULTS_DIR = "trial_id", "sweep", "results_dir"
STATUS, ERROR, NOTES, EPOCHS_COMPLETED = "status", "error", "notes", "epochs_completed"
LAST_CHECKPOINT = "last_checkpoint"  # the newest complete checkpoint of the trial: "epoch N (path)"
SEARCH_PREFIX = "search_"
# A search sweep's bookkeeping (suite.sweep.search): which cell a trial samples, the validation
# metric and mode that choose within the cell, and each sampled value (``search_sample_<key>``).
SEARCH_CELL, SEARCH_METRIC, SEARCH_MODE = "search_cell", "search_metric", "search_mode"
SEARCH_INDEX = "search_index"  # the planned trial's position (restores the plan's order)
SEARCH_SAMPLE_PREFIX = "search_sample_"
IDENTITY_COLUMNS = (TRIAL_ID, SWEEP, RESULTS_DIR)
STATUS_COLUMNS = (STATUS, ERROR, NOTES, EPOCHS_COMPLETED, LAST_CHECKPOINT)

RUNNING, COMPLETED, FAILED, INTERRUPTED, STOPPED = "running", "completed", "failed", "interrupted", "stopped"
STATUSES = (RUNNING, COMPLETED, FAILED, INTERRUPTED, STOPPED)
FINISHED_STATUSES = (COMPLETED, STOPPED)  # ended as planned (STOPPED: by a scheduler, on purpose)
INCOMPLETE_STATUSES = (RUNNING, FAILED, INTERRUPTED)

# ---------------------------------------------------------------- vectors and norm statistics
# Column prefix -> what the vector is. ``emb`` is the vector the loss L2-normalizes
# (per method: docs/guides/methods), ``feat`` the backbone features, ``proj`` the
# projector output where a predictor sits on it (the method's ``encode_heads``; its ``emb``
# is then the predictor output).
VECTORS = {"emb": "embedding", "feat": "features", "proj": "projection"}
EVAL_NORM_STATS = ("mean", "std", "q05", "q25", "q50", "q75", "q95")
TRAIN_NORM_STATS = ("mean", "std", "q05", "q50", "q95")
PROGRESS_NORM_STATS = ("mean", "std")  # evaluation-set norms in every evaluated curves row
EVAL_SPLITS = ("test", "ood")


def train_norm(vector: str, stat: str) -> str:
    """Norms of the training batches' ``vector`` over an epoch (curves), or over the last epoch (trials)."""
    return f"{vector}_norm_{stat}"


def eval_norm(split: str, vector: str, stat: str) -> str:
    """Norms of ``vector`` over the clean ``split`` images (test or ood) at an evaluation."""
    return f"{split}_{vector}_norm_{stat}"


# ---------------------------------------------------------------- accuracies
LINEAR_TOP1 = "linear_top1"
LINEAR_L2 = "linear_l2"  # the L2 penalty the lbfgs probe chose on its validation split (absent for adamw)
INIT_SUFFIX = "_init"
_KNN = re.compile(r"^(val_)?knn_top1_k(\d+)$")


def knn(k: int, split: str = "test") -> str:
    """kNN top-1 with ``k`` neighbours: on the test set (``knn_top1_k20``) or the validation split."""
    return f"knn_top1_k{int(k)}" if split == "test" else f"val_knn_top1_k{int(k)}"


def primary_k(knn_k) -> int:
    """The k that decides "correct" for the norm diagnostics, "learns" for the claims and the
    kNN convergence targets: the first of the trial's ``knn_k`` (200 by default, the paper's)."""
    values = knn_k if isinstance(knn_k, (list, tuple)) else _as_list(knn_k)
    return int(values[0])


def _as_list(value) -> list[int]:
    import json

    if hasattr(value, "tolist"):
        return [int(v) for v in value.tolist()]
    return [int(v) for v in json.loads(value)] if isinstance(value, str) else [int(value)]


def knn_init(k: int) -> str:
    """The untrained network's (epoch 0) test kNN top-1: the floor every gain is measured against."""
    return knn(k) + INIT_SUFFIX


def init_of(column: str) -> str:
    return column + INIT_SUFFIX


def parse_knn(column: str) -> tuple[str, int] | None:
    """``("test", 20)`` for ``knn_top1_k20``, ``("val", 20)`` for ``val_knn_top1_k20``, None otherwise."""
    match = _KNN.match(column)
    return (("val" if match.group(1) else "test"), int(match.group(2))) if match else None


def knn_columns(columns: Iterable[str], split: str = "test") -> dict[int, str]:
    """{k: column} of the kNN columns of ``split`` among ``columns``, by k descending."""
    found = {}
    for column in columns:
        parsed = parse_knn(column)
        if parsed is not None and parsed[0] == split:
            found[parsed[1]] = column
    return dict(sorted(found.items(), reverse=True))


def search_sample(key: str) -> str:
    """The column holding the value a search sampled for config ``key`` (dotted under method_args)."""
    return SEARCH_SAMPLE_PREFIX + key


def is_accuracy(column: str) -> bool:
    """Accuracy columns (fractions in the tables, percent on screen)."""
    base = column[: -len(INIT_SUFFIX)] if column.endswith(INIT_SUFFIX) else column
    return parse_knn(base) is not None or base == LINEAR_TOP1


def is_test_metric(column: str) -> bool:
    """Measured on the test set (kNN, linear probe, test-split norms): reported, never selected on."""
    base = column[: -len(INIT_SUFFIX)] if column.endswith(INIT_SUFFIX) else column
    parsed = parse_knn(base)
    return (parsed is not None and parsed[0] == "test") or base.startswith((LINEAR_TOP1, EVAL_SPLITS[0] + "_"))


# ---------------------------------------------------------------- diagnostics
CORRECT_AUROC, OOD_AUROC, FREQ_SPEARMAN = "correct_auroc", "ood_auroc", "freq_spearman"
CORRECT_AUROC_WITHIN = "correct_auroc_within"  # within each class, so class-level norm and accuracy cannot pose as it
DIAGNOSTICS = (CORRECT_AUROC, CORRECT_AUROC_WITHIN, OOD_AUROC, FREQ_SPEARMAN)
# The diagnostics the untrained network (epoch 0) gets too: the controls of claims C7 and C8.
CONTROLLED_DIAGNOSTICS = (CORRECT_AUROC, CORRECT_AUROC_WITHIN, OOD_AUROC)


def diagnostic(vector: str, name: str) -> str:
    """A norm-as-confidence diagnostic of ``vector``: ``emb_correct_auroc``, ``feat_ood_auroc``, ..."""
    return f"{vector}_{name}"


CI_SUFFIXES = ("_ci_lo", "_ci_hi")  # a diagnostic's 95% interval, beside it in the trials table


def ci_lo(column: str) -> str:
    return column + CI_SUFFIXES[0]


def ci_hi(column: str) -> str:
    return column + CI_SUFFIXES[1]


def note(column: str) -> str:
    """Why ``column`` is NaN in a row ("" when it is not)."""
    return f"{column}_note"


# ---------------------------------------------------------------- training dynamics (curves)
EPOCH, LOSS, LR = "epoch", "loss", "lr"
GRAD_NORM, GRAD_COS_ABS, DIR_GRAD_NORM = "emb_grad_norm_mean", "emb_grad_cos_abs_mean", "emb_dir_grad_norm_mean"
GRAD_COLUMNS = (GRAD_NORM, GRAD_COS_ABS, DIR_GRAD_NORM)
PROBE_NORM, PROBE_ANGLE = "probe_emb_norm_mean", "probe_angle_change_mean"
# The mechanism checks at every evaluation (suite.measure.mechanism): claims C2b and C3.
GRAD_IDENTITY_DEV = "emb_grad_identity_dev"
STEP_TURN_SLOPE, STEP_TURN_PLACEBO = "emb_step_turn_slope", "emb_step_turn_slope_placebo"
MECHANISM_COLUMNS = (GRAD_IDENTITY_DEV, STEP_TURN_SLOPE, STEP_TURN_PLACEBO)
# Label-free ranks of the clean training set's representations at every evaluation (suite.measure.rank).
EMB_RANKME, FEAT_RANKME = "emb_rankme", "feat_rankme"
RANK_COLUMNS = (EMB_RANKME, FEAT_RANKME)
IMAGES_PER_S, EPOCH_TIME = "images_per_s", "epoch_time_s"

# ---------------------------------------------------------------- trial totals
FINAL_LOSS, TRAIN_TIME, EVAL_TIME, WALL_TIME = "final_loss", "train_time_s", "eval_time_s", "wall_time_s"
TORCH_THREADS = "torch_threads"  # the intra-op threads the trial ran with (a run fact)
TORCH_VERSION, CPU_MODEL = "torch_version", "cpu_model"  # the software and CPU it ran on (run facts)
TRAIN_IMAGES, LR_SUM = "train_images", "lr_sum"  # the training split's size; the sum of the lr over every step
LOWER_IS_BETTER = (FINAL_LOSS, TRAIN_TIME, EVAL_TIME, WALL_TIME, EPOCH_TIME, LOSS)

# ---------------------------------------------------------------- norm bins
BIN_VECTOR, BINNING, BIN = "vector", "binning", "bin"
BIN_COLUMNS = ("binning", "bin", "norm_lo", "norm_hi", "count", "accuracy")
NORM_BINS_COLUMNS = (TRIAL_ID, BIN_VECTOR, *BIN_COLUMNS)

# ---------------------------------------------------------------- class norms (per trial, vector and class)
CLASS, TRAIN_COUNT, TEST_COUNT, CLASS_NORM_MEAN = "class", "train_count", "test_count", "norm_mean"
CLASS_NORMS_COLUMNS = (TRIAL_ID, BIN_VECTOR, CLASS, TRAIN_COUNT, TEST_COUNT, CLASS_NORM_MEAN)
FREQUENCY_ORDER = "long_tail_order"  # trials: classes from most to least frequent (long-tailed training sets)
OOD_SET = "ood_set"  # trials: what the out-of-distribution set is (the classes a rotate:K holdout drew, ...)

# ---------------------------------------------------------------- per-sample evaluation norms (one file per trial)
EVAL_NORMS_COLUMNS = ("split", "vector", "norm", "label", "correct")

# ---------------------------------------------------------------- roles
IDENTITY, STATUS_ROLE, SCIENCE, RUN, OUTCOME = "identity", "status", "science", "run", "outcome"
RUN_FACTS = (TORCH_THREADS, TORCH_VERSION, CPU_MODEL)
TABLES = ("trials", "curves", "norm_bins", "class_norms")


def role(column: str) -> str:
    """What a ``trials`` column is: identity, status, science, run or outcome (see the module docstring)."""
    if column in IDENTITY_COLUMNS:
        return IDENTITY
    if column in STATUS_COLUMNS or column.startswith(SEARCH_PREFIX):
        return STATUS_ROLE
    if column in SCIENCE_FIELDS:
        return SCIENCE
    if column in RUN_FIELDS or column in RUN_FACTS:
        return RUN
    return OUTCOME


def science_columns(columns: Iterable[str]) -> list[str]:
    return [c for c in columns if role(c) == SCIENCE]


def run_columns(columns: Iterable[str]) -> list[str]:
    return [c for c in columns if role(c) == RUN]


def outcome_columns(columns: Iterable[str]) -> list[str]:
    return [c for c in columns if role(c) == OUTCOME]


# ---------------------------------------------------------------- config columns the readers group, pair and label by
def _config_column(name: str) -> str:
    """``name``, checked to be a field of the trial config (so a renamed field fails on import, not in a reader)."""
    if name not in CONFIG_FIELDS:
        raise ValueError(f"{name!r} is not a field of the trial config (suite.config.model)")
    return name


NAME, DATASET, BACKBONE, METHOD = (_config_column(c) for c in ("name", "dataset", "backbone", "method"))
INTERVENTION, EPOCHS, SEED = (_config_column(c) for c in ("intervention", "epochs", "seed"))
IMBALANCE, KNN_K, WEIGHT_DECAY = (_config_column(c) for c in ("imbalance", "knn_k", "weight_decay"))

# ---------------------------------------------------------------- the leaderboard's columns (leaderboard.csv)
# One row per group of trials (suite.analysis.leaderboard.aggregate). Beside the group keys (config
# columns), every aggregated column ``<c>`` has ``over_seeds(c, MEAN)`` and ``over_seeds(c, STD)``, each
# headline accuracy its difference against the baseline (``delta``) and its gain over the untrained
# network (``gain``), and the convergence race its counts (``convergence``).
GROUP, N, N_EXPECTED, N_SHORT, SEEDS = "group", "n", "n_expected", "n_short", "seeds"
BASELINE_GROUP, IS_BASELINE, BASELINE_DIFFERS, BEST = "baseline_group", "is_baseline", "baseline_differs", "best"
MEAN, STD = "mean", "std"
DELTA_PARTS = ("ci_lo", "ci_hi", "n", "paired", "significant")  # beside delta(c): its 95% interval and how
GAIN_PARTS = ("mean", "std", "ci_lo", "ci_hi", "n")  # of the per-trial gain over seeds
CONVERGENCE_MEASURES = ("loss", "knn")  # the race to the baseline's target, on the loss and on the primary kNN
RACE_OUTCOMES = ("faster", "slower", "tied", "censored")  # pairs counted per outcome (censored: never reached)


def _part(prefix: str, column: str, part: str, parts: tuple[str, ...]) -> str:
    if part and part not in parts:
        raise ValueError(f"{part!r} is not one of {parts}")
    return f"{prefix}_{column}" + (f"_{part}" if part else "")


def over_seeds(column: str, stat: str) -> str:
    """A group's ``mean`` or ``std`` (ddof=1) of ``column`` over its trials: ``knn_top1_k200_mean``."""
    if stat not in (MEAN, STD):
        raise ValueError(f"{stat!r} is not one of {(MEAN, STD)}")
    return f"{column}_{stat}"


def delta(column: str, part: str = "") -> str:
    """A group's difference of ``column`` against its baseline group (``delta_knn_top1_k200``) or one of
    its `DELTA_PARTS` (``delta_knn_top1_k200_ci_lo``)."""
    return _part("delta", column, part, DELTA_PARTS)


def gain(column: str, part: str = "") -> str:
    """A group's gain of ``column`` over the untrained network: one of `GAIN_PARTS` (``gain_linear_top1_mean``);
    without ``part`` the headline column that shows them (``gain_linear_top1``)."""
    return _part("gain", column, part, GAIN_PARTS)


def convergence(measure: str, outcome: str = "") -> str:
    """A group's count of seed pairs per `RACE_OUTCOMES` in the race on ``measure`` (``conv_loss_faster``);
    without ``outcome`` the headline column that shows them (``conv_loss``)."""
    if measure not in CONVERGENCE_MEASURES:
        raise ValueError(f"{measure!r} is not one of {CONVERGENCE_MEASURES}")
    return _part("conv", measure, outcome, RACE_OUTCOMES)


# ---------------------------------------------------------------- what a column is
_FIXED = {
    TRIAL_ID: "the trial's id: method, backbone, dataset, intervention and seed, then a hash of its science",
    SWEEP: "the name of the sweep the trial ran in (a sweep's tables only)",
    RESULTS_DIR: "the results directory a reader loaded the row from",
    STATUS: "how the trial ended: " + ", ".join(STATUSES),
    ERROR: "why a trial failed or was interrupted",
    NOTES: "what normbench adjusted (e.g. a shortened warm-up) or how a scheduler stopped the trial",
    EPOCHS_COMPLETED: "epochs trained",
    LAST_CHECKPOINT: "the newest complete checkpoint: epoch N (path)",
    SEARCH_CELL: "the search cell (grid point x case x seed) the trial samples",
    SEARCH_METRIC: "the validation metric that chooses within the cell",
    SEARCH_MODE: "max or min: how the search metric chooses",
    SEARCH_INDEX: "the planned trial's position in the sweep",
    LINEAR_TOP1: "linear-probe top-1 on the test set (fraction)",
    LINEAR_L2: "the L2 penalty the lbfgs probe chose on its validation split",
    EPOCH: "the epoch (0: the untrained network)",
    LOSS: "mean SSL loss over the epoch's batches",
    LR: "learning rate at the epoch's last step",
    GRAD_NORM: "mean norm of the loss's gradient at the embedding, before GradScale",
    GRAD_COS_ABS: "mean |cos| between that gradient and the embedding (theory: 0)",
    DIR_GRAD_NORM: "mean gradient norm x embedding norm (the 1/||z|| law makes it norm-free)",
    PROBE_NORM: "mean embedding norm of the fixed probe images at an evaluation",
    PROBE_ANGLE: "mean angle (radians) the probe embeddings turned since the previous evaluation",
    GRAD_IDENTITY_DEV: "largest relative deviation of dL/dz * ||z|| from dL/du at u = z/||z|| on a fixed batch "
    "(claim C2b; float rounding when the loss normalizes z)",
    STEP_TURN_SLOPE: "slope of log(turn of one plain-SGD step of the embedding layer) on log(a) when its "
    "parameters are scaled by a (claim C3; theory -2, p - 2 under GradScale p)",
    STEP_TURN_PLACEBO: "the same slope when the embedding is scaled by a after the layer (the placebo; theory 0)",
    EMB_RANKME: "RankMe of the clean training set's embeddings: exp of the entropy of their normalized singular "
    "values (Garrido et al. 2023; about 1 when collapsed, at most min(images, dimensions))",
    FEAT_RANKME: "the same effective rank of the clean training set's backbone features",
    TRAIN_IMAGES: "images in the training split the trial trained on",
    LR_SUM: "the learning rate summed over every optimizer step (weight decay x lr_sum: the decay's dose)",
    IMAGES_PER_S: "training throughput",
    EPOCH_TIME: "wall time of the epoch",
    FINAL_LOSS: "the last epoch's loss",
    TRAIN_TIME: "seconds spent training",
    EVAL_TIME: "seconds spent in the final evaluation",
    WALL_TIME: "seconds from start to end of the trial",
    TORCH_THREADS: "torch intra-op threads the trial ran with",
    TORCH_VERSION: "the torch version it ran on",
    CPU_MODEL: "the CPU it ran on",
    FREQUENCY_ORDER: "classes from most to least frequent in a long-tailed training set",
    OOD_SET: "the out-of-distribution set: the held-out classes (rotate:K draws them with the seed) or a dataset",
    BIN_VECTOR: "the vector measured: embedding, features or projection",
    BINNING: "decile (equal-count bins) or equal_width (equal-width bins of the min-max-normalized norm)",
    BIN: "the bin's index",
    "norm_lo": "the bin's lower norm edge",
    "norm_hi": "the bin's upper norm edge",
    "count": "test images in the bin",
    "accuracy": "kNN top-1 (the primary k) of the bin's images",
    CLASS: "the class",
    TRAIN_COUNT: "the class's training images",
    TEST_COUNT: "the class's test images",
    CLASS_NORM_MEAN: "mean test norm of the class",
    "split": "test or ood: the clean images the norm was measured on",
    "norm": "the image's norm",
    "label": "the image's class",
    "correct": "whether the kNN prediction for the image is correct",
}
_DIAGNOSTIC_TEXT = {
    CORRECT_AUROC: "AUROC of the norm for 'the kNN prediction is correct'",
    CORRECT_AUROC_WITHIN: "AUROC of the norm for 'the kNN prediction is correct' within each class, averaged "
    "over classes weighted by their test images",
    OOD_AUROC: "AUROC of minus the norm for 'the image is out of distribution'",
    FREQ_SPEARMAN: "Spearman correlation of class frequency and class mean norm",
}
_DERIVED = {  # suffix -> what the column says about the column it extends
    CI_SUFFIXES[0]: "lower end of the 95% interval of {}",
    CI_SUFFIXES[1]: "upper end of the 95% interval of {}",
    "_note": "why {} is NaN (empty when it is not)",
}


def owner(column: str) -> str | None:
    """What ``column`` of a results table is, in a few words; None when the schema does not name it.

    Every column a trial writes has an answer (a test runs real trials and checks), so a column
    cannot appear in the tables without an entry here."""
    if column in _FIXED:
        return _FIXED[column]
    if column in CONFIG_FIELDS:
        return f"config ({role(column)}): {TrialConfig.model_fields[column].description}"
    if column.startswith(SEARCH_SAMPLE_PREFIX):
        return f"the value the search sampled for {column[len(SEARCH_SAMPLE_PREFIX) :]}"
    if column.endswith(INIT_SUFFIX) and (
        parse_knn(column[: -len(INIT_SUFFIX)])
        or any(column == init_of(diagnostic(v, d)) for v in VECTORS for d in CONTROLLED_DIAGNOSTICS)
    ):
        return f"{owner(column[: -len(INIT_SUFFIX)])}, of the untrained network (epoch 0)"
    if parsed := parse_knn(column):
        split, k = parsed
        return f"kNN top-1 with k={k} on the {'validation split' if split == 'val' else 'test set'} (fraction)"
    for suffix, text in _DERIVED.items():
        if column.endswith(suffix) and owner(column[: -len(suffix)]) is not None:
            return text.format(column[: -len(suffix)])
    for vector, what in VECTORS.items():
        for name, text in _DIAGNOSTIC_TEXT.items():
            if column == diagnostic(vector, name):
                return f"{text}, on the {what}"
        for stat in TRAIN_NORM_STATS:
            if column == train_norm(vector, stat):
                return f"{stat} of the {what} norm over the training batches (of the last epoch, in trials)"
        for split in EVAL_SPLITS:
            for stat in EVAL_NORM_STATS:
                if column == eval_norm(split, vector, stat):
                    return f"{stat} of the {what} norm over the clean {split} images"
    return None
