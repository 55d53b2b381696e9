"""Per-trial overhead of a Ray Tune sweep against calling run_trial directly.

Runs the same N trial configs (one grid axis: the seed) twice:
  * directly: `suite.train.run_trial` in this process, one after the other;
  * as a sweep: `suite.sweep.run_sweep` on a local Ray runtime, one trial at a
    time (max_concurrent_trials=1) so the comparison is per trial, not parallelism.
A warm-up trial runs first (imports, dataset cache), and Ray's start-up is timed
separately. Prints seconds per trial for both, the overhead per trial, the ratio,
and the time the trials themselves measured (wall_time_s), which separates Ray's
scheduling/reporting/checkpoint-upload cost from training.
With --workers 2 the sweep trials run data-parallel through Ray Train (the
direct run then has no equivalent and uses one process).

    python benchmarks/bench_sweep_overhead.py --trials 4 --epochs 2
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from suite.sweep.grid import expand_grid  # noqa: E402
from suite.sweep.spec import spec_from_dict  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--method", default="simclr")
    ap.add_argument("--backbone", default="test_resnet")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--image-size", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--train-limit", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per trial (and Ray CPUs per worker)")
    ap.add_argument("--workers", type=int, default=1, help="data-parallel workers per sweep trial")
    ap.add_argument("--num-cpus", type=int, default=None, help="logical CPUs of the local Ray runtime")
    args = ap.parse_args()

    import pandas as pd
    import ray

    from suite.sweep.runner import run_sweep
    from suite.train import run_trial

    out = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    base = dict(method=args.method, backbone=args.backbone, dataset=args.dataset, image_size=args.image_size,
                epochs=args.epochs, batch_size=args.batch_size, train_limit=args.train_limit, linear_epochs=10,
                device="cpu", num_threads=args.threads)
    spec = spec_from_dict({"name": "bench", "base": base, "seeds": list(range(1, args.trials + 1)),
                           "resources": {"workers": args.workers, "cpus_per_worker": args.threads},
                           "results_dir": str(out / "ray"), "max_concurrent_trials": 1, "retries": 0})
    trials = expand_grid(spec)
    direct_cfgs = [t.config.model_copy(update={"workers": 1}) for t in trials]

    warm = direct_cfgs[0].model_copy(update={"seed": 0})
    run_trial(warm, out / "warmup", progress=False)

    start = time.perf_counter()
    direct_rows = [run_trial(cfg, out / "direct" / cfg.trial_id, progress=False) for cfg in direct_cfgs]
    direct_s = time.perf_counter() - start

    start = time.perf_counter()
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - start
    try:
        start = time.perf_counter()
        outcome = run_sweep(spec, echo=lambda _: None)
        sweep_s = time.perf_counter() - start
    finally:
        ray.shutdown()

    table = outcome.trials
    n = len(trials)
    inner_direct = sum(r["wall_time_s"] for r in direct_rows) / n
    inner_sweep = float(pd.to_numeric(table["wall_time_s"]).mean())
    print(f"{n} trials of {args.method}/{args.backbone}/{args.dataset} {args.image_size}px, {args.epochs} epochs, "
          f"train_limit {args.train_limit}, {args.threads} thread(s), sweep workers/trial {args.workers}")
    print(f"completed in sweep: {int((table['status'] == 'completed').sum())}/{n}")
    print(f"ray.init (once per sweep):       {init_s:8.2f} s")
    print(f"direct run_trial   per trial:    {direct_s / n:8.2f} s   (trial-measured {inner_direct:.2f} s)")
    print(f"Ray Tune sweep     per trial:    {sweep_s / n:8.2f} s   (trial-measured {inner_sweep:.2f} s)")
    print(f"overhead per trial:              {(sweep_s - direct_s) / n:8.2f} s   ratio sweep/direct {sweep_s / direct_s:.2f}x"
          f"   (with ray.init: {(sweep_s + init_s) / direct_s:.2f}x)")
    print(f"files under {out}")


if __name__ == "__main__":
    main()
