"""Decoding and resizing to the benchmark's square uint8 format.

Every image becomes `[3, S, S]` uint8: the shorter side is resized to S
(bilinear, antialiased when shrinking) and the centre S x S is cropped, so
aspect ratios are kept and nothing is padded. Images of equal size are resized
together as one tensor op.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

# How many images were decoded from files in this process: lets tests (and
# curious users) prove that a cached load decodes nothing.
DECODE_STATS = {"images": 0}
_STATS_LOCK = threading.Lock()


def resize_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """[N,3,h,w] uint8 (all the same h, w) -> [N,3,size,size] uint8: shorter side + centre crop."""
    h, w = images.shape[-2:]
    if (h, w) != (size, size):
        # shorter side -> size, longer side truncated like torchvision's Resize(int)
        out_hw = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
        images = F.interpolate(images, size=out_hw, mode="bilinear", align_corners=False, antialias=True)
        top, left = (out_hw[0] - size) // 2, (out_hw[1] - size) // 2
        images = images[..., top : top + size, left : left + size]
    return images.contiguous()


def to_rgb_array(image) -> np.ndarray:
    """A PIL image (any mode) -> HxWx3 uint8."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def decode_resize(pil_images: Sequence, size: int) -> np.ndarray:
    """Decoded PIL images -> [N,3,size,size] uint8; equal-sized images are resized in one batch."""
    arrays = [to_rgb_array(im) for im in pil_images]  # PIL decoding is per image by nature
    with _STATS_LOCK:
        DECODE_STATS["images"] += len(arrays)
    out = np.empty((len(arrays), 3, size, size), dtype=np.uint8)
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, a in enumerate(arrays):
        groups[a.shape[:2]].append(i)
    for idx in groups.values():
        batch = torch.from_numpy(np.stack([arrays[i] for i in idx])).permute(0, 3, 1, 2)
        out[idx] = resize_square(batch, size).numpy()
    return out
