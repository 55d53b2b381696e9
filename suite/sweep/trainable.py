"""What runs inside a Ray Tune trial (Ray's own driver is `suite.sweep.runner`).

The Tune trial function `sweep_trial` runs one `suite.trial.train.run_trial` on the trial's
`ResolvedConfig`, which the driver resolved once and Tune hands over in the trial's
`suite.sweep.grid.TrialItem` (``config["trial"]["resolved"]``): nothing is parsed or validated
again here.

* ``workers == 1``: in the Tune actor itself (no extra processes). Every
  checkpoint `run_trial` writes is reported with ``ray.tune.report``, so a
  retried trial (``FailureConfig(max_failures)``) continues from
  ``ray.tune.get_checkpoint()``. What Ray stores is a reference to the trial's own
  checkpoint (`suite.trial.checkpoint.write_reference`), never a second copy.
* ``workers > 1``: the Tune trial is only a driver (Ray Train V2 pattern, the
  one that replaces the deprecated ``Tuner(TorchTrainer)``): it builds a
  ``TorchTrainer`` whose workers run `run_trial` data-parallel (DDP; NCCL on
  GPU, gloo on CPU) and forwards their reports to Tune through
  ``TuneReportCallback``. Ray Train retries dead workers from
  ``ray.train.get_checkpoint()``; a retried Tune driver re-attaches to the
  same Train run because the run's (storage_path, name) is the trial id.

`batch_size` is global: each of the W workers trains on batch_size / W images
per step and gradients are averaged by DDP, so the optimisation (and the
linear LR scaling ``lr * batch_size / 256``) is that of one process with the
full batch.

Reports carry ``kind``: "epoch" (one per finished epoch: its `curves` row)
or "final" (once, from the `TrialResult` that `run_trial` returns: the
`trials` row, all curves rows and the norm bins), encoded with the project's
one JSON encoder (`suite.core.jsonio.to_json`) and read by
`suite.sweep.tables.SweepTables` on the Tune driver. Nothing is read back
from the trial's files.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from suite.config import ResolvedConfig
    from suite.sweep.grid import TrialItem

DONE_MARKER = "sweep_final.json"
TIMING_KEY = "timing_json"  # in the final report and the done-marker: where the trial's time went


def _load_final(trial_dir: Path) -> dict[str, Any] | None:
    path = trial_dir / DONE_MARKER
    return json.loads(path.read_text()) if path.is_file() else None


def final_payload(result, sweep: str) -> dict[str, Any]:
    """The final report: flat headline numbers for Tune's progress table, the
    full rows as JSON (Tune flattens nested dicts in its own logs)."""
    from suite.core.jsonio import to_json
    from suite.results import schema

    row = {**result.row, schema.SWEEP: sweep}
    last = result.curves[-1] if result.curves else {}
    headline = {k: last[k] for k in (schema.EPOCH, schema.LOSS) if k in last}
    headline.update({k: v for k, v in row.items() if schema.parse_knn(k) is not None})
    return {
        "kind": "final",
        **headline,
        "status": str(row.get(schema.STATUS)),
        "row_json": to_json(row),
        "curves_json": to_json(result.curves),
        "bins_json": to_json(result.norm_bins),
        "class_norms_json": to_json(result.class_norms),
        "final": numeric_metrics(row),
    }


def numeric_metrics(row: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a row, flat: what searchers, schedulers and trackers read
    (a metric absent from an epoch's report was not evaluated in that epoch)."""
    import math

    return {
        k: float(v)
        for k, v in row.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and k != "trial_id"
    }


def _maybe_inject_fault(fault: dict[str, Any] | None, index: int, trial_id: str, epoch: int) -> None:
    """Test hook (spec `_fault_injection`): die like a preempted worker."""
    if not fault or epoch != fault["after_epoch"] + 1:
        return
    if fault.get("trials") is not None and index not in fault["trials"]:
        return
    marker_dir = Path(fault["marker_dir"])
    marker_dir.mkdir(parents=True, exist_ok=True)
    done = len(list(marker_dir.glob(f"{trial_id}.crash*")))
    if done >= fault["times"]:
        return
    (marker_dir / f"{trial_id}.crash{done}").write_text(str(epoch))
    if fault.get("mode") == "raise":
        raise RuntimeError(f"injected fault in trial {trial_id} at epoch {epoch}")
    os._exit(17)


def _run(resolved: ResolvedConfig, sweep: dict[str, Any], index: int, checkpoint, report, device=None) -> None:
    """One trial: per-epoch reports while it trains, then its final result.

    Runs on every rank (Ray Train V2 needs every worker to report the same
    number of times); only rank 0 has checkpoints and writes the done-marker."""
    entered = time.perf_counter()
    from methods.distributed import rank
    from suite.core.jsonio import to_json, write_json
    from suite.trial.train import run_trial

    timing = {
        # Where a sweep trial's time goes (`normbench bench`, section ray): the imports (once per actor
        # process: Tune reuses actors), run_trial itself, the reports to Tune (checkpoints included).
        "entered_at": time.time() - (time.perf_counter() - entered),
        "imports_s": time.perf_counter() - entered,
        "report_s": 0.0,
    }
    plain_report = report

    def report(metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        start = time.perf_counter()
        plain_report(metrics, checkpoint_dir)
        timing["report_s"] += time.perf_counter() - start

    cfg = resolved.config
    trial_dir = Path(sweep["results_dir"]) / cfg.trial_id

    def report_epoch(metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        if rank() == 0:
            _maybe_inject_fault(sweep.get("fault"), index, cfg.trial_id, int(metrics["epoch"]))
        report(
            {
                **numeric_metrics(metrics),
                "kind": "epoch",
                "epoch": metrics["epoch"],
                "loss": metrics["loss"],
                "curve_json": to_json(metrics),
            },
            checkpoint_dir,
        )

    from suite.trial import checkpoint as ckpt

    with contextlib.ExitStack() as stack:
        resume_from = (
            ckpt.follow_reference(Path(stack.enter_context(checkpoint.as_directory())))
            if checkpoint is not None
            else None
        )
        started = time.perf_counter()
        result = run_trial(
            resolved,
            trial_dir,
            report=report_epoch,
            resume_from=resume_from,
            progress=False,
            device=device,
            cpus=assigned_cpus(),
        )
        timing["run_trial_s"] = time.perf_counter() - started - timing["report_s"]
    timing["left_at"] = time.time()
    payload = {**final_payload(result, sweep["name"]), TIMING_KEY: to_json(timing)}
    if rank() == 0:
        write_json(trial_dir / DONE_MARKER, payload)
    report(payload, None)


def reported(report, checkpoint_cls, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
    """``report(metrics, checkpoint=...)`` with a reference to the trial's checkpoint, in a folder that
    lives until Ray has stored its copy (Ray copies the folder while ``report`` runs)."""
    from suite.trial import checkpoint as ckpt

    if checkpoint_dir is None:
        report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory(prefix="normbench-ref-") as folder:
        ckpt.write_reference(Path(folder), checkpoint_dir, int(metrics["epoch"]))
        report(metrics, checkpoint=checkpoint_cls.from_directory(folder))


def assigned_cpus() -> int | None:
    """The CPUs Ray assigned to this worker (its trial's or its Train worker's bundle), rounded
    down to whole threads; None outside a Ray task or actor."""
    import ray

    if not ray.is_initialized():
        return None
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    return max(1, int(cpus)) if cpus else None


def _ray_train_device(device: str):
    """The GPU Ray Train gave this worker (its index in CUDA_VISIBLE_DEVICES
    need not equal the local rank) for the config's ``device``; None lets the config decide."""
    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available():
        from ray.train.torch import get_device

        return get_device()
    return None


def train_worker_loop(loop_config: dict[str, Any]) -> None:
    """Per-worker function of the TorchTrainer (torch.distributed is initialized)."""
    import ray.train

    def report(metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        reported(ray.train.report, ray.train.Checkpoint, metrics, checkpoint_dir)

    trial: TrialItem = loop_config["trial"]
    _run(
        trial["resolved"],
        loop_config["sweep"],
        trial["index"],
        ray.train.get_checkpoint(),
        report,
        device=_ray_train_device(trial["resolved"].config.device),
    )


def _fit_data_parallel(trial: TrialItem, sweep: dict[str, Any]) -> None:
    import ray.train
    import ray.tune
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    worker_bundle = trial["request"].worker_bundle
    use_gpu = worker_bundle.get("GPU", 0) > 0
    trainer = TorchTrainer(
        train_worker_loop,
        train_loop_config={"trial": trial, "sweep": sweep},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            # the world the trial trains in is the resolved config's workers: the one source of it
            num_workers=trial["resolved"].config.workers,
            use_gpu=use_gpu,
            resources_per_worker=worker_bundle,
        ),
        run_config=ray.train.RunConfig(
            # Stable across Tune retries and `--resume`: Train V2 restores the run
            # (and its latest checkpoint) from (storage_path, name).
            name=f"train-{trial['trial_id']}",
            storage_path=sweep["train_storage"],
            callbacks=[TuneReportCallback()],
            failure_config=ray.train.FailureConfig(max_failures=sweep["retries"]),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
    )
    trainer.fit()


def sweep_trial(config: dict[str, Any]) -> None:
    """The Tune trainable: one grid point (``config["trial"]``, a `TrialItem`) of the sweep."""
    import ray.tune

    trial: TrialItem = config["trial"]
    sweep = config["sweep"]
    trial_dir = Path(sweep["results_dir"]) / trial["trial_id"]
    final = _load_final(trial_dir)
    if final is not None:
        # Finished before the sweep driver died (Tune's state was older): hand
        # the recorded result back instead of training again.
        ray.tune.report({**final, "skipped": True})
        return
    if trial["resolved"].config.workers > 1:
        _fit_data_parallel(trial, sweep)
        return

    def report(metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        reported(ray.tune.report, ray.tune.Checkpoint, metrics, checkpoint_dir)

    _run(trial["resolved"], sweep, trial["index"], ray.tune.get_checkpoint(), report)


def tune_resources(config: dict[str, Any]):
    """Per-trial Tune resources (grids may vary `workers`)."""
    from ray.tune import PlacementGroupFactory

    return PlacementGroupFactory([config["trial"]["request"].tune_bundle])


def trial_dirname(trial) -> str:
    """The trial's name and folder: its trial id (Tune calls this before it restores the objects of the
    param space, so it reads the item's plain ``trial_id``)."""
    return trial.config["trial"]["trial_id"]
