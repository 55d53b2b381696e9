"""``normbench simulate``: the paper's norm-dynamics simulations, CSV + PNG + a printed table.

Import-light: the main CLI imports this module to register the command; torch,
pandas and Altair load only when it runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from suite.core.cli import add_command
from suite.core.errors import ConfigError

DEFAULT_OUT = Path("results") / "simulate"
DESCRIPTION = """Reproduce the paper's simulations on free embeddings (no network, CPU, about a minute).

(a) Steps vs initial norm: n=500 pairs of free points in d=20, random directions, all at
    norm r in {0.25, 0.5, 0.75, 1, 2, ..., 10}; plain SGD (lr=10 on the MEAN loss, i.e. a
    per-pair step of 10/500, as in the paper's code; no momentum) on -mean cos(x_i, y_i)
    until the mean cosine exceeds 0.999. Fitted exponent a of steps ~ r^a (theory: 2).
    Variants: weight decay 5e-4, GradScale p=1 and p=2 (theory: a = 2 - p).
(b) Norms vs class frequency: free embeddings of 4 classes drawn with frequencies 1:2:4:8,
    trained with SimCLR's NT-Xent on two noisy views; mean final norm per class
    (the paper: rarer classes end with smaller norms)."""

EPILOG = """writes into --out: steps_vs_norm.csv/.png (one row per variant, r, seed), exponents.csv,
norms_by_class.csv/.png (per class), norms_by_class_seeds.csv (per seed and class).

exit status:
  0 done, 2 bad input (nothing written)."""


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``simulate`` on the main CLI; dispatch with ``args.func(args)``."""
    parser = add_command(
        subparsers,
        "simulate",
        help="the paper's norm-dynamics simulations (free embeddings, CPU)",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"output directory (default: {DEFAULT_OUT})")
    parser.add_argument("--seeds", type=int, default=3, help="random seeds per setting, >= 1 (default: %(default)s)")
    parser.add_argument(
        "--max-steps",
        type=int,
        default=20_000,
        help="SGD step cap per run in (a); a run that hits it is marked 'did not converge' (default: %(default)s)",
    )
    parser.set_defaults(func=run)
    return parser


def validate(args: argparse.Namespace) -> None:
    """Refuse bad input before any work (ConfigError -> exit status 2)."""
    if args.seeds < 1:
        raise ConfigError("--seeds", args.seeds, "an integer >= 1")
    if args.max_steps < 1:
        raise ConfigError("--max-steps", args.max_steps, "an integer >= 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", args.out, "a directory (or a path that does not exist yet)")


def run(args: argparse.Namespace) -> int:
    validate(args)
    import torch
    from tqdm.auto import tqdm

    from suite.tools.simulate import dynamics, report

    # The tensors are tiny: extra threads only add synchronisation (measured ~5x slower on 2 busy cores).
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    runs = len(dynamics.PAPER_VARIANTS) * len(dynamics.PAPER_RADII) * len(seeds)
    with tqdm(total=runs, desc="(a) runs converged or capped", unit="run", disable=args.quiet) as bar:
        steps = dynamics.steps_vs_norm(dynamics.PAPER_RADII, seeds, max_steps=args.max_steps, on_done=bar.update)
    exps = dynamics.exponents(steps)
    with tqdm(total=len(seeds), desc="(b) class-frequency seeds", unit="seed", disable=args.quiet) as bar:
        classes = dynamics.norms_by_class_frequency(seeds=seeds, on_seed=lambda _: bar.update(1))
    paths = report.write_outputs(steps, exps, classes, Path(args.out))
    print(report.format_tables(steps, exps, report.class_summary(classes)))
    print(f"\nwall time {time.perf_counter() - start:.1f} s; files: " + ", ".join(str(p) for p in paths))
    return 0
