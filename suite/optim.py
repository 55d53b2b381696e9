"""Optimizers and the learning-rate schedule.

LARS comes from timm (well kept, used by its own SSL recipes). Following the
SimCLR/BYOL practice, biases and normalization parameters are excluded from
LARS adaptation and weight decay; SGD and AdamW decay every parameter, which is
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


def build_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(param_groups(model, weight_decay, False), lr=lr, momentum=momentum)
    if name == "lars":
        # timm's Lars skips adaptation for groups whose weight_decay is 0 (biases, norms).
        return timm.optim.Lars(param_groups(model, weight_decay, True), lr=lr, momentum=momentum, trust_coeff=0.02, trust_clip=True)
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


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
