"""The trial config: every knob of one trial, each marked *science* or *run setting*.

A trial is fully described by a `TrialConfig`. Its fields fall in two kinds:

* **science** -- what is trained and measured (method and its hyper-parameters,
  backbone, dataset and its variants, intervention, optimisation, augmentation,
  seed, evaluation protocol). Changing one is meant to change the result, so
  the trial id hashes them.
* **run settings** -- how the trial is executed (device, precision, threads,
  evaluation batch size, checkpoint frequency, workers, compile). They are
  recorded in every row of the tables but never change the trial id, so
  `normbench sweep --update` keeps a finished trial whose run settings alone
  changed.

The rule for a field added later: it is science when changing it is meant to
change the result. Every field declares its kind and an example value
(``examples``), which the documentation and the identity tests read.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from methods import method_names
from methods.intervention_spec import Intervention, parse_intervention

if TYPE_CHECKING:
    from methods.base import HParams
    from suite.data.plan import SplitsPlan

SCIENCE, RUN = "science", "run"
OPTIMIZERS = ("sgd", "lars", "adamw")
LINEAR_PROBES = ("lbfgs", "adamw")
PRECISIONS = ("auto", "fp32", "bf16")


def _parse_intervention(value: Any) -> Intervention:
    return value if isinstance(value, Intervention) else parse_intervention(value)


# Parsed once, when the config is validated; written back as its canonical
# string (``cut:3+gradscale:1``) in YAML, trial ids and tables.
InterventionSpec = Annotated[
    Intervention, BeforeValidator(_parse_intervention), PlainSerializer(lambda i: i.to_spec(), return_type=str)
]


def science(default: Any = None, description: str = "", *, example: Any, **constraints: Any) -> Any:
    """A field that says what is trained or measured (part of the trial id)."""
    return _field(SCIENCE, default, description, example, constraints)


def run_setting(default: Any = None, description: str = "", *, example: Any, **constraints: Any) -> Any:
    """A field that says how the trial runs (recorded, never part of the trial id)."""
    return _field(RUN, default, description, example, constraints)


def _field(kind: str, default: Any, description: str, example: Any, constraints: dict[str, Any]) -> Any:
    factory = constraints.pop("default_factory", None)
    extra = {"kind": kind}
    if "allowed" in constraints:  # what the value may be, in words, where the type cannot say it
        extra["allowed"] = constraints.pop("allowed")
    if factory is not None:
        return Field(
            default_factory=factory, description=description, examples=[example], json_schema_extra=extra, **constraints
        )
    return Field(default, description=description, examples=[example], json_schema_extra=extra, **constraints)


class TrialConfig(BaseModel):
    """Every knob of one trial. ``None`` means "the method's (or the machine's) default"."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False, frozen=True, strict=True)

    # -- what is trained ---------------------------------------------------------------------------
    name: str | None = science(None, "optional label, the first part of the trial id", example="pilot")
    method: str = science(
        "simclr",
        "SSL method (`normbench list` shows each with its defaults)",
        example="byol",
        allowed=", ".join(method_names()[:-1]) + " or " + method_names()[-1],
    )
    method_args: dict[str, Any] = science(
        default_factory=dict,
        description="the method's hyper-parameters (`normbench list`); set one with method_args.KEY=VALUE",
        example={"temperature": 0.2},
        allowed="a mapping of the method's hyper-parameters (`normbench list`)",
    )
    backbone: str = science(
        "resnet10t",
        "any timm model name (the small default keeps CPU runs quick)",
        example="resnet18",
        allowed="a timm model name, e.g. resnet18, resnet50, vit_small_patch16_224",
    )
    cifar_stem: bool | None = science(
        None, "3x3 stride-1 first convolution and no max-pool; unset: on for timm ResNets at <= 64 px", example=False
    )
    # -- data --------------------------------------------------------------------------------------
    dataset: str = science(
        "digits",
        "dataset name (`normbench list`) or hf:ID[:CONFIG], parquet:PATH, imagefolder:PATH",
        example="cifar10",
        allowed="a dataset of `normbench list`, hf:ID[:CONFIG], parquet:PATH or imagefolder:PATH",
    )
    image_size: int | None = science(
        None, "square side of every image in pixels; unset: the dataset's own", example=32, ge=8, le=1024
    )
    imbalance: float | None = science(
        None,
        "long-tailed training split: ratio of the largest to the smallest class (unset: balanced)",
        example=10.0,
        ge=1.0,
    )
    holdout_classes: list[int | str] | str | None = science(
        None,
        "classes (index or name) removed from training and test; their test images are the out-of-distribution set; "
        "rotate:K holds out K classes that move on with the seed (seed s: classes s*K .. s*K+K-1, modulo the classes)",
        example=[0, 1],
        allowed="a list of class indices or names, rotate:K, or unset",
    )
    ood_dataset: str | None = science(
        None,
        "a dataset whose test split is the out-of-distribution set",
        example="cifar100",
        allowed="a dataset of `normbench list`, hf:ID[:CONFIG], parquet:PATH or imagefolder:PATH, or unset",
    )
    train_limit: int | None = science(
        None, "train on a fixed random subset of this many images (the same subset for every seed)", example=512, ge=2
    )
    val_fraction: float = science(
        0.0,
        "stratified fixed part of the training set held out for validation kNN (val_knn_top1_k*); 0: none",
        example=0.1,
        ge=0,
        lt=0.5,
    )
    augment: dict[str, Any] = science(
        default_factory=dict,
        description="view-recipe fields set on every view of the method; set one with "
        "augment.KEY=VALUE (e.g. augment.flip_p=0)",
        example={"flip_p": 0.0},
        allowed="a mapping of view-recipe fields (flip_p, crop_scale, jitter_strength, ...)",
    )
    # -- the intervention and the optimisation -----------------------------------------------------
    intervention: InterventionSpec = science(
        Intervention(),
        "norm intervention: none, cut:C, gradscale:P or wd:X, joined by + (e.g. cut:3+gradscale:1)",
        example="cut:3",
        validate_default=True,
        allowed="none, cut:C (C > 1), gradscale:P or wd:X (X >= 0), joined by + (e.g. cut:3+gradscale:1)",
    )
    epochs: int = science(20, "training epochs", example=5, ge=1, le=100_000)
    batch_size: int = science(256, "global batch size (split across workers)", example=128, ge=1)
    optimizer: Literal["sgd", "lars", "adamw"] | None = science(
        None, "optimizer; unset: the method's default", example="adamw"
    )
    lr: float | None = science(
        None,
        "base learning rate for a batch of 256 (scaled by lr_scaling); unset: the method's default",
        example=0.05,
        gt=0,
    )
    lr_scaling: Literal["linear", "none"] = science(
        "linear", "linear: lr x batch_size / 256; none: lr as given", example="none"
    )
    weight_decay: float | None = science(
        None, "weight decay; unset: the method's default (wd:X in the intervention sets it too)", example=0.0, ge=0
    )
    momentum: float = science(0.9, "SGD / LARS momentum", example=0.8, ge=0, lt=1)
    warmup_epochs: int | None = science(
        None,
        "linear learning-rate warm-up before the cosine decay; unset: the "
        "method's default, shortened to epochs - 1 if longer",
        example=2,
        ge=0,
    )
    seed: int = science(0, "seed of the initialization, the data order and the augmentations", example=1, ge=0)
    # -- the evaluation protocol -------------------------------------------------------------------
    eval_every: int = science(
        0,
        "kNN and norms every N epochs, plus an epoch-0 row of the untrained network (0: only at the end)",
        example=1,
        ge=0,
    )
    eval_bn: Literal["recompute", "running"] = science(
        "recompute",
        "BatchNorm statistics for evaluation: recompute (re-estimated on clean training images) "
        "or running (the running averages of training)",
        example="running",
    )
    eval_bn_images: int = science(
        10_000, "clean training images that re-estimate BatchNorm statistics", example=512, ge=1
    )
    knn_k: list[int] = science(
        default_factory=lambda: [200, 20],
        description="neighbour counts of the kNN evaluation (positive integers)",
        example=[20],
        allowed="a non-empty list of positive integers",
    )
    knn_temperature: float = science(0.1, "temperature T of the kNN vote weights exp(cos / T)", example=0.07, gt=0)
    linear_probe: Literal["lbfgs", "adamw"] = science(
        "lbfgs",
        "linear probe on frozen features: lbfgs (multinomial logistic regression by full-batch L-BFGS, "
        "its L2 penalty chosen on a validation split of the training set) or adamw (mini-batch AdamW "
        "for linear_epochs, the probe of every result committed before lbfgs)",
        example="adamw",
        allowed="lbfgs or adamw",
    )
    linear_epochs: int = science(
        100, "epochs of the adamw linear probe on frozen features (lbfgs ignores it)", example=20, ge=1
    )
    # -- how the trial runs ------------------------------------------------------------------------
    checkpoint_every: int = run_setting(
        1, "write a resumable checkpoint every N epochs (and after the last)", example=5, ge=1
    )
    eval_batch_size: int = run_setting(512, "batch size of evaluation passes", example=1024, ge=1)
    device: str = run_setting(
        "auto",
        "auto (CUDA when visible), cpu, cuda, cuda:N or mps",
        example="cpu",
        allowed="auto, cpu, cuda, cuda:N or mps",
    )
    precision: Literal["auto", "fp32", "bf16"] = run_setting(
        "auto", "auto (bf16 autocast on CUDA, fp32 elsewhere), fp32 or bf16", example="fp32"
    )
    channels_last: bool | None = run_setting(None, "channels-last memory format; unset: on for CUDA", example=True)
    workers: int = run_setting(1, "data-parallel worker processes per trial (in sweeps)", example=2, ge=1)
    num_threads: int | None = run_setting(
        None, "torch CPU threads of each worker process; unset: the CPUs the trial holds", example=1, ge=1
    )
    decode_workers: int | None = run_setting(
        None, "threads that decode images on the dataset's first load; unset: one per core", example=2, ge=1
    )
    compile: bool = run_setting(False, "torch.compile the backbone and heads", example=True)

    @property
    def trial_id(self) -> str:
        """Readable and unique: the main axes plus a hash of the science."""
        digest = hashlib.sha1(json.dumps(self.science(), sort_keys=True, default=str).encode()).hexdigest()[:8]
        parts = [self.name] if self.name else []
        parts += [self.method, self.backbone, _slug(self.dataset), self.intervention.to_spec(), f"s{self.seed}", digest]
        return _slug("-".join(parts))

    def science(self) -> dict[str, Any]:
        """The science fields that differ from their defaults (what the trial id hashes).

        Leaving out fields at their defaults keeps every existing id when a field is
        added later with a default that preserves the earlier behaviour."""
        dump, defaults = self.model_dump(mode="json"), _default_dump()
        return {k: dump[k] for k in SCIENCE_FIELDS if dump[k] != defaults[k]}

    def run_settings(self) -> dict[str, Any]:
        dump = self.model_dump(mode="json")
        return {k: dump[k] for k in RUN_FIELDS}

    def scaled_lr(self) -> float:
        assert self.lr is not None, "resolve() the config first"
        return self.lr * self.batch_size / 256 if self.lr_scaling == "linear" else self.lr


@dataclass(frozen=True)
class ResolvedConfig:
    """A trial config resolved once, where the user's input enters (`suite.config.resolve_config`: the
    command line, a sweep's grid or its searcher, the Python API), and never again.

    It holds everything that resolving derived, typed: the validated config with the method's defaults
    filled in, the method's hyper-parameters, the data plan (the dataset spec parsed, the held-out
    classes and subsets checked) and the notes -- what resolving changed on the user's behalf or warns
    about, kept in the row's ``notes``. A sweep hands this value to its Ray workers as it is (Tune
    pickles it with the trial), so no layer below parses a string or checks a rule again."""

    config: TrialConfig  # validated, method defaults filled in: the trial id, the rows, the checkpoints
    hparams: HParams  # the method's typed hyper-parameters (``config.method_args`` is their dump)
    data: SplitsPlan  # what the data layer loads (`suite.data.splits.prepare_splits`)
    notes: tuple[str, ...] = ()  # in words, said once at the start and kept in the row's notes

    @property
    def trial_id(self) -> str:
        return self.config.trial_id


def field_kind(name: str) -> str:
    return TrialConfig.model_fields[name].json_schema_extra["kind"]


CONFIG_FIELDS: tuple[str, ...] = tuple(TrialConfig.model_fields)
SCIENCE_FIELDS: tuple[str, ...] = tuple(f for f in CONFIG_FIELDS if field_kind(f) == SCIENCE)
RUN_FIELDS: tuple[str, ...] = tuple(f for f in CONFIG_FIELDS if field_kind(f) == RUN)


@lru_cache(maxsize=1)
def _default_dump() -> dict[str, Any]:
    return TrialConfig().model_dump(mode="json")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+:=-]+", "_", text).replace(":", "_").replace("/", "_")


def value_text(value: Any) -> str:
    """A config value as a user writes it in YAML or ``key=value`` (``unset``, ``false``, ``[200, 20]``)."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def default_text(name: str) -> str:
    return value_text(_default_dump()[name])


def describe_fields() -> list[tuple[str, str, str, str]]:
    """(name, kind, default, description) of every config key, for help texts and the docs."""
    return [
        (name, field_kind(name), default_text(name), TrialConfig.model_fields[name].description or "")
        for name in CONFIG_FIELDS
    ]


def resolved_text(cfg: TrialConfig) -> str:
    """The resolved config a user can read: science (what the id hashes) and run settings apart."""
    dump = cfg.model_dump(mode="json")
    width = max(len(n) for n in CONFIG_FIELDS)

    def block(title: str, names: tuple[str, ...]) -> list[str]:
        return [title] + [f"  {n:<{width}}  {value_text(dump[n])}" for n in names]

    return "\n".join(
        [
            f"trial id  {cfg.trial_id}",
            "",
            *block("science (hashed into the trial id):", SCIENCE_FIELDS),
            "",
            *block("run settings (recorded in every row, never part of the id):", RUN_FIELDS),
        ]
    )
