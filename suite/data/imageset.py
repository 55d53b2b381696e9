"""The images of a split as an index view over one uint8 array, usually the memory-mapped cache.

Why: every derived split (held-out classes, a long tail, ``train_limit``, a validation
hold-out) used to copy its images, so a trial held a private copy of its training set
(ImageNet-100 at 224 px is ~19 GB decoded, once per trial and data-parallel rank). An
`ImageSet` is the base array plus an index array: a subset composes indices, a batch
gathers its rows from the map, and the pages of the map are the operating system's,
shared by every trial and rank on the node.

Indexing follows the needs of its callers: a tensor (or list) of positions gathers a
batch (a new tensor, the only copy); a slice is another view; ``materialize`` gathers
everything (for a device that holds the whole split). Gathers are ``index_select`` along
the first dimension, which copies each image as one block: advanced indexing
(``base[rows]``) walks it element by element and is about three times slower for a batch
of small images, from the map and from memory alike, and for a batch's positions in a
subset it has a setup cost per call that is a quarter of the whole gather.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

CHUNK_BYTES = 64 << 20  # what a pass over the whole set gathers at once


class ImageSet:
    """uint8 images [N, C, H, W]: ``base[index]`` without the copy."""

    def __init__(self, base: Tensor, index: Tensor | None = None) -> None:
        self.base = base
        self.index = None if index is None else torch.as_tensor(index, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.base) if self.index is None else len(self.index)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.base.shape[1:])

    @property
    def dtype(self) -> torch.dtype:
        return self.base.dtype

    @property
    def device(self) -> torch.device:
        return self.base.device

    def positions(self, key) -> Tensor | slice:
        """Rows of ``base`` for ``key`` (positions in this set)."""
        if self.index is None:
            return key
        if isinstance(key, Tensor) and key.dim() == 1 and key.dtype == torch.long:
            return torch.index_select(self.index, 0, key.to(self.index.device))  # a step's batch: no setup cost
        return self.index[key]

    def subset(self, key) -> ImageSet:
        """A view of the rows ``key`` (positions in this set: a tensor of indices or a boolean mask)."""
        key = torch.as_tensor(key)
        if key.dtype == torch.bool:
            key = torch.nonzero(key).flatten()
        return ImageSet(self.base, key if self.index is None else self.index[key])

    def __getitem__(self, key) -> Tensor | ImageSet:
        if isinstance(key, slice):
            if self.index is None:
                return ImageSet(self.base[key])  # a view of the base (of the map)
            return ImageSet(self.base, self.index[key])
        if isinstance(key, int):
            return self.base[key if self.index is None else int(self.index[key])]
        return self._gather(self.positions(torch.as_tensor(key, dtype=torch.long)))

    def _gather(self, rows: Tensor, out: Tensor | None = None) -> Tensor:
        if out is None:
            return torch.index_select(self.base, 0, rows.to(self.base.device))
        return torch.index_select(self.base, 0, rows.to(self.base.device), out=out[: len(rows)])

    def chunks(self, rows: int | None = None) -> Iterator[Tensor]:
        """The images in order, a bounded block at a time (``rows``, else ~`CHUNK_BYTES`)."""
        per_image = max(1, self.base[0].numel() * self.base.element_size()) if len(self.base) else 1
        step = rows or max(1, CHUNK_BYTES // per_image)
        for start in range(0, len(self), step):
            block = self[start : start + step]
            yield block.materialize()

    def materialize(self, out: Tensor | None = None) -> Tensor:
        """Every image as one tensor (a copy when this is a subset). ``out``: a buffer with room for them
        (a pinned staging buffer) that receives them, without another copy; its first ``len(self)`` rows
        are returned."""
        if out is None and self.index is None:
            return self.base
        return self._gather(torch.arange(len(self.base)) if self.index is None else self.index, out)

    def to(self, device, non_blocking: bool = False) -> Tensor:
        """Every image on ``device`` (a tensor: a device that holds the whole set trains from it). To
        another device the rows travel a bounded block at a time, so the host never holds a copy.
        ``non_blocking`` is accepted as `Tensor.to` accepts it; blocks from pageable memory copy in order."""
        device = torch.device(device)
        if device == self.device:
            return self.materialize()
        del non_blocking
        out = torch.empty(self.shape, dtype=self.dtype, device=device)
        start = 0
        for block in self.chunks():
            out[start : start + len(block)].copy_(block)  # a pageable block: copied before it is freed
            start += len(block)
        return out

    def float(self) -> Tensor:
        return self.materialize().float()


def as_imageset(images: Tensor | ImageSet | None) -> ImageSet | None:
    return images if images is None or isinstance(images, ImageSet) else ImageSet(images)
