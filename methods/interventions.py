"""Norm interventions: cut-initialization, GradScale and weight decay.

Why these three: with a cosine-similarity loss the gradient w.r.t. an embedding z
is orthogonal to z and scales as 1/||z||, so large norms slow learning
(Draganov et al., ICML 2025). Each intervention acts on that mechanism:

* ``cut:C``       divide every freshly initialised parameter by C > 1 (small start norms);
* ``gradscale:P`` identity forward, gradient times ||z||^P backward (P = 1 cancels 1/||z||);
* ``wd:X``        weight decay X >= 0 (shrinks weights and so norms); applied by the
                  optimizer, this module only parses it.

Specs compose with ``+``: ``cut:3+gradscale:1``; ``none`` is the baseline.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from methods.errors import ConfigError
from methods.intervention_spec import INTERVENTION_KINDS, Intervention, parse_intervention  # noqa: F401


@torch.no_grad()
def cut_init(module: nn.Module, c: float) -> nn.Module:
    """Divide every parameter (weights, biases, norm affines) of ``module`` by ``c`` in place.

    Buffers (BatchNorm running statistics, queues) are not parameters and are left alone.
    """
    if not (isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) and c > 0):
        raise ConfigError("intervention", c, "cut:C with C > 1")
    for param in module.parameters():
        param.div_(c)
    return module


class GradScale(torch.autograd.Function):
    """Identity forward; backward multiplies each row's gradient by ||z_row||^p.

    The norm is treated as a constant (detached), so only the step size changes,
    not its direction: with p = 1 the 1/||z|| factor of a cosine loss cancels.
    """

    @staticmethod
    def forward(ctx: Any, z: Tensor, p: float) -> Tensor:
        ctx.save_for_backward(z)
        ctx.p = float(p)
        return z.view_as(z)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (z,) = ctx.saved_tensors
        # at least float32 (half-precision norms overflow), never below the input's precision
        z = z.detach().to(torch.promote_types(z.dtype, torch.float32))
        norm = torch.linalg.vector_norm(z, dim=-1, keepdim=True)
        return grad * norm.pow(ctx.p).to(grad.dtype), None


def grad_scale(z: Tensor, p: float) -> Tensor:
    """Apply :class:`GradScale` with power ``p`` (rows are the last dimension's vectors)."""
    return GradScale.apply(z, p)
