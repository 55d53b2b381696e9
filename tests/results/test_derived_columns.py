"""The leaderboard's derived columns and the config columns the analysis reads are named by the schema:
the builders give the names the committed reference leaderboard carries, refuse parts that do not exist,
and no analysis module spells a derived name by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from suite.config.model import CONFIG_FIELDS
from suite.results import schema

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "results" / "reference" / "digits-reference" / "leaderboard" / "leaderboard.csv"


def test_builders_name_the_derived_columns():
    c = schema.knn(200)
    assert schema.over_seeds(c, schema.MEAN) == "knn_top1_k200_mean"
    assert schema.over_seeds(c, schema.STD) == "knn_top1_k200_std"
    assert schema.delta(c) == "delta_knn_top1_k200"
    assert [schema.delta(c, part) for part in schema.DELTA_PARTS] == [
        "delta_knn_top1_k200_ci_lo",
        "delta_knn_top1_k200_ci_hi",
        "delta_knn_top1_k200_n",
        "delta_knn_top1_k200_paired",
        "delta_knn_top1_k200_significant",
    ]
    assert schema.delta(c, "ci_lo") == schema.ci_lo(schema.delta(c))  # the one interval suffix
    assert schema.gain(c) == "gain_knn_top1_k200" and schema.gain(c, schema.MEAN) == "gain_knn_top1_k200_mean"
    assert [schema.convergence("knn", o) for o in schema.RACE_OUTCOMES] == [
        "conv_knn_faster",
        "conv_knn_slower",
        "conv_knn_tied",
        "conv_knn_censored",
    ]
    assert schema.convergence("loss") == "conv_loss"


@pytest.mark.parametrize(
    "build",
    [
        lambda: schema.over_seeds("loss", "median"),
        lambda: schema.delta("loss", "mean"),
        lambda: schema.gain("loss", "significant"),
        lambda: schema.convergence("accuracy", "faster"),
        lambda: schema.convergence("knn", "won"),
    ],
)
def test_builders_refuse_a_part_that_does_not_exist(build):
    with pytest.raises(ValueError, match="is not one of"):
        build()


def test_config_columns_are_fields_of_the_config():
    named = [schema.NAME, schema.DATASET, schema.BACKBONE, schema.METHOD, schema.INTERVENTION, schema.EPOCHS]
    named += [schema.SEED, schema.IMBALANCE, schema.KNN_K, schema.WEIGHT_DECAY]
    assert set(named) <= set(CONFIG_FIELDS) and len(set(named)) == len(named)
    with pytest.raises(ValueError, match="not a field of the trial config"):
        schema._config_column("methods")


def test_every_committed_leaderboard_column_is_a_schema_name():
    """leaderboard.csv of the reference run: group keys (config columns), the leaderboard's constants, and
    the builders' names of its aggregated columns -- nothing else."""
    columns = list(pd.read_csv(COMMITTED, nrows=0).columns)
    constants = {schema.N, schema.N_EXPECTED, schema.N_SHORT, schema.SEEDS, schema.GROUP, schema.BEST}
    constants |= {schema.BASELINE_GROUP, schema.IS_BASELINE, schema.BASELINE_DIFFERS}
    aggregated = [c[: -len("_mean")] for c in columns if c.endswith("_mean") and not c.startswith("gain_")]
    names = set(constants) | {c for c in columns if c in CONFIG_FIELDS}
    names |= {schema.over_seeds(c, s) for c in aggregated for s in (schema.MEAN, schema.STD)}
    accuracies = [c for c in aggregated if schema.is_accuracy(c)]
    names |= {schema.delta(c, p) for c in accuracies for p in ("", *schema.DELTA_PARTS)}
    names |= {schema.gain(c, p) for c in accuracies for p in schema.GAIN_PARTS}
    names |= {schema.convergence(m, o) for m in schema.CONVERGENCE_MEASURES for o in schema.RACE_OUTCOMES}
    assert [c for c in columns if c not in names] == []
    assert schema.delta(schema.knn(200), "significant") in columns and schema.gain(schema.knn(200), "n") in columns


def test_no_analysis_module_spells_a_derived_column_by_hand():
    by_hand = re.compile(r"""["'](delta|gain|conv)_|\{\w+\}_(mean|std)["']""")
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sorted((REPO / "suite" / "analysis").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if by_hand.search(line)
    ]
    assert found == []
