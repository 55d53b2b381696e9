"""``normbench prepare``: decode datasets into the cache before a sweep needs them.

Import-light: the main CLI imports this module to register the command; torch and
`datasets` load only when it runs.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from suite.core.cli import add_command, csv_list
from suite.core.errors import ConfigError

DESCRIPTION = """Decode the train and test splits of one or more datasets at one or more image sizes into
the cache ($NORMBENCH_CACHE, default ~/.cache/normbench), so the trials of a sweep start at once
instead of each node's first trial decoding. A decode shows its rate and time left, refuses a disk
it cannot finish on, resumes after an interruption, and runs once when two processes want it.
Already cached splits are only reported. Then, per split: the images, the bytes on disk and the
entry's folder, and the free space left.

Copy the cache folder to every node's NORMBENCH_CACHE (a fast node-local disk), or run this on
each node, before a sweep on a cluster."""

EPILOG = """examples:
  normbench prepare cifar10 --image-size 32
  normbench prepare cifar100,svhn --image-size 32 --cache /scratch/normbench
  normbench prepare imagefolder:/data/imagenet100 --image-size 96,224

exit status:
  0 every split cached, 2 bad input (an unknown dataset or size, a disk too small; nothing half-written
  is lost: the next run resumes), 130 interrupted (the decode resumes next time)."""


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``prepare`` on the main CLI; dispatch with ``args.func(args)``."""
    parser = add_command(
        subparsers,
        "prepare",
        help="decode datasets into the cache ahead of a sweep",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    parser.add_argument("datasets", metavar="DATASET", help="dataset names or specs, comma-separated")
    parser.add_argument("--image-size", default="32", metavar="N[,N...]", help="square side(s) in pixels (default: 32)")
    parser.add_argument("--cache", default=None, metavar="DIR", help="cache folder (default: $NORMBENCH_CACHE)")
    parser.add_argument("--decode-workers", type=int, default=None, help="decoding threads (default: up to 8)")
    parser.set_defaults(func=run)
    return parser


def image_sizes(text: str) -> list[int]:
    sizes = []
    for value in csv_list(text, "--image-size") or []:
        if not value.isdigit() or not 8 <= int(value) <= 1024:
            raise ConfigError("--image-size", value, "whole numbers from 8 to 1024, comma-separated")
        sizes.append(int(value))
    return sizes


def run(args: argparse.Namespace) -> int:
    from suite.data import cache
    from suite.data.loader import entry_for, load_raw_split
    from suite.data.specs import parse_spec

    specs = [parse_spec(name) for name in csv_list(args.datasets, "dataset") or []]
    sizes = image_sizes(args.image_size)
    root = Path(args.cache).expanduser() if args.cache else cache.default_cache_dir()
    rows = []
    for spec in specs:
        for size in sizes:
            for split in ("train", "test"):
                raw = load_raw_split(spec, split, size, root, args.decode_workers)
                n = len(raw.labels)
                where = (
                    str(entry_for(spec, split, size, root))
                    if spec.kind not in ("builtin", "synthetic")
                    else "(made in memory, not cached)"
                )
                rows.append((spec.spec, split, f"{size}px", f"{n:,}", cache.human_bytes(n * 3 * size * size), where))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=False)) + "  " + row[5])
    if root.exists():
        print(f"free under {root}: {cache.human_bytes(shutil.disk_usage(root).free)}")
    return 0
