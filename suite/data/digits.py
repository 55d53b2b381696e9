"""The built-in `digits` dataset: scikit-learn's 1,797 real 8x8 handwritten digits.

It ships with scikit-learn, so it needs no network and no cache; it is the
default dataset and what the tests train on. The split is fixed (stratified
80/20, `random_state=0`) and independent of the trial seed, so every trial of a
sweep is evaluated on the same test images.

Both are read from files rather than through scikit-learn's API: importing
scikit-learn (and scipy with it) costs every trial process about a second of
CPU, and a sweep starts a process per trial. The images come from the CSV that
scikit-learn bundles (what `sklearn.datasets.load_digits` parses); the split is
`sklearn.model_selection.train_test_split`'s, computed once and shipped as
`digits_split.npz` (tests/data/test_data.py checks both against scikit-learn).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from suite.data.images import resize_square
from suite.data.raw import RawSplit

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2
SPLIT_FILE = Path(__file__).with_name("digits_split.npz")


def _bundled_csv() -> Path:
    """scikit-learn's own copy of the digits (found without importing scikit-learn)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the digits dataset ships with scikit-learn: pip install scikit-learn")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"


def digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 images as [N,8,8] uint8 (0..16 scaled to 0..255) and their labels."""
    table = np.loadtxt(_bundled_csv(), delimiter=",")
    images = np.rint(table[:, :-1].reshape(-1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)
    return images, table[:, -1].astype(np.int64)


def digits_split_indices() -> tuple[np.ndarray, np.ndarray]:
    """The fixed stratified train/test indices, in train_test_split's order."""
    with np.load(SPLIT_FILE) as split:
        return split["train"].astype(np.int64), split["test"].astype(np.int64)


def digits_subset(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One split's [n,8,8] uint8 images and int64 labels, in the split's order."""
    images, labels = digits_uint8()
    train_idx, test_idx = digits_split_indices()
    idx = train_idx if split == "train" else test_idx
    return torch.from_numpy(images[idx]), torch.from_numpy(labels[idx])


def load_digits_split(split: str, image_size: int) -> RawSplit:
    """One split of digits at `image_size`, 3 channels."""
    images, labels = digits_subset(split)
    return RawSplit(
        images=resize_square(images.unsqueeze(1).expand(-1, 3, -1, -1), image_size),
        labels=labels,
        class_names=[str(c) for c in range(10)],
    )
