"""What a trial's memory and speed do as its dataset grows: subsets are views of the memory-mapped cache.

For cached splits of growing size (synthetic uint8 images written straight into the
cache at a small side, so no decoding is timed), a trial's data preparation (a held-out
class, ``train_limit``, a validation split) and a few training steps run in a process
of its own (forked from one that has imported the trainer and touched no data), which
reads its private (anonymous) memory from ``/proc/self/smaps_rollup`` at its start and
at its peak: pages of the map are the page cache's, shared by every trial and rank
on the node, and do not count. Two data-parallel ranks (gloo) do the same. Figures: the
private memory at each size, its growth from the smallest to the largest size as a
fraction of the decoded split's growth (target <= 0.1), and the epoch throughput with
batches gathered from the map against the same epochs from an in-memory copy, in one
process (target >= 0.9 on CPU).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from suite.tools.bench.report import Figure, Report, speedup
from suite.tools.bench.timing import log

IMAGE_SIZE = 16  # 768 bytes an image: a 1M-image split is 0.8 GB on disk
CLASSES = 10
TEST_IMAGES = 1000
PROBE_STEPS = 4
THROUGHPUT_ROUNDS = 7  # alternated epochs per path; the best of each (an epoch is ~0.4 s: single rounds vary by +-15 %)
BATCH = 256


def write_cached_dataset(root: Path, n_train: int, image_size: int = IMAGE_SIZE, seed: int = 0) -> tuple[str, Path]:
    """(a ``parquet:`` spec, its cache dir) whose train and test splits are already decoded in the cache:
    ``n_train`` random images of ``CLASSES`` balanced classes, written straight into the entries (the small
    parquet source files only give the spec its identity)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from suite.data import cache
    from suite.data.loader import entry_for
    from suite.data.specs import parse_spec

    source = root / f"source-{n_train}"
    source.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        pq.write_table(pa.table({"img": [b""], "label": [0]}), source / f"{split}-0.parquet")
    spec = f"parquet:{source}"
    cache_dir = root / "cache"
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", TEST_IMAGES)):
        entry = entry_for(parse_spec(spec), split, image_size, cache_dir)
        images, partial, _ = cache.partial_image_file(entry, n, image_size, spec)
        for start in range(0, n, 65_536):  # bounded blocks: the writer holds no copy of the split either
            stop = min(n, start + 65_536)
            images[start:stop] = rng.integers(0, 256, size=(stop - start, 3, image_size, image_size), dtype=np.uint8)
        labels = np.arange(n) % CLASSES
        stats = ([0.5] * 3, [0.29] * 3) if split == "train" else (None, None)
        cache.commit(entry, partial, images, labels, [str(c) for c in range(CLASSES)], *stats)
    return spec, cache_dir


PROBE = r"""
import json, os, sys
import multiprocessing
import torch
from suite.config import make_config
from suite.data.splits import load_splits
from suite.trial.batches import BatchSource
from suite.trial.train import build_parts

def anonymous_kb():
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("Anonymous:"):
            return int(line.split()[1])
    return 0

def run(rank, world, spec, cache_dir, size, steps, out, init):
    if world > 1:
        torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.set_num_threads(1)
    before = anonymous_kb()
    cfg = make_config({"dataset": spec, "backbone": "test_resnet", "image_size": size, "batch_size": 64,
                       "holdout_classes": [9], "val_fraction": 0.1, "epochs": 1, "method": "simclr",
                       "method_args": {"proj_hidden_dim": 32, "proj_output_dim": 16}, "device": "cpu"})
    splits = load_splits(spec, size, cache_dir=cache_dir, holdout_classes=[9], val_fraction=0.1, seed=0)
    parts = build_parts(cfg, splits, torch.device("cpu"), False)
    source = BatchSource(splits.train_images, torch.device("cpu"), 64 // world)
    source.reorder(torch.randperm(len(splits.train_labels), generator=torch.Generator().manual_seed(0)))
    peak = anonymous_kb()
    for step in range(steps):
        start = step * 64 + rank * (64 // world)
        views = [aug(source.take(start, start + 64 // world)) for aug in parts.augmenters]
        loss = parts.method(views).loss
        parts.optimizer.zero_grad()
        loss.backward()
        parts.optimizer.step()
        peak = max(peak, anonymous_kb())
    json.dump({"rank": rank, "private_kb": peak - before, "train": len(splits.train_labels)},
              open(os.path.join(out, f"rank{rank}.json"), "w"))

if __name__ == "__main__":
    # The imports are paid once, here; each measured process is forked from this one, before which
    # nothing has touched a dataset or a device, and reads its own memory against its start.
    torch.set_num_threads(1)
    fork = multiprocessing.get_context("fork")
    for job in json.loads(sys.argv[1]):
        world, out = job["world"], job["out"]
        init = "file://" + os.path.join(out, "rdv")
        args = (world, job["spec"], job["cache_dir"], job["size"], job["steps"], out, init)
        ranks = [fork.Process(target=run, args=(rank, *args)) for rank in range(world)]
        for p in ranks:
            p.start()
        for p in ranks:
            p.join()
        if any(p.exitcode != 0 for p in ranks):
            sys.exit(f"probe of {job['spec']} on {world} rank(s) failed: exit codes {[p.exitcode for p in ranks]}")
"""


@dataclass(frozen=True)
class Probe:
    """One measurement: a trial on ``world`` data-parallel ranks over a cached split."""

    spec: str
    cache_dir: Path
    world: int = 1


def private_memory(
    probes: list[Probe], workdir: Path, steps: int = PROBE_STEPS, image_size: int = IMAGE_SIZE
) -> list[list[dict]]:
    """For each probe, per rank, the peak private memory (kB) of a process that prepares the trial's data
    and trains ``steps`` steps, above what it held at its start. One interpreter imports the trainer and
    forks every measured process, so the probes pay for one import, not one per rank and size."""
    script = workdir / "probe.py"
    script.write_text(PROBE)
    jobs = []
    for i, probe in enumerate(probes):
        out = workdir / f"probe-{i}-{probe.world}"
        out.mkdir(parents=True, exist_ok=True)
        jobs.append(
            dict(
                spec=probe.spec,
                cache_dir=str(probe.cache_dir),
                size=image_size,
                steps=steps,
                out=str(out),
                world=probe.world,
            )
        )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    done = subprocess.run(
        [sys.executable, str(script), json.dumps(jobs)], env=env, capture_output=True, text=True, timeout=3600
    )
    if done.returncode != 0:
        raise RuntimeError(f"data_scale probe failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return [[json.loads((Path(job["out"]) / f"rank{r}.json").read_text()) for r in range(job["world"])] for job in jobs]


def throughput_ratio(
    spec: str, cache_dir: Path, rounds: int = THROUGHPUT_ROUNDS, device: str = "cpu"
) -> tuple[float, float]:
    """(images/s with batches gathered from the map, images/s from an in-memory copy): whole epochs in a
    random order (what a step does with its batch before the model), alternated, best round of each. The
    first pass over the map also maps its pages into the process (once per page). On a GPU the map's
    batches stream through the staging ring and the copy lives on the device (the resident fast path)."""
    import torch

    from suite.data.imageset import ImageSet
    from suite.data.splits import load_splits
    from suite.trial.batches import BatchSource

    target = torch.device(device)
    splits = load_splits(spec, IMAGE_SIZE, cache_dir=cache_dir, holdout_classes=[9], val_fraction=0.1, seed=0)
    mapped = BatchSource(splits.train_images, target, BATCH)
    copy = splits.train_images.to(target) if target.type == "cuda" else splits.train_images.materialize().clone()
    memory = BatchSource(ImageSet(copy), target, BATCH)
    n = len(splits.train_labels) // BATCH * BATCH
    times: dict[str, list[float]] = {"map": [], "memory": []}
    for r in range(rounds):
        order = torch.randperm(len(splits.train_labels), generator=torch.Generator().manual_seed(r))
        for name, source in (("map", mapped), ("memory", memory)):
            start = time.perf_counter()
            source.reorder(order.to(source.index_device))  # as the trainer does at each epoch's start
            total = torch.zeros((), device=target)
            for i in range(0, n, BATCH):
                total += source.take(i, i + BATCH).float().mean()
            total.item()  # the device has finished every batch
            times[name].append(time.perf_counter() - start)
    return n / min(times["map"]), n / min(times["memory"])


def measure_data_scale(report: Report, settings, workdir: Path) -> None:
    sizes = (10_000, 100_000) if settings.quick else (10_000, 100_000, 1_000_000)
    private, rank_private = {}, {}
    datasets = {}
    for n in sizes:
        log(f"data_scale: writing {n:,} cached images")
        datasets[n] = write_cached_dataset(workdir / "data-scale", n)
    log(f"data_scale: a trial and two data-parallel ranks on each size, {PROBE_STEPS} steps")
    probes = [Probe(*datasets[n], world=world) for n in sizes for world in (1, 2)]
    measured = dict(zip(probes, private_memory(probes, workdir)))
    for n in sizes:
        spec, cache_dir = datasets[n]
        (trial,) = measured[Probe(spec, cache_dir, world=1)]
        one, ranks = trial["private_kb"], measured[Probe(spec, cache_dir, world=2)]
        private[n] = one
        rank_private[n] = max(r["private_kb"] for r in ranks)
        decoded_mb = n * 3 * IMAGE_SIZE**2 / 2**20
        group = f"{n:,} images ({decoded_mb:.0f} MB decoded)"
        report.add("data_scale", group, Figure(f"private_mb_{n}", "trial's private memory", one / 1024, "MB"))
        for r in ranks:
            report.add(
                "data_scale",
                group,
                Figure(
                    f"private_mb_{n}_rank{r['rank']}",
                    f"rank {r['rank']} of 2: private memory",
                    r["private_kb"] / 1024,
                    "MB",
                ),
            )
        if n == sizes[-1]:
            rounds = 2 if settings.quick else THROUGHPUT_ROUNDS
            mapped, memory = throughput_ratio(spec, cache_dir, rounds, settings.device)
            report.add(
                "data_scale",
                group,
                speedup(
                    f"batches_from_map_{n}",
                    "an epoch's batches gathered from the map",
                    mapped,
                    "images/s",
                    f"batches_in_memory_{n}",
                    "from an in-memory copy" + (" on the device" if str(settings.device).startswith("cuda") else ""),
                    memory,
                    f"map_vs_memory_{n}",
                ),
            )
    small, large = sizes[0], sizes[-1]
    growth_bytes = (private[large] - private[small]) * 1024
    decoded = (large - small) * 3 * IMAGE_SIZE**2
    report.add(
        "data_scale",
        "growth",
        Figure(
            f"private_growth_{large}_vs_{small}",
            "private memory growth / decoded growth (target <= 0.1)",
            growth_bytes / decoded,
            "fraction",
        ),
    )
    report.add(
        "data_scale",
        "growth",
        Figure(
            f"rank_private_growth_{large}_vs_{small}",
            "the same for the larger of two data-parallel ranks",
            (rank_private[large] - rank_private[small]) * 1024 / decoded,
            "fraction",
        ),
    )
