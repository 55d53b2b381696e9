"""``normbench leaderboard`` (also ``python -m suite.analysis.leaderboard``).

Kept import-light: the main CLI imports this module to register the
subcommand, so pandas/matplotlib load only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from suite.core.errors import ConfigError

FORMATS = ("md", "csv", "tex")
DESCRIPTION = (
    "Aggregate one or more results directories (local trials and/or sweeps) into a leaderboard: one row per "
    "group of otherwise-equal settings, ranked by the metric; mean ± std over seeds, Δ against the 'none' "
    "intervention with its interval, the gain over the untrained network, which arm reaches its baseline's "
    "target first, norm diagnostics, failed and interrupted trials."
)
EPILOG = "exit status: 0 written, 2 bad input (unreadable or corrupt results, a bad option); nothing is written then."


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "results_dirs",
        nargs="+",
        metavar="RESULTS_DIR",
        help="results directories holding trials.parquet/.csv (merged)",
    )
    parser.add_argument("--out", default=None, help="output directory (default: FIRST_RESULTS_DIR/leaderboard)")
    parser.add_argument("--formats", default=",".join(FORMATS), help=f"comma-separated subset of {','.join(FORMATS)}")
    parser.add_argument(
        "--metric",
        default=None,
        help="outcome column to rank by, e.g. knn_top1_k200, linear_top1 (default: the kNN top-1 "
        "with the trials' first knn_k)",
    )
    parser.add_argument(
        "--group-by",
        default=None,
        help="comma-separated grouping columns (default: dataset,backbone,method,intervention,epochs "
        "+ science columns that vary)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures of the Markdown file")
    parser.add_argument(
        "--all-trials",
        action="store_true",
        help="search sweeps: show every trial (default: per search cell only the trial chosen by the "
        "validation metric, reported with its test metrics)",
    )
    return parser


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``leaderboard`` on the main CLI; dispatch with ``args.func(args)``."""
    parser = subparsers.add_parser(
        "leaderboard", help="aggregate results into a leaderboard", description=DESCRIPTION, epilog=EPILOG
    )
    configure_parser(parser)
    parser.set_defaults(func=run)
    return parser


def parse_formats(text: str) -> list[str]:
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError("--formats", text, FORMATS)
    return list(dict.fromkeys(formats))


def load_board(
    results_dirs: Sequence[str | Path],
    metric: str | None = None,
    group_by: Sequence[str] | None = None,
    all_trials: bool = False,
):
    """(results, leaderboard, search selection) of the directories: what every leaderboard format shows.

    Search sweeps: per search cell only the trial chosen on validation (see
    `suite.analysis.leaderboard.search`) unless ``all_trials``."""
    import dataclasses

    from suite.analysis.leaderboard.aggregate import build_leaderboard
    from suite.analysis.leaderboard.search import searched_columns, select_search_trials
    from suite.analysis.load import load_results

    results = load_results(results_dirs)
    selection = None
    searched: list[str] = []
    if not all_trials:
        kept, selection = select_search_trials(results.trials)
        searched = searched_columns(results.trials) if len(selection) else []
        results = dataclasses.replace(results, trials=kept.reset_index(drop=True))
    board = build_leaderboard(results.trials, results.curves, metric=metric, group_by=group_by, searched=searched)
    return results, board, selection


def write_leaderboard(
    results_dirs: Sequence[str | Path],
    out: str | Path | None = None,
    formats: Sequence[str] = FORMATS,
    metric: str | None = None,
    group_by: Sequence[str] | None = None,
    plots: bool = True,
    all_trials: bool = False,
) -> dict[str, Path]:
    """Read, aggregate, and write every requested format; returns {format or plot name: path}."""
    from suite.analysis.claims.report import load_claims
    from suite.analysis.leaderboard import render
    from suite.core.files import atomic_path, atomic_write_text

    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError("--formats", list(formats), FORMATS)
    results, board, selection = load_board(results_dirs, metric, group_by, all_trials)
    out_dir = Path(out) if out is not None else results.dirs[0] / "leaderboard"
    dirs = [str(d) for d in results.dirs]
    claims = load_claims(results.dirs)  # written by `normbench claims`; shown, never recomputed here
    written: dict[str, Path] = {}
    if selection is not None and len(selection):
        written["search_selection"] = out_dir / "search_selection.csv"
        with atomic_path(written["search_selection"]) as tmp:
            selection.to_csv(tmp, index=False)
    plot_paths: dict[str, Path] = {}
    if plots and "md" in formats:
        from suite.analysis.leaderboard.plots import build_figures, save_figures

        plot_paths = save_figures(build_figures(results, board), out_dir / "plots")
        written.update({f"plot:{k}": v for k, v in plot_paths.items()})
    if "md" in formats:
        written["md"] = out_dir / "leaderboard.md"
        atomic_write_text(written["md"], render.to_markdown(board, dirs, plot_paths, out_dir, claims))
    if "csv" in formats:
        written["csv"], written["failures_csv"] = out_dir / "leaderboard.csv", out_dir / "failures.csv"
        with atomic_path(written["csv"]) as tmp:
            render.to_csv(board, tmp)
        with atomic_path(written["failures_csv"]) as tmp:
            board.failures.to_csv(tmp, index=False)
    if "tex" in formats:
        written["tex"] = out_dir / "leaderboard.tex"
        atomic_write_text(written["tex"], render.to_latex(board))
    return written


def run(args: argparse.Namespace) -> int:
    """Exit code: 0 written, 2 bad input (unreadable/corrupt results, bad option)."""
    formats = parse_formats(args.formats)
    group_by = [c.strip() for c in args.group_by.split(",") if c.strip()] if args.group_by else None
    from suite.analysis.load import LeaderboardWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LeaderboardWarning)
        written = write_leaderboard(
            args.results_dirs,
            args.out,
            formats,
            args.metric,
            group_by,
            plots=not args.no_plots,
            all_trials=args.all_trials,
        )
    for w in caught:
        if issubclass(w.category, LeaderboardWarning):
            print(f"normbench: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0
