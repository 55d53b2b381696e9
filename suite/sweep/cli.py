"""`normbench sweep SPEC.yaml`: a grid of trials on Ray Tune (local or cluster)."""

from __future__ import annotations

import argparse

from suite.core.errors import ConfigError

DESCRIPTION = """Run a sweep spec (a grid of trials) with Ray Tune.

Without --address a private local Ray runtime is started (never a cluster left
over from an earlier `ray start`); with it (e.g. --address auto inside
`ray job submit`) the sweep joins that cluster, and fails within
--connect-timeout seconds when nothing answers there. Trials with workers > 1
train data-parallel through Ray Train (NCCL on GPU, gloo on CPU); batch_size is
global and lr is scaled linearly with it. Tables (trials, curves, norm_bins) are
rewritten under results/<name>/ as trials report, so a half-finished sweep
already has a usable table."""

EPILOG = """spec keys: name, base (trial config), grid (field -> list of values; method_args.x allowed),
cases (list of override mappings, each crossed with the grid: an arm with its own settings;
a case's own `seeds` list replaces `seeds` for it), seeds, search {num_samples, algorithm
optuna|random, metric, mode, space}, scheduler {type: asha, grace_period, reduction_factor},
tracking {mlflow {uri}, tensorboard {dir}, wandb {mode}},
resources {workers, cpus_per_worker, gpus_per_worker, driver_resources, check_cluster},
storage (dir or s3://...), results_dir, max_concurrent_trials, retries.

exit status: 0 all trials completed (or stopped early by the scheduler), 1 some trial failed (it is in the
table), 2 bad input."""


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Register `sweep` on the `normbench` command's subparsers."""
    parser = subparsers.add_parser(
        "sweep",
        help="run a grid of trials on Ray (local or cluster)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return _add_arguments(parser)


def _add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("spec", help="sweep spec YAML (see examples/sweeps/)")
    parser.add_argument(
        "--address",
        default=None,
        help="Ray cluster address (e.g. auto, ray://host:10001); default: start a local Ray runtime",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="give up on an unreachable --address after this long (default: 60)",
    )
    again = parser.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted sweep: finished trials are "
        "kept, unfinished and failed ones continue from their last checkpoint",
    )
    again.add_argument(
        "--update",
        action="store_true",
        help="run the spec as it is now over a sweep that ran before under this name: finished "
        "trials whose config is unchanged are kept, changed and new ones train, unfinished "
        "ones start over, removed ones leave the tables (their folders stay)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="validate, print the trial grid and the resources, start nothing"
    )
    parser.add_argument("--name", default=None, help="sweep name (overrides the spec's; results/<name>/)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from suite.sweep.runner import run_sweep
    from suite.sweep.spec import load_spec

    spec = load_spec(args.spec, name=args.name)
    if not args.connect_timeout > 0:
        raise ConfigError("--connect-timeout", args.connect_timeout, "a number of seconds > 0")
    outcome = run_sweep(
        spec,
        address=args.address,
        resume=args.resume,
        update=args.update,
        dry_run=args.dry_run,
        connect_timeout_s=args.connect_timeout,
    )
    if outcome is None:
        return 0
    table = outcome.trials
    done = int((table["status"] == "completed").sum()) if len(table) else 0
    stopped = int((table["status"] == "stopped").sum()) if len(table) else 0
    print(
        f"sweep {spec.name}: {done}/{len(table)} trial(s) completed"
        + (f", {stopped} stopped early by the scheduler" if stopped else "")
        + f"; tables in {outcome.results_dir} "
        f"(trials, curves, norm_bins .parquet/.csv); Ray state in {outcome.experiment_path}"
    )
    for _, row in table[~table["status"].isin(["completed", "stopped"])].iterrows() if len(table) else []:
        print(f"  failed: {row['trial_id']}: {row.get('error', '')}")
    return 1 if outcome.num_failed else 0
