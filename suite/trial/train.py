"""The one training function every trial runs: locally, or inside Ray workers.

Like a Ray Train training function, `run_trial` is an ordinary function: it
calls ``report(metrics, checkpoint_dir)`` once per finished epoch and returns
a `TrialResult`. When torch.distributed is initialized (Ray's TorchTrainer
does that) it trains data-parallel: DDP, synchronized BatchNorm, the batch
sharded by rank, and only rank 0 evaluates and writes.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from methods import get_method
from methods.distributed import all_reduce_mean_, concat_all_gather_no_grad
from methods.views import with_overrides
from suite.config import ResolvedConfig, TrialConfig, as_resolved, save_config
from suite.core.errors import ConfigError
from suite.core.machine import available_cpus, cpu_model
from suite.data.splits import DatasetSplits, prepare_splits
from suite.measure.instruments import EmbeddingGradStats, angle_change, probe_indices
from suite.measure.mechanism import gradient_identity_deviation, step_turn_slopes
from suite.measure.norms import RunningNormStats
from suite.results import schema
from suite.results import store as results
from suite.trial import checkpoint as ckpt
from suite.trial.augment import BatchAugment
from suite.trial.backbones import build_backbone, uses_cifar_stem
from suite.trial.batches import BatchSource, place_dataset
from suite.trial.evaluate import EvalSettings, encode, final_evaluation, progress_evaluation, settled_batchnorm
from suite.trial.fastpath import maybe_compile
from suite.trial.optim import build_optimizer, lr_at, lr_sum, set_lr
from suite.trial.progress import TrialProgress
from suite.trial.runtime import (
    DistContext,
    autocast_context,
    epoch_seed,
    fit_threads,
    prepare_data_parallel,
    resolve_device,
    seed_everything,
)

Report = Callable[[dict[str, Any], "Path | None"], None]
CHECKPOINTS = "checkpoints"  # a trial folder's checkpoints (suite.trial.checkpoint: last and previous)
MECHANISM_BATCH = 64  # probe images (per worker) the mechanism checks run on, with views fixed by MECHANISM_SEED
MECHANISM_SEED = 0


@dataclass
class TrialResult:
    """What a trial produced, in memory (also written to its directory)."""

    row: dict[str, Any]  # the `trials` row
    curves: list[dict[str, Any]]  # one row per evaluated / trained epoch (0 = untrained)
    norm_bins: list[dict[str, Any]] = field(default_factory=list)
    class_norms: list[dict[str, Any]] = field(default_factory=list)  # mean test norm per class and vector
    eval_norms: pd.DataFrame | None = None  # per-sample evaluation norms


def build_model(cfg: ResolvedConfig | TrialConfig) -> torch.nn.Module:
    """Backbone + method (from the resolved hyper-parameters), with the intervention applied at
    construction. A `TrialConfig` is resolved first (`suite.config.as_resolved`).

    Seeded from the trial seed, so every rank (and every rerun) starts from
    the same weights."""
    resolved = as_resolved(cfg)
    cfg = resolved.config
    seed_everything(cfg.seed)
    backbone, feature_dim = build_backbone(cfg.backbone, cfg.image_size, cfg.cifar_stem)
    return get_method(cfg.method)(backbone, feature_dim, resolved.hparams, cfg.intervention)


def load_data(cfg: ResolvedConfig | TrialConfig) -> DatasetSplits:
    """The trial's splits, prepared by the dataset layer as the resolved config's data plan says."""
    resolved = as_resolved(cfg)
    return prepare_splits(resolved.data, decode_workers=resolved.config.decode_workers)


@dataclass
class Parts:
    """What a training loop of a config starts from."""

    method: torch.nn.Module  # backbone + heads + loss, intervention applied, on the device
    optimizer: torch.optim.Optimizer
    augmenters: list[BatchAugment]  # one batched view recipe per view, on the device
    notes: list[str]  # what the data made of the config (`data_notes`)


def build_parts(
    cfg: ResolvedConfig | TrialConfig,
    splits: DatasetSplits,
    device: torch.device,
    channels_last: bool,
    compile: bool | None = None,
) -> Parts:
    """Model, optimizer and views for ``cfg`` on ``splits``, built once for every loop that trains them: the
    trainer and the benchmark's plain PyTorch loop (``compile``: its own choice, else ``cfg.compile``)."""
    resolved = as_resolved(cfg)
    cfg = resolved.config
    method = build_model(resolved)
    notes = data_notes(cfg, method, len(splits.train_labels))
    method = method.to(device)
    if channels_last:
        method = method.to(memory_format=torch.channels_last)
    # backbone and heads, in place: parameters and state_dict keys unchanged
    maybe_compile(method, cfg.compile if compile is None else compile)
    optimizer = build_optimizer(method, cfg.optimizer, cfg.scaled_lr(), cfg.weight_decay, cfg.momentum)
    augmenters = [
        BatchAugment(spec, splits.mean, splits.std).to(device)
        for spec in with_overrides(method.view_specs(cfg.image_size), cfg.augment)
    ]
    return Parts(method, optimizer, augmenters, notes)


def data_notes(cfg: TrialConfig, method: torch.nn.Module, num_train: int) -> list[str]:
    """What the data makes of the config, said once at the start and kept in the row's notes: the method's
    own adaptations to the training set's size (`check_train_size`, e.g. MoCo's queue), a k larger than
    the kNN bank (its vote then counts every training image, and the column of that k says so only here),
    and a ViT that sees a single token."""
    notes = list(method.check_train_size(num_train))
    for k in cfg.knn_k:
        if k > num_train:
            notes.append(
                f"knn_k {k} exceeds the {num_train} training images of the kNN bank: {schema.knn(k)} votes with "
                f"all {num_train} of them (k = {num_train})"
            )
    patch = getattr(getattr(method.backbone, "patch_embed", None), "patch_size", None)
    if patch is not None:
        side = patch[0] if isinstance(patch, (tuple, list)) else int(patch)
        tokens = (cfg.image_size // side) ** 2
        if tokens <= 4:
            notes.append(
                f"{cfg.backbone} cuts {cfg.image_size}-pixel images into {tokens} patch token(s) of {side} pixels: "
                "attention has next to nothing to attend over; use a smaller patch or larger images"
            )
    return notes


def planned(cfg: ResolvedConfig | TrialConfig) -> tuple[dict[str, str], list[str]]:
    """What ``--dry-run`` adds to the config: the defaults this machine resolves (device, precision,
    channels-last, threads, the CIFAR stem) and, for the built-in datasets (made in memory in seconds),
    what the data makes of the config (`data_notes`); other datasets are checked when they load."""
    resolved = as_resolved(cfg)
    cfg = resolved.config
    device = resolve_device(cfg.device, DistContext.detect())
    method = build_model(resolved)
    stem = uses_cifar_stem(method.backbone, cfg.image_size, cfg.cifar_stem) if cfg.cifar_stem is None else None
    machine = {
        "cifar_stem": "true" if stem else "false" if stem is not None else "",
        "device": str(device),
        "precision": "bf16"
        if cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
        else "fp32",
        "channels_last": str(cfg.channels_last if cfg.channels_last is not None else device.type == "cuda").lower(),
        "num_threads": str(cfg.num_threads or available_cpus()),
    }
    machine = {k: v for k, v in machine.items() if v}
    if resolved.data.dataset.kind in ("builtin", "synthetic"):
        return machine, data_notes(cfg, method, len(load_data(resolved).train_labels))
    return machine, [f"{cfg.dataset}'s size is known once it loads: its notes come when the trial starts"]


@dataclass
class _Trial:
    """Everything the epochs of one trial share."""

    cfg: TrialConfig
    trial_dir: Path
    ctx: DistContext
    device: torch.device
    channels_last: bool
    splits: DatasetSplits
    method: torch.nn.Module
    model: torch.nn.Module  # what the step calls (DDP-wrapped when distributed)
    optimizer: torch.optim.Optimizer
    augmenters: list[BatchAugment]
    batches: BatchSource  # a step's images on the device: resident, or streamed from the host map
    state: ckpt.TrainState
    config_row: dict[str, Any]
    notes: str = ""  # settings the method adapted to the data (see check_train_size)
    torch_threads: int = 0  # intra-op threads this process trains with
    last_checkpoint: str = ""  # the newest complete checkpoint: "epoch N (path)"

    @property
    def steps_per_epoch(self) -> int:
        return len(self.splits.train_labels) // self.cfg.batch_size

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.cfg.epochs

    @property
    def warmup_steps(self) -> int:
        return self.steps_per_epoch * self.cfg.warmup_epochs

    @property
    def eval_settings(self) -> EvalSettings:
        return EvalSettings(self.cfg.eval_batch_size, self.device, self.cfg.precision, self.channels_last)

    def lr(self, step: int) -> float:
        return lr_at(step, self.total_steps, self.warmup_steps, self.cfg.scaled_lr())


def _setup(
    resolved: ResolvedConfig,
    trial_dir: Path,
    resume_from: Path | None,
    device: torch.device | None,
    cpus: int | None,
    on_note: Callable[[str], None] | None = None,
) -> _Trial:
    cfg = resolved.config
    ctx = DistContext.detect()
    device = device if device is not None else resolve_device(cfg.device, ctx)
    threads = fit_threads(cfg.num_threads, cpus)
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"
    splits = load_data(resolved)
    if len(splits.train_labels) // cfg.batch_size < 1:
        raise ConfigError("batch_size", cfg.batch_size, f"<= the training set size ({len(splits.train_labels)})")
    parts = build_parts(resolved, splits, device, channels_last)
    method, optimizer, augmenters, notes = parts.method, parts.optimizer, parts.augmenters, parts.notes
    model = prepare_data_parallel(method, device) if ctx.distributed else method
    state, resume_note = (
        ckpt.load(resume_from, method, optimizer, cfg) if resume_from is not None else (ckpt.TrainState(), "")
    )
    notes = [*resolved.notes, *notes, *([resume_note] if resume_note else [])]
    trial = _Trial(
        cfg,
        Path(trial_dir),
        ctx,
        device,
        channels_last,
        splits,
        method,
        model,
        optimizer,
        augmenters,
        BatchSource(place_dataset(splits.train_images, device), device, cfg.batch_size // ctx.world_size),
        state,
        results.flatten_config(cfg.model_dump()),
        "; ".join(notes),
        threads,
    )
    if ctx.is_main:
        for note in notes if on_note is not None else []:
            on_note(note)
        trial.trial_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, trial.trial_dir / "config.yaml")
        results.write_result(trial.trial_dir, _base_row(trial, schema.RUNNING, ""))
    return trial


def _base_row(t: _Trial, status: str, error: str) -> dict[str, Any]:
    order = t.splits.frequency_order
    return {
        schema.TRIAL_ID: t.cfg.trial_id,
        schema.STATUS: status,
        schema.ERROR: error,
        schema.NOTES: t.notes,
        **t.config_row,
        schema.EPOCHS_COMPLETED: t.state.epoch,
        schema.LAST_CHECKPOINT: t.last_checkpoint,
        schema.TORCH_THREADS: t.torch_threads,
        schema.TORCH_VERSION: torch.__version__,
        schema.CPU_MODEL: cpu_model(),
        schema.FREQUENCY_ORDER: json.dumps(order) if order is not None else None,
        schema.OOD_SET: t.splits.ood_name,
    }


def _summaries(vector: str, stats: RunningNormStats, t: _Trial) -> dict[str, float]:
    """The epoch's norm statistics over every worker's samples (equal shards)."""
    if t.ctx.distributed:
        everyone = RunningNormStats()
        everyone.update(concat_all_gather_no_grad(stats.norms().to(t.device)))
        stats = everyone
    summary = stats.summary()
    return {schema.train_norm(vector, stat): summary[stat] for stat in schema.TRAIN_NORM_STATS}


def _train_epoch(t: _Trial, epoch: int, bar: TrialProgress) -> dict[str, Any]:
    """One epoch of optimizer steps; returns its curves row (no evaluation)."""
    cfg = t.cfg
    torch.manual_seed(epoch_seed(cfg.seed, epoch, t.ctx.rank))
    t.method.on_epoch_start(epoch - 1, cfg.epochs)  # methods count epochs from 0
    generator = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch, 0))
    order = torch.randperm(len(t.splits.train_labels), generator=generator).to(t.batches.index_device)
    t.batches.reorder(order)
    per_worker = cfg.batch_size // t.ctx.world_size
    emb_norms, feat_norms, grads = RunningNormStats(), RunningNormStats(), EmbeddingGradStats(t.device)
    loss_sum = torch.zeros((), device=t.device)
    t.model.train()
    start = time.perf_counter()
    for step in range(t.steps_per_epoch):
        global_step = (epoch - 1) * t.steps_per_epoch + step
        set_lr(t.optimizer, t.lr(global_step))
        first = step * cfg.batch_size + t.ctx.rank * per_worker  # this rank's share of the step's batch
        images = t.batches.take(first, first + per_worker)
        views = [aug(images) for aug in t.augmenters]
        if t.channels_last:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        with autocast_context(t.device, cfg.precision):
            out = t.model(views)
        grads.watch(out.live_embeddings)
        loss = out.loss
        t.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t.optimizer.step()
        t.method.update_target((global_step + 1) / t.total_steps)
        t.method.after_step(global_step + 1)
        loss_sum += loss.detach().float()
        emb_norms.update_vectors(out.embedding)
        feat_norms.update_vectors(out.features)
        bar.step()
    if t.device.type == "cuda":
        torch.cuda.synchronize(t.device)
    epoch_time = time.perf_counter() - start
    mean_loss = float(all_reduce_mean_(loss_sum)) / t.steps_per_epoch
    return {
        schema.TRIAL_ID: cfg.trial_id,
        schema.EPOCH: epoch,
        schema.LOSS: mean_loss,
        schema.LR: t.lr(epoch * t.steps_per_epoch - 1),
        **_summaries("emb", emb_norms, t),
        **_summaries("feat", feat_norms, t),
        **grads.summary(),
        schema.IMAGES_PER_S: t.steps_per_epoch * cfg.batch_size / epoch_time,
        schema.EPOCH_TIME: epoch_time,
    }


def _progress_row(t: _Trial, controls: bool = False) -> dict[str, Any]:
    """kNN, evaluation-set norms, the probe set's movement on the sphere and the
    mechanism checks, with settled BatchNorm statistics; ``controls`` (epoch 0) adds
    the untrained network's confidence diagnostics. Every worker enters (BatchNorm
    re-estimation is synchronized, the losses of the mechanism checks gather across
    workers); rank 0 measures."""
    s = t.eval_settings
    with settled_batchnorm(t.method, t.splits, t.cfg, s, t.ctx.rank, t.ctx.world_size):
        mechanism = _mechanism_row(t)
        if not t.ctx.is_main:
            return {}
        row, _ = progress_evaluation(t.method, t.splits, t.cfg, s, controls=controls)
        row.update(_probe_movement(t))
        row.update(mechanism)
    return row


def _mechanism_row(t: _Trial) -> dict[str, float]:
    """Claims C2b and C3 checked exactly on a fixed batch (`suite.measure.mechanism`): the same
    probe images and augmented views at every evaluation, drawn without touching training's
    random state. Call with the evaluation's BatchNorm statistics in place, on every worker."""
    images = t.splits.train_images[probe_indices(len(t.splits.train_labels))[:MECHANISM_BATCH]].to(t.device)
    with torch.random.fork_rng(devices=[t.device] if t.device.type == "cuda" else []):
        torch.manual_seed(MECHANISM_SEED)
        views = [aug(images) for aug in t.augmenters]
    if t.channels_last:
        views = [v.contiguous(memory_format=torch.channels_last) for v in views]
    slope, placebo = step_turn_slopes(t.method, views)
    return {
        schema.GRAD_IDENTITY_DEV: gradient_identity_deviation(t.method, views),
        schema.STEP_TURN_SLOPE: slope,
        schema.STEP_TURN_PLACEBO: placebo,
    }


def _probe_movement(t: _Trial) -> dict[str, float]:
    """Mean norm of the fixed probe set's embeddings, and the mean angle they
    turned since the previous evaluation (NaN at the first); call with the
    evaluation's BatchNorm statistics in place."""
    probe_images = t.splits.train_images[probe_indices(len(t.splits.train_labels))]
    now = encode(t.method, probe_images, t.splits.mean, t.splits.std, t.eval_settings).embedding.cpu()
    previous = t.state.probe_embedding
    t.state.probe_embedding = now
    return {
        schema.PROBE_NORM: float(now.norm(dim=1).mean()),
        schema.PROBE_ANGLE: float(angle_change(previous, now).mean()) if previous is not None else math.nan,
    }


def _progress_columns(cfg: TrialConfig) -> list[str]:
    """The columns a progress evaluation fills (kNN, evaluation-set norm summaries, the label-free ranks)."""
    cols = [schema.knn(k) for k in cfg.knn_k] + ([schema.knn(k, "val") for k in cfg.knn_k] if cfg.val_fraction else [])
    cols += list(schema.RANK_COLUMNS)
    return cols + [schema.eval_norm("test", v, stat) for v in schema.VECTORS for stat in schema.PROGRESS_NORM_STATS]


def _evaluates_during_training(cfg: TrialConfig, epoch: int) -> bool:
    """Progress evaluation at epoch 0 and every ``eval_every`` epochs; the last
    epoch's numbers come from the final evaluation."""
    return cfg.eval_every > 0 and epoch < cfg.epochs and epoch % cfg.eval_every == 0


def _checkpoint(t: _Trial, epoch: int) -> Path | None:
    if not t.ctx.is_main:
        return None
    results.atomic_write_frame(pd.DataFrame(t.state.curves), t.trial_dir / "curves", formats=("csv",))
    if epoch % t.cfg.checkpoint_every == 0 or epoch == t.cfg.epochs:
        with ckpt.signals_held():  # a stop right after the save still finds it recorded
            saved = ckpt.save(t.trial_dir / CHECKPOINTS, t.method, t.optimizer, t.cfg, t.state)
            t.last_checkpoint = f"epoch {epoch} ({saved})"
        return saved
    return None


def plan_line(t: _Trial) -> str:
    """What this trial is about to do, in one line: the first thing a user reads while it starts."""
    cfg = t.cfg
    size = cfg.image_size
    if cfg.eval_every <= 0:
        evals = "evaluated once, at the end"
    elif cfg.eval_every >= cfg.epochs:
        evals = "evaluated at epoch 0 (the untrained network) and at the end"
    else:
        evals = f"evaluated at epoch 0 (the untrained network) and every {cfg.eval_every} epoch(s)"
    return (
        f"{cfg.method} on {cfg.dataset}: {len(t.splits.train_labels):,} training and "
        f"{len(t.splits.test_labels):,} test images at {size} px; {cfg.backbone}, {cfg.epochs} epochs of "
        f"{t.steps_per_epoch} steps of {cfg.batch_size} images on {t.device.type} with {t.torch_threads} thread(s); "
        f"{evals} by kNN@{', '.join(map(str, cfg.knn_k))}, plus a linear probe at the end. The line below shows "
        "the time left."
    )


def _train(t: _Trial, report: Report | None, progress: bool) -> str:
    """The epochs still to run; returns the failure reason ("" if none)."""
    cfg = t.cfg
    if progress and t.ctx.is_main and t.state.epoch == 0:
        print(plan_line(t), file=sys.stderr, flush=True)
    if t.state.epoch == 0 and not t.state.curves and cfg.eval_every > 0:
        row = {
            schema.TRIAL_ID: cfg.trial_id,
            schema.EPOCH: 0,
            **_progress_row(t, controls=True),
        }  # untrained (cut-init)
        if t.ctx.is_main:
            t.state.curves.append(row)
    bar = TrialProgress(cfg.trial_id, cfg.epochs, t.steps_per_epoch, t.state.epoch, progress and t.ctx.is_main)
    try:
        for epoch in range(t.state.epoch + 1, cfg.epochs + 1):
            wall_start = time.perf_counter()
            row = _train_epoch(t, epoch, bar)
            row.update({schema.knn(k): math.nan for k in cfg.knn_k})
            row.update({schema.knn(k, "val"): math.nan for k in cfg.knn_k} if cfg.val_fraction > 0 else {})
            if not math.isfinite(row[schema.LOSS]):
                t.state.curves.append(row)
                return f"non-finite loss ({row['loss']}) in epoch {epoch}"
            if _evaluates_during_training(cfg, epoch):
                row.update(_progress_row(t))
            t.state.curves.append(row)
            t.state.epoch, t.state.train_time_s = epoch, t.state.train_time_s + row[schema.EPOCH_TIME]
            bar.epoch(epoch, row[schema.LOSS])
            # the epoch's wall time before its checkpoint, so the state it saves counts it (a resumed
            # trial's wall time never falls below its training time); the save itself is counted after
            t.state.wall_time_s += time.perf_counter() - wall_start
            saving = time.perf_counter()
            checkpoint_dir = _checkpoint(t, epoch)
            t.state.wall_time_s += time.perf_counter() - saving
            if report is not None:
                report(dict(row), checkpoint_dir)
    finally:
        bar.close()
    return ""


def _totals(t: _Trial) -> dict[str, Any]:
    """What the finished epochs add to the row: the last epoch's training norms, the final loss, the times."""
    state = t.state
    last = state.curves[-1] if state.curves else {}
    train_norms = [schema.train_norm(v, stat) for v in ("emb", "feat") for stat in schema.TRAIN_NORM_STATS]
    row = {c: last.get(c, math.nan) for c in train_norms}
    row.update(
        {
            schema.FINAL_LOSS: last.get(schema.LOSS, math.nan),
            schema.TRAIN_TIME: state.train_time_s,
            schema.IMAGES_PER_S: state.epoch * t.steps_per_epoch * t.cfg.batch_size / state.train_time_s
            if state.train_time_s > 0
            else math.nan,
        }
    )
    initial = next((c for c in state.curves if c[schema.EPOCH] == 0), {})
    row.update({schema.knn_init(k): initial.get(schema.knn(k), math.nan) for k in t.cfg.knn_k})
    controlled = [schema.diagnostic(v, d) for v in schema.VECTORS for d in schema.CONTROLLED_DIAGNOSTICS]
    row.update({schema.init_of(c): initial[c] for c in controlled if c in initial})
    row[schema.TRAIN_IMAGES] = len(t.splits.train_labels)
    row[schema.LR_SUM] = lr_sum(t.total_steps, t.warmup_steps, t.cfg.scaled_lr())
    return row


def _finish(t: _Trial, failure: str) -> TrialResult:
    """Final evaluation (rank 0) and the trial's row in the tables."""
    cfg, state = t.cfg, t.state
    last = state.curves[-1] if state.curves else {}
    row = _base_row(t, schema.FAILED if failure else schema.COMPLETED, failure)
    row.update(_totals(t))
    result = TrialResult(row, state.curves)
    if not failure:
        eval_start = time.perf_counter()
        s = t.eval_settings
        with settled_batchnorm(t.method, t.splits, cfg, s, t.ctx.rank, t.ctx.world_size):
            mechanism = _mechanism_row(t)
            if t.ctx.is_main:
                last.update(mechanism)
                final = final_evaluation(t.method, t.splits, cfg, s, cfg.trial_id)
                result.norm_bins, result.class_norms, result.eval_norms = (
                    final.norm_bins,
                    final.class_norms,
                    final.eval_norms,
                )
                row.update(final.metrics)
                # The last epoch's progress numbers come from the final evaluation.
                progress_columns = set(_progress_columns(cfg))
                last.update({k: v for k, v in final.metrics.items() if k in progress_columns})
                if cfg.eval_every > 0:
                    last.update(_probe_movement(t))
            row[schema.EVAL_TIME] = time.perf_counter() - eval_start
    row[schema.WALL_TIME] = state.wall_time_s + row.get(schema.EVAL_TIME, 0.0)
    if t.ctx.is_main:
        _write(t.trial_dir, result)
        if not failure:
            ckpt.compact(t.trial_dir / CHECKPOINTS)  # a completed trial keeps the model only (export reads it)
    if t.ctx.distributed:
        torch.distributed.barrier()
    return result


def _write(trial_dir: Path, result: TrialResult) -> None:
    results.write_trial_files(
        trial_dir, result.row, result.curves, result.norm_bins, result.class_norms, result.eval_norms
    )


def run_trial(
    cfg: ResolvedConfig | TrialConfig,
    trial_dir: Path,
    *,
    report: Report | None = None,
    resume_from: Path | None = None,
    progress: bool = True,
    device: torch.device | None = None,
    cpus: int | None = None,
    on_note: Callable[[str], None] | None = None,
) -> TrialResult:
    """Train, evaluate and record one trial.

    ``cfg`` is the trial's `ResolvedConfig` (`suite.config.resolve_config`, what the command line and the
    sweep workers pass): nothing is validated again. A `TrialConfig` (`make_config`, the Python API's
    short form) is resolved here first (`suite.config.as_resolved`): the same values and trial id, but
    without the notes of its first resolution that depended on what was left unset (a shortened
    warm-up); pass the `ResolvedConfig` to keep them. In a torch.distributed world (Ray Train's
    workers) the world is ``cfg.workers`` processes: the launcher builds it from that one value.

    ``report(metrics, checkpoint_dir)`` is called once per finished epoch with
    its curves row (``checkpoint_dir`` is None on ranks > 0 and between
    checkpoints). ``resume_from`` is a checkpoint directory: training
    continues after its last finished epoch. A non-finite loss ends the trial
    with status ``failed`` and the reason recorded, not an exception.
    ``device`` overrides ``cfg.device`` where the launcher knows better (Ray
    Train assigns each worker its GPU); ``cpus`` is how many CPUs this process
    holds (a Ray trial's resources; default: the CPUs the process may run on),
    which sets torch's threads unless ``cfg.num_threads`` does. ``on_note`` hears
    once, at the start, every value the suite changed on the user's behalf (the resolved
    config's notes, then what the data made of it; also in the row's ``notes``).

    Stopped by SIGINT (``KeyboardInterrupt``) or `TrialInterrupted` (SIGTERM), the
    trial records status ``interrupted`` with its epochs and last checkpoint, then
    re-raises; stopped by its environment (`FAULTS`: a full disk, out of memory, an
    unreadable checkpoint) it records ``failed`` and raises `TrialFault` with a
    one-line message. A checkpoint is replaced only once its successor is complete.
    """
    resolved = as_resolved(cfg)
    try:
        trial = _setup(resolved, trial_dir, resume_from, device, cpus, on_note)
    except FAULTS as exc:  # an unreadable checkpoint, a full disk before the first epoch
        message = fault_message(exc)
        _record_setup_failure(resolved.config, trial_dir, message)
        raise TrialFault(message) from exc
    try:
        failure = _train(trial, report, progress)
        return _finish(trial, failure)
    except (KeyboardInterrupt, TrialInterrupted) as exc:
        signal_name = exc.signal_name if isinstance(exc, TrialInterrupted) else "SIGINT"
        _record(
            trial,
            schema.INTERRUPTED,
            f"stopped by {signal_name} after epoch {trial.state.epoch}; continue with "
            f"--resume (last checkpoint: {trial.last_checkpoint or 'none'})",
        )
        raise
    except FAULTS as exc:
        message = fault_message(exc, trial)
        _record(trial, schema.FAILED, message)
        raise TrialFault(message) from exc


class TrialInterrupted(Exception):
    """A stop signal (SIGTERM, what schedulers and spot instances send) arrived during a trial."""

    def __init__(self, signal_name: str = "SIGTERM") -> None:
        super().__init__(f"stopped by {signal_name}")
        self.signal_name = signal_name


class TrialFault(RuntimeError):
    """The environment stopped the trial (full disk, out of memory, unreadable checkpoint); the message
    says in one line what happened, where, and what to do; the row records it with status ``failed``."""


FAULTS = (OSError, MemoryError, torch.OutOfMemoryError, ckpt.CheckpointUnreadable)


def fault_message(exc: BaseException, t: _Trial | None = None) -> str:
    """One line: what happened, to which file, and what to do next."""
    where = f" in epoch {t.state.epoch + 1}" if t is not None else ""
    keep = f"; the last complete checkpoint is {t.last_checkpoint}" if t is not None and t.last_checkpoint else ""
    if isinstance(exc, ckpt.CheckpointUnreadable):
        return f"{exc}; start over with --overwrite"
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return (
            f"out of memory{where} ({type(exc).__name__}): lower batch_size or eval_batch_size, or use a smaller "
            f"backbone{keep}"
        )
    errno_name = {
        28: "no space left on the device",
        27: "file too large for this file system or limit",
        13: "permission denied",
        30: "read-only file system",
        122: "disk quota exceeded",
    }
    what = errno_name.get(getattr(exc, "errno", None), exc.strerror or type(exc).__name__)
    target = f" writing {exc.filename}" if getattr(exc, "filename", None) else ""
    return f"{what}{target}{where}: free space (or fix the permissions), then continue with --resume{keep}"


def _record_setup_failure(cfg: TrialConfig, trial_dir: Path, message: str) -> None:
    """Best effort: the row of a trial that could not start (an earlier row keeps its numbers)."""
    try:
        row = results.read_result(trial_dir) or {
            schema.TRIAL_ID: cfg.trial_id,
            **results.flatten_config(cfg.model_dump()),
        }
    except (OSError, ValueError):
        row = {schema.TRIAL_ID: cfg.trial_id}
    row.update({schema.STATUS: schema.FAILED, schema.ERROR: message})
    try:
        results.write_result(trial_dir, row)
    except OSError:
        pass


def _record(t: _Trial, status: str, reason: str) -> None:
    """Best effort: the row of a trial that stopped early (on a full disk even this write may fail)."""
    if not t.ctx.is_main:
        return
    try:
        results.write_result(t.trial_dir, {**_base_row(t, status, reason), **_totals(t)})
    except OSError:
        pass
