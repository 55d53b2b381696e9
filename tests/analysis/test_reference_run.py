"""The committed CPU reference runs and the docs blocks generated from them.

A page's generated block must state exactly what the committed tables give: it is
regenerated here from claims.csv / trials.csv and compared with the page, and
claims.csv is recomputed from the committed trials/curves/class norms. The digits-colour
run (with its controls) is the one the docs present; the superseded digits run keeps
its own page. The generator's own numbers are checked against scipy on a hand-made table.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from suite.analysis.claims import block
from suite.analysis.claims.verdicts import ROW_COLUMNS, evaluate_claims
from suite.analysis.load import load_results
from suite.cli import main
from suite.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
REFERENCE_REL = "results/reference/digits-reference"
REFERENCE = REPO / REFERENCE_REL
SPEC = REPO / "examples" / "sweeps" / "reference_digits.yaml"
# Each committed run whose claims a docs page shows: its results directories as `normbench claims` was given
# them (claims.csv and the leaderboard are written into the first) and the page holding its generated block.
COLOUR_RELS = ("results/reference/colour-reference", "results/reference/colour-controls")
PAGES = {
    "colour": (COLOUR_RELS, "docs/reference-run.md"),
    "digits": ((REFERENCE_REL,), "docs/digits-reference-run.md"),
}


@pytest.fixture(scope="module")
def reference():
    return load_results([str(REFERENCE)])


@pytest.fixture(scope="module", params=sorted(PAGES))
def run(request):
    """(relative results directories, page, merged results) of one committed run a page presents."""
    rels, page = PAGES[request.param]
    return rels, page, load_results([str(REPO / rel) for rel in rels])


def test_reference_tables_load_with_every_case_and_seed(reference):
    import yaml

    spec = yaml.safe_load(SPEC.read_text())
    trials = reference.trials
    case_seeds = [case.get("seeds", spec["seeds"]) for case in spec["cases"]]  # a case's own seeds win
    assert len(trials) == sum(len(seeds) for seeds in case_seeds)
    assert set(trials["status"]) <= {"completed", "failed"}  # a diverged trial is a result, listed with its error
    failed = trials[trials["status"] == "failed"]
    assert failed["error"].str.len().gt(0).all()
    assert (trials["status"] == "completed").sum() >= 0.9 * len(trials)
    assert sorted(trials["seed"].unique()) == sorted({s for seeds in case_seeds for s in seeds})
    curves = reference.curves
    done = set(trials.loc[trials["status"] == "completed", "trial_id"])
    for tid, curve in curves[curves["trial_id"].isin(done)].groupby("trial_id"):  # epoch-0 row, kNN every epoch
        evaluated = curve.dropna(subset=["knn_top1_k20"])
        assert list(pd.to_numeric(evaluated["epoch"])) == list(range(spec["base"]["epochs"] + 1)), tid


def test_committed_claims_equal_a_recomputation(run):
    rels, _, results = run
    committed = pd.read_csv(REPO / rels[0] / "claims.csv")
    fresh = evaluate_claims(results.trials, results.curves, results.class_norms)[ROW_COLUMNS]
    assert list(committed["claim"] + "/" + committed["measure"] + "/" + committed["method"]) == list(
        fresh["claim"] + "/" + fresh["measure"] + "/" + fresh["method"]
    )
    assert list(committed["verdict"]) == list(fresh["verdict"])
    for col in ("value", "ci_lo", "ci_hi", "p_value", "n", "n_seeds"):
        np.testing.assert_allclose(
            committed[col].to_numpy(float), fresh[col].to_numpy(float), rtol=1e-9, equal_nan=True, err_msg=col
        )


def test_docs_block_equals_what_the_committed_tables_give(run):
    rels, page, results = run
    claims = pd.read_csv(REPO / rels[0] / "claims.csv")
    trials = pd.concat([pd.read_csv(REPO / rel / "trials.csv") for rel in rels], ignore_index=True)
    expected = block.page_block(claims, trials, list(rels))
    assert block.extract_block((REPO / page).read_text()) == expected
    assert f"normbench claims {' '.join(rels)} --page" in expected


def test_committed_leaderboard_shows_the_committed_claims(run):
    """The leaderboard embeds claims.csv as it was when it was rendered: run after
    `normbench claims`, not before, or it shows the previous verdicts."""
    from suite.analysis.claims.report import leaderboard_markdown, load_claims

    rels, _, _ = run
    board = (REPO / rels[0] / "leaderboard" / "leaderboard.md").read_text()
    assert leaderboard_markdown(load_claims([REPO / rels[0]])) in board


def test_page_provenance_names_every_directory_and_where_claims_were_written():
    one = block._provenance(["results/a"], None)
    assert "`normbench claims results/a --page`" in one and "`trials.csv` in `results/a/`" in one
    two = block._provenance(["results/a", "results/b/"], "results/c")
    assert "`normbench claims results/a results/b --out results/c --page`" in two
    assert "`claims.csv` in `results/c/`" in two and "`results/a/` and `results/b/`" in two


def test_learning_rows_against_scipy():
    rows = []
    for seed, (init, final) in enumerate([(0.90, 0.95), (0.91, 0.97), (0.92, 0.96)]):
        rows.append(
            dict(
                method="dino",
                intervention="none",
                seed=seed,
                status="completed",
                imbalance=np.nan,
                knn_k="[20]",
                knn_top1_k20_init=init,
                knn_top1_k20=final,
                final_loss=4.0 + seed,
                dataset="digits",
                backbone="b",
                method_args='{"num_prototypes": 256}',
                batch_size=64,
            )
        )
    # neither an intervention arm nor a long-tailed none trial may enter the baseline (both run every seed:
    # the table reads the seeds every arm shares)
    rows += [{**r, "intervention": "cut:3", "knn_top1_k20": 0.1} for r in rows[:3]]
    rows += [{**r, "imbalance": 10.0, "knn_top1_k20": 0.1} for r in rows[:3]]
    header, table, k = block.learning_rows(pd.DataFrame(rows))
    assert k == 20 and len(table) == 1
    got = dict(zip(header, table[0]))
    gains = np.array([0.05, 0.06, 0.04])
    lo, hi = stats.t.interval(0.95, 2, loc=gains.mean(), scale=stats.sem(gains))
    assert got["gain (pp) [95% interval]"] == f"{100 * gains.mean():+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
    assert got["untrained kNN@20 (%)"] == "91.0" and got["final kNN@20 (%)"] == "96.0"
    assert got["final loss"] == "5.000" and got["collapsed-network loss"] == f"{math.log(256):.3f}"
    assert got["seeds"] == "0, 1, 2"
    assert lo > 0 and got["shown to learn"] == "yes"
    shaky = pd.DataFrame(
        [
            {**r, "method": "byol", "knn_top1_k20": r["knn_top1_k20_init"] + g}
            for r, g in zip(rows[:3], (0.05, -0.02, 0.01))
        ]
    )
    header, table, _ = block.learning_rows(shaky)
    assert stats.t.interval(0.95, 2, loc=0.0133, scale=stats.sem([0.05, -0.02, 0.01]))[0] < 0
    assert dict(zip(header, table[0]))["shown to learn"] == "no"


def test_replace_block_keeps_the_rest_and_refuses_a_file_without_markers():
    text = f"head\n{block.BEGIN}\nold\n{block.END}\ntail\n"
    new = f"{block.BEGIN}\nnew\n{block.END}"
    assert block.replace_block(text, new) == f"head\n{new}\ntail\n"
    with pytest.raises(ConfigError, match="markers"):
        block.replace_block("no markers here", new)


def test_claims_page_option_rewrites_only_the_block(tmp_path, capsys):
    import shutil

    results = tmp_path / "ref"
    shutil.copytree(REFERENCE, results, ignore=shutil.ignore_patterns("*-s[0-9]*"))  # tables only
    target = tmp_path / "page.md"
    target.write_text(f"before\n{block.BEGIN}\nstale\n{block.END}\nafter\n")
    assert main(["claims", str(results), "--page", str(target)]) == 0
    text = target.read_text()
    assert text.startswith("before\n") and text.endswith("\nafter\n") and "stale" not in text
    assert "Does each method learn?" in text
    bad = tmp_path / "plain.md"
    bad.write_text("no markers")
    assert main(["claims", str(results), "--page", str(bad)]) == 2
    assert bad.read_text() == "no markers"
    assert "--page" in capsys.readouterr().err


def _committed_trial_dirs() -> list[Path]:
    return sorted(
        p.parent
        for p in (REPO / "results" / "reference").rglob("config.yaml")
        if "checkpoints" not in p.parts and "export" not in p.parts
    )


def test_every_committed_trial_id_is_what_the_code_computes_from_its_config():
    """Ids hash the science only; the committed folders, rows and tables carry the id their stored config gives."""
    import json

    import yaml

    from suite.config import make_config

    dirs = _committed_trial_dirs()
    assert len(dirs) > 80
    for trial_dir in dirs:
        expected = make_config(yaml.safe_load((trial_dir / "config.yaml").read_text())).trial_id
        assert trial_dir.name == expected
        assert json.loads((trial_dir / "result.json").read_text())["trial_id"] == expected
        for name in ("curves.csv", "norm_bins.csv", "class_norms.csv"):
            if (trial_dir / name).is_file():
                assert set(pd.read_csv(trial_dir / name)["trial_id"]) == {expected}, (trial_dir, name)
    for results_dir in {d.parent for d in dirs}:
        for table in ("trials", "curves", "norm_bins", "class_norms"):
            for suffix in (".parquet", ".csv"):
                path = results_dir / f"{table}{suffix}"
                if path.is_file():
                    frame = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
                    assert set(frame["trial_id"]) <= {d.name for d in dirs if d.parent == results_dir}, path


def test_the_reference_spec_expands_to_the_committed_trials(reference):
    from suite.sweep.grid import expand_grid
    from suite.sweep.spec import load_spec

    planned = {t.trial_id for t in expand_grid(load_spec(SPEC))}
    assert planned == set(reference.trials["trial_id"])


def test_the_presented_runs_leaderboard_tables_are_what_the_code_writes(tmp_path, monkeypatch):
    """The docs present the digits-colour run's committed leaderboard: its tables, byte for byte, are what
    `normbench leaderboard` writes from the two committed folders today."""
    from suite.analysis.leaderboard.cli import write_leaderboard

    monkeypatch.chdir(REPO)  # the folders named as on the command line, relative to the repository
    write_leaderboard(list(COLOUR_RELS), tmp_path, formats=("csv", "tex"), plots=False)
    committed = REPO / COLOUR_RELS[0] / "leaderboard"
    for name in ("leaderboard.csv", "leaderboard.tex", "failures.csv"):
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes(), name
    failures = pd.read_csv(committed / "failures.csv")
    trials = pd.concat([pd.read_csv(REPO / rel / "trials.csv") for rel in COLOUR_RELS])
    assert set(failures["trial_id"]) == set(trials.loc[trials["status"] != "completed", "trial_id"])
    assert set(failures["intervention"]) == {"gradscale:1"}  # what the page says diverged
