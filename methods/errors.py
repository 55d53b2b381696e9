"""Errors a user can act on, and the one bridge from pydantic to them.

Every validation failure names the field, the offending value and what is
allowed, so a typo in a sweep of hundreds of trials is caught before any work.
The error type lives in the method layer (which depends on nothing else in
normbench); ``suite.core.errors`` re-exports it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """Bad user input: which field, which value, and what is allowed."""

    def __init__(
        self, field: str, value: Any, allowed: str | Iterable[Any], hint: str = "", problem: str = "invalid value"
    ) -> None:
        if not isinstance(allowed, str):
            allowed = ", ".join(repr(a) if not isinstance(a, str) else a for a in allowed)
        self.field, self.value, self.allowed, self.hint = field, value, allowed, hint
        msg = f"{field}: {problem} {value!r}; allowed: {allowed}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


def suggestion(name: str, choices: Iterable[str], aliases: dict[str, str] | None = None) -> str:
    """``did you mean 'epochs'?`` for a near miss among ``choices`` ("" when nothing is close);
    ``aliases`` maps names other tools use to ours (``learning_rate`` -> ``lr``)."""
    if aliases and str(name) in aliases:
        return f"did you mean {aliases[str(name)]!r}?"
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
    close = close or [c for c in names if str(name).startswith(c + "_")][:1]  # lr_typo -> lr
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


_TYPE_WORDS = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "text",
    dict: "a mapping",
    list: "a list",
    tuple: "a pair",
}


def type_words(annotation: Any) -> str:
    """A type annotation in words: ``int | None`` -> "an integer, or unset"."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, UnionType):
        inner = [a for a in args if a is not type(None)]
        words = " or ".join(type_words(a) for a in inner)
        return words + (", or unset" if len(inner) < len(args) else "")
    if origin in (list, tuple):
        items = get_args(args[0]) if args and get_origin(args[0]) in (Union, UnionType) else args[:1]
        plural = " or ".join(_PLURAL.get(type_words(a), type_words(a)) for a in items) or "values"
        return f"a list of {plural}" if origin is list else f"a pair of {plural}"
    if origin is dict or annotation is dict:
        return "a mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "a mapping of " + ", ".join(annotation.model_fields)
    return _TYPE_WORDS.get(annotation, getattr(annotation, "__name__", str(annotation)))


_PLURAL = {"an integer": "integers", "a number": "numbers", "text": "texts", "true or false": "booleans"}


def field_constraints(model: type[BaseModel], name: str) -> str:
    """What a field accepts, in words: its type and bounds ("a number > 0 and <= 1, or unset"); a field
    may say it itself (``json_schema_extra={"allowed": ...}``) where its type cannot."""
    info = model.model_fields[name]
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if extra.get("allowed"):
        return str(extra["allowed"])
    words = type_words(info.annotation)
    bounds = []
    for meta in info.metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(meta, attr, None)
            if bound is not None:
                bounds.append(f"{sign} {bound:g}")
    if not bounds:
        return words
    base, unset = (words[: -len(", or unset")], ", or unset") if words.endswith(", or unset") else (words, "")
    return f"{base} {' and '.join(bounds)}{unset}"


def config_error(
    err: ValidationError, model: type[BaseModel], prefix: str = "", allowed: str | None = None, hint: str = ""
) -> ConfigError:
    """The first pydantic error as a ConfigError named ``prefix + field``, in our words: what the
    field accepts (never pydantic's message), and "did you mean" for an unknown key."""
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    field = prefix + (".".join(loc) or model.__name__)
    if first["type"] == "extra_forbidden":
        key = loc[-1] if loc else ""
        parent = _model_at(model, loc[:-1])
        known = (
            sorted(n for n, f in parent.model_fields.items() if not (f.alias or "").startswith("_"))
            if parent is not None
            else []
        )  # an alias with a leading underscore is a test hook, not for users
        return ConfigError(
            field,
            first.get("input"),
            "a known key: " + ", ".join(known),
            hint="; ".join(p for p in (f"unknown key {key!r}", suggestion(key, known), hint) if p),
        )
    if allowed is None:
        if first["type"] in ("value_error", "assertion_error"):
            allowed = first["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        else:
            owner, name = _model_at(model, loc[:-1]), loc[-1] if loc else ""
            if owner is not None and name in owner.model_fields:
                allowed = field_constraints(owner, name)
            else:
                allowed = _PYDANTIC_WORDS.get(first["type"], "a valid value")
    return ConfigError(field, first.get("input"), allowed, hint=hint)


def _model_at(model: type[BaseModel], path: list[str]) -> type[BaseModel] | None:
    """The nested model a location points into (None where it leaves the models)."""
    current: Any = model
    for part in path:
        info = current.model_fields.get(part) if isinstance(current, type) and issubclass(current, BaseModel) else None
        if info is None:
            return None
        current = next(
            (
                a
                for a in (info.annotation, *get_args(info.annotation))
                if isinstance(a, type) and issubclass(a, BaseModel)
            ),
            None,
        )
        if current is None:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


_PYDANTIC_WORDS = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "text",
    "dict_type": "a mapping",
    "list_type": "a list",
    "missing": "a value (this key is required)",
    "model_type": "a mapping",
}
