"""SimCLR (Chen et al., 2020): contrast two views of each image against all others.

Embedding (where GradScale acts and whose norm is tracked): the projector output of
both views.

Defaults (sources):
  * optimizer SGD momentum 0.9, lr 0.3 per 256 images, weight decay 1e-6, 10 warm-up
    epochs: SimCLR's lr = 0.3 * B/256 and wd 1e-6, as in the norm paper's code
    (configs/simclr_default.yml; SGD, not LARS, because LARS rescales each layer's step
    by its weight norm and would partly cancel cut-initialization);
  * temperature 0.5: the norm paper's code / SimCLR appendix B.7 for batch 256-512;
  * projector feature_dim -> 512 -> 128 without BatchNorm (SimCLR: hidden = ResNet-18
    feature width, 128-d output; the norm paper's code uses no BN);
  * views: 2 x crop scale (0.2, 1), flip 0.5, colour jitter s=0.5 (p 0.8), grayscale 0.2,
    blur only above 64 px.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.base import HParams, SSLMethod, hparam
from methods.distributed import gather_with_grad, rank
from methods.heads import mlp
from methods.views import default_view_specs


def nt_xent_loss(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """Standard NT-Xent over 2N samples, both directions, mean over anchors.

    Each of the 2N (local) anchors has its other view as positive and all other
    2N_total - 2 embeddings as negatives; with several workers the negatives of
    the other workers are gathered *with gradient*, so W workers compute the
    same loss and gradients as one worker with the whole batch.
    """
    z1 = F.normalize(z1, dim=1)
    z2 = F.normalize(z2, dim=1)
    n = z1.shape[0]
    all1, all2 = gather_with_grad(z1), gather_with_grad(z2)
    n_total = all1.shape[0]
    anchors = torch.cat([z1, z2])  # [2n, D]
    candidates = torch.cat([all1, all2])  # [2N, D]
    logits = anchors @ candidates.T / temperature  # [2n, 2N]
    own = torch.arange(n, device=z1.device) + rank() * n
    self_index = torch.cat([own, own + n_total])
    positive_index = torch.cat([own + n_total, own])
    self_mask = torch.zeros_like(logits, dtype=torch.bool)
    self_mask[torch.arange(2 * n, device=z1.device), self_index] = True
    logits = logits.masked_fill(self_mask, float("-inf"))
    return F.cross_entropy(logits, positive_index)


class SimCLRHparams(HParams):
    temperature: float = hparam(0.5, lo=0.0, lo_open=True, doc="softmax temperature")
    proj_hidden_dim: int = hparam(512, lo=1, doc="width of the projector's hidden layers")
    proj_output_dim: int = hparam(128, lo=1, doc="width of the projector's output")
    proj_batch_norm: bool = hparam(False, doc="BatchNorm in the projector's hidden layer")


class SimCLR(SSLMethod):
    name = "simclr"
    title = "SimCLR"
    Hparams = SimCLRHparams
    default_optimizer = "sgd"
    default_lr = 0.3
    default_weight_decay = 1e-6
    default_warmup_epochs = 10
    default_sources = (
        "the norm paper's code (configs/simclr_default.yml): lr, weight decay, temperature, projector; SimCLR "
        "(Chen et al., 2020): lr 0.3 per 256, temperature (appendix B.7); SGD instead of LARS"
    )
    min_batch_size = 2
    embedding_description = "projector output of both views"
    collapse_loss_formula = "ln(2B - 1)"

    def build_online(self) -> None:
        h = self.hparams
        self.projector = mlp(self.feature_dim, h.proj_hidden_dim, h.proj_output_dim, batch_norm=h.proj_batch_norm)

    def embedding_layer(self) -> nn.Module:
        return self.projector[-1]

    @classmethod
    def collapse_loss(cls, hparams: SimCLRHparams, batch_size: int) -> float:
        """Equal embeddings make every one of an anchor's 2N - 1 candidates equally likely."""
        return math.log(2 * batch_size - 1)

    def embedding(self, features: Tensor) -> Tensor:
        return self.projector(features)

    def view_specs(self, image_size: int) -> list:
        return default_view_specs(image_size)

    def forward(self, views: list[Tensor]) -> dict:
        self._check_views(views, 2)
        features = [self.backbone(v) for v in views]
        z1, z2 = (self.intervene(self.projector(f)) for f in features)
        loss = nt_xent_loss(z1, z2, self.hparams.temperature)
        return self._output(loss, [z1, z2], features)
