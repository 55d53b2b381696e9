"""Distributed sweeps: a YAML grid of trials scheduled by Ray Tune, each trial
one `suite.train.run_trial` (data-parallel through Ray Train when workers > 1).

Importing this package imports nothing heavy (the CLI registers `sweep` from
it on every `normbench` call); the names below load on first use.
"""
from __future__ import annotations

import importlib

_LAZY = {"SweepSpec": "spec", "load_spec": "spec", "spec_from_dict": "spec", "expand_grid": "grid",
         "format_plan": "grid", "PlannedTrial": "grid", "run_sweep": "runner"}
__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"suite.sweep.{_LAZY[name]}"), name)
    raise AttributeError(name)
