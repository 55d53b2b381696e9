"""Datasets for normbench: one call gives uint8 train/test tensors plus derived sets.

`prepare_splits` composes the pieces of `suite.data` as a `SplitsPlan` (`suite.data.plan`,
made once when a trial's config is resolved) says: a source (built-in digits, a named hub
dataset, `hf:`, `parquet:` or `imagefolder:`) decoded once into a memory-mapped cache, then
optional held-out classes (an OOD set), a long-tailed training set, a fixed subset
(`train_limit`), a validation hold-out and an OOD set from another dataset. This is the one
place a trial's data is prepared, so the normalization statistics always describe the
training split returned. `load_splits` is the same from plain arguments (the Python API).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from suite.core.errors import ConfigError
from suite.data import cache
from suite.data.imageset import ImageSet
from suite.data.loader import load_raw_split
from suite.data.plan import SplitsPlan, plan_splits
from suite.data.specs import DATASET_NAMES, DatasetSpec, validate_dataset_name
from suite.data.subsets import (
    ROTATE,
    channel_stats,
    holdout_indices,
    limited_indices,
    long_tail_indices,
    long_tail_order,
    resolve_holdout,
    rotated_holdout,
    validate_imbalance,
    validation_split,
)

__all__ = ["DatasetSplits", "DATASET_NAMES", "validate_dataset_name", "load_splits", "prepare_splits"]


@dataclass
class DatasetSplits:
    """A trial's data. The images are `ImageSet` views over the decoded (memory-mapped) splits: a trial
    holds index arrays and the batches it gathers, never a private copy of a split."""

    name: str
    train_images: ImageSet  # uint8 [N,3,H,W]
    train_labels: Tensor  # int64 [N]
    test_images: ImageSet
    test_labels: Tensor
    num_classes: int
    class_names: list[str]
    mean: tuple[float, float, float]  # per-channel, in [0,1], of the train split
    std: tuple[float, float, float]
    ood_images: ImageSet | None = None  # uint8, for OOD diagnostics
    ood_name: str | None = None
    val_images: ImageSet | None = None  # uint8, held out of the training set (val_fraction)
    val_labels: Tensor | None = None
    frequency_order: list[int] | None = None  # long-tailed training set: classes from most to least frequent


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
        raise ConfigError(
            "dataset label column",
            spec.label_column,
            f"labels in 0..{len(names) - 1}",
            hint=f"{spec.spec} has labels from {int(labels.min())} to {top}",
        )
    return names


def load_splits(
    name: str | DatasetSpec,
    image_size: int,
    *,
    imbalance: float | None = None,
    holdout_classes: Sequence[int | str] | int | str | None = None,
    ood_dataset: str | DatasetSpec | None = None,
    train_limit: int | None = None,
    val_fraction: float = 0.0,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    decode_workers: int | None = None,
) -> DatasetSplits:
    """Load `name` at `image_size` (square) and derive the splits: the Python API, which checks its
    arguments (`suite.data.plan.plan_splits`) and then runs `prepare_splits`. A trial does not come
    this way: its config was resolved into a `SplitsPlan` once, and the trainer hands that over.

    holdout_classes: class indices (or names) removed from train AND test; their test
      images become `ood_images`. Remaining classes are re-indexed 0..C'-1 in order.
      ``rotate:K``: K classes chosen by the seed (`rotated_holdout`), so an OOD finding
      over seeds is not one pair of classes. One index or name alone is one class.
    imbalance: R >= 1; the classes are ranked in an order drawn with `seed`
      (`long_tail_order`), and the class at rank r keeps min(n, floor(n_max * R^(-r/(C-1))))
      images, chosen with `seed`; test stays as is.
    train_limit: a fixed random subset of N training images (the same for every seed).
    val_fraction: a stratified fixed part of what is left moves to `val_images`.
    ood_dataset: another dataset spec whose test split becomes `ood_images`.

    `mean` and `std` are always those of the training split returned.
    """
    image_size = _validate_image_size(image_size)
    ratio = validate_imbalance(imbalance)
    if isinstance(holdout_classes, int) or (
        isinstance(holdout_classes, str) and not holdout_classes.startswith(ROTATE)
    ):
        holdout_classes = [holdout_classes]
    plan = plan_splits(
        name,
        image_size,
        imbalance=ratio,
        holdout_classes=holdout_classes,
        ood_dataset=ood_dataset,
        train_limit=train_limit,
        val_fraction=val_fraction,
        seed=seed,
    )
    return prepare_splits(plan, cache_dir=cache_dir, decode_workers=decode_workers)


def prepare_splits(
    plan: SplitsPlan, *, cache_dir: str | Path | None = None, decode_workers: int | None = None
) -> DatasetSplits:
    """The splits ``plan`` describes (see `load_splits` for each step), in that order. The plan was
    checked when it was made; what is checked here needs the data (class names, the split's size)."""
    spec, image_size, ratio, seed = plan.dataset, plan.image_size, plan.imbalance, plan.seed
    holdout, rotation, ood_spec = list(plan.holdout) or None, plan.rotate, plan.ood_dataset
    train_limit, val_fraction = plan.train_limit, plan.val_fraction

    train = load_raw_split(spec, "train", image_size, cache_dir, decode_workers)
    test = load_raw_split(spec, "test", image_size, cache_dir, decode_workers)
    class_names = _class_names(spec, train.class_names, train.labels, test.labels)
    num_classes = len(class_names)
    # views over the (memory-mapped) splits: every subset below is an index array, never a copy
    train_x, train_y = ImageSet(train.images), train.labels
    test_x, test_y = ImageSet(test.images), test.labels
    derived = False
    ood_images, ood_name, frequency_order, val_x, val_y = None, None, None, None, None

    if holdout or rotation is not None:
        held = resolve_holdout(holdout, class_names) if holdout else rotated_holdout(rotation, num_classes, seed)
        keep, train_y, _ = holdout_indices(train_y, held, num_classes)
        train_x = train_x.subset(keep)
        keep, test_y, held_test = holdout_indices(test_y, held, num_classes)
        test_x, ood_images = test_x.subset(keep), test_x.subset(held_test)
        ood_name = f"{spec.spec} held-out classes {[class_names[c] for c in held]}"
        class_names = [n for i, n in enumerate(class_names) if i not in set(held)]
        num_classes = len(class_names)
        derived = True
    if ratio is not None and ratio > 1:
        frequency_order = long_tail_order(num_classes, seed)
        keep = long_tail_indices(train_y, num_classes, ratio, seed, frequency_order)
        train_x, train_y, derived = train_x.subset(keep), train_y[keep], True
    if train_limit is not None and train_limit >= len(train_y):
        # every image either way, but another trial id: refused rather than a silent duplicate
        raise ConfigError(
            "train_limit",
            train_limit,
            f"< the {len(train_y):,} images of this training split, or unset to train on all of them",
        )
    if train_limit is not None:
        keep = limited_indices(len(train_y), train_limit)
        train_x, train_y, derived = train_x.subset(keep), train_y[keep], True
    if val_fraction > 0:
        keep, val = validation_split(train_y, val_fraction)
        val_x, val_y = train_x.subset(val), train_y[val]
        train_x, train_y, derived = train_x.subset(keep), train_y[keep], True
    if ood_spec is not None:
        ood_images = ImageSet(load_raw_split(ood_spec, "test", image_size, cache_dir, decode_workers).images)
        ood_name = ood_spec.spec
    if derived:  # a pass over the subset, once per cache entry and subset
        rows = train_x.index if train_x.index is not None else torch.arange(len(train_x))
        mean, std = cache.subset_stats(train.entry, rows, lambda: channel_stats(train_x))
    else:
        mean, std = train.mean, train.std
    return DatasetSplits(
        name=spec.spec,
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        num_classes=num_classes,
        class_names=class_names,
        mean=tuple(mean),
        std=tuple(std),
        ood_images=ood_images,
        ood_name=ood_name,
        val_images=val_x,
        val_labels=val_y,
        frequency_order=frequency_order,
    )
