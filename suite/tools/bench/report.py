"""Figures, the printed table and the JSON file.

Every figure stands next to a reference measured in the same process, and the
ratio between them is what to read: absolute numbers on a shared machine are
noisy, ratios much less so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suite.core.tables import text_table

# Section order in the table and the JSON (`normbench bench --sections` takes these names).
SECTIONS = (
    "views",
    "training",
    "breakdown",
    "evaluation",
    "ray",
    "sweep_scale",
    "analysis_scale",
    "data_scale",
    "fastpath",
)


@dataclass(frozen=True)
class Figure:
    """One measured number, its reference and their ratio.

    ``ratio`` is computed by the part that measured it, because its meaning
    differs: a speed-up (> 1: the figure beats its reference) or a share of the
    reference (breakdown). ``ratio_format`` says which when printed.
    """

    key: str
    label: str
    value: float
    unit: str
    reference_key: str | None = None
    reference_label: str = ""
    reference: float | None = None
    ratio_key: str | None = None
    ratio: float | None = None
    ratio_format: str = "{:.2f}x"


def speedup(
    key: str,
    label: str,
    value: float,
    unit: str,
    reference_key: str,
    reference_label: str,
    reference: float,
    ratio_key: str,
    higher_is_better: bool = True,
) -> Figure:
    """A figure whose ratio says how many times better it is than its reference."""
    ratio = value / reference if higher_is_better else reference / value
    return Figure(key, label, value, unit, reference_key, reference_label, reference, ratio_key, ratio)


@dataclass
class Report:
    machine: dict[str, Any]
    settings: dict[str, Any]
    groups: dict[str, dict[str, list[Figure]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    wall_s: float = math.nan

    def add(self, section: str, group: str, figure: Figure) -> None:
        if section not in SECTIONS:
            raise ValueError(f"unknown section {section!r}")
        self.groups.setdefault(section, {}).setdefault(group, []).append(figure)

    def skip(self, section: str, what: str, reason: str) -> None:
        """A part not measured in this run: printed as skipped, kept out of the figure check."""
        if section not in SECTIONS:
            raise ValueError(f"unknown section {section!r}")
        self.skipped[f"{section}.{what}"] = reason

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"machine": self.machine, "settings": self.settings, "wall_s": self.wall_s}
        units: dict[str, str] = {}
        for section in SECTIONS:
            for group, figures in self.groups.get(section, {}).items():
                values = out.setdefault(section, {}).setdefault(group, {})
                for f in figures:
                    values[f.key] = f.value
                    units[f"{section}.{group}.{f.key}"] = f.unit
                    if f.reference_key is not None:
                        values[f.reference_key] = f.reference
                        units[f"{section}.{group}.{f.reference_key}"] = f.unit
                    if f.ratio_key is not None:
                        values[f.ratio_key] = f.ratio
        out["units"] = units
        out["skipped"] = dict(self.skipped)
        return out

    def write_json(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, allow_nan=True) + "\n")
        tmp.replace(path)

    def render(self) -> str:
        """The table: section, figure, value, reference, ratio; then the skipped sections."""
        m = self.machine
        lines = [
            f"machine: {m['cpu_model']}, {m['cpu_cores']} cores ({m['torch_threads']} torch threads), "
            f"{m['memory_gib']:.0f} GiB RAM; torch {m['torch']}; device {m['device']} ({m['device_name']})",
            f"settings: {', '.join(f'{k}={v}' for k, v in self.settings.items())}",
            "ratio: x = times better than the reference (> 1: the figure wins); % = share of the reference",
            "",
        ]
        header = ("section", "figure", "value", "unit", "reference", "ref value", "ratio")
        rows = []
        for section in SECTIONS:
            for group, figures in self.groups.get(section, {}).items():
                for f in figures:
                    rows.append(
                        (
                            section,
                            f"{group}: {f.label}" if group else f.label,
                            _num(f.value),
                            f.unit,
                            f.reference_label,
                            _num(f.reference) if f.reference is not None else "",
                            f.ratio_format.format(f.ratio) if f.ratio is not None else "",
                        )
                    )
            for key, reason in self.skipped.items():
                if key.split(".", 1)[0] == section:
                    rows.append((section, key.split(".", 1)[1], "skipped", "", reason, "", ""))
        lines.append(text_table(header, rows, right=(2, 5, 6), rule=False))
        lines.append(f"\nwall time {self.wall_s:.1f} s")
        return "\n".join(lines)


def _num(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def numeric_figures(data: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every figure in a bench JSON (sections only)."""
    for section in SECTIONS:
        for group, values in data.get(section, {}).items():
            for key, value in values.items():
                yield f"{section}.{group}.{key}", value


def non_finite_figures(data: dict[str, Any]) -> list[str]:
    """Paths of figures that are missing numbers or not finite."""
    bad = []
    for path, value in numeric_figures(data):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            bad.append(f"{path}={value!r}")
    return bad
