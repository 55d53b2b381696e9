"""`normbench bench`: every performance figure next to a reference measured in the same process."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from suite.core.cli import FAILED, OK, add_command, csv_list, exit_statuses, say
from suite.tools.bench.report import SECTIONS

DESCRIPTION = """Measure the suite's speed and print a table in which every figure stands
next to a reference measured in the same process (read the ratios: absolute
numbers on a shared machine are noisy). The sections (--sections picks some):

  views           BatchAugment vs per-sample torchvision v2 (tensors) and PIL in a DataLoader
  training        run_trial images/s per method vs a plain PyTorch loop (same model, views, optimizer),
                  alternated over rounds: each ratio is the median with its min and max
  breakdown       one epoch split into views, forward, backward, optimizer, norm logging,
                  plus evaluation and checkpoint (synchronized on GPU)
  evaluation      encode images/s, kNN chunked vs full matrix (time, memory), linear probe vs sklearn
  ray             a sweep trial vs run_trial (skipped under --quick)
  sweep_scale     the sweep driver's tables fed synthetic reports at 100, 1,000 and 10,000 trials:
                  time per report at each size, and its growth (target <= 2)
  analysis_scale  normbench claims and leaderboard on 1,000 and 10,000 synthetic trials
                  (the reference run replicated): seconds and growth per trial (linear: 1)
  data_scale      a trial's private memory on cached splits of 10k, 100k and 1M images (and of each
                  of two data-parallel ranks): its growth as a share of the decoded growth (target
                  <= 0.1), and an epoch from the memory map vs an in-memory copy (target >= 0.9)
  fastpath        torch.compile (not under --quick), foreach/fused optimizer steps, host syncs (CUDA)

--quick uses a tiny model and small sizes (about a minute on 2 CPU cores);
--device cuda trains on digits-synth (50,000 images, ~195 steps per epoch) unless
--dataset says otherwise. The exit status is 1 if any figure came out missing
or not finite."""


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
    parser.add_argument(
        "--sections",
        metavar="A,B",
        help="comma-separated sections to measure, e.g. sweep_scale,analysis_scale (default: all; "
        "names: " + ", ".join(SECTIONS) + ")",
    )
    parser.add_argument(
        "--dataset",
        help="dataset to train on (default digits; digits-synth with --device cuda, for enough steps per epoch)",
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
        sections=csv_list(args.sections, "--sections", SECTIONS),
        dataset=args.dataset,
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


DATA_SECTIONS = ("views", "training", "breakdown", "evaluation", "fastpath")  # the ones that load the dataset


def _measure_all(settings, start: float):
    import torch

    from suite.tools.bench import machine
    from suite.tools.bench.report import Report
    from suite.tools.bench.timing import log

    device = torch.device(settings.device)
    report = Report(machine=machine.describe(device), settings=settings.as_dict())
    chosen = set(settings.sections)
    splits = None
    if chosen & set(DATA_SECTIONS):
        from suite.trial.train import load_data

        splits = load_data(settings.trial_config(settings.methods[0]))  # the same subset for every method
    with tempfile.TemporaryDirectory(prefix="normbench-bench-") as tmp:
        workdir = Path(tmp)
        trials = {}
        for section in settings.sections:
            trials = _measure_section(section, report, settings, splits, workdir, trials)
    report.wall_s = time.perf_counter() - start
    log(f"done in {report.wall_s:.1f} s")
    return report


def _measure_section(section: str, report, settings, splits, workdir: Path, trials: dict) -> dict:
    """One section's figures; returns the training section's trials (the breakdown reads them)."""
    from suite.tools.bench import machine

    if section == "views":
        from suite.tools.bench import views

        views.measure_views(report, settings, splits, workers=machine.available_cpus())
        views.measure_crop(report, settings, splits)
    elif section == "training":
        from suite.tools.bench import training

        trials = training.measure_training(report, settings, splits, workdir)
    elif section == "breakdown":
        from suite.tools.bench import breakdown
        from suite.tools.bench.training import run_suite_trial

        name = settings.methods[0]
        if name not in trials:  # --sections without training: the breakdown's own trainer run
            trials = {name: run_suite_trial(settings.trial_config(name), workdir / "trials" / f"{name}-breakdown")}
        breakdown.measure_breakdown(report, settings, splits, trials[name], workdir)
    elif section == "evaluation":
        from suite.tools.bench import evaluation

        evaluation.measure_encode(report, settings, splits)
        evaluation.measure_knn_and_probe(report, settings)
    elif section == "ray":
        if settings.quick:
            report.skip("ray", "sweep overhead", "--quick (Ray start-up alone takes most of a minute)")
        else:
            from suite.tools.bench import ray_overhead

            ray_overhead.measure_ray(report, settings, workdir)
    elif section == "sweep_scale":
        from suite.tools.bench.sweep_scale import measure_sweep_scale

        measure_sweep_scale(report, settings, workdir)
    elif section == "analysis_scale":
        from suite.tools.bench.analysis_scale import measure_analysis_scale

        measure_analysis_scale(report, settings, workdir)
    elif section == "data_scale":
        from suite.tools.bench.data_scale import measure_data_scale

        measure_data_scale(report, settings, workdir)
    elif section == "fastpath":
        from suite.tools.bench import speedups

        speedups.measure_optimizer_steps(report, settings, splits)
        speedups.measure_compile(report, settings, splits)
        speedups.measure_host_syncs(report, settings, splits)
    else:  # SECTIONS and this dispatch must name the same sections
        raise ValueError(f"unknown bench section {section!r}")
    return trials
