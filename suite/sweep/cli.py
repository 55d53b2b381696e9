"""`normbench sweep SPEC.yaml`: a grid of trials on Ray Tune (local or cluster)."""

from __future__ import annotations

import argparse
import shlex

from suite.core.cli import FAILED, INTERRUPTED_SIGINT, INTERRUPTED_SIGTERM, OK, add_command, say
from suite.core.errors import ConfigError
from suite.results import schema

DESCRIPTION = """Run a sweep spec (a grid of trials) with Ray Tune.

Without --address a private local Ray runtime is started (never a cluster left
over from an earlier `ray start`); with it (e.g. --address auto inside
`ray job submit`) the sweep joins that cluster, and fails within
--connect-timeout seconds when nothing answers there. Trials with workers > 1
train data-parallel through Ray Train (NCCL on GPU, gloo on CPU); batch_size is
global and lr is scaled linearly with it. Tables (trials, curves, norm_bins) are
kept under results/<name>/ as trials report: a half-finished sweep's tables
read whole (`normbench leaderboard` and `normbench claims` take them as they are)."""

EPILOG = """spec keys: name, base (trial config), grid (field -> list of values; method_args.x and augment.x
allowed), cases (list of override mappings, each crossed with the grid: an arm with its own settings;
a case's own `seeds` list replaces `seeds` for it), seeds, search {num_samples, algorithm
optuna|random, metric, mode, space}, scheduler {type: asha, grace_period, reduction_factor},
tracking {mlflow: URI | {uri, experiment}, tensorboard: DIR | {dir}, wandb: offline|online | {mode, ...}},
resources {workers, cpus_per_worker, gpus_per_worker, driver_resources, check_cluster},
storage (dir or s3://...), results_dir, max_concurrent_trials, retries.

Ctrl-C (or SIGTERM) stops the sweep: its tables are written, unfinished trials are recorded as
interrupted, and the command that continues it is printed; a second Ctrl-C stops at once.

exit status:
  0   every trial completed (or was stopped early by the scheduler)
  1   some trial failed (it is in the table with its error)
  2   bad input (nothing started)
  130 stopped by SIGINT, 143 by SIGTERM: continue with --resume"""


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Register `sweep` on the `normbench` command's subparsers."""
    parser = add_command(
        subparsers,
        "sweep",
        help="run a grid of trials on Ray (local or cluster)",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
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
        help="continue an interrupted sweep: finished trials are kept, unfinished and failed ones "
        "continue from their last checkpoint",
    )
    again.add_argument(
        "--update",
        action="store_true",
        help="run the spec as it is now over a sweep that ran before under this name: finished "
        "trials whose science is unchanged are kept (run settings may differ), changed and new "
        "ones train, unfinished ones start over, removed ones leave the tables (their folders "
        "stay)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="make every check the real run makes, print the trial grid and the resources, start nothing",
    )
    parser.add_argument("--name", default=None, help="sweep name (overrides the spec's; results/<name>/)")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show Ray's own output (status tables, worker logs) instead of the progress line",
    )
    parser.set_defaults(func=run)
    return parser


def _resume_command(args: argparse.Namespace) -> str:
    argv = [a for a in args.argv if a not in ("--resume", "--update", "--dry-run")]
    return shlex.join(["normbench", *argv, "--resume"])


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
        verbose=args.verbose,
        quiet=args.quiet,
        resume_command=_resume_command(args),
    )
    if outcome is None:
        return OK
    table = outcome.trials
    statuses = table[schema.STATUS].value_counts().to_dict() if len(table) else {}
    counts = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items())) or "no trials"
    if outcome.summary and not args.quiet:
        print(outcome.summary)
    print(
        f"sweep {spec.name}: {counts}; tables in {outcome.results_dir} (trials, curves, norm_bins, class_norms; "
        f".parquet and .csv)"
        + (f"; Ray's output in {outcome.log_file}" if outcome.log_file and not args.verbose else "")
    )
    if outcome.interrupted:
        say(
            "interrupted",
            f"sweep {spec.name} stopped by {outcome.interrupted}; unfinished trials are recorded as "
            f"interrupted; continue with: {_resume_command(args)}",
        )
        return INTERRUPTED_SIGTERM if outcome.interrupted == "SIGTERM" else INTERRUPTED_SIGINT
    return FAILED if outcome.num_failed else OK
