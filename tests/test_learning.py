"""Learning happens: a short SimCLR run beats the same backbone at random initialization."""
from __future__ import annotations

import torch

from suite.config import make_config
from suite.evaluate import encode, knn_metrics
from suite.train import build_model, load_data, run_trial


def test_short_simclr_run_beats_random_init_knn(tmp_path):
    cfg = make_config(dict(method="simclr", backbone="test_resnet", image_size=16, epochs=5, batch_size=128,
                           linear_epochs=5))
    splits = load_data(cfg)
    random_model = build_model(cfg)  # the trial's own initial weights (same seed)
    kw = dict(batch_size=512, device=torch.device("cpu"), precision="fp32", channels_last=False)
    before = knn_metrics(encode(random_model, splits.train_images, splits.mean, splits.std, **kw),
                         encode(random_model, splits.test_images, splits.mean, splits.std, **kw),
                         splits, cfg.knn_k, cfg.knn_temperature)
    row = run_trial(cfg, tmp_path / "t", progress=False).row
    assert row["knn_top1_k200"] > before["knn_top1_k200"] + 0.05, (before, row["knn_top1_k200"])
    assert row["knn_top1_k20"] > before["knn_top1_k20"]
