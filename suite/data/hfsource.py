"""Reading one split through Hugging Face `datasets` (hub, parquet, imagefolder).

`datasets` does the I/O and Arrow caching; we only pick the image and label
columns, decode each image once, resize it and write it into the npy cache.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from suite.core.errors import ConfigError
from suite.data.images import decode_resize
from suite.data.specs import DatasetSpec

DECODE_BATCH = 256
HUB_TIMEOUT_S = 3.0  # how long the hub may take to answer before a load goes offline (cache only)
LOCAL_COPIES = (
    "or point dataset= at a local copy: hf:PATH (a datasets save_to_disk folder), parquet:PATH (train*.parquet and "
    "test*.parquet) or imagefolder:PATH (train/<class>/*, test/<class>/*); the datasets guide shows how"
)


class DatasetUnavailable(ConfigError):
    """A dataset that cannot be fetched (offline, not cached, unknown hub id)."""

    def __init__(self, field: str, value: str, message: str) -> None:
        super().__init__(field, value, "a dataset that is downloaded or cached")
        self.args = (f"{field}: {value!r} is not available: {message}",)


def _parquet_files(spec: DatasetSpec, split: str) -> list[str]:
    """Parquet files for a split: `train*`/`test*` files in a directory (test falls back to `val*`)."""
    root = Path(spec.path)
    if root.is_file():
        return [str(root)]
    files = sorted(str(p) for p in root.rglob("*.parquet"))
    prefixes = ("train",) if split == "train" else ("test", "val")
    for prefix in prefixes:
        chosen = [f for f in files if Path(f).name.lower().startswith(prefix)]
        if chosen:
            return chosen
    raise ConfigError(
        "dataset",
        spec.spec,
        "a directory with train*.parquet and test*.parquet files (or a single file with a split column)",
        hint=f"no {'/'.join(p + '*' for p in prefixes)}.parquet file under {root}",
    )


def _unavailable(spec: DatasetSpec, split: str, hf_cache: Path, err: Exception) -> DatasetUnavailable:
    where = f"hub id {spec.hub_id!r}" + (f", config {spec.config!r}" if spec.config else "")
    cfg = f", {spec.config!r}" if spec.config else ""
    fetch = (
        f'run once with network access (HF_HUB_OFFLINE unset), e.g. python -c "import datasets; '
        f'datasets.load_dataset({spec.hub_id!r}{cfg}, cache_dir={str(hf_cache)!r})"'
    )
    return DatasetUnavailable(
        "dataset",
        spec.spec,
        f"could not load {where}, split {split!r} ({type(err).__name__}: {err}). It would be "
        f"cached under {hf_cache}; to download it, {fetch}",
    )


def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub answers within ``timeout`` seconds (False when HF_HUB_OFFLINE or
    HF_DATASETS_OFFLINE is set): one quick connection, instead of the library's retries with back-off."""
    if any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def offline_hub() -> Iterator[None]:
    """Inside the block, `datasets` and the hub client read their cache only (no request, no retry)."""
    import datasets.config
    import huggingface_hub.constants

    saved = datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def _load_hub(spec: DatasetSpec, split_name: str, hf_cache: Path):
    """A hub split: from the network when the hub answers, else from the cache at once (an unreachable hub
    fails in seconds, with what to do, not after the library's retries)."""
    import datasets

    if os.path.isdir(os.path.expanduser(spec.hub_id)) or hub_reachable():
        return datasets.load_dataset(spec.hub_id, spec.config, split=split_name, cache_dir=str(hf_cache))
    try:
        with offline_hub():
            return datasets.load_dataset(spec.hub_id, spec.config, split=split_name, cache_dir=str(hf_cache))
    except Exception as err:  # whatever the library raises for "not in the cache"
        raise DatasetUnavailable(
            "dataset",
            spec.spec,
            f"the Hugging Face hub does not answer (or HF_HUB_OFFLINE is set) and hub id {spec.hub_id!r}, split "
            f"{split_name!r}, is not in the cache under {hf_cache} ({type(err).__name__}). Download it once where "
            f"the hub is reachable, {LOCAL_COPIES}",
        ) from err


def open_split(spec: DatasetSpec, split: str, hf_cache: Path):
    """The `datasets.Dataset` for `split` ('train'/'test') with the label column verified."""
    import datasets  # heavy import; only needed when decoding

    split_name = spec.train_split if split == "train" else spec.test_split
    try:
        if spec.kind == "hub":
            ds = _load_hub(spec, split_name, hf_cache)
        elif spec.kind == "imagefolder":
            ds = datasets.load_dataset("imagefolder", data_dir=spec.path, cache_dir=str(hf_cache))
            names = [split_name] + (["validation"] if split == "test" else [])
            found = [n for n in names if n in ds]
            if not found:
                raise ConfigError(
                    "dataset",
                    spec.spec,
                    "a folder with train/ and test/ sub-folders",
                    hint=f"no {split_name!r} split in {spec.path} (found {sorted(ds)})",
                )
            ds = ds[found[0]]
        else:
            files = _parquet_files(spec, split)
            ds = datasets.load_dataset(
                "parquet", data_files={split_name: files}, split=split_name, cache_dir=str(hf_cache)
            )
            if Path(spec.path).is_file():
                ds = _rows_of_split(ds, spec, split_name)
    except (ConnectionError, FileNotFoundError) as err:
        raise _unavailable(spec, split_name, hf_cache, err) from err
    except ValueError as err:
        if "split" in str(err).lower() and not isinstance(err, ConfigError):
            raise ConfigError(
                "dataset", spec.spec, "existing split names", hint=f"split {split_name!r}: {err}"
            ) from err
        raise
    if spec.label_column not in ds.column_names:
        raise ConfigError(
            "dataset label column",
            spec.label_column,
            ds.column_names,
            hint=f"no such column in {spec.spec}; set ?label=COLUMN",
        )
    return ds


def _rows_of_split(ds, spec: DatasetSpec, split_name: str):
    if spec.split_column not in ds.column_names:
        raise ConfigError(
            "dataset split column",
            spec.split_column,
            ds.column_names,
            hint="a single parquet file needs a column of 'train'/'test' values; "
            "set ?split=COLUMN, or pass a directory with train*/test* files",
        )
    values = column_numpy(ds, spec.split_column).astype(str)
    return ds.select(np.flatnonzero(values == split_name))


def column_numpy(ds, column: str) -> np.ndarray:
    """One column as numpy, respecting any row selection, without decoding images."""
    return ds.select_columns([column]).with_format("arrow")[:].column(column).to_numpy(zero_copy_only=False)


def image_column(ds, spec: DatasetSpec) -> str:
    """The configured image column, else the first Image-typed column."""
    import datasets

    if spec.image_column is not None:
        if spec.image_column not in ds.column_names:
            raise ConfigError(
                "dataset image column",
                spec.image_column,
                ds.column_names,
                hint=f"no such column in {spec.spec}; set ?image=COLUMN",
            )
        return spec.image_column
    for name, feature in ds.features.items():
        if isinstance(feature, datasets.Image):
            return name
    raise ConfigError(
        "dataset image column", None, ds.column_names, hint=f"{spec.spec} has no Image column; set ?image=COLUMN"
    )


def labels_and_names(ds, spec: DatasetSpec) -> tuple[np.ndarray, list[str] | None]:
    """Integer labels and class names (from a ClassLabel feature, sorted strings, or None)."""
    import datasets

    feature = ds.features[spec.label_column]
    values = column_numpy(ds, spec.label_column)
    if isinstance(feature, datasets.ClassLabel):
        return values.astype(np.int64), list(feature.names)
    if values.dtype.kind in "iu":
        return values.astype(np.int64), None
    raise ConfigError(
        "dataset label column",
        spec.label_column,
        "an integer or ClassLabel column",
        hint=f"column {spec.label_column!r} of {spec.spec} has type {feature}",
    )


PROGRESS_EVERY = 64  # batches between two recorded progress points of a resumable decode


def decode_into(
    ds,
    column: str,
    out: np.ndarray,
    image_size: int,
    desc: str,
    decode_workers: int | None = None,
    start: int = 0,
    on_progress=None,
) -> None:
    """Decode + resize every image of `ds[column]` from ``start`` on into `out`, in parallel batches, with a
    progress bar (rate and time left); ``on_progress(n)`` hears, every few batches and at the end, that the
    first n images are written (a resumed decode starts there)."""
    import datasets
    from tqdm.auto import tqdm

    if not isinstance(ds.features[column], datasets.Image):
        ds = ds.cast_column(column, datasets.Image())  # e.g. raw {bytes, path} structs from pyarrow
    ds = ds.select_columns([column])
    begin = start - start % DECODE_BATCH
    starts = range(begin, len(ds), DECODE_BATCH)
    workers = decode_workers or min(8, os.cpu_count() or 1)

    def work(first: int) -> int:
        stop = min(first + DECODE_BATCH, len(ds))
        out[first:stop] = decode_resize(ds[first:stop][column], image_size)
        return stop

    with tqdm(total=len(ds), initial=begin, desc=desc, unit="img") as bar, ThreadPoolExecutor(workers) as pool:
        # threads: PIL decoding and torch resizing release the GIL; map yields in order, so every batch
        # before a yielded one is written too
        previous = begin
        for i, stop in enumerate(pool.map(work, starts), 1):
            bar.update(stop - previous)
            previous = stop
            if on_progress is not None and (i % PROGRESS_EVERY == 0 or stop == len(ds)):
                on_progress(stop)
