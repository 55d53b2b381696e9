"""The method layer stands alone: nothing under methods/ imports suite/, so a
loss, a head or a whole method can be read, tested and reused without the rest."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

METHODS_DIR = Path(__file__).parents[1] / "methods"


def _imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(METHODS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_methods_never_import_suite(path):
    offending = [n for n in _imported_modules(path) if n == "suite" or n.startswith("suite.")]
    assert not offending, f"{path.name} imports {offending}"


def test_the_walk_sees_lazy_imports_too(tmp_path):
    """Imports inside functions count: the check must be able to fail on them."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from suite.augment import AugmentSpec\n    import suite.errors\n")
    assert _imported_modules(probe) == ["suite.augment", "suite.errors"]
