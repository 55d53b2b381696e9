"""MoCo v2 (Chen et al., 2020), symmetrized as in MoCo v2+ (solo-learn).

A query encoder (backbone + MLP projector) is trained against keys from a momentum
copy of it; negatives come from a queue of past keys.

Embedding (GradScale and norm tracking): the query projector output of both views
(the key branch gets no gradient).

Defaults (sources):
  * optimizer SGD momentum 0.9, lr 0.3 per 256 images, weight decay 1e-4, 10 warm-up
    epochs, temperature 0.2, projector feature_dim -> 2048 -> 256, key-encoder EMA
    0.99 -> 0.999 (cosine): solo-learn's CIFAR MoCo v2+ recipe
    (scripts/pretrain/cifar/mocov2plus.yaml);
  * queue 4096 keys: lightly's CIFAR-10 benchmark. One queue holds the keys of both
    views (2B per step). A queue at least as large as the training set would hold
    earlier keys of each image as its own negatives, so the trial clamps it and
    records why in the row's ``notes`` (``check_train_size``);
  * no shuffle-BN. MoCo shuffles keys across devices so that a query and its key
    are not normalized by the same batch statistics (which lets the network cheat
    through BatchNorm); here the key encoder's BatchNorm, like the query's, sees the
    whole batch (one device, or synchronized BatchNorm across workers), so that
    shortcut is open -- a known deviation, kept simple and identical for 1 and N
    workers. The symmetric loss and small CIFAR-sized batches are what solo-learn's
    MoCo v2+ uses too;
  * views: as SimCLR (crop (0.2, 1), jitter s=0.5 p 0.8, grayscale 0.2, blur above 64 px).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.base import HParams, MomentumMethod, hparam, make_target
from methods.distributed import concat_all_gather_no_grad
from methods.heads import mlp
from methods.views import default_view_specs


def moco_loss(q: Tensor, k: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """InfoNCE: positive logit q.k, negatives q.queue (rows), all L2-normalized;
    cross-entropy with label 0, mean over queries. ``k`` and ``queue`` are constants
    (detached), as keys come from the momentum encoder."""
    q = F.normalize(q, dim=1)
    k = F.normalize(k.detach(), dim=1)
    queue = F.normalize(queue.detach(), dim=1)
    positive = (q * k).sum(dim=1, keepdim=True)  # [N, 1]
    negative = q @ queue.T  # [N, K]
    logits = torch.cat([positive, negative], dim=1) / temperature
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, labels)


class MoCoHparams(HParams):
    temperature: float = hparam(0.2, lo=0.0, lo_open=True, doc="softmax temperature")
    queue_size: int = hparam(4096, lo=1, doc="negative keys kept in the queue")
    proj_hidden_dim: int = hparam(2048, lo=1, doc="width of the projector's hidden layers")
    proj_output_dim: int = hparam(256, lo=1, doc="width of the projector's output")
    momentum_base: float = hparam(0.99, lo=0.0, hi=1.0, doc="key-encoder EMA at the start")
    momentum_final: float = hparam(0.999, lo=0.0, hi=1.0, doc="key-encoder EMA at the end")


class MoCo(MomentumMethod):
    name = "moco"
    title = "MoCo"
    Hparams = MoCoHparams
    default_optimizer = "sgd"
    default_lr = 0.3
    default_weight_decay = 1e-4
    default_warmup_epochs = 10
    default_sources = (
        "solo-learn's CIFAR MoCo v2+ recipe (scripts/pretrain/cifar/mocov2plus.yaml): optimizer, temperature, "
        "projector, EMA; lightly's CIFAR-10 benchmark: queue 4096"
    )
    min_batch_size = 2
    embedding_description = "query projector output of both views"
    collapse_loss_formula = "ln(K + 1)"

    queue: Tensor
    queue_ptr: Tensor

    def build_online(self) -> None:
        h = self.hparams
        self.projector = mlp(self.feature_dim, h.proj_hidden_dim, h.proj_output_dim)

    def build_target(self) -> None:
        self.backbone_momentum = make_target(self.backbone)
        self.projector_momentum = make_target(self.projector)
        queue = F.normalize(torch.randn(self.hparams.queue_size, self.hparams.proj_output_dim), dim=1)
        self.register_buffer("queue", queue)
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.backbone_momentum), (self.projector, self.projector_momentum)]

    def embedding(self, features: Tensor) -> Tensor:
        return self.projector(features)

    def embedding_layer(self) -> nn.Module:
        return self.projector[-1]

    @classmethod
    def collapse_loss(cls, hparams: MoCoHparams, batch_size: int) -> float:
        """Equal queries, keys and queue entries make the positive one of K + 1 equal logits."""
        return math.log(hparams.queue_size + 1)

    def check_train_size(self, num_train: int) -> list[str]:
        """A queue at least as large as the training set holds earlier keys of
        each image as its own negatives: clamp it to the largest power of two
        below half the training set, and say so (the trial records the note)."""
        size = self.hparams.queue_size
        if size < num_train:
            return []
        clamped = 2 ** max(int(math.log2(max(num_train // 2, 1))), 0)
        self.queue = F.normalize(torch.randn(clamped, self.hparams.proj_output_dim, device=self.queue.device), dim=1)
        self.queue_ptr.zero_()
        return [
            f"moco queue clamped from {size} to {clamped} keys: method_args.queue_size must be < the "
            f"training-set size ({num_train} images), or each image's earlier keys are its own negatives"
        ]

    def view_specs(self, image_size: int) -> list:
        return default_view_specs(image_size)

    @torch.no_grad()
    def keys(self, view: Tensor) -> Tensor:
        return F.normalize(self.projector_momentum(self.backbone_momentum(view)), dim=1)

    @torch.no_grad()
    def enqueue(self, keys_per_view: list[Tensor]) -> None:
        """Ring-buffer write of the keys gathered from all workers, view by view,
        so the queue holds them in the order one process with the global batch
        would write them."""
        keys = torch.cat([concat_all_gather_no_grad(k) for k in keys_per_view])[-self.queue.shape[0] :]
        idx = (self.queue_ptr + torch.arange(keys.shape[0], device=keys.device)) % self.queue.shape[0]
        self.queue[idx] = keys.to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + keys.shape[0]) % self.queue.shape[0])

    def forward(self, views: list[Tensor]) -> dict:
        self._check_views(views, 2)
        features = [self.backbone(v) for v in views]
        q1, q2 = (self.intervene(self.projector(f)) for f in features)
        k1, k2 = (self.keys(v) for v in views)
        t = self.hparams.temperature
        loss = 0.5 * (moco_loss(q1, k2, self.queue, t) + moco_loss(q2, k1, self.queue, t))
        if self.training:
            self.enqueue([k1, k2])
        return self._output(loss, [q1, q2], features)
