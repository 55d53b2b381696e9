"""``normbench leaderboard`` (also ``python -m suite.analysis.leaderboard``): the tables (Markdown, CSV,
LaTeX) of `suite.analysis.leaderboard.render`; its figures and its page are the report's
(`suite.analysis.report.export`, `suite.analysis.report.page`), called as they are.

Kept import-light: the main CLI imports this module to register the
subcommand, so pandas and Altair load only when the command runs.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence
from pathlib import Path

from suite.core.cli import add_command, csv_list, say
from suite.core.errors import ConfigError

FORMATS = ("md", "csv", "tex", "html")  # html: the report page of `suite.analysis.report` (`normbench report`)
DESCRIPTION = (
    "Aggregate one or more results directories (local trials and/or sweeps) into a leaderboard: one row per "
    "group of otherwise-equal settings, ranked by the metric; mean ± std over seeds, Δ against the 'none' "
    "intervention with its interval, the gain over the untrained network, which arm reaches its baseline's "
    "target first, norm diagnostics, failed and interrupted trials."
)
EPILOG = "exit status:\n  0 written, 2 bad input (unreadable or corrupt results, a bad option; nothing written)."


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "results_dirs",
        nargs="+",
        metavar="RESULTS_DIR",
        help="results directories holding trials.parquet/.csv (merged)",
    )
    parser.add_argument("--out", default=None, help="output directory (default: FIRST_RESULTS_DIR/leaderboard)")
    parser.add_argument(
        "--formats",
        default=None,
        help=f"comma-separated subset of {','.join(FORMATS)} (default: all; html is the `normbench report` page)",
    )
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
    parser = add_command(
        subparsers, "leaderboard", help="aggregate results into a leaderboard", description=DESCRIPTION, epilog=EPILOG
    )
    configure_parser(parser)
    parser.set_defaults(func=run)
    return parser


def parse_formats(text: str | None) -> list[str]:
    return list(FORMATS) if text is None else csv_list(text.lower(), "--formats", FORMATS)


def write_leaderboard(
    results_dirs: Sequence[str | Path],
    out: str | Path | None = None,
    formats: Sequence[str] | None = None,
    metric: str | None = None,
    group_by: Sequence[str] | None = None,
    plots: bool = True,
    all_trials: bool = False,
    loaded: tuple | None = None,
) -> dict[str, Path]:
    """Read, aggregate, and write every requested format (None: all of `FORMATS`);
    returns {format or plot name: path}. ``loaded``: what `load_board` gave for these arguments."""
    from suite.analysis.claims.report import load_claims
    from suite.analysis.leaderboard import render
    from suite.analysis.leaderboard.board import load_board
    from suite.core.files import atomic_path, atomic_write_text

    formats = list(FORMATS) if formats is None else formats
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError("--formats", list(formats), FORMATS)
    results, board, selection = loaded or load_board(results_dirs, metric, group_by, all_trials)
    out_dir = Path(out) if out is not None else results.dirs[0] / "leaderboard"
    dirs = [str(d) for d in results.dirs]
    claims = load_claims(results.dirs)  # written by `normbench claims`; shown, never recomputed here
    written: dict[str, Path] = {}
    if selection is not None and len(selection):
        written["search_selection"] = out_dir / "search_selection.csv"
        with atomic_path(written["search_selection"]) as tmp:
            selection.to_csv(tmp, index=False)
    plot_paths: dict[str, Path] = {}
    if plots and "md" in formats:  # the report's figures as PNG files, linked from the Markdown file
        from suite.analysis.report.export import write_figures

        plot_paths = write_figures(results, board, out_dir / "plots")
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
    if "html" in formats:  # the report page (`normbench report`), with this board and its claims
        from suite.analysis.report.page import write_page

        written["html"] = write_page(results, board, claims, out_dir / "leaderboard.html")
    return written


def run(args: argparse.Namespace) -> int:
    """Exit code: 0 written, 2 bad input (unreadable/corrupt results, bad option)."""
    formats = parse_formats(args.formats)
    group_by = csv_list(args.group_by, "--group-by")
    from suite.analysis.leaderboard.board import load_board
    from suite.analysis.leaderboard.render import console_table
    from suite.analysis.load import LeaderboardWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LeaderboardWarning)
        loaded = load_board(args.results_dirs, args.metric, group_by, args.all_trials)
        written = write_leaderboard(
            args.results_dirs,
            args.out,
            formats,
            args.metric,
            group_by,
            plots=not args.no_plots,
            all_trials=args.all_trials,
            loaded=loaded,
        )
    for w in caught:
        if issubclass(w.category, LeaderboardWarning):
            say("warning", str(w.message))
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if not getattr(args, "quiet", False):
        print(console_table(loaded[1]) + "\n")
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0
