"""Evaluation of a trained (or training) model, following the protocol:

kNN on L2-normalized backbone features of the un-augmented train set (cosine,
weighted vote exp(sim/T)), a linear probe on frozen precomputed features, the
norms of every evaluation sample -- of the backbone features, of the intervened
embedding and (where a predictor sits on a projector) of the projector output --
for the norm-as-confidence diagnostics, and the label-free RankMe of the train
set's embeddings and features. Each batch goes through the backbone once.

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

from suite.data.imageset import ImageSet
from suite.data.splits import DatasetSplits
from suite.measure.diagnostics import control_diagnostics, norm_diagnostics
from suite.measure.instruments import recomputed_batchnorm
from suite.measure.knn import KnnResult, knn_evaluate
from suite.measure.linear_probe import linear_probe
from suite.measure.norms import norm_summary
from suite.measure.rank import rankme
from suite.results import schema
from suite.trial.augment import normalize
from suite.trial.runtime import autocast_context

# (column prefix, Encoded attribute) of every vector whose norms are diagnosed
VECTORS = tuple(schema.VECTORS.items())


@dataclass
class Encoded:
    features: torch.Tensor  # backbone features, float32
    embedding: torch.Tensor  # the vector the loss normalizes
    projection: torch.Tensor | None = field(default=None)  # projector output (below a predictor)


@dataclass(frozen=True)
class EvalSettings:
    batch_size: int
    device: torch.device
    precision: str
    channels_last: bool


def _batches(images: torch.Tensor | ImageSet, mean, std, s: EvalSettings, rank: int = 0, world: int = 1):
    """Clean, normalized batches; with several workers each takes an equal share."""
    per_worker = len(images) // world if world > 1 else len(images)
    start = rank * per_worker
    for i in range(start, start + per_worker, s.batch_size):
        x = normalize(images[i : min(i + s.batch_size, start + per_worker)].to(s.device, non_blocking=True), mean, std)
        yield x.contiguous(memory_format=torch.channels_last) if s.channels_last else x


@torch.no_grad()
def encode(method: nn.Module, images: torch.Tensor | ImageSet, mean, std, s: EvalSettings) -> Encoded:
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


def _knn(train: Encoded, train_labels, query: Encoded, query_labels, splits: DatasetSplits, cfg) -> KnnResult:
    device = train.features.device
    return knn_evaluate(
        train.features,
        train_labels.to(device),
        query.features,
        query_labels.to(device),
        ks=tuple(cfg.knn_k),
        temperature=cfg.knn_temperature,
        num_classes=splits.num_classes,
    )


def knn_columns(result: KnnResult, split: str = "test") -> dict[str, float]:
    return {schema.knn(k, split): acc for k, acc in result.accuracy.items()}


def validation_knn(method: nn.Module, splits: DatasetSplits, cfg, s: EvalSettings, train: Encoded) -> dict:
    """``val_knn_top1_k*``: kNN of the held-out validation images (``val_fraction``)
    against the training memory bank; {} without a validation split."""
    if splits.val_images is None or len(splits.val_images) == 0:
        return {}
    val = encode(method, splits.val_images, splits.mean, splits.std, s)
    return knn_columns(_knn(train, splits.train_labels, val, splits.val_labels, splits, cfg), "val")


def rank_columns(train: Encoded) -> dict[str, float]:
    """RankMe of the clean training set's embeddings and the effective rank of its backbone features."""
    return {schema.EMB_RANKME: rankme(train.embedding), schema.FEAT_RANKME: rankme(train.features)}


def progress_evaluation(
    method: nn.Module, splits: DatasetSplits, cfg, s: EvalSettings, controls: bool = False
) -> tuple[dict, Encoded]:
    """kNN and evaluation-set norm summaries for a curves row (epoch 0 and
    intermediate epochs); returns the test encoding too. ``controls`` (the untrained
    network, epoch 0) adds the confidence diagnostics a trained network is compared with
    (`suite.measure.diagnostics.control_diagnostics`)."""
    train = encode(method, splits.train_images, splits.mean, splits.std, s)
    test = encode(method, splits.test_images, splits.mean, splits.std, s)
    knn = _knn(train, splits.train_labels, test, splits.test_labels, splits, cfg)
    row = knn_columns(knn)
    row.update(validation_knn(method, splits, cfg, s, train))
    row.update(rank_columns(train))
    ood = (
        encode(method, splits.ood_images, splits.mean, splits.std, s)
        if controls and splits.ood_images is not None
        else None
    )
    correct = (knn.predictions[schema.primary_k(cfg.knn_k)].cpu() == splits.test_labels).float()
    for prefix, attr in VECTORS:
        vectors = getattr(test, attr)
        if vectors is not None:
            norms = vectors.norm(dim=1).cpu()
            summary = norm_summary(norms)
            row.update({schema.eval_norm("test", prefix, stat): summary[stat] for stat in schema.PROGRESS_NORM_STATS})
            if controls:
                ood_norms = getattr(ood, attr).norm(dim=1).cpu() if ood is not None else None
                row.update(control_diagnostics(prefix, norms, correct, splits.test_labels, ood_norms))
    return row, test


@dataclass
class FinalEvaluation:
    """What the end of a trial measures: the row's metrics and the per-trial tables."""

    metrics: dict
    norm_bins: list[dict]
    class_norms: list[dict]
    eval_norms: pd.DataFrame


def final_evaluation(method: nn.Module, splits: DatasetSplits, cfg, s: EvalSettings, trial_id: str) -> FinalEvaluation:
    """Everything the `trials` row needs at the end of a trial, plus the norm bins, the
    per-class mean norms and the per-sample evaluation norms."""
    train = encode(method, splits.train_images, splits.mean, splits.std, s)
    test = encode(method, splits.test_images, splits.mean, splits.std, s)
    knn = _knn(train, splits.train_labels, test, splits.test_labels, splits, cfg)
    metrics = knn_columns(knn)
    metrics.update(validation_knn(method, splits, cfg, s, train))
    metrics.update(rank_columns(train))
    probe = linear_probe(
        train.features,
        splits.train_labels,
        test.features,
        splits.test_labels,
        num_classes=splits.num_classes,
        probe=cfg.linear_probe,
        epochs=cfg.linear_epochs,
        seed=cfg.seed,
        device=s.device,
    )
    metrics[schema.LINEAR_TOP1] = float(probe["top1"])
    if "l2" in probe:
        metrics[schema.LINEAR_L2] = float(probe["l2"])

    # "Correct" is the kNN prediction with the primary k (knn_k[0]): the k the claims judge on.
    correct = (knn.predictions[schema.primary_k(cfg.knn_k)].cpu() == splits.test_labels).float()
    ood = encode(method, splits.ood_images, splits.mean, splits.std, s) if splits.ood_images is not None else None
    class_counts = torch.bincount(splits.train_labels, minlength=splits.num_classes)
    test_counts = torch.bincount(splits.test_labels, minlength=splits.num_classes)
    bins, class_norms, norm_frames = [], [], []
    for prefix, attr in VECTORS:
        if getattr(test, attr) is None:
            continue
        test_norms = getattr(test, attr).norm(dim=1).cpu()
        ood_norms = getattr(ood, attr).norm(dim=1).cpu() if ood is not None else None
        metrics.update({schema.eval_norm("test", prefix, k): v for k, v in norm_summary(test_norms).items()})
        if ood_norms is not None:
            metrics.update({schema.eval_norm("ood", prefix, k): v for k, v in norm_summary(ood_norms).items()})
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
        bins += bin_frame.assign(trial_id=trial_id, vector=attr).to_dict("records")
        sums = torch.bincount(splits.test_labels, weights=test_norms.double(), minlength=splits.num_classes)
        mean_norms = (sums / test_counts.clamp_min(1)).where(
            test_counts > 0, torch.tensor(float("nan"), dtype=torch.float64)
        )
        class_norms += [
            {
                schema.TRIAL_ID: trial_id,
                schema.BIN_VECTOR: attr,
                schema.CLASS: c,
                schema.TRAIN_COUNT: int(class_counts[c]),
                schema.TEST_COUNT: int(test_counts[c]),
                schema.CLASS_NORM_MEAN: float(mean_norms[c]),
            }
            for c in range(splits.num_classes)
        ]
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
    return FinalEvaluation(metrics, bins, class_norms, pd.concat(norm_frames, ignore_index=True))
