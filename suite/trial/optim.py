"""Optimizers and the learning-rate schedule.

LARS comes from timm (well kept, used by its own SSL recipes). Following the
SimCLR/BYOL practice, biases and normalization parameters are excluded from
LARS adaptation and weight decay (every other layer adapts, also at weight
decay 0); SGD and AdamW decay every parameter, which is
what the paper's weight-decay sweeps do.
"""

from __future__ import annotations

import math

import timm.optim
import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float, exclude_1d: bool) -> list[dict]:
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (no_decay if exclude_1d and param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def lars_param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight-decay groups with timm's per-group ``always_adapt`` set for LARS.

    timm's ``Lars`` adapts a group only when its weight_decay != 0 unless
    ``always_adapt`` is set, so at ``weight_decay=0`` it would silently be SGD.
    The layer-wise trust ratio is what LARS is, whatever the decay: matrices and
    kernels always adapt; biases and normalization weights (1-D) never do and
    take the plain SGD step (SimCLR/BYOL practice).
    """
    groups = param_groups(model, weight_decay, exclude_1d=True)
    groups[0]["always_adapt"] = True
    for group in groups[1:]:
        group["always_adapt"] = False
    return groups


def build_optimizer(
    model: nn.Module, name: str, lr: float, weight_decay: float, momentum: float
) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(param_groups(model, weight_decay, False), lr=lr, momentum=momentum)
    if name == "lars":
        return timm.optim.Lars(
            lars_param_groups(model, weight_decay), lr=lr, momentum=momentum, trust_coeff=0.02, trust_clip=True
        )
    if name == "adamw":
        return torch.optim.AdamW(param_groups(model, weight_decay, True), lr=lr)
    raise ValueError(f"optimizer: {name!r}")  # config validation makes this unreachable


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float, final_fraction: float = 0.0) -> float:
    """Linear warm-up from 0, then cosine decay to ``final_fraction * base_lr``.

    A pure function of the step, so a resumed trial gets exactly the same
    schedule without saving scheduler state.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    floor = base_lr * final_fraction
    return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_sum(total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """The learning rate summed over every step of training (`lr_at` itself, about a second per
    million steps, once per trial): weight decay times it is the decay's dose, the log-factor by
    which decay alone would shrink an untouched weight."""
    return math.fsum(lr_at(step, total_steps, warmup_steps, base_lr) for step in range(total_steps))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
