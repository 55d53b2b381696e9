"""DINO (Caron et al., 2021): self-distillation with a centred, sharpened EMA teacher.

Student and teacher share the architecture backbone -> MLP -> bottleneck ->
L2 normalise -> prototypes (unit-norm weight rows). The teacher sees only the
2 global crops; the student sees those and ``num_local_crops`` smaller crops.

Embedding (GradScale and norm tracking): the student's bottleneck output, before its
L2 normalisation, for the global crops.

Defaults (sources):
  * optimizer SGD momentum 0.9, lr 0.12 per 256 images, weight decay 5e-4: lightly's
    CIFAR-10 benchmark (0.06 * B/128); 10 warm-up epochs (DINO paper);
  * student temperature 0.1, teacher 0.04 -> 0.07 linearly over 30 epochs, center
    momentum 0.9, teacher EMA 0.996 -> 1.0 (cosine): DINO paper / official README;
  * head 3-layer MLP (GELU) feature_dim -> 2048 -> 2048 -> 256 bottleneck, 4096
    prototypes: solo-learn's CIFAR recipe (DINO's ImageNet head has 65536);
    the prototype layer is normalised with its magnitude fixed to 1 (DINO's
    norm_last_layer=True); no last-layer freezing, no gradient clipping;
  * centering "mean" (DINO): subtract an EMA of the teacher's mean output; "sinkhorn"
    (DINOv2, Oquab et al. 2023): teacher targets are Sinkhorn-Knopp equipartitioned
    assignments of the global batch, 3 iterations. Sinkhorn rules out the one-prototype
    collapse by construction (every prototype gets the same share of each batch), which
    the EMA centre only balances over many steps; it cannot tell apart images whose
    embeddings are identical, so uniform outputs stay possible (a low teacher temperature
    counters them). On small data with few steps the mean centre tips into uniform or
    one-prototype outputs (README, "How the setting was found");
  * crops: global scale (0.4, 1) with local crops (scale (0.05, 0.4), side
    round(image_size * 96/224)), (0.14, 1) without (DINO README); num_local_crops 0
    by default for small images. Global view 1 blur 1.0, view 2 blur 0.1 + solarize 0.2,
    local blur 0.5 (blur only above 64 px); jitter s=0.5 p 0.8, grayscale 0.2.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.base import HParams, MomentumMethod, hparam, make_target
from methods.distributed import all_reduce_max_, all_reduce_mean_, all_reduce_sum_, world_size
from methods.errors import ConfigError
from methods.heads import DINOHead
from methods.views import default_view_specs


def dino_loss(
    student_logits: list[Tensor], teacher_logits: list[Tensor], center: Tensor, student_temp: float, teacher_temp: float
) -> Tensor:
    """Cross-entropy between centred, sharpened teacher targets and student predictions.

    ``teacher_logits[i]`` and ``student_logits[i]`` are the same (global) crop for
    i < len(teacher_logits); those pairs are skipped. The result is the mean over the
    remaining (teacher crop, student crop) pairs of the batch-mean cross-entropy.
    """
    targets = [F.softmax((t.detach() - center) / teacher_temp, dim=-1) for t in teacher_logits]
    return dino_cross_entropy(student_logits, targets, student_temp)


def dino_cross_entropy(student_logits: list[Tensor], targets: list[Tensor], student_temp: float) -> Tensor:
    """Mean over (teacher crop, other student crop) pairs of the batch-mean cross-entropy
    between ``targets[i]`` (probabilities) and the student's tempered softmax."""
    if len(targets) < 1 or len(student_logits) < 2:
        raise ValueError("dino_loss needs >= 1 teacher crop and >= 2 student crops")
    targets = torch.stack([t.detach() for t in targets])
    log_probs = torch.stack([F.log_softmax(s / student_temp, dim=-1) for s in student_logits])
    batch = log_probs.shape[1]
    cross_entropy = -torch.einsum("tnk,snk->ts", targets, log_probs) / batch  # [T, S]
    n_teacher, n_student = cross_entropy.shape
    same_crop = torch.eye(n_teacher, n_student, dtype=torch.bool, device=cross_entropy.device)
    return cross_entropy.masked_select(~same_crop).mean()


@torch.no_grad()
def sinkhorn_knopp(logits: Tensor, temperature: float, iterations: int = 3) -> Tensor:
    """Soft assignments of the rows of ``logits`` [B, K] to K prototypes, equipartitioned
    over the global batch (all workers, each holding the same number of rows): every row
    sums to 1 and, at convergence, every prototype receives B_total / K of the mass
    (Cuturi 2013; SwAV / DINOv2 teacher targets).

    Computed in float64, the logits shifted by their global maximum before ``exp`` (no
    overflow at low temperatures; the first normalisation absorbs that factor exactly).
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    out_dtype = torch.promote_types(logits.dtype, torch.float32)  # bf16 in, fp32 targets out
    logits = logits.double()  # [B, K] is small; float64 keeps exp(-range / t) from underflowing
    q = torch.exp((logits - all_reduce_max_(logits.max())) / temperature)
    n_total = q.shape[0] * world_size()  # no host sync: equal local batches (methods.distributed)
    n_protos, tiny = q.shape[1], torch.finfo(q.dtype).tiny
    q = q / all_reduce_sum_(q.sum())
    for _ in range(iterations):
        q = q / all_reduce_sum_(q.sum(dim=0, keepdim=True)).clamp_min(tiny) / n_protos  # each prototype: 1/K
        q = q / q.sum(dim=1, keepdim=True).clamp_min(tiny) / n_total  # each row: 1/B_total
    return (q * n_total).to(out_dtype)


class DINOHparams(HParams):
    student_temp: float = hparam(0.1, lo=0.0, lo_open=True, doc="student softmax temperature")
    teacher_temp: float = hparam(0.07, lo=0.0, lo_open=True, doc="teacher temperature after warm-up")
    warmup_teacher_temp: float = hparam(
        0.04, lo=0.0, lo_open=True, doc="teacher temperature at the start of its warm-up"
    )
    warmup_teacher_temp_epochs: int = hparam(
        30, lo=0, doc="epochs over which the teacher temperature rises linearly to teacher_temp"
    )
    center_momentum: float = hparam(0.9, lo=0.0, hi=1.0, doc="EMA of the centre (centering 'mean')")
    centering: Literal["mean", "sinkhorn"] = hparam(
        "mean", doc="teacher centering: DINO's EMA mean or DINOv2's Sinkhorn-Knopp"
    )
    momentum_base: float = hparam(0.996, lo=0.0, hi=1.0, doc="teacher EMA at the start")
    momentum_final: float = hparam(1.0, lo=0.0, hi=1.0, doc="teacher EMA at the end")
    head_hidden_dim: int = hparam(2048, lo=1, doc="width of the head's hidden layers")
    bottleneck_dim: int = hparam(256, lo=1, doc="width of the head's bottleneck (the embedding)")
    num_prototypes: int = hparam(4096, lo=1, doc="prototypes: the head's output dimension")
    num_local_crops: int = hparam(
        0, lo=0, doc="small local crops per image besides the two global views (multi-crop; 0: none)"
    )


class DINO(MomentumMethod):
    name = "dino"
    title = "DINO"
    Hparams = DINOHparams
    default_optimizer = "sgd"
    default_lr = 0.12
    default_weight_decay = 5e-4
    default_warmup_epochs = 10
    default_sources = (
        "DINO (Caron et al., 2021) and its README: temperatures, centre, EMA, crops, warm-up; solo-learn's CIFAR "
        "recipe: head sizes; lightly's CIFAR-10 benchmark: SGD lr 0.12 per 256, weight decay 5e-4; DINOv2 (Oquab "
        "et al., 2023): Sinkhorn-Knopp centering"
    )
    min_batch_size = 2
    collapse_loss_formula = "ln(prototypes)"
    embedding_description = "student head's bottleneck output (global crops), before its L2 normalization"

    center: Tensor

    def build_online(self) -> None:
        h = self.hparams
        self.head = DINOHead(self.feature_dim, h.head_hidden_dim, h.bottleneck_dim, h.num_prototypes)
        self.teacher_temp = h.warmup_teacher_temp if h.warmup_teacher_temp_epochs > 0 else h.teacher_temp

    def build_target(self) -> None:
        self.backbone_teacher = make_target(self.backbone)
        self.head_teacher = make_target(self.head)
        self.register_buffer("center", torch.zeros(1, self.hparams.num_prototypes))

    def target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.backbone_teacher), (self.head, self.head_teacher)]

    @classmethod
    def schedule_notes(cls, hparams: DINOHparams, epochs: int) -> list[str]:
        if hparams.warmup_teacher_temp_epochs <= epochs:
            return []
        reached = hparams.warmup_teacher_temp + (epochs - 1) / hparams.warmup_teacher_temp_epochs * (
            hparams.teacher_temp - hparams.warmup_teacher_temp
        )
        return [
            f"dino's teacher-temperature warm-up ({hparams.warmup_teacher_temp_epochs} epochs) is longer than the run "
            f"({epochs} epochs): the teacher ends at temperature {reached:.3g}, never teacher_temp "
            f"{hparams.teacher_temp:g}; set method_args.warmup_teacher_temp_epochs to choose"
        ]

    def on_epoch_start(self, epoch: int, total_epochs: int) -> None:
        """Linear teacher-temperature warm-up: warmup value at epoch 0, final at
        ``warmup_teacher_temp_epochs`` and after."""
        h = self.hparams
        if h.warmup_teacher_temp_epochs == 0:
            self.teacher_temp = h.teacher_temp
            return
        frac = min(max(epoch, 0) / h.warmup_teacher_temp_epochs, 1.0)
        self.teacher_temp = h.warmup_teacher_temp + frac * (h.teacher_temp - h.warmup_teacher_temp)

    def embedding(self, features: Tensor) -> Tensor:
        return self.head.mlp(features)

    def embedding_layer(self) -> nn.Module:
        return self.head.mlp[-1]

    @classmethod
    def collapse_loss(cls, hparams: DINOHparams, batch_size: int) -> float:
        """Uniform teacher and student outputs: the cross-entropy of a uniform distribution."""
        return math.log(hparams.num_prototypes)

    def view_specs(self, image_size: int) -> list:
        if not isinstance(image_size, int) or image_size < 1:
            raise ConfigError("image_size", image_size, "a positive integer")
        large = image_size > 64
        n_local = self.hparams.num_local_crops
        global_scale = (0.4, 1.0) if n_local else (0.14, 1.0)
        specs = default_view_specs(
            image_size, 1, crop_scale=global_scale, blur_p=1.0 if large else 0.0
        ) + default_view_specs(image_size, 1, crop_scale=global_scale, blur_p=0.1 if large else 0.0, solarize_p=0.2)
        if n_local:
            local_size = max(1, round(image_size * 96 / 224))
            specs += default_view_specs(local_size, n_local, crop_scale=(0.05, 0.4), blur_p=0.5 if large else 0.0)
        return specs

    @torch.no_grad()
    def teacher_targets(self, teacher_logits: list[Tensor]) -> list[Tensor]:
        """The teacher's probabilities per global crop: centred and sharpened ("mean"), or
        Sinkhorn-Knopp assignments of both crops' global batch together ("sinkhorn", DINOv2)."""
        if self.hparams.centering == "sinkhorn":
            return list(sinkhorn_knopp(torch.cat(teacher_logits), self.teacher_temp).chunk(len(teacher_logits)))
        return [F.softmax((t - self.center) / self.teacher_temp, dim=-1) for t in teacher_logits]

    @torch.no_grad()
    def update_center(self, teacher_logits: list[Tensor]) -> None:
        """EMA of the teacher's mean output over the global batch (all workers)."""
        logits = torch.cat(teacher_logits)
        batch_center = all_reduce_mean_(logits.to(self.center.dtype).mean(dim=0, keepdim=True))
        m = self.hparams.center_momentum
        self.center.mul_(m).add_(batch_center, alpha=1.0 - m)

    def forward(self, views: list[Tensor]) -> dict:
        n_local = self.hparams.num_local_crops
        self._check_views(views, 2 + n_local)
        global_views, local_views = views[:2], views[2:]
        features = [self.backbone(v) for v in global_views]
        student = [self.head(f, transform=self.intervene) for f in features]
        if local_views:  # same size: one backbone pass for all local crops
            local_out = self.head(self.backbone(torch.cat(local_views)), transform=self.intervene)
            student_logits_local = list(local_out[1].chunk(n_local))
        else:
            student_logits_local = []
        with torch.no_grad():
            teacher_logits = [self.head_teacher(self.backbone_teacher(v))[1] for v in global_views]
        student_logits = [s[1] for s in student] + student_logits_local
        loss = dino_cross_entropy(student_logits, self.teacher_targets(teacher_logits), self.hparams.student_temp)
        if self.training:
            self.update_center(teacher_logits)
        return self._output(loss, [s[0] for s in student], features)
