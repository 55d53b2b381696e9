"""Wall-clock and memory measurement that is honest on both CPU and GPU.

CUDA kernels run asynchronously, so every timed region is bracketed by
``torch.cuda.synchronize``; otherwise a figure would time the kernel launches,
not the work. Shared machines make single timings noisy, so figures are the best
of several calls after a warm-up.
"""

from __future__ import annotations

import contextlib
import math
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import torch

_START = time.perf_counter()


QUIET = False  # `normbench bench -q`: the table only


def log(message: str) -> None:
    """Progress line on stderr (the table goes to stdout)."""
    if QUIET:
        return
    print(f"[bench +{time.perf_counter() - _START:6.1f}s] {message}", file=sys.stderr, flush=True)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(fn: Callable[[], Any], repeats: int, device: torch.device, warmup: int = 1) -> float:
    """Best wall time of ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    best = math.inf
    for _ in range(max(1, repeats)):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


class PartTimer:
    """Accumulates seconds per named part of a loop, synchronizing around each part."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.seconds[name] += time.perf_counter() - start


class NullTimer:
    """The no-op timer of the un-instrumented loop: no synchronization, no bookkeeping."""

    _null = contextlib.nullcontext()

    def part(self, name: str) -> contextlib.AbstractContextManager:
        return self._null


NULL_TIMER = NullTimer()


def max_rss_bytes() -> float:
    """The process's resident-set high-water mark (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def peak_memory(fn: Callable[[], Any], device: torch.device) -> tuple[float, str]:
    """(bytes, how it was measured) for one call of ``fn``.

    CUDA: peak allocated by torch during the call, above what was allocated before.
    CPU: growth of the process's max RSS during the call. tracemalloc cannot see
    torch's allocations, and the RSS high-water mark only grows when a call goes
    above every earlier peak, so this is a lower bound (0 when an earlier part of
    the process already used more); callers print the analytic size of the largest
    tensor next to it.
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return float(torch.cuda.max_memory_allocated(device) - base), "torch.cuda.max_memory_allocated"
    before = max_rss_bytes()
    fn()
    return max_rss_bytes() - before, "max RSS growth (lower bound)"
