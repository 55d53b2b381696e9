"""SimSiam (Chen & He, 2021): BYOL without a momentum network; stop-gradient only.

Embedding (GradScale and norm tracking): the predictor output of both views.

Defaults (sources):
  * optimizer SGD momentum 0.9, lr 0.03 per 256 images, weight decay 5e-4: SimSiam
    paper's CIFAR-10 recipe (also the norm paper's weight decay); 10 warm-up epochs
    (norm paper's code);
  * projector: 3 layers feature_dim -> 2048 -> 2048 -> 2048, BatchNorm after each,
    the last without affine; predictor 2048 -> 512 -> 2048 bottleneck with BN
    (SimSiam paper; the norm paper's code);
  * views: as SimCLR (crop (0.2, 1), jitter s=0.5 p 0.8, grayscale 0.2, blur above 64 px).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from methods.base import HParams, SSLMethod, hparam
from methods.heads import mlp
from methods.views import default_view_specs


def simsiam_loss(p: Tensor, z: Tensor) -> Tensor:
    """Negative cosine similarity D(p, stopgrad(z)), mean over rows; in [-1, 1]."""
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


class SimSiamHparams(HParams):
    proj_hidden_dim: int = hparam(2048, lo=1, doc="width of the projector's hidden layers")
    proj_output_dim: int = hparam(2048, lo=1, doc="width of the projector's output")
    pred_hidden_dim: int = hparam(512, lo=1, doc="width of the predictor's hidden layer")


class SimSiam(SSLMethod):
    name = "simsiam"
    title = "SimSiam"
    Hparams = SimSiamHparams
    default_optimizer = "sgd"
    default_lr = 0.03
    default_weight_decay = 5e-4
    default_warmup_epochs = 10
    default_sources = (
        "SimSiam (Chen & He, 2021), its CIFAR-10 recipe: SGD lr 0.03 per 256, weight decay 5e-4, heads; the norm "
        "paper's code: warm-up"
    )
    min_batch_size = 2
    embedding_description = "predictor output of both views"

    def build_online(self) -> None:
        h = self.hparams
        self.projector = mlp(
            self.feature_dim,
            h.proj_hidden_dim,
            h.proj_output_dim,
            num_layers=3,
            batch_norm=True,
            last_batch_norm=True,
            last_batch_norm_affine=False,
        )
        self.predictor = mlp(h.proj_output_dim, h.pred_hidden_dim, h.proj_output_dim, batch_norm=True)

    def embedding(self, features: Tensor) -> Tensor:
        return self.predictor(self.projector(features))

    def embedding_layer(self) -> nn.Module:
        return self.predictor[-1]

    def encode_heads(self, features: Tensor) -> dict[str, Tensor]:
        projection = self.projector(features)
        return {"projection": projection, "embedding": self.predictor(projection)}

    def view_specs(self, image_size: int) -> list:
        return default_view_specs(image_size)

    def forward(self, views: list[Tensor]) -> dict:
        self._check_views(views, 2)
        features = [self.backbone(v) for v in views]
        z1, z2 = (self.projector(f) for f in features)
        p1, p2 = (self.intervene(self.predictor(z)) for z in (z1, z2))
        loss = 0.5 * (simsiam_loss(p1, z2) + simsiam_loss(p2, z1))
        return self._output(loss, [p1, p2], features)
