#!/usr/bin/env bash
# GPU figures (issue 13, item 3), for a session that has one CUDA GPU. Needs no network.
#
#   benchmarks/gpu_check.sh            # or PYTHON=/path/to/python benchmarks/gpu_check.sh
#
# 1. `normbench bench --device cuda` with ResNet-18 at 32 px -> benchmarks/results/<device>.json (+ .txt table)
# 2. a short ResNet-18, 32 px, bf16 trial per method on the digits images upsampled to 32 px, recording
#    images/s (best warm epoch), epoch time, peak GPU memory, and confirming that the bf16 autocast,
#    channels_last and dataset-on-GPU paths are the ones that ran -> benchmarks/results/<device>-trials.json
# Target (issue 13): >= 10,000 training images/s for ResNet-18 SimCLR at 32 px on one datacenter GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

DEVICE=$("$PY" -c 'import re, torch; print(re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-"))')
OUT=benchmarks/results
mkdir -p "$OUT"
echo "== device: $DEVICE"

"$PY" -m suite.cli bench --device cuda --backbone resnet18 --image-size 32 --json "$OUT/$DEVICE.json" \
    | tee "$OUT/$DEVICE.txt"

"$PY" - "$OUT/$DEVICE-trials.json" <<'PY'
"""One short bf16 ResNet-18 trial per method, with the GPU paths confirmed."""
import json, sys, tempfile
from pathlib import Path

import torch

from methods import METHODS
from suite.tools.bench.loop import build_setup
from suite.tools.bench.training import run_suite_trial, warm
from suite.config import make_config
from suite.trial.runtime import autocast_context
from suite.trial.train import load_data, place_dataset

out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "gpus": torch.cuda.device_count(),
       "trials": {}}
with tempfile.TemporaryDirectory() as tmp:
    for method in METHODS:
        cfg = make_config(dict(method=method, backbone="resnet18", dataset="digits", image_size=32, precision="bf16",
                               device="cuda", batch_size=256, epochs=10, linear_epochs=10))
        splits = load_data(cfg)
        setup = build_setup(cfg, splits)  # the trainer's rules: channels_last on CUDA, bf16 autocast
        views = [aug(setup.images[: cfg.batch_size]) for aug in setup.augmenters]
        with autocast_context(setup.device, cfg.precision):
            features = setup.model.backbone(views[0].contiguous(memory_format=torch.channels_last))
        paths = {"autocast_dtype": str(features.dtype), "channels_last": setup.channels_last,
                 "dataset_on_gpu": place_dataset(splits.train_images, setup.device).is_cuda}
        del setup, views, features
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        row, curves = run_suite_trial(cfg, Path(tmp) / method)
        out["trials"][method] = {
            **paths, "status": row["status"],
            "images_per_s_best_warm_epoch": max(float(c["images_per_s"]) for c in warm(curves)),
            "images_per_s_row": float(row["images_per_s"]),
            "epoch_time_s_best": min(float(c["epoch_time_s"]) for c in warm(curves)),
            "peak_gpu_memory_mib": torch.cuda.max_memory_allocated() / 2**20,
            "knn_top1_k20": float(row.get("knn_top1_k20", float("nan"))),
        }
        print(method, json.dumps(out["trials"][method]), flush=True)
Path(sys.argv[1]).write_text(json.dumps(out, indent=2) + "\n")
print("written", sys.argv[1])
PY
echo "== commit $OUT/$DEVICE.json, $OUT/$DEVICE.txt and $OUT/$DEVICE-trials.json"
