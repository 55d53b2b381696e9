"""The layers of docs/ARCHITECTURE.md, enforced: imports only go down, and no module
imports itself back through others. Lazy imports (inside functions) count too."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

# Lowest first. A module may import modules of its own layer or of a lower one.
LAYERS: list[tuple[str, ...]] = [
    ("methods",),
    ("suite.core",),
    ("suite.data",),
    ("suite.config",),
    ("suite.results",),
    ("suite.measure",),
    ("suite.trial",),
    ("suite.analysis", "suite.analysis.load", "suite.analysis.compare"),
    ("suite.analysis.claims",),
    ("suite.analysis.leaderboard",),
    # the report draws every figure and owns the page; the leaderboard command writes its tables and calls it
    ("suite.analysis.report", "suite.analysis.leaderboard.cli"),
    ("suite.tracking",),
    ("suite.sweep",),
    ("suite.tools",),
    ("suite", "suite.cli"),
]
PACKAGES = ("methods", "suite")


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the two packages under ``root``."""
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Our modules that ``path`` imports anywhere in its body (``from a import b`` names a.b if it is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in modules}
    return {name for name in found if name in modules}


def layer_of(module: str) -> int:
    """Index of the layer whose most specific prefix matches (``suite`` itself only exactly)."""
    best, best_len = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or (prefix != "suite" and module.startswith(prefix + "."))
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def violations(root: Path) -> list[str]:
    """Every import that runs up a layer, every module outside the layers, and every import circle."""
    modules = module_files(root)
    graph = {name: imports_of(path, modules) for name, path in modules.items()}
    problems = [f"{name} belongs to no layer of LAYERS" for name in modules if layer_of(name) < 0]
    for name, targets in graph.items():
        for target in sorted(targets):
            if layer_of(target) > layer_of(name):
                problems.append(f"{name} imports {target}, a higher layer")
    problems += [f"import circle: {' -> '.join(cycle)}" for cycle in _cycles(graph)]
    return problems


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                out.append(sorted(component) + [sorted(component)[0]])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_imports_only_go_down_and_never_circle():
    assert violations(ROOT) == []


def test_methods_never_import_suite():
    modules = module_files(ROOT)
    offending = {
        name: sorted(t for t in imports_of(path, modules) if t.startswith("suite"))
        for name, path in modules.items()
        if name.startswith("methods")
    }
    assert {k: v for k, v in offending.items() if v} == {}


def test_the_architecture_page_lists_these_layers_in_this_order():
    """docs/ARCHITECTURE.md's layer table is what LAYERS enforces: same layers, lowest first."""
    page = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    table = page.split("| layer (lowest first) |", 1)[1].split("\n\n", 1)[0]
    documented = []
    for line in table.splitlines()[2:]:
        first, *rest = re.findall(r"`([\w.]+)`", line.split("|")[1])  # `suite.analysis` (`load`, `compare`)
        documented.append((first, *(n if n.startswith(PACKAGES) else f"{first}.{n}" for n in rest)))
    assert documented == LAYERS


@pytest.fixture
def scratch(tmp_path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_a_back_import_in_a_scratch_copy_fails(scratch):
    """The check can fail: a lazy import from the data layer up into the trial layer."""
    target = scratch / "suite" / "data" / "specs.py"
    target.write_text(target.read_text() + "\n\ndef _late():\n    from suite.trial.train import run_trial\n")
    found = violations(scratch)
    assert "suite.data.specs imports suite.trial.train, a higher layer" in found
    # the same import also closes a circle (train reaches specs through config): reported, nothing else
    assert all(f.startswith("import circle:") and "suite.data.specs" in f for f in found if "higher layer" not in f)


def test_a_circle_in_a_scratch_copy_fails(scratch):
    """Two modules of one layer that import each other form a circle even though no layer is crossed."""
    target = scratch / "suite" / "trial" / "evaluate.py"  # train imports evaluate
    target.write_text(target.read_text() + "\n\ndef _late():\n    import suite.trial.train\n")
    found = violations(scratch)
    assert len(found) == 1 and found[0].startswith("import circle:") and "suite.trial.evaluate" in found[0]


def test_a_module_outside_the_layers_fails(scratch):
    (scratch / "suite" / "stray.py").write_text('"""A module no layer names."""\n')
    assert violations(scratch) == ["suite.stray belongs to no layer of LAYERS"]
