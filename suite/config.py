"""One typed, validated trial configuration.

A trial is fully described by a `TrialConfig`. It is loadable from YAML and
overridable with ``key=value`` pairs on the command line, and it is validated
as a whole *before* any data is loaded or any file is written, so a typo in a
sweep of hundreds of trials fails in a second with a message that names the
field, the value and what is allowed.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationError

from methods.intervention_spec import Intervention, parse_intervention
from methods.views import AugmentSpec, with_overrides

from suite.errors import ConfigError

OPTIMIZERS = ("sgd", "lars", "adamw")
PRECISIONS = ("auto", "fp32", "bf16")


def _parse_intervention(value: Any) -> Intervention:
    return value if isinstance(value, Intervention) else parse_intervention(value)


# Parsed once, when the config is validated; written back as its canonical
# string (``cut:3+gradscale:1``) in YAML, trial ids and tables.
InterventionSpec = Annotated[Intervention, BeforeValidator(_parse_intervention),
                             PlainSerializer(lambda i: i.to_spec(), return_type=str)]


class TrialConfig(BaseModel):
    """Every knob of one trial. ``None`` means "the method's default"."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False, frozen=False)

    name: str | None = Field(None, description="optional label; part of the trial id")
    method: str = Field("simclr", description="SSL method (see `normbench list`)")
    method_args: dict[str, Any] = Field(default_factory=dict, description="method hyper-parameters")
    backbone: str = Field("resnet10t", description="any timm model name (small default: quick CPU runs)")
    cifar_stem: bool | None = Field(None, description="3x3 stride-1 stem, no max-pool; auto for ResNets at <= 64 px")
    dataset: str = Field("digits", description="dataset name or hf:/parquet:/imagefolder: spec")
    image_size: int | None = Field(None, ge=8, le=1024, description="resolution in pixels; default per dataset")
    imbalance: float | None = Field(None, ge=1.0, description="long-tailed train split: largest/smallest class ratio")
    holdout_classes: list[int | str] | None = Field(None, description="classes (index or name) removed from training; the OOD set")
    ood_dataset: str | None = Field(None, description="dataset whose test split is the OOD set")
    train_limit: int | None = Field(None, ge=2, description="train on a fixed random subset of N images (smoke runs)")
    val_fraction: float = Field(0.0, ge=0, lt=0.5, description="hold out this stratified fixed part of the training "
                                                               "set for validation kNN (val_knn_top1_*; 0: none)")
    augment: dict[str, Any] = Field(default_factory=dict, description="view-recipe fields set on every view of the "
                                                                     "method, e.g. {flip_p: 0, crop_scale: [0.5, 1]}")
    intervention: InterventionSpec = Field(Intervention(), validate_default=True,
                                           description="norm intervention: none, cut:C, gradscale:P, wd:X, joined by +")
    epochs: int = Field(20, ge=1, le=100_000)
    batch_size: int = Field(256, ge=1, description="global batch size (split across workers)")
    optimizer: Literal["sgd", "lars", "adamw"] | None = None
    lr: float | None = Field(None, gt=0, description="base LR for batch 256; scaled linearly with batch_size")
    lr_scaling: Literal["linear", "none"] = "linear"
    weight_decay: float | None = Field(None, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    warmup_epochs: int | None = Field(None, ge=0)
    seed: int = Field(0, ge=0)
    eval_every: int = Field(0, ge=0, description="kNN every N epochs, and an epoch-0 row (0: only at the end)")
    eval_bn: Literal["recompute", "running"] = Field(
        "recompute", description="BatchNorm statistics for evaluation: re-estimated on the clean train set, "
                                 "or the running averages of training")
    eval_bn_images: int = Field(10_000, ge=1, description="clean train images used to re-estimate BatchNorm statistics")
    checkpoint_every: int = Field(1, ge=1)
    knn_k: list[int] = Field(default_factory=lambda: [200, 20])
    knn_temperature: float = Field(0.1, gt=0)
    linear_epochs: int = Field(100, ge=1)
    eval_batch_size: int = Field(512, ge=1)
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: bool | None = Field(None, description="auto: on for CUDA")
    workers: int = Field(1, ge=1, description="data-parallel worker processes per trial (Ray sweeps)")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads of each worker process")
    compile: bool = Field(False, description="torch.compile the backbone and heads")

    @property
    def trial_id(self) -> str:
        """Readable and unique: the main axes plus a hash of the whole config."""
        dump = self.model_dump()
        for added_later in ("val_fraction", "augment"):  # trials that leave them unset keep their ids
            if not dump[added_later]:
                del dump[added_later]
        digest = hashlib.sha1(json.dumps(dump, sort_keys=True, default=str).encode()).hexdigest()[:8]
        parts = [self.name] if self.name else []
        parts += [self.method, self.backbone, _slug(self.dataset), self.intervention.to_spec(), f"s{self.seed}", digest]
        return _slug("-".join(parts))

    def scaled_lr(self) -> float:
        assert self.lr is not None, "resolve() the config first"
        return self.lr * self.batch_size / 256 if self.lr_scaling == "linear" else self.lr


CONFIG_FIELDS: tuple[str, ...] = tuple(TrialConfig.model_fields)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+:=-]+", "_", text).replace(":", "_").replace("/", "_")


def _pydantic_to_config_error(err: ValidationError) -> ConfigError:
    first = err.errors()[0]
    if isinstance(first.get("ctx", {}).get("error"), ConfigError):  # raised by a field's own parser
        return first["ctx"]["error"]
    field = ".".join(str(p) for p in first["loc"]) or "config"
    if first["type"] == "extra_forbidden":
        return ConfigError(field, first.get("input"), CONFIG_FIELDS, hint="unknown config key")
    return ConfigError(field, first.get("input"), first["msg"])


def parse_override(item: str) -> tuple[str, Any]:
    """``key=value`` with the value parsed as YAML, so ``lr=0.1`` is a float and
    ``holdout_classes=[0,1]`` a list."""
    if "=" not in item:
        raise ConfigError("override", item, "key=value (e.g. method=byol, lr=0.1, method_args.temperature=0.2)")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        value = raw
    return key, value


def apply_overrides(base: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` (dotted keys reach into ``method_args``)."""
    data = json.loads(json.dumps(base, default=str)) if base else {}
    for item in overrides:
        key, value = parse_override(item)
        set_dotted(data, key, value)
    return data


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    head, _, rest = key.partition(".")
    if not rest:
        data[head] = value
        return
    if head != "method_args":
        raise ConfigError(key, value, "dotted keys only under method_args (e.g. method_args.temperature=0.2)")
    data.setdefault("method_args", {})
    if not isinstance(data["method_args"], dict):
        raise ConfigError("method_args", data["method_args"], "a mapping")
    data["method_args"][rest] = value


def load_yaml(path: str | Path, field: str = "--config", what: str = "YAML file") -> Any:
    """Parse a YAML file; a missing file or a syntax error names ``field``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(field, str(path), f"an existing {what}")
    try:
        return yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(field, str(path), "valid YAML", hint=str(exc).splitlines()[0]) from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError("--config", str(path), "a YAML mapping of config keys")
    return data


def make_config(data: dict[str, Any] | None = None) -> TrialConfig:
    """Validate a raw mapping completely and fill every method default."""
    try:
        cfg = TrialConfig.model_validate(data or {})
    except ValidationError as err:
        raise _pydantic_to_config_error(err) from None
    return resolve(cfg)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrialConfig:
    base = load_config_file(path) if path else {}
    return make_config(apply_overrides(base, overrides or []))


def resolve(cfg: TrialConfig) -> TrialConfig:
    """Semantic checks across fields, then method defaults filled in."""
    from methods import get_method
    from suite.backbones import validate_backbone_name
    from suite.data import check_one_ood_source, validate_dataset_name
    from suite.dataload.specs import parse_spec

    method_cls = get_method(cfg.method)
    hparams = method_cls.build_hparams(cfg.method_args)
    intervention = cfg.intervention
    validate_backbone_name(cfg.backbone)
    dataset = parse_spec(cfg.dataset, "dataset")
    if cfg.ood_dataset is not None:
        validate_dataset_name(cfg.ood_dataset, field="ood_dataset")
    check_one_ood_source(cfg.holdout_classes, cfg.ood_dataset)
    if cfg.holdout_classes is not None and len(set(cfg.holdout_classes)) != len(cfg.holdout_classes):
        raise ConfigError("holdout_classes", cfg.holdout_classes, "distinct class indices")
    _validate_device(cfg.device)
    # every field is checked on its own, so one generic view validates the overrides
    with_overrides([AugmentSpec(size=cfg.image_size or dataset.image_size)], cfg.augment)

    min_batch = method_cls.min_batch_size * cfg.workers
    if cfg.batch_size < min_batch:
        raise ConfigError("batch_size", cfg.batch_size, f">= {min_batch} for method {cfg.method} with {cfg.workers} worker(s)")
    if cfg.batch_size % cfg.workers:
        raise ConfigError("batch_size", cfg.batch_size, f"a multiple of workers={cfg.workers}")
    bad_k = [k for k in cfg.knn_k if k < 1]
    if not cfg.knn_k or bad_k:
        raise ConfigError("knn_k", cfg.knn_k, "a non-empty list of positive integers")

    weight_decay = cfg.weight_decay
    if intervention.weight_decay is not None:
        if weight_decay is not None and not math.isclose(weight_decay, intervention.weight_decay):
            raise ConfigError("weight_decay", weight_decay,
                              f"unset or equal to {intervention.weight_decay} (intervention {intervention.to_spec()} sets it)")
        weight_decay = intervention.weight_decay

    update = {
        "image_size": cfg.image_size or dataset.image_size,
        "method_args": hparams.model_dump(mode="json"),
        "optimizer": cfg.optimizer or method_cls.default_optimizer,
        "lr": cfg.lr if cfg.lr is not None else method_cls.default_lr,
        "weight_decay": weight_decay if weight_decay is not None else method_cls.default_weight_decay,
        "warmup_epochs": cfg.warmup_epochs if cfg.warmup_epochs is not None else min(method_cls.default_warmup_epochs, max(cfg.epochs - 1, 0)),
    }
    if update["warmup_epochs"] >= cfg.epochs and cfg.epochs > 1:
        raise ConfigError("warmup_epochs", update["warmup_epochs"], f"< epochs ({cfg.epochs})")
    return cfg.model_copy(update=update)


def _validate_device(device: str) -> None:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", device):
        raise ConfigError("device", device, "auto, cpu, cuda, cuda:N, mps")


def save_config(cfg: TrialConfig, path: Path) -> None:
    from suite.atomic import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(cfg.model_dump(), sort_keys=False))


def describe_fields() -> list[tuple[str, str, str]]:
    """(name, default, description) rows for `normbench trial --help`."""
    rows = []
    for name, field in TrialConfig.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default
        rows.append((name, repr(default), field.description or ""))
    return rows
