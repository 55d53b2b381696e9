"""A trained backbone out of the suite: `model.safetensors` + a timm-style `config.json`.

A trial checkpoint holds the whole SSL method (heads, EMA targets, optimizer);
other code wants only the backbone, in a format that loads without normbench's
classes and without pickle. The export is a directory timm itself can read:
``config.json`` has timm's pretrained-config layout (architecture,
num_features, model_args, pretrained_cfg with input size, mean and std), so
backbones without the CIFAR stem load with plain timm
(``pretrained_cfg_overlay=dict(file=...)`` or ``local-dir:DIR``);
`load_backbone` also rebuilds the CIFAR stem, which timm cannot know about.
Everything normbench knows about the trial (id, method, intervention, final
metrics) sits under the ``normbench`` key.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suite.core.errors import ConfigError
from suite.results import schema

if TYPE_CHECKING:
    from torch import nn

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
BACKBONE_PREFIX = "backbone."
CHECKPOINT_SUBDIR = Path("checkpoints") / "last"
# The status and the measured outcomes of the final row travel with the weights (the rest is in the trial directory).
METRIC_KEYS = (schema.STATUS, schema.EPOCHS_COMPLETED)


def default_out(trial_dir: Path) -> Path:
    return Path(trial_dir) / "export"


def check_export_args(trial_dir: Path, out: Path | None, overwrite: bool) -> Path:
    """Validate the user's arguments before any work; returns the output directory."""
    trial_dir = Path(trial_dir)
    if not trial_dir.is_dir():
        raise ConfigError(
            "TRIAL_DIR", str(trial_dir), "an existing trial directory (results/<sweep or local>/<trial_id>)"
        )
    from suite.trial import checkpoint as ckpt

    if not (trial_dir / CHECKPOINT_SUBDIR / ckpt.STATE_FILE).is_file():
        raise ConfigError(
            "TRIAL_DIR",
            str(trial_dir),
            f"a trial directory with a checkpoint ({CHECKPOINT_SUBDIR}/{ckpt.STATE_FILE})",
            hint="the trial has not finished an epoch yet, or this is not a trial directory",
        )
    out = Path(out) if out is not None else default_out(trial_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", str(out), "a directory (new, or existing with --overwrite)", hint="it is a file")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(
            "--out",
            str(out),
            "a new or empty directory, or pass --overwrite",
            hint=f"it already holds {', '.join(sorted(p.name for p in out.iterdir())[:3])}",
        )
    return out


def export_trial(trial_dir: Path, out: Path | None = None, *, overwrite: bool = False) -> Path:
    """Write the trial's backbone and its config to ``out`` (default TRIAL_DIR/export)."""
    from safetensors.torch import save_file

    from suite.config import resolve_config
    from suite.core.files import atomic_path
    from suite.results import store as results
    from suite.trial import checkpoint as ckpt
    from suite.trial.backbones import build_backbone, model_args, uses_cifar_stem
    from suite.trial.train import load_data

    out = check_export_args(trial_dir, out, overwrite)
    trial_dir = Path(trial_dir)
    payload = ckpt.read(trial_dir / CHECKPOINT_SUBDIR, field="TRIAL_DIR")
    resolved = resolve_config(payload["config"])
    cfg = resolved.config
    backbone, num_features = build_backbone(cfg.backbone, cfg.image_size, cfg.cifar_stem)
    weights = {k[len(BACKBONE_PREFIX) :]: v for k, v in payload["model"].items() if k.startswith(BACKBONE_PREFIX)}
    backbone.load_state_dict(weights)  # strict: the checkpoint matches the architecture the config rebuilds
    splits = load_data(resolved)  # normalization statistics of the training split, as in training
    row = results.read_result(trial_dir)

    config = {
        "architecture": cfg.backbone.split(".", 1)[0],
        "num_classes": 0,
        "num_features": num_features,
        "model_args": model_args(cfg.backbone, cfg.image_size),
        "pretrained_cfg": {
            "input_size": [3, cfg.image_size, cfg.image_size],
            "fixed_input_size": bool(model_args(cfg.backbone, cfg.image_size)),
            "interpolation": "bilinear",
            "crop_pct": 1.0,
            "crop_mode": "center",
            "mean": [float(m) for m in splits.mean],
            "std": [float(s) for s in splits.std],
            "num_classes": 0,
        },
        "normbench": {
            "cifar_stem": uses_cifar_stem(backbone, cfg.image_size, cfg.cifar_stem),
            "trial_id": cfg.trial_id,
            "method": cfg.method,
            "intervention": cfg.intervention.to_spec(),
            "dataset": cfg.dataset,
            "image_size": cfg.image_size,
            "checkpoint_epoch": int(payload["state"]["epoch"]),
            "metrics": _final_metrics(row),
            "config": cfg.model_dump(),
        },
    }
    tensors = {k: v.detach().contiguous() for k, v in backbone.state_dict().items()}
    # Both files are complete on disk before either replaces an older export.
    with atomic_path(out / MODEL_FILE) as model_tmp, atomic_path(out / CONFIG_FILE) as config_tmp:
        save_file(tensors, str(model_tmp), metadata={"format": "pt", "trial_id": cfg.trial_id})
        config_tmp.write_text(json.dumps(config, indent=2, default=str))
    return out


def _final_metrics(row: dict[str, Any] | None) -> dict[str, Any]:
    if not row:
        return {}
    keep = {k: v for k, v in row.items() if k in METRIC_KEYS or schema.role(k) == schema.OUTCOME}
    return {k: v for k, v in keep.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}


def read_export_config(directory: Path) -> dict[str, Any]:
    directory = Path(directory)
    for name in (CONFIG_FILE, MODEL_FILE):
        if not (directory / name).is_file():
            raise ConfigError(
                "directory",
                str(directory),
                f"an export directory holding {CONFIG_FILE} and {MODEL_FILE} (written by `normbench export`)",
                hint=f"{name} is missing",
            )
    return json.loads((directory / CONFIG_FILE).read_text())


def load_backbone(directory: Path | str) -> nn.Module:
    """The exported backbone, in eval mode, CIFAR stem included where it was
    trained with one; ``model.pretrained_cfg`` carries input size, mean and std
    (``timm.data.resolve_data_config(model=model)`` reads them)."""
    from safetensors.torch import load_file

    from suite.trial.backbones import build_backbone

    config = read_export_config(Path(directory))
    ours = config.get("normbench", {})
    image_size = ours.get("image_size", config["pretrained_cfg"]["input_size"][-1])
    model, _ = build_backbone(config["architecture"], image_size, bool(ours.get("cifar_stem", False)))
    model.load_state_dict(load_file(str(Path(directory) / MODEL_FILE)))
    model.pretrained_cfg = {**getattr(model, "pretrained_cfg", {}), **config["pretrained_cfg"]}
    return model.eval()
