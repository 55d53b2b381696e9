"""The documentation cannot drift: generated pages match the code, every config key and command is
documented, the site builds strictly (every link and anchor resolves), the README stays short and
free of figures measured on one day, and no page carries a development log."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from suite.cli import build_parser
from suite.config import CONFIG_FIELDS
from suite.tools import docs as gen

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
README_MAX_LINES = 250
GENERATED = {gen.CONFIG_PAGE, gen.CLI_PAGE, gen.METHODS_PAGE, gen.CLAIMS_PAGE, gen.COLUMNS_PAGE, gen.BENCHMARK_PAGE}
# Pages whose content is written elsewhere: the reference run's prose and block, the API stubs.
NOT_GUIDES = {Path("docs/reference-run.md"), Path("docs/digits-reference-run.md"), Path("docs/changelog.md")}

# A number with a unit of time, speed, size or share: what a measurement on one machine and one day gives.
FIGURE = re.compile(
    r"(?<![\w.])\d[\d,]*(?:\.\d+)?\s?"
    r"(?:%|ms|s|min|minutes?|seconds?|h|hours?|GiB|GB|MiB|MB|images/s|queries/s|x|×(?!\d)|pp)(?![\w/])"
)
TEST_COUNT = re.compile(r"\b\d[\d,]*\s+(?:tests|passed|failed|skipped|errors)\b")
COMMIT_HASH = re.compile(r"(?<![\w/-])(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}(?![\w-])")
DEV_LOG = re.compile(
    r"\bcommit\s+[0-9a-f]{7,}|\bthe issue\b|\bissue\s+#?\d+|\b(?:this|the) (?:PR|pull request)\b|\bTODO\b|\bFIXME\b"
    r"|\bpreviously\b|\bwas written after\b|\bfresh clone\b|\b(?:we|I) (?:changed|added|removed|rewrote|renamed)\b",
    re.IGNORECASE,
)
CONFIDENCE_LEVELS = {"95%", "95 %"}
REGENERATE_HINT = f"regenerate with `{gen.REGENERATE}`"


def doc_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def hand_written_pages() -> list[Path]:
    """The guides and other prose pages: every page neither generated nor an API stub."""
    skip = GENERATED | NOT_GUIDES
    return [p for p in doc_pages() if p.relative_to(ROOT) not in skip and "api" not in p.relative_to(DOCS).parts]


def measured_figures(text: str) -> list[str]:
    """Numbers with units and test counts: figures a generated page owns, not the README."""
    return [m.group(0) for m in FIGURE.finditer(text)] + [m.group(0) for m in TEST_COUNT.finditer(text)]


def development_log(text: str) -> list[str]:
    return [m.group(0) for m in COMMIT_HASH.finditer(text)] + [m.group(0) for m in DEV_LOG.finditer(text)]


def undocumented(names: list[str], texts: list[str], pattern: str) -> list[str]:
    """``names`` that no text mentions in the form ``pattern`` (``{name}`` is replaced by the escaped name)."""
    joined = "\n".join(texts)
    return [n for n in names if not re.search(pattern.format(name=re.escape(n)), joined)]


# ---------------------------------------------------------------- the README


def test_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move material into docs/"


def test_readme_states_no_measured_figures():
    found = measured_figures(README.read_text())
    assert found == [], f"README.md states figures a generated page owns: {found}"


@pytest.mark.parametrize("path", hand_written_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_guides_state_no_measured_figures(path):
    """Measured figures belong on generated pages (benchmarks, the reference-run block); "95%" is a confidence
    level, not a measurement."""
    found = [f for f in measured_figures(path.read_text()) if f not in CONFIDENCE_LEVELS]
    assert found == [], f"{path.relative_to(ROOT)} states figures a generated page owns: {found}"


def test_the_figure_check_can_fail():
    text = "The demo took 2 min 35 s, views ran at 6,940 images/s, kNN 88.33 %, 17.98x; 551 tests passed."
    assert measured_figures(text) == ["2 min", "35 s", "6,940 images/s", "88.33 %", "17.98x", "551 tests"]
    assert measured_figures("8×8 digits, a 3×3 stem, Python 3.10, cut:3, k = 200, T = 0.1, ICML 2025") == []


def test_readme_links_resolve():
    missing = [
        link
        for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
        if "://" not in link and not (ROOT / link).exists()
    ]
    assert missing == []


# ---------------------------------------------------------------- no development log


@pytest.mark.parametrize("path", [README, *doc_pages()], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_development_log(path):
    found = development_log(path.read_text())
    assert found == [], f"{path.relative_to(ROOT)} reads like a development log: {found}"


def test_the_development_log_check_can_fail():
    text = "MoCo diverged (commit f30fe11); the issue asks for this; previously the id hashed everything."
    assert development_log(text) == ["f30fe11", "commit f30fe11", "the issue", "previously"]
    assert development_log("trial byol-resnet10t-digits-cut_3-s0-972f5e42; lr 1e-6; deadbeef") == []


# ---------------------------------------------------------------- generated pages


def test_generated_pages_are_current():
    stale = gen.stale_pages(build_parser(), ROOT)
    assert stale == [], f"generated pages differ from the code: {[str(p) for p in stale]}; {REGENERATE_HINT}"


def test_the_staleness_check_can_fail(tmp_path):
    (tmp_path / gen.BENCHMARK_DIR).mkdir(parents=True)
    parser = build_parser()
    assert sorted(map(str, gen.write_pages(parser, tmp_path))) == sorted(map(str, GENERATED))
    assert gen.stale_pages(parser, tmp_path) == []
    page = tmp_path / gen.CONFIG_PAGE
    page.write_text(page.read_text().replace("`epochs`", "`epochz`"))
    (tmp_path / gen.BENCHMARK_DIR / "new.json").write_text(json.dumps({"machine": {}, "views": {}}))
    assert set(gen.stale_pages(parser, tmp_path)) == {gen.CONFIG_PAGE, gen.BENCHMARK_PAGE}


def test_every_config_key_is_on_the_config_page_and_in_a_guide():
    page = (ROOT / gen.CONFIG_PAGE).read_text()
    assert [k for k in CONFIG_FIELDS if f'<span id="{k}"></span>`{k}`' not in page] == [], REGENERATE_HINT
    guides = [p.read_text() for p in hand_written_pages()]
    missing = undocumented(list(CONFIG_FIELDS), guides, r"`{name}(?:[`=.:\s])|\b{name}=")
    assert missing == [], f"config keys no guide mentions: {missing}"


def test_every_subcommand_is_on_the_cli_page_and_in_a_guide():
    names = gen.subcommand_names(build_parser())
    assert {"trial", "sweep", "leaderboard", "claims", "export"} <= set(names)
    page = (ROOT / gen.CLI_PAGE).read_text()
    assert [n for n in names if f"\n## normbench {n}\n" not in page] == [], REGENERATE_HINT
    guides = [p.read_text() for p in hand_written_pages()]
    assert undocumented(names, guides, r"normbench {name}\b") == []


def test_the_mention_check_can_fail():
    texts = ["Set `lr` and `epochs=5`, run `normbench trial`."]
    assert undocumented(["lr", "epochs", "seedz"], texts, r"`{name}(?:[`=.:\s])|\b{name}=") == ["seedz"]
    assert undocumented(["trial", "report"], texts, r"normbench {name}\b") == ["report"]


def test_cli_reference_renders_every_argument_of_a_parser():
    parser = argparse.ArgumentParser(prog="tool", description="A tool.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run things", epilog="exit status: 0 done")
    run.add_argument("paths", nargs="+", metavar="PATH", help="inputs (a|b)")
    run.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where")
    group = run.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue")
    group.add_argument("--update", action="store_true", help="rerun changed")
    page = gen.cli_reference(parser)
    assert "\n## tool run\n" in page and "[`run`](#tool-run)" in page
    assert "tool run [--device {cpu,cuda}] [--resume | --update] PATH [PATH ...]" in page
    assert "| `--device` | `{cpu,cuda}` | `cpu` | where |" in page
    assert r"inputs (a\|b)" in page  # a pipe in a cell is escaped
    assert "continue; not together with `--update`" in page and "exit status: 0 done" in page


def test_benchmark_page_names_the_source_the_machine_and_each_section(tmp_path):
    data = {
        "machine": {"cpu_model": "Some CPU", "cpu_cores": 4, "torch": "2.9", "device": "cuda", "device_name": "GPU X"},
        "settings": {"quick": True},
        "views": {"simclr": {"batched_images_per_s": 1234.5, "batched_vs_tv2_ratio": 3.0}},
        "evaluation": {"knn": {"chunked_peak_mib": 12.0}},
        "units": {"views.simclr.batched_images_per_s": "images/s"},
    }
    (tmp_path / "box.json").write_text(json.dumps(data))
    page = gen.benchmark_results([Path("box.json")], tmp_path)
    assert "## box" in page and "`box.json`" in page and "Some CPU, 4 cores" in page and "GPU X" in page
    assert "### views" in page and "### evaluation" in page
    assert "| simclr | `batched_images_per_s` | 1,234 | images/s |" in page
    assert "| knn | `chunked_peak_mib` | 12 | MiB |" in page


# ---------------------------------------------------------------- the site


def _mkdocs_build(root: Path, site: Path) -> subprocess.CompletedProcess:
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.fail("mkdocs is not installed: pip install -e '.[docs]' (make test installs it)")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_mkdocs_build_strict(tmp_path):
    done = _mkdocs_build(ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "reference" / "config.html").is_file()  # file:// browsable: page.html links


def test_the_strict_build_catches_a_broken_anchor(tmp_path):
    for name in ("docs", "methods", "suite"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    guide = tmp_path / "docs" / "guides" / "sweeps.md"
    guide.write_text(guide.read_text() + "\n[a key](../reference/config.md#no-such-key)\n")
    done = _mkdocs_build(tmp_path, tmp_path / "site")
    assert done.returncode != 0
    assert "does not contain an anchor '#no-such-key'" in done.stdout + done.stderr
