"""Results files: atomic writes, tables rebuilt from trial directories."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from suite.core.jsonio import write_json
from suite.results import store as results


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    target = tmp_path / "trials"
    good = pd.DataFrame({"trial_id": ["a"], "knn_top1_k200": [0.5]})
    results.atomic_write_frame(good, target)

    class Unwritable(pd.DataFrame):
        def to_parquet(self, *a, **k):
            raise OSError("disk full")

    with pytest.raises(OSError):
        results.atomic_write_frame(Unwritable({"trial_id": ["b"]}), target)
    pd.testing.assert_frame_equal(pd.read_parquet(target.with_suffix(".parquet")), good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trials.csv", "trials.parquet"]  # no temp files left


def test_collect_results_builds_all_tables_from_trial_dirs(tmp_path):
    for i, status in enumerate(["completed", "failed", "running"]):
        d = tmp_path / f"t{i}"
        d.mkdir()
        results.write_result(
            d,
            {
                "trial_id": f"t{i}",
                "status": status,
                "knn_top1_k200": 0.1 * i,
                "holdout_classes": None,
                "error": "boom" if status == "failed" else "",
            },
        )
        pd.DataFrame({"trial_id": [f"t{i}"] * 2, "epoch": [1, 2], "loss": [2.0, 1.0 + i]}).to_csv(
            d / results.CURVES_FILE, index=False
        )
    (tmp_path / "not_a_trial").mkdir()
    trials = results.collect_results(tmp_path)
    assert sorted(trials["trial_id"]) == ["t0", "t1", "t2"]
    table = pd.read_parquet(tmp_path / "trials.parquet").set_index("trial_id")
    assert table.loc["t1", "status"] == "failed" and table.loc["t1", "error"] == "boom"
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert len(curves) == 6 and curves.groupby("trial_id")["loss"].last().to_dict() == {"t0": 1.0, "t1": 2.0, "t2": 3.0}


def test_json_has_no_nan_tokens(tmp_path):
    write_json(tmp_path / "r.json", {"x": float("nan"), "y": [1.0, float("inf")]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"x": None, "y": [1.0, None]}
