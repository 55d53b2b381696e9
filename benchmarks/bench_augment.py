"""Throughput of suite.augment.BatchAugment against a per-sample torchvision loop.

Prints images/s for one batch (default 256 images of 32x32, on CPU) for
  * BatchAugment with a SimCLR view (crop, flip, jitter, grayscale) and a BYOL-like
    view (plus blur and solarize);
  * the same recipes as a per-sample ``torchvision.transforms.v2`` loop on uint8
    tensors (no PIL), the usual DataLoader-worker way;
  * the crop alone, four batched ways: kornia ``RandomResizedCrop`` in "resample"
    mode (what BatchAugment uses), kornia's default "slice" mode, and two hand-written
    alternatives: ``F.grid_sample`` with per-sample affine grids and
    ``torchvision.ops.roi_align``.
Each figure is the best of ``--repeats`` timed calls after one warm-up, since
shared machines make single timings noisy.

    python benchmarks/bench_augment.py --batch-size 256 --image-size 32
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Callable

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from suite.augment import AugmentSpec, BatchAugment  # noqa: E402

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def best_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Best wall time of ``repeats`` calls after a warm-up (synchronising on CUDA)."""
    fn()
    best = math.inf
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def torchvision_reference(spec: AugmentSpec) -> v2.Compose:
    """The same recipe as BatchAugment, as a per-image torchvision v2 pipeline on tensors."""
    s = spec.jitter_strength
    ops: list[v2.Transform] = [
        v2.RandomResizedCrop(spec.size, scale=spec.crop_scale, ratio=spec.crop_ratio, antialias=True),
        v2.RandomHorizontalFlip(spec.flip_p),
        v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=spec.jitter_p),
        v2.RandomGrayscale(spec.grayscale_p),
    ]
    if spec.blur_p > 0:
        ops.append(v2.RandomApply([v2.GaussianBlur(spec.blur_kernel_size, spec.blur_sigma)], p=spec.blur_p))
    if spec.solarize_p > 0:
        ops.append(v2.RandomSolarize(threshold=128, p=spec.solarize_p))
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    return v2.Compose(ops)


def sample_crop_boxes(batch: int, height: int, width: int, scale: tuple[float, float],
                      ratio: tuple[float, float], device: torch.device) -> torch.Tensor:
    """torchvision's RandomResizedCrop box rule, batched: 10 tries per sample, else the whole image.

    Returns [B, 4] boxes (x0, y0, x1, y1) in pixel-edge coordinates.
    """
    area = height * width * torch.empty(batch, 10, device=device).uniform_(*scale)
    log_r = torch.empty(batch, 10, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    w = torch.sqrt(area * log_r.exp()).round()
    h = torch.sqrt(area / log_r.exp()).round()
    fits = (w >= 1) & (h >= 1) & (w <= width) & (h <= height)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((batch,), -1, device=device))
    rows = torch.arange(batch, device=device)
    w = torch.where(first >= 0, w[rows, first.clamp(min=0)], torch.full_like(first, width, dtype=w.dtype))
    h = torch.where(first >= 0, h[rows, first.clamp(min=0)], torch.full_like(first, height, dtype=h.dtype))
    x0 = torch.floor(torch.rand(batch, device=device) * (width - w + 1))
    y0 = torch.floor(torch.rand(batch, device=device) * (height - h + 1))
    return torch.stack([x0, y0, x0 + w, y0 + h], dim=1)


def grid_sample_crop(x: torch.Tensor, size: int, scale: tuple[float, float], ratio: tuple[float, float]) -> torch.Tensor:
    """Hand-written batched crop+resize: one affine grid per sample, one grid_sample."""
    b, _, height, width = x.shape
    box = sample_crop_boxes(b, height, width, scale, ratio, x.device)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0] = (box[:, 2] - box[:, 0]) / width
    theta[:, 1, 1] = (box[:, 3] - box[:, 1]) / height
    theta[:, 0, 2] = (box[:, 0] + box[:, 2]) / width - 1
    theta[:, 1, 2] = (box[:, 1] + box[:, 3]) / height - 1
    grid = F.affine_grid(theta, [b, 3, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def roi_align_crop(x: torch.Tensor, size: int, scale: tuple[float, float], ratio: tuple[float, float]) -> torch.Tensor:
    """Hand-written batched crop+resize with torchvision.ops.roi_align."""
    b, _, height, width = x.shape
    box = sample_crop_boxes(b, height, width, scale, ratio, x.device)
    rois = torch.cat([torch.arange(b, device=x.device, dtype=box.dtype)[:, None], box], dim=1)
    return roi_align(x, rois, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=256, help="images per batch (default 256)")
    parser.add_argument("--image-size", type=int, default=32, help="input side in pixels (default 32)")
    parser.add_argument("--out-size", type=int, default=None, help="view side (default: --image-size)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per figure; best is kept (default 10)")
    parser.add_argument("--device", default="cpu", help="torch device for the batched paths (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    size = args.out_size or args.image_size
    n = args.batch_size
    images = torch.randint(0, 256, (n, 3, args.image_size, args.image_size), dtype=torch.uint8)
    print(f"batch {n} x 3 x {args.image_size}^2 -> {size}^2, device {device}, threads {torch.get_num_threads()}, "
          f"torch {torch.__version__}, best of {args.repeats}")

    recipes = {
        "simclr": AugmentSpec(size),
        "byol-like": AugmentSpec(size, crop_scale=(0.08, 1.0), jitter_strength=0.5, blur_p=0.5, solarize_p=0.2),
    }
    for name, spec in recipes.items():
        batched = BatchAugment(spec, MEAN, STD).to(device)
        on_device = images.to(device)
        t_batched = best_seconds(lambda: batched(on_device), args.repeats, device)
        reference = torchvision_reference(spec)
        t_loop = best_seconds(lambda: torch.stack([reference(img) for img in images]), max(1, args.repeats // 3),
                              torch.device("cpu"))
        print(f"{name:10s} BatchAugment          {n / t_batched:10.0f} images/s")
        print(f"{name:10s} torchvision v2 loop   {n / t_loop:10.0f} images/s   (cpu, per sample)")
        print(f"{name:10s} ratio batched/loop    {t_loop / t_batched:10.1f}x")

    x = (images.to(device).float() / 255).contiguous()
    scale, ratio = (0.2, 1.0), (3 / 4, 4 / 3)
    crops: dict[str, Callable[[], object]] = {}
    for mode in ("resample", "slice"):
        op = K.RandomResizedCrop((size, size), scale=scale, ratio=ratio, cropping_mode=mode).to(device)
        crops[f"kornia RandomResizedCrop ({mode})"] = lambda op=op: op(x)
    crops["hand-written grid_sample"] = lambda: grid_sample_crop(x, size, scale, ratio)
    crops["hand-written roi_align"] = lambda: roi_align_crop(x, size, scale, ratio)
    for name, fn in crops.items():
        print(f"crop only  {name:34s} {n / best_seconds(fn, args.repeats, device):10.0f} images/s")


if __name__ == "__main__":
    main()
