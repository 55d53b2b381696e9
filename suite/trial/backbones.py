"""timm backbones, with the CIFAR stem for small images.

Any timm model name works (``timm.create_model(name, num_classes=0)``): the
classifier is dropped and the pooled features are the representation. ResNets
built for 224 px lose most of a 32 px image to the stride-4 stem, so for small
images they get the CIFAR stem (3x3 stride-1 first conv, no max-pool) that
every published CIFAR SSL baseline uses.
"""

from __future__ import annotations

import inspect

import timm
import torch
from torch import nn

from suite.config.choices import validate_backbone_name
from suite.core.errors import ConfigError

CIFAR_STEM_MAX_SIZE = 64


def is_resnet_family(model: nn.Module) -> bool:
    return isinstance(model, timm.models.resnet.ResNet)


def build_backbone(name: str, image_size: int, cifar_stem: bool | None = None) -> tuple[nn.Module, int]:
    """Create the backbone with random weights; returns (model, feature_dim)."""
    validate_backbone_name(name)
    kwargs = {"num_classes": 0, "pretrained": False, **model_args(name, image_size)}
    try:
        model = timm.create_model(name, **kwargs)
    except TypeError:
        kwargs.pop("img_size", None)
        model = timm.create_model(name, **kwargs)
    if uses_cifar_stem(model, image_size, cifar_stem):
        if not is_resnet_family(model):
            raise ConfigError(
                "cifar_stem", True, "false or unset for non-ResNet backbones", hint=f"{name} is not a timm ResNet"
            )
        apply_cifar_stem(model)
    return model, int(model.num_features)


def model_args(name: str, image_size: int) -> dict[str, int]:
    """Architecture arguments beyond timm's defaults: ``img_size`` for models
    whose shapes depend on the resolution (ViTs), so a loader can rebuild them."""
    entry = timm.models.get_arch_name(name) if hasattr(timm.models, "get_arch_name") else name.split(".")[0]
    if "img_size" in inspect.signature(timm.models.model_entrypoint(entry)).parameters or _is_vit_like(entry):
        return {"img_size": image_size}
    return {}


def uses_cifar_stem(model: nn.Module, image_size: int, cifar_stem: bool | None) -> bool:
    """The config's ``cifar_stem`` resolved: auto means timm ResNets at <= 64 px."""
    return is_resnet_family(model) and image_size <= CIFAR_STEM_MAX_SIZE if cifar_stem is None else cifar_stem


def _is_vit_like(entry: str) -> bool:
    return entry.startswith(("vit_", "deit", "test_vit", "eva", "beit"))


def apply_cifar_stem(model: nn.Module) -> None:
    """3x3 stride-1 first convolution and no max-pool, in place."""
    conv1 = model.conv1
    if isinstance(conv1, nn.Conv2d):
        model.conv1 = nn.Conv2d(conv1.in_channels, conv1.out_channels, 3, 1, 1, bias=False)
    else:  # deep stem (resnet*t / *d variants): first conv becomes stride 1
        first = next(m for m in conv1.modules() if isinstance(m, nn.Conv2d))
        first.stride = (1, 1)
    model.maxpool = nn.Identity()


@torch.no_grad()
def output_dim(model: nn.Module, image_size: int) -> int:
    model.eval()
    return int(model(torch.zeros(1, 3, image_size, image_size)).shape[-1])
