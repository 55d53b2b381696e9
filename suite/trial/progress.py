"""What a user sees while one trial trains, in the sweep console's style (`suite.sweep.console`):
on a terminal one live line (steps, epoch, loss, elapsed and time left); in a log or a pipe a line
every tenth of the run, never one per step."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from suite.core.tables import duration_text


class TrialProgress:
    def __init__(
        self,
        name: str,
        epochs: int,
        steps_per_epoch: int,
        start_epoch: int,
        enabled: bool,
        stream: TextIO | None = None,
    ) -> None:
        self.name, self.epochs, self.steps_per_epoch = name, epochs, steps_per_epoch
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.start = time.monotonic()
        self.first_epoch = start_epoch
        self.every = max(1, epochs // 10)
        self._bar = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=epochs * steps_per_epoch,
                initial=start_epoch * steps_per_epoch,
                desc=f"trial {name}",
                unit="step",
                file=self.stream,
                dynamic_ncols=True,
            )

    def step(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def epoch(self, epoch: int, loss: float) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"epoch {epoch}/{self.epochs}, loss {loss:.4g}", refresh=True)
        elif self.enabled and (epoch % self.every == 0 or epoch == self.epochs):
            elapsed = time.monotonic() - self.start
            done = epoch - self.first_epoch
            left = elapsed / done * (self.epochs - epoch) if done > 0 else float("nan")
            print(
                f"trial {self.name}: epoch {epoch}/{self.epochs}, loss {loss:.4g}  "
                f"({duration_text(elapsed)} elapsed, {duration_text(left)} left)",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
