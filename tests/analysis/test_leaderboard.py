"""Leaderboard: aggregation against hand arithmetic, every format, figures, bad inputs.

The fixture is a small hand-written trials/curves/norm_bins table in the
schema of docs/ARCHITECTURE.md ("Results"), split over a Parquet directory and
a CSV directory, as a local run plus a sweep would be.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from suite.analysis.leaderboard import cli
from suite.analysis.leaderboard.aggregate import build_leaderboard
from suite.analysis.leaderboard.render import latex_ascii, to_latex
from suite.analysis.load import LeaderboardWarning, load_results
from suite.analysis.report import export
from suite.analysis.report.data import completed_trials, group_labels
from suite.analysis.report.figures import build_figures, exported_figures, norm_bins_chart
from suite.core.errors import ConfigError

NAN = float("nan")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[2]

# (dir, method, backbone, intervention, seed, status, knn200, knn20, linear, emb_norm, emb_auroc, knn200 curve)
TRIALS = [
    ("A", "simclr", "resnet18", "none", 0, "completed", 0.50, 0.48, 0.60, 10.0, 0.60, [NAN, 0.30, 0.45, 0.50]),
    ("A", "simclr", "resnet18", "none", 1, "completed", 0.54, 0.50, 0.62, 12.0, 0.62, [0.20, 0.49, 0.52, 0.54]),
    ("A", "simclr", "resnet18", "none", 2, "completed", 0.58, 0.55, 0.67, 11.0, 0.64, [0.30, 0.40, 0.50, 0.58]),
    ("A", "simclr", "resnet18", "cut:3", 0, "completed", 0.60, 0.57, 0.70, 3.0, 0.70, [0.50, 0.55, 0.58, 0.60]),
    ("A", "simclr", "resnet18", "cut:3", 1, "completed", 0.62, 0.60, 0.71, 3.5, 0.72, [0.45, 0.50, 0.60, 0.62]),
    ("A", "simclr", "resnet18", "cut:3", 2, "completed", 0.67, 0.61, 0.75, 2.5, 0.69, [0.49, 0.60, 0.65, 0.67]),
    ("A", "byol", "vit_tiny", "none", 0, "completed", 0.40, 0.38, 0.50, 20.0, 0.55, [0.10, 0.20, 0.39, 0.40]),
    ("A", "byol", "vit_tiny", "none", 1, "completed", 0.44, 0.41, 0.52, 22.0, 0.57, [0.20, 0.30, 0.35, 0.44]),
    ("A", "byol", "vit_tiny", "none", 2, "completed", 0.45, 0.43, 0.55, 21.0, 0.56, [NAN, 0.40, 0.42, 0.45]),
    ("A", "byol", "vit_tiny", "cut:3", 0, "completed", 0.46, 0.44, 0.56, 5.0, 0.60, [0.20, 0.39, 0.45, 0.46]),
    ("A", "byol", "vit_tiny", "cut:3", 1, "completed", 0.30, 0.28, 0.40, 6.0, 0.58, [0.10, 0.20, 0.25, 0.30]),
    ("A", "byol", "vit_tiny", "cut:3", 2, "failed", NAN, NAN, NAN, NAN, NAN, None),
    ("B", "byol", "vit_tiny", "gradscale:1", 0, "completed", 0.35, 0.33, 0.45, 15.0, 0.61, [0.10, 0.20, 0.30, 0.35]),
    ("B", "byol", "vit_tiny", "gradscale:1", 1, "completed", 0.36, 0.34, 0.46, 16.0, 0.62, [0.10, 0.25, 0.33, 0.36]),
    ("B", "byol", "vit_tiny", "gradscale:1", 2, "completed", 0.37, 0.35, 0.47, 17.0, 0.63, [0.15, 0.25, 0.34, 0.37]),
    ("B", "simclr", "resnet18", "gradscale:1", 0, "completed", 0.70, 0.66, 0.78, 9.0, 0.75, [0.50, 0.60, 0.65, 0.70]),
    ("B", "simclr", "resnet18", "gradscale:1", 1, "running", NAN, NAN, NAN, NAN, NAN, None),
]
ERROR = "Traceback (most recent call last):\n  ...\nsuite.errors.TrialFailed: non-finite loss at epoch 3"
GROUP_KEYS = ["dataset", "backbone", "method", "intervention", "epochs"]


def _trial_id(row) -> str:
    return f"{row[1]}-{row[2]}-{row[3].replace(':', '_')}-s{row[4]}"


def _write_results(root: Path) -> dict[str, Path]:
    """Hand-written results directories: A in Parquet (with per-trial eval_norms), B in CSV."""
    dirs = {"A": root / "local", "B": root / "sweep"}
    rng = np.random.default_rng(0)
    for key, directory in dirs.items():
        directory.mkdir(parents=True)
        rows, curves, bins = [], [], []
        for row in (r for r in TRIALS if r[0] == key):
            d, method, backbone, iv, seed, status, k200, k20, lin, norm, auroc, curve = row
            tid = _trial_id(row)
            rows.append(
                dict(
                    trial_id=tid,
                    sweep=directory.name,
                    status=status,
                    error=ERROR if status == "failed" else None,
                    method=method,
                    backbone=backbone,
                    dataset="digits",
                    intervention=iv,
                    epochs=4,
                    batch_size=64,
                    optimizer="lars" if method == "simclr" else "sgd",
                    lr=0.3,
                    weight_decay=1e-6,
                    seed=seed,
                    image_size=32,
                    knn_k=[200, 20],
                    linear_epochs=100,
                    method_args=json.dumps({"temperature": 0.2} if method == "simclr" else {"tau": 0.99}),
                    knn_top1_k200=k200,
                    knn_top1_k20=k20,
                    linear_top1=lin,
                    emb_norm_mean=norm,
                    emb_norm_std=1.0,
                    feat_norm_mean=norm * 2,
                    emb_correct_auroc=auroc,
                    emb_ood_auroc=NAN,
                    feat_freq_spearman=NAN,
                    epochs_completed=4 if status == "completed" else 2,
                    final_loss=1.0,
                    wall_time_s=10.0 + seed,
                    images_per_s=100.0,
                )
            )
            if curve is not None:
                for epoch, value in enumerate(curve, start=1):
                    curves.append(
                        dict(
                            trial_id=tid,
                            epoch=epoch,
                            loss=2.0 / epoch,
                            lr=0.3,
                            emb_norm_mean=norm * epoch / 4,
                            feat_norm_mean=norm * epoch / 2,
                            knn_top1_k200=value,
                            knn_top1_k20=value - 0.01,
                        )
                    )
            if key == "A" and status == "completed":
                for vector in ("embedding", "features"):
                    for b in range(10):
                        bins.append(
                            dict(
                                trial_id=tid,
                                vector=vector,
                                bin=b,
                                norm_lo=b,
                                norm_hi=b + 1,
                                count=10,
                                accuracy=k200 * (0.5 + b / 18),
                            )
                        )
                if method == "simclr":
                    n = 200
                    eval_norms = pd.DataFrame(
                        dict(
                            split=["test"] * n + ["ood"] * n,
                            vector="embedding",
                            norm=np.concatenate([rng.normal(norm, 1.0, n), rng.normal(norm / 2, 1.0, n)]),
                            label=0,
                            correct=True,
                        )
                    )
                    (directory / tid).mkdir()
                    eval_norms.to_parquet(directory / tid / "eval_norms.parquet")
        write = (
            (lambda f, name: f.to_parquet(directory / f"{name}.parquet"))
            if key == "A"
            else (lambda f, name: f.to_csv(directory / f"{name}.csv", index=False))
        )
        write(pd.DataFrame(rows), "trials")
        write(pd.DataFrame(curves), "curves")
        if bins:
            write(pd.DataFrame(bins), "norm_bins")
    return dirs


@pytest.fixture(scope="module")
def results_dirs(tmp_path_factory) -> dict[str, Path]:
    return _write_results(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def board(results_dirs):
    results = load_results([results_dirs["A"], results_dirs["B"]])
    return build_leaderboard(results.trials, results.curves, metric="knn_top1_k200")


@pytest.fixture(scope="module")
def written(results_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    args = argparse.Namespace(
        results_dirs=[str(results_dirs["A"]), str(results_dirs["B"])],
        out=str(out),
        formats="md,csv,tex",
        metric="knn_top1_k200",
        group_by=None,
        no_plots=False,
        all_trials=False,
        quiet=False,
    )
    assert cli.run(args) == 0
    return out


# ------------------------------------------------------------ hand arithmetic
def _mean(xs):
    return sum(xs) / len(xs)


def _std(xs):
    if len(xs) < 2:
        return NAN
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _race(arm_curve, base_curve):
    """By hand: the baseline's target = its first trained value + half its later gain; +1 faster, -1 slower
    (also never reached), 0 tied; None when the baseline does not improve."""
    base = [(e, v) for e, v in enumerate(base_curve, start=1) if not math.isnan(v)]
    first, last = base[0][1], base[-1][1]
    if not last > first:
        return None
    target = first + 0.5 * (last - first)
    tb = next(e for e, v in base if v >= target)
    ta = next((e for e, v in enumerate(arm_curve, start=1) if not math.isnan(v) and v >= target), None)
    return -1 if ta is None else (tb > ta) - (tb < ta)


def _paired_or_plain_delta(rows, base) -> float:
    """Δ by hand: over the shared seeds when one side's seeds include the other's, else means."""
    own, theirs = {r[4]: r[6] for r in rows}, {r[4]: r[6] for r in base}
    if set(own) <= set(theirs) or set(theirs) <= set(own):
        return _mean([own[s] - theirs[s] for s in sorted(set(own) & set(theirs))])
    return _mean(list(own.values())) - _mean(list(theirs.values()))


def _expected_groups():
    groups = {}
    for row in TRIALS:
        if row[5] == "completed":
            groups.setdefault((row[2], row[1], row[3]), []).append(row)
    expected = {}
    for (backbone, method, iv), rows in groups.items():
        base = groups[(backbone, method, "none")]
        by_seed = {r[4]: r for r in base}
        races = [] if iv == "none" else [_race(r[11], by_seed[r[4]][11]) for r in rows if r[4] in by_seed]
        races = [x for x in races if x is not None]
        expected[(backbone, method, iv)] = dict(
            n=len(rows),
            planned=sum(r[1:4] == (method, backbone, iv) for r in TRIALS),
            knn200=(_mean([r[6] for r in rows]), _std([r[6] for r in rows])),
            knn20=(_mean([r[7] for r in rows]), _std([r[7] for r in rows])),
            linear=(_mean([r[8] for r in rows]), _std([r[8] for r in rows])),
            norm=(_mean([r[9] for r in rows]), _std([r[9] for r in rows])),
            auroc=(_mean([r[10] for r in rows]), _std([r[10] for r in rows])),
            delta=NAN if iv == "none" else _paired_or_plain_delta(rows, base),
            faster=races.count(1),
            slower=races.count(-1),
            tied=races.count(0),
        )
    return expected


def _close(a, b):
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def test_aggregation_matches_hand_computation(board):
    expected = _expected_groups()
    # The hand-written fixture's literal races, so the arithmetic above is itself checked:
    # simclr cut:3 reaches each baseline's kNN target at epoch 1, its baselines at 2-3.
    assert expected[("resnet18", "simclr", "cut:3")]["faster"] == 3

    t = board.table
    assert board.group_keys == GROUP_KEYS  # optimizer/method_args vary only with the method; batch_size constant
    assert len(t) == len(expected) == 6
    assert "emb_ood_auroc_mean" not in t  # all-NaN diagnostics are dropped
    best_rows = set()
    for _, row in t.iterrows():
        e = expected[(row["backbone"], row["method"], row["intervention"])]
        assert row["n"] == e["n"] and row["n_expected"] == e["planned"] and row["n_short"] == (e["n"] < e["planned"])
        for col, key in [
            ("knn_top1_k200", "knn200"),
            ("knn_top1_k20", "knn20"),
            ("linear_top1", "linear"),
            ("emb_norm_mean", "norm"),
            ("emb_correct_auroc", "auroc"),
        ]:
            assert _close(row[f"{col}_mean"], e[key][0]), (col, row)
            assert _close(row[f"{col}_std"], e[key][1]), (col, row)
        assert _close(row["delta_knn_top1_k200"], e["delta"]), row
        assert row["is_baseline"] == (row["intervention"] == "none")
        for outcome in ("faster", "slower", "tied"):
            assert row[f"conv_knn_{outcome}"] == e[outcome], (outcome, row)
        if row["best"]:
            best_rows.add((row["backbone"], row["method"], row["intervention"]))
    # best per (dataset, backbone): the highest mean kNN top-1 among that backbone's groups
    for backbone in ("resnet18", "vit_tiny"):
        means = {k: v["knn200"][0] for k, v in expected.items() if k[0] == backbone}
        assert {k for k in best_rows if k[0] == backbone} == {max(means, key=means.get)}
    # ranked by the metric
    assert t["knn_top1_k200_mean"].is_monotonic_decreasing


def test_failures_are_listed_with_errors(board, written):
    f = board.failures
    assert set(zip(f["trial_id"], f["status"])) == {
        ("byol-vit_tiny-cut_3-s2", "failed"),
        ("simclr-resnet18-gradscale_1-s1", "running"),
    }
    assert f.loc[f["status"] == "failed", "error"].item() == ERROR
    md = (written / "leaderboard.md").read_text()
    assert "Failed, interrupted or incomplete trials (2)" in md and "non-finite loss at epoch 3" in md
    assert "byol-vit_tiny-cut_3-s2" in md and "2 (of 3)" in md
    failures_csv = pd.read_csv(written / "failures.csv")
    assert set(failures_csv["trial_id"]) == set(f["trial_id"])


def test_csv_round_trips_to_the_aggregated_frame(board, written):
    read = pd.read_csv(written / "leaderboard.csv")
    pd.testing.assert_frame_equal(read, board.table, check_dtype=False)


def test_latex_has_booktabs_rules_and_one_row_per_group(board, written):
    tex = (written / "leaderboard.tex").read_text()
    assert tex == to_latex(board)
    lines = tex.splitlines()
    assert lines.count("\\toprule") == lines.count("\\midrule") == lines.count("\\bottomrule") == 1
    body = lines[lines.index("\\midrule") + 1 : lines.index("\\bottomrule")]
    assert len(body) == len(board.table) == 6 and all(line.endswith("\\\\") for line in body)
    n_cols = lines[lines.index("\\toprule") + 1].count(" & ") + 1
    assert all(line.count(" & ") + 1 == n_cols for line in body)
    assert sum("\\textbf{" in line for line in body) == int(board.table["best"].sum()) == 2
    assert "$\\pm$" in tex and "±" not in tex
    for line in lines[1:]:  # every underscore is escaped (first line is a comment)
        assert all(line[i - 1] == "\\" for i, ch in enumerate(line) if ch == "_"), line


def test_latex_is_ascii_with_symbols_as_latex_commands(board, written):
    """A stock pdflatex rejects "≠" and "ρ": the table is ASCII, each symbol a LaTeX command."""
    tex = (written / "leaderboard.tex").read_text(encoding="utf-8")
    assert tex.isascii()
    assert r"settings $\neq$ none \\" in tex.splitlines()[3]  # the last header
    reference = load_results([REPO / "results" / "reference" / "digits-reference"])
    ref_tex = to_latex(build_leaderboard(reference.trials, reference.curves))
    assert ref_tex.isascii() and r"emb. $\rho$ frequency" in ref_tex


def test_latex_ascii_writes_every_character_in_plain_latex():
    assert latex_ascii(r"settings ≠ none") == r"settings $\neq$ none"
    assert latex_ascii("ρ Ω ‖z‖ ≤ 1") == r"$\rho$ $\Omega$ $\|$z$\|$ $\leq$ 1"
    assert latex_ascii("café naïve") == r"caf\'{e} na\"{i}ve"
    assert latex_ascii("ﬁ ½ ✓") == "fi ? ?"  # compatibility forms where ASCII, else a visible "?"
    text = "".join(chr(c) for c in range(0xA0, 0x3000))  # anything at all comes out ASCII
    assert latex_ascii(text).isascii()


LATEX_DOCUMENT = r"""\documentclass{article}
\IfFileExists{booktabs.sty}{\usepackage{booktabs}}{%
  \newcommand{\toprule}{\hline}\newcommand{\midrule}{\hline}\newcommand{\bottomrule}{\hline}}
\usepackage{graphicx}
\begin{document}
\resizebox{\textwidth}{!}{\input{TABLE}}
\end{document}
"""


def test_latex_compiles_with_stock_pdflatex(written, tmp_path):
    r"""leaderboard.tex inside a minimal document: texlive-latex-base has no booktabs (it is in
    texlive-latex-recommended), so the document falls back to \hline rules where it is missing. CI
    installs pdflatex and sets NORMBENCH_REQUIRE_PDFLATEX=1: there the test runs, never skips."""
    if shutil.which("pdflatex") is None:
        message = "needs pdflatex (Debian: texlive-latex-base)"
        if os.environ.get("NORMBENCH_REQUIRE_PDFLATEX") == "1":
            pytest.fail(message + " (NORMBENCH_REQUIRE_PDFLATEX=1)")
        pytest.skip(message)
    reference = load_results([REPO / "results" / "reference" / "digits-reference"])
    (tmp_path / "reference.tex").write_text(to_latex(build_leaderboard(reference.trials, reference.curves)))
    shutil.copy(written / "leaderboard.tex", tmp_path / "leaderboard.tex")
    for name in ("leaderboard", "reference"):
        (tmp_path / f"doc-{name}.tex").write_text(LATEX_DOCUMENT.replace("TABLE", f"{name}.tex"))
        done = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"doc-{name}.tex"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        log = (tmp_path / f"doc-{name}.log").read_text(errors="replace")
        assert done.returncode == 0, done.stdout[-3000:]
        assert (tmp_path / f"doc-{name}.pdf").stat().st_size > 1000
        assert "Missing character" not in log


def chart_rows(spec: dict) -> pd.DataFrame:
    """The rows a chart draws: its one inlined columnar dataset, expanded as its ``flatten`` transform does."""
    ((columns,),) = spec["datasets"].values()
    return pd.DataFrame(columns)


def test_figures_are_pngs_of_the_reports_specs_with_expected_panels(results_dirs, board, written):
    results = load_results([results_dirs["A"], results_dirs["B"]])
    figures = exported_figures(results, board)
    curve_figures = ["knn_top1_k200_vs_epoch", "loss_vs_epoch", "emb_norm_vs_epoch"]
    assert list(figures) == [*curve_figures, "accuracy_per_norm_bin", "ood_norm_histograms"]
    completed = [r for r in TRIALS if r[5] == "completed"]
    knn = chart_rows(figures["knn_top1_k200_vs_epoch"])
    method_panels = len({(r[2], r[1]) for r in completed})  # (backbone row, method column)
    assert knn["panel"].nunique() == method_panels == 2
    assert chart_rows(figures["emb_norm_vs_epoch"])["panel"].nunique() == method_panels
    layers = figures["emb_norm_vs_epoch"]["spec"]["layer"]
    assert all(layer["encoding"]["y"]["scale"]["type"] == "log" for layer in layers)  # norms span decades
    assert not any("nan" in panel for name in curve_figures for panel in chart_rows(figures[name])["panel"])
    # one line per intervention in each curve panel: the mean over seeds, with the std (ddof=1)
    for panel, rows in knn.groupby("panel"):
        method = panel.split(" · ")[0]
        assert set(rows["intervention"]) == {r[3] for r in completed if r[1] == method}
    simclr = [r[11][1] for r in completed if r[1] == "simclr" and r[3] == "none"]  # epoch 2 of each seed
    point = knn[knn["panel"].str.startswith("simclr") & (knn["intervention"] == "none") & (knn["epoch"] == 2)]
    assert point["mean"].item() == pytest.approx(_mean(simclr), rel=1e-3)
    assert point["std"].item() == pytest.approx(_std(simclr), rel=1e-3) and point["n"].item() == 3
    bins = chart_rows(figures["accuracy_per_norm_bin"])
    assert set(bins["vector"]) == {"embedding", "features"}
    assert set(bins["method"]) == {r[1] for r in completed if r[0] == "A"}
    ood = chart_rows(figures["ood_norm_histograms"])  # a row per group with OOD samples, a panel per seed
    ood_groups = {(r[1], r[3]) for r in completed if r[0] == "A" and r[1] == "simclr"}
    assert ood["label"].nunique() == len(ood_groups) == 2 and set(ood.groupby("label")["seed"].nunique()) == {3}
    # the norm-bin and OOD figures are the report page's C7 and C8 figures, spec for spec
    trials = completed_trials(results, board)
    _, page_specs, _ = build_figures(results, board, trials, group_labels(board), None)
    assert figures["accuracy_per_norm_bin"] == page_specs["C7"]
    assert figures["ood_norm_histograms"] == page_specs["C8"]
    for name in figures:
        data = (written / "plots" / f"{name}.png").read_bytes()
        width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
        assert data.startswith(PNG_SIGNATURE) and width > 300 and height > 200 and len(data) > 10_000
    md = (written / "leaderboard.md").read_text()
    assert all(f"](plots/{name}.png)" in md for name in figures)


def test_figures_save_as_svg_and_refuse_other_formats(results_dirs, board, tmp_path):
    results = load_results([results_dirs["A"], results_dirs["B"]])
    spec = exported_figures(results, board)["loss_vs_epoch"]
    paths = export.save_figures({"loss": spec}, tmp_path, "svg")
    assert paths == {"loss": tmp_path / "loss.svg"}
    svg = paths["loss"].read_text()
    assert svg.startswith("<svg") and "simclr" in svg and "gradscale:1" in svg
    with pytest.raises(ValueError, match="jpg"):
        export.render(spec, "jpg")


def test_group_keys_include_config_varying_within_a_cell_and_delta_uses_wd_baseline():
    base = dict(
        status="completed",
        dataset="digits",
        backbone="resnet18",
        method="simclr",
        epochs=2,
        batch_size=64,
        seed=0,
        knn_top1_k200=0.5,
    )
    rows = [
        dict(base, trial_id="a", intervention="none", lr=0.1, weight_decay=1e-6, knn_top1_k200=0.40),
        dict(base, trial_id="b", intervention="none", lr=0.3, weight_decay=1e-6, knn_top1_k200=0.50),
        dict(base, trial_id="c", intervention="wd:0.0005", lr=0.1, weight_decay=5e-4, knn_top1_k200=0.47),
        dict(base, trial_id="d", intervention="none", lr=0.1, weight_decay=1e-6, seed=1, knn_top1_k200=0.44),
    ]
    trials = pd.DataFrame(rows).assign(results_dir="x")
    board = build_leaderboard(trials)
    assert board.group_keys == GROUP_KEYS + ["lr"]  # weight_decay only changes with the intervention
    t = board.table.set_index(["intervention", "lr"])
    assert t.loc[("none", 0.1), "n"] == 2 and t.loc[("none", 0.3), "n"] == 1
    # paired on the seed both ran (seed 0; the baseline's seed 1 has no partner)
    assert math.isclose(t.loc[("wd:0.0005", 0.1), "delta_knn_top1_k200"], 0.47 - 0.40)
    assert math.isnan(t.loc[("none", 0.3), "delta_knn_top1_k200"])  # a baseline has no Δ (shown as —)
    # weight_decay swept explicitly as well: the wd row has no baseline with equal weight_decay and two
    # candidates otherwise -> ambiguous, so no delta.
    rows.append(dict(base, trial_id="e", intervention="none", lr=0.1, weight_decay=1e-5, knn_top1_k200=0.45))
    board = build_leaderboard(pd.DataFrame(rows).assign(results_dir="x"))
    assert "weight_decay" in board.group_keys
    wd_row = board.table[board.table["intervention"] == "wd:0.0005"].iloc[0]
    assert math.isnan(wd_row["delta_knn_top1_k200"])
    # explicit group-by replaces the detection
    board = build_leaderboard(pd.DataFrame(rows).assign(results_dir="x"), group_by=["method", "intervention"])
    assert board.group_keys == ["method", "intervention"]
    assert dict(zip(board.table["intervention"], board.table["n"])) == {"none": 4, "wd:0.0005": 1}


def test_duplicate_trial_ids_across_dirs_are_kept_with_a_warning(results_dirs, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    trials = pd.read_parquet(results_dirs["A"] / "trials.parquet")
    trials["knn_k"] = trials["knn_k"].map(lambda a: a.tolist())  # as a trainer writes it: "[200, 20]"
    trials.to_csv(copy / "trials.csv", index=False)
    with pytest.warns(LeaderboardWarning, match="more than one results directory"):
        results = load_results([results_dirs["A"], copy])
    assert len(results.trials) == 2 * len([r for r in TRIALS if r[0] == "A"])
    board = build_leaderboard(results.trials, results.curves)
    # curves are joined per (results_dir, trial_id): the copy has none, so only the original's pairs race
    row = board.table[board.table["intervention"] == "cut:3"].set_index("method").loc["simclr"]
    assert row["n"] == 6 and row["conv_knn_faster"] + row["conv_knn_slower"] + row["conv_knn_tied"] == 3


def _run(dirs, tmp_path, formats="md", metric="knn_top1_k200", group_by=None, no_plots=True) -> int:
    """The leaderboard as a user runs it (bad input: exit status 2, the error on stderr)."""
    from suite.cli import main

    argv = ["leaderboard", *map(str, dirs), "--out", str(tmp_path / "lb"), "--formats", formats, "--metric", metric]
    argv += (["--group-by", group_by] if group_by else []) + (["--no-plots"] if no_plots else [])
    return main(argv)


def test_bad_results_dirs_fail_with_the_path_and_nonzero_exit(results_dirs, tmp_path, capsys):
    cases = {}
    cases["missing"] = tmp_path / "does-not-exist"
    cases["empty"] = tmp_path / "empty"
    cases["empty"].mkdir()
    cases["garbage"] = tmp_path / "garbage"
    cases["garbage"].mkdir()
    (cases["garbage"] / "trials.parquet").write_bytes(b"\x00\x01not a parquet file" * 10)
    cases["columns"] = tmp_path / "columns"
    cases["columns"].mkdir()
    pd.DataFrame({"trial_id": ["a"], "method": ["simclr"]}).to_csv(cases["columns"] / "trials.csv", index=False)
    cases["no_rows"] = tmp_path / "no_rows"
    cases["no_rows"].mkdir()
    pd.read_csv(results_dirs["B"] / "trials.csv").iloc[:0].to_csv(cases["no_rows"] / "trials.csv", index=False)
    cases["bad_curves"] = tmp_path / "bad_curves"
    cases["bad_curves"].mkdir()
    pd.read_csv(results_dirs["B"] / "trials.csv").to_csv(cases["bad_curves"] / "trials.csv", index=False)
    (cases["bad_curves"] / "curves.parquet").write_bytes(b"PAR1garbage")
    for name, directory in cases.items():
        assert _run([directory], tmp_path) == 2, name
        err = capsys.readouterr().err
        assert str(directory) in err and "error" in err, (name, err)
        assert not (tmp_path / "lb").exists(), name  # nothing written before the error
    with pytest.raises(ConfigError, match="status"):
        load_results([cases["columns"]])


def test_bad_options_fail_before_writing(results_dirs, tmp_path, capsys):
    assert _run([results_dirs["B"]], tmp_path, metric="knn_top1_k999") == 2
    assert "metric" in capsys.readouterr().err
    assert _run([results_dirs["B"]], tmp_path, formats="md,pdf") == 2
    assert "formats" in capsys.readouterr().err
    assert _run([results_dirs["B"]], tmp_path, group_by="nope") == 2
    assert not (tmp_path / "lb").exists()


def test_module_entry_point_and_subparser(results_dirs, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "suite.cli", "leaderboard", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "RESULTS_DIR" in proc.stdout and "--metric" in proc.stdout
    parser = argparse.ArgumentParser(prog="normbench")
    cli.add_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["leaderboard", str(results_dirs["B"]), "--formats", "csv", "--no-plots"])
    assert args.func(args) == 0
    assert (results_dirs["B"] / "leaderboard" / "leaderboard.csv").is_file()  # default --out


def test_all_failed_results_give_an_empty_board_and_the_failures(results_dirs, tmp_path):
    trials = pd.read_csv(results_dirs["B"] / "trials.csv").assign(status="failed", error="CUDA out of memory")
    (tmp_path / "r").mkdir()
    trials.to_csv(tmp_path / "r" / "trials.csv", index=False)
    assert _run([tmp_path / "r"], tmp_path, formats="md,csv,tex", no_plots=False) == 0
    assert pd.read_csv(tmp_path / "lb" / "leaderboard.csv").empty
    md = (tmp_path / "lb" / "leaderboard.md").read_text()
    assert "No completed trials" in md and f"Failed, interrupted or incomplete trials ({len(trials)})" in md
    assert md.count("CUDA out of memory") == len(trials)


def _interval_trials(with_init: bool = True) -> pd.DataFrame:
    """none / cut:3 share seeds 0-2 (paired); gradscale:1 has seeds 0, 1, 5 (Welch); cut:5 one seed (0)."""
    cells = {
        "none": ([0, 1, 2], [0.50, 0.54, 0.58]),
        "cut:3": ([2, 0, 1], [0.65, 0.56, 0.59]),
        "gradscale:1": ([0, 1, 5], [0.45, 0.60, 0.52]),
        "cut:5": ([0], [0.70]),
    }
    rows = []
    for iv, (seeds, values) in cells.items():
        for seed, value in zip(seeds, values):
            rows.append(
                dict(
                    trial_id=f"{iv}-{seed}",
                    status="completed",
                    dataset="digits",
                    backbone="test_resnet",
                    method="simclr",
                    intervention=iv,
                    epochs=4,
                    seed=seed,
                    knn_top1_k200=value,
                    knn_top1_k20=value - 0.02,
                    linear_top1=value + 0.1,
                    # per-trial diagnostics columns must not become group keys
                    emb_correct_auroc=0.6 + seed / 100,
                    emb_correct_auroc_ci_lo=0.5 + seed / 100,
                    emb_correct_auroc_ci_hi=0.7 + seed / 100,
                    emb_correct_auroc_note=f"note {seed}",
                )
            )
            if with_init:
                rows[-1].update(knn_top1_k200_init=0.40 + seed / 50, knn_top1_k20_init=0.38 + seed / 40)
    return pd.DataFrame(rows).assign(results_dir="x")


def test_delta_intervals_over_seeds_paired_welch_and_one_seed_against_scipy(tmp_path):
    from scipy import stats as scipy_stats

    trials = _interval_trials()
    board = build_leaderboard(trials)
    assert board.group_keys == GROUP_KEYS
    t = board.table.set_index("intervention")
    value = {iv: sub.set_index("seed")["knn_top1_k200"] for iv, sub in trials.groupby("intervention")}
    # cut:3 vs none: same seeds -> paired t-interval of the per-seed differences.
    diffs = (value["cut:3"] - value["none"]).sort_index()
    half = scipy_stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / math.sqrt(3)
    row = t.loc["cut:3"]
    assert row["delta_knn_top1_k200_paired"] and row["delta_knn_top1_k200_n"] == 3
    assert _close(row["delta_knn_top1_k200"], diffs.mean())
    assert math.isclose(row["delta_knn_top1_k200_ci_lo"], diffs.mean() - half, rel_tol=1e-9)
    assert math.isclose(row["delta_knn_top1_k200_ci_hi"], diffs.mean() + half, rel_tol=1e-9)
    assert row["delta_knn_top1_k200_significant"]
    # gradscale:1: seed 5 has no partner -> Welch, as scipy's unpaired t-test computes it.
    ref = scipy_stats.ttest_ind(value["gradscale:1"], value["none"], equal_var=False).confidence_interval(0.95)
    row = t.loc["gradscale:1"]
    assert not row["delta_knn_top1_k200_paired"]
    assert math.isclose(row["delta_knn_top1_k200_ci_lo"], ref.low, rel_tol=1e-9)
    assert math.isclose(row["delta_knn_top1_k200_ci_hi"], ref.high, rel_tol=1e-9)
    assert ref.low < 0 < ref.high and not row["delta_knn_top1_k200_significant"]
    # cut:5: one seed -> no interval; the baseline row has none either.
    for iv, n in (("cut:5", 1), ("none", 0)):
        assert math.isnan(t.loc[iv, "delta_knn_top1_k200_ci_lo"]) and t.loc[iv, "delta_knn_top1_k200_n"] == n
        assert not t.loc[iv, "delta_knn_top1_k200_significant"]
    # every accuracy gets its interval
    assert {f"delta_{c}_ci_lo" for c in ("knn_top1_k200", "knn_top1_k20", "linear_top1")} <= set(board.table)

    # Gain over the untrained network: per-trial final - init, t-interval over seeds.
    for iv in ("none", "cut:3"):
        sub = trials[trials["intervention"] == iv]
        gain = sub["knn_top1_k200"] - sub["knn_top1_k200_init"]
        lo, hi = scipy_stats.t.interval(0.95, len(gain) - 1, loc=gain.mean(), scale=scipy_stats.sem(gain))
        assert math.isclose(t.loc[iv, "gain_knn_top1_k200_mean"], gain.mean(), rel_tol=1e-9)
        assert math.isclose(t.loc[iv, "gain_knn_top1_k200_std"], gain.std(ddof=1), rel_tol=1e-9)
        assert math.isclose(t.loc[iv, "gain_knn_top1_k200_ci_lo"], lo, rel_tol=1e-9)
        assert math.isclose(t.loc[iv, "gain_knn_top1_k200_ci_hi"], hi, rel_tol=1e-9)
    assert "gain_knn_top1_k20_mean" in board.table and "gain_linear_top1_mean" not in board.table

    # Rendering: brackets, "n.s." only where the interval holds 0, "(1 seed)" without one.
    from suite.analysis.leaderboard.render import headline

    columns = {c.key: c for c in headline(board)}
    shown = dict(zip(board.table["intervention"], columns["delta_knn_top1_k200"].cells))
    assert columns["delta_knn_top1_k200"].label == "Δ kNN@200 vs none (pp)"
    assert shown["cut:3"] == (
        f"+{100 * diffs.mean():.2f} [{100 * (diffs.mean() - half):.2f}, {100 * (diffs.mean() + half):.2f}]"
    )
    assert shown["gradscale:1"].endswith(" n.s.")
    assert shown["cut:5"] == "+20.00 (1 seed)"  # paired on its one seed: 0.70 - 0.50
    assert shown["none"] == "—"  # the baseline has no Δ
    assert columns["gain_knn_top1_k200"].label == "gain kNN@200 vs untrained (pp)"
    # CSV keeps the intervals and the boolean marker.
    (tmp_path / "r").mkdir()
    trials.drop(columns="results_dir").to_csv(tmp_path / "r" / "trials.csv", index=False)
    assert _run([tmp_path / "r"], tmp_path, formats="md,csv") == 0
    read = pd.read_csv(tmp_path / "lb" / "leaderboard.csv")
    assert read["delta_knn_top1_k200_significant"].dtype == bool
    assert read.set_index("intervention")["delta_knn_top1_k200_significant"].to_dict() == {
        "none": False,
        "cut:3": True,
        "cut:5": False,
        "gradscale:1": False,
    }
    assert "n.s." in (tmp_path / "lb" / "leaderboard.md").read_text()


def test_no_init_columns_means_no_gain_columns(board):
    assert build_leaderboard(_interval_trials(with_init=False)).table.filter(like="gain_").empty
    assert board.table.filter(like="gain_").empty


def test_norm_bin_figure_has_a_column_per_binning(results_dirs, board):
    results = load_results([results_dirs["A"]])
    bins = results.norm_bins
    both = pd.concat([bins.assign(binning="decile"), bins.assign(binning="equal_width")], ignore_index=True)
    trials = completed_trials(results, board)
    for table, binnings in ((bins, {"decile"}), (both, {"decile", "equal_width"})):  # old tables: deciles only
        spec = norm_bins_chart(dataclasses.replace(results, norm_bins=table), trials)
        assert spec["facet"]["column"]["field"] == "binning" and spec["facet"]["row"]["field"] == "vector"
        assert set(chart_rows(spec)["binning"]) == binnings


def test_convergence_follows_the_claims_rule_and_epoch_zero_does_not_count():
    """The leaderboard's convergence column is the claims' race (suite.analysis.compare.race): the target
    is anchored on the baseline's epoch 1, and the untrained network's epoch-0 score never counts."""
    from suite.analysis import compare
    from suite.analysis.leaderboard.render import headline

    trials = _interval_trials()
    trials = trials[trials["intervention"].isin(["none", "cut:3"])]
    # epoch 0 is the untrained network: cut:3 seed 0 starts above the target, which must not make it faster
    start = {
        ("none", 0): 0.30,
        ("none", 1): 0.30,
        ("none", 2): 0.30,
        ("cut:3", 0): 0.99,
        ("cut:3", 1): 0.2,
        ("cut:3", 2): 0.2,
    }
    rows = []
    for r in trials.itertuples():
        ramp = [0.40, 0.50, r.knn_top1_k200] if r.intervention == "none" else [0.40, 0.60, r.knn_top1_k200]
        for epoch, value in enumerate([start[(r.intervention, r.seed)], *ramp]):
            rows.append(
                dict(results_dir="x", trial_id=r.trial_id, epoch=epoch, knn_top1_k200=value, loss=2.0 / (epoch + 1))
            )
    curves = pd.DataFrame(rows)
    board = build_leaderboard(trials, curves)
    row = board.table.set_index("intervention").loc["cut:3"]
    by_id = {tid: c for tid, c in curves.groupby("trial_id")}
    expected = []
    for seed in (0, 1, 2):
        race = compare.race(by_id[f"cut:3-{seed}"], by_id[f"none-{seed}"], "knn_top1_k200", falling=False)
        expected.append(race.direction)
    assert (row["conv_knn_faster"], row["conv_knn_slower"], row["conv_knn_tied"]) == (
        expected.count(1),
        expected.count(-1),
        expected.count(0),
    )
    assert row["conv_loss_tied"] == 3  # identical loss curves
    cells = dict(zip(board.table["intervention"], {c.key: c for c in headline(board)}["conv_knn"].cells))
    assert cells["none"] == "—" and "faster" in cells["cut:3"]


def test_seeds_that_agree_exactly_claim_no_interval():
    from suite.analysis.leaderboard.render import headline

    rows = [
        dict(
            trial_id=f"{iv}-{seed}",
            status="completed",
            dataset="digits",
            backbone="b",
            method="simclr",
            intervention=iv,
            epochs=1,
            seed=seed,
            knn_top1_k200=value,
        )
        for iv, values in (("none", (0.50, 0.60)), ("cut:3", (0.625, 0.725)))
        for seed, value in enumerate(values)
    ]
    board = build_leaderboard(pd.DataFrame(rows).assign(results_dir="x"))
    row = board.table.set_index("intervention").loc["cut:3"]
    assert row["delta_knn_top1_k200_paired"] and row["delta_knn_top1_k200_n"] == 2
    assert math.isnan(row["delta_knn_top1_k200_ci_lo"]) and not row["delta_knn_top1_k200_significant"]
    cells = dict(zip(board.table["intervention"], {c.key: c for c in headline(board)}["delta_knn_top1_k200"].cells))
    assert cells == {"none": "—", "cut:3": "+12.50 (no spread)"}


def test_rows_name_the_settings_that_differ_from_their_baseline():
    """A case that carries its own lr and warm-up is still compared with `none` (lr and warm-up only
    change with the intervention, so they are not group keys); the row must say so. The intervention's
    own weight decay is not such a difference."""
    from suite.analysis.leaderboard.render import headline, to_markdown

    base = dict(
        status="completed",
        dataset="digits",
        backbone="b",
        method="simclr",
        epochs=2,
        lr=0.3,
        warmup_epochs=1,
        weight_decay=1e-6,
        notes="",
    )
    rows = [
        dict(base, trial_id=f"{iv}-{seed}", intervention=iv, seed=seed, knn_top1_k200=0.5 + 0.01 * seed, **extra)
        for iv, extra in (
            ("none", {}),
            ("cut:3", {}),
            ("wd:0", {"weight_decay": 0.0}),
            ("gradscale:1", {"lr": 0.1, "warmup_epochs": 4, "notes": "a free-text note"}),
        )
        for seed in (0, 1)
    ]
    board = build_leaderboard(pd.DataFrame(rows).assign(results_dir="x"))
    assert board.group_keys == GROUP_KEYS
    differs = board.table.set_index("intervention")["baseline_differs"]
    assert differs.notna().to_dict() == {"none": False, "cut:3": False, "wd:0": False, "gradscale:1": True}
    assert differs["gradscale:1"] == "lr 0.1 vs 0.3; warmup_epochs 4 vs 1"
    cells = dict(zip(board.table["intervention"], {c.key: c for c in headline(board)}["baseline_differs"].cells))
    assert cells == {"none": "—", "cut:3": "—", "wd:0": "—", "gradscale:1": "lr 0.1 vs 0.3; warmup_epochs 4 vs 1"}
    assert "lr 0.1 vs 0.3; warmup_epochs 4 vs 1" in to_markdown(board, ["x"])


def test_a_baseline_with_extra_seeds_pairs_on_the_shared_ones_and_is_not_flagged_short():
    """A sweep case may run its `none` arm on more seeds than the other arms: Δ is then the mean
    per-seed difference over the shared seeds (inside its own interval), and neither group is
    "short"; a group that lost a trial still is."""
    from scipy import stats as scipy_stats

    from suite.analysis.leaderboard.render import headline

    base = dict(dataset="digits", backbone="b", method="simclr", epochs=2)
    none = {0: 0.90, 1: 0.86, 2: 0.93, 3: 0.70, 4: 0.99}  # seeds 3, 4 only in the baseline
    cut = {0: 0.85, 1: 0.83, 2: 0.86}
    rows = [
        dict(base, trial_id=f"none-{s}", status="completed", intervention="none", seed=s, knn_top1_k200=v)
        for s, v in none.items()
    ]
    rows += [
        dict(base, trial_id=f"cut-{s}", status="completed", intervention="cut:3", seed=s, knn_top1_k200=v)
        for s, v in cut.items()
    ]
    rows.append(
        dict(base, trial_id="cut-5", status="failed", intervention="cut:3", seed=5, knn_top1_k200=np.nan, error="boom")
    )
    board = build_leaderboard(pd.DataFrame(rows).assign(results_dir="x"))
    row = board.table.set_index("intervention").loc["cut:3"]
    diffs = np.array([cut[s] - none[s] for s in (0, 1, 2)])
    ref = scipy_stats.ttest_rel([cut[s] for s in (0, 1, 2)], [none[s] for s in (0, 1, 2)]).confidence_interval(0.95)
    assert row["delta_knn_top1_k200"] == pytest.approx(diffs.mean())
    assert row["delta_knn_top1_k200"] != pytest.approx(np.mean(list(cut.values())) - np.mean(list(none.values())))
    assert (row["delta_knn_top1_k200_ci_lo"], row["delta_knn_top1_k200_ci_hi"]) == pytest.approx((ref.low, ref.high))
    assert row["delta_knn_top1_k200_paired"] and row["delta_knn_top1_k200_n"] == 3
    counts = board.table.set_index("intervention")[["n", "n_expected", "n_short"]]
    assert counts.loc["none"].tolist() == [5, 5, False]
    assert counts.loc["cut:3"].tolist() == [3, 4, True]  # the failed seed 5 is missing
    cells = dict(zip(board.table["intervention"], {c.key: c for c in headline(board)}["n"].cells))
    assert cells == {"none": "5", "cut:3": "3 (of 4)"}
