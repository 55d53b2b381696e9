"""The plain PyTorch training loop every trainer figure is compared with.

The model (backbone, heads, loss, intervention), optimizer and batched views are
the trainer's own, built by the one function that builds them
(``suite.trial.train.build_parts``); same precision and memory format, and the
trainer's seeding protocol (``suite.trial.runtime.epoch_seed``), so the
same seed gives the same first batch, views and loss as ``run_trial``. What it
leaves out is what the trainer adds around the step: the LR schedule, norm and
loss bookkeeping, progress bar, data-parallel plumbing.

The step is written once, with a timer hook: the plain loop passes the no-op
timer, the epoch breakdown a synchronizing one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from suite.measure.norms import RunningNormStats
from suite.tools.bench.timing import NULL_TIMER, NullTimer, PartTimer, synchronize
from suite.trial.augment import BatchAugment
from suite.trial.runtime import DistContext, autocast_context, epoch_seed, resolve_device


@dataclass
class LoopSetup:
    cfg: object  # suite.config.TrialConfig
    model: nn.Module
    optimizer: torch.optim.Optimizer
    augmenters: list[BatchAugment]
    images: Tensor  # uint8 training set on the device
    device: torch.device
    channels_last: bool

    @property
    def steps_per_epoch(self) -> int:
        return len(self.images) // self.cfg.batch_size


def build_setup(cfg, splits, *, compile_model: bool = False) -> LoopSetup:
    """Model, optimizer and augmenters: the trainer's own (`suite.trial.train.build_parts`)."""
    from suite.trial.train import build_parts

    device = resolve_device(cfg.device, DistContext())
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"
    parts = build_parts(cfg, splits, device, channels_last, compile=compile_model)
    return LoopSetup(
        cfg, parts.method, parts.optimizer, parts.augmenters, splits.train_images.to(device), device, channels_last
    )


def train_step(
    s: LoopSetup,
    batch_idx: Tensor,
    progress: float,
    timer: PartTimer | NullTimer = NULL_TIMER,
    norms: tuple[RunningNormStats, RunningNormStats] | None = None,
    steps_done: int | None = None,
) -> Tensor:
    """One optimizer step on the images ``batch_idx``; returns the detached loss. ``steps_done`` (the run's
    optimizer steps after this one) feeds the method's step schedules, as in the trainer."""
    with timer.part("views"):
        images = s.images[batch_idx]
        views = [aug(images) for aug in s.augmenters]
        if s.channels_last:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
    with timer.part("forward"):
        with autocast_context(s.device, s.cfg.precision):
            out = s.model(views)
    with timer.part("backward"):
        s.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
    with timer.part("optimizer"):
        s.optimizer.step()
        s.model.update_target(progress)
        if steps_done is not None:
            s.model.after_step(steps_done)
    if norms is not None:
        with timer.part("norm logging"):
            norms[0].update_vectors(out.embedding)
            norms[1].update_vectors(out.features)
    return out.loss.detach()


@dataclass
class EpochResult:
    seconds: float
    images: int
    losses: list[Tensor]

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds


def run_epoch(
    s: LoopSetup,
    epoch: int,
    timer: PartTimer | NullTimer = NULL_TIMER,
    log_norms: bool = False,
    max_steps: int | None = None,
) -> EpochResult:
    """One epoch (1-based, like the trainer) with the trainer's per-epoch seeds."""
    cfg = s.cfg
    steps = s.steps_per_epoch if max_steps is None else min(max_steps, s.steps_per_epoch)
    total_steps = s.steps_per_epoch * cfg.epochs
    torch.manual_seed(epoch_seed(cfg.seed, epoch, 0))
    s.model.on_epoch_start(epoch - 1, cfg.epochs)
    order = torch.randperm(len(s.images), generator=torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch, 0)))
    order = order.to(s.images.device)
    norms = (RunningNormStats(), RunningNormStats()) if log_norms else None
    s.model.train()
    synchronize(s.device)
    start = time.perf_counter()
    losses = []
    for step in range(steps):
        batch_idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        progress = ((epoch - 1) * s.steps_per_epoch + step + 1) / total_steps
        steps_done = (epoch - 1) * s.steps_per_epoch + step + 1
        losses.append(train_step(s, batch_idx, progress, timer, norms, steps_done))
    if norms is not None:
        with timer.part("norm logging"):
            norms[0].summary()
            norms[1].summary()
    synchronize(s.device)
    return EpochResult(time.perf_counter() - start, steps * cfg.batch_size, losses)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
