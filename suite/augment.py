"""Batched, per-sample-random SSL augmentations that run on the training device.

Why batched: on small images (CIFAR-sized) a per-sample PIL/torchvision pipeline in
DataLoader workers is the bottleneck, not the backbone. Here a whole uint8 batch is
augmented at once with tensor ops (kornia), every sample drawing its own parameters
from torch's RNG on the batch's device, so ``torch.manual_seed`` makes runs repeatable.

The crop is kornia's ``RandomResizedCrop`` in ``cropping_mode="resample"``: one batched
bilinear ``grid_sample`` with a per-sample affine matrix that maps the crop's corner
pixels onto the view's corner pixels (``align_corners=True`` resizing). kornia's default
``"slice"`` mode loops over samples in Python, and a hand-written ``grid_sample`` crop
was only ~1.5x faster on the crop alone (a small share of the whole pipeline); see
the "views" section of ``normbench bench`` for the numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import kornia.augmentation as K
import torch
from torch import Tensor, nn

from suite.errors import ConfigError

# SimCLR's colour-jitter recipe: brightness/contrast/saturation 0.8*s, hue 0.2*s.
_JITTER_BCS_SCALE = 0.8
_JITTER_HUE_SCALE = 0.2


def _check_probability(field: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ConfigError(field, value, "a number in [0, 1]")


def _check_range(field: str, value: Sequence[float], lo: float, hi: float, allowed: str) -> None:
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        and lo < value[0] <= value[1] <= hi
    )
    if not ok:
        raise ConfigError(field, value, allowed)


@dataclass(frozen=True)
class AugmentSpec:
    """One view's augmentation recipe (SimCLR/BYOL-style).

    ``jitter_strength`` is SimCLR's ``s``: brightness, contrast and saturation vary by
    ``0.8*s`` and hue by ``0.2*s``. The fields after ``solarize_p`` are extensions with
    the usual literature defaults.
    """

    size: int
    crop_scale: tuple[float, float] = (0.2, 1.0)
    flip_p: float = 0.5
    jitter_strength: float = 0.5
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    solarize_p: float = 0.0
    crop_ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_threshold: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 1:
            raise ConfigError("size", self.size, "a positive integer (output side in pixels)")
        _check_range("crop_scale", self.crop_scale, 0.0, 1.0, "(lo, hi) with 0 < lo <= hi <= 1")
        _check_range("crop_ratio", self.crop_ratio, 0.0, math.inf, "(lo, hi) with 0 < lo <= hi")
        _check_range("blur_sigma", self.blur_sigma, 0.0, math.inf, "(lo, hi) with 0 < lo <= hi")
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p", "solarize_threshold"):
            _check_probability(name, getattr(self, name))
        s = self.jitter_strength
        # Hue shift 0.2*s must stay within torchvision's [-0.5, 0.5] turns, hence s <= 2.5.
        if not isinstance(s, (int, float)) or isinstance(s, bool) or not 0.0 <= s <= 2.5:
            raise ConfigError("jitter_strength", s, "a number in [0, 2.5]")

    @property
    def blur_kernel_size(self) -> int:
        """Odd kernel side of about 10% of the view (SimCLR), at least 3."""
        k = max(3, int(round(0.1 * self.size)))
        return k if k % 2 == 1 else k + 1


def _channel_stats(field: str, value: Sequence[float]) -> Tensor:
    t = torch.as_tensor(value, dtype=torch.float32).flatten()
    if t.numel() != 3 or not torch.isfinite(t).all():
        raise ConfigError(field, value, "three finite per-channel values in [0, 1] units")
    if field == "std" and not (t > 0).all():
        raise ConfigError(field, value, "three positive per-channel values")
    return t.view(1, 3, 1, 1)


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        desc = f"{type(images).__name__}" if not isinstance(images, Tensor) else f"{images.dtype} {list(images.shape)}"
        raise ConfigError("images", desc, "a uint8 tensor of shape [B, 3, H, W]")


def normalize(images_uint8: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Eval path: uint8 [B,3,H,W] -> float32 ``(x/255 - mean) / std``, no randomness."""
    _check_images(images_uint8)
    m = _channel_stats("mean", mean).to(images_uint8.device)
    s = _channel_stats("std", std).to(images_uint8.device)
    x = images_uint8.to(torch.float32).div_(255.0)
    return ((x - m) / s).contiguous()


class BatchAugment(nn.Module):
    """Applies an :class:`AugmentSpec` to a uint8 batch, random per sample, as tensor ops.

    Operations with probability 0 are left out entirely, so they cost nothing and draw
    no random numbers. Order: crop, flip, colour jitter, grayscale, blur, solarize,
    normalize (SimCLR/BYOL order).
    """

    def __init__(self, spec: AugmentSpec, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if not isinstance(spec, AugmentSpec):
            raise ConfigError("spec", spec, "an AugmentSpec")
        self.spec = spec
        self.register_buffer("mean", _channel_stats("mean", mean), persistent=False)
        self.register_buffer("std", _channel_stats("std", std), persistent=False)
        ops: list[nn.Module] = [
            K.RandomResizedCrop(
                (spec.size, spec.size),
                scale=spec.crop_scale,
                ratio=spec.crop_ratio,
                cropping_mode="resample",
                align_corners=True,
            )
        ]
        if spec.flip_p > 0:
            ops.append(K.RandomHorizontalFlip(p=spec.flip_p))
        if spec.jitter_p > 0 and spec.jitter_strength > 0:
            b = _JITTER_BCS_SCALE * spec.jitter_strength
            ops.append(K.ColorJitter(b, b, b, _JITTER_HUE_SCALE * spec.jitter_strength, p=spec.jitter_p))
        if spec.grayscale_p > 0:
            ops.append(K.RandomGrayscale(p=spec.grayscale_p))
        if spec.blur_p > 0:
            k = spec.blur_kernel_size
            ops.append(K.RandomGaussianBlur((k, k), spec.blur_sigma, p=spec.blur_p))
        if spec.solarize_p > 0:
            t = spec.solarize_threshold
            ops.append(K.RandomSolarize(thresholds=(t, t), additions=(0.0, 0.0), p=spec.solarize_p))
        self.ops = nn.Sequential(*ops)

    def forward(self, images_uint8: Tensor) -> Tensor:
        """uint8 [B,3,H,W] on the training device -> float32 normalized [B,3,size,size]."""
        _check_images(images_uint8)
        if self.mean.device != images_uint8.device:
            # Moves kornia's samplers too, so the random numbers come from the batch's device.
            self.to(images_uint8.device)
        x = images_uint8.contiguous().to(torch.float32).div_(255.0)
        x = self.ops(x)
        return ((x - self.mean) / self.std).contiguous()
