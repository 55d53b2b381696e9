"""`normbench trial --track`: a local trial logged like a sweep trial."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from suite.config import TrialConfig
from suite.results import schema
from suite.results.store import BINS_FILE, CURVES_FILE, RESULT_FILE
from suite.tracking.runs import numbers, open_runs, trial_params
from suite.tracking.spec import Tracking

LOCAL_EXPERIMENT = "normbench-local"


class LocalTracker:
    """The same parameters and metrics as a sweep's trackers, for one trial in this process."""

    def __init__(self, tracking: Tracking, cfg: TrialConfig, trial_dir: Path) -> None:
        self.trial_dir = Path(trial_dir)
        self.runs = open_runs(
            tracking,
            cfg.trial_id,
            trial_params(cfg.model_dump()),
            experiment=LOCAL_EXPERIMENT,
            default_dir=self.trial_dir.parent,
        )

    def log_epoch(self, row: dict[str, Any], checkpoint_dir=None) -> None:
        """A `suite.trial.train.run_trial` report: one curves row at step = its epoch."""
        step = int(row.get(schema.EPOCH, 0))
        metrics = {k: v for k, v in numbers(row).items() if k != schema.EPOCH}
        for run in self.runs:
            run.log(step, metrics)

    def finish(self, result) -> None:
        """The epoch-0 row and the last epoch's final-evaluation numbers (not known while
        it trained), the final row as ``final/*``, the trial's files as artifacts."""
        for row in result.curves:
            if row.get(schema.EPOCH) == 0 or row is result.curves[-1]:
                self.log_epoch(row)
        status = str(result.row.get(schema.STATUS))
        files = [self.trial_dir / n for n in (RESULT_FILE, CURVES_FILE, BINS_FILE) if (self.trial_dir / n).is_file()]
        for run in self.runs:
            run.finish(numbers(result.row, "final/"), status, files)
