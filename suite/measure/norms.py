"""Summaries of embedding / feature norms, per epoch and at evaluation.

Norms are the object of study (they set the effective step size on the sphere
and encode confidence), so every trial records their distribution, not only the
mean: mean, population std and the 5/25/50/75/95 % quantiles.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from suite.core.errors import ConfigError

__all__ = ["QUANTILES", "norm_summary", "RunningNormStats"]

QUANTILES: tuple[tuple[str, float], ...] = (("q05", 0.05), ("q25", 0.25), ("q50", 0.50), ("q75", 0.75), ("q95", 0.95))
_TORCH_QUANTILE_MAX = 2**24  # torch.quantile refuses larger inputs


def norm_summary(norms: Tensor) -> dict[str, float]:
    """``mean, std, q05, q25, q50, q75, q95`` of a 1-D tensor of norms (``schema.EVAL_NORM_STATS``).

    The std is the population std (ddof=0, like numpy's default); quantiles use
    linear interpolation. Non-finite norms (a diverged trial) propagate as NaN/inf
    instead of raising, so the failure is visible in the results table.
    """
    if not isinstance(norms, Tensor):
        raise ConfigError("norms", type(norms).__name__, "a torch.Tensor")
    if norms.numel() == 0:
        raise ConfigError("norms", "empty tensor", "at least one value")
    x = norms.detach().reshape(-1).to(device="cpu", dtype=torch.float64)
    out = {"mean": float(x.mean()), "std": float(x.std(correction=0))}
    qs = [q for _, q in QUANTILES]
    if x.numel() <= _TORCH_QUANTILE_MAX:
        values = torch.quantile(x, torch.tensor(qs, dtype=torch.float64)).tolist()
    else:
        values = np.quantile(x.numpy(), qs).tolist()
    for (name, _), v in zip(QUANTILES, values):
        out[name] = float(v)
    return out


class RunningNormStats:
    """Collects per-sample norms over an epoch and summarizes them at the end.

    Norms are kept on their device as detached float32 chunks (one cheap
    ``linalg.vector_norm`` per batch, no host sync); ``summary`` concatenates
    them once. Memory: 4 bytes per sample per epoch.
    """

    def __init__(self) -> None:
        self._chunks: list[Tensor] = []

    def update(self, norms: Tensor) -> None:
        """Add a batch of per-sample norms (any shape; flattened)."""
        self._chunks.append(norms.detach().reshape(-1).float())

    def update_vectors(self, vectors: Tensor) -> None:
        """Add a batch of vectors ``[B, D]``; their L2 norms over the last dim are stored."""
        if vectors.ndim < 2:
            raise ConfigError("vectors", tuple(vectors.shape), "a tensor [B, D] (norm over the last dim)")
        self.update(torch.linalg.vector_norm(vectors.detach().float(), dim=-1))

    @property
    def count(self) -> int:
        return sum(c.numel() for c in self._chunks)

    def norms(self) -> Tensor:
        """All norms collected so far, as one float32 CPU tensor."""
        if not self._chunks:
            return torch.zeros(0)
        return torch.cat([c.cpu() for c in self._chunks])

    def summary(self) -> dict[str, float]:
        """``norm_summary`` of everything collected since the last ``reset``."""
        return norm_summary(self.norms())

    def reset(self) -> None:
        self._chunks.clear()
