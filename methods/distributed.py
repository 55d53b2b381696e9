"""Cross-worker helpers that are identities in a single process.

Losses call these unconditionally, so the same code runs on one CPU and on a
multi-GPU data-parallel trial. Every worker must hold the same local batch size
(data-parallel trials drop the last incomplete batch).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from all workers along dim 0, keeping gradients.

    Why with gradient: contrastive negatives from other workers must pass
    gradient back to them, or a W-worker run is not the same as a 1-worker run
    with W times the batch. torch's differentiable all_gather reduces the
    incoming gradients across workers in its backward pass.
    """
    if world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather forward; backward sums every worker's gradient w.r.t. the
    gathered tensor and keeps this worker's slice (equal shard sizes)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        parts = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        n = grad.shape[0] // world_size()
        return grad[rank() * n : (rank() + 1) * n]


@torch.no_grad()
def concat_all_gather_no_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from all workers along dim 0 (no gradient; e.g. MoCo keys)."""
    if world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


@torch.no_grad()
def all_reduce_mean_(t: Tensor) -> Tensor:
    """Average ``t`` over workers in place and return it (e.g. DINO's center)."""
    if world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(world_size())
    return t


def all_reduce_sum_(t: Tensor) -> Tensor:
    """Sum ``t`` over workers in place and return it (e.g. Sinkhorn-Knopp marginals)."""
    if world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_max_(t: Tensor) -> Tensor:
    """Element-wise maximum of ``t`` over workers, in place (e.g. a shift before ``exp``)."""
    if world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t
