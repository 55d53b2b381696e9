"""MoCo v3 (Chen, Xie & He, 2021): contrast each query with the other view's momentum keys of the batch.

No queue: the negatives are the keys of the other images of the (global) batch. A predictor
sits on the query branch; keys come from a momentum copy of backbone and projector.

Embedding (GradScale and norm tracking): the predictor output (the query) of both views; the
key branch gets no gradient.

Defaults (sources):
  * optimizer SGD momentum 0.9, lr 0.3 per 256 images, weight decay 1e-6: solo-learn's CIFAR
    recipe (scripts/pretrain/cifar/mocov3.yaml, LARS there; SGD here as for every method, because
    LARS rescales each layer's step by its weight norm and would partly cancel cut-initialization);
    weight decay 1e-6 and 10 warm-up epochs are MoCo v3's own (main_moco.py);
  * temperature 0.2: solo-learn's CIFAR recipe (MoCo v3 uses 1.0 for ResNets on ImageNet, 0.2 for
    ViTs); each direction's cross-entropy is scaled by 2 * temperature, as in MoCo v3's code;
  * projector feature_dim -> 4096 -> 256 with BatchNorm, the last without affine; predictor
    256 -> 4096 -> 256 with BatchNorm in its hidden layer: MoCo v3 (moco/builder.py), the sizes
    solo-learn keeps for CIFAR;
  * momentum-encoder EMA 0.99 -> 1.0 (cosine): MoCo v3;
  * views: asymmetric as BYOL (blur 1.0 / 0.1 above 64 px, solarize 0 / 0.2): MoCo v3's two
    augmentations (solo-learn's asymmetric CIFAR recipe).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.base import HParams, MomentumMethod, hparam, make_target
from methods.byol import asymmetric_view_specs
from methods.distributed import concat_all_gather_no_grad, rank
from methods.heads import mlp


def _contrast(q: Tensor, k: Tensor, temperature: float) -> Tensor:
    """2t x cross-entropy of the local queries against the keys of the global batch (the own key is the
    positive). Keys are constants, gathered without gradient; the query side stays local, so the mean
    over workers (DDP's gradient average) is the one-process loss."""
    q = F.normalize(q, dim=1)
    keys = F.normalize(concat_all_gather_no_grad(k.detach()), dim=1)
    logits = q @ keys.T / temperature
    labels = torch.arange(q.shape[0], device=q.device) + rank() * q.shape[0]
    return F.cross_entropy(logits, labels) * (2.0 * temperature)


def mocov3_loss(q1: Tensor, q2: Tensor, k1: Tensor, k2: Tensor, temperature: float) -> Tensor:
    """MoCo v3's symmetric loss ctr(q1, k2) + ctr(q2, k1): InfoNCE of each query against all keys of the
    other view in the batch, all L2-normalized, each direction scaled by 2 * temperature."""
    return _contrast(q1, k2, temperature) + _contrast(q2, k1, temperature)


class MoCoV3Hparams(HParams):
    temperature: float = hparam(0.2, lo=0.0, lo_open=True, doc="softmax temperature")
    proj_hidden_dim: int = hparam(4096, lo=1, doc="width of the projector's hidden layers")
    proj_output_dim: int = hparam(256, lo=1, doc="width of the projector's output")
    pred_hidden_dim: int = hparam(4096, lo=1, doc="width of the predictor's hidden layer")
    momentum_base: float = hparam(0.99, lo=0.0, hi=1.0, doc="momentum-encoder EMA at the start")
    momentum_final: float = hparam(1.0, lo=0.0, hi=1.0, doc="momentum-encoder EMA at the end")


class MoCoV3(MomentumMethod):
    name = "mocov3"
    title = "MoCo v3"
    Hparams = MoCoV3Hparams
    default_optimizer = "sgd"
    default_lr = 0.3
    default_weight_decay = 1e-6
    default_warmup_epochs = 10
    default_sources = (
        "MoCo v3 (Chen, Xie & He, 2021; facebookresearch/moco-v3): heads, EMA 0.99 -> 1, weight decay, "
        "warm-up, views; solo-learn's CIFAR recipe: lr 0.3, temperature 0.2; SGD instead of LARS"
    )
    min_batch_size = 2
    embedding_description = "predictor output (the query) of both views"
    collapse_loss_formula = "4τ ln(B)"

    def build_online(self) -> None:
        h = self.hparams
        self.projector = mlp(
            self.feature_dim,
            h.proj_hidden_dim,
            h.proj_output_dim,
            batch_norm=True,
            last_batch_norm=True,
            last_batch_norm_affine=False,
        )
        self.predictor = mlp(h.proj_output_dim, h.pred_hidden_dim, h.proj_output_dim, batch_norm=True)

    def build_target(self) -> None:
        self.backbone_momentum = make_target(self.backbone)
        self.projector_momentum = make_target(self.projector)

    def target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.backbone_momentum), (self.projector, self.projector_momentum)]

    def embedding(self, features: Tensor) -> Tensor:
        return self.predictor(self.projector(features))

    def embedding_layer(self) -> nn.Module:
        return self.predictor[-1]

    def encode_heads(self, features: Tensor) -> dict[str, Tensor]:
        projection = self.projector(features)
        return {"projection": projection, "embedding": self.predictor(projection)}

    @classmethod
    def collapse_loss(cls, hparams: MoCoV3Hparams, batch_size: int) -> float:
        """Equal queries and keys make the positive one of B equal logits, in both directions: 2 x 2t ln B."""
        return 4.0 * hparams.temperature * math.log(batch_size)

    def view_specs(self, image_size: int) -> list:
        return asymmetric_view_specs(image_size)

    def forward(self, views: list[Tensor]) -> dict:
        self._check_views(views, 2)
        features = [self.backbone(v) for v in views]
        q1, q2 = (self.intervene(self.predictor(self.projector(f))) for f in features)
        with torch.no_grad():
            k1, k2 = (self.projector_momentum(self.backbone_momentum(v)) for v in views)
        loss = mocov3_loss(q1, q2, k1, k2, self.hparams.temperature)
        return self._output(loss, [q1, q2], features)
