"""The one training function every trial runs: locally, or inside Ray workers.

Like a Ray Train training function, it is an ordinary function that reports
metrics and checkpoints through a callback; when torch.distributed is
initialized (Ray's TorchTrainer does that) it trains data-parallel: DDP,
synchronized BatchNorm, the batch sharded by rank, and only rank 0 writes.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from methods import get_method
from methods.distributed import all_reduce_mean_, concat_all_gather_no_grad
from methods.interventions import parse_intervention
from suite import checkpoint as ckpt
from suite import results
from suite.augment import BatchAugment
from suite.backbones import build_backbone
from suite.config import TrialConfig, save_config
from suite.data import DatasetSplits, load_splits
from suite.errors import ConfigError
from suite.evaluate import encode, final_evaluation, knn_metrics
from suite.norms import RunningNormStats
from suite.optim import build_optimizer, lr_at, set_lr
from suite.runtime import (DistContext, autocast_context, epoch_seed, prepare_data_parallel, resolve_device,
                           seed_everything)

EpochCallback = Callable[[dict[str, Any], "Path | None"], None]
NORM_STATS = ("mean", "std", "q05", "q50", "q95")


def build_model(cfg: TrialConfig) -> torch.nn.Module:
    """Backbone + method, with the intervention applied at construction.

    Seeded from the trial seed, so every rank (and every rerun) starts from
    the same weights."""
    seed_everything(cfg.seed)
    method_cls = get_method(cfg.method)
    backbone, feature_dim = build_backbone(cfg.backbone, cfg.image_size, cfg.cifar_stem)
    return method_cls(backbone, feature_dim, method_cls.build_hparams(cfg.method_args), parse_intervention(cfg.intervention))


def load_data(cfg: TrialConfig) -> DatasetSplits:
    splits = load_splits(cfg.dataset, cfg.image_size, imbalance=cfg.imbalance, holdout_classes=cfg.holdout_classes,
                         ood_dataset=cfg.ood_dataset, seed=cfg.seed)
    if cfg.train_limit is not None and cfg.train_limit < len(splits.train_labels):
        # A fixed subset (independent of the trial seed) so seeds compare like with like.
        keep = torch.randperm(len(splits.train_labels), generator=torch.Generator().manual_seed(0))[: cfg.train_limit]
        keep = keep.sort().values
        splits = dataclasses.replace(splits, train_images=splits.train_images[keep], train_labels=splits.train_labels[keep])
    return splits


def place_dataset(images: torch.Tensor, device: torch.device, max_fraction: float = 0.25) -> torch.Tensor:
    """Keep the uint8 training set on the GPU when it fits comfortably (batches
    are then gathered on the device), else in pinned host memory."""
    if device.type != "cuda":
        return images
    free, _ = torch.cuda.mem_get_info(device)
    if images.numel() * images.element_size() <= max_fraction * free:
        return images.to(device)
    return images.pin_memory()


def _summaries(prefix: str, stats: RunningNormStats, ctx: DistContext, device: torch.device) -> dict[str, float]:
    """The epoch's norm statistics over every worker's samples (equal shards)."""
    if ctx.distributed:
        everyone = RunningNormStats()
        everyone.update(concat_all_gather_no_grad(stats.norms().to(device)))
        stats = everyone
    summary = stats.summary(prefix)
    return {f"{prefix}_{s}": summary[f"{prefix}_{s}"] for s in NORM_STATS}


def _is_intermediate_eval_epoch(cfg: TrialConfig, epoch: int) -> bool:
    """kNN during training; the last epoch's kNN comes from the final evaluation."""
    return epoch < cfg.epochs and cfg.eval_every > 0 and epoch % cfg.eval_every == 0


def run_trial(cfg: TrialConfig, trial_dir: Path, *, resume_from: Path | None = None,
              on_epoch_end: EpochCallback | None = None, progress: bool = True,
              device: torch.device | None = None) -> dict[str, Any]:
    """Train, evaluate and record one trial; returns its `trials` row.

    ``resume_from`` is a checkpoint directory: training continues after its
    last finished epoch. A non-finite loss ends the trial with status
    ``failed`` and the reason recorded, not an exception. ``device`` overrides
    ``cfg.device`` where the launcher knows better (Ray Train assigns each
    worker its GPU).
    """
    trial_dir = Path(trial_dir)
    ctx = DistContext.detect()
    device = device if device is not None else resolve_device(cfg.device, ctx)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"

    splits = load_data(cfg)
    per_worker_batch = cfg.batch_size // ctx.world_size
    steps_per_epoch = len(splits.train_labels) // cfg.batch_size
    if steps_per_epoch < 1:
        raise ConfigError("batch_size", cfg.batch_size, f"<= the training set size ({len(splits.train_labels)})")

    method = build_model(cfg).to(device)
    if channels_last:
        method = method.to(memory_format=torch.channels_last)
    model = prepare_data_parallel(method, device) if ctx.distributed else method
    optimizer = build_optimizer(method, cfg.optimizer, cfg.scaled_lr(), cfg.weight_decay, cfg.momentum)
    augmenters = [BatchAugment(spec, splits.mean, splits.std).to(device) for spec in method.view_specs(cfg.image_size)]

    trial_id = cfg.trial_id
    config_row = results.flatten_config(cfg.model_dump())
    state = ckpt.TrainState()
    if resume_from is not None:
        state = ckpt.load(resume_from, method, optimizer, cfg)
    if ctx.is_main:
        trial_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, trial_dir / "config.yaml")
        _write_status(trial_dir, config_row, trial_id, "running", "", state)

    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = steps_per_epoch * cfg.warmup_epochs
    bar = tqdm(total=total_steps, initial=state.epoch * steps_per_epoch, desc=trial_id[:48], unit="step",
               disable=not (progress and ctx.is_main), dynamic_ncols=True)
    train_images = place_dataset(splits.train_images, device)
    failure = ""
    last_ckpt_dir: Path | None = None
    try:
        for epoch in range(state.epoch + 1, cfg.epochs + 1):
            torch.manual_seed(epoch_seed(cfg.seed, epoch, ctx.rank))
            method.on_epoch_start(epoch - 1, cfg.epochs)  # methods count epochs from 0
            order = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch, 0)))
            order = order.to(train_images.device)
            emb_norms, feat_norms = RunningNormStats(), RunningNormStats()
            loss_sum = torch.zeros((), device=device)
            model.train()
            start = epoch_wall_start = time.perf_counter()
            for step in range(steps_per_epoch):
                global_step = (epoch - 1) * steps_per_epoch + step
                set_lr(optimizer, lr_at(global_step, total_steps, warmup_steps, cfg.scaled_lr()))
                batch_idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                batch_idx = batch_idx[ctx.rank * per_worker_batch : (ctx.rank + 1) * per_worker_batch]
                images = train_images[batch_idx].to(device, non_blocking=True)
                views = [aug(images) for aug in augmenters]
                if channels_last:
                    views = [v.contiguous(memory_format=torch.channels_last) for v in views]
                with autocast_context(device, cfg.precision):
                    out = model(views)
                loss = out["loss"]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                method.update_target((global_step + 1) / total_steps)
                loss_sum += loss.detach().float()
                emb_norms.update_vectors(out["embedding"])
                feat_norms.update_vectors(out["features"])
                bar.update(1)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            epoch_time = time.perf_counter() - start
            mean_loss = float(all_reduce_mean_(loss_sum)) / steps_per_epoch
            row = {"trial_id": trial_id, "epoch": epoch, "loss": mean_loss,
                   "lr": lr_at(epoch * steps_per_epoch - 1, total_steps, warmup_steps, cfg.scaled_lr()),
                   **_summaries("emb_norm", emb_norms, ctx, device), **_summaries("feat_norm", feat_norms, ctx, device),
                   "images_per_s": steps_per_epoch * cfg.batch_size / epoch_time, "epoch_time_s": epoch_time}
            row.update({f"knn_top1_k{k}": math.nan for k in cfg.knn_k})
            if not math.isfinite(mean_loss):
                failure = f"non-finite loss ({mean_loss}) in epoch {epoch}"
                state.curves.append(row)
                break
            if _is_intermediate_eval_epoch(cfg, epoch) and ctx.is_main:
                row.update(_knn_now(method, splits, cfg, device, channels_last))
            state.curves.append(row)
            state.epoch, state.train_time_s = epoch, state.train_time_s + epoch_time
            bar.set_postfix(epoch=epoch, loss=f"{mean_loss:.3f}", refresh=False)
            last_ckpt_dir = None
            if ctx.is_main:
                _write_curves(trial_dir, state.curves)
                if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs:
                    last_ckpt_dir = ckpt.save(trial_dir / "checkpoints" / "last", method, optimizer, cfg, state)
            state.wall_time_s += time.perf_counter() - epoch_wall_start
            if on_epoch_end is not None and epoch < cfg.epochs:
                on_epoch_end(dict(row), last_ckpt_dir)
    finally:
        bar.close()

    final = _finish(cfg, ctx, method, splits, device, channels_last, trial_dir, config_row, state, failure)
    if on_epoch_end is not None:
        on_epoch_end({**(state.curves[-1] if state.curves else {}), **final, "done": True}, last_ckpt_dir)
    return final


def _knn_now(method, splits: DatasetSplits, cfg: TrialConfig, device, channels_last: bool) -> dict[str, float]:
    kw = dict(batch_size=cfg.eval_batch_size, device=device, precision=cfg.precision, channels_last=channels_last)
    train = encode(method, splits.train_images, splits.mean, splits.std, **kw)
    test = encode(method, splits.test_images, splits.mean, splits.std, **kw)
    knn = knn_metrics(train, test, splits, cfg.knn_k, cfg.knn_temperature)
    return {k: float(v) for k, v in knn.items() if k.startswith("knn_top1_")}


def _write_curves(trial_dir: Path, curves: list[dict]) -> None:
    results.atomic_write_frame(pd.DataFrame(curves), trial_dir / "curves", formats=("csv",))


def _write_status(trial_dir: Path, config_row: dict, trial_id: str, status: str, error: str, state) -> dict:
    row = {"trial_id": trial_id, "status": status, "error": error, **config_row, "epochs_completed": state.epoch}
    results.write_json(trial_dir / results.RESULT_FILE, row)
    return row


def _finish(cfg, ctx, method, splits, device, channels_last, trial_dir, config_row, state, failure) -> dict:
    """Final evaluation (rank 0) and the trial's row in the tables."""
    last = state.curves[-1] if state.curves else {}
    row: dict[str, Any] = {"trial_id": cfg.trial_id, "status": "failed" if failure else "completed", "error": failure,
                           **config_row}
    row.update({k: last.get(k, math.nan) for k in (f"emb_norm_{s}" for s in NORM_STATS)})
    row.update({k: last.get(k, math.nan) for k in (f"feat_norm_{s}" for s in NORM_STATS)})
    row.update({"epochs_completed": state.epoch, "final_loss": last.get("loss", math.nan),
                "train_time_s": state.train_time_s,
                "images_per_s": state.epoch * (len(splits.train_labels) // cfg.batch_size) * cfg.batch_size
                / state.train_time_s if state.train_time_s > 0 else math.nan})
    if not failure and ctx.is_main:
        eval_start = time.perf_counter()
        metrics, bins, eval_norms = final_evaluation(method, splits, cfg, device, channels_last, cfg.trial_id)
        row.update(metrics)
        row["eval_time_s"] = time.perf_counter() - eval_start
        last.update({k: v for k, v in metrics.items() if k.startswith("knn_top1_")})  # the last epoch's kNN
        results.atomic_write_frame(pd.DataFrame(bins), trial_dir / "norm_bins", formats=("csv",))
        results.atomic_write_frame(eval_norms, trial_dir / Path(results.EVAL_NORMS_FILE).stem, formats=("parquet",))
    if ctx.is_main and state.curves:
        _write_curves(trial_dir, state.curves)  # with the final kNN, or the failed epoch's row
    row["wall_time_s"] = state.wall_time_s + row.get("eval_time_s", 0.0)
    if ctx.is_main:
        results.write_json(trial_dir / results.RESULT_FILE, row)
    if ctx.distributed:
        dist.barrier()
    return row
