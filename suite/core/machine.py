"""What machine and software a result came from: a trial's row and a bench's table record it,
because "the same numbers" only holds on the same machine, software versions and threads."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path


@functools.cache
def cpu_model() -> str:
    """CPU model from /proc/cpuinfo (Linux), else what platform reports (read once per process)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return float("nan")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity: what a container or taskset grants), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
