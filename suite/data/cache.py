"""On-disk cache of decoded splits: decode once, memory-map forever after.

Layout: `<cache_dir>/<slug>/<split>-<S>px-<key>/{images.npy,labels.npy,meta.json}`.
The key hashes the dataset spec, split and resolution, plus the size and mtime
of every source file for local paths, so editing a folder re-decodes it. Every
file is written to a temp name and `os.replace`d, and `meta.json` is written
last, so a crash never leaves a half-written entry that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

from suite.core.files import atomic_path, atomic_write_text
from suite.data.raw import RawSplit

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """`$NORMBENCH_CACHE`, else `~/.cache/normbench`."""
    return Path(os.environ.get("NORMBENCH_CACHE") or Path.home() / ".cache" / "normbench")


def source_fingerprint(path: str) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of every file under a local source path."""
    root = Path(path)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    out = []
    for p in files:
        st = p.stat()
        out.append((str(p.relative_to(root)) if p != root else p.name, st.st_size, st.st_mtime_ns))
    return out


def entry_dir(
    cache_dir: Path, spec: str, split: str, image_size: int, fingerprint: list | None, source: object = None
) -> Path:
    """The cache folder for one (spec, split, resolution, source identity and state)."""
    blob = json.dumps(
        {"v": CACHE_VERSION, "spec": spec, "split": split, "size": image_size, "source": source, "files": fingerprint},
        sort_keys=True,
        default=str,
    )
    key = hashlib.sha256(blob.encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", spec)[-80:].strip("_") or "dataset"
    return cache_dir / slug / f"{split}-{image_size}px-{key}"


def new_image_file(entry: Path, n: int, image_size: int) -> tuple[np.memmap, Path]:
    """A temp .npy to decode into directly (no second copy in RAM); commit with `commit`."""
    entry.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=entry, prefix=".images.", suffix=".npy.tmp")
    os.close(fd)
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 3, image_size, image_size))
    return arr, Path(tmp)


def commit(
    entry: Path, images_tmp: Path, images: np.memmap, labels: np.ndarray, class_names: list[str], mean=None, std=None
) -> None:
    """Publish a decoded split: images, labels, then meta.json (the completeness marker)."""
    images.flush()
    del images
    os.replace(images_tmp, entry / "images.npy")
    with atomic_path(entry / "labels.npy") as tmp, open(tmp, "wb") as fh:  # a handle: np.save would add ".npy"
        np.save(fh, labels.astype(np.int64))
    meta = {"class_names": class_names, "n": int(len(labels)), "mean": mean, "std": std}
    atomic_write_text(entry / "meta.json", json.dumps(meta))


def read(entry: Path) -> RawSplit | None:
    """The cached split memory-mapped (copy-on-write), or None if absent/incomplete."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        images = np.load(entry / "images.npy", mmap_mode="c")
        labels = np.load(entry / "labels.npy")
    except (FileNotFoundError, ValueError, json.JSONDecodeError):
        return None
    if len(images) != meta["n"] or len(labels) != meta["n"]:
        return None
    mean = tuple(meta["mean"]) if meta.get("mean") else None
    std = tuple(meta["std"]) if meta.get("std") else None
    return RawSplit(torch.from_numpy(images), torch.from_numpy(labels), meta["class_names"], mean, std)
