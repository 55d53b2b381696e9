"""Config: YAML + key=value overrides, method defaults, cross-field checks."""

from __future__ import annotations

import pytest

from methods import METHODS
from suite.config import CONFIG_FIELDS, apply_overrides, load_config, make_config, parse_override
from suite.config.load import KEY_ALIASES
from suite.core.errors import ConfigError


def test_override_values_are_typed_like_yaml():
    assert parse_override("lr=0.1") == ("lr", 0.1)
    assert parse_override("holdout_classes=[0, 3]") == ("holdout_classes", [0, 3])
    assert parse_override("cifar_stem=false") == ("cifar_stem", False)
    assert parse_override("intervention=cut:3+gradscale:1") == ("intervention", "cut:3+gradscale:1")
    data = apply_overrides({"method": "byol", "method_args": {"hidden_dim": 64}}, ["method_args.tau_base=0.9"])
    assert data["method_args"] == {"hidden_dim": 64, "tau_base": 0.9}


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("method: moco\nepochs: 7\nlr: 0.05\n")
    cfg = load_config(path, ["epochs=3"])
    assert (cfg.method, cfg.epochs, cfg.lr) == ("moco", 3, 0.05)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_defaults_fill_every_unset_field(name):
    cls = METHODS[name]
    cfg = make_config({"method": name, "epochs": 50})
    assert cfg.optimizer == cls.default_optimizer
    assert cfg.lr == cls.default_lr
    assert cfg.weight_decay == cls.default_weight_decay
    assert cfg.warmup_epochs == cls.default_warmup_epochs
    assert cfg.image_size == 16  # digits default
    assert set(cfg.method_args) == set(cls.Hparams.model_fields)


def test_linear_lr_scaling():
    cfg = make_config({"lr": 0.4, "batch_size": 512})
    assert cfg.scaled_lr() == pytest.approx(0.8)
    assert make_config({"lr": 0.4, "batch_size": 512, "lr_scaling": "none"}).scaled_lr() == pytest.approx(0.4)


def test_weight_decay_intervention_sets_and_guards_weight_decay():
    assert make_config({"intervention": "wd:0.001"}).weight_decay == pytest.approx(1e-3)
    assert make_config({"intervention": "cut:3+wd:0"}).weight_decay == 0.0
    with pytest.raises(ConfigError, match="weight_decay"):
        make_config({"intervention": "wd:0.001", "weight_decay": 0.1})


def test_trial_id_is_stable_and_config_sensitive():
    a, b = make_config({"seed": 1}), make_config({"seed": 1})
    assert a.trial_id == b.trial_id
    assert make_config({"seed": 2}).trial_id != a.trial_id
    assert make_config({"seed": 1, "lr": 0.2}).trial_id != a.trial_id
    assert "/" not in make_config({"dataset": "digits", "intervention": "cut:3+gradscale:1"}).trial_id


@pytest.mark.parametrize(
    "data, field",
    [
        ({"epochs": 5, "warmup_epochs": 5}, "warmup_epochs"),
        ({"batch_size": 10, "workers": 4}, "batch_size"),
        ({"device": "tpu"}, "device"),
        ({"knn_k": [0]}, "knn_k"),
        ({"holdout_classes": [1, 1]}, "holdout_classes"),
        ({"holdout_classes": [1], "ood_dataset": "digits"}, "ood_dataset"),
        ({"imbalance": 0.5}, "imbalance"),
        ({"precision": "fp16"}, "precision"),
    ],
)
def test_cross_field_errors_name_the_field(data, field):
    with pytest.raises(ConfigError) as info:
        make_config(data)
    assert info.value.field == field


def test_unknown_key_lists_the_known_ones():
    with pytest.raises(ConfigError) as info:
        make_config({"epoch": 3})
    assert info.value.field == "epoch" and "epochs" in str(info.value)
    assert "epochs" in CONFIG_FIELDS


@pytest.mark.parametrize("alias", sorted(KEY_ALIASES))
def test_other_tools_key_names_point_to_ours_and_are_never_accepted(alias):
    assert alias not in CONFIG_FIELDS and KEY_ALIASES[alias] in CONFIG_FIELDS
    with pytest.raises(ConfigError) as info:
        make_config({alias: 1})
    assert info.value.field == alias and f"did you mean {KEY_ALIASES[alias]!r}?" in str(info.value)


def test_a_choice_hyper_parameter_lists_its_choices():
    with pytest.raises(ConfigError) as info:
        make_config({"method": "dino", "method_args": {"centering": "median"}})
    assert info.value.field == "method_args.centering" and info.value.value == "median"
    assert info.value.allowed == "one of 'mean', 'sinkhorn'"
