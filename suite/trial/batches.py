"""Where a training step's images come from, without a private copy of the split.

A split that fits comfortably on the GPU is moved there once and batches are gathered
on the device. Otherwise the split stays a view of the host's memory map
(`suite.data.imageset.ImageSet`) and each batch is gathered from it into one of a small
ring of pinned staging buffers and copied to the device asynchronously: the copy of
step k+1 overlaps step k's kernels, and a buffer is reused only once its copy has
finished (a CUDA event). No rank pins the whole split. On the CPU a batch is gathered
from the map directly: that gather is the only copy.

An epoch's order is composed with the split's index once (``source.reorder(order)``), so a
step's batch is a slice of it: ``source.take(start, stop)`` gathers the images at those
positions of the order without composing indices per step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from suite.data.imageset import ImageSet

RESIDENT_FRACTION = 0.25  # of the free GPU memory a split may take to live on the device
STAGING_SLOTS = 2


def place_dataset(images: ImageSet, device: torch.device, max_fraction: float = RESIDENT_FRACTION) -> ImageSet:
    """The training images as the steps read them: on a GPU with room, the whole split on the device
    (gathered from the map once); else the host view itself."""
    if device.type != "cuda":
        return images
    free, _ = torch.cuda.mem_get_info(device)
    if len(images) and images.base[0].numel() * len(images) <= max_fraction * free:
        return ImageSet(images.to(device))
    return images


class BatchSource:
    """``source.reorder(order)`` once an epoch, then ``source.take(start, stop)`` per step: the uint8
    images at those positions of the epoch's order, on the training device."""

    def __init__(self, images: ImageSet, device: torch.device, batch_size: int, slots: int = STAGING_SLOTS) -> None:
        self.images, self.device = images, device
        self._epoch = images
        self.streaming = device.type == "cuda" and images.device.type != "cuda"
        self._buffers: list[Tensor] = []
        self._events: list = []
        self._next = 0
        if self.streaming:
            shape = (batch_size, *images.shape[1:])
            self._buffers = [torch.empty(shape, dtype=images.dtype).pin_memory() for _ in range(slots)]
            self._events = [None] * slots

    @property
    def index_device(self) -> torch.device:
        """Where the step's indices live (the device of the images they gather from)."""
        return self.images.device

    def reorder(self, order: Tensor) -> None:
        """The epoch's order (positions in the split, on `index_device`), composed with the split's index
        here, once: a step's batch is then a slice of it."""
        self._epoch = self.images.subset(order)

    def take(self, start: int, stop: int) -> Tensor:
        """The images at positions ``start:stop`` of the epoch's order (the split's own order before any
        `reorder`)."""
        batch = self._epoch[start:stop]
        if not self.streaming:
            return batch.materialize().to(self.device, non_blocking=True)
        slot = self._next
        self._next = (slot + 1) % len(self._buffers)
        if self._events[slot] is not None:
            self._events[slot].synchronize()  # its previous copy has left the buffer
        staged = batch.materialize(out=self._buffers[slot])
        out = staged.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))
        self._events[slot] = event
        return out
