"""The leaderboard of results directories, as every format (Markdown, CSV, LaTeX, the report page) shows it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


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
