"""timm backbones and the CIFAR stem."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from suite.config.choices import validate_backbone_name
from suite.core.errors import ConfigError
from suite.trial.backbones import build_backbone


def _first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("name", ["resnet18", "test_resnet"])
def test_cifar_stem_keeps_resolution_of_small_images(name):
    model, dim = build_backbone(name, 32)
    conv = _first_conv(model)
    assert conv.stride == (1, 1) and conv.kernel_size == (3, 3)
    assert isinstance(model.maxpool, nn.Identity)
    # Spatial size after the stem equals the input size (a 224-px stem would give 32/4 = 8).
    stem_out = model.maxpool(model.act1(model.bn1(model.conv1(torch.zeros(2, 3, 32, 32)))))
    assert stem_out.shape[-1] == 32
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, dim)


def test_large_images_keep_the_imagenet_stem_and_flag_overrides():
    model, _ = build_backbone("resnet18", 128)
    assert _first_conv(model).stride == (2, 2) and not isinstance(model.maxpool, nn.Identity)
    forced, _ = build_backbone("resnet18", 128, cifar_stem=True)
    assert _first_conv(forced).stride == (1, 1)
    plain, _ = build_backbone("resnet18", 32, cifar_stem=False)
    assert _first_conv(plain).stride == (2, 2)


def test_non_resnet_backbones_work_and_reject_the_stem():
    model, dim = build_backbone("test_vit", 32)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, dim)
    with pytest.raises(ConfigError, match="cifar_stem"):
        build_backbone("test_vit", 32, cifar_stem=True)


def test_feature_dim_matches_timm():
    _, dim = build_backbone("resnet18", 32)
    assert dim == timm.create_model("resnet18", num_classes=0, pretrained=False).num_features == 512


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(ConfigError) as info:
        validate_backbone_name("resnet81")
    assert info.value.field == "backbone" and "resnet18" in str(info.value)
    validate_backbone_name("resnet18.a1_in1k")  # pretrained tags are accepted
