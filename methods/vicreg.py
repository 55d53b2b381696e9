"""VICReg (Bardes, Ponce & LeCun, 2022): invariance, variance and covariance terms on raw embeddings.

Invariance: the mean squared distance between the two views' embeddings. Variance: a hinge
keeping each dimension's standard deviation over the batch at least 1. Covariance: the squared
off-diagonal covariances, pushing dimensions apart. Nothing normalizes a sample's embedding, so
VICReg is a control for the claims about losses that L2-normalize (its loss depends on the
embedding's scale, and the 1/||z|| law does not apply).

Embedding (GradScale and norm tracking): the projector output of both views.

Under data parallelism all three terms use the global batch, gathered *with* gradient (as VICReg's
own FullGatherLayer), so W workers give the one-process loss and gradients.

Defaults (sources):
  * weights 25 (invariance), 25 (variance), 1 (covariance), hinge target 1 and epsilon 1e-4 under the
    square root, the unbiased variance: VICReg (paper and facebookresearch/vicreg);
  * optimizer SGD momentum 0.9, lr 0.12 per 256 images, weight decay 5e-4: none of the anchors publishes
    an SGD recipe for VICReg, so Barlow Twins' (lightly's CIFAR-10 benchmark): both papers use LARS with
    the same base lr 0.2; 10 warm-up epochs: VICReg;
  * projector 3 layers feature_dim -> 2048 -> 2048 -> 2048, BatchNorm and ReLU after the first two, the
    last Linear without bias: the paper's shape (8192 wide on ImageNet) at solo-learn's CIFAR width
    (scripts/pretrain/cifar/vicreg.yaml);
  * views: asymmetric as BYOL (blur 1.0 / 0.1 above 64 px, solarize 0 / 0.2): VICReg uses BYOL's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.barlow import at_least_float32, off_diagonal
from methods.base import HParams, SSLMethod, hparam
from methods.byol import asymmetric_view_specs
from methods.distributed import gather_with_grad
from methods.heads import mlp

VARIANCE_EPS = 1e-4  # VICReg's, under the square root of the variance
VARIANCE_TARGET = 1.0  # the hinge's target standard deviation (gamma)


def _variance_hinge(z: Tensor) -> Tensor:
    std = torch.sqrt(z.var(dim=0) + VARIANCE_EPS)  # unbiased, as VICReg
    return F.relu(VARIANCE_TARGET - std).mean()


def _covariance(z: Tensor) -> Tensor:
    centred = z - z.mean(dim=0)
    cov = centred.T @ centred / (z.shape[0] - 1)
    return off_diagonal(cov).pow(2).sum() / z.shape[1]


def vicreg_loss(z1: Tensor, z2: Tensor, sim_weight: float, var_weight: float, cov_weight: float) -> Tensor:
    """sim_weight * MSE(z1, z2) + var_weight * (hinge(z1) + hinge(z2)) / 2 + cov_weight * (cov(z1) + cov(z2)),
    hinge(z) the mean over dimensions of max(0, 1 - sqrt(Var(z_j) + 1e-4)), cov(z) the squared off-diagonal
    covariances summed and divided by the dimension, all over the global batch; in float32 at least."""
    with torch.autocast(z1.device.type, enabled=False):
        z1, z2 = gather_with_grad(at_least_float32(z1)), gather_with_grad(at_least_float32(z2))
        invariance = F.mse_loss(z1, z2)
        variance = 0.5 * (_variance_hinge(z1) + _variance_hinge(z2))
        covariance = _covariance(z1) + _covariance(z2)
        return sim_weight * invariance + var_weight * variance + cov_weight * covariance


class VICRegHparams(HParams):
    sim_weight: float = hparam(25.0, lo=0.0, doc="weight of the invariance (mean squared distance) term")
    var_weight: float = hparam(25.0, lo=0.0, doc="weight of the variance hinge")
    cov_weight: float = hparam(1.0, lo=0.0, doc="weight of the covariance term")
    proj_hidden_dim: int = hparam(2048, lo=1, doc="width of the projector's hidden layers")
    proj_output_dim: int = hparam(2048, lo=1, doc="width of the projector's output")


class VICReg(SSLMethod):
    name = "vicreg"
    title = "VICReg"
    Hparams = VICRegHparams
    default_optimizer = "sgd"
    default_lr = 0.12
    default_weight_decay = 5e-4
    default_warmup_epochs = 10
    default_sources = (
        "VICReg (Bardes, Ponce & LeCun, 2022; facebookresearch/vicreg): loss weights, projector shape, warm-up, "
        "views; solo-learn's CIFAR recipe: width 2048; Barlow Twins' SGD recipe from lightly's CIFAR-10 "
        "benchmark: lr 0.12 per 256, weight decay 5e-4"
    )
    min_batch_size = 2
    embedding_description = "projector output of both views"
    loss_normalizes_embedding = False
    collapse_loss_formula = "0.99 var_weight"

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
    def collapse_loss(cls, hparams: VICRegHparams, batch_size: int) -> float:
        """Equal embeddings: no invariance or covariance cost, and every dimension's std is sqrt(1e-4)."""
        return hparams.var_weight * (VARIANCE_TARGET - math.sqrt(VARIANCE_EPS))

    def view_specs(self, image_size: int) -> list:
        return asymmetric_view_specs(image_size)

    def forward(self, views: list[Tensor]) -> dict:
        self._check_views(views, 2)
        features = [self.backbone(v) for v in views]
        z1, z2 = (self.intervene(self.projector(f)) for f in features)
        loss = vicreg_loss(z1, z2, self.hparams.sim_weight, self.hparams.var_weight, self.hparams.cov_weight)
        return self._output(loss, [z1, z2], features)
