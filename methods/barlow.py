"""Barlow Twins (Zbontar et al., 2021): drive the two views' cross-correlation matrix to the identity.

Each embedding dimension is standardized over the batch (mean 0, variance 1: BatchNorm without
affine, as the reference code); the cross-correlation of the two standardized views is pushed to
1 on its diagonal (invariance) and to 0 off it (redundancy reduction, weighted by lambda). The loss
never L2-normalizes a sample's embedding: Barlow Twins is a control for the claims about losses
that do (the 1/||z|| law does not apply to it).

Embedding (GradScale and norm tracking): the projector output of both views.

Under data parallelism the standardization and the cross-correlation use the global batch, gathered
*with* gradient, so W workers give the one-process loss and gradients (the reference code all-reduces
the cross-correlation without autograd, which leaves each worker's gradient 1/W of the right one).

Defaults (sources):
  * optimizer SGD momentum 0.9, lr 0.12 per 256 images, weight decay 5e-4: lightly's CIFAR-10
    benchmark (BarlowTwinsModel: 0.06 * B/128); 10 warm-up epochs: Barlow Twins;
  * lambda 0.0051: Barlow Twins' code (facebookresearch/barlowtwins, the paper's 5e-3);
  * projector 3 layers feature_dim -> 2048 -> 2048 -> 2048, BatchNorm and ReLU after the first two,
    the last Linear without bias: the paper's shape (8192 wide on ImageNet) at solo-learn's CIFAR width
    (scripts/pretrain/cifar/barlow.yaml);
  * views: asymmetric as BYOL (blur 1.0 / 0.1 above 64 px, solarize 0 / 0.2): Barlow Twins uses BYOL's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from methods.base import HParams, SSLMethod, hparam
from methods.byol import asymmetric_view_specs
from methods.distributed import gather_with_grad
from methods.heads import mlp

BN_EPS = 1e-5  # BatchNorm's: the reference standardizes with nn.BatchNorm1d(affine=False)


def at_least_float32(z: Tensor) -> Tensor:
    """``z`` in float32, or its own type when wider: batch statistics in bf16 lose the small correlations."""
    return z.to(torch.promote_types(z.dtype, torch.float32))


def off_diagonal(m: Tensor) -> Tensor:
    """The off-diagonal entries of a square matrix, flattened."""
    n = m.shape[0]
    return m.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def standardize(z: Tensor, eps: float = BN_EPS) -> Tensor:
    """Each column to mean 0 and (biased) variance 1 over the rows, as BatchNorm in training mode."""
    mean = z.mean(dim=0, keepdim=True)
    var = (z - mean).pow(2).mean(dim=0, keepdim=True)
    return (z - mean) / torch.sqrt(var + eps)


def barlow_twins_loss(z1: Tensor, z2: Tensor, lambd: float) -> Tensor:
    """sum_i (1 - C_ii)^2 + lambd sum_{i != j} C_ij^2 with C = z1n^T z2n / N, z1n and z2n the views
    standardized per dimension over the global batch of N rows; in float32 (or the inputs' wider type)
    whatever the autocast."""
    with torch.autocast(z1.device.type, enabled=False):
        z1, z2 = gather_with_grad(at_least_float32(z1)), gather_with_grad(at_least_float32(z2))
        c = standardize(z1).T @ standardize(z2) / z1.shape[0]
        return (torch.diagonal(c) - 1).pow(2).sum() + lambd * off_diagonal(c).pow(2).sum()


class BarlowTwinsHparams(HParams):
    lambd: float = hparam(0.0051, lo=0.0, doc="weight of the off-diagonal (redundancy) terms")
    proj_hidden_dim: int = hparam(2048, lo=1, doc="width of the projector's hidden layers")
    proj_output_dim: int = hparam(2048, lo=1, doc="width of the projector's output")


class BarlowTwins(SSLMethod):
    name = "barlow"
    title = "Barlow Twins"
    Hparams = BarlowTwinsHparams
    default_optimizer = "sgd"
    default_lr = 0.12
    default_weight_decay = 5e-4
    default_warmup_epochs = 10
    default_sources = (
        "Barlow Twins (Zbontar et al., 2021; facebookresearch/barlowtwins): lambda 0.0051, projector shape, "
        "warm-up, views; solo-learn's CIFAR recipe: width 2048; lightly's CIFAR-10 benchmark: SGD lr 0.12 per 256, "
        "weight decay 5e-4"
    )
    min_batch_size = 2
    embedding_description = "projector output of both views, which the loss standardizes per dimension"
    loss_normalizes_embedding = False
    collapse_loss_formula = "D (proj_output_dim)"

    def build_online(self) -> None:
        h = self.hparams
        self.projector = mlp(
            self.feature_dim, h.proj_hidden_dim, h.proj_output_dim, num_layers=3, batch_norm=True, last_bias=False
        )

    def embedding(self, features: Tensor) -> Tensor:
        return self.projector(features)

    def embedding_layer(self) -> nn.Module:
        return self.projector[-1]

    @classmethod
    def collapse_loss(cls, hparams: BarlowTwinsHparams, batch_size: int) -> float:
        """Equal embeddings standardize to 0: C = 0, every diagonal term costs 1."""
        return float(hparams.proj_output_dim)

    def view_specs(self, image_size: int) -> list:
        return asymmetric_view_specs(image_size)

    def forward(self, views: list[Tensor]) -> dict:
        self._check_views(views, 2)
        features = [self.backbone(v) for v in views]
        z1, z2 = (self.intervene(self.projector(f)) for f in features)
        loss = barlow_twins_loss(z1, z2, self.hparams.lambd)
        return self._output(loss, [z1, z2], features)
