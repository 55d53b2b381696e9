"""Loading a trial config: YAML files, ``key=value`` overrides, validation and method defaults.

A config is validated as a whole *before* any data is loaded or any file is
written, so a typo in a sweep of hundreds of trials fails in a second with a
message that names the field, the value and what is allowed.

It is resolved once, where the user's input enters (`resolve_config`: the command line, a sweep's
grid or its searcher): the result, a `ResolvedConfig`, carries the validated config, the method's
typed hyper-parameters, the parsed data plan and the notes, and every layer below takes that value
instead of checking again.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from methods import get_method
from methods.errors import config_error, suggestion
from methods.views import AugmentSpec, with_overrides
from suite.config.choices import validate_backbone_name, validate_device
from suite.config.model import CONFIG_FIELDS, ResolvedConfig, TrialConfig
from suite.core.errors import ConfigError
from suite.core.files import atomic_write_text
from suite.data.plan import plan_splits

KEYS_HELP = "a config key (`normbench list` shows them all)"


# What other SSL codebases call our keys (solo-learn, lightly, timm scripts): named in the error, never accepted,
# so one config means one thing.
KEY_ALIASES = {
    "learning_rate": "lr",
    "base_lr": "lr",
    "wd": "weight_decay",
    "bs": "batch_size",
    "arch": "backbone",
    "model": "backbone",
    "backbone_name": "backbone",
    "max_epochs": "epochs",
    "n_epochs": "epochs",
    "warmup": "warmup_epochs",
    "threads": "num_threads",
}


def config_key_error(key: str, value: Any, prefix: str = "") -> ConfigError:
    """An unknown config key, with the near misses (``epoch`` -> ``epochs``, ``learning_rate`` -> ``lr``)."""
    return ConfigError(
        prefix + key,
        value,
        KEYS_HELP,
        hint=suggestion(key.split(".", 1)[0], CONFIG_FIELDS, KEY_ALIASES),
        problem="unknown key, given",
    )


def pydantic_error(err: ValidationError, prefix: str = "") -> ConfigError:
    """The first validation error of a trial config in our words (``prefix`` places it, e.g. ``base.``)."""
    first = err.errors()[0]
    if isinstance(first.get("ctx", {}).get("error"), ConfigError):  # raised by a field's own parser
        inner = first["ctx"]["error"]
        return ConfigError(prefix + inner.field, inner.value, inner.allowed, inner.hint)
    if first["type"] == "extra_forbidden":
        return config_key_error(".".join(str(p) for p in first["loc"]), first.get("input"), prefix)
    return config_error(err, TrialConfig, prefix=prefix)


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
    """Apply ``key=value`` (dotted keys reach into the mapping fields: ``method_args.temperature=0.2``,
    ``augment.flip_p=0``)."""
    data = json.loads(json.dumps(base, default=str)) if base else {}
    for item in overrides:
        key, value = parse_override(item)
        set_dotted(data, key, value)
    return data


MAPPING_FIELDS = ("method_args", "augment")  # config fields that hold a mapping: KEY.SUB=VALUE reaches in


def set_dotted(data: dict[str, Any], key: str, value: Any, where: str = "") -> None:
    """``data[key] = value``, with ``field.sub`` setting one entry of a mapping field."""
    head, _, rest = key.partition(".")
    if not rest:
        data[head] = value
        return
    if head not in MAPPING_FIELDS:
        if head not in CONFIG_FIELDS:
            raise config_key_error(key, value, where)
        raise ConfigError(
            where + key,
            value,
            f"a dotted key under a mapping field: {', '.join(MAPPING_FIELDS)} "
            "(e.g. method_args.temperature=0.2, augment.flip_p=0)",
        )
    if not isinstance(data.setdefault(head, {}), dict):
        raise ConfigError(where + head, data[head], "a mapping")
    data[head][rest] = value


def load_yaml(path: str | Path, field: str = "--config", what: str = "YAML file") -> Any:
    """Parse a YAML file; a missing file or a syntax error names ``field``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(field, str(path), f"an existing {what}")
    try:
        return yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(field, where, "valid YAML", hint=problem) from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError("--config", str(path), "a YAML mapping of config keys")
    return data


def resolve_config(data: dict[str, Any] | None = None) -> ResolvedConfig:
    """Validate a raw mapping completely and fill every method default: the one resolution of a trial's
    config, where the user's input enters."""
    try:
        cfg = TrialConfig.model_validate(data or {})
    except ValidationError as err:
        raise pydantic_error(err) from None
    return resolve(cfg)


def make_config(data: dict[str, Any] | None = None) -> TrialConfig:
    """`resolve_config`'s validated config alone (its notes, hyper-parameters and data plan left out): for
    code that reads config values; a trial started from it is resolved again (`as_resolved`)."""
    return resolve_config(data).config


def load_resolved(path: str | Path | None = None, overrides: list[str] | None = None) -> ResolvedConfig:
    """A YAML file (optional) with ``key=value`` overrides applied, resolved (`resolve_config`)."""
    base = load_config_file(path) if path else {}
    return resolve_config(apply_overrides(base, overrides or []))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrialConfig:
    """`load_resolved`'s validated config alone."""
    return load_resolved(path, overrides).config


def as_resolved(cfg: ResolvedConfig | TrialConfig) -> ResolvedConfig:
    """A `ResolvedConfig` as it is; a `TrialConfig` is input in its Python form (``make_config``, or built
    by hand) and is resolved here. Resolving a resolved config gives the same values and trial id, but
    the notes of its first resolution that depended on what the user left unset (a shortened warm-up)
    are not known any more: pass the `ResolvedConfig` to keep them."""
    return cfg if isinstance(cfg, ResolvedConfig) else resolve(cfg)


def resolve(cfg: TrialConfig) -> ResolvedConfig:
    """Semantic checks across fields, then method defaults filled in: every rule of a trial config is
    checked here, once (`resolve_config` validates the fields first)."""
    method_cls = get_method(cfg.method)
    hparams = method_cls.build_hparams(cfg.method_args)
    intervention = cfg.intervention
    validate_backbone_name(cfg.backbone)
    data = plan_splits(
        cfg.dataset,
        cfg.image_size,
        imbalance=cfg.imbalance,
        holdout_classes=cfg.holdout_classes,
        ood_dataset=cfg.ood_dataset,
        train_limit=cfg.train_limit,
        val_fraction=cfg.val_fraction,
        seed=cfg.seed,
    )
    if isinstance(cfg.holdout_classes, list) and len(set(cfg.holdout_classes)) != len(cfg.holdout_classes):
        raise ConfigError("holdout_classes", cfg.holdout_classes, "distinct class indices")
    validate_device(cfg.device)
    # every field is checked on its own, so one generic view validates the overrides
    with_overrides([AugmentSpec(size=data.image_size)], cfg.augment)

    min_batch = method_cls.min_batch_size * cfg.workers
    if cfg.batch_size < min_batch:
        raise ConfigError(
            "batch_size", cfg.batch_size, f">= {min_batch} for method {cfg.method} with {cfg.workers} worker(s)"
        )
    if cfg.batch_size % cfg.workers:
        raise ConfigError("batch_size", cfg.batch_size, f"a multiple of workers={cfg.workers}")
    bad_k = [k for k in cfg.knn_k if k < 1]
    if not cfg.knn_k or bad_k:
        raise ConfigError("knn_k", cfg.knn_k, "a non-empty list of positive integers")
    if len(set(cfg.knn_k)) != len(cfg.knn_k):
        raise ConfigError("knn_k", cfg.knn_k, "distinct positive integers (each k is one column of the tables)")

    weight_decay = cfg.weight_decay
    if intervention.weight_decay is not None:
        if weight_decay is not None and not math.isclose(weight_decay, intervention.weight_decay):
            raise ConfigError(
                "weight_decay",
                weight_decay,
                f"unset or equal to {intervention.weight_decay} (intervention {intervention.to_spec()} sets it)",
            )
        weight_decay = intervention.weight_decay

    update = {
        "image_size": data.image_size,
        "method_args": hparams.model_dump(mode="json"),
        "optimizer": cfg.optimizer or method_cls.default_optimizer,
        "lr": cfg.lr if cfg.lr is not None else method_cls.default_lr,
        "weight_decay": weight_decay if weight_decay is not None else method_cls.default_weight_decay,
        "warmup_epochs": cfg.warmup_epochs
        if cfg.warmup_epochs is not None
        else min(method_cls.default_warmup_epochs, max(cfg.epochs - 1, 0)),
    }
    if update["warmup_epochs"] >= cfg.epochs and cfg.epochs > 1:
        raise ConfigError("warmup_epochs", update["warmup_epochs"], f"< epochs ({cfg.epochs})")
    notes = list(method_cls.schedule_notes(hparams, cfg.epochs))
    if cfg.warmup_epochs is None and update["warmup_epochs"] < method_cls.default_warmup_epochs:
        notes.append(
            f"warmup_epochs shortened from {cfg.method}'s default {method_cls.default_warmup_epochs} to "
            f"{update['warmup_epochs']} (it must be < epochs = {cfg.epochs}); set warmup_epochs to choose"
        )
    if intervention.gradscale is not None and not method_cls.loss_normalizes_embedding:
        p = f"{intervention.gradscale:g}"
        notes.append(
            f"gradscale:{p} on {cfg.method}, whose loss does not L2-normalize its embedding: there is no 1/||z|| "
            f"to cancel, so it multiplies the embedding's gradient by ||z||^{p} (at the method's default lr this "
            "can diverge)"
        )
    return ResolvedConfig(cfg.model_copy(update=update), hparams, data, tuple(notes))


def save_config(cfg: TrialConfig, path: Path) -> None:
    atomic_write_text(path, yaml.safe_dump(cfg.model_dump(), sort_keys=False))
