"""``normbench report``: one self-contained HTML page of results directories.

Import-light: the main CLI imports this module to register the command; pandas,
Altair and the chart library load only when it runs.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from suite.core.cli import add_command, exit_statuses
from suite.core.errors import ConfigError

PAGE = "report.html"
DESCRIPTION = """Write one self-contained HTML page of one or more results directories (merged): the
leaderboard's headline table (sortable by any column, filterable by text and per setting, column
groups to show or hide), each group's curves per seed when its row is clicked (loss, kNN, embedding
norm, gradient at the embedding, probe angle; the untrained network at epoch 0 marked), its settings
and trial folders, a forest plot of the change against 'none' per intervention, and the verdicts of
claims.csv (`normbench claims`) each linked to the figure behind it.

The page opens from file:// with no network: styles, data, and the chart library (Vega-Lite through
Altair, with vega-embed) are inside it. `normbench leaderboard` writes the same page as
leaderboard.html."""
EPILOG = exit_statuses(
    "0 written (the page's path is printed)",
    "2 bad input (a missing or corrupt results directory, an unknown --metric or --group-by column, an --out "
    "that is a directory); nothing is written then",
)


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``report`` on the main CLI; dispatch with ``args.func(args)``."""
    parser = add_command(
        subparsers,
        "report",
        help="one self-contained HTML page: leaderboard, curves, claims",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    parser.add_argument(
        "results_dirs",
        nargs="+",
        metavar="RESULTS_DIR",
        help="results directories holding trials.parquet/.csv (+ curves, norm_bins, class_norms, claims.csv)",
    )
    parser.add_argument(
        "--out", default=None, metavar="FILE", help=f"the page to write (default: FIRST_RESULTS_DIR/{PAGE})"
    )
    parser.add_argument(
        "--metric",
        default=None,
        help="outcome column to rank by, e.g. knn_top1_k200, linear_top1 (default: the kNN top-1 with the "
        "trials' first knn_k)",
    )
    parser.add_argument(
        "--group-by",
        default=None,
        help="comma-separated grouping columns (default: dataset,backbone,method,intervention,epochs + science "
        "columns that vary)",
    )
    parser.add_argument(
        "--all-trials",
        action="store_true",
        help="search sweeps: show every trial (default: per search cell only the trial chosen on validation)",
    )
    parser.set_defaults(func=run)
    return parser


def output_path(out: str | None, first_dir: Path) -> Path:
    """The page's path: ``--out`` (a file, never an existing directory) or FIRST_RESULTS_DIR/report.html."""
    if out is None:
        return Path(first_dir) / PAGE
    path = Path(out)
    if path.is_dir():
        raise ConfigError("--out", out, "a file path for the page (this is a directory)", hint=f"e.g. {path / PAGE}")
    return path


def run(args: argparse.Namespace) -> int:
    """Exit code: 0 written; bad input raises ConfigError (the main CLI prints it and exits 2)."""
    group_by = [c.strip() for c in args.group_by.split(",") if c.strip()] if args.group_by else None
    if args.group_by is not None and not group_by:
        raise ConfigError("--group-by", args.group_by, "a comma-separated list of grouping columns")
    if args.out is not None:
        output_path(args.out, Path("."))  # refuse a directory before reading anything
    from suite.analysis.claims.report import load_claims
    from suite.analysis.leaderboard.board import load_board
    from suite.analysis.load import LeaderboardWarning
    from suite.analysis.report.page import write_page

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LeaderboardWarning)
        results, board, _ = load_board(args.results_dirs, args.metric, group_by, args.all_trials)
        claims = load_claims(results.dirs)
        path = write_page(results, board, claims, output_path(args.out, results.dirs[0]))
    for w in caught:
        if issubclass(w.category, LeaderboardWarning):
            print(f"normbench: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    print(path)
    return 0
