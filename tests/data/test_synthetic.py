"""`digits-synth`: deterministic, the documented shapes, balanced classes, and every image shows
the digit its label names (recovered from the pixels by undoing the placement)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from suite.config import make_config
from suite.data import synthetic
from suite.data.digits import digits_subset
from suite.data.splits import DATASET_NAMES, load_splits
from suite.data.synthetic import CONTRAST, SYNTH_SIZES, synth_digits

SAMPLE = 3000


def test_the_same_seed_gives_the_same_images_whatever_the_chunk_and_another_seed_others(monkeypatch):
    a = synth_digits("train", 32, n=SAMPLE)
    monkeypatch.setattr(synthetic, "CHUNK", 1000)
    b = synth_digits("train", 32, n=SAMPLE)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    other = synth_digits("train", 32, n=SAMPLE, seed=1)
    assert not torch.equal(a.labels, other.labels)
    assert (a.images != other.images).float().mean() > 0.5
    test = synth_digits("test", 32, n=SAMPLE)  # the test split is its own draw
    assert not torch.equal(a.labels, test.labels)


def test_the_named_dataset_has_cifar10s_shape_and_exactly_balanced_classes():
    assert "digits-synth" in DATASET_NAMES
    cfg = make_config({"dataset": "digits-synth"})
    assert cfg.image_size == 32  # the dataset's own default resolution
    s = load_splits("digits-synth", 32)
    assert s.train_images.shape == (SYNTH_SIZES["train"], 3, 32, 32) and s.train_images.dtype == torch.uint8
    assert s.test_images.shape == (SYNTH_SIZES["test"], 3, 32, 32) and s.num_classes == 10
    assert torch.equal(torch.bincount(s.train_labels), torch.full((10,), SYNTH_SIZES["train"] // 10))
    assert torch.equal(torch.bincount(s.test_labels), torch.full((10,), SYNTH_SIZES["test"] // 10))
    assert all(0.0 < m < 1.0 for m in s.mean) and all(0.1 < sd < 0.5 for sd in s.std)  # colourful, not flat
    small = load_splits("digits-synth", 16, train_limit=500)
    assert small.train_images.shape == (500, 3, 16, 16)


def test_each_image_shows_its_labels_digit_inside_the_frame_and_in_contrast():
    data = synth_digits("train", 32, n=SAMPLE)
    digits, digit_labels = digits_subset("train")
    assert torch.equal(data.labels, digit_labels[data.sources])
    assert bool(((data.centres.abs() + data.halves[:, None]) <= 1.0 + 1e-6).all())  # never cut off
    assert bool(((data.foreground - data.background).abs() >= CONTRAST[0] - 1e-6).all())

    # Undo the placement: read the image on the digit's own 8x8 grid, turn colour into ink, and
    # find the nearest source digit. Its label must be the image's label.
    n = len(data.labels)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = data.halves
    theta[:, :, 2] = data.centres
    grid = F.affine_grid(theta, [n, 1, 8, 8], align_corners=False)
    seen = F.grid_sample(data.images.float() / 255.0, grid, mode="bilinear", align_corners=False)
    channel = (data.foreground - data.background).abs().argmax(1)  # the channel with the most contrast
    pick = torch.arange(n)
    fg, bg = data.foreground[pick, channel], data.background[pick, channel]
    ink = ((seen[pick, channel] - bg[:, None, None]) / (fg - bg)[:, None, None]).clamp(0, 1).flatten(1)
    source = digits.float().flatten(1) / 255.0
    ink, source = F.normalize(ink - ink.mean(1, keepdim=True), dim=1), F.normalize(source - source.mean(1, True), dim=1)
    nearest = (ink @ source.T).argmax(1)
    agreement = (digit_labels[nearest] == data.labels).float().mean()
    assert agreement > 0.9, agreement
    # ... and a random label would not be: the recovered digits carry the label's information.
    assert (digit_labels[nearest] == data.labels[torch.randperm(n)]).float().mean() < 0.2


def test_train_and_test_images_come_from_the_digits_own_train_and_test_splits():
    train, test = digits_subset("train"), digits_subset("test")
    assert len(train[0]) + len(test[0]) == 1797
    data = synth_digits("test", 32, n=500)
    assert int(data.sources.max()) < len(test[0]) and torch.equal(data.labels, test[1][data.sources])
