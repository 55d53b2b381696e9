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

from collections.abc import Sequence

import kornia.augmentation as K
import torch
from torch import Tensor, nn

from methods.views import AugmentSpec
from suite.core.errors import ConfigError

__all__ = ["AugmentSpec", "BatchAugment", "normalize"]

# SimCLR's colour-jitter recipe: brightness/contrast/saturation 0.8*s, hue 0.2*s.
_JITTER_BCS_SCALE = 0.8
_JITTER_HUE_SCALE = 0.2


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
