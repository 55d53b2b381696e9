"""Lint covers every module: what `make lint` hands ruff, ruff reads, `suite/results/` and `tests/results/`
included (a pattern that excluded the results *data* folder once excluded them too)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lint_targets() -> list[str]:
    line = next(x for x in (ROOT / "Makefile").read_text().splitlines() if "ruff check" in x and "--fix" not in x)
    return re.split(r"\s+", line.split("ruff check", 1)[1].strip())


def test_ruff_reads_every_python_file_of_the_lint_targets():
    targets = _lint_targets()
    assert {"suite", "methods", "tests", "examples", "benchmarks"} <= set(targets)
    ruff = Path(sys.executable).parent / "ruff"
    shown = subprocess.run(
        [str(ruff), "check", "--show-files", *targets], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    read = {Path(line.strip()).resolve() for line in shown.splitlines() if line.strip().endswith(".py")}
    expected = {p.resolve() for t in targets for p in (ROOT / t).rglob("*.py") if "__pycache__" not in p.parts}
    assert expected - read == set(), sorted(str(p.relative_to(ROOT)) for p in expected - read)
    assert (ROOT / "suite" / "results" / "schema.py").resolve() in read
