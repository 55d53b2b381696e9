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

from methods.distributed import is_distributed, rank, world_size
from suite.core.errors import ConfigError
from suite.core.machine import available_cpus


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
    def detect(cls) -> DistContext:
        """From torch.distributed, through the same helpers the losses use (one
        source of truth for rank and world size)."""
        return cls(rank(), world_size(), int(os.environ.get("LOCAL_RANK", 0)) if is_distributed() else 0)


def machine_devices() -> str:
    """The devices this process can train on, in words: ``cpu``, ``cpu, cuda:0-3``, ``cpu, mps``."""
    found = ["cpu"]
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count:
        found.append("cuda:0" if count == 1 else f"cuda:0-{count - 1}")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return ", ".join(found)


def resolve_device(spec: str, ctx: DistContext) -> torch.device:
    """The torch device of ``spec`` on this machine; ConfigError (one line, before any work) for a device
    it does not have."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", ctx.local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(spec)
    missing = (
        (device.type == "cuda" and not torch.cuda.is_available())
        or (device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count())
        or (device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()))
    )
    if missing:
        raise ConfigError("device", spec, f"auto or a device this machine has ({machine_devices()})")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", ctx.local_rank % torch.cuda.device_count())
    return device


def fit_threads(requested: int | None, cpus: int | None = None) -> int:
    """Set torch's intra-op threads to ``requested`` (``num_threads``), else to the CPUs the
    trial holds (``cpus``: its Ray resources; default: this process's CPUs), and return it.

    torch's own default is one thread per core of the machine, so two trials sharing a
    machine oversubscribe it (each runs a full set of threads on half the cores)."""
    threads = int(requested) if requested else max(1, int(cpus) if cpus else available_cpus())
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


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


class GlooSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Synchronized BatchNorm for CPU (gloo) data parallelism, for any input rank.

    torch.nn.SyncBatchNorm only runs on accelerators; on CPU workers the batch
    statistics are all-reduced here with a differentiable all-reduce, so a
    2-worker step equals one process on the concatenated batch. It replaces
    BatchNorm1d (projector heads) as well as BatchNorm2d, so it accepts
    (N, C), (N, C, L), (N, C, H, W) and more.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    @classmethod
    def from_batchnorm(cls, bn: nn.modules.batchnorm._BatchNorm) -> GlooSyncBatchNorm:
        """Wrap ``bn``'s own parameters and buffers (the same tensor objects), so a
        frozen BatchNorm of a momentum/teacher network stays frozen and EMA
        updates, optimizers and checkpoints keep pointing at the same tensors."""
        new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        if bn.affine:
            new.weight, new.bias = bn.weight, bn.bias
        if bn.track_running_stats:
            new.running_mean, new.running_var = bn.running_mean, bn.running_var
            new.num_batches_tracked = bn.num_batches_tracked
        new.train(bn.training)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        # Two all-reduces (mean, then squared deviations) rather than E[x^2] - mean^2 in
        # one: the one-pass form cancels catastrophically when |mean| >> std, and
        # large activations are exactly what norm interventions produce.
        dims = [d for d in range(x.dim()) if d != 1]
        c = x.shape[1]
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # bf16 inputs: fp32 statistics
        count = torch.tensor([float(x.numel() // c)], device=x.device, dtype=xf.dtype)
        sums = _AllReduceSum.apply(torch.cat([xf.sum(dims), count]))
        total = sums[-1]
        mean = sums[:c] / total
        shape = [1, c] + [1] * (x.dim() - 2)
        centered = xf - mean.view(shape)
        var = _AllReduceSum.apply((centered**2).sum(dims)) / total
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * total / (total - 1).clamp(min=1)
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * unbiased.detach())
        y = (centered * torch.rsqrt(var.view(shape) + self.eps)).to(x.dtype)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """torch's SyncBatchNorm on accelerators, our gloo version on CPU.

    Both keep every BatchNorm's parameter and buffer objects (torch's converter
    assigns them too), so ``requires_grad`` of frozen target networks survives."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _swap_bn(module)


def prepare_data_parallel(method: nn.Module, device: torch.device) -> nn.Module:
    """The module a data-parallel worker calls: synchronized BatchNorm, then DDP.

    DDP registers only parameters that require gradients (frozen target and
    teacher networks stay out), and buffers are not broadcast: every buffer
    update (BN statistics, MoCo queue, DINO centre) is already identical on
    every rank because it is computed from globally gathered tensors.
    The parameters stay the same objects (BatchNorm's are kept, DDP wraps), so an
    optimizer built from ``method`` before this call steps them as well.
    """
    from torch.nn.parallel import DistributedDataParallel

    convert_sync_batchnorm(method, device)
    return DistributedDataParallel(
        method, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
    )


def _swap_bn(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlooSyncBatchNorm):
        return GlooSyncBatchNorm.from_batchnorm(module)
    for name, child in module.named_children():
        setattr(module, name, _swap_bn(child))
    return module
