"""What a trial asks of the data layer, parsed and checked once: `plan_splits` -> `SplitsPlan`.

A trial config names its data with strings (``dataset: cifar10``, ``ood_dataset: parquet:PATH``,
``holdout_classes: rotate:2``). `plan_splits` parses them into typed values and checks every rule that
can be checked without loading (a known dataset or an existing path, one OOD source, held-out classes
that exist when the dataset's classes are known) -- once, where the config is resolved
(`suite.config.resolve`). `suite.data.splits.prepare_splits` then loads exactly what the plan says and
checks only what needs the data itself (class names, the size of the training split).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from suite.core.errors import ConfigError
from suite.data.specs import DatasetSpec, check_one_ood_source, parse_spec
from suite.data.subsets import resolve_holdout, rotated_holdout, rotation_count


@dataclass(frozen=True)
class SplitsPlan:
    """A trial's data, typed and checked: which dataset (and OOD dataset), at which size, with which
    classes held out and which subsets derived (`suite.data.splits.prepare_splits` follows it)."""

    dataset: DatasetSpec
    image_size: int  # square side in pixels
    imbalance: float | None = None  # long-tailed training split: largest / smallest class
    holdout: tuple[int | str, ...] = ()  # classes (index or name) removed from train and test
    rotate: int | None = None  # ``rotate:K``: K held-out classes chosen by the seed (then ``holdout`` is empty)
    ood_dataset: DatasetSpec | None = None  # a dataset whose test split is the OOD set
    train_limit: int | None = None
    val_fraction: float = 0.0
    seed: int = 0


def plan_splits(
    dataset: str | DatasetSpec,
    image_size: int | None = None,
    *,
    imbalance: float | None = None,
    holdout_classes: Sequence[int | str] | str | None = None,
    ood_dataset: str | DatasetSpec | None = None,
    train_limit: int | None = None,
    val_fraction: float = 0.0,
    seed: int = 0,
) -> SplitsPlan:
    """Parse the dataset strings and check the data's rules; ``image_size`` None: the dataset's own.

    ``holdout_classes`` is a list of class indices or names, ``rotate:K``, or None (the trial config's
    forms). Errors are `ConfigError`s naming the config field."""
    spec = dataset if isinstance(dataset, DatasetSpec) else parse_spec(dataset, "dataset")
    ood = None
    if ood_dataset is not None:
        ood = ood_dataset if isinstance(ood_dataset, DatasetSpec) else parse_spec(ood_dataset, "ood_dataset")
    check_one_ood_source(holdout_classes, ood.spec if ood is not None else None)
    holdout: tuple[int | str, ...] = ()
    rotate = None
    if isinstance(holdout_classes, str):
        rotate = rotation_count(holdout_classes)
        if rotate is None:
            raise ConfigError("holdout_classes", holdout_classes, "a list of class indices or names, or rotate:K")
        if spec.num_classes is not None:
            rotated_holdout(rotate, spec.num_classes, seed)
    elif holdout_classes:
        holdout = tuple(holdout_classes)
        if spec.num_classes is not None:  # fail before any decoding where we can
            numeric = [c for c in holdout if isinstance(c, int) or (isinstance(c, str) and c.isdigit())]
            if numeric:
                resolve_holdout(numeric, [str(i) for i in range(spec.num_classes)])
    return SplitsPlan(
        dataset=spec,
        image_size=image_size if image_size is not None else spec.image_size,
        imbalance=imbalance,
        holdout=holdout,
        rotate=rotate,
        ood_dataset=ood,
        train_limit=train_limit,
        val_fraction=val_fraction,
        seed=seed,
    )
