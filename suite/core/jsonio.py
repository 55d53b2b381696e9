"""The project's one JSON encoding: strict JSON, NaN as null, numpy/torch scalars unwrapped."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from suite.core.files import atomic_write_text


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _jsonable(value.item())
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def to_json(value: Any, indent: int | None = None) -> str:
    """The project's one JSON encoding: strict JSON (non-finite numbers become
    null, read back as NaN in tables), numpy/torch scalars unwrapped."""
    return json.dumps(_jsonable(value), indent=indent, sort_keys=False, allow_nan=False, default=str)


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, to_json(data, indent=2))
