"""The decoded form of one split, before any subsetting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class RawSplit:
    images: torch.Tensor  # uint8 [N,3,S,S]
    labels: torch.Tensor  # int64 [N]
    class_names: list[str]
    mean: tuple[float, float, float] | None = None  # cached channel stats (train split)
    std: tuple[float, float, float] | None = None
    entry: Path | None = None  # its cache entry (a decoded dataset): derived subsets cache their stats there
