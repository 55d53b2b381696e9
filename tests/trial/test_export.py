"""`normbench export`: a real tiny trial, exported, loaded back through
`suite.load_backbone` and through plain timm; features must equal those of the
backbone in the trial's own checkpoint on the same images."""

from __future__ import annotations

import json

import pytest
import timm
import torch

from suite import load_backbone
from suite.cli import main
from suite.config import make_config
from suite.trial import checkpoint as ckpt
from suite.trial.augment import normalize
from suite.trial.train import build_model, load_data, run_trial


def _trained(tmp_path, tiny_trial, **over):
    cfg = make_config({**tiny_trial, "epochs": 1, "linear_epochs": 2, **over})  # weights only need to be trained ones
    trial_dir = tmp_path / "results" / cfg.trial_id
    row = run_trial(cfg, trial_dir, progress=False).row
    assert row["status"] == "completed"
    return cfg, trial_dir, row


def _checkpoint_features(cfg, trial_dir):
    """(normalized test images, features of the checkpoint's backbone) — the reference."""
    method = build_model(cfg)
    method.load_state_dict(ckpt.read(trial_dir / "checkpoints" / "last")["model"])
    splits = load_data(cfg)
    images = normalize(splits.test_images.materialize()[:96], splits.mean, splits.std)
    with torch.no_grad():
        return images, splits, method.backbone.eval()(images)


def _features(model, images):
    with torch.no_grad():
        return model.eval()(images)


def test_export_with_cifar_stem_round_trips_through_load_backbone(tmp_path, tiny_trial, capsys):
    cfg, trial_dir, row = _trained(tmp_path, tiny_trial, method="byol", intervention="cut:3")
    assert main(["export", str(trial_dir)]) == 0
    out = trial_dir / "export"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]

    images, splits, reference = _checkpoint_features(cfg, trial_dir)
    loaded = load_backbone(out)
    assert not loaded.training
    torch.testing.assert_close(_features(loaded, images), reference, rtol=0, atol=0)

    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "test_resnet" and config["num_features"] == reference.shape[1]
    assert config["pretrained_cfg"]["input_size"] == [3, 16, 16]
    assert config["pretrained_cfg"]["mean"] == pytest.approx(list(splits.mean))
    assert config["pretrained_cfg"]["std"] == pytest.approx(list(splits.std))
    ours = config["normbench"]
    assert ours["cifar_stem"] is True
    assert (ours["trial_id"], ours["method"], ours["intervention"]) == (cfg.trial_id, "byol", "cut:3")
    for key in ("knn_top1_k200", "knn_top1_k20", "linear_top1", "emb_norm_mean", "final_loss"):
        assert ours["metrics"][key] == pytest.approx(row[key]), key
    assert loaded.pretrained_cfg["mean"] == config["pretrained_cfg"]["mean"]

    # The stem flag matters: the same weights in timm's stock architecture give other features.
    stock = timm.create_model(
        "test_resnet", pretrained=True, num_classes=0, pretrained_cfg_overlay=dict(file=str(out / "model.safetensors"))
    )
    assert not torch.allclose(_features(stock, images), reference)

    # An existing export is not replaced without --overwrite; nothing is touched.
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()}
    capsys.readouterr()
    assert main(["export", str(trial_dir)]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and str(out) in err and "--overwrite" in err
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()} == before
    assert main(["export", str(trial_dir), "--overwrite"]) == 0
    torch.testing.assert_close(_features(load_backbone(out), images), reference, rtol=0, atol=0)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_export_without_stem_loads_with_plain_timm(tmp_path, tiny_trial):
    cfg, trial_dir, _ = _trained(tmp_path, tiny_trial, cifar_stem=False)
    out = tmp_path / "exported"
    assert main(["export", str(trial_dir), "--out", str(out)]) == 0
    images, splits, reference = _checkpoint_features(cfg, trial_dir)

    config = json.loads((out / "config.json").read_text())
    assert config["normbench"]["cifar_stem"] is False
    by_suite = load_backbone(out)
    by_file = timm.create_model(
        "test_resnet", pretrained=True, num_classes=0, pretrained_cfg_overlay=dict(file=str(out / "model.safetensors"))
    )
    by_dir = timm.create_model(f"local-dir:{out}", pretrained=True, num_classes=0)
    for model in (by_suite, by_file, by_dir):
        torch.testing.assert_close(_features(model, images), reference, rtol=0, atol=0)
    # timm's own data config reads the export's normalization and input size.
    data_cfg = timm.data.resolve_data_config(model=by_dir)
    assert data_cfg["mean"] == pytest.approx(splits.mean) and data_cfg["std"] == pytest.approx(splits.std)
    assert tuple(data_cfg["input_size"]) == (3, 16, 16)


def test_bad_export_arguments_exit_2_before_writing(tmp_path, capsys):
    missing = tmp_path / "no-such-trial"
    assert main(["export", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "TRIAL_DIR" in err and str(missing) in err and "trial directory" in err
    assert not missing.exists()

    empty = tmp_path / "not-a-trial"
    empty.mkdir()
    assert main(["export", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "TRIAL_DIR" in err and "checkpoints/last/state.pt" in err
    assert list(empty.iterdir()) == []

    with pytest.raises(Exception) as info:
        load_backbone(empty)
    assert "config.json" in str(info.value) and str(empty) in str(info.value)
