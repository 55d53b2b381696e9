"""`normbench bench`: every performance figure next to a reference measured in the same process."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from suite.core.cli import FAILED, OK, add_command, csv_list, exit_statuses, say

DESCRIPTION = """Measure the suite's speed and print a table in which every figure stands
next to a reference measured in the same process (read the ratios: absolute
numbers on a shared machine are noisy):

  views       BatchAugment vs per-sample torchvision v2 (tensors) and PIL in a DataLoader
  training    run_trial images/s per method vs a plain PyTorch loop (same model, views, optimizer)
  breakdown   one epoch split into views, forward, backward, optimizer, norm logging,
              plus evaluation and checkpoint (synchronized on GPU)
  evaluation  encode images/s, kNN chunked vs full matrix (time, memory), linear probe vs sklearn
  ray         a sweep trial vs run_trial (skipped under --quick)
  fastpath    torch.compile (not under --quick), foreach/fused optimizer steps, host syncs (CUDA)

--quick uses a tiny model and small sizes (about a minute on 2 CPU cores);
the exit status is 1 if any figure came out missing or not finite."""


EPILOG = exit_statuses("0 every figure measured, 1 a figure missing or not finite, 2 bad input")


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Register `bench` on the `normbench` command's subparsers."""
    parser = add_command(
        subparsers,
        "bench",
        help="speed figures, each next to a same-process reference",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, no Ray, no compile (the test suite runs this)"
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where to train and evaluate (default cpu)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    parser.add_argument(
        "--methods", metavar="A,B", help="comma-separated methods to train, e.g. simclr,byol (default: all registered)"
    )
    parser.add_argument("--backbone", help="timm backbone (default resnet10t; test_resnet with --quick)")
    parser.add_argument(
        "--image-size", type=int, metavar="S", help="view side in pixels (default 16, digits upsampled)"
    )
    parser.add_argument(
        "--threads", type=int, metavar="N", help="torch CPU threads (default: torch's, one per core; 1 with --quick)"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from methods import METHODS
    from suite.tools.bench import timing
    from suite.tools.bench.settings import BenchSettings

    timing.QUIET = args.quiet
    settings = BenchSettings.create(
        quick=args.quick,
        device=args.device,
        methods=csv_list(args.methods, "--methods", sorted(METHODS)),
        backbone=args.backbone,
        image_size=args.image_size,
        threads=args.threads,
    )
    report = measure_all(settings)
    print(report.render())
    if args.json:
        report.write_json(Path(args.json))
        print(f"figures written to {args.json}")
    from suite.tools.bench.report import non_finite_figures

    bad = non_finite_figures(report.to_json())
    if bad:
        say("error", "figures missing or not finite: " + ", ".join(bad))
        return FAILED
    return OK


def measure_all(settings):
    """Every part, in the order of the table; returns the Report."""
    import torch

    start = time.perf_counter()
    threads_before = torch.get_num_threads()
    if not settings.threads:
        return _measure_all(settings, start)
    from threadpoolctl import threadpool_limits  # numpy/sklearn BLAS pools too (sklearn reference probe)

    torch.set_num_threads(settings.threads)
    try:
        with threadpool_limits(settings.threads):
            return _measure_all(settings, start)
    finally:
        torch.set_num_threads(threads_before)


def _measure_all(settings, start: float):
    import torch

    from suite.tools.bench import breakdown, evaluation, machine, ray_overhead, speedups, training, views
    from suite.tools.bench.report import Report
    from suite.tools.bench.timing import log
    from suite.trial.train import load_data

    device = torch.device(settings.device)
    report = Report(machine=machine.describe(device), settings=settings.as_dict())
    splits = load_data(settings.trial_config(settings.methods[0]))  # the same subset for every method
    with tempfile.TemporaryDirectory(prefix="normbench-bench-") as tmp:
        workdir = Path(tmp)
        views.measure_views(report, settings, splits, workers=machine.usable_cores())
        views.measure_crop(report, settings, splits)
        trials = training.measure_training(report, settings, splits, workdir)
        breakdown.measure_breakdown(report, settings, splits, trials[settings.methods[0]], workdir)
        evaluation.measure_encode(report, settings, splits)
        evaluation.measure_knn_and_probe(report, settings)
        if settings.quick:
            report.skip("ray", "sweep overhead", "--quick (Ray start-up alone takes most of a minute)")
        else:
            ray_overhead.measure_ray(report, settings, workdir)
        speedups.measure_optimizer_steps(report, settings, splits)
        speedups.measure_compile(report, settings, splits)
        speedups.measure_host_syncs(report, settings, splits)
    report.wall_s = time.perf_counter() - start
    log(f"done in {report.wall_s:.1f} s")
    return report
