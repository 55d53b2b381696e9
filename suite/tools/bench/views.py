"""Views: batched augmentation (``BatchAugment``) against per-sample torchvision.

References, both the usual way SSL code builds views: a per-sample
``torchvision.transforms.v2`` loop on uint8 tensors (no PIL), and PIL images
through a ``DataLoader`` with one worker per core (as torchvision's CIFAR
datasets do: ``Image.fromarray`` per item, then the transforms). All three make
every view of the method's recipe; images/s counts input images.

The crop alone is also measured four batched ways: kornia ``RandomResizedCrop``
in "resample" mode (what BatchAugment uses), kornia's default "slice" mode, and
two hand-written alternatives (``F.grid_sample`` with per-sample affine grids,
``torchvision.ops.roi_align``), which is why BatchAugment uses "resample".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from suite.tools.bench.report import Report, speedup
from suite.tools.bench.timing import best_seconds, log
from suite.trial.augment import AugmentSpec, BatchAugment


def torchvision_pipeline(spec: AugmentSpec, mean: Sequence[float], std: Sequence[float]):
    """The same recipe as BatchAugment, per image, with torchvision v2 (tensor or PIL input)."""
    from torchvision.transforms import v2

    s = spec.jitter_strength
    ops: list = [
        v2.RandomResizedCrop(spec.size, scale=spec.crop_scale, ratio=spec.crop_ratio, antialias=True),
        v2.RandomHorizontalFlip(spec.flip_p),
        v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=spec.jitter_p),
        v2.RandomGrayscale(spec.grayscale_p),
    ]
    if spec.blur_p > 0:
        ops.append(v2.RandomApply([v2.GaussianBlur(spec.blur_kernel_size, spec.blur_sigma)], p=spec.blur_p))
    if spec.solarize_p > 0:
        ops.append(v2.RandomSolarize(threshold=round(255 * spec.solarize_threshold), p=spec.solarize_p))
    ops += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(ops)


class PILViews(Dataset):
    """uint8 images held as HWC arrays, turned into PIL per item, every view built per sample."""

    def __init__(self, images: Tensor, pipelines: list) -> None:
        self.arrays = images.permute(0, 2, 3, 1).contiguous().numpy()
        self.pipelines = pipelines

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, index: int) -> list[Tensor]:
        from PIL import Image

        image = Image.fromarray(self.arrays[index])
        return [p(image) for p in self.pipelines]


def pil_dataloader_seconds(images: Tensor, pipelines: list, batch_size: int, workers: int, repeats: int) -> float:
    """Best time of one pass over ``images`` (workers started once, before timing)."""
    loader = DataLoader(
        PILViews(images, pipelines),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        drop_last=False,
    )

    def one_pass() -> None:
        for _ in loader:
            pass

    return best_seconds(one_pass, repeats, torch.device("cpu"))  # workers end with the loader


def measure_views(report: Report, settings, splits, workers: int) -> None:
    """Per method: batched vs per-sample v2 tensors vs PIL DataLoader, images/s."""
    from methods import get_method

    device = torch.device(settings.device)
    cpu = torch.device("cpu")
    images = splits.train_images[: settings.view_images].materialize()
    n = len(images)
    on_device = images.to(device)
    for name in settings.methods:
        log(f"views: {name}")
        specs = _view_specs(get_method(name), settings)
        batched = [BatchAugment(spec, splits.mean, splits.std).to(device) for spec in specs]
        pipelines = [torchvision_pipeline(spec, splits.mean, splits.std) for spec in specs]
        t_batched = best_seconds(lambda batched=batched: [aug(on_device) for aug in batched], settings.repeats, device)
        t_loop = best_seconds(
            lambda pipelines=pipelines: [torch.stack([p(img) for img in images]) for p in pipelines],
            max(1, settings.repeats - 1),
            cpu,
        )
        t_pil = pil_dataloader_seconds(images, pipelines, settings.batch_size, workers, max(1, settings.repeats - 1))
        label = f"{len(specs)} views"
        report.add(
            "views",
            name,
            speedup(
                "batched_images_per_s",
                f"BatchAugment ({label}, {device.type})",
                n / t_batched,
                "images/s",
                "tv2_loop_images_per_s",
                "torchvision v2 per sample (cpu)",
                n / t_loop,
                "batched_vs_tv2_ratio",
            ),
        )
        report.add(
            "views",
            name,
            speedup(
                "batched_images_per_s",
                "BatchAugment (as above)",
                n / t_batched,
                "images/s",
                "pil_dataloader_images_per_s",
                f"PIL DataLoader, {workers} workers",
                n / t_pil,
                "batched_vs_pil_ratio",
            ),
        )


def _view_specs(method_cls, settings) -> list[AugmentSpec]:
    """The method's view recipe at the bench's image size (a throwaway instance asks for it)."""
    cfg = settings.trial_config(method_cls.name)
    from suite.trial.train import build_model

    return build_model(cfg).view_specs(cfg.image_size)


# --- the crop alone -------------------------------------------------------------------------


def sample_crop_boxes(
    batch: int, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float], device: torch.device
) -> Tensor:
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


def grid_sample_crop(x: Tensor, size: int, scale: tuple[float, float], ratio: tuple[float, float]) -> Tensor:
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


def roi_align_crop(x: Tensor, size: int, scale: tuple[float, float], ratio: tuple[float, float]) -> Tensor:
    """Hand-written batched crop+resize with torchvision.ops.roi_align."""
    from torchvision.ops import roi_align

    b, _, height, width = x.shape
    box = sample_crop_boxes(b, height, width, scale, ratio, x.device)
    rois = torch.cat([torch.arange(b, device=x.device, dtype=box.dtype)[:, None], box], dim=1)
    return roi_align(x, rois, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)


def measure_crop(report: Report, settings, splits) -> None:
    """The crop alone: kornia "resample" (BatchAugment's) against the three alternatives."""
    import kornia.augmentation as K

    log("views: crop alternatives")
    device = torch.device(settings.device)
    size = settings.image_size
    x = (splits.train_images[: settings.view_images].to(device).float() / 255).contiguous()
    n = len(x)
    scale, ratio = (0.2, 1.0), (3 / 4, 4 / 3)

    def kornia_crop(mode: str) -> Callable[[], Tensor]:
        op = K.RandomResizedCrop((size, size), scale=scale, ratio=ratio, cropping_mode=mode).to(device)
        return lambda: op(x)

    ours = n / best_seconds(kornia_crop("resample"), settings.repeats, device)
    alternatives = {
        "slice": ("kornia RandomResizedCrop (slice)", kornia_crop("slice")),
        "grid_sample": ("hand-written grid_sample", lambda: grid_sample_crop(x, size, scale, ratio)),
        "roi_align": ("hand-written roi_align", lambda: roi_align_crop(x, size, scale, ratio)),
    }
    for key, (label, fn) in alternatives.items():
        alt = n / best_seconds(fn, settings.repeats, device)
        report.add(
            "views",
            "crop",
            speedup(
                "resample_images_per_s",
                f"kornia resample (BatchAugment) vs {key}",
                ours,
                "images/s",
                f"{key}_images_per_s",
                label,
                alt,
                f"resample_vs_{key}_ratio",
            ),
        )
