"""One error form everywhere: the field (and its place), the value, what is allowed in our words, the near
miss; help that documents every key and ends with the exit statuses; the shorthand users expect."""

from __future__ import annotations

import argparse
import re

import pytest
import yaml

from suite.cli import build_parser, main
from suite.config import CONFIG_FIELDS
from suite.core.errors import ConfigError
from suite.sweep.grid import expand_grid
from suite.sweep.spec import load_spec, spec_from_dict

PYDANTIC_WORDS = ("Input should", "instance of", "validation error", "pydantic")


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("normbench: error: ") and len(err.splitlines()) == 1, err
    assert not any(word in err for word in PYDANTIC_WORDS), err
    return err


@pytest.mark.parametrize(
    "override, expected",
    [
        ("epochs=two", "epochs: invalid value 'two'; allowed: an integer >= 1"),
        ("epoch=3", "did you mean 'epochs'?"),
        ("interventon=cut:3", "did you mean 'intervention'?"),
        ("learning_rate=0.1", "did you mean 'lr'?"),
        ("precision=fp8", "precision: invalid value 'fp8'; allowed: one of"),
        ("augment.flip_q=0", "augment.flip_q"),
    ],
)
def test_trial_override_errors_are_ours_and_suggest(capsys, tmp_path, override, expected):
    err = _error(capsys, ["trial", override, "--dry-run", "--out", str(tmp_path)])
    assert expected in err, err


@pytest.mark.parametrize(
    "override, expected",
    [
        ("epochs=true", "epochs: invalid value True; allowed: an integer >= 1"),
        ("seed=true", "seed: invalid value True; allowed: an integer >= 0"),
        ("compile=1", "compile: invalid value 1; allowed: true or false"),
        ("epochs=2.0", "epochs: invalid value 2.0; allowed: an integer >= 1"),
        ("device=mps", "device: invalid value 'mps'; allowed: auto or a device this machine has (cpu"),
        ("device=cuda:7", "device: invalid value 'cuda:7'; allowed: auto or a device this machine has (cpu"),
        ("knn_k=[200,20,20]", "knn_k: invalid value [200, 20, 20]; allowed: distinct positive integers"),
        ("knn_k=[0]", "knn_k: invalid value [0]; allowed: a non-empty list of positive integers"),
        ("train_limit=100000", "train_limit: invalid value 100000; allowed: < the 1,437 images of this training"),
    ],
)
def test_the_last_bad_inputs_exit_2_with_one_line_and_write_nothing(capsys, tmp_path, override, expected):
    """Booleans are not integers (nor integers booleans), devices are this machine's, each k one column, a
    training subset smaller than the split; the run (not only the dry run) refuses before writing."""
    import torch

    if override.startswith("device=cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    out = tmp_path / "out"
    err = _error(capsys, ["trial", "backbone=test_resnet", "epochs=1", override, "--out", str(out)])
    assert expected in err, err
    assert not out.exists()


def test_a_dataset_folder_of_another_format_says_what_it_is_and_which_prefix_reads_it(capsys, tmp_path):
    import datasets
    import numpy as np

    images = [np.zeros((8, 8, 3), dtype=np.uint8)] * 4
    split = datasets.Dataset.from_dict({"img": images, "label": [0, 1, 0, 1]})
    datasets.DatasetDict({"train": split, "test": split}).save_to_disk(str(tmp_path / "saved"))
    capsys.readouterr()  # the library's own progress bar
    for prefix in ("imagefolder", "parquet"):
        err = _error(capsys, ["trial", f"dataset={prefix}:{tmp_path / 'saved'}", "--out", str(tmp_path / "out")])
        assert f"allowed: hf:{tmp_path / 'saved'}" in err and "is a save_to_disk folder" in err, err
    assert not (tmp_path / "out").exists()


def test_dotted_keys_reach_every_mapping_and_the_dry_run_writes_nothing(capsys, tmp_path):
    argv = ["trial", "--dry-run", "augment.flip_p=0", "method=simclr", "method_args.temperature=0.2"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert '"flip_p": 0' in out and '"temperature": 0.2' in out
    assert not (tmp_path / "out").exists()


def test_a_yaml_syntax_error_names_file_line_and_column(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: byol\nepochs: [1, 2\nlr: 0.1\n")
    err = _error(capsys, ["trial", "--config", str(bad), "--dry-run"])
    assert re.search(rf"{re.escape(str(bad))}:\d+:\d+", err), err
    err = _error(capsys, ["sweep", str(bad), "--dry-run"])
    assert re.search(rf"{re.escape(str(bad))}:\d+:\d+", err), err


def _spec(**data):
    return spec_from_dict({"name": "s", "base": {"epochs": 1}, **data})


@pytest.mark.parametrize(
    "data, field, expected",
    [
        ({"seed": [0, 1]}, "seed", "did you mean 'seeds'?"),
        ({"base": {"epochs": 1, "lrr": 0.1}}, "base.lrr", "did you mean 'lr'?"),
        ({"base": {"epochs": "two"}}, "base.epochs", "an integer >= 1"),
        ({"grid": {"epoch": [1, 2]}}, "grid.epoch", "did you mean 'epochs'?"),
        ({"tracking": {"mlflow": 3}}, "tracking.mlflow", "uri"),
    ],
)
def test_spec_errors_name_their_place(data, field, expected):
    with pytest.raises(ConfigError) as info:
        expand_grid(_spec(**data))  # what every command does with a spec before any work
    message = str(info.value)
    assert info.value.field == field and expected in message, message
    assert not any(word in message for word in PYDANTIC_WORDS), message


def test_tracking_shorthand_means_what_it_says(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump(
            {"base": {"epochs": 1}, "tracking": {"mlflow": "sqlite:///x.db", "tensorboard": "tb", "wandb": "offline"}}
        )
    )
    tracking = load_spec(path).tracking
    assert tracking.mlflow.uri == "sqlite:///x.db" and tracking.tensorboard.dir == "tb"
    assert tracking.wandb.mode == "offline"


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {"normbench": parser, **sub.choices}


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_help_ends_with_the_exit_statuses_and_has_quiet(command):
    parser = _commands()[command]
    lines = parser.format_help().rstrip().splitlines()
    assert "exit status:" in lines, command
    status_lines = lines[lines.index("exit status:") + 1 :]
    assert status_lines and all(re.match(r"\s+\d", line) for line in status_lines[:1]), status_lines
    if command != "normbench":
        assert "-q, --quiet" in parser.format_help(), command


def test_trial_help_documents_every_key_with_what_it_accepts_and_prints_defaults_as_typed():
    text = _commands()["trial"].format_help()
    for key in CONFIG_FIELDS:
        assert re.search(rf"^  {key}\s+(science|run)\s+default ", text, re.M), key
    keys_section = text.split("config keys", 1)[1].split("\nexamples:", 1)[0]
    blocks = re.split(r"^  (?=\w)", keys_section, flags=re.M)[1:]
    assert len(blocks) == len(CONFIG_FIELDS)
    assert [b.split()[0] for b in blocks if not re.search(r"\baccepts\s", b)] == []
    assert re.search(r"^  intervention\s+science\s+default none$", text, re.M)
    assert "Intervention(" not in text and "PydanticUndefined" not in text


def test_version_and_one_list_syntax(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and re.match(r"normbench \d", capsys.readouterr().out)
    # Lists are comma-separated everywhere: leaderboard --formats, report/leaderboard --group-by, bench --methods.
    err = _error(capsys, ["leaderboard", "/nonexistent", "--formats", "md,pdf"])
    assert "--formats" in err and "pdf" in err
    err = _error(capsys, ["bench", "--methods", "simclr,bayol", "--quick"])
    assert "--methods" in err and "bayol" in err and "did you mean 'byol'?" in err
