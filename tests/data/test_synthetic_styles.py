"""`SynthStyle`, the generator's nuisances: `digits-synth` unchanged by them, every style's labels
its source digits', classes balanced, images deterministic whatever the chunk size, and each
nuisance present where asked (gray pixels, texture, fragments of other digits)."""

from __future__ import annotations

import hashlib

import pytest
import torch

from suite.data import synthetic
from suite.data.digits import digits_subset
from suite.data.specs import BUILTIN
from suite.data.splits import load_splits
from suite.data.synthetic import DIGITS_SYNTH, SYNTH_STYLES, SynthStyle, register_candidate, synth_digits

CLUTTER = SynthStyle(sizes=(600, 300), palette="gray", texture=0.2, distractors=3)


def _digest(*tensors: torch.Tensor) -> str:
    return hashlib.sha256(b"".join(t.numpy().tobytes() for t in tensors)).hexdigest()[:16]


@pytest.mark.parametrize(
    "split, draws, pixel_sum",
    [("train", "2860a7b4f0ae9a53", 193_614_460), ("test", "768cec4ce0dbed4d", 193_191_933)],
)
def test_digits_synth_draws_what_it_drew_before_styles_existed(split, draws, pixel_sum):
    # Pinned from the generator before SynthStyle: the same labels and sources (exact: integer
    # draws of torch's CPU generator) and the same pixels (their sum, to float-rounding slack).
    data = synth_digits(split, 32, n=500)
    assert _digest(data.labels, data.sources) == draws
    assert abs(int(data.images.long().sum()) - pixel_sum) <= 500  # < 1 level in 1 of 1,500 pixels
    assert torch.equal(data.images, synth_digits(split, 32, n=500, style=SynthStyle()).images)
    assert SYNTH_STYLES["digits-synth"] == DIGITS_SYNTH and data.distractor_sources is None


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_cluttered_style_keeps_the_labels_of_its_sources_and_balanced_classes(split):
    data = synth_digits(split, 24, style=CLUTTER)
    digits, digit_labels = digits_subset(split)
    n = CLUTTER.size(split)
    assert data.images.shape == (n, 3, 24, 24) and data.images.dtype == torch.uint8
    assert torch.equal(data.labels, digit_labels[data.sources])
    assert torch.equal(torch.bincount(data.labels, minlength=10), torch.full((10,), n // 10))
    assert data.distractor_sources.shape == (n, 3) and int(data.distractor_sources.max()) < len(digits)
    # Fragments come from any class: about 90 % of them are another class than the image's.
    other = (digit_labels[data.distractor_sources] != data.labels[:, None]).float().mean()
    assert 0.8 < other < 0.97, other


def test_a_style_is_deterministic_whatever_the_chunk_and_another_seed_gives_others(monkeypatch):
    a = synth_digits("train", 16, style=CLUTTER)
    monkeypatch.setattr(synthetic, "CHUNK", 97)  # not a divisor of 600
    b = synth_digits("train", 16, style=CLUTTER)
    assert torch.equal(a.images, b.images) and torch.equal(a.distractor_sources, b.distractor_sources)
    c = synth_digits("train", 16, style=CLUTTER, seed=1)
    assert (a.images != c.images).float().mean() > 0.5


def test_the_gray_palette_has_no_colour_and_each_nuisance_changes_the_images():
    plain = SynthStyle(sizes=(600, 300), palette="gray")
    images = synth_digits("train", 16, style=plain).images
    assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 1], images[:, 2])
    # Texture and fragments are drawn after everything else, so the digit and the background's
    # base level stay; the texture moves background pixels, fragments add ink where the digit is not.
    textured = synth_digits("train", 16, style=SynthStyle(sizes=(600, 300), palette="gray", texture=0.2))
    cluttered = synth_digits("train", 16, style=SynthStyle(sizes=(600, 300), palette="gray", distractors=3))
    assert torch.equal(textured.sources, cluttered.sources)
    moved = (textured.images.float() - images.float()).abs().mean()
    assert moved > 5, moved  # levels out of 255
    # Ink pulls a pixel toward the foreground colour (contrast > gradient, so that direction is
    # the sign of foreground - base everywhere): fragments only add ink, and add it in most images.
    toward = torch.sign(cluttered.foreground[:, 0] - cluttered.background[:, 0])[:, None, None]
    added = (cluttered.images[:, 0].float() - images[:, 0].float()) * toward
    assert bool((added >= -1).all())
    assert (added.amax((1, 2)) > 20).float().mean() > 0.5


def test_the_polar_palette_keeps_every_digit_visible_in_grayscale_with_either_polarity():
    style = SynthStyle(sizes=(2_000, 300), palette="polar")
    data = synth_digits("train", 16, style=style)
    step = data.foreground - data.background
    lo = style.contrast[0] - 1e-6
    brighter, darker = (step >= lo).all(1), (step <= -lo).all(1)
    assert bool((brighter | darker).all())  # every channel on the same side, by >= the least contrast
    assert 0.45 < brighter.float().mean() < 0.55  # the polarity is a fair coin
    luma = torch.tensor([0.299, 0.587, 0.114])
    assert bool(((step @ luma).abs() >= lo).all())  # so a grayscale view still shows the digit
    # ... which the digits-synth palette does not promise: some of its digits fade in grayscale.
    classic = synth_digits("train", 16, n=2_000)
    assert ((classic.foreground - classic.background) @ luma).abs().min() < 0.1


def test_bad_styles_fail_with_the_field_named():
    with pytest.raises(ValueError, match="scale"):
        SynthStyle(scale=(0.9, 0.5))
    with pytest.raises(ValueError, match="palette"):
        SynthStyle(palette="sepia")
    with pytest.raises(ValueError, match="polar"):
        SynthStyle(palette="polar", base=(0.5, 0.9))
    with pytest.raises(ValueError, match="sizes"):
        SynthStyle(sizes=(5, 100))
    with pytest.raises(ValueError, match="distractor_window"):
        SynthStyle(distractor_window=0.0)


def test_a_registered_candidate_loads_through_the_dataset_layer_and_a_builtin_cannot_be_redefined():
    name = "test-candidate-clutter"
    try:
        register_candidate(name, CLUTTER, 16)
        splits = load_splits(name, 16)
        assert splits.train_images.shape == (600, 3, 16, 16) and splits.test_images.shape == (300, 3, 16, 16)
        assert torch.equal(splits.test_images.materialize(), synth_digits("test", 16, style=CLUTTER).images)
    finally:
        SYNTH_STYLES.pop(name, None)
        BUILTIN.pop(name, None)
    with pytest.raises(ValueError, match="built-in"):
        register_candidate("digits-synth", CLUTTER, 16)
