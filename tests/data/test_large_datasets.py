"""Datasets larger than memory: a trial's splits are views of the memory-mapped cache (the images the
copying path gave, with no copy), batches come from the map, and a decode is resumable, refuses a disk
it cannot finish on, and runs once for two processes that want the same entry."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from suite.core.errors import ConfigError
from suite.data import cache, hfsource
from suite.data.imageset import ImageSet
from suite.data.loader import entry_for, load_raw_split
from suite.data.specs import parse_spec
from suite.data.splits import load_splits
from suite.data.subsets import limited_indices, long_tail_indices, long_tail_order, validation_split
from suite.trial.batches import BatchSource

REPO = Path(__file__).resolve().parents[2]
SIZE, CLASSES, PER_CLASS = 12, 6, 40


def _png(a: np.ndarray) -> dict:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def write_parquet(root: Path, per_class: int = PER_CLASS, seed: int = 0) -> str:
    """Random RGB images (lossless PNGs at the decode size) of ``CLASSES`` classes, train and test."""
    rng = np.random.default_rng(seed)
    kind = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", per_class), ("test", per_class // 2)):
        labels = np.repeat(np.arange(CLASSES), n)
        rng.shuffle(labels)
        images = rng.integers(0, 256, size=(len(labels), SIZE, SIZE, 3), dtype=np.uint8)
        table = pa.table({"img": pa.array([_png(a) for a in images], type=kind), "label": pa.array(labels)})
        pq.write_table(table, root / f"{split}-00000.parquet")
    return f"parquet:{root}?image=img&label=label"


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> str:
    return write_parquet(tmp_path_factory.mktemp("large") / "pq")


def mapped_file(t: torch.Tensor) -> str | None:
    """The file whose mapping holds ``t``'s first byte, from /proc/self/maps (None: anonymous memory)."""
    address = t.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        low, high = (int(x, 16) for x in fields[0].split("-"))
        if low <= address < high:
            return fields[5].strip() if len(fields) == 6 else None
    return None


# ------------------------------------------------------------------------------ views


def test_an_imageset_indexes_like_the_tensor_it_views():
    base = torch.randint(0, 256, (50, 3, 4, 4), dtype=torch.uint8)
    rows = torch.tensor([7, 3, 3, 41, 0, 19, 22, 8, 30, 11])
    view = ImageSet(base).subset(rows)
    expected = base[rows]
    assert len(view) == 10 and view.shape == (10, 3, 4, 4) and view.base is base
    assert torch.equal(view.materialize(), expected)
    assert torch.equal(view[torch.tensor([4, 1, 9])], expected[[4, 1, 9]])
    assert torch.equal(view[3], expected[3])
    assert torch.equal(view[2:7].materialize(), expected[2:7])
    mask = torch.zeros(10, dtype=torch.bool)
    mask[[0, 5, 6]] = True
    assert torch.equal(view.subset(mask).materialize(), expected[mask])
    assert torch.equal(view.subset(torch.tensor([9, 0])).subset(torch.tensor([1])).materialize(), expected[[0]])
    assert torch.equal(torch.cat(list(view.chunks(rows=3))), expected)
    out = torch.empty(6, 3, 4, 4, dtype=torch.uint8)
    got = view.subset(torch.tensor([2, 8, 1])).materialize(out=out)
    assert torch.equal(got, expected[[2, 8, 1]]) and got.data_ptr() == out.data_ptr()
    got = ImageSet(base)[47:50].materialize(out=out)  # a slice of the base itself, into the buffer too
    assert torch.equal(got, base[47:50]) and got.data_ptr() == out.data_ptr()
    assert torch.equal(view.to("cpu"), expected)
    whole = ImageSet(base)
    assert whole[10:20].base.data_ptr() == base[10].data_ptr()  # a slice of the base stays a view
    assert torch.equal(whole[[49, 0, 49]], base[[49, 0, 49]])  # a batch of the base itself


def test_subsets_are_views_of_the_map_with_the_copying_paths_images_labels_and_stats(spec, tmp_path):
    held, ratio, limit, fraction, seed = [2], 3.0, 100, 0.2, 5
    splits = load_splits(
        spec,
        SIZE,
        holdout_classes=held,
        imbalance=ratio,
        train_limit=limit,
        val_fraction=fraction,
        cache_dir=tmp_path,
        seed=seed,
    )
    # the copying path, step by step on private copies of the decoded splits
    train = cache.read(entry_for(parse_spec(spec), "train", SIZE, tmp_path))
    test = cache.read(entry_for(parse_spec(spec), "test", SIZE, tmp_path))
    remap = torch.tensor([-1 if c in held else c - sum(h < c for h in held) for c in range(CLASSES)])
    x, y = train.images.clone(), train.labels.clone()
    keep = ~torch.isin(y, torch.tensor(held))
    x, y = x[keep], remap[y[keep]]
    order = long_tail_order(CLASSES - 1, seed)
    keep = long_tail_indices(y, CLASSES - 1, ratio, seed, order)
    x, y = x[keep], y[keep]
    keep = limited_indices(len(y), limit)
    x, y = x[keep], y[keep]
    keep, val = validation_split(y, fraction)
    val_x, val_y, x, y = x[val], y[val], x[keep], y[keep]
    is_held = torch.isin(test.labels, torch.tensor(held))

    assert torch.equal(splits.train_images.materialize(), x) and torch.equal(splits.train_labels, y)
    assert torch.equal(splits.val_images.materialize(), val_x) and torch.equal(splits.val_labels, val_y)
    assert torch.equal(splits.test_images.materialize(), test.images[~is_held])
    assert torch.equal(splits.test_labels, remap[test.labels[~is_held]])
    assert torch.equal(splits.ood_images.materialize(), test.images[is_held])
    pixels = x.numpy().astype(np.float64).transpose(1, 0, 2, 3).reshape(3, -1) / 255
    np.testing.assert_allclose(splits.mean, pixels.mean(axis=1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(splits.std, pixels.std(axis=1), rtol=0, atol=1e-9)
    # no copy: every split gathers from the whole decoded split, which is the cache file's mapping
    for images, whole in ((splits.train_images, train), (splits.val_images, train), (splits.ood_images, test)):
        assert images.index is not None and len(images.base) == len(whole.images)
        assert mapped_file(images.base).endswith("images.npy"), mapped_file(images.base)


def test_a_subsets_statistics_are_kept_with_the_entry_and_read_back(spec, tmp_path):
    first = load_splits(spec, SIZE, train_limit=100, cache_dir=tmp_path)
    entry = entry_for(parse_spec(spec), "train", SIZE, tmp_path)
    saved = list(entry.glob("stats-*.json"))
    assert len(saved) == 1
    saved[0].write_text('{"mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6]}')  # what the next trial reads
    again = load_splits(spec, SIZE, train_limit=100, cache_dir=tmp_path)
    assert again.mean == (0.1, 0.2, 0.3) and again.std == (0.4, 0.5, 0.6)
    other = load_splits(spec, SIZE, train_limit=90, cache_dir=tmp_path)  # other rows: other statistics
    assert len(list(entry.glob("stats-*.json"))) == 2 and other.mean != again.mean != first.mean


# ------------------------------------------------------------------------------ batches


def test_batches_from_the_map_equal_batches_from_memory(spec, tmp_path):
    splits = load_splits(spec, SIZE, holdout_classes=[0], val_fraction=0.1, cache_dir=tmp_path)
    mapped = BatchSource(splits.train_images, torch.device("cpu"), 16)
    memory = BatchSource(ImageSet(splits.train_images.materialize().clone()), torch.device("cpu"), 16)
    order = torch.randperm(len(splits.train_labels), generator=torch.Generator().manual_seed(3))
    mapped.reorder(order)
    memory.reorder(order)
    for step in range(len(order) // 16):
        expected = splits.train_images.materialize()[order[step * 16 : (step + 1) * 16]]  # by plain indexing
        assert torch.equal(mapped.take(step * 16, (step + 1) * 16), expected)
        assert torch.equal(memory.take(step * 16, (step + 1) * 16), expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the staging ring streams to a CUDA device")
def test_streamed_batches_through_the_staging_ring_equal_resident_ones(spec, tmp_path):
    splits = load_splits(spec, SIZE, holdout_classes=[0], cache_dir=tmp_path)
    device = torch.device("cuda")
    streamed = BatchSource(splits.train_images, device, 16)
    resident = BatchSource(ImageSet(splits.train_images.to(device)), device, 16)
    assert streamed.streaming and not resident.streaming
    order = torch.randperm(len(splits.train_labels), generator=torch.Generator().manual_seed(3))
    streamed.reorder(order)
    resident.reorder(order.to(device))
    steps = [(s * 16, (s + 1) * 16) for s in range(len(order) // 16)]
    kept = [streamed.take(*step) for step in steps]  # more batches in flight than staging slots
    for step, batch in zip(steps, kept, strict=True):
        assert torch.equal(batch, resident.take(*step))


# ------------------------------------------------------------------------------ decoding


class Interrupted(Exception):
    pass


def test_an_interrupted_decode_resumes_where_it_stopped(tmp_path, monkeypatch):
    spec = write_parquet(tmp_path / "pq", per_class=50)  # 300 training images: 10 batches of 30
    monkeypatch.setattr(hfsource, "DECODE_BATCH", 30)
    monkeypatch.setattr(hfsource, "PROGRESS_EVERY", 2)
    clean = load_raw_split(parse_spec(spec), "train", SIZE, tmp_path / "clean", decode_workers=1)

    real, calls = hfsource.decode_resize, []

    def decode(images, size, fail_at=None):
        calls.append(len(images))
        if fail_at is not None and len(calls) == fail_at:
            raise Interrupted
        return real(images, size)

    monkeypatch.setattr(hfsource, "decode_resize", lambda images, size: decode(images, size, fail_at=6))
    with pytest.raises(Interrupted):
        load_raw_split(parse_spec(spec), "train", SIZE, tmp_path / "c", decode_workers=1)
    entry = entry_for(parse_spec(spec), "train", SIZE, tmp_path / "c")
    assert not (entry / "images.npy").exists()
    done = json.loads((entry / cache.PROGRESS).read_text())["done"]
    assert done == 120  # batches 1-5 written, progress recorded after every second one

    calls.clear()
    monkeypatch.setattr(hfsource, "decode_resize", lambda images, size: decode(images, size))
    resumed = load_raw_split(parse_spec(spec), "train", SIZE, tmp_path / "c", decode_workers=1)
    assert sum(calls) == 300 - done  # only what was not written before
    assert torch.equal(resumed.images, clean.images) and torch.equal(resumed.labels, clean.labels)
    assert resumed.mean == clean.mean and not (entry / cache.PROGRESS).exists()


def test_a_disk_too_small_for_the_decode_is_refused_in_one_line_before_writing(spec, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(cache.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 5000, 5000))
    with pytest.raises(ConfigError) as raised:
        load_raw_split(parse_spec(spec), "train", SIZE, tmp_path)
    message = str(raised.value)
    assert "\n" not in message, message
    needed = CLASSES * PER_CLASS * (3 * SIZE * SIZE + 16)  # the images and their labels
    assert f"{needed / 1e3:.1f} kB" in message and "5.0 kB free" in message, message
    assert str(tmp_path) in message and "NORMBENCH_CACHE" in message
    entry = entry_for(parse_spec(spec), "train", SIZE, tmp_path)
    assert not (entry / cache.PARTIAL).exists() and not (entry / "images.npy").exists()


DECODER = """
import hashlib, os, sys, time
from pathlib import Path
import suite.data.loader as loader
from suite.data.specs import parse_spec

spec, cache_dir, marks = sys.argv[1], sys.argv[2], Path(sys.argv[3])
real = loader.decode_into

def decode_into(*args, **kwargs):
    (marks / f"decoding-{os.getpid()}").write_text("")
    while not (marks / "go").exists():  # hold the entry until the test has seen the other process wait
        time.sleep(0.05)
    return real(*args, **kwargs)

loader.decode_into = decode_into
raw = loader.load_raw_split(parse_spec(spec), "train", int(sys.argv[4]), cache_dir)
print(hashlib.sha1(raw.images.numpy().tobytes()).hexdigest())
"""


def test_two_processes_wanting_one_entry_decode_it_once(spec, tmp_path):
    script, marks = tmp_path / "decoder.py", tmp_path / "marks"
    script.write_text(textwrap.dedent(DECODER))
    marks.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, str(script), spec, str(tmp_path / "cache"), str(marks), str(SIZE)]

    def start(name: str) -> subprocess.Popen:
        err = open(marks / f"{name}.err", "w")  # noqa: SIM115 - the process writes it while the test waits
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=err, text=True)

    def wait_for(condition, what: str, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    first = start("first")
    wait_for(lambda: any(marks.glob("decoding-*")), "the first decoder")
    second = start("second")
    waiting = "waiting for another process decoding"
    wait_for(
        lambda: waiting in (marks / "second.err").read_text() or second.poll() is not None,
        "the second process to wait for the entry",
    )
    (marks / "go").write_text("")
    out = [p.communicate(timeout=300)[0] for p in (first, second)]
    errors = [(marks / f"{name}.err").read_text() for name in ("first", "second")]
    assert [p.returncode for p in (first, second)] == [0, 0], errors
    assert waiting in errors[1]
    assert len(list(marks.glob("decoding-*"))) == 1  # decoded once
    assert out[0] == out[1] and len(out[0].strip()) == 40  # both read the same images


# ------------------------------------------------------------------------------ memory


# A trial's private memory on cached splits of 10k and 100k images, from /proc in fresh processes (a trial
# and two data-parallel ranks): the data_scale section of the bench, checked in
# tests/tools/test_bench.py::test_bench_quick_emits_every_figure_finite.


# ------------------------------------------------------------------------------ normbench prepare


def test_prepare_decodes_each_split_into_the_cache_and_reports_it(spec, tmp_path, capsys, monkeypatch):
    from suite.cli import main

    assert main(["prepare", spec, "--image-size", "12,8", "--cache", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for size in (12, 8):
        for split, n in (("train", CLASSES * PER_CLASS), ("test", CLASSES * PER_CLASS // 2)):
            entry = entry_for(parse_spec(spec), split, size, tmp_path)
            raw = cache.read(entry)
            assert raw is not None and len(raw.labels) == n and raw.images.shape[-1] == size
            line = next(row for row in printed.splitlines() if row.endswith(str(entry)))
            assert f" {split} " in line and f"{size}px" in line and f"{n:,}" in line
    assert f"free under {tmp_path}" in printed

    decoded = []
    monkeypatch.setattr(hfsource, "decode_resize", lambda *a: decoded.append(1))
    assert main(["prepare", spec, "--image-size", "12", "--cache", str(tmp_path)]) == 0
    assert decoded == []  # cached: reported, not decoded again
    assert main(["prepare", spec, "--image-size", "12,5"]) == 2
    assert "--image-size: invalid value '5'" in capsys.readouterr().err
