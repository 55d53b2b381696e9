"""The report page: self-contained, small, showing exactly the leaderboard's cells and every claim.

Two results directories: a small hand-written one in the result schema (two methods,
three interventions, three seeds, a long-tailed twin, per-trial OOD norms, a failed
trial, and the claims computed from it), and the committed CPU reference run. The
page is read back with an HTML parser and compared with the Markdown leaderboard and
claims.csv, and its figures' numbers with independent computations. The browser tests
(marker ``browser``) open it in headless Chromium from file://, offline.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest

from suite.analysis.claims import evidence
from suite.analysis.claims.definitions import IDENTITY_TOL, SLOPE_TOL
from suite.analysis.claims.report import load_claims, write_claims
from suite.analysis.claims.verdicts import evaluate_claims
from suite.analysis.compare import CONV_FRACTION
from suite.analysis.leaderboard import cli as leaderboard_cli
from suite.analysis.leaderboard import render
from suite.analysis.leaderboard.board import load_board
from suite.analysis.leaderboard.cli import write_leaderboard
from suite.analysis.load import load_results
from suite.analysis.report import cli as report_cli
from suite.analysis.report import data, html, plotdata
from suite.analysis.report.figures import exported_figures
from suite.analysis.report.page import build_page, write_page
from suite.core.errors import ConfigError
from suite.results import schema

REPO = Path(__file__).resolve().parents[2]
REFERENCE_REL = "results/reference/digits-reference"  # as the committed files name it
REFERENCE = REPO / REFERENCE_REL
COMMITTED = REFERENCE / "leaderboard"  # `normbench leaderboard results/reference/digits-reference`, committed
MAX_BYTES = 2 * 1024 * 1024
NAN = float("nan")


# ---------------------------------------------------------------- a small results directory, by hand
METHODS = ("simclr", "byol")
INTERVENTIONS = {"none": 1.0, "cut:3": 1 / 3, "gradscale:1": 1.0}  # -> initial norm factor
SEEDS = (0, 1, 2)
EPOCHS = 4


def _trial_rows(rng: np.random.Generator):
    """(trials, curves, norm_bins, class_norms, eval_norms per trial) with plausible, seeded numbers."""
    trials, curves, bins, classes, eval_norms = [], [], [], [], {}
    cases = [(m, iv, s, NAN) for m in METHODS for iv in INTERVENTIONS for s in SEEDS]
    cases += [("simclr", "none", s, 10.0) for s in SEEDS]  # long-tailed twins of the simclr baselines
    for method, iv, seed, imbalance in cases:
        long_tailed = not math.isnan(imbalance)
        tid = f"{method}-{iv.replace(':', '_')}-{'lt-' if long_tailed else ''}s{seed}"
        base = 0.55 + 0.1 * (method == "simclr") + 0.03 * (iv == "cut:3") + 0.01 * seed
        init, norm0 = base - 0.2, 4.0 * INTERVENTIONS[iv]
        trials.append(
            dict(
                trial_id=tid,
                status="completed",
                error=None,
                method=method,
                backbone="test_resnet",
                dataset="digits",
                intervention=iv,
                imbalance=imbalance,
                holdout_classes="[8, 9]",
                epochs=EPOCHS,
                batch_size=64,
                optimizer="sgd",
                lr=0.06,
                warmup_epochs=1,  # evidence.units_c6 needs every protocol column (compare.PROTOCOL_COLUMNS)
                weight_decay=0.0,
                seed=seed,
                image_size=16,
                knn_k="[200, 20]",
                knn_top1_k200=base,
                knn_top1_k20=base + 0.02,
                knn_top1_k200_init=init,
                knn_top1_k20_init=init + 0.01,
                linear_top1=base + 0.1,
                emb_norm_mean=norm0 * 2.5,
                feat_norm_mean=6.0 + seed,
                test_emb_norm_mean=norm0 * 2.4,
                emb_correct_auroc=0.6 + 0.02 * seed,
                emb_ood_auroc=0.7 - 0.01 * seed,
                emb_freq_spearman=0.5 if long_tailed else NAN,
                final_loss=1.0,
                epochs_completed=EPOCHS,
            )
        )
        speed = 1.6 if iv == "cut:3" else 1.0
        for epoch in range(EPOCHS + 1):
            norm = norm0 * (1 + 0.4 * epoch)
            trained = epoch >= 1
            curves.append(
                dict(
                    trial_id=tid,
                    epoch=epoch,
                    loss=5.0 - min(4.0, speed * epoch + 0.1 * seed) if trained else NAN,
                    lr=0.06,
                    knn_top1_k200=init + (base - init) * min(1.0, speed * epoch / EPOCHS),
                    knn_top1_k20=init + 0.01 + (base - init) * epoch / EPOCHS,
                    emb_norm_mean=norm if trained else NAN,
                    test_emb_norm_mean=norm * 0.97,
                    emb_grad_norm_mean=0.1 / norm * (1 + 0.05 * rng.standard_normal()) if trained else NAN,
                    emb_grad_cos_abs_mean=1e-5 if trained else NAN,
                    probe_emb_norm_mean=norm * 1.01,
                    probe_angle_change_mean=2.0 / norm**2 * math.exp(0.1 * rng.standard_normal()) if trained else NAN,
                    emb_grad_identity_dev=abs(2e-7 * (1 + rng.standard_normal())),
                    emb_step_turn_slope=(-1.0 if iv == "gradscale:1" else -2.0) + 1e-6 * rng.standard_normal(),
                    emb_step_turn_slope_placebo=1e-7 * rng.standard_normal(),
                )
            )
        for b in range(10):
            bins.append(
                dict(trial_id=tid, vector="embedding", binning="decile", bin=b, norm_lo=b, norm_hi=b + 1, count=30)
                | dict(accuracy=base * (0.7 + 0.03 * b))
            )
        for c in range(8):
            count = int(round(100 * 10 ** (-c / 7))) if long_tailed else 100
            level = norm0 * 2.4 * (1 + 0.02 * c)
            long_tail = 1 + 0.05 * math.log(count / 100) if long_tailed else 1.0
            classes.append(
                dict(trial_id=tid, vector="embedding", **{"class": c}, train_count=count, test_count=30)
                | dict(norm_mean=level * long_tail)
            )
        test = rng.normal(norm0 * 2.4, 1.0, 120)
        ood = rng.normal(norm0 * 1.8, 1.0, 40)
        eval_norms[tid] = pd.DataFrame(
            dict(
                split=["test"] * len(test) + ["ood"] * len(ood),
                vector="embedding",
                norm=np.abs(np.r_[test, ood]),
                label=0,
                correct=True,
            )
        )
    trials.append(dict(trials[0], trial_id="simclr-none-s9-failed", seed=9, status="failed", error="non-finite loss"))
    return trials, curves, bins, classes, eval_norms


def write_small_results(root: Path) -> Path:
    """A results directory as `normbench trial`/`collect_results` leave one, plus claims.csv."""
    trials, curves, bins, classes, eval_norms = _trial_rows(np.random.default_rng(0))
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(trials).to_csv(root / "trials.csv", index=False)
    pd.DataFrame(curves).to_parquet(root / "curves.parquet")
    pd.DataFrame(bins).to_csv(root / "norm_bins.csv", index=False)
    pd.DataFrame(classes).to_csv(root / "class_norms.csv", index=False)
    for tid, frame in eval_norms.items():
        (root / tid).mkdir()
        frame.to_parquet(root / tid / "eval_norms.parquet")
    results = load_results([root])
    write_claims(evaluate_claims(results.trials, results.curves, results.class_norms), root, [str(root)])
    return root


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory) -> Path:
    return write_small_results(tmp_path_factory.mktemp("small") / "results")


def _built(directory: Path, out: Path):
    results, board, _ = load_board([directory])
    claims = load_claims(results.dirs)
    path = write_page(results, board, claims, out)
    return results, board, claims, path


@pytest.fixture(scope="module")
def small(small_dir, tmp_path_factory):
    return _built(small_dir, tmp_path_factory.mktemp("small-page") / "report.html")


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    """Only a trials table (no curves, norm bins, class norms, per-trial norms or claims), one trial failed."""
    root = write_small_results(tmp_path_factory.mktemp("sparse") / "results")
    for name in ("curves.parquet", "norm_bins.csv", "class_norms.csv", "claims.csv", "claims.md"):
        (root / name).unlink()
    for folder in [p for p in root.iterdir() if p.is_dir()]:
        shutil.rmtree(folder)
    return _built(root, root / "report.html")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return _built(REFERENCE, tmp_path_factory.mktemp("reference-page") / "report.html")


# ---------------------------------------------------------------- reading a page back
class Page(HTMLParser):
    """What the tests read from a page: every tag, the headline's header and rows, the claims rows,
    the scripts and styles (script and style contents are raw text to the parser, never tags)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.header: list[dict] = []  # per headline column: label, title, key, group
        self.rows: list[dict] = []  # per headline row: group, cells, best
        self.claims: list[dict] = []  # the attributes of every tr[data-claim]
        self.scripts: list[tuple[dict, str]] = []
        self.styles: list[str] = []
        self._in_headline = False
        self._cell: dict | None = None
        self._raw: tuple[str, dict] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        self.tags.append((tag, a))
        if tag in ("script", "style"):
            self._raw = (tag, a)
            self._text = []
        if tag == "table" and a.get("id") == "headline":
            self._in_headline = True
        if tag == "tr" and "data-claim" in a:
            self.claims.append(a)
        if not self._in_headline:
            return
        if tag == "tr" and "data-group" in a:
            self.rows.append({"group": a["data-group"], "cells": [], "best": []})
        elif tag == "th":
            self._cell = {
                "label": "",
                "title": a.get("title"),
                "key": a.get("data-key"),
                "group": a.get("data-column-group"),
            }
            self.header.append(self._cell)
        elif tag == "td" and self.rows:
            self._cell = {"label": ""}
            self.rows[-1]["cells"].append(self._cell)
            self.rows[-1]["best"].append("best" in a.get("class", "").split())

    def handle_endtag(self, tag):
        if tag in ("th", "td"):
            self._cell = None
        if tag == "table":
            self._in_headline = False
        if tag in ("script", "style") and self._raw is not None:
            text = "".join(self._text)
            if tag == "script":
                self.scripts.append((self._raw[1], text))
            else:
                self.styles.append(text)
            self._raw = None

    def handle_data(self, text):
        if self._raw is not None:
            self._text.append(text)
        elif self._cell is not None:
            self._cell["label"] += text

    def cells(self) -> list[list[str]]:
        return [[c["label"] for c in r["cells"]] for r in self.rows]

    def data(self) -> dict:
        return json.loads(next(text for attrs, text in self.scripts if attrs.get("id") == "report-data"))

    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.tags if "id" in a}


def read_page(path: Path) -> Page:
    return Page(path.read_text(encoding="utf-8"))


def markdown_headline(md: str) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """(header, cells, bold) of the first table of a leaderboard.md (pipes unescaped, ** removed)."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])])
    header, body = table[0], table[2:]
    bold = [[c.startswith("**") and c.endswith("**") and len(c) > 4 for c in row] for row in body]
    return header, [[c[2:-2] if b else c for c, b in zip(row, flags)] for row, flags in zip(body, bold)], bold


URL_ATTRS = ("src", "href", "srcset", "poster", "data", "action", "formaction", "manifest")


def fetched_urls(page: Page) -> list[str]:
    """Every address the page would fetch when it opens: tag attributes, CSS url() and @import."""
    found = []
    for tag, attrs in page.tags:
        if tag == "link":
            found.append(f"<link {attrs}>")
        if tag == "script" and "src" in attrs:
            found.append(f"<script src={attrs['src']}>")
        for name in URL_ATTRS:
            value = attrs.get(name, "").strip()
            if value and not value.startswith("#") and not (tag == "a" and name == "href"):
                found.append(f"<{tag} {name}={value}>")
            if tag == "a" and name == "href" and re.match(r"^(https?:)?//", value):
                found.append(f"<a href={value}>")  # not fetched on open, but the page links nowhere outside
    for css in page.styles + [a.get("style", "") for _, a in page.tags]:
        found += re.findall(r"url\([^)]*\)|@import[^;]*", css)
    return found


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Dom(HTMLParser):
    """A page as a flat list of elements in document order, each with its attributes, its text (of every
    descendant) and ``end``: its descendants are ``nodes[index + 1 : end]``."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.nodes: list[dict] = []
        self.chunks: list[tuple[int, str]] = []  # (the innermost open element, its text), in order
        self._open: list[int] = []
        self.feed(text)
        self.close()
        for i in self._open:
            self.nodes[i]["end"] = len(self.nodes)

    def handle_starttag(self, tag, attrs):
        self.nodes.append({"tag": tag, "attrs": {k: v or "" for k, v in attrs}, "parts": [], "end": None})
        self.nodes[-1]["index"] = len(self.nodes) - 1
        if tag in VOID:
            self.nodes[-1]["end"] = len(self.nodes)
        else:
            self._open.append(len(self.nodes) - 1)

    def handle_endtag(self, tag):
        for depth in range(len(self._open) - 1, -1, -1):
            if self.nodes[self._open[depth]]["tag"] == tag:
                for i in self._open[depth:]:
                    self.nodes[i]["end"] = len(self.nodes)
                del self._open[depth:]
                break

    def handle_data(self, text):
        if self._open and self.nodes[self._open[-1]]["tag"] not in ("script", "style"):
            for i in self._open:
                self.nodes[i]["parts"].append(text)
            self.chunks.append((self._open[-1], text))

    @staticmethod
    def text(node: dict) -> str:
        return " ".join("".join(node["parts"]).split())

    def inside(self, node: dict, tag: str | None = None, **attrs: str) -> list[dict]:
        """Descendants of ``node`` with ``tag`` whose attributes include ``attrs`` (``class_``: one class)."""
        out = []
        for n in self.nodes[node["index"] + 1 : node["end"]]:
            if tag is not None and n["tag"] != tag:
                continue
            if "class_" in attrs and attrs["class_"] not in n["attrs"].get("class", "").split():
                continue
            if all(n["attrs"].get(k) == v for k, v in attrs.items() if k != "class_"):
                out.append(n)
        return out

    def text_without(self, node: dict, skipped: list[dict]) -> str:
        """The text of ``node`` less that of the ``skipped`` elements inside it."""
        inside = range(node["index"], node["end"])
        parts = [
            t
            for owner, t in self.chunks
            if owner in inside and not any(owner in range(n["index"], n["end"]) for n in skipped)
        ]
        return " ".join("".join(parts).split())

    def by_id(self, ident: str) -> dict:
        return next(n for n in self.nodes if n["attrs"].get("id") == ident)


# ---------------------------------------------------------------- the page as a file
@pytest.mark.parametrize("which", ["small", "reference"])
def test_page_fetches_nothing_and_inlines_the_chart_library_once(which, request):
    _, _, _, path = request.getfixturevalue(which)
    page = read_page(path)
    assert fetched_urls(page) == []
    assert not any("src" in attrs for attrs, _ in page.scripts)
    code = [text for attrs, text in page.scripts if attrs.get("type") != "application/json"]
    assert sum(text.count("window.vegaEmbed=") for text in code) == 1
    assert {"headline", "filter", "detail", "claims", "claims-table", "forest"} <= page.ids()


def _as_committed(page: str) -> str:
    """A page of the reference run as the committed one was written (the directory named as on the command
    line, relative to the repository), without the inlined chart library (vl-convert's bundle: it follows
    the installed version, not this code)."""
    page = page.replace(str(REFERENCE), REFERENCE_REL)
    scripts = [m for m in re.finditer(r"<script>(.*?)</script>", page, flags=re.S) if "window.vegaEmbed=" in m[1]]
    assert len(scripts) == 1  # "</script" inside a script is escaped, so each match is one whole script
    return page[: scripts[0].start(1)] + "[the chart library]" + page[scripts[0].end(1) :]


def test_reference_page_is_the_committed_one_figure_for_figure(reference):
    """The committed leaderboard.html of the reference run is what the code writes today: every chart spec
    (Vega-Lite) equal, then the whole page byte for byte, but for the chart library."""
    fresh = _as_committed(reference[3].read_text(encoding="utf-8"))
    committed = _as_committed((COMMITTED / "leaderboard.html").read_text(encoding="utf-8"))
    fresh_data, committed_data = Page(fresh).data(), Page(committed).data()
    assert sorted(fresh_data["charts"]) == sorted(committed_data["charts"])
    for key, spec in committed_data["charts"].items():
        assert fresh_data["charts"][key] == spec, f"chart {key} differs from the committed page's"
    assert fresh_data["detail"] == committed_data["detail"]
    assert fresh == committed


def test_reference_tables_are_the_committed_ones(reference, tmp_path):
    """leaderboard.csv, .tex, .md and failures.csv of the reference run, byte for byte as committed (the
    Markdown file's links name the figures the leaderboard draws; drawing them is not compared)."""
    results, board, claims, _ = reference
    written = write_leaderboard(
        [REFERENCE], tmp_path, formats=("csv", "tex"), plots=False, loaded=(results, board, None)
    )
    for name in ("leaderboard.csv", "leaderboard.tex", "failures.csv"):
        assert (tmp_path / name).read_bytes() == (COMMITTED / name).read_bytes(), name
    assert set(written) == {"csv", "tex", "failures_csv"}
    plots = {name: tmp_path / "plots" / f"{name}.png" for name in exported_figures(results, board)}
    md = render.to_markdown(board, [REFERENCE_REL], plots, tmp_path, claims)
    assert md == (COMMITTED / "leaderboard.md").read_text(encoding="utf-8")


def test_reference_page_is_under_two_megabytes(reference):
    size = reference[3].stat().st_size
    print(f"\nreference page: {size} bytes ({size / 2**20:.2f} MiB)")
    assert size <= MAX_BYTES


@pytest.mark.parametrize("which", ["small", "reference"])
def test_headline_cells_are_the_markdown_leaderboards(which, request, tmp_path):
    results, board, _, path = request.getfixturevalue(which)
    written = write_leaderboard([str(d) for d in results.dirs], tmp_path / "lb", formats=("md", "csv"), plots=False)
    header, cells, bold = markdown_headline(written["md"].read_text())
    page = read_page(path)
    assert [h["label"] for h in page.header] == header
    assert page.cells() == cells  # same cells, same formatting, same row order
    assert [r["best"] for r in page.rows] == bold
    assert [int(r["group"]) for r in page.rows] == board.table["group"].tolist()
    assert all(h["title"] for h in page.header)  # the raw column names as tooltips

    # the numbers themselves, from the machine-readable CSV: the metric in % with 2 decimals, the seeds
    frame = pd.read_csv(written["csv"])
    metric_at = [h["key"] for h in page.header].index(board.metric)
    shown = [float(row[metric_at].split(" ± ")[0]) for row in page.cells()]
    np.testing.assert_allclose(shown, 100 * frame[f"{board.metric}_mean"].to_numpy(), atol=0.005 + 1e-9)
    seeds_at = [h["key"] for h in page.header].index("n")
    assert [int(row[seeds_at].split()[0]) for row in page.cells()] == frame["n"].tolist()
    delta_at = [h["key"] for h in page.header].index(f"delta_{board.metric}")
    for row, base in zip(page.cells(), frame["is_baseline"]):
        assert (row[delta_at] == "—") == bool(base)


@pytest.mark.parametrize("which", ["small", "reference"])
def test_every_claims_row_is_listed_and_linked_to_its_figure(which, request):
    results, _, _, path = request.getfixturevalue(which)
    committed = pd.read_csv(results.dirs[0] / "claims.csv")
    page = read_page(path)
    listed = sorted((a["data-claim"], a["data-measure"], a["data-method"], a["data-verdict"]) for a in page.claims)
    expected = zip(committed["claim"], committed["measure"], committed["method"], committed["verdict"])
    assert listed == sorted(expected)
    figures = {a["id"] for tag, a in page.tags if tag == "figure"}
    links = {a["href"] for tag, a in page.tags if tag == "a" and "verdict" in a.get("class", "")}
    assert {f"#plot-{c}" for c in ("C2b", "C3", "C4", "C5", "C7", "C8", "C9")} <= links
    assert {href[1:] for href in links} <= figures
    charts = page.data()["charts"]
    drawn = {a["data-chart"] for tag, a in page.tags if "data-chart" in a}
    # the committed reference run predates the mechanism checks: its C2b and C3 figures say "not measured"
    expected = {"forest", "C2b", "C3", "C4", "C7", "C8", "C9"} if which == "small" else {"forest", "C7", "C8", "C9"}
    assert drawn == set(charts) and expected <= drawn


def test_without_claims_csv_the_panel_says_how_to_get_it(small):
    results, board, _, _ = small
    page = Page(build_page(results, board, None))
    assert page.claims == []
    assert "normbench claims" in build_page(results, board, None)


def test_a_page_of_only_a_trials_table_says_what_is_missing(sparse):
    results, board, claims, path = sparse
    page = read_page(path)
    assert claims is None and page.claims == [] and len(page.rows) == len(board.table)
    payload = page.data()
    assert payload["detail"]["spec"] is None and all(t["curve"] == {} for t in payload["trials"])
    assert set(payload["charts"]) == {"forest"}  # Δ needs the trials table only
    text = path.read_text(encoding="utf-8")
    assert text.count('class="no-data"') == 7 and "normbench claims" in text


def test_failed_trials_are_listed(small):
    results, board, _, path = small
    text = path.read_text(encoding="utf-8")
    assert "Failed, interrupted or incomplete trials (1)" in text and "simclr-none-s9-failed" in text


# ---------------------------------------------------------------- the claims: matrix, units, captions
VERDICT_WORDS = ("holds", "does not hold", "inconclusive", "not applicable", "not measured", "not testable")
POOLED_SUFFIX = " (random effects over methods)"


def _committed_claims(results) -> pd.DataFrame:
    return pd.read_csv(results.dirs[0] / "claims.csv", keep_default_na=False, na_values=[""])


def _four_digits(value: float) -> str:
    return f"{value:.4g}"


@pytest.mark.parametrize("which", ["small", "reference"])
def test_verdict_matrix_has_a_row_per_claim_in_words_and_a_cell_per_method(which, request):
    results, _, _, path = request.getfixturevalue(which)
    committed = _committed_claims(results)
    dom = Dom(path.read_text(encoding="utf-8"))
    claims_section, matrix, table = dom.by_id("claims"), dom.by_id("verdict-matrix"), dom.by_id("claims-table")
    assert claims_section["index"] < matrix["index"] < table["index"] < claims_section["end"]  # on top
    legend = dom.inside(dom.by_id("verdict-legend"), "span", class_="verdict-swatch")
    assert [n["attrs"]["data-verdict"] for n in legend] == list(VERDICT_WORDS)

    methods = sorted(set(committed["method"]) - {"all"}) + ["all"]
    header = [n["attrs"]["data-method"] for n in dom.inside(matrix, "th") if "data-method" in n["attrs"]]
    assert header == methods
    rows = [n for n in dom.inside(matrix, "tr") if "data-matrix-claim" in n["attrs"]]
    expected_rows = list(dict.fromkeys(zip(committed["claim"], committed["measure"])))
    assert [(r["attrs"]["data-matrix-claim"], r["attrs"]["data-measure"]) for r in rows] == expected_rows
    row_ids = {n["attrs"]["id"]: n["attrs"] for n in dom.inside(table, "tr") if "data-claim" in n["attrs"]}
    by_key = committed.set_index(["claim", "measure", "method"])
    for row in rows:
        claim, measure = row["attrs"]["data-matrix-claim"], row["attrs"]["data-measure"]
        first = committed[(committed["claim"] == claim) & (committed["measure"] == measure)].iloc[0]
        head = Dom.text(dom.inside(row, "th")[0])
        assert first["statement"] in head  # the claim in words, not only a tooltip
        assert "value: " + first["statistic"].removesuffix(POOLED_SUFFIX) in head
        cells = dom.inside(row, "td", class_="verdict-cell")
        assert [c["attrs"]["data-method"] for c in cells] == methods
        for cell in cells:
            method = cell["attrs"]["data-method"]
            if (claim, measure, method) not in by_key.index:
                assert cell["attrs"]["data-verdict"] == "" and Dom.text(cell) == "—"
                continue
            expected = by_key.loc[(claim, measure, method)]
            assert cell["attrs"]["data-verdict"] == expected["verdict"]
            assert Dom.text(dom.inside(cell, "span", class_="verdict-word")[0]) == expected["verdict"]
            number = dom.inside(cell, "span", class_="num")
            if pd.isna(expected["value"]):
                assert number == []
            else:
                assert float(Dom.text(number[0])) == pytest.approx(expected["value"], rel=5e-4)
            target = row_ids[dom.inside(cell, "a")[0]["attrs"]["href"][1:]]  # the cell links to its own row
            assert (target["data-claim"], target["data-measure"], target["data-method"]) == (claim, measure, method)


@pytest.mark.parametrize("which", ["small", "reference"])
def test_every_value_says_what_it_measures(which, request):
    """No bare number: each value of the claims table comes with its unit, and its row with the statistic."""
    results, _, _, path = request.getfixturevalue(which)
    committed = _committed_claims(results).set_index(["claim", "measure", "method"])
    dom = Dom(path.read_text(encoding="utf-8"))
    rows = [n for n in dom.inside(dom.by_id("claims-table"), "tr") if "data-claim" in n["attrs"]]
    assert len(rows) == len(committed)
    units = {}
    for row in rows:
        key = (row["attrs"]["data-claim"], row["attrs"]["data-measure"], row["attrs"]["data-method"])
        expected = committed.loc[key]
        assert row["attrs"]["title"] == expected["statistic"].removesuffix(POOLED_SUFFIX)
        cell = dom.inside(row, "td", class_="value")[0]
        if pd.isna(expected["value"]):
            assert Dom.text(cell) == "—"
            continue
        number, unit = Dom.text(dom.inside(cell, class_="num")[0]), Dom.text(dom.inside(cell, class_="unit")[0])
        assert float(number) == pytest.approx(expected["value"], rel=5e-4) and re.search("[a-zA-Z|]", unit)
        assert Dom.text(cell) == f"{number} {unit}"
        units[key[0]] = unit
    # the examples: C4/C5 values are fractions of the baseline's improvement, C1 a log ratio
    if which == "reference":
        assert units["C4"] == "fraction of the baseline's improvement" and units["C1"] == "log ratio"
        assert units["C9"] == "Spearman correlation"
    else:
        assert units["C4"] == units["C5"] == "fraction of the baseline's improvement"


def test_value_units_come_from_the_statistic_text():
    unit = html.value_unit
    assert unit("mean effect on the loss (fraction of the baseline's improvement) (random effects over methods)") == (
        "fraction of the baseline's improvement"
    )
    assert unit("mean log(final emb_norm_mean at the lowest / at the highest weight decay)") == "log ratio"
    assert unit("mean emb_ood_auroc trained minus untrained") == "AUROC difference (trained - untrained)"
    assert unit("median of something new") == "median of something new"  # unknown: the statistic itself


# numbers a caption may state besides claims.csv's: the claims' own thresholds and the figures' design
CAPTION_CONSTANTS = {
    IDENTITY_TOL,
    SLOPE_TOL,
    CONV_FRACTION,
    *plotdata.OOD_CLIP,
    plotdata.MIN_BIN_SAMPLES,
    95.0,  # "95% interval"
    -2.0,  # C3's theory slope, "p - 2", "+2"
    2.0,
    0.0,  # "theory 0", "0%"
    100.0,  # "100%"
    1.0,  # "epoch-1"
    -1.0,
}


@pytest.mark.parametrize("which", ["small", "reference"])
def test_caption_numbers_are_the_claims_rows(which, request):
    """Every number a figure's caption states about its claim is that claim's row of claims.csv, and the
    caption states every value of it; no other number but the claims' thresholds and the design constants."""
    results, _, _, path = request.getfixturevalue(which)
    committed = _committed_claims(results)
    dom = Dom(path.read_text(encoding="utf-8"))
    figures = [n for n in dom.nodes if n["tag"] == "figure"]
    checked = 0
    for figure in figures:
        caption = dom.inside(figure, "figcaption")[0]
        spans = dom.inside(caption, "span", class_="claim-value")
        claims = figure["attrs"].get("data-claims", "").split()
        shown = {}
        for span in spans:
            a = span["attrs"]
            assert a["data-claim"] in claims
            shown[(a["data-claim"], a["data-measure"], a["data-method"])] = Dom.text(span)
        mine = committed[committed["claim"].isin(claims) & committed["value"].notna()]
        expected = {(r.claim, r.measure, r.method): _four_digits(r.value) for r in mine.itertuples()}
        assert shown == expected
        checked += len(shown)
        text = dom.text_without(caption, spans)
        text = re.sub(r"[A-Za-z_]+\d[\w.]*", " ", text)  # names such as C2b, knn_top1_k200
        numbers = {float(x) for x in re.findall(r"[-+±]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text.replace("±", ""))}
        assert numbers <= CAPTION_CONSTANTS, (figure["attrs"]["id"], numbers - CAPTION_CONSTANTS)
    assert (
        checked
        == (committed["claim"].isin(["C2b", "C3", "C4", "C5", "C7", "C8", "C9"]) & committed["value"].notna()).sum()
    )


@pytest.mark.slow
def test_page_of_real_trials_shows_the_trainers_tables(tmp_path, tiny_trial):
    """Two real tiny trials (the real trainer's tables, not hand-written ones) through the page."""
    from suite.config import make_config
    from suite.results.store import collect_results
    from suite.trial.train import run_trial

    out = tmp_path / "res"
    for intervention in ("none", "cut:3"):
        cfg = make_config({**tiny_trial, "intervention": intervention, "eval_every": 1, "holdout_classes": [8, 9]})
        run_trial(cfg, out / cfg.trial_id, progress=False)
    collect_results(out)
    written = write_leaderboard([out], tmp_path / "lb", plots=False)
    _, cells, _ = markdown_headline(written["md"].read_text())
    page = read_page(written["html"])
    assert page.cells() == cells and len(page.rows) == 2 and fetched_urls(page) == []
    payload = page.data()
    assert all(t["curve"]["epoch"] == [0, 1, 2] for t in payload["trials"])  # the epoch-0 row of the untrained net
    assert {"forest", "C8"} <= set(payload["charts"])


# ---------------------------------------------------------------- the embedded data
def test_detail_data_holds_each_groups_trials_and_curves(small):
    results, board, _, path = small
    payload = read_page(path).data()
    trials = payload["trials"]
    assert len(trials) == len(board.trials)
    for gid, group in payload["groups"].items():
        members = board.trials[board.trials["group"] == int(gid)]
        expected = sorted(f"{d}/{t}" for d, t in zip(members["results_dir"], members["trial_id"]))
        assert sorted(trials[i]["path"] for i in group["trials"]) == expected
        assert len(group["config"]) == len(payload["configColumns"])
    curves = results.curves.set_index(["trial_id", "epoch"]).sort_index()
    for trial in trials:
        tid = Path(trial["path"]).name
        epochs = trial["curve"]["epoch"]
        assert epochs == list(range(EPOCHS + 1))
        for column in (schema.LOSS, schema.GRAD_NORM, board.knn_column):
            want = curves.loc[tid][column].to_numpy(float)
            got = np.array([np.nan if v is None else v for v in trial["curve"][column]], dtype=float)
            np.testing.assert_allclose(got, want, rtol=1e-3, equal_nan=True)
    seeds = {gid: sorted(trials[i]["label"] for i in g["trials"]) for gid, g in payload["groups"].items()}
    assert all(labels == [f"seed {s}" for s in SEEDS] for labels in seeds.values())


def test_rounding_and_json_are_safe_inside_a_script():
    assert data.rounded([1 / 3, NAN, float("inf"), 12345.678, None]) == [0.3333, None, None, 12350.0, None]
    text = data.to_json({"a": "</script><!-- x", "b": [1.5, None]})
    assert "<" not in text and json.loads(text) == {"a": "</script><!-- x", "b": [1.5, None]}


# ---------------------------------------------------------------- the figures' numbers
def test_mechanism_points_are_the_curves_checks_minus_the_prediction(small):
    results, board, _, _ = small
    trials = data.completed_trials(results, board)
    points = plotdata.mechanism_points(results.curves, trials)
    c = results.curves.merge(trials[["results_dir", "trial_id", "intervention"]], on=["results_dir", "trial_id"])
    theory = np.where(c["intervention"] == "gradscale:1", -1.0, -2.0)  # p - 2, computed here by hand
    for check, expected in (
        ("C2b: relative deviation", c[schema.GRAD_IDENTITY_DEV]),
        ("C3: measured - predicted slope", c[schema.STEP_TURN_SLOPE] - theory),
        ("C3: placebo - predicted slope", c[schema.STEP_TURN_PLACEBO] - theory),
    ):
        mine = points[points["check"] == check]
        assert sorted(mine["value"]) == pytest.approx(sorted(expected.dropna()))
    placebo = points[points["check"] == "C3: placebo - predicted slope"]
    assert (placebo["value"] > 0.9).all()  # the placebo lands near +2 (or +1 under GradScale): far outside the band


def test_time_to_target_pairs_are_the_claims_pairs(reference):
    """The race figure pairs as the C4/C5 verdicts do: the pairs it draws are the units the claim judges, and
    the pairs it lists as left out are the ones the claim's checks left out."""
    from suite.analysis.claims.verdicts import claims_context

    results, board, _, _ = reference
    trials = data.completed_trials(results, board)
    races = plotdata.races(trials, results.curves, board.knn_column)
    ctx = claims_context(trials.drop(columns=["group"]), results.curves)
    for claim, kind in (("C4", "cut"), ("C5", "gradscale")):
        for measure, column, falling in (("loss", schema.LOSS, True), ("knn", board.knn_column, False)):
            units = evidence.units_effect(ctx, kind, column, falling)
            mine = races[(races["claim"] == claim) & (races["measure"] == measure)]
            left = sorted(mine.loc[mine["outcome"] == "left out", "arm"])
            checked = sorted(item.split(": ", 1)[0] for items in units.checks.values() for item in items)
            assert left == checked, (claim, measure)
            raced = units.frame[units.frame["direction"].notna()]  # judged pairs whose race is observable
            judged = sorted(label.rsplit(" ", 1)[0] for label in raced["label"])
            kept = mine[~mine["outcome"].isin(["left out", "not observable"])]
            assert sorted(kept["arm"]) == judged, (claim, measure)
    assert len(races) and set(races["claim"]) == {"C4", "C5"}
    assert (races["outcome"] == "left out").sum() > 0 and races.loc[
        races["outcome"] == "left out", "why"
    ].str.len().min() > 10


def _eval_norms(trials: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(
        [
            pd.read_parquet(Path(d) / t / "eval_norms.parquet").assign(results_dir=d, trial_id=t)
            for d, t in zip(trials["results_dir"], trials["trial_id"])
        ]
    )


def test_ood_histograms_count_every_sample_per_trial_with_outliers_clipped(small):
    results, board, _, _ = small
    trials = data.completed_trials(results, board)
    norms = _eval_norms(trials)
    outlier = norms["trial_id"].eq(trials["trial_id"].iloc[0]) & norms["split"].eq("test")
    norms.loc[norms.index[outlier.to_numpy()][0], "norm"] = 4000.0  # one sample far out, as byol·cut:3's
    hist = plotdata.ood_histograms(norms, trials, data.group_labels(board))
    assert len(hist.groupby(["group", "seed"])) == len(trials)  # one panel per trial: every one has OOD samples
    for (group, seed), panel in hist.groupby(["group", "seed"]):
        member = trials[(trials["group"] == group) & (trials["seed"] == int(seed.split()[1]))]
        assert len(member) == 1
        mine = norms[(norms["trial_id"] == member["trial_id"].iloc[0]) & (norms["vector"] == "embedding")]
        lo, hi = np.percentile(mine["norm"], [1, 99])  # both splits together
        for split, sub in panel.groupby("split"):
            values = mine.loc[mine["split"] == split, "norm"].to_numpy()
            assert sub["count"].sum() == sub["n"].iloc[0] == len(values)  # every sample, outliers in end bins
            assert sub["share"].sum() == pytest.approx(1.0)
            assert sub["clipped"].iloc[0] == ((values < lo) | (values > hi)).sum()
            assert sub["lo"].min() == pytest.approx(lo) and sub["hi"].max() == pytest.approx(hi)
            assert np.allclose(np.diff(np.log(sub["hi"])), np.diff(np.log(sub["hi"]))[0])  # log-spaced
    first = hist[hist["seed"] == "seed 0"]
    first = first[first["group"] == trials["group"].iloc[0]]
    assert first["hi"].max() < 100 and first["clipped"].max() >= 1  # the outlier does not set the range


def test_norm_bin_accuracy_pools_samples_and_leaves_out_near_empty_bins(reference):
    results, board, _, _ = reference
    trials = data.completed_trials(results, board)
    bins = plotdata.norm_bin_accuracy(results.norm_bins, trials)
    raw = pd.read_csv(REFERENCE / "norm_bins.csv").merge(trials[["trial_id", "method"]], on="trial_id")
    raw = raw[raw["count"] > 0]
    raw["correct"] = raw["accuracy"] * raw["count"]
    pooled = raw.groupby(["vector", "binning", "method", "bin"]).agg(correct=("correct", "sum"), n=("count", "sum"))
    kept = pooled[pooled["n"] >= plotdata.MIN_BIN_SAMPLES]
    assert 0 < len(kept) < len(pooled)  # equal-width bins in the tails hold few samples: some are left out
    mine = bins.set_index(["vector", "binning", "method", "bin"]).sort_index()
    assert list(mine.index) == list(kept.index)
    np.testing.assert_allclose(mine["accuracy"], kept["correct"] / kept["n"])
    assert mine["samples"].tolist() == kept["n"].astype(int).tolist()
    spec = next(n for _, n in _walk(Page(reference[3].read_text()).data()["charts"]["C7"]) if "size" in n)
    assert spec["size"]["field"] == "samples"  # a point's size shows the samples behind it


def test_each_arm_trial_is_paired_with_the_none_trial_of_its_seed(reference):
    """The detail pane's overlay: per arm trial, the ``none`` trial of the same method, seed and science
    (protocol and weight decay aside, as the claims pair them), found here by plain matching."""
    results, board, _, path = reference
    trials = data.completed_trials(results, board)
    pairs = data.baseline_trials(trials)
    same = ["method", "seed", "dataset", "backbone", "epochs", "imbalance"]
    key = pd.Series(["/".join(map(str, row)) for row in trials[same].itertuples(index=False)], index=trials.index)
    none = trials["intervention"] == "none"
    for i in trials.index:
        if none[i]:
            assert i not in pairs
            continue
        candidates = trials.index[none & (key == key[i])]
        assert len(candidates) == 1 and pairs[i] == candidates[0], trials.loc[i, "trial_id"]
    payload = Page(path.read_text(encoding="utf-8")).data()
    assert [t["baseline"] for t in payload["trials"]] == [pairs.get(i) for i in range(len(trials))]
    table = board.table.set_index("group")
    for gid, group in payload["groups"].items():
        expected = table.loc[int(gid), "baseline_group"]
        assert group["baseline"] == (None if pd.isna(expected) else str(int(expected)))


def _walk(node, key: str = ""):
    """Every mapping inside a spec with the key it sits under, depth first."""
    if isinstance(node, dict):
        yield key, node
        for name, value in node.items():
            yield from _walk(value, name)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value, key)


@pytest.mark.parametrize("which", ["small", "reference"])
def test_epoch_axes_have_integer_ticks(which, request):
    _, _, _, path = request.getfixturevalue(which)
    payload = Page(path.read_text(encoding="utf-8")).data()
    axes = 0
    for spec in [*payload["charts"].values(), payload["detail"]["spec"]]:
        for channel, node in _walk(spec):
            title = str(node.get("title") or node.get("field"))
            if channel in ("x", "y") and "epoch" in title:  # an axis of epochs
                axis = node.get("axis") or {}
                assert axis.get("format") == "d" and axis.get("tickMinStep") == 1, node
                assert all(float(v).is_integer() for v in axis.get("values", [])), node
                axes += 1
    assert axes >= (3 if which == "small" else 2)


def test_headline_marks_the_identifying_columns_sticky(reference):
    results, board, _, path = reference
    page = Dom(path.read_text(encoding="utf-8"))
    header = page.inside(page.by_id("headline"), "th")
    sticky = [h["attrs"]["data-key"] for h in header if "sticky" in h["attrs"]["class"].split()]
    varying = [k for k in board.group_keys if board.table[k].map(str).nunique() > 1]
    assert sticky == varying and set(sticky) >= {"method", "intervention", "imbalance"}
    last = [h["attrs"]["data-key"] for h in header if "sticky-last" in h["attrs"]["class"].split()]
    assert last == sticky[-1:]
    body = [n for n in page.inside(page.by_id("headline"), "tr") if "data-group" in n["attrs"]]
    for row in body:
        cells = page.inside(row, "td")
        assert ["sticky" in c["attrs"]["class"].split() for c in cells] == [
            h["attrs"]["data-key"] in sticky for h in header
        ]


def test_class_contrast_is_the_log_ratio_to_the_balanced_twin(small):
    results, board, _, _ = small
    trials = data.completed_trials(results, board)
    classes = plotdata.class_frequency(results.class_norms, trials)
    assert sorted(classes["trial"].str.rsplit("/", n=1).str[-1].unique()) == [f"simclr-none-lt-s{s}" for s in SEEDS]
    norms = results.class_norms.set_index(["trial_id", "class"])["norm_mean"]
    for trial, cls, contrast in zip(classes["trial"], classes["class"], classes["contrast"]):
        tid = trial.rsplit("/", 1)[-1]
        twin = tid.replace("-lt-", "-")  # the balanced trial of the same seed
        assert contrast == pytest.approx(math.log(norms[(tid, cls)] / norms[(twin, cls)]))


def test_forest_rows_are_the_boards_deltas_in_points(reference):
    results, board, _, _ = reference
    rows = plotdata.forest_rows(board, data.group_labels(board))
    table = board.table.set_index("group")
    arms = table[~table["is_baseline"] & table[f"delta_{board.metric}"].notna()]
    assert sorted(rows["group"]) == sorted(arms.index)
    for r in rows.itertuples():
        assert r.delta == pytest.approx(100 * table.loc[r.group, f"delta_{board.metric}"])
        assert r.lo == pytest.approx(100 * table.loc[r.group, f"delta_{board.metric}_ci_lo"])
    assert set(rows["intervention"]) == {"cut:3", "cut:9", "gradscale:1", "wd:0"}


# ---------------------------------------------------------------- the commands
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="normbench")
    report_cli.add_subparser(parser.add_subparsers(dest="command"))
    return parser


def test_report_command_writes_the_page_and_prints_its_path(small_dir, tmp_path, capsys):
    args = _parser().parse_args(["report", str(small_dir), "--out", str(tmp_path / "sub" / "page.html")])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "sub" / "page.html")
    assert read_page(tmp_path / "sub" / "page.html").rows


def test_report_command_default_out_metric_and_group_by(small_dir, capsys):
    args = _parser().parse_args(["report", str(small_dir), "--metric", "linear_top1", "--group-by", "method"])
    assert args.func(args) == 0
    page = read_page(small_dir / report_cli.PAGE)
    assert len(page.rows) == len(METHODS) and page.header[0]["key"] == "method"
    assert [h["key"] for h in page.header][2] == "linear_top1"


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--metric", "no_such_column"], "--metric"),
        (["--group-by", "no_such_column"], "--group-by"),
        (["--group-by", " , "], "--group-by"),
    ],
)
def test_report_command_refuses_bad_options(small_dir, argv, field):
    args = _parser().parse_args(["report", str(small_dir), *argv])
    with pytest.raises(ConfigError) as info:
        args.func(args)
    assert info.value.field == field and info.value.allowed


def test_report_command_refuses_missing_dirs_and_a_directory_as_out(tmp_path, small_dir):
    args = _parser().parse_args(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "x.html")])
    with pytest.raises(ConfigError) as info:
        args.func(args)
    assert info.value.field == "results_dir" and not (tmp_path / "x.html").exists()
    args = _parser().parse_args(["report", str(small_dir), "--out", str(tmp_path)])
    with pytest.raises(ConfigError) as info:
        args.func(args)
    assert info.value.field == "--out"


def test_report_help_ends_with_the_exit_statuses():
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["report"]
    lines = sub.format_help().rstrip().splitlines()
    at = lines.index("exit status:")
    assert [line.split()[0] for line in lines[at + 1 :]] == ["0", "2"]


def test_leaderboard_writes_the_page_as_its_html_format(small_dir, tmp_path):
    assert "html" in leaderboard_cli.FORMATS
    written = write_leaderboard([small_dir], tmp_path / "lb", plots=False)  # the default formats
    assert written["html"] == tmp_path / "lb" / "leaderboard.html"
    _, cells, _ = markdown_headline(written["md"].read_text())
    page = read_page(written["html"])
    assert page.cells() == cells and len(page.claims) == len(pd.read_csv(small_dir / "claims.csv"))


# ---------------------------------------------------------------- in a browser
BROWSER_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through chromedriver (Debian's packages), with the console log; offline."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", chromedriver)) if path is None]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install -e '.[dev]')")
    if missing:
        message = f"browser tests need {', '.join(missing)}: apt-get install chromium chromium-driver"
        if os.environ.get("NORMBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (NORMBENCH_REQUIRE_BROWSER=1)")
        pytest.skip(message)
    profile = tempfile.mkdtemp(prefix="normbench-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*BROWSER_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
    )
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _open(driver, path: Path) -> dict:
    """Load the page from file://, wait for every chart, return its timings; no SEVERE console entry."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get("about:blank")
    driver.get_log("browser")
    driver.get(path.resolve().as_uri())
    WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.body.dataset.chartsReady"))
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    assert driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)") == []
    return driver.execute_script("return window.normbenchReport.timings")


def _visible_groups(driver) -> list[int]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "#headline tbody tr[data-group]")
    return [int(r.get_attribute("data-group")) for r in rows if r.is_displayed()]


@pytest.mark.browser
@pytest.mark.parametrize("which", ["small", "sparse", "reference"])
def test_page_opens_offline_with_every_chart_and_no_console_error(browser, which, request):
    from selenium.webdriver.common.by import By

    _, board, claims, path = request.getfixturevalue(which)
    timings = _open(browser, path)
    print(
        f"\n{which} page ({path.stat().st_size} bytes): headline ready {timings['headline']:.0f} ms, "
        f"every chart drawn {timings['charts']:.0f} ms after navigation start"
    )
    for element in browser.find_elements(By.CSS_SELECTOR, "[data-chart]"):
        assert element.get_attribute("data-rendered") == "true"
        assert element.find_elements(By.CSS_SELECTOR, "svg, canvas")
    assert _visible_groups(browser) == board.table["group"].tolist()
    listed = browser.find_elements(By.CSS_SELECTOR, "#claims tr[data-claim]")
    assert len(listed) == (0 if claims is None else len(claims))


@pytest.mark.browser
def test_clicking_headers_sorts_metrics_descending_first(browser, reference):
    from selenium.webdriver.common.by import By

    _, board, _, path = reference
    _open(browser, path)
    t = board.table.reset_index(drop=True).assign(_rank=lambda f: f.index)
    for column in (board.metric, f"delta_{board.metric}"):
        header = browser.find_element(By.CSS_SELECTOR, f'#headline th[data-key="{column}"]')
        header.click()  # a metric: largest first, NaN last, ties in rank order
        values = f"{column}_mean" if column == board.metric else column
        descending = t.sort_values([values, "_rank"], ascending=[False, True], na_position="last")
        assert _visible_groups(browser) == descending["group"].tolist()
        assert header.get_attribute("aria-sort") == "descending"
        header.click()
        ascending = t.sort_values([values, "_rank"], na_position="last")
        assert _visible_groups(browser) == ascending["group"].tolist()
        assert header.get_attribute("aria-sort") == "ascending"
    browser.find_element(By.CSS_SELECTOR, '#headline th[data-key="method"] button').click()  # a setting: A to Z
    methods = t.set_index("group")["method"].loc[_visible_groups(browser)].tolist()
    assert methods == sorted(methods)
    method = browser.find_element(By.CSS_SELECTOR, '#headline th[data-key="method"]')
    assert method.get_attribute("aria-sort") == "ascending"


@pytest.mark.browser
def test_text_filter_and_axis_selectors_hide_rows(browser, reference):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _, board, _, path = reference
    _open(browser, path)
    t = board.table
    box = browser.find_element(By.ID, "filter")
    box.send_keys("simclr")
    assert sorted(_visible_groups(browser)) == sorted(t.loc[t["method"] == "simclr", "group"])
    box.send_keys(" gradscale")
    assert (
        _visible_groups(browser)
        == t.loc[(t["method"] == "simclr") & (t["intervention"] == "gradscale:1"), "group"].tolist()
    )
    box.clear()
    box.send_keys(" ")  # an input event with no words: every row again
    assert len(_visible_groups(browser)) == len(t)
    Select(browser.find_element(By.CSS_SELECTOR, 'select[data-axis="intervention"]')).select_by_value("none")
    assert _visible_groups(browser) == t.loc[t["intervention"] == "none", "group"].tolist()
    assert browser.find_element(By.ID, "shown-count").text.startswith(f"{(t['intervention'] == 'none').sum()} of ")
    Select(browser.find_element(By.CSS_SELECTOR, 'select[data-axis="method"]')).select_by_value("byol")
    assert _visible_groups(browser) == t.loc[(t["intervention"] == "none") & (t["method"] == "byol"), "group"].tolist()
    norms = browser.find_element(By.CSS_SELECTOR, '#column-groups input[data-column-group="norms"]')
    norms.click()
    assert not any(th.is_displayed() for th in browser.find_elements(By.CSS_SELECTOR, "#headline th.g-norms"))
    norms.click()
    assert all(th.is_displayed() for th in browser.find_elements(By.CSS_SELECTOR, "#headline th.g-norms"))


@pytest.mark.browser
def test_clicking_a_row_shows_its_curves_and_trial_folders(browser, reference):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, board, _, path = reference
    _open(browser, path)
    for group in board.table["group"].iloc[[0, -1]]:
        browser.find_element(By.CSS_SELECTOR, f'#headline tr[data-group="{group}"] td').click()
        WebDriverWait(browser, 30).until(
            lambda d: d.find_element(By.ID, "detail").get_attribute("data-rendered") == str(group)
        )
        assert browser.find_elements(By.CSS_SELECTOR, "#detail-charts svg, #detail-charts canvas")
        members = board.trials[board.trials["group"] == group]
        expected = sorted(f"{d}/{t}" for d, t in zip(members["results_dir"], members["trial_id"]))
        listed = browser.find_elements(By.CSS_SELECTOR, "#detail-trials li")
        assert sorted(li.get_attribute("data-path") for li in listed) == expected
        assert browser.execute_script("return location.hash") == f"#group={group}"
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


@pytest.mark.browser
def test_a_verdict_link_leads_to_its_drawn_figure(browser, reference):
    from selenium.webdriver.common.by import By

    _, _, _, path = reference
    _open(browser, path)
    link = browser.find_element(By.CSS_SELECTOR, '#claims-table tr[data-claim="C9"][data-method="all"] a.verdict')
    link.click()
    assert browser.execute_script("return location.hash") == "#plot-C9"
    assert browser.find_elements(By.CSS_SELECTOR, "#plot-C9 svg")


@pytest.fixture(scope="module")
def six_verdicts(small, tmp_path_factory):
    """The small run's page with claims.csv rows set to the verdicts it lacks, so the matrix shows all six."""
    results, board, claims, _ = small
    changed = claims.copy()
    for verdict, claim in (("does not hold", "C1"), ("not applicable", "C2a"), ("not testable", "C6")):
        changed.loc[(changed["claim"] == claim) & (changed["method"] == "byol"), "verdict"] = verdict
    assert set(changed["verdict"]) == set(VERDICT_WORDS)
    path = tmp_path_factory.mktemp("six-verdicts") / "report.html"
    path.write_text(build_page(results, board, changed), encoding="utf-8")
    return changed, path


def _background(driver, element) -> str:
    return driver.execute_script(
        "var s = getComputedStyle(arguments[0]); return s.backgroundColor + ' ' + s.backgroundImage;", element
    )


@pytest.mark.browser
def test_verdict_matrix_reads_without_hovering_and_links_each_cell_to_its_row(browser, six_verdicts):
    from selenium.webdriver.common.by import By

    claims, path = six_verdicts
    _open(browser, path)
    matrix = browser.find_element(By.ID, "verdict-matrix")
    browser.execute_script("arguments[0].scrollIntoView()", matrix)
    assert matrix.is_displayed()
    # every claim's statement is on the page as text, in view with its row
    rows = matrix.find_elements(By.CSS_SELECTOR, "tr[data-matrix-claim]")
    assert len(rows) == len(claims.groupby(["claim", "measure"]))
    statements = claims.drop_duplicates(["claim", "measure"]).set_index(["claim", "measure"])["statement"]
    for row in rows:
        statement = row.find_element(By.CSS_SELECTOR, ".statement")
        key = (row.get_attribute("data-matrix-claim"), row.get_attribute("data-measure"))
        assert statement.is_displayed() and statement.text == statements[key]
        assert statement.size["height"] > 0 and statement.value_of_css_property("visibility") == "visible"
    # one colour per verdict, the legend's, with the verdict's word in the cell
    swatches = {
        s.get_attribute("data-verdict"): _background(browser, s)
        for s in browser.find_elements(By.CSS_SELECTOR, "#verdict-legend .verdict-swatch")
    }
    assert list(swatches) == list(VERDICT_WORDS) and len(set(swatches.values())) == 6
    verdicts = claims.set_index(["claim", "measure", "method"])["verdict"]
    cells = matrix.find_elements(By.CSS_SELECTOR, "td.verdict-cell")
    assert len(cells) == len(claims)  # the small run judges every claim for every method and all
    for row in rows:
        claim, measure = row.get_attribute("data-matrix-claim"), row.get_attribute("data-measure")
        for cell in row.find_elements(By.CSS_SELECTOR, "td.verdict-cell"):
            verdict = verdicts[(claim, measure, cell.get_attribute("data-method"))]
            assert cell.find_element(By.CSS_SELECTOR, ".verdict-word").text == verdict
            assert _background(browser, cell) == swatches[verdict]
    # a cell leads to its row of the table, which comes into view marked
    cell = matrix.find_element(By.CSS_SELECTOR, 'tr[data-matrix-claim="C1"] td[data-method="byol"] a')
    cell.click()
    target = browser.find_element(By.CSS_SELECTOR, browser.execute_script("return location.hash"))
    assert (target.get_attribute("data-claim"), target.get_attribute("data-method")) == ("C1", "byol")
    assert target.get_attribute("data-verdict") == "does not hold"
    top = browser.execute_script("return arguments[0].getBoundingClientRect().top", target)
    assert 0 <= top < browser.execute_script("return window.innerHeight")
    other = browser.find_element(By.CSS_SELECTOR, '#claims-table tr[data-claim="C1"][data-method="simclr"]')
    assert _background(browser, target) != _background(browser, other)
    # a claim leads to its figure
    matrix.find_element(By.CSS_SELECTOR, 'tr[data-matrix-claim="C4"] a.claim-id').click()
    assert browser.execute_script("return location.hash") == "#plot-C4"
    assert browser.find_elements(By.CSS_SELECTOR, "#plot-C4 svg")


def _show(driver, group: int) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.CSS_SELECTOR, f'#headline tr[data-group="{group}"] td').click()
    WebDriverWait(driver, 30).until(
        lambda d: d.find_element(By.ID, "detail").get_attribute("data-rendered") == str(group)
    )


@pytest.mark.browser
def test_detail_pane_draws_each_trial_over_its_none_trial(browser, reference):
    from selenium.webdriver.common.by import By

    results, board, _, path = reference
    _open(browser, path)
    t, trials, curves = board.table, results.trials, results.curves
    arm = int(t.loc[(t["method"] == "simclr") & (t["intervention"] == "cut:3"), "group"].iloc[0])
    base = int(
        t.loc[(t["method"] == "simclr") & (t["intervention"] == "none") & t["imbalance"].isna(), "group"].iloc[0]
    )
    _show(browser, arm)
    drawn = pd.DataFrame(browser.execute_script("return window.normbenchReport.views.detail.view.data('curve')"))
    members = board.trials[board.trials["group"] == arm]
    assert set(drawn["role"]) == {"this group", "none baseline"}
    for seed in members["seed"]:
        # the none trial of the same method and seed on the balanced set, by plain lookup in the trials table
        twin = trials[
            (trials["method"] == "simclr")
            & (trials["intervention"] == "none")
            & (trials["seed"] == seed)
            & trials["imbalance"].isna()
        ]
        assert len(twin) == 1
        for role, trial_id in (
            ("none baseline", twin["trial_id"].iloc[0]),
            ("this group", members.loc[members["seed"] == seed, "trial_id"].iloc[0]),
        ):
            want = curves[curves["trial_id"] == trial_id].dropna(subset=[schema.LOSS]).sort_values("epoch")
            got = drawn[(drawn["role"] == role) & (drawn["p"] == "loss") & (drawn["seed"] == f"seed {seed}")]
            got = got.sort_values("epoch")
            assert got["epoch"].tolist() == want["epoch"].astype(int).tolist()
            np.testing.assert_allclose(got["v"], want[schema.LOSS], rtol=1e-3)
    dashed = browser.execute_script(
        "return document.querySelectorAll('#detail-charts path[stroke-dasharray=\"5,3\"]').length"
    )
    panels = len(Page(path.read_text(encoding="utf-8")).data()["detail"]["panels"])
    assert dashed >= panels  # each panel draws the baselines dashed
    note = browser.find_element(By.ID, "detail-baseline")
    assert note.get_attribute("data-baseline") == str(base) and "simclr · none" in note.text
    _show(browser, base)  # a baseline group: nothing to overlay
    drawn = pd.DataFrame(browser.execute_script("return window.normbenchReport.views.detail.view.data('curve')"))
    assert set(drawn["role"]) == {"this group"} and "is a baseline" in note.text


@pytest.mark.browser
def test_identifying_columns_stay_in_view_when_the_table_scrolls_sideways(browser, reference):
    from selenium.webdriver.common.by import By

    _, board, _, path = reference
    _open(browser, path)
    wrap = browser.find_element(By.CSS_SELECTOR, "#leaderboard .table-wrap")
    browser.execute_script("arguments[0].scrollIntoView()", wrap)
    assert browser.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth + 200", wrap)
    sticky = [k for k in board.group_keys if board.table[k].map(str).nunique() > 1]
    browser.execute_script("arguments[0].scrollLeft = arguments[0].scrollWidth", wrap)
    browser.execute_script("return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    edge = browser.execute_script("var r = arguments[0]; return r.getBoundingClientRect().left + r.clientLeft", wrap)
    left = edge
    for key in sticky:  # side by side from the left edge, in order
        th = browser.find_element(By.CSS_SELECTOR, f'#headline th[data-key="{key}"]')
        box = browser.execute_script("return arguments[0].getBoundingClientRect().toJSON()", th)
        assert box["left"] == pytest.approx(left, abs=1.5), key
        left = box["right"]
        column = [h.get_attribute("data-key") for h in browser.find_elements(By.CSS_SELECTOR, "#headline th")]
        cell = browser.find_elements(By.CSS_SELECTOR, "#headline tbody tr[data-group]")[0].find_elements(
            By.TAG_NAME, "td"
        )[column.index(key)]
        for element in (th, cell):  # on top: what is under its centre is itself
            assert browser.execute_script(
                "var e = arguments[0], b = e.getBoundingClientRect();"
                "var hit = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);"
                "return hit !== null && e.contains(hit);",
                element,
            ), key
    metric = browser.find_element(By.CSS_SELECTOR, f'#headline th[data-key="{board.metric}"]')
    assert browser.execute_script("return arguments[0].getBoundingClientRect().right", metric) < left  # scrolled past


@pytest.mark.browser
def test_epoch_axes_are_labelled_with_whole_numbers(browser, small):
    _, board, _, path = small
    _open(browser, path)
    arm = int(board.table.loc[~board.table["is_baseline"].astype(bool), "group"].iloc[0])
    _show(browser, arm)
    axes = browser.execute_script(
        "return Array.from(document.querySelectorAll('g.role-axis'))"
        ".filter(g => /epoch/.test(g.getAttribute('aria-label') || ''))"
        ".map(g => Array.from(g.querySelectorAll('.role-axis-label text')).map(t => t.textContent));"
    )
    assert len(axes) >= 6  # the detail pane's panels and the races' axes
    for labels in axes:
        assert labels and all(re.fullmatch(r"\d+|never", label) for label in labels), labels


# ---------------------------------------------------------------- the docs site, browsed from disk
@pytest.fixture(scope="module")
def docs_site(tmp_path_factory) -> Path:
    """The site `make docs` builds (mkdocs.yml as committed), into a temporary folder."""
    pytest.importorskip("mkdocs", reason="the docs extra: pip install -e '.[docs]'")
    site = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return site


def test_docs_site_links_name_files_so_it_browses_from_file_urls(docs_site):
    """Opened from disk, a link to a folder (``guides/report/``) shows a directory listing: every link and
    asset of every page must name a file. (404.html is for servers: its links are absolute on purpose.)"""
    checked, broken = 0, []
    for page in docs_site.rglob("*.html"):
        if page.name == "404.html":
            continue
        for ref in re.findall(r'(?:href|src)="([^"]*)"', page.read_text(encoding="utf-8")):
            ref = ref.split("#", 1)[0].split("?", 1)[0]
            if not ref or re.match(r"^[a-z][a-z0-9+.-]*:|^//", ref):  # same-page anchors, other sites
                continue
            checked += 1
            if not (page.parent / unquote(ref)).resolve().is_file():
                broken.append(f"{page.relative_to(docs_site)} -> {ref}")
    assert checked > 500 and broken == []


@pytest.mark.browser
def test_docs_site_navigates_from_file_urls(browser, docs_site):
    from selenium.webdriver.common.by import By

    browser.get((docs_site / "index.html").resolve().as_uri())
    link = browser.find_element(By.CSS_SELECTOR, 'nav a[href$="guides/report.html"]')
    browser.execute_script("arguments[0].click()", link)
    assert browser.current_url == (docs_site / "guides" / "report.html").resolve().as_uri()
    assert browser.find_element(By.TAG_NAME, "h1").text == "The report page"
