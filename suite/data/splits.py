"""Datasets for normbench: one call gives uint8 train/test tensors plus derived sets.

`load_splits` composes the pieces in `suite.data.splits`: a source (built-in
digits, a named hub dataset, `hf:`, `parquet:` or `imagefolder:`) decoded once
into a memory-mapped cache, then optional held-out classes (an OOD set), a
long-tailed training set, and an OOD set from another dataset. Normalization
statistics always describe the training split actually returned.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from suite.data.loader import load_raw_split
from suite.data.specs import DATASET_NAMES, DatasetSpec, check_one_ood_source, parse_spec, validate_dataset_name
from suite.data.subsets import (channel_stats, holdout_split, long_tail_indices, resolve_holdout,
                                    validate_imbalance)
from suite.core.errors import ConfigError

__all__ = ["DatasetSplits", "DATASET_NAMES", "validate_dataset_name", "load_splits"]


@dataclass
class DatasetSplits:
    name: str
    train_images: Tensor        # uint8 [N,3,H,W]
    train_labels: Tensor        # int64 [N]
    test_images: Tensor
    test_labels: Tensor
    num_classes: int
    class_names: list[str]
    mean: tuple[float, float, float]   # per-channel, in [0,1], of the train split
    std: tuple[float, float, float]
    ood_images: Tensor | None = None   # uint8, for OOD diagnostics
    ood_name: str | None = None
    val_images: Tensor | None = None   # uint8, held out of the training set (val_fraction)
    val_labels: Tensor | None = None


def _validate_image_size(image_size) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ConfigError("image_size", image_size, "a positive integer (pixels)")
    return image_size


def _class_names(spec: DatasetSpec, train_names, train_labels: Tensor, test_labels: Tensor) -> list[str]:
    """Names from the label feature, else "0".."K-1"; every label must index into them."""
    labels = torch.cat([train_labels, test_labels])
    top = int(labels.max()) if len(labels) else -1
    names = list(train_names) if train_names else [str(i) for i in range(top + 1)]
    if len(labels) and (int(labels.min()) < 0 or top >= len(names)):
        raise ConfigError("dataset label column", spec.label_column, f"labels in 0..{len(names) - 1}",
                          hint=f"{spec.spec} has labels from {int(labels.min())} to {top}")
    return names


def load_splits(name: str, image_size: int, *, imbalance: float | None = None,
                holdout_classes: Sequence[int | str] | None = None, ood_dataset: str | None = None,
                cache_dir: str | Path | None = None, seed: int = 0,
                decode_workers: int | None = None) -> DatasetSplits:
    """Load `name` at `image_size` (square), with optional held-out classes, long tail and OOD set.

    holdout_classes: class indices (or names) removed from train AND test; their test
      images become `ood_images`. Remaining classes are re-indexed 0..C'-1 in order.
    imbalance: R >= 1; class i of the (re-indexed) train split keeps
      min(n_i, floor(n_max * R^(-i/(C-1)))) images, chosen with `seed`; test stays as is.
    ood_dataset: another dataset spec whose test split becomes `ood_images`.
    """
    spec = parse_spec(name, "dataset")
    image_size = _validate_image_size(image_size)
    ratio = validate_imbalance(imbalance)
    if isinstance(holdout_classes, (int, str)):
        holdout_classes = [holdout_classes]
    holdout = list(holdout_classes) if holdout_classes else None
    ood_spec: DatasetSpec | None = None
    if ood_dataset is not None:
        ood_spec = parse_spec(ood_dataset, "ood_dataset")
    check_one_ood_source(holdout, ood_dataset)
    if holdout and spec.num_classes is not None:  # fail before any decoding where we can
        numeric = [c for c in holdout if isinstance(c, int) or (isinstance(c, str) and c.isdigit())]
        if numeric:
            resolve_holdout(numeric, [str(i) for i in range(spec.num_classes)])

    train = load_raw_split(spec, "train", image_size, cache_dir, decode_workers)
    test = load_raw_split(spec, "test", image_size, cache_dir, decode_workers)
    class_names = _class_names(spec, train.class_names, train.labels, test.labels)
    num_classes = len(class_names)
    train_x, train_y, test_x, test_y = train.images, train.labels, test.images, test.labels
    mean, std = train.mean, train.std
    ood_images, ood_name = None, None

    if holdout:
        held = resolve_holdout(holdout, class_names)
        train_x, train_y, _ = holdout_split(train_x, train_y, held, num_classes)
        test_x, test_y, ood_images = holdout_split(test_x, test_y, held, num_classes)
        ood_name = f"{spec.spec} held-out classes {[class_names[c] for c in held]}"
        class_names = [n for i, n in enumerate(class_names) if i not in set(held)]
        num_classes = len(class_names)
        mean = std = None
    if ratio is not None and ratio > 1:
        keep = long_tail_indices(train_y, num_classes, ratio, seed)
        train_x, train_y = train_x[keep], train_y[keep]
        mean = std = None
    if ood_spec is not None:
        ood_images = load_raw_split(ood_spec, "test", image_size, cache_dir, decode_workers).images
        ood_name = ood_spec.spec
    if mean is None:
        mean, std = channel_stats(train_x)
    return DatasetSplits(name=spec.spec, train_images=train_x, train_labels=train_y,
                         test_images=test_x, test_labels=test_y, num_classes=num_classes,
                         class_names=class_names, mean=tuple(mean), std=tuple(std),
                         ood_images=ood_images, ood_name=ood_name)
