"""What a user sees while a sweep runs: one live line, a line per trial that ends, one summary.

By default Ray's own output (its boxes, status tables, per-epoch checkpoint
messages, worker logs) goes to ``sweep.log`` in the sweep's results folder and
the console shows a single progress line -- trials completed / running / failed
/ pending, the best value of the sweep's metric so far, elapsed and estimated
time left -- and a summary table at the end. ``--verbose`` shows Ray's output
as it comes; ``-q`` shows only the summary.

The sweep's `suite.sweep.tables.SweepTables` tells the console what happens (it
is the one object that sees every trial's fate, restored runs included): the
runner makes the console `current` for the time of the sweep.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from suite.core.tables import duration_text, text_table
from suite.results import schema

_CURRENT: SweepConsole | None = None
SUMMARY_ROWS = 20  # a longer sweep's summary shows the best and every unfinished trial


def current() -> SweepConsole | None:
    return _CURRENT


@contextlib.contextmanager
def active(console: SweepConsole) -> Iterator[SweepConsole]:
    """Make ``console`` the one the sweep's tables report to, for the time of the block."""
    global _CURRENT
    previous, _CURRENT = _CURRENT, console
    try:
        yield console
    finally:
        console.close()
        _CURRENT = previous


class SweepConsole:
    """Counts trials by fate and renders them (a tqdm line on a terminal, a line per ended trial elsewhere)."""

    def __init__(
        self,
        name: str,
        total: int,
        metric: str,
        higher_is_better: bool = True,
        quiet: bool = False,
        stream: TextIO | None = None,
    ) -> None:
        self.name, self.total, self.metric, self.higher = name, total, metric, higher_is_better
        self.quiet, self.stream = quiet, stream or sys.stderr
        self.status: dict[str, str] = {}
        self.rows: dict[str, dict[str, Any]] = {}
        self.best: float = math.nan
        self.start = time.monotonic()
        self._bar = None
        if not quiet and self._live():
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total, desc=f"sweep {name}", unit="trial", file=self.stream, dynamic_ncols=True, leave=True
            )

    def _live(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    # -- events (from SweepTables) ------------------------------------------------------------------
    def started(self, tid: str) -> None:
        if self.status.get(tid) != schema.COMPLETED:
            self.status[tid] = schema.RUNNING
            self._refresh()

    def ended(self, tid: str, row: dict[str, Any]) -> None:
        """A trial's final row (completed, failed, stopped or interrupted)."""
        was_done = self.status.get(tid) in (schema.COMPLETED, schema.FAILED, schema.STOPPED)
        status = str(row.get(schema.STATUS))
        self.status[tid], self.rows[tid] = status, row
        value = row.get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            if math.isnan(self.best) or (value > self.best if self.higher else value < self.best):
                self.best = float(value)
        if was_done or status == schema.RUNNING:
            return
        if self._bar is not None:
            self._bar.update(1)
            self._refresh()
        elif not self.quiet:
            print(
                f"[{self._finished()}/{self.total}] {tid} {status}"
                + (f"  {self.metric} {_value(value, self.metric)}" if status == schema.COMPLETED else "")
                + (f"  {_short(row.get(schema.ERROR))}" if status == schema.FAILED else "")
                + f"  ({duration_text(time.monotonic() - self.start)} since start)",
                file=self.stream,
                flush=True,
            )

    # -- rendering ------------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        values = list(self.status.values())
        done = sum(v in (schema.COMPLETED, schema.STOPPED) for v in values)
        failed = sum(v == schema.FAILED for v in values)
        running = sum(v == schema.RUNNING for v in values)
        interrupted = sum(v == schema.INTERRUPTED for v in values)
        return {
            "completed": done,
            "running": running,
            "failed": failed,
            "interrupted": interrupted,
            "pending": max(0, self.total - done - failed - running - interrupted),
        }

    def _finished(self) -> int:
        c = self.counts()
        return c["completed"] + c["failed"]

    def _refresh(self) -> None:
        if self._bar is None:
            return
        c = self.counts()
        best = f", best {self.metric} {_value(self.best, self.metric)}" if not math.isnan(self.best) else ""
        self._bar.set_postfix_str(
            f"{c['completed']} done, {c['running']} running, {c['failed']} failed, {c['pending']} pending{best}",
            refresh=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def summary(self, rows: list[dict[str, Any]]) -> str:
        """The table printed at the end: every trial of a short sweep; of a long one the best ones and every
        trial that did not complete."""

        def key(r: dict[str, Any]) -> float:
            v = r.get(self.metric)
            ok = isinstance(v, (int, float)) and math.isfinite(v)
            return (-v if self.higher else v) if ok else math.inf

        ordered = sorted(rows, key=key)
        if len(ordered) > SUMMARY_ROWS:
            bad = [r for r in ordered if r.get(schema.STATUS) not in (schema.COMPLETED, schema.STOPPED)]
            ordered = [
                *[r for r in ordered if r not in bad][: SUMMARY_ROWS - min(len(bad), SUMMARY_ROWS // 2)],
                *bad[: SUMMARY_ROWS // 2],
            ]
        header = ["trial", "status", "epochs", self.metric, "wall time", "error / notes"]
        body = [
            [
                str(r.get(schema.TRIAL_ID)),
                str(r.get(schema.STATUS)),
                f"{r.get(schema.EPOCHS_COMPLETED, '—')}/{r.get('epochs', '—')}",
                _value(r.get(self.metric), self.metric),
                duration_text(r.get(schema.WALL_TIME)),
                _short(r.get(schema.ERROR) or r.get(schema.NOTES)),
            ]
            for r in ordered
        ]
        shown = f" (the best {len(ordered)} and the unfinished)" if len(rows) > SUMMARY_ROWS else ""
        return f"trials{shown}:\n" + text_table(header, body, right=[2, 3, 4])


def _value(value: Any, column: str) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    return f"{100 * value:.2f}%" if schema.is_accuracy(column) else f"{value:.4g}"


def _short(text: Any, limit: int = 70) -> str:
    if not isinstance(text, str) or not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


class DeferredLog(io.TextIOBase):
    """A log that holds what is written in memory until `open` names its file: Ray talks while it
    starts, before the checks that decide whether the sweep's folder may be created at all."""

    def __init__(self, log_file: Path) -> None:
        self.log_file = log_file
        self._held: list[str] = []
        self._file: TextIO | None = None
        self._ended = False

    def open(self) -> None:
        """Create the file (and its folder) and write what was held."""
        if self._file is None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.log_file, "a", encoding="utf-8")  # noqa: SIM115 (closed by close)
            self._file.write("".join(self._held))
            self._held.clear()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self._file is not None:
            self._file.write(text)
        elif not self._ended:
            self._held.append(text)
        return len(text)  # after close (a late Ray thread): dropped

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Close the file; anything written later is dropped (the object stays usable as a sink)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._ended = True
        self._held.clear()


class _Unlogged:
    def open(self) -> None:
        pass


@contextlib.contextmanager
def ray_output_to(log_file: Path, verbose: bool) -> Iterator[DeferredLog | _Unlogged]:
    """Unless ``verbose``: Ray's Python logging and the driver's stdout/stderr go to ``log_file``
    (our own messages go to the real stderr, saved as ``sys.__stderr__``). Nothing is written until
    the caller calls ``open()`` on what this yields; a sweep refused before that leaves no file."""
    if verbose:
        yield _Unlogged()
        return
    out = DeferredLog(log_file)
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(n) for n in ("ray", "ray.tune", "ray.train", "ray.data", "py.warnings")]
    saved = [(lg, lg.handlers[:], lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.handlers, lg.propagate = [handler], False
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            yield out
    finally:
        for lg, handlers, propagate in saved:
            lg.handlers, lg.propagate = handlers, propagate
        out.close()
