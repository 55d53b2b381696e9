"""The built-in `digits` dataset: scikit-learn's 1,797 real 8x8 handwritten digits.

It ships with scikit-learn, so it needs no network and no cache; it is the
default dataset and what the tests train on. The split is fixed (stratified
80/20, `random_state=0`) and independent of the trial seed, so every trial of a
sweep is evaluated on the same test images.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from suite.data.images import resize_square
from suite.data.raw import RawSplit

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2


def digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 images as [N,8,8] uint8 (0..16 scaled to 0..255) and their labels."""
    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return images, bunch.target.astype(np.int64)


def digits_split_indices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fixed stratified train/test indices."""
    return train_test_split(
        np.arange(len(labels)), test_size=DIGITS_TEST_FRACTION, stratify=labels, random_state=DIGITS_SPLIT_SEED
    )


def load_digits_split(split: str, image_size: int) -> RawSplit:
    """One split of digits at `image_size`, 3 channels."""
    images, labels = digits_uint8()
    train_idx, test_idx = digits_split_indices(labels)
    idx = train_idx if split == "train" else test_idx
    x = torch.from_numpy(images[idx]).unsqueeze(1).expand(-1, 3, -1, -1)
    return RawSplit(
        images=resize_square(x, image_size),
        labels=torch.from_numpy(labels[idx]),
        class_names=[str(c) for c in range(10)],
    )
