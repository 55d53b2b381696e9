"""Datasets: real digits images through the real `datasets` code paths on local files.

Expected pixels are computed here independently (float bilinear interpolation
with torch.nn.functional, then rounding) and compared with a tolerance of one
grey level, since the loader's uint8 resize path rounds differently.
"""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from suite.core.errors import ConfigError
from suite.data.digits import DIGITS_SPLIT_SEED, DIGITS_TEST_FRACTION
from suite.data.images import DECODE_STATS
from suite.data.splits import DATASET_NAMES, load_splits, validate_dataset_name

SIZE = 12
PER_CLASS_TRAIN, PER_CLASS_TEST = 24, 8


def digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    return np.rint(d.images * 255.0 / 16.0).astype(np.uint8), d.target.astype(np.int64)


def expected_resize(gray: np.ndarray, size: int, out_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """[N,h,w] uint8 -> [N,3,size,size]: float bilinear to `out_hw` (shorter side = size), centre crop."""
    x = torch.from_numpy(gray).float()[:, None]
    h, w = gray.shape[1:]
    out_hw = out_hw or (size, size)
    y = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False, antialias=True)
    top, left = (out_hw[0] - size) // 2, (out_hw[1] - size) // 2
    y = y[:, :, top : top + size, left : left + size]
    return y.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1)


def close(a: torch.Tensor, b: torch.Tensor, tol: int = 1) -> bool:
    return a.shape == b.shape and int((a.int() - b.int()).abs().max()) <= tol


def png_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def image_struct(images: list[np.ndarray]) -> pa.Array:
    """Encoded PNGs in the {bytes, path} layout other tools write to parquet."""
    t = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    return pa.array([{"bytes": png_bytes(a), "path": None} for a in images], type=t)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A small, duplicate-free digits subset written as an image folder and as parquet files."""
    images, labels = digits_uint8()
    _, first = np.unique(images.reshape(len(images), -1), axis=0, return_index=True)
    unique = np.zeros(len(images), bool)
    unique[first] = True
    train_idx, test_idx = [], []
    for c in range(10):
        idx = np.flatnonzero((labels == c) & unique)
        train_idx += list(idx[:PER_CLASS_TRAIN])
        test_idx += list(idx[PER_CLASS_TRAIN : PER_CLASS_TRAIN + PER_CLASS_TEST])
    train_idx, test_idx = np.array(train_idx), np.array(test_idx)
    root = tmp_path_factory.mktemp("src")

    folder = root / "folder"
    for split, idx in (("train", train_idx), ("test", test_idx)):
        for i in idx:
            d = folder / split / f"class{labels[i]}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(d / f"{i:04d}.png")

    pqdir = root / "pq"
    pqdir.mkdir()
    for split, idx in (("train", train_idx), ("test", test_idx)):
        pq.write_table(
            pa.table(
                {
                    "img": image_struct([images[i] for i in idx]),
                    "fine_label": pa.array(labels[idx]),
                    "coarse": pa.array(labels[idx] % 2),
                }
            ),
            pqdir / f"{split}-00000.parquet",
        )

    # non-square (8x12) images in one file with a split column: exercises shorter-side resize + crop
    wide = np.concatenate([images, images[:, :, :4] // 2], axis=2)
    both = np.concatenate([train_idx[:40], test_idx[:20]])
    pq.write_table(
        pa.table(
            {
                "img": image_struct([wide[i] for i in both]),
                "fine_label": pa.array(labels[both]),
                "part": pa.array(["train"] * 40 + ["test"] * 20),
            }
        ),
        root / "wide.parquet",
    )
    return dict(
        images=images,
        labels=labels,
        wide=wide,
        train_idx=train_idx,
        test_idx=test_idx,
        folder=folder,
        pqdir=pqdir,
        wide_file=root / "wide.parquet",
        both=both,
    )


def pq_spec(src) -> str:
    return f"parquet:{src['pqdir']}?label=fine_label&image=img"


# ---------------------------------------------------------------- built-in digits


def test_digits_are_the_sklearn_images_in_a_fixed_stratified_split():
    images, labels = digits_uint8()
    exp_train, exp_test = train_test_split(  # the recipe of the split shipped as suite/data/digits_split.npz
        np.arange(len(labels)), test_size=DIGITS_TEST_FRACTION, stratify=labels, random_state=DIGITS_SPLIT_SEED
    )
    a = load_splits("digits", SIZE, seed=0)
    b = load_splits("digits", SIZE, seed=123)  # the split ignores the trial seed
    assert a.train_images.dtype == torch.uint8 and a.train_labels.dtype == torch.int64
    assert a.train_images.shape == (1437, 3, SIZE, SIZE) and a.test_images.shape == (
        360,
        3,
        SIZE,
        SIZE,
    )
    assert torch.equal(a.train_images.materialize(), b.train_images.materialize()) and torch.equal(
        a.test_labels, b.test_labels
    )
    assert close(a.train_images.materialize(), expected_resize(images[exp_train], SIZE))
    assert close(a.test_images.materialize(), expected_resize(images[exp_test], SIZE))
    assert a.train_labels.tolist() == labels[exp_train].tolist()
    assert a.test_labels.tolist() == labels[exp_test].tolist()
    total, test = np.bincount(labels), a.test_labels.bincount().numpy()
    assert np.all(np.abs(test - 0.2 * total) < 1)  # stratified
    x = a.train_images.materialize().double() / 255
    assert np.allclose(a.mean, x.mean(dim=(0, 2, 3)).numpy(), atol=1e-9)
    assert np.allclose(a.std, x.std(dim=(0, 2, 3), unbiased=False).numpy(), atol=1e-9)
    assert a.num_classes == 10 and a.class_names == [str(c) for c in range(10)]
    assert a.ood_images is None and "digits" in DATASET_NAMES


# ---------------------------------------------------------------- local sources via `datasets`


def test_imagefolder_gives_the_right_images_and_labels(source, tmp_path):
    s = load_splits(f"imagefolder:{source['folder']}", SIZE, cache_dir=tmp_path)
    assert s.class_names == [f"class{c}" for c in range(10)] and s.num_classes == 10
    for x, y, idx in (
        (s.train_images.materialize(), s.train_labels, source["train_idx"]),
        (s.test_images.materialize(), s.test_labels, source["test_idx"]),
    ):
        expected = expected_resize(source["images"][idx], SIZE)
        # the builder's row order is its own: match every loaded image to its nearest source image
        dist = (x.flatten(1).int()[:, None] - expected.flatten(1).int()[None]).abs().amax(-1)
        nearest = dist.argmin(1)
        assert int(dist.min(1).values.max()) <= 1
        assert sorted(nearest.tolist()) == list(range(len(idx)))  # a bijection
        assert y.tolist() == source["labels"][idx][nearest].tolist()
    held = load_splits(f"imagefolder:{source['folder']}", SIZE, cache_dir=tmp_path, holdout_classes=["class3"])
    assert held.class_names == [f"class{c}" for c in range(10) if c != 3]
    assert len(held.ood_images) == PER_CLASS_TEST and held.num_classes == 9


def test_parquet_columns_from_the_spec_and_row_order(source, tmp_path):
    s = load_splits(pq_spec(source), SIZE, cache_dir=tmp_path)
    assert close(s.train_images.materialize(), expected_resize(source["images"][source["train_idx"]], SIZE))
    assert close(s.test_images.materialize(), expected_resize(source["images"][source["test_idx"]], SIZE))
    assert s.train_labels.tolist() == source["labels"][source["train_idx"]].tolist()
    coarse = load_splits(f"parquet:{source['pqdir']}?label=coarse&image=img", SIZE, cache_dir=tmp_path)
    assert coarse.num_classes == 2
    assert coarse.test_labels.tolist() == (source["labels"][source["test_idx"]] % 2).tolist()


def test_a_save_to_disk_folder_is_read_with_hf_path_like_the_parquet_copy(source, tmp_path):
    """The documented local copy of a hub dataset: ``save_to_disk`` of a DatasetDict, read by hf:PATH, gives the
    same images and labels as the parquet files it was made from (CIFAR-100's label column, chosen by option)."""
    import datasets

    files = {split: str(source["pqdir"] / f"{split}-00000.parquet") for split in ("train", "test")}
    datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf")).save_to_disk(
        str(tmp_path / "saved")
    )
    saved = load_splits(f"hf:{tmp_path / 'saved'}?label=fine_label&image=img", SIZE, cache_dir=tmp_path)
    parquet = load_splits(pq_spec(source), SIZE, cache_dir=tmp_path)
    assert torch.equal(saved.train_images.materialize(), parquet.train_images.materialize()) and torch.equal(
        saved.test_labels, parquet.test_labels
    )
    assert saved.num_classes == 10


def test_an_unreachable_hub_fails_at_once_naming_the_local_copies(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1 (or a hub that does not answer) and nothing cached: one error, no retries, and the
    local layouts that work instead."""
    import socket

    from suite.data.hfsource import DatasetUnavailable

    def no_network(*args, **kwargs):
        raise AssertionError(f"a connection was attempted: {args}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(DatasetUnavailable) as err:
        load_splits("cifar10", 32, cache_dir=tmp_path)
    for needle in ("does not answer (or HF_HUB_OFFLINE is set)", "hf:PATH", "parquet:PATH", "imagefolder:PATH"):
        assert needle in str(err.value)


def test_non_square_images_are_resized_on_the_shorter_side_and_centre_cropped(source, tmp_path):
    spec = f"parquet:{source['wide_file']}?label=fine_label&image=img&split=part"
    s = load_splits(spec, 16, cache_dir=tmp_path)
    wide, both = source["wide"], source["both"]  # 8x12 -> 16x24 -> centre 16x16
    assert close(s.train_images.materialize(), expected_resize(wide[both[:40]], 16, out_hw=(16, 24)))
    assert close(s.test_images.materialize(), expected_resize(wide[both[40:]], 16, out_hw=(16, 24)))
    assert s.test_labels.tolist() == source["labels"][both[40:]].tolist()


def test_second_load_reads_the_cache_and_a_changed_folder_is_decoded_again(source, tmp_path):
    spec = f"imagefolder:{source['folder']}"
    n = len(source["train_idx"]) + len(source["test_idx"])
    before = DECODE_STATS["images"]
    first = load_splits(spec, SIZE, cache_dir=tmp_path)
    assert DECODE_STATS["images"] - before == n
    assert len(list(tmp_path.rglob("images.npy"))) == 2  # train + test
    before = DECODE_STATS["images"]
    second = load_splits(spec, SIZE, cache_dir=tmp_path)
    assert DECODE_STATS["images"] == before  # nothing decoded
    assert torch.equal(first.train_images.materialize(), second.train_images.materialize())
    assert torch.equal(first.test_labels, second.test_labels) and first.mean == second.mean
    some_png = next(source["folder"].rglob("*.png"))
    st = some_png.stat()
    os.utime(some_png, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    before = DECODE_STATS["images"]
    load_splits(spec, SIZE, cache_dir=tmp_path)
    assert DECODE_STATS["images"] - before == n


def test_named_dataset_offline_and_uncached_says_what_to_download(tmp_path):
    code = (
        "from suite.data.splits import load_splits\n"
        "from suite.core.errors import ConfigError\n"
        "try:\n    load_splits('cifar10', 32)\n"
        "except ConfigError as e:\n    print('CONFIGERROR', e)\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", NORMBENCH_CACHE=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert "CONFIGERROR" in out.stdout, out.stderr[-2000:]
    assert "uoft-cs/cifar10" in out.stdout and str(tmp_path) in out.stdout and "dataset" in out.stdout


# ---------------------------------------------------------------- derived sets


def test_long_tail_profile_is_exact_and_seeded():
    ratio = 10.0
    full = load_splits("digits", SIZE)
    lt = load_splits("digits", SIZE, imbalance=ratio, seed=3)
    counts = np.bincount(full.train_labels.numpy())
    order = lt.frequency_order  # classes from most to least frequent, drawn with the seed
    assert sorted(order) == list(range(10))
    rank = {c: r for r, c in enumerate(order)}
    expected = [min(int(counts[c]), math.floor(counts.max() * ratio ** (-rank[c] / 9))) for c in range(10)]
    assert lt.train_labels.bincount(minlength=10).tolist() == expected
    # which classes are frequent depends on the seed (not always class 0), so class identity and
    # frequency are not confounded across seeds
    orders = {tuple(load_splits("digits", SIZE, imbalance=ratio, seed=s).frequency_order) for s in range(4)}
    assert len(orders) == 4 and len({o[0] for o in orders}) > 1
    assert full.frequency_order is None
    assert torch.equal(lt.test_images.materialize(), full.test_images.materialize()) and torch.equal(
        lt.test_labels, full.test_labels
    )
    pairs = Counter(zip(map(bytes, full.train_images.materialize().flatten(1).numpy()), full.train_labels.tolist()))
    picked = Counter(zip(map(bytes, lt.train_images.materialize().flatten(1).numpy()), lt.train_labels.tolist()))
    assert not picked - pairs  # a subset of the real training pairs
    again = load_splits("digits", SIZE, imbalance=ratio, seed=3)
    other = load_splits("digits", SIZE, imbalance=ratio, seed=4)
    assert torch.equal(again.train_images.materialize(), lt.train_images.materialize())
    assert not torch.equal(other.train_images.materialize(), lt.train_images.materialize())
    x = lt.train_images.materialize().double() / 255
    assert np.allclose(lt.std, x.std(dim=(0, 2, 3), unbiased=False).numpy(), atol=1e-9)
    assert torch.equal(
        load_splits("digits", SIZE, imbalance=1).train_images.materialize(), full.train_images.materialize()
    )


def test_held_out_classes_leave_train_and_test_and_become_the_ood_set():
    full = load_splits("digits", SIZE)
    s = load_splits("digits", SIZE, holdout_classes=[3, 7], imbalance=5.0, seed=0)
    keep = [c for c in range(10) if c not in (3, 7)]
    assert s.num_classes == 8 and s.class_names == [str(c) for c in keep]
    assert set(s.train_labels.tolist()) <= set(range(8)) and set(s.test_labels.tolist()) == set(range(8))
    as_bytes = lambda t: [bytes(r) for r in t.flatten(1).numpy()]
    held = torch.isin(full.train_labels, torch.tensor([3, 7]))
    held_test = torch.isin(full.test_labels, torch.tensor([3, 7]))
    held_images = set(as_bytes(full.train_images.materialize()[held])) | set(
        as_bytes(full.test_images.materialize()[held_test])
    )
    assert not held_images & set(as_bytes(s.train_images.materialize()))
    assert not held_images & set(as_bytes(s.test_images.materialize()))
    assert Counter(as_bytes(s.ood_images.materialize())) == Counter(as_bytes(full.test_images.materialize()[held_test]))
    # re-indexing: new label k is old class keep[k]; the long tail applies to the kept classes
    old_of_new = torch.tensor(keep)
    assert Counter(zip(as_bytes(s.test_images.materialize()), old_of_new[s.test_labels].tolist())) == Counter(
        zip(as_bytes(full.test_images.materialize()[~held_test]), full.test_labels[~held_test].tolist())
    )
    counts = np.bincount(full.train_labels.numpy())[keep]
    rank = {c: r for r, c in enumerate(s.frequency_order)}  # over the 8 kept (re-indexed) classes
    expected = [min(int(counts[c]), math.floor(counts.max() * 5.0 ** (-rank[c] / 7))) for c in range(8)]
    assert s.train_labels.bincount(minlength=8).tolist() == expected
    assert "3" in s.ood_name and "7" in s.ood_name


def test_ood_dataset_is_the_other_datasets_test_split(source, tmp_path):
    s = load_splits("digits", SIZE, ood_dataset=pq_spec(source), cache_dir=tmp_path)
    assert close(s.ood_images.materialize(), expected_resize(source["images"][source["test_idx"]], SIZE))
    assert s.ood_name == pq_spec(source) and s.train_images.shape[0] == 1437


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "name, field, needles",
    [
        ("cifar11", "dataset", ["cifar11", "cifar10", "digits", "parquet:PATH"]),
        ("parquet:/no/such/file.parquet", "dataset", ["/no/such/file.parquet", "does not exist"]),
        ("imagefolder:/no/such/dir", "ood_dataset", ["/no/such/dir", "does not exist"]),
        ("hf:", "dataset", ["hf:ID[:CONFIG]"]),
    ],
)
def test_bad_names_raise_config_error_naming_field_and_value(name, field, needles):
    with pytest.raises(ConfigError) as e:
        validate_dataset_name(name, field=field)
    assert str(e.value).startswith(field + ":")
    for needle in needles:
        assert needle in str(e.value)


def test_bad_options_and_arguments_raise_config_error(source, tmp_path):
    cases = [
        (dict(name=f"parquet:{source['pqdir']}?lable=x"), ["dataset", "lable"]),
        (dict(name="digits", holdout_classes=[10]), ["holdout_classes", "10", "0..9"]),
        (dict(name="digits", holdout_classes=list(range(10))), ["holdout_classes", "at most 9"]),
        (dict(name="digits", holdout_classes="rotate:10"), ["holdout_classes", "rotate:K with K < 10"]),
        (dict(name="digits", holdout_classes="rotate:x"), ["holdout_classes", "rotate:K with K a whole number"]),
        (dict(name="digits", imbalance=0.5), ["imbalance", "0.5", ">= 1"]),
        (dict(name="digits", ood_dataset="nope"), ["ood_dataset", "nope"]),
        (dict(name="digits", holdout_classes=[1], ood_dataset="digits"), ["ood_dataset", "holdout"]),
        (dict(name="digits", image_size=0), ["image_size", "0"]),
        (dict(name=f"parquet:{source['pqdir']}?label=nope&image=img"), ["nope", "fine_label", "img"]),
        (dict(name=f"parquet:{source['pqdir']}?label=fine_label&image=pic"), ["pic", "fine_label", "img"]),
        (dict(name=pq_spec(source), holdout_classes=[12]), ["holdout_classes", "12", "0..9"]),
        (dict(name=f"parquet:{source['wide_file']}?label=fine_label&image=img"), ["split", "part"]),
    ]
    for kwargs, needles in cases:
        kwargs = dict(kwargs)
        size = kwargs.pop("image_size", SIZE)
        with pytest.raises(ConfigError) as e:
            load_splits(kwargs.pop("name"), size, cache_dir=tmp_path, **kwargs)
        for needle in needles:
            assert needle in str(e.value), (kwargs, str(e.value))


def test_train_limit_and_validation_are_prepared_here_with_statistics_of_the_split_returned():
    full = load_splits("digits", SIZE)
    s = load_splits("digits", SIZE, train_limit=300, val_fraction=0.2, seed=5)
    assert len(s.train_labels) + len(s.val_labels) == 300
    assert len(s.val_labels) == pytest.approx(60, abs=10)
    assert s.val_labels.unique().numel() == 10  # stratified
    x = s.train_images.materialize().double() / 255
    assert np.allclose(s.mean, x.mean(dim=(0, 2, 3)).numpy(), atol=1e-9)
    assert np.allclose(s.std, x.std(dim=(0, 2, 3), unbiased=False).numpy(), atol=1e-9)
    assert not np.allclose(s.mean, full.mean, atol=1e-6)  # not the full training set's
    # the subset is fixed: another seed trains and validates on the same images
    other = load_splits("digits", SIZE, train_limit=300, val_fraction=0.2, seed=6)
    assert torch.equal(other.train_images.materialize(), s.train_images.materialize()) and torch.equal(
        other.val_images.materialize(), s.val_images.materialize()
    )
    assert torch.equal(s.test_images.materialize(), full.test_images.materialize())


def test_rotated_holdout_moves_on_with_the_seed_and_covers_every_class():
    from suite.data.subsets import rotated_holdout

    held = [rotated_holdout(2, 10, seed) for seed in range(5)]
    assert held == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]] and rotated_holdout(2, 10, 5) == [0, 1]
    assert rotated_holdout(3, 10, 3) == [0, 1, 9]  # 9, 10, 11 wrap around
    a = load_splits("digits", SIZE, holdout_classes="rotate:2", seed=0)
    b = load_splits("digits", SIZE, holdout_classes="rotate:2", seed=1)
    assert a.ood_name.endswith("['0', '1']") and b.ood_name.endswith("['2', '3']")
    explicit = load_splits("digits", SIZE, holdout_classes=[2, 3], seed=1)
    assert torch.equal(b.ood_images.materialize(), explicit.ood_images.materialize()) and torch.equal(
        b.train_labels, explicit.train_labels
    )
