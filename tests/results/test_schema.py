"""The result schema owns every column: whatever a real trial writes, and whatever the committed
reference run holds, the schema can say what it is (a column added to training without an entry in
`suite/results/schema.py` fails here)."""

from __future__ import annotations

import pandas as pd
import pytest

from suite.config import make_config
from suite.results import schema, store
from suite.trial.train import run_trial
from tests.support import REPO


def _unowned(frame: pd.DataFrame | list[dict]) -> list[str]:
    columns = frame.columns if isinstance(frame, pd.DataFrame) else {k for row in frame for k in row}
    return sorted(c for c in columns if schema.owner(c) is None)


@pytest.mark.slow  # over 10 s on 2 cores: make test runs it, test-fast does not
def test_a_trial_with_every_instrument_writes_only_columns_the_schema_names(tmp_path, tiny_trial):
    cfg = make_config(
        {
            **tiny_trial,
            "method": "byol",  # has a projector output apart from its embedding: the proj_* columns
            "holdout_classes": [9],
            "imbalance": 4.0,
            "val_fraction": 0.2,
            "eval_every": 1,
            "train_limit": None,
            "batch_size": 256,
        }
    )
    result = run_trial(cfg, tmp_path / "t", progress=False)
    assert result.row[schema.STATUS] == schema.COMPLETED, result.row.get(schema.ERROR)
    assert schema.diagnostic("proj", schema.OOD_AUROC) in result.row and schema.knn(200, "val") in result.curves[-1]
    assert schema.FREQUENCY_ORDER in result.row
    assert _unowned([result.row]) == []
    assert _unowned(result.curves) == []
    assert _unowned(result.norm_bins) == []
    assert _unowned(result.class_norms) == []
    assert _unowned(result.eval_norms) == []
    _check_the_mechanism_and_the_controls(cfg, result)


def _check_the_mechanism_and_the_controls(cfg, result) -> None:
    """The same real trial: the mechanism checks at every evaluation, the untrained network's diagnostics,
    the training split's size and the learning rate summed over every step (recomputed here), and claim
    C2b judged on this trial's own tables."""
    import math

    from suite.analysis.claims.verdicts import HOLDS, POOLED, evaluate_claims

    evaluated = [c for c in result.curves if c.get(schema.GRAD_IDENTITY_DEV) is not None]
    assert [c[schema.EPOCH] for c in evaluated] == list(range(cfg.epochs + 1))
    for c in evaluated:
        assert c[schema.GRAD_IDENTITY_DEV] < 1e-3
        assert abs(c[schema.STEP_TURN_SLOPE] + 2.0) < 0.05 and abs(c[schema.STEP_TURN_PLACEBO]) < 0.05
    for vector in ("emb", "proj"):
        for name in schema.CONTROLLED_DIAGNOSTICS:
            value = result.row[schema.init_of(schema.diagnostic(vector, name))]
            assert 0.0 <= value <= 1.0, (vector, name, value)
    steps = result.row[schema.TRAIN_IMAGES] // cfg.batch_size
    total, warmup, base = steps * cfg.epochs, steps * cfg.warmup_epochs, cfg.scaled_lr()
    schedule = [
        base * (t + 1) / warmup
        if t < warmup
        else base * 0.5 * (1 + math.cos(math.pi * (t - warmup) / (total - warmup)))
        for t in range(total)
    ]
    assert result.row[schema.LR_SUM] == pytest.approx(sum(schedule), rel=1e-12)
    claims = evaluate_claims(pd.DataFrame([result.row]), pd.DataFrame(result.curves))
    c2b = claims[(claims["claim"] == "C2b") & (claims["method"] == POOLED)].iloc[0]
    assert c2b["verdict"] == HOLDS and c2b["value"] < 1e-3


def test_the_committed_reference_run_holds_only_columns_the_schema_names():
    tables = store.read_tables(REPO / "results" / "reference" / "digits-reference")
    for name in schema.TABLES:
        assert tables[name] is not None, name
        assert _unowned(tables[name]) == [], name


@pytest.mark.parametrize("column", ["knn_top1_k20_x", "emb_norm_q42", "val_linear_top1", "test_emb_norm", "bogus"])
def test_a_column_the_schema_does_not_name_has_no_owner(column):
    assert schema.owner(column) is None


def test_owner_reads_k_split_and_epoch_0_from_the_name():
    assert schema.owner(schema.knn(7)) == "kNN top-1 with k=7 on the test set (fraction)"
    assert "validation split" in schema.owner(schema.knn(7, "val"))
    assert schema.owner(schema.knn_init(7)).endswith("of the untrained network (epoch 0)")
    assert schema.owner(schema.ci_lo(schema.diagnostic("feat", schema.CORRECT_AUROC))).startswith("lower end")
    assert schema.owner("weight_decay").startswith("config (science)")
    assert schema.owner("num_threads").startswith("config (run)")


@pytest.mark.parametrize(
    "column, test_metric",
    [
        ("knn_top1_k20", True),
        ("knn_top1_k20_init", True),
        ("linear_top1", True),
        ("test_emb_norm_mean", True),
        ("val_knn_top1_k20", False),
        ("loss", False),
        ("emb_norm_mean", False),
    ],
)
def test_test_metrics_are_the_test_set_measurements(column, test_metric):
    assert schema.is_test_metric(column) is test_metric
