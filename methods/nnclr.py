"""NNCLR (Dwibedi et al., 2021): contrastive, with the positive a nearest neighbour from a support set.

The positive of view 2's prediction is the nearest neighbour, in a FIFO support set of past
projector outputs, of view 1's projector output (and symmetrically); the other images' neighbours
are the negatives. The neighbours are constants; the gradient reaches the network through the
predictions. The support set is written after the neighbours are read, with the global batch's
view-1 projections, so an image never finds its own current embedding.

Embedding (GradScale and norm tracking): the predictor output of both views.

Defaults (sources):
  * optimizer SGD momentum 0.9, lr 0.12 per 256 images, weight decay 5e-4: lightly's CIFAR-10
    benchmark (NNCLRModel: 0.06 * B/128); 10 warm-up epochs (as SimCLR, whose schedule NNCLR follows);
  * temperature 0.2, projector feature_dim -> 2048 -> 256 with BatchNorm after both layers,
    predictor 256 -> 4096 -> 256: solo-learn's CIFAR recipe (scripts/pretrain/cifar/nnclr.yaml; the
    paper's ImageNet projector has 3 layers and temperature 0.1);
  * support set 4096 embeddings: lightly's CIFAR-10 benchmark (the paper uses 98,304 on ImageNet).
    A support set at least as large as the training set would mostly hold earlier embeddings of the
    image itself, and one that never fills would answer with its random initial entries, so the
    trial clamps it like MoCo's queue and says so in the row's ``notes``;
  * views: as SimCLR (crop (0.2, 1), jitter s=0.5 p 0.8, grayscale 0.2, blur above 64 px), as lightly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.base import HParams, SSLMethod, hparam
from methods.distributed import concat_all_gather_no_grad, gather_with_grad, rank
from methods.heads import mlp
from methods.views import default_view_specs


@torch.no_grad()
def nearest_neighbours(z: Tensor, support: Tensor) -> Tensor:
    """The row of ``support`` with the largest cosine similarity to each row of ``z`` (L2-normalized)."""
    support = F.normalize(support.to(z.dtype), dim=1)
    return support[(F.normalize(z, dim=1) @ support.T).argmax(dim=1)]


def _contrast(anchors: Tensor, p: Tensor, temperature: float) -> Tensor:
    """Cross-entropy of each local anchor (a neighbour, constant) against the predictions of the global
    batch, the same image's prediction being the positive. The predictions are gathered *with* gradient:
    another worker's anchors are negatives of this worker's predictions.

    In float64 (float32 on MPS): an untrained network maps every image near the same support row, so all
    anchors can be one vector, and each prediction's gradient is then a small difference of O(1) terms that
    float32 leaves with ~1e-3 relative error (the C2b identity check would read it as a violation)."""
    wide = torch.float32 if p.device.type == "mps" else torch.float64
    anchors = F.normalize(anchors.detach().to(wide), dim=1)
    candidates = gather_with_grad(F.normalize(p.to(wide), dim=1))
    logits = anchors @ candidates.T / temperature
    labels = torch.arange(anchors.shape[0], device=p.device) + rank() * anchors.shape[0]
    return F.cross_entropy(logits, labels)


def nnclr_loss(z1: Tensor, z2: Tensor, p1: Tensor, p2: Tensor, support: Tensor, temperature: float) -> Tensor:
    """NNCLR's symmetric loss: (ctr(NN(z1), p2) + ctr(NN(z2), p1)) / 2, NN the nearest row of ``support``
    (cosine), each term the mean over anchors of the cross-entropy against the batch's predictions."""
    nn1, nn2 = nearest_neighbours(z1.detach(), support), nearest_neighbours(z2.detach(), support)
    return 0.5 * (_contrast(nn1, p2, temperature) + _contrast(nn2, p1, temperature))


class NNCLRHparams(HParams):
    temperature: float = hparam(0.2, lo=0.0, lo_open=True, doc="softmax temperature")
    support_size: int = hparam(4096, lo=1, doc="embeddings in the FIFO support set the neighbours come from")
    proj_hidden_dim: int = hparam(2048, lo=1, doc="width of the projector's hidden layers")
    proj_output_dim: int = hparam(256, lo=1, doc="width of the projector's output")
    pred_hidden_dim: int = hparam(4096, lo=1, doc="width of the predictor's hidden layer")


class NNCLR(SSLMethod):
    name = "nnclr"
    title = "NNCLR"
    Hparams = NNCLRHparams
    default_optimizer = "sgd"
    default_lr = 0.12
    default_weight_decay = 5e-4
    default_warmup_epochs = 10
    default_sources = (
        "NNCLR (Dwibedi et al., 2021); solo-learn's CIFAR recipe: heads, temperature 0.2; lightly's CIFAR-10 "
        "benchmark: SGD lr 0.12 per 256, weight decay 5e-4, support set 4096"
    )
    min_batch_size = 2
    embedding_description = "predictor output of both views"
    collapse_loss_formula = "ln(B)"

    support: Tensor
    support_ptr: Tensor

    def build_online(self) -> None:
        h = self.hparams
        self.projector = mlp(
            self.feature_dim, h.proj_hidden_dim, h.proj_output_dim, batch_norm=True, last_batch_norm=True
        )
        self.predictor = mlp(h.proj_output_dim, h.pred_hidden_dim, h.proj_output_dim, batch_norm=True)

    def build_target(self) -> None:
        self._reset_support(self.hparams.support_size)

    def _reset_support(self, size: int, device: torch.device | None = None) -> None:
        support = F.normalize(torch.randn(size, self.hparams.proj_output_dim, device=device), dim=1)
        self.register_buffer("support", support)
        self.register_buffer("support_ptr", torch.zeros((), dtype=torch.long, device=device))

    def embedding(self, features: Tensor) -> Tensor:
        return self.predictor(self.projector(features))

    def embedding_layer(self) -> nn.Module:
        return self.predictor[-1]

    def encode_heads(self, features: Tensor) -> dict[str, Tensor]:
        projection = self.projector(features)
        return {"projection": projection, "embedding": self.predictor(projection)}

    @classmethod
    def collapse_loss(cls, hparams: NNCLRHparams, batch_size: int) -> float:
        """Equal neighbours and predictions make the positive one of B equal logits."""
        return math.log(batch_size)

    def check_train_size(self, num_train: int) -> list[str]:
        """Clamp a support set at least as large as the training set to the largest power of two below
        half of it (as MoCo's queue), and say so."""
        size = self.hparams.support_size
        if size < num_train:
            return []
        clamped = 2 ** max(int(math.log2(max(num_train // 2, 1))), 0)
        self._reset_support(clamped, self.support.device)
        return [
            f"nnclr support set clamped from {size} to {clamped} embeddings: method_args.support_size must be < the "
            f"training-set size ({num_train} images), or an image's nearest neighbour is mostly its own earlier "
            "embedding"
        ]

    def view_specs(self, image_size: int) -> list:
        return default_view_specs(image_size)

    @torch.no_grad()
    def enqueue(self, z: Tensor) -> None:
        """FIFO write of the global batch's normalized projections, in the order one process writes them."""
        rows = F.normalize(concat_all_gather_no_grad(z.detach()), dim=1)[-self.support.shape[0] :]
        idx = (self.support_ptr + torch.arange(rows.shape[0], device=rows.device)) % self.support.shape[0]
        self.support[idx] = rows.to(self.support.dtype)
        self.support_ptr.copy_((self.support_ptr + rows.shape[0]) % self.support.shape[0])

    def forward(self, views: list[Tensor]) -> dict:
        self._check_views(views, 2)
        features = [self.backbone(v) for v in views]
        z1, z2 = (self.projector(f) for f in features)
        p1, p2 = (self.intervene(self.predictor(z)) for z in (z1, z2))
        loss = nnclr_loss(z1, z2, p1, p2, self.support, self.hparams.temperature)
        if self.training:
            self.enqueue(z1)
        return self._output(loss, [p1, p2], features)
