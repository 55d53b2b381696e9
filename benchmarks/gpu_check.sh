#!/usr/bin/env bash
# GPU figures, for a session that has one CUDA GPU. Needs no network: every trial trains on
# digits-synth (50,000 + 10,000 colour 32 px images made from the built-in digits), so an epoch has
# about 195 steps of 256 and every images/s figure is read over more than 100 warm steps.
#
#   benchmarks/gpu_check.sh            # or PYTHON=/path/to/python benchmarks/gpu_check.sh
#
# 1. `normbench bench --device cuda` with ResNet-18 at 32 px, SimCLR (the anchors' method), the sections
#    that use the GPU (views, training, breakdown, evaluation, fastpath; sweep_scale, analysis_scale and
#    ray measure the CPU side and run anywhere) -> benchmarks/results/<device>.json (+ .txt table)
# 2. a ResNet-18, 32 px, bf16 trial per method, two epochs (the second, warm, one of ~195 steps is the
#    figure), recording images/s, epoch time, peak GPU memory, and confirming that the bf16 autocast,
#    channels_last and dataset-on-GPU paths are the ones that ran -> benchmarks/results/<device>-trials.json
# Anchors: a co-author's SimCLR ResNet-18 CIFAR-10 epoch on an A100 (11.9 s); target <= 3 s per epoch of
# 50,000 images on one H200.
#
# Time budget: 10 minutes on one H200, held by `timeout`: step 1 gets BENCH_S (default 330) seconds,
# step 1b (data_scale, --quick) DATA_S (90) and step 2 what is left of TOTAL_S (default 570); each
# prints its own wall time, so the first run on a GPU says how much room there is. The estimate behind the split, at an assumed >= 10,000 images/s (an epoch
# of digits-synth in <= 5 s): start-up, CUDA and the dataset ~30 s; views ~15 s; training 3 rounds x
# (plain loop 2 epochs + run_trial 2 epochs + its final evaluation) ~120 s; breakdown ~30 s; evaluation
# (encode 8 x 50,000 images, a 50,000 x 512 kNN bank, the probes) ~40 s; fastpath (eager and compiled
# 2 epochs each plus compilation) ~120 s: ~6 min. Trials: 5 x (2 epochs + evaluation + set-up) ~2.5 min.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
BENCH_S=${BENCH_S:-330}
DATA_S=${DATA_S:-90}
TOTAL_S=${TOTAL_S:-570}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

DEVICE=$("$PY" -c 'import re, torch; print(re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-"))') || exit 1
OUT=benchmarks/results
mkdir -p "$OUT"
echo "== device: $DEVICE"

start=$SECONDS
timeout --signal=INT --kill-after=20 "$BENCH_S" "$PY" -m suite.cli bench --device cuda --backbone resnet18 \
    --image-size 32 --methods simclr --sections views,training,breakdown,evaluation,fastpath \
    --json "$OUT/$DEVICE.json" | tee "$OUT/$DEVICE.txt"
bench_status=${PIPESTATUS[0]}
echo "== bench: exit status $bench_status after $((SECONDS - start)) s (124: stopped at the ${BENCH_S} s budget)"

# 1b. the data_scale section's small form on the GPU: epochs streamed from the memory map through the
#     pinned staging ring against the same epochs from a copy on the device
start=$SECONDS
timeout --signal=INT --kill-after=10 "$DATA_S" "$PY" -m suite.cli bench --device cuda --quick \
    --sections data_scale --json "$OUT/$DEVICE-data-scale.json" | tee "$OUT/$DEVICE-data-scale.txt"
echo "== data_scale: exit status ${PIPESTATUS[0]} after $((SECONDS - start)) s"

left=$((TOTAL_S - SECONDS))
if [ "$left" -lt 60 ]; then
    echo "== no time left for the per-method trials ($left s)"
    exit 1
fi
start=$SECONDS
timeout --signal=INT --kill-after=20 "$left" "$PY" - "$OUT/$DEVICE-trials.json" <<'PY'
"""One bf16 ResNet-18 trial per method on digits-synth, with the GPU paths confirmed; the file is
rewritten after every method, so a run stopped by the time budget keeps what it measured."""
import json, sys, tempfile, time
from pathlib import Path

import torch

from methods import METHODS
from suite.tools.bench.loop import build_setup
from suite.tools.bench.training import run_suite_trial, warm
from suite.config import make_config
from suite.trial.runtime import autocast_context
from suite.trial.batches import place_dataset
from suite.trial.train import load_data

out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "gpus": torch.cuda.device_count(),
       "dataset": "digits-synth", "trials": {}}
path = Path(sys.argv[1])
with tempfile.TemporaryDirectory() as tmp:
    for method in METHODS:
        start = time.perf_counter()
        cfg = make_config(dict(method=method, backbone="resnet18", dataset="digits-synth", image_size=32,
                               precision="bf16", device="cuda", batch_size=256, epochs=2, linear_epochs=10,
                               eval_every=0))  # the final evaluation only: this is a throughput check
        splits = load_data(cfg)
        setup = build_setup(cfg, splits)  # the trainer's rules: channels_last on CUDA, bf16 autocast
        views = [aug(setup.images[: cfg.batch_size]) for aug in setup.augmenters]
        with autocast_context(setup.device, cfg.precision):
            features = setup.model.backbone(views[0].contiguous(memory_format=torch.channels_last))
        paths = {"autocast_dtype": str(features.dtype), "channels_last": setup.channels_last,
                 "dataset_on_gpu": place_dataset(splits.train_images, setup.device).device.type == "cuda"}
        steps = setup.steps_per_epoch
        del setup, views, features
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        row, curves = run_suite_trial(cfg, Path(tmp) / method)
        trained = warm([c for c in curves if int(c["epoch"]) >= 1])  # an epoch-0 row has no speed
        out["trials"][method] = {
            **paths, "status": row["status"],
            "train_images": len(splits.train_labels), "warm_steps": steps * len(trained),
            "images_per_s_best_warm_epoch": max(float(c["images_per_s"]) for c in trained),
            "images_per_s_row": float(row["images_per_s"]),
            "epoch_time_s_best": min(float(c["epoch_time_s"]) for c in trained),
            "peak_gpu_memory_mib": torch.cuda.max_memory_allocated() / 2**20,
            "knn_top1_k20": float(row.get("knn_top1_k20", float("nan"))),
            "wall_s": time.perf_counter() - start,
        }
        print(method, json.dumps(out["trials"][method]), flush=True)
        path.write_text(json.dumps(out, indent=2) + "\n")
print("written", path)
PY
status=$?
echo "== trials: exit status $status after $((SECONDS - start)) s; the script took $SECONDS s"
echo "== commit $OUT/$DEVICE.json, $OUT/$DEVICE.txt, $OUT/$DEVICE-data-scale.json and $OUT/$DEVICE-trials.json"
[ "$bench_status" -eq 0 ] && [ "$status" -eq 0 ]
