"""SwAV (Caron et al., 2020): predict one view's prototype assignment (its code) from another view.

The projector output is L2-normalized and scored against unit-norm prototype vectors; the
codes of the two global crops are Sinkhorn-Knopp assignments, equipartitioned over the global
batch (and, optionally, a queue of earlier embeddings); every other crop predicts a crop's code
(swapped prediction). The prototypes stay frozen for the first optimizer steps.

Embedding (GradScale and norm tracking): the projector output of the global crops, before its
L2 normalization.

Defaults (sources):
  * optimizer SGD momentum 0.9, lr 0.3 per 256 images (SwAV's base lr 4.8 for 4096 images), weight
    decay 1e-6, 10 warm-up epochs: SwAV's main_swav.py (LARS there; SGD here as for every method,
    because LARS rescales each layer's step by its weight norm and would partly cancel cut-initialization);
  * temperature 0.1, Sinkhorn epsilon 0.05 with 3 iterations, prototypes frozen for the first 313
    optimizer steps, queue off (queue_length 0) and, when on, used from epoch 15: main_swav.py;
  * projector feature_dim -> 2048 -> 128 with BatchNorm, 3000 prototypes: solo-learn's CIFAR recipe
    (scripts/pretrain/cifar/swav.yaml; the ImageNet head has the same sizes). The prototypes are a
    linear layer with unit-norm rows (SwAV normalizes them after every step; here the layer
    normalizes them, so cut-initialization leaves the scores unchanged);
  * crops: 2 global crops of scale (0.14, 1) (lightly's CIFAR-10 benchmark, SwAV's multi-crop
    global scale) and ``num_local_crops`` crops of side round(image_size * 96/224) and scale
    (0.05, 0.14) (SwAV); none by default for small images. Jitter s=0.5 p 0.8, grayscale 0.2, blur only
    above 64 px, as the suite's symmetric recipe.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.base import HParams, SSLMethod, hparam
from methods.dino import dino_cross_entropy, sinkhorn_knopp
from methods.distributed import concat_all_gather_no_grad, rank, world_size
from methods.errors import ConfigError
from methods.heads import NormalizedLinear, mlp
from methods.views import default_view_specs


def swav_loss(scores: list[Tensor], codes: list[Tensor], temperature: float) -> Tensor:
    """Swapped prediction: ``codes[i]`` (probabilities over the prototypes for global crop i, constants)
    is predicted by every *other* crop's softmax(scores / temperature); the mean over those (code, crop)
    pairs of the batch-mean cross-entropy. ``scores[i]`` is crop i's cosine to every prototype."""
    return dino_cross_entropy(scores, codes, temperature)


class SwAVHparams(HParams):
    temperature: float = hparam(0.1, lo=0.0, lo_open=True, doc="softmax temperature of the predictions")
    sinkhorn_epsilon: float = hparam(0.05, lo=0.0, lo_open=True, doc="entropy regularization of the codes")
    sinkhorn_iterations: int = hparam(3, lo=1, doc="Sinkhorn-Knopp iterations per assignment")
    num_prototypes: int = hparam(3000, lo=1, doc="prototypes: the head's output dimension")
    proj_hidden_dim: int = hparam(2048, lo=1, doc="width of the projector's hidden layers")
    proj_output_dim: int = hparam(128, lo=1, doc="width of the projector's output")
    freeze_prototypes_steps: int = hparam(313, lo=0, doc="optimizer steps during which the prototypes do not move")
    queue_size: int = hparam(
        0, lo=0, doc="earlier embeddings per global crop that join the codes' Sinkhorn (0: no queue)"
    )
    queue_start_epoch: int = hparam(15, lo=0, doc="the 0-based epoch from which the queue fills")
    num_local_crops: int = hparam(
        0, lo=0, doc="small local crops per image besides the two global views (multi-crop; 0: none)"
    )


class SwAV(SSLMethod):
    name = "swav"
    title = "SwAV"
    Hparams = SwAVHparams
    default_optimizer = "sgd"
    default_lr = 0.3
    default_weight_decay = 1e-6
    default_warmup_epochs = 10
    default_sources = (
        "SwAV (Caron et al., 2020; facebookresearch/swav main_swav.py): lr 4.8 per 4096, weight decay, warm-up, "
        "temperature, Sinkhorn, prototype freeze, queue; solo-learn's CIFAR recipe: heads; SGD instead of LARS"
    )
    min_batch_size = 2
    embedding_description = "projector output of the global crops, before its L2 normalization"
    collapse_loss_formula = "ln(prototypes)"

    steps_done: Tensor
    queue: Tensor
    queue_filled: Tensor

    def build_online(self) -> None:
        h = self.hparams
        self.projector = mlp(self.feature_dim, h.proj_hidden_dim, h.proj_output_dim, batch_norm=True)
        self.prototypes = NormalizedLinear(h.proj_output_dim, h.num_prototypes)
        self.queue_on = h.queue_start_epoch == 0

    def build_target(self) -> None:
        h = self.hparams
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        if h.queue_size:
            self.register_buffer("queue", torch.zeros(2, h.queue_size, h.proj_output_dim))
            self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))

    def embedding(self, features: Tensor) -> Tensor:
        return self.projector(features)

    def embedding_layer(self) -> nn.Module:
        return self.projector[-1]

    @classmethod
    def collapse_loss(cls, hparams: SwAVHparams, batch_size: int) -> float:
        """Equal embeddings: Sinkhorn spreads each code evenly over the K prototypes, and a uniform code costs
        at least ln K (exactly ln K when the predictions are flat too)."""
        return math.log(hparams.num_prototypes)

    def view_specs(self, image_size: int) -> list:
        if not isinstance(image_size, int) or image_size < 1:
            raise ConfigError("image_size", image_size, "a positive integer")
        specs = default_view_specs(image_size, 2, crop_scale=(0.14, 1.0))
        if self.hparams.num_local_crops:
            local_size = max(1, round(image_size * 96 / 224))
            blur = 0.5 if image_size > 64 else 0.0
            specs += default_view_specs(local_size, self.hparams.num_local_crops, crop_scale=(0.05, 0.14), blur_p=blur)
        return specs

    # -- schedules ----------------------------------------------------------
    def after_step(self, steps_done: int) -> None:
        self.steps_done.fill_(steps_done)

    def on_epoch_start(self, epoch: int, total_epochs: int) -> None:
        self.queue_on = epoch >= self.hparams.queue_start_epoch

    def _prototype_directions(self) -> Tensor:
        """The unit prototype vectors; during the freeze their gradient is zero (present, so data-parallel
        workers all reduce it, and an optimizer's weight decay only rescales rows the layer normalizes)."""
        weight = self.prototypes.weight
        frozen = self.steps_done < self.hparams.freeze_prototypes_steps
        return F.normalize(torch.where(frozen, weight.detach(), weight), dim=1)

    def scores(self, z: Tensor, prototypes: Tensor) -> Tensor:
        """Cosine of each embedding to each prototype."""
        return F.normalize(z, dim=1) @ prototypes.T

    # -- codes --------------------------------------------------------------
    def _queue_rows(self, crop: int) -> Tensor | None:
        """This worker's share of crop ``crop``'s queue, once the queue is full; None before."""
        if not self.hparams.queue_size or not self.queue_on or int(self.queue_filled) < self.hparams.queue_size:
            return None
        if self.hparams.queue_size % world_size():
            raise ConfigError(
                "method_args.queue_size", self.hparams.queue_size, f"a multiple of the {world_size()} workers"
            )
        return self.queue[crop].chunk(world_size())[rank()]

    @torch.no_grad()
    def codes(self, scores: list[Tensor], prototypes: Tensor) -> list[Tensor]:
        """The Sinkhorn-Knopp codes of the two global crops, each over the global batch (and the queue)."""
        h, out = self.hparams, []
        for crop, s in enumerate(scores[:2]):
            rows = s.detach()
            queued = self._queue_rows(crop)
            if queued is not None:
                rows = torch.cat([queued.to(rows.dtype) @ prototypes.detach().T.to(rows.dtype), rows])
            out.append(sinkhorn_knopp(rows, h.sinkhorn_epsilon, h.sinkhorn_iterations)[-s.shape[0] :])
        return out

    @torch.no_grad()
    def enqueue(self, embeddings: list[Tensor]) -> None:
        """Newest first: the global batch's normalized embeddings of each global crop, in the order one
        process holds them."""
        size = self.hparams.queue_size
        for crop, z in enumerate(embeddings):
            rows = F.normalize(concat_all_gather_no_grad(z.detach()), dim=1).to(self.queue.dtype)
            self.queue[crop] = torch.cat([rows, self.queue[crop]])[:size]
        self.queue_filled.copy_((self.queue_filled + rows.shape[0]).clamp(max=size))

    def forward(self, views: list[Tensor]) -> dict:
        n_local = self.hparams.num_local_crops
        self._check_views(views, 2 + n_local)
        features = [self.backbone(v) for v in views[:2]]
        z = [self.intervene(self.projector(f)) for f in features]
        if n_local:  # same size: one backbone pass for all local crops
            local = self.intervene(self.projector(self.backbone(torch.cat(views[2:]))))
            z_local = list(local.chunk(n_local))
        else:
            z_local = []
        prototypes = self._prototype_directions()
        scores = [self.scores(e, prototypes) for e in z + z_local]
        loss = swav_loss(scores, self.codes(scores, prototypes), self.hparams.temperature)
        if self.training and self.hparams.queue_size and self.queue_on:
            self.enqueue(z)
        return self._output(loss, z, features)
