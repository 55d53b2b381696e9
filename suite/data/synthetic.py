"""The built-in `digits-synth` dataset: 60,000 colour images made from the real digits, offline.

Why it exists: the digits' 1,437 training images make about five steps of 256 per epoch, too few
to measure a GPU's steady throughput. `digits-synth` has CIFAR-10's shape (50,000 training and
10,000 test images, 10 classes, 32 px by default) with no download, so a GPU trial or the bench
runs hundreds of steps per epoch on any machine.

Each image is one source digit, drawn at a random size (``SCALE``, a fraction of the image side)
and a random position where it fits whole, in a random colour, over a background of a random
colour with a linear gradient in a random direction; the label is the source digit's. Training
images come from the digits' training split and test images from its test split, so no source
digit is in both. Classes are exactly balanced (N / 10 each). Everything is drawn from a fixed
seed (``SYNTH_SEED``, independent of the trial seed, like the digits' split) with batched torch
ops on the CPU -- ``affine_grid`` + ``grid_sample`` place every digit of a chunk at once -- so a
load is quick, needs no cache and gives the same images every time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from suite.data.digits import digits_split_indices, digits_uint8
from suite.data.raw import RawSplit

SYNTH_SEED = 0
SYNTH_SIZES = {"train": 50_000, "test": 10_000}
SCALE = (0.45, 0.95)  # the digit's side as a fraction of the image side
BASE = (0.15, 0.85)  # background colour per channel; the gradient adds at most +-GRADIENT
GRADIENT = 0.15
CONTRAST = (0.35, 0.6)  # |digit colour - background colour| per channel, away from the nearer bound
CHUNK = 4096  # images rendered per batch of tensor ops (bounds the float intermediates)
_SPLIT_STREAM = {"train": 0, "test": 1}


@dataclass
class SynthDigits:
    """One generated split, with what drew each image (the tests check the labels against it)."""

    images: Tensor  # uint8 [N,3,S,S]
    labels: Tensor  # int64 [N], the source digit's label
    sources: Tensor  # int64 [N], index of the source digit among the digits split's images
    centres: Tensor  # float [N,2], the digit's centre (x, y) in [-1, 1] image coordinates
    halves: Tensor  # float [N], the digit's half side in the same coordinates (a draw from SCALE)
    foreground: Tensor  # float [N,3], the digit's colour in [0, 1]
    background: Tensor  # float [N,3], the background colour at the image centre in [0, 1]


def source_digits(split: str) -> tuple[Tensor, Tensor]:
    """The digits split the synthetic split draws from: [n,8,8] uint8 images and their labels."""
    images, labels = digits_uint8()
    train_idx, test_idx = digits_split_indices(labels)
    idx = train_idx if split == "train" else test_idx
    return torch.from_numpy(images[idx]), torch.from_numpy(labels[idx])


def _balanced_sources(labels_src: Tensor, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """(labels, source indices): exactly n / 10 images per class (the first n % 10 classes get one
    more), in a random order, each from a uniformly drawn source digit of its class."""
    num_classes = int(labels_src.max()) + 1
    labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=gen)]
    order = torch.argsort(labels_src, stable=True)  # source indices grouped by class
    counts = torch.bincount(labels_src, minlength=num_classes)
    offsets = torch.cumsum(counts, 0) - counts
    pick = offsets[labels] + (torch.rand(n, generator=gen) * counts[labels]).long().clamp_max(counts[labels] - 1)
    return labels, order[pick]


def synth_digits(split: str, image_size: int = 32, n: int | None = None, seed: int = SYNTH_SEED) -> SynthDigits:
    """Generate ``n`` images (default ``SYNTH_SIZES[split]``) of ``split`` at ``image_size`` px.

    Every random number is drawn up front for all ``n`` images, so the images do not depend on
    ``CHUNK`` (how many are rendered at once)."""
    if split not in SYNTH_SIZES:
        raise ValueError(f"split must be one of {sorted(SYNTH_SIZES)}, not {split!r}")
    n = SYNTH_SIZES[split] if n is None else int(n)
    gen = torch.Generator().manual_seed(int(seed) * 2 + _SPLIT_STREAM[split])
    digits, digit_labels = source_digits(split)
    labels, sources = _balanced_sources(digit_labels, n, gen)

    def uniform(lo: float, hi: float, *shape: int) -> Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=gen)

    halves = uniform(*SCALE, n)
    centres = uniform(-1.0, 1.0, n, 2) * (1.0 - halves)[:, None]  # the whole digit inside the image
    base = uniform(*BASE, n, 3)
    gradient = uniform(-GRADIENT, GRADIENT, n, 3)
    angle = uniform(0.0, 2 * math.pi, n)
    toward = torch.where(base < 0.5, 1.0, -1.0)  # the digit's colour moves toward the farther bound
    foreground = (base + toward * uniform(*CONTRAST, n, 3)).clamp(0.0, 1.0)

    # Output pixel (x, y) in [-1, 1] reads the digit at ((x - cx) / h, (y - cy) / h).
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / halves
    theta[:, :, 2] = -centres / halves[:, None]
    images = torch.empty(n, 3, image_size, image_size, dtype=torch.uint8)
    coords = (torch.arange(image_size, dtype=torch.float32) + 0.5) * (2.0 / image_size) - 1.0
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        grid = F.affine_grid(theta[lo:hi], [hi - lo, 1, image_size, image_size], align_corners=False)
        ink = digits[sources[lo:hi]].float().div_(255.0).unsqueeze(1)
        alpha = F.grid_sample(ink, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        ramp = xs * torch.cos(angle[lo:hi])[:, None, None] + ys * torch.sin(angle[lo:hi])[:, None, None]
        back = base[lo:hi, :, None, None] + gradient[lo:hi, :, None, None] * (ramp / math.sqrt(2.0))[:, None]
        out = torch.lerp(back, foreground[lo:hi, :, None, None].expand_as(back), alpha)
        images[lo:hi] = out.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return SynthDigits(images, labels, sources, centres, halves, foreground, base)


def load_synth_split(split: str, image_size: int) -> RawSplit:
    """One split of `digits-synth` at `image_size`."""
    data = synth_digits(split, image_size)
    return RawSplit(images=data.images, labels=data.labels, class_names=[str(c) for c in range(10)])
