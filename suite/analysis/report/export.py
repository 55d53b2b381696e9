"""Figures as files: the Vega-Lite specs of `suite.analysis.report.figures`, rendered offline to PNG (or
SVG) by vl-convert, the renderer the Altair project keeps for this.

Why here: the page and the files draw from the same specs, so a figure has one definition whether it
is browsed on the page or put in a paper; no second plotting library, no browser, no network.
"""

from __future__ import annotations

from pathlib import Path

from suite.analysis.leaderboard.aggregate import Leaderboard
from suite.analysis.load import Results
from suite.analysis.report.charts import vegalite_version
from suite.analysis.report.figures import exported_figures
from suite.core.files import atomic_write_bytes

FORMATS = ("png", "svg")
PNG_SCALE = 2.0  # pixels per Vega-Lite unit: sharp in a paper or on a high-density screen


def render(spec: dict, fmt: str = "png", scale: float = PNG_SCALE) -> bytes:
    """One spec as a PNG (``scale`` pixels per unit) or an SVG document."""
    import vl_convert

    if fmt == "png":
        return vl_convert.vegalite_to_png(spec, vl_version=vegalite_version(), scale=scale)
    if fmt == "svg":
        return vl_convert.vegalite_to_svg(spec, vl_version=vegalite_version()).encode("utf-8")
    raise ValueError(f"format {fmt!r}: one of {FORMATS}")


def save_figures(specs: dict[str, dict], out_dir: str | Path, fmt: str = "png") -> dict[str, Path]:
    """Write each spec to ``out_dir/<name>.<fmt>`` (atomically; the folder is created); {name: path}."""
    out_dir = Path(out_dir)
    paths = {}
    for name, spec in specs.items():
        paths[name] = out_dir / f"{name}.{fmt}"
        atomic_write_bytes(paths[name], render(spec, fmt))
    return paths


def write_figures(results: Results, board: Leaderboard, out_dir: str | Path, fmt: str = "png") -> dict[str, Path]:
    """The leaderboard's figures (`figures.exported_figures`) of ``board`` as files in ``out_dir``."""
    return save_figures(exported_figures(results, board), out_dir, fmt)
