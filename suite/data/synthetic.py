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
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from suite.data.digits import digits_subset
from suite.data.raw import RawSplit

SYNTH_SEED = 0
SYNTH_SIZES = {"train": 50_000, "test": 10_000}
SCALE = (0.45, 0.95)  # the digit's side as a fraction of the image side
BASE = (0.15, 0.85)  # background colour per channel; the gradient adds at most +-GRADIENT
GRADIENT = 0.15
CONTRAST = (0.35, 0.6)  # |digit colour - background colour| per channel, away from the nearer bound
CHUNK = 4096  # images rendered per batch of tensor ops (bounds the float intermediates)
_SPLIT_STREAM = {"train": 0, "test": 1}


@dataclass(frozen=True)
class SynthStyle:
    """How a synthetic split is drawn. The defaults are `digits-synth`'s, and with them every random
    number is drawn in the same order as before the other fields existed, so its images stay
    byte-identical. The other fields add nuisances a trained network must learn to ignore and an
    untrained one cannot: an achromatic palette (colour stops being an instance shortcut that
    colour jitter only partly hides), a smooth random texture under the digit, and distractors --
    fragments of other digits, in the digit's own colour, scattered over the canvas."""

    sizes: tuple[int, int] = (SYNTH_SIZES["train"], SYNTH_SIZES["test"])  # images in (train, test)
    scale: tuple[float, float] = SCALE
    # colour: each channel of the digit moves away from the background toward its farther bound, so
    #   in grayscale a digit can vanish (red on green of equal luminance);
    # polar: colour, but every channel of the digit is brighter (or, by a per-image coin, darker)
    #   than the background by a contrast draw, so it stays visible in grayscale;
    # gray: one level per image for all three channels.
    palette: Literal["colour", "polar", "gray"] = "colour"
    base: tuple[float, float] = BASE
    contrast: tuple[float, float] = CONTRAST
    gradient: float = GRADIENT
    texture: float = 0.0  # amplitude of the background texture (uniform +-texture per cell); 0: none
    texture_cells: int = 4  # cells per side of the texture grid, upsampled bilinearly (fewer: smoother)
    distractors: int = 0  # fragments of other source digits per image
    distractor_scale: tuple[float, float] = (0.15, 0.3)  # a fragment's half side, in [-1, 1] image units
    distractor_window: float = 0.5  # a fragment's side as a fraction of its source digit's side

    def __post_init__(self) -> None:
        if min(self.sizes) < 10:
            raise ValueError(f"sizes must be >= 10 images per split, not {self.sizes}")
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < lo <= hi <= 1, not {self.scale}")
        if self.palette not in ("colour", "polar", "gray"):
            raise ValueError(f"palette must be 'colour', 'polar' or 'gray', not {self.palette!r}")
        if self.palette == "polar" and self.base[0] + self.contrast[1] > 1:
            raise ValueError(f"polar palette: base[0] + contrast[1] must be <= 1, not {self.base} {self.contrast}")
        if self.texture < 0 or self.texture_cells < 1 or self.distractors < 0:
            raise ValueError("texture, texture_cells - 1 and distractors must be >= 0")
        if not 0 < self.distractor_window <= 1:
            raise ValueError(f"distractor_window must be in (0, 1], not {self.distractor_window}")

    def size(self, split: str) -> int:
        return self.sizes[_SPLIT_STREAM[split]]


DIGITS_SYNTH = SynthStyle()


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
    distractor_sources: Tensor | None = None  # int64 [N,D], the source digit of each fragment


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


def _placement(halves: Tensor, centres: Tensor) -> Tensor:
    """Affine matrices that read a source at ((x - cx) / h, (y - cy) / h) for output pixel (x, y)."""
    theta = torch.zeros(*halves.shape, 2, 3)
    theta[..., 0, 0] = theta[..., 1, 1] = 1.0 / halves
    theta[..., :, 2] = -centres / halves[..., None]
    return theta


def synth_digits(
    split: str,
    image_size: int = 32,
    n: int | None = None,
    seed: int = SYNTH_SEED,
    style: SynthStyle = DIGITS_SYNTH,
) -> SynthDigits:
    """Generate ``n`` images (default: the style's size of ``split``) of ``split`` at ``image_size`` px.

    Every random number is drawn up front for all ``n`` images, so the images do not depend on
    ``CHUNK`` (how many are rendered at once)."""
    if split not in SYNTH_SIZES:
        raise ValueError(f"split must be one of {sorted(SYNTH_SIZES)}, not {split!r}")
    n = style.size(split) if n is None else int(n)
    gen = torch.Generator().manual_seed(int(seed) * 2 + _SPLIT_STREAM[split])
    digits, digit_labels = digits_subset(split)
    labels, sources = _balanced_sources(digit_labels, n, gen)

    def uniform(lo: float, hi: float, *shape: int) -> Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=gen)

    channels = 1 if style.palette == "gray" else 3
    halves = uniform(*style.scale, n)
    centres = uniform(-1.0, 1.0, n, 2) * (1.0 - halves)[:, None]  # the whole digit inside the image
    if style.palette == "polar":  # a dark and a light colour, light >= dark + contrast in every channel
        dark = uniform(style.base[0], min(style.base[1], 1.0 - style.contrast[1]), n, channels)
        light = dark + uniform(*style.contrast, n, channels)
        gradient = uniform(-style.gradient, style.gradient, n, channels)
        angle = uniform(0.0, 2 * math.pi, n)
        dark_digit = torch.rand(n, 1, generator=gen) < 0.5
        base, foreground = torch.where(dark_digit, light, dark), torch.where(dark_digit, dark, light)
    else:
        base = uniform(*style.base, n, channels)
        gradient = uniform(-style.gradient, style.gradient, n, channels)
        angle = uniform(0.0, 2 * math.pi, n)
        toward = torch.where(base < 0.5, 1.0, -1.0)  # the digit's colour moves toward the farther bound
        foreground = (base + toward * uniform(*style.contrast, n, channels)).clamp(0.0, 1.0)
    base, gradient, foreground = (t.expand(n, 3) for t in (base, gradient, foreground))
    cells = style.texture_cells
    texture = uniform(-style.texture, style.texture, n, channels, cells, cells) if style.texture > 0 else None
    d = style.distractors
    if d:  # fragments: a source digit of any class, a window of it, and where it lands (may be cut off)
        frag_sources = torch.randint(len(digits), (n, d), generator=gen)
        frag_halves = uniform(*style.distractor_scale, n, d)
        frag_centres = uniform(-1.0, 1.0, n, d, 2)
        window = style.distractor_window
        frag_windows = uniform(-1.0, 1.0, n, d, 2) * (1.0 - window)  # the window's centre in the source
        frag_theta = _placement(frag_halves, frag_centres) * window  # read the window, not the whole digit
        frag_theta[..., :, 2] += frag_windows

    theta = _placement(halves, centres)
    images = torch.empty(n, 3, image_size, image_size, dtype=torch.uint8)
    coords = (torch.arange(image_size, dtype=torch.float32) + 0.5) * (2.0 / image_size) - 1.0
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        grid = F.affine_grid(theta[lo:hi], [hi - lo, 1, image_size, image_size], align_corners=False)
        ink = digits[sources[lo:hi]].float().div_(255.0).unsqueeze(1)
        alpha = F.grid_sample(ink, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        for j in range(d):  # clutter under the same ink: the brighter stroke wins where they overlap
            grid = F.affine_grid(frag_theta[lo:hi, j], [hi - lo, 1, image_size, image_size], align_corners=False)
            frag = F.grid_sample(
                digits[frag_sources[lo:hi, j]].float().div_(255.0).unsqueeze(1), grid, align_corners=False
            )
            half, centre = frag_halves[lo:hi, j, None, None], frag_centres[lo:hi, j]
            inside = ((xs - centre[:, 0, None, None]).abs() <= half) & ((ys - centre[:, 1, None, None]).abs() <= half)
            alpha = torch.maximum(alpha, frag * inside.unsqueeze(1))
        ramp = xs * torch.cos(angle[lo:hi])[:, None, None] + ys * torch.sin(angle[lo:hi])[:, None, None]
        back = base[lo:hi, :, None, None] + gradient[lo:hi, :, None, None] * (ramp / math.sqrt(2.0))[:, None]
        if texture is not None:
            smooth = F.interpolate(texture[lo:hi], size=(image_size, image_size), mode="bilinear", align_corners=False)
            back = back + smooth
        out = torch.lerp(back, foreground[lo:hi, :, None, None].expand_as(back), alpha)
        images[lo:hi] = out.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return SynthDigits(images, labels, sources, centres, halves, foreground, base, frag_sources if d else None)


def load_synth_split(split: str, image_size: int, name: str = "digits-synth") -> RawSplit:
    """One split of the synthetic dataset ``name`` (a key of `SYNTH_STYLES`) at ``image_size``."""
    data = synth_digits(split, image_size, style=SYNTH_STYLES[name])
    return RawSplit(images=data.images, labels=data.labels, class_names=[str(c) for c in range(10)])


# The CPU testbed, chosen by the testbed search (benchmarks/testbed_search.py, its table
# results/reference/testbed-search.csv): large, nearly centred digits whose colours are the
# nuisance. An untrained network's kNN groups images by colour; views that differ in colour
# (strong jitter, grayscale) teach a network to ignore it, and the polar palette keeps every
# digit visible in grayscale views. 5,000 test images: a kNN accuracy's binomial SE is <= 0.7 points.
DIGITS_COLOUR = SynthStyle(sizes=(5_000, 5_000), scale=(0.8, 0.95), palette="polar")

# Built-in synthetic datasets: name -> style (each is a `DatasetSpec` of kind "synthetic" in suite.data.specs).
SYNTH_STYLES: dict[str, SynthStyle] = {"digits-synth": DIGITS_SYNTH, "digits-colour": DIGITS_COLOUR}


def register_candidate(name: str, style: SynthStyle, image_size: int) -> None:
    """Make ``name`` a loadable synthetic dataset in this process only: how the testbed search
    (benchmarks/testbed_search.py) trains its candidates through the real trial code before one of
    them becomes a built-in name. A built-in name cannot be redefined."""
    from suite.data.specs import BUILTIN, DatasetSpec

    if name in BUILTIN and SYNTH_STYLES.get(name) != style:
        raise ValueError(f"{name!r} is a built-in dataset with another definition")
    SYNTH_STYLES[name] = style
    BUILTIN[name] = DatasetSpec(name, "synthetic", num_classes=10, image_size=image_size)
