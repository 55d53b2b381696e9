"""Evaluation of a trained (or training) model, following the protocol:

kNN on L2-normalized backbone features of the un-augmented train set (cosine,
weighted vote exp(sim/T)), a linear probe on frozen precomputed features, and
the norms of every evaluation sample -- of the backbone features, of the
intervened embedding and (BYOL, SimSiam) of the projector output -- for the
norm-as-confidence diagnostics. Each batch goes through the backbone once.

With ``eval_bn: recompute`` BatchNorm statistics are re-estimated on the clean
training set first (``suite.measure.instruments.recomputed_batchnorm``): after a few
hundred optimizer steps the running averages lag far behind the weights, and
early-epoch kNN then measures that lag rather than the representation.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from suite.data.splits import DatasetSplits
from suite.measure.diagnostics import norm_diagnostics
from suite.measure.instruments import recomputed_batchnorm
from suite.measure.knn import knn_evaluate
from suite.measure.linear_probe import linear_probe
from suite.measure.norms import norm_summary
from suite.trial.augment import normalize
from suite.trial.runtime import autocast_context

# (column prefix, Encoded attribute) of every vector whose norms are diagnosed
VECTORS = (("emb", "embedding"), ("feat", "features"), ("proj", "projection"))


@dataclass
class Encoded:
    features: torch.Tensor  # backbone features, float32
    embedding: torch.Tensor  # the vector the loss normalizes
    projection: torch.Tensor | None = field(default=None)  # projector output (BYOL, SimSiam)


@dataclass(frozen=True)
class EvalSettings:
    batch_size: int
    device: torch.device
    precision: str
    channels_last: bool


def _batches(images: torch.Tensor, mean, std, s: EvalSettings, rank: int = 0, world: int = 1):
    """Clean, normalized batches; with several workers each takes an equal share."""
    per_worker = len(images) // world if world > 1 else len(images)
    start = rank * per_worker
    for i in range(start, start + per_worker, s.batch_size):
        x = normalize(images[i : min(i + s.batch_size, start + per_worker)].to(s.device, non_blocking=True), mean, std)
        yield x.contiguous(memory_format=torch.channels_last) if s.channels_last else x


@torch.no_grad()
def encode(method: nn.Module, images: torch.Tensor, mean, std, s: EvalSettings) -> Encoded:
    """Backbone features, embeddings and projections of clean images, in eval mode."""
    was_training = method.training
    method.eval()
    parts: dict[str, list[torch.Tensor]] = {"features": [], "embedding": [], "projection": []}
    try:
        for x in _batches(images, mean, std, s):
            with autocast_context(s.device, s.precision):
                f = method.backbone(x)
                heads = method.encode_heads(f)
            parts["features"].append(f.float())
            for key, value in heads.items():
                parts[key].append(value.float())
    finally:
        method.train(was_training)
    return Encoded(
        torch.cat(parts["features"]),
        torch.cat(parts["embedding"]),
        torch.cat(parts["projection"]) if parts["projection"] else None,
    )


def settled_batchnorm(
    method: nn.Module, splits: DatasetSplits, cfg, s: EvalSettings, rank: int = 0, world: int = 1
) -> contextlib.AbstractContextManager:
    """The evaluation's BatchNorm statistics: re-estimated on up to
    ``cfg.eval_bn_images`` clean training images (``eval_bn: recompute``), or
    training's running averages (``running``). Every worker must enter it."""
    if cfg.eval_bn != "recompute":
        return contextlib.nullcontext()
    images = splits.train_images[: cfg.eval_bn_images]

    def forward(x: torch.Tensor) -> None:
        with autocast_context(s.device, s.precision):
            method.encode_heads(method.backbone(x))

    return recomputed_batchnorm(
        [method.backbone, *method.online_heads()], _batches(images, splits.mean, splits.std, s, rank, world), forward
    )


def knn_metrics(train: Encoded, test: Encoded, splits: DatasetSplits, ks: list[int], temperature: float) -> dict:
    device = train.features.device
    return knn_evaluate(
        train.features,
        splits.train_labels.to(device),
        test.features,
        splits.test_labels.to(device),
        ks=tuple(ks),
        temperature=temperature,
        num_classes=splits.num_classes,
    )


def validation_knn(method: nn.Module, splits: DatasetSplits, cfg, s: EvalSettings, train: Encoded) -> dict:
    """``val_knn_top1_k*``: kNN of the held-out validation images (``val_fraction``)
    against the training memory bank; {} without a validation split."""
    if splits.val_images is None or len(splits.val_images) == 0:
        return {}
    val = encode(method, splits.val_images, splits.mean, splits.std, s)
    device = train.features.device
    knn = knn_evaluate(
        train.features,
        splits.train_labels.to(device),
        val.features,
        splits.val_labels.to(device),
        ks=tuple(cfg.knn_k),
        temperature=cfg.knn_temperature,
        num_classes=splits.num_classes,
    )
    return {f"val_{k}": float(v) for k, v in knn.items() if k.startswith("knn_top1_")}


def progress_evaluation(method: nn.Module, splits: DatasetSplits, cfg, s: EvalSettings) -> tuple[dict, Encoded]:
    """kNN and evaluation-set norm summaries for a curves row (epoch 0 and
    intermediate epochs); returns the test encoding too."""
    train = encode(method, splits.train_images, splits.mean, splits.std, s)
    test = encode(method, splits.test_images, splits.mean, splits.std, s)
    knn = knn_metrics(train, test, splits, cfg.knn_k, cfg.knn_temperature)
    row = {k: float(v) for k, v in knn.items() if k.startswith("knn_top1_")}
    row.update(validation_knn(method, splits, cfg, s, train))
    for prefix, attr in VECTORS:
        vectors = getattr(test, attr)
        if vectors is not None:
            summary = norm_summary(vectors.norm(dim=1).cpu(), f"test_{prefix}_norm")
            row.update({k: summary[k] for k in (f"test_{prefix}_norm_mean", f"test_{prefix}_norm_std")})
    return row, test


def final_evaluation(
    method: nn.Module, splits: DatasetSplits, cfg, s: EvalSettings, trial_id: str
) -> tuple[dict, list[dict], pd.DataFrame]:
    """Everything the `trials` row needs at the end of a trial.

    Returns (scalar metrics, norm-bin rows, per-sample eval norms frame).
    """
    train = encode(method, splits.train_images, splits.mean, splits.std, s)
    test = encode(method, splits.test_images, splits.mean, splits.std, s)
    knn = knn_metrics(train, test, splits, cfg.knn_k, cfg.knn_temperature)
    metrics = {k: v for k, v in knn.items() if k.startswith("knn_top1_")}
    metrics.update(validation_knn(method, splits, cfg, s, train))
    probe = linear_probe(
        train.features,
        splits.train_labels,
        test.features,
        splits.test_labels,
        num_classes=splits.num_classes,
        epochs=cfg.linear_epochs,
        seed=cfg.seed,
        device=s.device,
    )
    metrics["linear_top1"] = float(probe["top1"])

    correct = (knn[f"predictions_k{cfg.knn_k[0]}"].cpu() == splits.test_labels).float()
    ood = encode(method, splits.ood_images, splits.mean, splits.std, s) if splits.ood_images is not None else None
    class_counts = torch.bincount(splits.train_labels, minlength=splits.num_classes)
    bins, norm_frames = [], []
    for prefix, attr in VECTORS:
        if getattr(test, attr) is None:
            continue
        test_norms = getattr(test, attr).norm(dim=1).cpu()
        ood_norms = getattr(ood, attr).norm(dim=1).cpu() if ood is not None else None
        metrics.update(norm_summary(test_norms, f"test_{prefix}_norm"))
        if ood_norms is not None:
            metrics.update(norm_summary(ood_norms, f"ood_{prefix}_norm"))
        scalars, bin_frame = norm_diagnostics(
            prefix,
            test_norms,
            correct,
            ood_norms=ood_norms,
            test_labels=splits.test_labels,
            class_counts=class_counts if cfg.imbalance else None,
            seed=cfg.seed,
        )
        metrics.update(scalars)
        bin_frame = bin_frame.assign(trial_id=trial_id, vector=attr)
        bins += bin_frame.to_dict("records")
        norm_frames.append(
            pd.DataFrame(
                {
                    "split": "test",
                    "vector": attr,
                    "norm": test_norms.numpy(),
                    "label": splits.test_labels.numpy(),
                    "correct": correct.numpy().astype(bool),
                }
            )
        )
        if ood_norms is not None:
            norm_frames.append(
                pd.DataFrame({"split": "ood", "vector": attr, "norm": ood_norms.numpy(), "label": -1, "correct": False})
            )
    return metrics, bins, pd.concat(norm_frames, ignore_index=True)
