"""Errors a user can act on.

Every validation failure names the field, the offending value and what is
allowed, so a typo in a sweep of hundreds of trials is caught before any work.
"""
from __future__ import annotations

from typing import Any, Iterable


class ConfigError(ValueError):
    """Bad user input: which field, which value, and what is allowed."""

    def __init__(self, field: str, value: Any, allowed: str | Iterable[Any], hint: str = "") -> None:
        if not isinstance(allowed, str):
            allowed = ", ".join(repr(a) if not isinstance(a, str) else a for a in allowed)
        self.field, self.value, self.allowed = field, value, allowed
        msg = f"{field}: invalid value {value!r}; allowed: {allowed}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


class TrialFailed(RuntimeError):
    """A trial stopped for a recorded reason (e.g. a non-finite loss)."""
