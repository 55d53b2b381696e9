"""Instruments for the paper's mechanism, measured inside a real trial.

* ``EmbeddingGradStats`` -- the gradient the loss sends to each embedding z
  (the vector the loss L2-normalizes): its norm, its cosine with z (theory: 0)
  and ``||dL/dz|| * ||z||`` (the gradient w.r.t. the direction; by the 1/||z||
  law independent of the norm). Accumulated on the device by tensor hooks, so
  the training step never waits for the host.
* ``recompute_batchnorm`` -- precise BatchNorm statistics from clean training
  images before an evaluation, restored afterwards so training is untouched.
* ``angle_change`` -- how far a fixed probe set's embeddings turned on the
  sphere between two evaluations (the effective step of claim 1).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from methods.distributed import all_reduce_mean_
from suite.results.schema import GRAD_COLUMNS


class EmbeddingGradStats:
    """Per-sample gradient statistics at the embedding, summed on the device."""

    def __init__(self, device: torch.device) -> None:
        self._sums = torch.zeros(4, device=device, dtype=torch.float64)  # |g|, |cos|, |g||z|, count

    def watch(self, embeddings: list[Tensor]) -> None:
        """Hook each live embedding tensor: its gradient arrives as the loss
        sends it, i.e. before GradScale (which acts further down) rescales it."""
        for z in embeddings:
            if z.requires_grad:
                z.register_hook(self._hook(z.detach()))

    def _hook(self, z: Tensor) -> Callable[[Tensor], None]:
        def record(grad: Tensor) -> None:
            g, zf = grad.detach().double(), z.double()
            g_norm, z_norm = g.norm(dim=-1), zf.norm(dim=-1)
            cos = (g * zf).sum(-1) / (g_norm * z_norm).clamp_min(1e-300)
            self._sums += torch.stack(
                [
                    g_norm.sum(),
                    cos.abs().sum(),
                    (g_norm * z_norm).sum(),
                    torch.tensor(float(g.shape[0]), device=g.device, dtype=g.dtype),
                ]
            )

        return record

    def summary(self) -> dict[str, float]:
        """Means over every sample of the epoch and every worker."""
        sums = all_reduce_mean_(self._sums.clone())
        count = float(sums[3])
        if count == 0:
            return {c: float("nan") for c in GRAD_COLUMNS}
        return dict(zip(GRAD_COLUMNS, (float(v) / count for v in sums[:3])))


def _batchnorms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@contextlib.contextmanager
def recomputed_batchnorm(
    modules: list[nn.Module], batches: Iterator[Tensor], forward: Callable[[Tensor], None]
) -> Iterator[None]:
    """Inside the block, every BatchNorm of ``modules`` holds statistics
    re-estimated from ``batches`` (reset, then a cumulative average over
    train-mode forwards without gradient, as precise-BN does); on exit the
    training statistics and modes come back exactly.

    With synchronized BatchNorm (several workers) each batch's statistics are
    all-reduced, so every worker must pass the same number of batches."""
    bns = [bn for m in modules for bn in _batchnorms(m)]
    saved = [
        (bn.momentum, bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()) for bn in bns
    ]
    modes = [(m, m.training) for root in modules for m in root.modules()]
    try:
        for root in modules:
            root.eval()
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: every batch counts the same
            bn.train()
        with torch.no_grad():
            for x in batches:
                forward(x)
        for bn in bns:
            bn.eval()
        yield
    finally:
        for bn, (momentum, mean, var, count) in zip(bns, saved):
            bn.momentum = momentum
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.num_batches_tracked.copy_(count)
        for m, training in modes:
            m.training = training


def angle_change(before: Tensor, after: Tensor) -> Tensor:
    """Per-row angle in radians between two sets of embeddings of the same inputs."""
    cos = torch.nn.functional.cosine_similarity(before.double(), after.double(), dim=-1)
    return torch.arccos(cos.clamp(-1.0, 1.0))


def probe_indices(num_train: int, size: int = 256, seed: int = 0) -> Tensor:
    """The fixed probe set: the same training images at every evaluation of every trial."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(num_train, generator=g)[: min(size, num_train)].sort().values
