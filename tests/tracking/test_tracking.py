"""`normbench trial --track`: MLflow read back through its client (SQLite store under
tmp_path, offline), TensorBoard event files, W&B offline when installed."""

from __future__ import annotations

import importlib.util
import math

import pandas as pd
import pytest

from suite.cli import main

TINY = [
    "dataset=digits",
    "backbone=test_resnet",
    "image_size=16",
    "epochs=2",
    "batch_size=64",
    "train_limit=128",
    "linear_epochs=5",
    "device=cpu",
    "num_threads=1",
    "eval_every=1",
    "val_fraction=0.25",
]


def test_trial_logs_config_curves_and_final_row_to_mlflow(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    out = tmp_path / "results"
    assert (
        main(
            [
                "trial",
                *TINY,
                "method_args.temperature=0.3",
                "--out",
                str(out),
                "--quiet",
                "--track",
                f"mlflow={tmp_path / 'mlflow'}",
                "--track",
                f"tensorboard={tmp_path / 'tb'}",
            ]
        )
        == 0
    )
    row = pd.read_parquet(out / "trials.parquet").iloc[0]
    curves = pd.read_csv(out / row["trial_id"] / "curves.csv")

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("normbench-local").experiment_id])
    assert run.info.run_name == row["trial_id"] and run.info.status == "FINISHED"
    params = run.data.params
    assert params["method"] == "simclr" and float(params["method_args.temperature"]) == 0.3
    assert float(params["val_fraction"]) == 0.25 and int(params["epochs"]) == 2
    # per-epoch curves at step = epoch (the epoch-0 row included), the last epoch with its final evaluation
    for key in ("loss", "val_knn_top1_k20", "knn_top1_k200"):
        history = {}
        for m in client.get_metric_history(run.info.run_id, key):
            history[m.step] = m.value  # the last value logged for a step wins
        expected = {int(e): v for e, v in zip(curves["epoch"], curves[key]) if not math.isnan(v)}
        assert history == pytest.approx(expected), key
    for key in ("knn_top1_k200", "val_knn_top1_k20", "linear_top1", "emb_norm_mean"):
        assert run.data.metrics[f"final/{key}"] == pytest.approx(row[key])
    artifacts = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"result.json", "curves.csv"} <= artifacts
    assert any((tmp_path / "tb" / row["trial_id"]).glob("events.out.tfevents*"))


@pytest.mark.slow  # W&B starts its own service process
def test_wandb_offline_when_installed(tmp_path, capsys):
    if importlib.util.find_spec("wandb") is None:
        pytest.skip("wandb is not installed (pip install wandb to test W&B offline tracking)")
    out = tmp_path / "results"
    assert main(["trial", *TINY, "--out", str(out), "--quiet", "--track", "wandb=offline"]) == 0
    assert any(out.rglob("offline-run-*"))
