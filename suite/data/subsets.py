"""Derived training sets: held-out classes (OOD) and long-tailed (imbalanced) subsets.

All selection is vectorized over the label tensor; no per-sample Python.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from suite.core.errors import ConfigError
from suite.data.imageset import as_imageset

ROTATE = "rotate:"  # holdout_classes: "rotate:K" holds out K classes that move on with the seed


def rotation_count(holdout, field: str = "holdout_classes") -> int | None:
    """K of a ``rotate:K`` holdout (None for a list of classes); ConfigError when malformed."""
    if not (isinstance(holdout, str) and holdout.startswith(ROTATE)):
        return None
    count = holdout[len(ROTATE) :].strip()
    if not count.isdigit() or int(count) < 1:
        raise ConfigError(field, holdout, "rotate:K with K a whole number >= 1 (K classes, moving on with the seed)")
    return int(count)


def rotated_holdout(count: int, num_classes: int, seed: int, field: str = "holdout_classes") -> list[int]:
    """The K classes a seed holds out under ``rotate:K``: K consecutive classes starting at seed * K
    (mod the number of classes), so consecutive seeds cover every class before any repeats."""
    if count >= num_classes:
        raise ConfigError(
            field,
            f"{ROTATE}{count}",
            f"rotate:K with K < {num_classes}",
            hint="holding out every class leaves nothing to train on",
        )
    return sorted((seed * count + i) % num_classes for i in range(count))


def resolve_holdout(holdout: Sequence, class_names: list[str], field: str = "holdout_classes") -> list[int]:
    """Class indices (ints, or class names) -> sorted unique ints; ConfigError if invalid."""
    n = len(class_names)
    if isinstance(holdout, (str, int)):
        holdout = [holdout]
    out = set()
    for c in holdout:
        if isinstance(c, bool):
            raise ConfigError(field, c, f"class indices 0..{n - 1} or class names")
        if isinstance(c, int):
            if not 0 <= c < n:
                raise ConfigError(
                    field, c, f"class indices 0..{n - 1} or class names", hint=f"the dataset has {n} classes"
                )
            out.add(c)
        elif isinstance(c, str) and c in class_names:
            out.add(class_names.index(c))
        elif isinstance(c, str) and c.strip().lstrip("-").isdigit():
            out.update(resolve_holdout([int(c)], class_names, field))
        else:
            raise ConfigError(field, c, f"class indices 0..{n - 1} or class names", hint=f"the dataset has {n} classes")
    if len(out) >= n:
        raise ConfigError(
            field,
            sorted(out),
            f"at most {n - 1} of the {n} classes",
            hint="holding out every class leaves nothing to train on",
        )
    return sorted(out)


def holdout_indices(
    labels: torch.Tensor, held: list[int], num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(indices of the kept images, their labels re-indexed 0..C'-1, indices of the held-out images)."""
    held_mask = torch.zeros(num_classes, dtype=torch.bool)
    held_mask[held] = True
    is_held = held_mask[labels]
    new_index = torch.cumsum(~held_mask, 0) - 1  # old class -> new class among the kept ones
    keep = torch.nonzero(~is_held).flatten()
    return keep, new_index[labels[keep]], torch.nonzero(is_held).flatten()


def long_tail_order(num_classes: int, seed: int) -> list[int]:
    """The classes from most to least frequent in a long-tailed training set: a permutation
    drawn with the trial's seed, so that across seeds a class's identity (some digits simply
    get larger norms) is not confounded with its frequency."""
    g = torch.Generator().manual_seed(int(seed) + LONG_TAIL_ORDER_SEED_OFFSET)
    return torch.randperm(num_classes, generator=g).tolist()


LONG_TAIL_ORDER_SEED_OFFSET = 7_777  # the order's stream apart from the one that picks the kept images


def long_tail_counts(class_counts: torch.Tensor, ratio: float, order: Sequence[int] | None = None) -> torch.Tensor:
    """Images kept per class: the class at rank r of ``order`` (default: class index order) keeps
    min(count, floor(n_max * ratio^(-r/(C-1)))), the CIFAR-10-LT profile."""
    c = len(class_counts)
    n_max = int(class_counts.max())
    ranks = torch.empty(c, dtype=torch.float64)
    ranks[torch.as_tensor(list(order) if order is not None else range(c))] = torch.arange(c, dtype=torch.float64)
    target = torch.floor(n_max * torch.tensor(float(ratio), dtype=torch.float64) ** (-ranks / max(c - 1, 1)))
    return torch.minimum(class_counts, target.long())


def long_tail_indices(
    labels: torch.Tensor, num_classes: int, ratio: float, seed: int, order: Sequence[int] | None = None
) -> torch.Tensor:
    """Sorted indices of a long-tailed subset (``order``: classes from most to least frequent);
    which images of a class are kept depends on `seed`."""
    counts = torch.bincount(labels, minlength=num_classes)
    keep_n = long_tail_counts(counts, ratio, order)
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(len(labels), generator=g)
    order_idx = perm[torch.argsort(labels[perm], stable=True)]  # grouped by class, random within
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(labels)) - starts[labels[order_idx]]  # position within its class
    return torch.sort(order_idx[rank < keep_n[labels[order_idx]]]).values


TRAIN_LIMIT_SEED = 0  # fixed, independent of the trial seed: every seed trains on the same subset


def limited_indices(num_images: int, limit: int) -> torch.Tensor:
    """Sorted indices of a fixed random subset of ``limit`` training images (``train_limit``)."""
    keep = torch.randperm(num_images, generator=torch.Generator().manual_seed(TRAIN_LIMIT_SEED))[:limit]
    return keep.sort().values


def validate_imbalance(ratio, field: str = "imbalance") -> float | None:
    if ratio is None:
        return None
    try:
        r = float(ratio)
    except (TypeError, ValueError):
        raise ConfigError(field, ratio, "a number >= 1 (max/min class size ratio)") from None
    if isinstance(ratio, bool) or not math.isfinite(r) or r < 1:
        raise ConfigError(field, ratio, "a number >= 1 (max/min class size ratio)")
    return r


def channel_stats(images) -> tuple[tuple, tuple]:
    """Per-channel mean and std in [0,1] of uint8 [N,3,H,W] (a tensor or an `ImageSet`), in chunks: a
    memory map or a subset of one is read a bounded block at a time, never copied whole."""
    # ~1M values (8 MB as float64) a block: small enough that the allocator hands every block back
    chunk = max(1, (1 << 20) // max(1, images[0].numel()))
    total = torch.zeros(3, dtype=torch.float64)
    total_sq = torch.zeros(3, dtype=torch.float64)
    for block in as_imageset(images).chunks(chunk):
        x = block.to(torch.float64)
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
    n = len(images) * images.shape[2] * images.shape[3]
    mean = total / n
    var = (total_sq / n - mean * mean).clamp_min(0)
    return tuple((mean / 255).tolist()), tuple((var.sqrt() / 255).tolist())


VALIDATION_SPLIT_SEED = 0  # fixed, independent of the trial seed: every seed validates on the same images


def validation_split(
    labels: torch.Tensor, fraction: float, seed: int = VALIDATION_SPLIT_SEED
) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held-out) indices, sorted: a stratified part of a training set held out for validation.

    Class c (in label order) of n_c images gives ``min(n_c - 1, floor(n_c * fraction + 0.5))``
    images, the first ones of ``torch.randperm(n_c)`` drawn from one generator seeded
    with ``seed``; every class keeps at least one training image."""
    if not 0 <= fraction < 0.5:
        raise ConfigError("val_fraction", fraction, "a fraction in [0, 0.5)")
    generator = torch.Generator().manual_seed(seed)
    held = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        count = min(len(members) - 1, math.floor(len(members) * fraction + 0.5))
        held.append(members[torch.randperm(len(members), generator=generator)[:count]])
    val = torch.cat(held).sort().values if held else torch.zeros(0, dtype=torch.long)
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[val] = False
    return torch.nonzero(mask).flatten(), val
