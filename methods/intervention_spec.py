"""The intervention spec string (``none``, ``cut:3+gradscale:1``, ...) and its
parsed value. Kept free of torch so configs validate instantly; the
interventions themselves live in ``methods.interventions``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from methods.errors import ConfigError

INTERVENTION_KINDS: dict[str, str] = {
    "none": "baseline, no intervention",
    "cut:C": "cut-initialization: divide every initial parameter by C (C > 1)",
    "gradscale:P": "GradScale: multiply the embedding's gradient by ||z||^P (any finite P)",
    "wd:X": "weight decay X (X >= 0), overrides the method's default",
}
_ALLOWED = "none, cut:C (C > 1), gradscale:P (finite P), wd:X (X >= 0), combined with '+' (e.g. cut:3+gradscale:1)"
_KEYS = {"cut": "cut", "gradscale": "gradscale", "wd": "weight_decay"}


@dataclass(frozen=True)
class Intervention:
    """Parsed intervention; ``None`` fields are inactive."""

    cut: float | None = None
    gradscale: float | None = None
    weight_decay: float | None = None

    def to_spec(self) -> str:
        """Canonical spec string (inverse of :func:`parse_intervention`)."""
        parts = [f"{key}:{getattr(self, attr):g}" for key, attr in _KEYS.items() if getattr(self, attr) is not None]
        return "+".join(parts) or "none"


def parse_intervention(spec: str) -> Intervention:
    """Parse ``none`` / ``cut:C`` / ``gradscale:P`` / ``wd:X`` joined by ``+``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("intervention", spec, _ALLOWED)
    text = spec.strip().lower()
    if text == "none":
        return Intervention()
    values: dict[str, float] = {}
    for part in text.split("+"):
        kind, sep, raw = part.strip().partition(":")
        if kind == "none":
            raise ConfigError("intervention", spec, _ALLOWED, hint="'none' cannot be combined")
        if kind not in _KEYS or not sep:
            raise ConfigError("intervention", spec, _ALLOWED, hint=f"unknown part {part.strip()!r}")
        if _KEYS[kind] in values:
            raise ConfigError("intervention", spec, _ALLOWED, hint=f"{kind} given twice")
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError("intervention", spec, _ALLOWED, hint=f"{kind} needs a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise ConfigError("intervention", spec, _ALLOWED, hint=f"{kind} must be finite")
        if kind == "cut" and not value > 1.0:
            raise ConfigError("intervention", spec, _ALLOWED, hint="cut needs C > 1")
        if kind == "wd" and value < 0.0:
            raise ConfigError("intervention", spec, _ALLOWED, hint="wd needs X >= 0")
        values[_KEYS[kind]] = value
    return Intervention(**values)
