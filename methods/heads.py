"""Small MLP heads shared by the methods (projectors, predictors, DINO head)."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn


def mlp(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    num_layers: int = 2,
    batch_norm: bool = False,
    last_batch_norm: bool = False,
    last_batch_norm_affine: bool = True,
    activation: type[nn.Module] = nn.ReLU,
    last_bias: bool = True,
) -> nn.Sequential:
    """Linear -> [BN] -> act, repeated, then a last Linear [-> BN].

    Linear layers followed by BatchNorm have no bias (BN's shift makes it redundant),
    as in the SimSiam / BYOL reference implementations; ``last_bias=False`` drops the last
    one's too (Barlow Twins and VICReg, whose losses remove each dimension's mean anyway).
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    layers: list[nn.Module] = []
    dims = [in_dim] + [hidden_dim] * (num_layers - 1)
    for d_in, d_out in zip(dims[:-1], dims[1:]):
        layers.append(nn.Linear(d_in, d_out, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(d_out))
        layers.append(activation())
    layers.append(nn.Linear(dims[-1], out_dim, bias=last_bias and not last_batch_norm))
    if last_batch_norm:
        layers.append(nn.BatchNorm1d(out_dim, affine=last_batch_norm_affine))
    return nn.Sequential(*layers)


class NormalizedLinear(nn.Module):
    """Linear layer with unit-norm rows and no bias.

    Equivalent to DINO's weight-normalised prototype layer with the magnitude g
    fixed to 1: only the direction is learned, and cut-initialisation (which
    rescales the stored weight) leaves its output unchanged.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(nn.Linear(in_dim, out_dim, bias=False).weight.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, F.normalize(self.weight, dim=1))


class DINOHead(nn.Module):
    """MLP -> bottleneck (DINO's "embedding") -> L2 normalise -> prototypes.

    ``forward`` takes an optional ``transform`` applied to the bottleneck output
    before the normalisation: that is where GradScale goes.
    """

    def __init__(
        self, in_dim: int, hidden_dim: int, bottleneck_dim: int, num_prototypes: int, num_layers: int = 3
    ) -> None:
        super().__init__()
        self.mlp = mlp(in_dim, hidden_dim, bottleneck_dim, num_layers=num_layers, activation=nn.GELU)
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):  # DINO's init
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.prototypes = NormalizedLinear(bottleneck_dim, num_prototypes)

    def forward(self, x: Tensor, transform: Callable[[Tensor], Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """Return (bottleneck embedding after ``transform``, prototype logits)."""
        embedding = self.mlp(x)
        if transform is not None:
            embedding = transform(embedding)
        return embedding, self.prototypes(F.normalize(embedding, dim=-1))
