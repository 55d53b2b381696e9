"""``normbench claims``: one verdict per claim of the paper, computed from the results tables.

``suite.claims.verdicts`` holds the claims and their tests, ``suite.claims.report``
writes ``claims.csv`` / ``claims.md`` and renders them for the leaderboard, and
``suite.claims.cli`` registers the command.
"""
from __future__ import annotations

__all__ = ["evaluate_claims", "CLAIMS", "VERDICTS"]


def __getattr__(name: str):  # lazy: the CLI imports this package only to register the command
    if name in __all__:
        from suite.claims import verdicts
        return getattr(verdicts, name)
    raise AttributeError(name)
