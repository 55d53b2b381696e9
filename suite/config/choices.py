"""Allowed values that need a look outside the config: timm architectures and devices.

Kept apart from the model so validation stays cheap (timm's model list is read
once) and so building a backbone (`suite.trial.backbones`) and checking its
name share one list.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache

from suite.core.errors import ConfigError

SUGGESTED_BACKBONES = {
    "resnet18": "the CIFAR reference backbone (paper, solo-learn, lightly)",
    "resnet50": "ImageNet-scale reference",
    "resnet10t": "small ResNet, quick CPU runs",
    "test_resnet": "tiny timm test model (tests, smoke runs)",
    "vit_small_patch16_224": "ViT-S/16 (use optimizer=adamw)",
    "convnext_atto": "small ConvNeXt",
    "efficientnet_b0": "EfficientNet-B0",
}
DEVICES = "auto, cpu, cuda, cuda:N, mps"


@lru_cache(maxsize=1)
def timm_models() -> frozenset[str]:
    import timm

    return frozenset(timm.list_models())


def validate_backbone_name(name: str) -> None:
    """Cheap check that timm knows the architecture (pretrained tags allowed)."""
    arch = str(name).split(".", 1)[0]
    if arch in timm_models():
        return
    close = difflib.get_close_matches(arch, sorted(timm_models()), n=5)
    hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models()"
    raise ConfigError("backbone", name, "any timm model name, e.g. " + ", ".join(SUGGESTED_BACKBONES), hint=hint)


def validate_device(device: str) -> None:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", str(device)):
        raise ConfigError("device", device, DEVICES)
