"""Evaluation of a trained (or training) model, following the protocol:

kNN on L2-normalized backbone features of the un-augmented train set (cosine,
weighted vote exp(sim/T)), a linear probe on frozen precomputed features, and
the norms of every evaluation sample — of the backbone features and of the
intervened embedding — for the norm-as-confidence diagnostics.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from suite.augment import normalize
from suite.data import DatasetSplits
from suite.diagnostics import norm_diagnostics
from suite.knn import knn_evaluate
from suite.linear_probe import linear_probe
from suite.norms import norm_summary
from suite.runtime import autocast_context


@dataclass
class Encoded:
    features: torch.Tensor   # backbone features, float32
    embedding: torch.Tensor  # the vector the loss normalizes


@torch.no_grad()
def encode(method: nn.Module, images: torch.Tensor, mean, std, *, batch_size: int, device: torch.device,
           precision: str, channels_last: bool) -> Encoded:
    """Backbone features and embeddings of clean images, in eval mode."""
    was_training = method.training
    method.eval()
    feats, embs = [], []
    try:
        for start in range(0, len(images), batch_size):
            x = normalize(images[start : start + batch_size].to(device, non_blocking=True), mean, std)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast_context(device, precision):
                f = method.backbone(x)
                e = method.embed(x)
            feats.append(f.float())
            embs.append(e.float())
    finally:
        method.train(was_training)
    return Encoded(torch.cat(feats), torch.cat(embs))


def knn_metrics(train: Encoded, test: Encoded, splits: DatasetSplits, ks: list[int], temperature: float) -> dict:
    device = train.features.device
    return knn_evaluate(train.features, splits.train_labels.to(device), test.features, splits.test_labels.to(device),
                        ks=tuple(ks), temperature=temperature, num_classes=splits.num_classes)


def final_evaluation(method: nn.Module, splits: DatasetSplits, cfg, device: torch.device, channels_last: bool,
                     trial_id: str) -> tuple[dict, list[dict], pd.DataFrame]:
    """Everything the `trials` row needs at the end of a trial.

    Returns (scalar metrics, norm-bin rows, per-sample eval norms frame).
    """
    kw = dict(batch_size=cfg.eval_batch_size, device=device, precision=cfg.precision, channels_last=channels_last)
    train = encode(method, splits.train_images, splits.mean, splits.std, **kw)
    test = encode(method, splits.test_images, splits.mean, splits.std, **kw)
    knn = knn_metrics(train, test, splits, cfg.knn_k, cfg.knn_temperature)
    metrics = {k: v for k, v in knn.items() if k.startswith("knn_top1_")}
    probe = linear_probe(train.features, splits.train_labels, test.features, splits.test_labels,
                         num_classes=splits.num_classes, epochs=cfg.linear_epochs, seed=cfg.seed, device=device)
    metrics["linear_top1"] = float(probe["top1"])

    correct = (knn[f"predictions_k{cfg.knn_k[0]}"].cpu() == splits.test_labels).float()
    ood = encode(method, splits.ood_images, splits.mean, splits.std, **kw) if splits.ood_images is not None else None
    class_counts = torch.bincount(splits.train_labels, minlength=splits.num_classes)
    bins, norm_frames = [], []
    for prefix, attr in (("emb", "embedding"), ("feat", "features")):
        test_norms = getattr(test, attr).norm(dim=1).cpu()
        ood_norms = getattr(ood, attr).norm(dim=1).cpu() if ood is not None else None
        metrics.update(norm_summary(test_norms, f"test_{prefix}_norm"))
        if ood_norms is not None:
            metrics.update(norm_summary(ood_norms, f"ood_{prefix}_norm"))
        scalars, bin_frame = norm_diagnostics(prefix, test_norms, correct, ood_norms=ood_norms,
                                              test_labels=splits.test_labels,
                                              class_counts=class_counts if cfg.imbalance else None)
        metrics.update(scalars)
        bin_frame = bin_frame.assign(trial_id=trial_id, vector=attr)
        bins += bin_frame.to_dict("records")
        norm_frames.append(pd.DataFrame({"split": "test", "vector": attr, "norm": test_norms.numpy(),
                                         "label": splits.test_labels.numpy(), "correct": correct.numpy().astype(bool)}))
        if ood_norms is not None:
            norm_frames.append(pd.DataFrame({"split": "ood", "vector": attr, "norm": ood_norms.numpy(),
                                             "label": -1, "correct": False}))
    return metrics, bins, pd.concat(norm_frames, ignore_index=True)
