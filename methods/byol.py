"""BYOL (Grill et al., 2020): an online network predicts a slow EMA target network.

Embedding (GradScale and norm tracking): the online predictor output of both views.
Loss: negative cosine similarity (not BYOL's 2 - 2 cos, which is 2x it plus a
constant), averaged over the two symmetric terms as in lightly's benchmark.

Defaults (sources):
  * optimizer SGD momentum 0.9, lr 0.12 per 256 images (lightly's CIFAR-10 benchmark:
    0.06 * B/128), weight decay 5e-4 (lightly; the norm paper's BYOL config), 10 warm-up
    epochs (norm paper's code);
  * target EMA 0.99 -> 1.0 (cosine): BYOL paper schedule with solo-learn's CIFAR base;
  * projector feature_dim -> 4096 -> 256 and predictor 256 -> 4096 -> 256, both with
    BatchNorm: BYOL paper / solo-learn CIFAR;
  * views: asymmetric as BYOL / solo-learn's CIFAR recipe: crop (0.2, 1), jitter s=0.5 p 0.8,
    grayscale 0.2; solarize 0 / 0.2; blur 1.0 / 0.1 only above 64 px.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.base import HParams, MomentumMethod, hparam, make_target
from methods.heads import mlp
from methods.views import default_view_specs


def byol_loss(p: Tensor, z: Tensor) -> Tensor:
    """Negative cosine similarity between predictions ``p`` and targets ``z``
    (stop-gradient on ``z``), mean over rows; in [-1, 1]."""
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


class BYOLHparams(HParams):
    proj_hidden_dim: int = hparam(4096, lo=1, doc="width of the projector's hidden layers")
    proj_output_dim: int = hparam(256, lo=1, doc="width of the projector's output")
    pred_hidden_dim: int = hparam(4096, lo=1, doc="width of the predictor's hidden layer")
    momentum_base: float = hparam(0.99, lo=0.0, hi=1.0, doc="target EMA at the start")
    momentum_final: float = hparam(1.0, lo=0.0, hi=1.0, doc="target EMA at the end")


def asymmetric_view_specs(image_size: int) -> list:
    """BYOL's two views: blur 1.0 / 0.1 (above 64 px), solarize 0 / 0.2."""
    large = image_size > 64
    first = default_view_specs(image_size, 1, blur_p=1.0 if large else 0.0, solarize_p=0.0)
    second = default_view_specs(image_size, 1, blur_p=0.1 if large else 0.0, solarize_p=0.2)
    return first + second


class BYOL(MomentumMethod):
    name = "byol"
    title = "BYOL"
    Hparams = BYOLHparams
    default_optimizer = "sgd"
    default_lr = 0.12
    default_weight_decay = 5e-4
    default_warmup_epochs = 10
    default_sources = (
        "BYOL (Grill et al., 2020) and solo-learn's CIFAR recipe: heads, EMA 0.99 -> 1, views; lightly's CIFAR-10 "
        "benchmark: SGD lr 0.12 per 256, weight decay 5e-4; the norm paper's code: warm-up"
    )
    min_batch_size = 2
    embedding_description = "online predictor output of both views"

    def build_online(self) -> None:
        h = self.hparams
        self.projector = mlp(self.feature_dim, h.proj_hidden_dim, h.proj_output_dim, batch_norm=True)
        self.predictor = mlp(h.proj_output_dim, h.pred_hidden_dim, h.proj_output_dim, batch_norm=True)

    def build_target(self) -> None:
        self.backbone_target = make_target(self.backbone)
        self.projector_target = make_target(self.projector)

    def target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.backbone_target), (self.projector, self.projector_target)]

    def embedding(self, features: Tensor) -> Tensor:
        return self.predictor(self.projector(features))

    def embedding_layer(self) -> nn.Module:
        return self.predictor[-1]

    def encode_heads(self, features: Tensor) -> dict[str, Tensor]:
        projection = self.projector(features)
        return {"projection": projection, "embedding": self.predictor(projection)}

    def view_specs(self, image_size: int) -> list:
        return asymmetric_view_specs(image_size)

    def forward(self, views: list[Tensor]) -> dict:
        self._check_views(views, 2)
        features = [self.backbone(v) for v in views]
        p1, p2 = (self.intervene(self.predictor(self.projector(f))) for f in features)
        with torch.no_grad():
            t1, t2 = (self.projector_target(self.backbone_target(v)) for v in views)
        loss = 0.5 * (byol_loss(p1, t2) + byol_loss(p2, t1))
        return self._output(loss, [p1, p2], features)
