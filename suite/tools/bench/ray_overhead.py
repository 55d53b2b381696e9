"""Per-trial overhead of a Ray Tune sweep trial against calling ``run_trial`` directly.

The same N trial configs (one axis: the seed) run twice, one at a time: directly
in this process, and through the sweep runner (what ``normbench sweep`` calls) on a local Ray
runtime with ``max_concurrent_trials: 1``, so the comparison is per trial, not
parallelism. A warm-up trial runs first (imports, dataset cache) and
``ray.init`` is timed apart. The trial-measured ``wall_time_s`` of both sides
separates Ray's scheduling, reporting and checkpoint upload from training. The
trials use the tiny ``test_resnet`` whatever ``--backbone`` says: the overhead
does not depend on the model, and a small model keeps it visible.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pandas as pd

from suite.tools.bench.report import Figure, Report, speedup
from suite.tools.bench.timing import log
from suite.tools.bench.training import run_suite_trial

TRIALS = 3


def measure_ray(report: Report, settings, workdir: Path) -> None:
    import ray

    from suite.config import make_config
    from suite.sweep.runner import run_sweep
    from suite.sweep.spec import spec_from_dict

    workdir = Path(workdir) / "ray"
    base = dict(
        method=settings.methods[0],
        backbone="test_resnet",
        dataset=settings.dataset,
        image_size=settings.image_size,
        epochs=2,
        batch_size=64,
        train_limit=512,
        linear_epochs=10,
        device=settings.device,
        num_threads=1,
    )
    gpus = 1 if settings.device == "cuda" else 0
    spec = {
        "name": "bench-ray",
        "base": base,
        "seeds": list(range(1, TRIALS + 1)),
        "resources": {"workers": 1, "cpus_per_worker": 1, "gpus_per_worker": gpus},
        "results_dir": str(workdir / "sweep"),
        "max_concurrent_trials": 1,
        "retries": 0,
    }
    workdir.mkdir(parents=True, exist_ok=True)

    log(f"ray: {TRIALS} direct run_trial calls (after a warm-up trial)")
    run_suite_trial(make_config({**base, "seed": 0}), workdir / "warmup")
    start = time.perf_counter()
    direct_rows = [
        run_suite_trial(make_config({**base, "seed": s}), workdir / "direct" / str(s))[0] for s in spec["seeds"]
    ]
    direct_s = (time.perf_counter() - start) / TRIALS

    log("ray: ray.init (local runtime)")
    start = time.perf_counter()
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - start
    log_file = workdir / "sweep.log"
    try:
        log(f"ray: normbench sweep, {TRIALS} trials one at a time")
        start = time.perf_counter()
        with open(log_file, "w") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            outcome = run_sweep(spec_from_dict(spec))
        sweep_s = (time.perf_counter() - start) / TRIALS
    finally:
        ray.shutdown()
    if outcome is None or outcome.num_failed:  # the log lives in a temporary directory: quote its end
        tail = "\n".join(log_file.read_text().splitlines()[-30:])
        raise RuntimeError(f"a bench sweep trial failed; end of the sweep's output:\n{tail}")
    table = pd.read_csv(workdir / "sweep" / "trials.csv")
    inner_sweep = float(pd.to_numeric(table["wall_time_s"]).mean())
    inner_direct = sum(float(r["wall_time_s"]) for r in direct_rows) / TRIALS

    group = f"{base['method']}/test_resnet, {base['epochs']} epochs of {base['train_limit']} images, 1 thread"
    report.add(
        "ray",
        group,
        speedup(
            "sweep_trial_s",
            "sweep trial (normbench sweep, per trial)",
            sweep_s,
            "s",
            "direct_trial_s",
            "run_trial directly",
            direct_s,
            "direct_vs_sweep_ratio",
            higher_is_better=False,
        ),
    )
    report.add(
        "ray",
        group,
        Figure(
            "overhead_per_trial_s",
            "Ray overhead per trial (sweep - direct)",
            sweep_s - direct_s,
            "s",
            "direct_trial_s",
            "run_trial directly",
            direct_s,
            "overhead_share",
            (sweep_s - direct_s) / direct_s,
            "{:.0%}",
        ),
    )
    report.add(
        "ray",
        group,
        speedup(
            "sweep_trial_measured_s",
            "trial-measured wall_time_s in the sweep",
            inner_sweep,
            "s",
            "direct_trial_measured_s",
            "trial-measured wall_time_s direct",
            inner_direct,
            "measured_ratio",
            higher_is_better=False,
        ),
    )
    report.add(
        "ray",
        group,
        Figure(
            "ray_init_s",
            "ray.init (once per sweep)",
            init_s,
            "s",
            "direct_trial_s",
            "run_trial directly",
            direct_s,
            "init_share",
            init_s / direct_s,
            "{:.0%}",
        ),
    )
