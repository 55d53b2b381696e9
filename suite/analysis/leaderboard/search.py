"""The leaderboard of a search sweep: per search cell, the trial its validation metric chose.

A search sweep (`suite.sweep.search`) runs ``num_samples`` trials in every cell
(grid point x case x seed) and marks their rows with ``search_cell``,
``search_metric``, ``search_mode`` and the sampled values (``search_sample_<key>``).
The default leaderboard keeps, per (results directory, cell), the completed trial
with the best validation metric and reports its *test* metrics, so a method is
scored as tuned on validation, never picked on the test set; ``--all-trials`` keeps
every trial (each sampled setting then forms its own group).
"""

from __future__ import annotations

import pandas as pd

from suite.analysis.load import TRIAL_KEY
from suite.results import schema

CELL, SAMPLE_PREFIX = schema.SEARCH_CELL, schema.SEARCH_SAMPLE_PREFIX


def searched_columns(trials: pd.DataFrame) -> list[str]:
    """Config columns a search varied (``method_args.x`` varies the ``method_args`` column)."""
    keys = [c[len(SAMPLE_PREFIX) :] for c in trials.columns if c.startswith(SAMPLE_PREFIX)]
    return sorted({k.split(".", 1)[0] for k in keys})


def select_search_trials(trials: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials with only the chosen trial of every search cell, the chosen trials).

    Trials of no search are kept as they are. A cell without a completed trial
    keeps its rows (the failures section then names them)."""
    if CELL not in trials.columns or trials[CELL].isna().all():
        return trials, trials.iloc[0:0]
    searched = trials[trials[CELL].notna()]
    keep_index = list(trials.index[trials[CELL].isna()])
    chosen = []
    for _, cell in searched.groupby([schema.RESULTS_DIR, CELL], sort=True):
        done = cell[cell[schema.STATUS] == schema.COMPLETED]
        unfinished = [i for i in cell.index if cell.at[i, schema.STATUS] not in schema.FINISHED_STATUSES]
        metric = str(cell[schema.SEARCH_METRIC].iloc[0])
        if done.empty or metric not in done or done[metric].isna().all():
            keep_index += unfinished
            continue
        maximize = str(cell[schema.SEARCH_MODE].iloc[0]) == "max"
        best = done[metric].idxmax() if maximize else done[metric].idxmin()
        keep_index += [best] + unfinished
        chosen.append(best)
    kept = trials.loc[sorted(set(keep_index))]
    columns = (
        TRIAL_KEY
        + [c for c in (CELL, schema.SEED, schema.METHOD, schema.INTERVENTION, schema.SEARCH_METRIC) if c in trials]
        + [c for c in trials.columns if c.startswith(SAMPLE_PREFIX)]
        + [c for c in trials.columns if schema.is_accuracy(c) and not c.endswith(schema.INIT_SUFFIX)]
    )
    selection = trials.loc[chosen, list(dict.fromkeys(columns))].reset_index(drop=True)
    return kept, selection
