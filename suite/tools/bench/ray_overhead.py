"""Per-trial overhead of a Ray Tune sweep trial against calling ``run_trial`` directly, and where it goes.

The same trial configs (one axis: the seed) run directly in this process (after a
warm-up trial: imports, dataset cache) and through the sweep runner (what
``normbench sweep`` calls) on a local Ray runtime with ``max_concurrent_trials: 1``,
so the comparison is per trial, not parallelism. Tune reuses a finished trial's
actor for the next trial of the same resources, so only the first trial of each
concurrent slot starts a process and imports torch. Each sweep trial's
done-marker records when it entered and left the trainable and how long its
imports, ``run_trial`` and its reports to Tune took
(`suite.sweep.trainable.TIMING_KEY`): a warm trial's cost is the time from its
entry to the next trial's entry (Tune's scheduling and the driver's callbacks
are the part not spent in the trainable); the sweep's start (Tune's set-up, the
actor, the imports, cold caches) is the time to the second trial's entry minus a
warm trial. ``ray.init`` is timed apart (once per sweep). The trials use the
tiny ``test_resnet`` whatever ``--backbone`` says: the overhead does not depend
on the model, and a small model keeps it visible.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from statistics import mean

from suite.tools.bench.report import Figure, Report, speedup
from suite.tools.bench.timing import log
from suite.tools.bench.training import run_suite_trial

TRIALS = 5  # the first starts the actor; trials 2-4 give three warm entry-to-entry intervals


def _sweep(spec: dict, seeds: list[int], workdir: Path) -> tuple[float, list[dict]]:
    """(when the sweep started, epoch seconds; each trial's timing record in the order they entered)."""
    from suite.sweep.runner import run_sweep
    from suite.sweep.spec import spec_from_dict
    from suite.sweep.trainable import DONE_MARKER, TIMING_KEY

    spec = {**spec, "name": "bench-ray", "seeds": seeds, "results_dir": str(workdir / "sweep")}
    log_file = workdir / "sweep.log"
    started = time.time()
    with open(log_file, "w") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        outcome = run_sweep(spec_from_dict(spec), quiet=True)
    if outcome is None or outcome.num_failed:  # the log lives in a temporary directory: quote its end
        tail = "\n".join(log_file.read_text().splitlines()[-30:])
        raise RuntimeError(f"a bench sweep trial failed; end of the sweep's output:\n{tail}")
    markers = [json.loads(p.read_text()) for p in (workdir / "sweep").glob(f"*/{DONE_MARKER}")]
    return started, sorted((json.loads(m[TIMING_KEY]) for m in markers), key=lambda t: t["entered_at"])


def measure_ray(report: Report, settings, workdir: Path) -> None:
    import ray

    from suite.config import make_config

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
        "base": base,
        "resources": {"workers": 1, "cpus_per_worker": 1, "gpus_per_worker": gpus},
        "max_concurrent_trials": 1,
        "retries": 0,
    }
    workdir.mkdir(parents=True, exist_ok=True)
    seeds = list(range(1, TRIALS + 1))

    log(f"ray: {TRIALS} direct run_trial calls (after a warm-up trial)")
    run_suite_trial(make_config({**base, "seed": 0}), workdir / "warmup")
    start = time.perf_counter()
    for s in seeds:
        run_suite_trial(make_config({**base, "seed": s}), workdir / "direct" / str(s))
    direct_s = (time.perf_counter() - start) / TRIALS

    log("ray: ray.init (local runtime)")
    start = time.perf_counter()
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - start
    try:
        log(f"ray: normbench sweep of {TRIALS} trials one at a time")
        sweep_started, timings = _sweep(spec, seeds, workdir)
    finally:
        ray.shutdown()
    warm = timings[1:-1]  # trials with a successor (its entry ends their interval), in a reused actor
    warm_s = mean(b["entered_at"] - a["entered_at"] for a, b in zip(timings[1:-1], timings[2:]))
    run_trial_s = mean(t["run_trial_s"] for t in warm)
    report_s = mean(t["report_s"] for t in warm)
    start_s = timings[1]["entered_at"] - sweep_started - warm_s

    group = f"{base['method']}/test_resnet, {base['epochs']} epochs of {base['train_limit']} images, 1 thread"
    report.add(
        "ray",
        group,
        speedup(
            "sweep_trial_s",
            "sweep trial in a reused actor (every trial but a slot's first)",
            warm_s,
            "s",
            "direct_trial_s",
            "run_trial directly",
            direct_s,
            "direct_vs_sweep_ratio",
            higher_is_better=False,
        ),
    )

    def part(key: str, label: str, seconds: float, ratio_key: str) -> None:
        report.add(
            "ray",
            group,
            Figure(key, label, seconds, "s", "direct_trial_s", "run_trial directly", direct_s, ratio_key,
                   seconds / direct_s, "{:.0%}"),
        )  # fmt: skip

    part("run_trial_in_sweep_s", "  of which run_trial in the actor", run_trial_s, "run_trial_share")
    part("report_s", "  of which reports to Tune (checkpoints included)", report_s, "report_share")
    part(
        "tune_and_driver_s",
        "  of which Tune's scheduling and the driver",
        warm_s - run_trial_s - report_s,
        "tune_share",
    )
    part("sweep_start_s", "sweep start beyond one warm trial (Tune, the actor, imports)", start_s, "start_share")
    part("imports_s", "  of which imports in the new actor", timings[0]["imports_s"], "imports_share")
    part("ray_init_s", "ray.init (once per sweep)", init_s, "init_share")
