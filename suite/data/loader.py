"""One split of one dataset at one resolution: from the npy cache, or decoded once into it."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import torch

from suite.data import cache
from suite.data.digits import load_digits_split
from suite.data.hfsource import decode_into, image_column, labels_and_names, open_split
from suite.data.raw import RawSplit
from suite.data.specs import DatasetSpec
from suite.data.subsets import channel_stats
from suite.data.synthetic import load_synth_split

log = logging.getLogger(__name__)


def entry_for(spec: DatasetSpec, split: str, image_size: int, root: Path) -> Path:
    """The cache entry of one split of a decoded (hub or local) dataset at ``image_size``."""
    fingerprint = cache.source_fingerprint(spec.path) if spec.path else None
    source = [
        spec.kind,
        spec.hub_id,
        spec.config,
        spec.path,
        spec.train_split,
        spec.test_split,
        spec.image_column,
        spec.label_column,
        spec.split_column,
    ]
    return cache.entry_dir(root, spec.spec, split, image_size, fingerprint, source)


def load_raw_split(
    spec: DatasetSpec,
    split: str,
    image_size: int,
    cache_dir: str | Path | None = None,
    decode_workers: int | None = None,
) -> RawSplit:
    """`split` ('train' or 'test') as uint8 [N,3,S,S]; the train split carries its channel stats."""
    if spec.kind in ("builtin", "synthetic"):  # made in memory: nothing to decode or cache
        if spec.kind == "builtin":
            raw = load_digits_split(split, image_size)
        else:
            raw = load_synth_split(split, image_size, spec.spec)
        if split == "train":
            raw.mean, raw.std = channel_stats(raw.images)
        return raw
    root = Path(cache_dir) if cache_dir is not None else cache.default_cache_dir()
    entry = entry_for(spec, split, image_size, root)
    hit = cache.read(entry)
    if hit is not None:
        log.debug("cache hit %s", entry)
        return hit

    def waiting() -> None:
        print(f"normbench: waiting for another process decoding {spec.spec} {split} into {entry}", file=sys.stderr)

    with cache.entry_lock(entry, on_wait=waiting):
        hit = cache.read(entry)  # the process we waited for decoded it
        if hit is not None:
            return hit
        ds = open_split(spec, split, root / "hf")
        labels, names = labels_and_names(ds, spec)
        column = image_column(ds, spec)
        images, partial, done = cache.partial_image_file(entry, len(ds), image_size, spec.spec)
        decode_into(
            ds,
            column,
            images,
            image_size,
            desc=f"decoding {spec.spec} {split} @{image_size}px",
            decode_workers=decode_workers,
            start=done,
            on_progress=lambda n: cache.record_progress(entry, images, n),
        )
        mean = std = None
        if split == "train":
            mean, std = channel_stats(torch.from_numpy(images))
        cache.commit(entry, partial, images, labels, names, mean, std)
    log.info("cached %s %s split at %dpx in %s", spec.spec, split, image_size, entry)
    return cache.read(entry)
