"""A trial's id hashes its science and nothing else, for every field of the config model
(a field added later is covered by these tests without editing them)."""

from __future__ import annotations

import pytest

from suite.config import CONFIG_FIELDS, RUN, RUN_FIELDS, SCIENCE, SCIENCE_FIELDS, TrialConfig, field_kind, make_config
from suite.results import schema


def _example(name: str):
    return TrialConfig.model_fields[name].examples[0]


def test_every_field_is_science_or_a_run_setting_and_has_an_example_and_a_description():
    for name in CONFIG_FIELDS:
        info = TrialConfig.model_fields[name]
        assert field_kind(name) in (SCIENCE, RUN), name
        assert info.examples, f"{name}: no example value"
        assert info.description, f"{name}: no description"
    assert set(SCIENCE_FIELDS) | set(RUN_FIELDS) == set(CONFIG_FIELDS)
    assert not set(SCIENCE_FIELDS) & set(RUN_FIELDS)


@pytest.mark.parametrize("name", SCIENCE_FIELDS)
def test_a_science_field_changes_the_trial_id(name):
    base, changed = make_config({}), make_config({name: _example(name)})
    assert changed.science() != base.science(), f"the example of {name} resolves to the default"
    assert changed.trial_id != base.trial_id


@pytest.mark.parametrize("name", RUN_FIELDS)
def test_a_run_setting_leaves_the_trial_id_alone_and_is_recorded(name):
    base, changed = make_config({}), make_config({name: _example(name)})
    assert changed.run_settings()[name] != base.run_settings()[name]
    assert changed.trial_id == base.trial_id
    assert schema.role(name) == schema.RUN


def test_the_schema_reads_the_roles_from_the_config():
    assert [c for c in CONFIG_FIELDS if schema.role(c) == schema.SCIENCE] == list(SCIENCE_FIELDS)
    assert schema.role("trial_id") == schema.IDENTITY and schema.role("knn_top1_k20") == schema.OUTCOME


def test_fields_left_at_their_defaults_are_left_out_of_the_hash():
    """So a field added later with a default that keeps the old behaviour keeps every existing id."""
    cfg = make_config({"method": "byol", "seed": 3})
    assert "val_fraction" not in cfg.science() and "augment" not in cfg.science()
    assert cfg.science()["method"] == "byol" and cfg.science()["seed"] == 3
