"""normbench's suite: config, data, training, evaluation, sweeps, results, export.

`load_backbone` (from `suite.trial.export`) is resolved on first use, so importing
`suite` (the CLI does) stays instant and torch-free.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_backbone"]


def __getattr__(name: str) -> Any:
    if name == "load_backbone":
        from suite.trial.export import load_backbone

        return load_backbone
    raise AttributeError(f"module 'suite' has no attribute {name!r}")
