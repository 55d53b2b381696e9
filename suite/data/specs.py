"""Dataset names: the registry of named datasets and the generic spec syntax.

A spec string is what a user writes in `dataset=`; parsing it is cheap (no
loading) so a typo in a sweep fails before any work.

    digits                              built-in, no network
    digits-synth                        built-in: 60,000 colour images made from digits, no network
    digits-colour                       built-in: the CPU testbed, 10,000 16 px digits whose colour is the nuisance
    cifar10 | cifar100 | stl10 | svhn | tiny-imagenet | imagenette | imagenet100
    hf:ID[:CONFIG][?options]            any image-classification dataset on the HF hub
    parquet:PATH[?options]              a parquet file or a directory of parquet files
    imagefolder:PATH                    PATH/train/<class>/* and PATH/test/<class>/*

Options (`?key=value&key=value`): `image=COL`, `label=COL`; for `hf:` also
`train=SPLIT`, `test=SPLIT`; for a single parquet file `split=COL` (the column
holding "train"/"test", default `split`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qsl

from suite.core.errors import ConfigError


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset comes from and how to read it."""

    spec: str  # canonical spec string (cache key, results tables)
    kind: str  # builtin | synthetic | hub | parquet | imagefolder
    hub_id: str | None = None
    config: str | None = None
    path: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    image_column: str | None = None  # None: the first Image-typed column
    label_column: str = "label"
    split_column: str = "split"
    num_classes: int | None = None  # known without loading (named datasets)
    image_size: int = 64  # the resolution it is usually benchmarked at (config default)
    options: dict = field(default_factory=dict, compare=False)


# name -> (hub id, config, train split, test split, image column, label column, classes)
NAMED: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(
        "cifar10",
        "hub",
        "uoft-cs/cifar10",
        None,
        image_column="img",
        label_column="label",
        num_classes=10,
        image_size=32,
    ),
    "cifar100": DatasetSpec(
        "cifar100",
        "hub",
        "uoft-cs/cifar100",
        None,
        image_column="img",
        label_column="fine_label",
        num_classes=100,
        image_size=32,
    ),
    "stl10": DatasetSpec(
        "stl10",
        "hub",
        "tanganke/stl10",
        None,
        image_column="image",
        label_column="label",
        num_classes=10,
        image_size=96,
    ),
    "svhn": DatasetSpec(
        "svhn",
        "hub",
        "ufldl-stanford/svhn",
        "cropped_digits",
        image_column="image",
        label_column="label",
        num_classes=10,
        image_size=32,
    ),
    "tiny-imagenet": DatasetSpec(
        "tiny-imagenet",
        "hub",
        "zh-plus/tiny-imagenet",
        None,
        test_split="valid",
        image_column="image",
        label_column="label",
        num_classes=200,
        image_size=64,
    ),
    "imagenette": DatasetSpec(
        "imagenette",
        "hub",
        "frgfm/imagenette",
        "320px",
        test_split="validation",
        image_column="image",
        label_column="label",
        num_classes=10,
        image_size=128,
    ),
    "imagenet100": DatasetSpec(
        "imagenet100",
        "hub",
        "clane9/imagenet-100",
        None,
        test_split="validation",
        image_column="image",
        label_column="label",
        num_classes=100,
        image_size=128,
    ),
}
BUILTIN = {
    "digits": DatasetSpec("digits", "builtin", num_classes=10, image_size=16),  # 8x8 originals, upsampled 2x
    "digits-synth": DatasetSpec("digits-synth", "synthetic", num_classes=10, image_size=32),  # suite.data.synthetic
    # The CPU testbed (benchmarks/testbed_search.py): 5,000 + 5,000 images, colour the nuisance.
    "digits-colour": DatasetSpec("digits-colour", "synthetic", num_classes=10, image_size=16),
}
DATASET_NAMES: list[str] = [*BUILTIN, *NAMED]
PREFIXES = ("hf:", "parquet:", "imagefolder:")
_OPTIONS = {"hub": {"image", "label", "train", "test"}, "parquet": {"image", "label", "split"}, "imagefolder": set()}


def allowed_names() -> str:
    return ", ".join(DATASET_NAMES) + ", hf:ID[:CONFIG], parquet:PATH, imagefolder:PATH"


def parse_spec(name: object, field_name: str = "dataset") -> DatasetSpec:
    """Parse and validate a dataset spec without loading anything."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(field_name, name, allowed_names())
    name = name.strip()
    if name in BUILTIN:
        return BUILTIN[name]
    if name in NAMED:
        return NAMED[name]
    if not name.startswith(PREFIXES):
        raise ConfigError(field_name, name, allowed_names())
    prefix, rest = name.split(":", 1)
    body, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False)) if query else {}
    kind = "hub" if prefix == "hf" else prefix
    unknown = set(options) - _OPTIONS[kind]
    if unknown:
        raise ConfigError(
            field_name,
            name,
            f"options {sorted(_OPTIONS[kind]) or 'none'} for {prefix}:",
            hint=f"unknown option(s) {sorted(unknown)}",
        )
    if not body:
        raise ConfigError(field_name, name, f"{prefix}:" + ("ID[:CONFIG]" if kind == "hub" else "PATH"))
    if kind == "hub":
        hub_id, _, config = body.partition(":")
        spec = DatasetSpec(name, "hub", hub_id, config or None)
        spec = replace(spec, train_split=options.get("train", "train"), test_split=options.get("test", "test"))
    else:
        path = os.path.abspath(os.path.expanduser(body))
        if kind == "parquet" and not (os.path.isdir(path) or os.path.isfile(path)):
            raise ConfigError(field_name, name, "an existing parquet file or directory", hint=f"{path} does not exist")
        if kind == "imagefolder" and not os.path.isdir(path):
            raise ConfigError(
                field_name,
                name,
                "an existing directory with train/ and test/ sub-folders",
                hint=f"{path} does not exist",
            )
        found = _folder_kind(path)
        expected = {"imagefolder": "image folder", "parquet": "parquet"}[kind]
        if found is not None and found != expected:
            raise ConfigError(field_name, name, _PREFIX_FOR[found].format(path=path), hint=f"{path} is a {found}")
        spec = DatasetSpec(name, kind, path=path)
        if kind == "parquet":
            spec = replace(spec, split_column=options.get("split", "split"))
    return replace(
        spec,
        image_column=options.get("image", spec.image_column),
        label_column=options.get("label", spec.label_column),
        options=options,
    )


# What each local layout is read with (hf:PATH reads a `datasets` save_to_disk folder).
_PREFIX_FOR = {
    "save_to_disk folder": "hf:{path} (a Hugging Face datasets save_to_disk folder is read with the hf: prefix)",
    "parquet": "parquet:{path} (train*.parquet and test*.parquet files)",
    "image folder": "imagefolder:{path} (train/<class>/* and test/<class>/* image files)",
}


def _folder_kind(path: str) -> str | None:
    """What a local dataset path holds, when it can tell: a save_to_disk folder, parquet files, or an image
    folder (train/ and test/ sub-folders without either); None for anything else (left to the reader)."""
    root = Path(path)
    if not root.is_dir():
        return "parquet" if root.suffix == ".parquet" else None
    if (root / "dataset_dict.json").is_file() or (root / "state.json").is_file():
        return "save_to_disk folder"
    if any(root.glob("*.parquet")) or any(root.glob("*/*.parquet")):
        return "parquet"
    if (root / "train").is_dir():
        return "image folder"
    return None


def validate_dataset_name(name: str, field: str = "dataset") -> None:
    """Cheap check (no loading): known name, or a generic spec whose local path exists."""
    parse_spec(name, field)


def check_one_ood_source(holdout_classes, ood_dataset) -> None:
    """A trial has one OOD set: held-out classes or another dataset, not both."""
    if ood_dataset is not None and holdout_classes:
        raise ConfigError(
            "ood_dataset",
            ood_dataset,
            "unset when holdout_classes is given (one OOD set per trial)",
            hint="held-out classes already define the OOD set",
        )
