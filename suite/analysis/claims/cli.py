"""``normbench claims``: the paper's claims judged on results tables, per method and pooled.

Import-light: the main CLI imports this module to register the command;
pandas and scipy load only when it runs.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from suite.core.cli import add_command, say
from suite.core.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

DESCRIPTION = """Test the paper's claims (Draganov et al., ICML 2025) on one or more results directories
(merged): for every claim one verdict per method and one pooled over methods -- holds, does not
hold, inconclusive, not applicable, not measured or not testable -- with its number, interval and reason.

  C1  norms grow during training without weight decay     (log final / untrained test norm, wd 0 trials)
  C2a the gradient at the embedding is orthogonal to it   (identity: |cos(dL/dz, z)| < 1e-3)
  C2b ... and scales as 1/||z||                           (identity on a fixed batch: dL/dz ||z|| = dL/du)
  C3  larger norms move less on the sphere                (one probe step with the embedding layer scaled by
                                                           a: turn slope -2 on log a; a placebo must miss)
  C4  cut-initialization speeds early convergence         (early effect vs none, paired by seed, on the loss
                                                           and on kNN; arms that pass manipulation, collapse
                                                           and protocol checks)
  C5  GradScale speeds convergence                        (as C4, gradscale arms at the baseline's protocol)
  C6  weight decay limits norm growth                     (final norm, lowest vs highest wd, where the dose acts)
  C7  the norm predicts kNN correctness                   (AUROC trained minus untrained; within classes too)
  C8  out-of-distribution samples have smaller norms      (OOD AUROC trained minus untrained)
  C9  rarer classes have smaller norms                    (long-tailed vs balanced twin, per class)

Units of one seed share its initialization (and arms their baseline), so mean-based tests run over
seed clusters (>= 3 seeds), Holm-adjusted over methods, pooled by random effects; units use the
seeds every arm of a method shares. claims.md states every test in full."""

EPILOG = """writes into --out: claims.csv (claim, measure, method, statement, test, verdict, statistic, value,
ci_lo, ci_hi, p_value, n, n_seeds, evidence, reason; method "all" for the pooled row) and claims.md;
`normbench leaderboard` and `normbench report` show them when claims.csv lies in the results directory.

--page FILE rewrites only the block between FILE's markers (atomically); the docs' reference-run
page is made this way, and a test checks it against the committed tables.

exit status:
  0 written, 2 bad input (a missing directory, no trials table, an unreadable table; nothing written)."""


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``claims`` on the main CLI; dispatch with ``args.func(args)``."""
    parser = add_command(
        subparsers,
        "claims",
        help="the paper's claims judged on results tables, per method",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    parser.add_argument(
        "results_dirs",
        nargs="+",
        metavar="RESULTS_DIR",
        help="results directories holding trials.parquet/.csv (+ curves, class_norms); merged",
    )
    parser.add_argument("--out", default=None, help="output directory (default: the first RESULTS_DIR)")
    parser.add_argument(
        "--page",
        default=None,
        metavar="FILE",
        help="also rewrite the generated block of FILE (between its 'normbench claims --page' "
        "markers) from these verdicts and the trials table",
    )
    parser.add_argument("--pooled", action="store_true", help="print only the pooled rows (files hold every row)")
    parser.set_defaults(func=run)
    return parser


def validate(args: argparse.Namespace) -> None:
    """Refuse bad input before reading anything (ConfigError -> exit status 2)."""
    for d in args.results_dirs:
        path = Path(d)
        if not path.is_dir():
            raise ConfigError("RESULTS_DIR", d, "an existing results directory")
        if not any((path / f"trials{s}").is_file() for s in (".parquet", ".csv")) and not (path / "_parts").is_dir():
            raise ConfigError("RESULTS_DIR", d, "a directory containing trials.parquet or trials.csv")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError("--out", args.out, "a directory (or a path that does not exist yet)")
    if args.page is not None:
        from suite.analysis.claims.block import BEGIN, END

        path = Path(args.page)
        text = path.read_text() if path.is_file() else ""
        if not (0 <= text.find(BEGIN) < text.find(END)):
            raise ConfigError(
                "--page",
                args.page,
                "an existing file containing the 'normbench claims --page' begin and end markers, in that order",
            )


def write_claims(
    results_dirs: Sequence[str | Path], out: str | Path | None = None, page: str | Path | None = None
) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Read the directories, judge every claim and write claims.csv and claims.md into ``out``
    (default: the first directory) and, with ``page``, its generated block; returns (claims, paths).
    Warnings about the input are printed as ``normbench: warning: ...``."""
    from suite.analysis.claims import report
    from suite.analysis.claims.verdicts import evaluate_claims
    from suite.analysis.load import LeaderboardWarning, load_results

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LeaderboardWarning)
        results = load_results(results_dirs)
    for w in caught:
        say("warning", str(w.message))
    claims = evaluate_claims(results.trials, results.curves, results.class_norms)
    for note in claims.attrs.get("notes", []):
        say("warning", note)
    out_dir = Path(out) if out is not None else results.dirs[0]
    paths = report.write_claims(claims, out_dir, [str(d) for d in results.dirs])
    if page is not None:
        from suite.analysis.claims.block import update_page

        update_page(
            Path(page), claims, results.trials, [str(d) for d in results_dirs], None if out is None else str(out)
        )
        paths["page"] = Path(page)
    return claims, paths


def run(args: argparse.Namespace) -> int:
    validate(args)
    from suite.analysis.claims import report

    claims, paths = write_claims(args.results_dirs, args.out, args.page)
    print(report.format_table(claims, methods=not args.pooled))
    print("\nfiles: " + ", ".join(str(p) for p in paths.values()))
    return 0
