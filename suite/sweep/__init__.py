"""Distributed sweeps: a YAML grid of trials scheduled by Ray Tune, each trial
one `suite.train.run_trial` (data-parallel through Ray Train when workers > 1).

Importing this package does not import Ray; `run_sweep` does.
"""
from suite.sweep.grid import PlannedTrial, expand_grid, format_plan
from suite.sweep.spec import SweepSpec, load_spec, spec_from_dict

__all__ = ["SweepSpec", "load_spec", "spec_from_dict", "expand_grid", "format_plan", "PlannedTrial", "run_sweep"]


def __getattr__(name: str):
    if name == "run_sweep":
        from suite.sweep.runner import run_sweep

        return run_sweep
    raise AttributeError(name)
