"""Errors a user can act on, and the one bridge from pydantic to them.

Every validation failure names the field, the offending value and what is
allowed, so a typo in a sweep of hundreds of trials is caught before any work.
The error type lives in the method layer (which depends on nothing else in
normbench); ``suite.core.errors`` re-exports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError


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


def field_constraints(model: type[BaseModel], name: str) -> str:
    """What a field accepts, in words: its type and bounds (``float > 0 <= 1``)."""
    info = model.model_fields[name]
    if get_origin(info.annotation) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(info.annotation))
    kind = info.annotation.__name__ if isinstance(info.annotation, type) else str(info.annotation)
    parts = [kind]
    for meta in info.metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(meta, attr, None)
            if bound is not None:
                parts.append(f"{sign} {bound:g}")
    return " ".join(parts)


def config_error(
    err: ValidationError, model: type[BaseModel], prefix: str = "", allowed: str | None = None, hint: str = ""
) -> ConfigError:
    """The first pydantic error as a ConfigError named ``prefix + field``."""
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    field = prefix + (".".join(loc) or model.__name__)
    if first["type"] == "extra_forbidden":
        return ConfigError(field, first.get("input"), sorted(model.model_fields), hint=hint or "unknown key")
    if allowed is None:
        name = loc[0] if loc else ""
        allowed = field_constraints(model, name) if name in model.model_fields else first["msg"]
        if first["type"] in ("value_error", "assertion_error"):
            allowed = first["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return ConfigError(field, first.get("input"), allowed, hint=hint)
