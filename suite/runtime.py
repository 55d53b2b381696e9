"""Where a trial runs: device, precision, seeds and the data-parallel context.

The same training function runs in a laptop process and inside a Ray Train
worker; everything that differs between the two is decided here.
"""
from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from suite.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def detect(cls) -> "DistContext":
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
        return cls()


def resolve_device(spec: str, ctx: DistContext) -> torch.device:
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", ctx.local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", spec, "cpu or auto (no CUDA device is visible)")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", ctx.local_rank % torch.cuda.device_count())
    return device


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA by default (no loss scaling needed); fp32 on CPU
    unless asked, since CPU bf16 is slower than fp32 on most machines."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A fresh, reproducible seed per (trial seed, epoch, rank): resuming at any
    epoch replays exactly the randomness of an uninterrupted run."""
    return (seed * 1_000_003 + epoch * 7_919 + rank * 104_729) % (2**63 - 1)


class _AllReduceSum(torch.autograd.Function):
    """Differentiable all-reduce (sum); its gradient is again an all-reduce sum."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = grad.clone()
        dist.all_reduce(out)
        return out


class GlooSyncBatchNorm(nn.BatchNorm2d):
    """Synchronized BatchNorm for CPU (gloo) data parallelism.

    torch.nn.SyncBatchNorm only runs on accelerators; on CPU workers the batch
    statistics are all-reduced here with a differentiable all-reduce, so a
    2-worker step equals one process on the concatenated batch.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [d for d in range(x.dim()) if d != 1]
        count = torch.tensor([float(x.numel() // x.shape[1])], device=x.device, dtype=torch.float32)
        stats = torch.cat([x.float().sum(dims), (x.float() ** 2).sum(dims), count])
        stats = _AllReduceSum.apply(stats)
        c = x.shape[1]
        total = stats[-1]
        mean = stats[:c] / total
        var = stats[c : 2 * c] / total - mean**2
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * total / (total - 1).clamp(min=1)
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * unbiased.detach())
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape).to(x.dtype)) * torch.rsqrt(var.view(shape) + self.eps).to(x.dtype)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """torch's SyncBatchNorm on accelerators, our gloo version on CPU."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _swap_bn(module)


def _swap_bn(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlooSyncBatchNorm):
        new = GlooSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, _swap_bn(child))
    return module
