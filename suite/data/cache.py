"""On-disk cache of decoded splits: decode once, memory-map forever after.

Layout: `<cache_dir>/<slug>/<split>-<S>px-<key>/{images.npy,labels.npy,meta.json}`.
The key hashes the dataset spec, split and resolution, plus the size and mtime
of every source file for local paths, so editing a folder re-decodes it. Every
file is written to a temp name and `os.replace`d, and `meta.json` is written
last, so a crash never leaves a half-written entry that looks complete.

A large decode is resumable and shared: it writes into ``.images.partial.npy`` with
``.progress.json`` recording how many leading images are done (flushed first), so an
interrupted decode continues where it stopped; one process decodes an entry at a time
(`entry_lock`), and a second one waits for it and then reads the cache; and the disk
must hold what is left to write before decoding starts (`check_space`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
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


PARTIAL, PROGRESS, LOCK = ".images.partial.npy", ".progress.json", ".lock"


def image_bytes(n: int, image_size: int) -> int:
    return n * 3 * image_size * image_size


def partial_image_file(entry: Path, n: int, image_size: int, what: str) -> tuple[np.memmap, Path, int]:
    """(the .npy to decode into directly, no second copy in RAM; its path; how many leading images an
    earlier, interrupted decode already wrote there). The disk must hold what is left to write
    (`check_space`, before anything is created). Commit with `commit`."""
    entry.mkdir(parents=True, exist_ok=True)
    path, shape = entry / PARTIAL, (n, 3, image_size, image_size)
    if path.is_file() and (entry / PROGRESS).is_file():
        try:
            arr = np.lib.format.open_memmap(path, mode="r+")
            done = int(json.loads((entry / PROGRESS).read_text()).get("done", 0))
            if arr.shape == shape and arr.dtype == np.uint8 and 0 <= done <= n:
                check_space(entry, n, image_size, done, what)
                return arr, path, done
            del arr
        except (OSError, ValueError, json.JSONDecodeError):
            pass
    (entry / PROGRESS).unlink(missing_ok=True)
    path.unlink(missing_ok=True)
    check_space(entry, n, image_size, 0, what)
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape), path, 0


def record_progress(entry: Path, images: np.memmap, done: int) -> None:
    """``done`` leading images are written: flushed to disk first, then recorded (atomically)."""
    images.flush()
    atomic_write_text(entry / PROGRESS, json.dumps({"done": int(done)}))


def check_space(entry: Path, n: int, image_size: int, done: int, what: str) -> None:
    """Refuse to start a decode the disk cannot finish: one line with what is needed, what is free, where."""
    from suite.core.errors import ConfigError

    need = image_bytes(n - done, image_size) + 16 * n  # what is left, and the labels
    free = shutil.disk_usage(entry if entry.exists() else entry.parent).free
    if need > free:
        raise ConfigError(
            "dataset",
            what,
            f"a cache disk with {human_bytes(need)} free (the decoded {n:,} images at {image_size} px)",
            hint=f"{human_bytes(free)} free under {entry.parent}; free space there or point NORMBENCH_CACHE at "
            "a larger disk",
        )


def human_bytes(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


@contextlib.contextmanager
def entry_lock(entry: Path, on_wait=None) -> Iterator[None]:
    """One decoder per cache entry across processes (trials and ranks of a node): an exclusive lock
    file; a second process calls ``on_wait`` once and waits for the first to finish."""
    entry.mkdir(parents=True, exist_ok=True)
    with open(entry / LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def commit(
    entry: Path, images_tmp: Path, images: np.memmap, labels: np.ndarray, class_names: list[str], mean=None, std=None
) -> None:
    """Publish a decoded split: images, labels, then meta.json (the completeness marker)."""
    images.flush()
    del images
    os.replace(images_tmp, entry / "images.npy")
    (entry / PROGRESS).unlink(missing_ok=True)
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
    return RawSplit(torch.from_numpy(images), torch.from_numpy(labels), meta["class_names"], mean, std, entry)


def subset_stats(entry: Path | None, index: torch.Tensor, compute) -> tuple[tuple, tuple]:
    """The channel stats of the subset ``index`` of a cached split: read from the entry when an earlier
    trial computed them for the same rows, else ``compute()``d (a pass over the subset) and kept there."""
    if entry is None:
        return compute()
    key = hashlib.sha1(index.numpy().astype(np.int64).tobytes()).hexdigest()[:20]
    path = entry / f"stats-{key}.json"
    try:
        saved = json.loads(path.read_text())
        return tuple(saved["mean"]), tuple(saved["std"])
    except (FileNotFoundError, ValueError, KeyError, json.JSONDecodeError):
        pass
    mean, std = compute()
    with contextlib.suppress(OSError):  # a read-only cache still trains; it recomputes next time
        atomic_write_text(path, json.dumps({"mean": list(mean), "std": list(std), "n": int(len(index))}))
    return mean, std
