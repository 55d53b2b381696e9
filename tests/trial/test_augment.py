"""Tests for suite.trial.augment: each expected value is computed here independently
(F.interpolate, luminance weights, scipy's gaussian_filter, a numpy re-implementation of
the crop-box rule), on real scikit-learn digits images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from sklearn.datasets import load_digits

from suite.core.errors import ConfigError
from suite.trial.augment import AugmentSpec, BatchAugment, normalize

MEAN = (0.3, 0.4, 0.5)
STD = (0.2, 0.25, 0.3)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _stats(device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor(MEAN, device=device).view(1, 3, 1, 1), torch.tensor(STD, device=device).view(1, 3, 1, 1))


def unnormalize(y: torch.Tensor) -> torch.Tensor:
    mean, std = _stats(y.device)
    return y * std + mean


def plain(size: int, **overrides) -> AugmentSpec:
    """A recipe that does nothing but resize the whole image, plus ``overrides``."""
    fields = dict(
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        flip_p=0.0,
        jitter_p=0.0,
        grayscale_p=0.0,
        blur_p=0.0,
        solarize_p=0.0,
    )
    fields.update(overrides)
    return AugmentSpec(size, **fields)


@pytest.fixture(scope="module")
def digits_rgb() -> torch.Tensor:
    """uint8 [N,3,32,32]: three different digits as R, G, B, none of them mirror-symmetric."""
    images = torch.from_numpy(load_digits().images).float()
    images = (images * (255.0 / 16.0)).round().to(torch.uint8)
    n = images.shape[0] // 3
    rgb = torch.stack([images[:n], images[n : 2 * n], images[2 * n : 3 * n]], dim=1)
    rgb = rgb[(rgb != rgb.flip(-1)).flatten(1).any(1)]
    return rgb.repeat_interleave(4, dim=-1).repeat_interleave(4, dim=-2).contiguous()


def per_sample_max_abs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().flatten(1).amax(1)


@pytest.mark.parametrize("device", DEVICES)
def test_output_shape_dtype_and_range(digits_rgb, device):
    x = digits_rgb[:64].to(device)
    out = BatchAugment(AugmentSpec(24, blur_p=0.5, solarize_p=0.2), MEAN, STD)(x)
    assert out.shape == (64, 3, 24, 24)
    assert out.dtype == torch.float32 and out.device.type == device
    pixels = unnormalize(out)
    assert torch.isfinite(out).all()
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


@pytest.mark.parametrize("size", [20, 48])
def test_identity_recipe_equals_resize_then_normalize(digits_rgb, size):
    x = digits_rgb[:32]
    out = BatchAugment(plain(size), MEAN, STD)(x)
    mean, std = _stats()
    expected = (F.interpolate(x.double() / 255, size=(size, size), mode="bilinear", align_corners=True) - mean) / std
    # float32 sampling grids: ~1e-5 of a pixel value, i.e. far below one uint8 level (4e-3).
    torch.testing.assert_close(out.double(), expected, atol=1e-4, rtol=0)


def test_flip_gives_the_mirror_of_the_unflipped_view(digits_rgb):
    x = digits_rgb[:64]
    torch.manual_seed(3)
    unflipped = BatchAugment(AugmentSpec(32, flip_p=0.0, jitter_p=0.0, grayscale_p=0.0), MEAN, STD)(x)
    torch.manual_seed(3)
    flipped = BatchAugment(AugmentSpec(32, flip_p=1.0, jitter_p=0.0, grayscale_p=0.0), MEAN, STD)(x)
    assert torch.equal(flipped, unflipped.flip(-1))
    assert not torch.equal(flipped, unflipped)
    # Colour jitter, grayscale and blur are mirror-equivariant, so the whole view mirrors too.
    rest = dict(jitter_p=0.8, grayscale_p=0.5, blur_p=0.5)
    torch.manual_seed(4)
    unflipped = BatchAugment(AugmentSpec(32, flip_p=0.0, **rest), MEAN, STD)(x)
    torch.manual_seed(4)
    flipped = BatchAugment(AugmentSpec(32, flip_p=1.0, **rest), MEAN, STD)(x)
    torch.testing.assert_close(flipped, unflipped.flip(-1), atol=1e-5, rtol=0)


def test_grayscale_uses_luminance_weights(digits_rgb):
    x = digits_rgb[:32]
    pixels = unnormalize(BatchAugment(plain(32, grayscale_p=1.0), MEAN, STD)(x))
    rgb = x.double() / 255
    luma = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    for c in range(3):
        torch.testing.assert_close(pixels[:, c].double(), luma, atol=1e-5, rtol=0)


def test_solarize_inverts_pixels_at_or_above_half(digits_rgb):
    x = digits_rgb[:32]
    rgb = x.double() / 255
    assert (rgb > 0.5).any() and ((rgb < 0.5) & (rgb > 0)).any()
    pixels = unnormalize(BatchAugment(plain(32, solarize_p=1.0), MEAN, STD)(x))
    torch.testing.assert_close(pixels.double(), torch.where(rgb >= 0.5, 1 - rgb, rgb), atol=1e-5, rtol=0)


def test_blur_matches_scipy_gaussian_filter(digits_rgb):
    x = F.interpolate(digits_rgb[:8].float(), size=(64, 64), mode="nearest").to(torch.uint8)
    spec = plain(64, blur_p=1.0, blur_sigma=(1.5, 1.5))
    assert spec.blur_kernel_size == 7  # odd, ~10% of 64
    pixels = unnormalize(BatchAugment(spec, MEAN, STD)(x))
    radius = spec.blur_kernel_size // 2
    # torch's "reflect" padding is scipy's "mirror"; the kernel is cut at the radius.
    expected = gaussian_filter(x.double().numpy() / 255, sigma=(0, 0, 1.5, 1.5), mode="mirror", truncate=radius / 1.5)
    np.testing.assert_allclose(pixels.double().numpy(), expected, atol=1e-5, rtol=0)


def test_blur_kernel_is_odd_and_about_a_tenth_of_the_view():
    for size, k in [(8, 3), (32, 3), (64, 7), (96, 11), (224, 23)]:
        assert AugmentSpec(size).blur_kernel_size == k


@pytest.mark.parametrize(
    "spec",
    [
        AugmentSpec(32),
        AugmentSpec(32, crop_scale=(0.2, 1.0), flip_p=0, jitter_p=0, grayscale_p=0),
        plain(32, jitter_p=1.0),
        plain(32, blur_p=1.0, blur_sigma=(0.5, 2.0)),
    ],
    ids=["simclr", "crop", "jitter", "blur"],
)
def test_randomness_is_per_sample(digits_rgb, spec):
    torch.manual_seed(0)
    same = digits_rgb[7:8].expand(64, -1, -1, -1).contiguous()
    out = BatchAugment(spec, MEAN, STD)(same)
    distinct = torch.unique(out.flatten(1), dim=0).shape[0]
    assert distinct >= 60, f"only {distinct} distinct views of 64 copies"


@pytest.mark.parametrize("field,p", [("flip_p", 0.5), ("grayscale_p", 0.2), ("jitter_p", 0.8), ("solarize_p", 0.3)])
def test_each_sample_is_transformed_with_probability_p(digits_rgb, field, p):
    x = digits_rgb[:500]
    torch.manual_seed(1)
    out = BatchAugment(plain(32, **{field: p}), MEAN, STD)(x)
    base = BatchAugment(plain(32), MEAN, STD)(x)
    untouched = per_sample_max_abs(out, base) < 1e-4
    if field == "flip_p":
        transformed = per_sample_max_abs(out, base.flip(-1)) < 1e-4
    elif field == "grayscale_p":
        transformed = (per_sample_max_abs(unnormalize(out), unnormalize(out)[:, :1]) < 1e-5) & ~untouched
    else:
        transformed = ~untouched
    assert (untouched ^ transformed).all(), "every view is either untouched or transformed"
    rate = transformed.double().mean().item()
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / len(x)), f"{field}: rate {rate} vs p {p}"


def test_manual_seed_makes_runs_repeatable(digits_rgb):
    x = digits_rgb[:64]
    spec = AugmentSpec(32, blur_p=0.5, solarize_p=0.2)
    runs = {}
    for name, seed in [("a", 11), ("b", 11), ("c", 12)]:
        torch.manual_seed(seed)
        aug = BatchAugment(spec, MEAN, STD)
        runs[name] = torch.cat([aug(x), aug(x)])
    assert torch.equal(runs["a"], runs["b"])
    assert not torch.equal(runs["a"], runs["c"])


def test_channels_last_input_gives_the_same_views(digits_rgb):
    x = digits_rgb[:64]
    spec = AugmentSpec(24, blur_p=0.5, solarize_p=0.2)
    torch.manual_seed(5)
    contiguous = BatchAugment(spec, MEAN, STD)(x)
    torch.manual_seed(5)
    channels_last = BatchAugment(spec, MEAN, STD)(x.to(memory_format=torch.channels_last))
    assert torch.equal(contiguous, channels_last)


def _coordinate_image(n: int, side: int = 64) -> torch.Tensor:
    """R = 4*column, G = 4*row: a view's corner pixels tell which box it was cut from."""
    coords = torch.arange(side, dtype=torch.int64) * 4
    image = torch.zeros(3, side, side, dtype=torch.int64)
    image[0] = coords.view(1, side)
    image[1] = coords.view(side, 1)
    return image.to(torch.uint8).expand(n, -1, -1, -1).contiguous()


def _visible_boxes(out: torch.Tensor) -> tuple[torch.Tensor, ...]:
    pixels = unnormalize(out) * 255 / 4
    x0, x1 = pixels[:, 0, 0, 0].round(), pixels[:, 0, 0, -1].round()
    y0, y1 = pixels[:, 1, 0, 0].round(), pixels[:, 1, -1, 0].round()
    return x0, x1, y0, y1


def _reference_crop_sizes(n: int, side: int, scale, ratio, rng: np.random.Generator) -> np.ndarray:
    """torchvision's RandomResizedCrop size rule (10 tries, else the whole image), in numpy."""
    area = side * side * rng.uniform(scale[0], scale[1], size=(n, 10))
    r = np.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1]), size=(n, 10)))
    w, h = np.round(np.sqrt(area * r)), np.round(np.sqrt(area / r))
    fits = (w <= side) & (h <= side)
    first = fits.argmax(1)
    rows = np.arange(n)
    w = np.where(fits.any(1), w[rows, first], side)
    h = np.where(fits.any(1), h[rows, first], side)
    return w * h / side**2


def test_crop_box_respects_fixed_scale_and_ratio():
    torch.manual_seed(2)
    out = BatchAugment(
        AugmentSpec(16, crop_scale=(0.5, 0.5), crop_ratio=(1.0, 1.0), flip_p=0, jitter_p=0, grayscale_p=0), MEAN, STD
    )(_coordinate_image(200))
    x0, x1, y0, y1 = _visible_boxes(out)
    w, h = x1 - x0 + 1, y1 - y0 + 1
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= 63).all() and (y1 <= 63).all()
    assert torch.equal(w, h)
    assert ((w * h / 64**2 - 0.5).abs() < 0.02).all()
    assert len(torch.unique(x0)) > 10 and len(torch.unique(y0)) > 10  # the position is random too


def test_crop_area_distribution_matches_torchvision_rule():
    scale, ratio, n = (0.2, 1.0), (3 / 4, 4 / 3), 2000
    torch.manual_seed(6)
    out = BatchAugment(
        AugmentSpec(16, crop_scale=scale, crop_ratio=ratio, flip_p=0, jitter_p=0, grayscale_p=0), MEAN, STD
    )(_coordinate_image(n))
    x0, x1, y0, y1 = _visible_boxes(out)
    w, h = x1 - x0 + 1, y1 - y0 + 1
    fraction = (w * h / 64**2).numpy()
    aspect = (w / h).numpy()
    assert fraction.min() > scale[0] - 0.02 and fraction.max() <= 1.0
    assert aspect.min() > ratio[0] - 0.05 and aspect.max() < ratio[1] + 0.05
    reference = _reference_crop_sizes(200_000, 64, scale, ratio, np.random.default_rng(0))
    assert abs(fraction.mean() - reference.mean()) < 4 * reference.std() / math.sqrt(n)
    assert abs(np.quantile(fraction, 0.25) - np.quantile(reference, 0.25)) < 0.03
    assert abs(np.quantile(fraction, 0.75) - np.quantile(reference, 0.75)) < 0.03


def test_normalize_eval_path(digits_rgb):
    x = digits_rgb[:16].to(memory_format=torch.channels_last)
    out = normalize(x, MEAN, STD)
    mean, std = _stats()
    assert out.dtype == torch.float32 and out.shape == x.shape
    torch.testing.assert_close(out.double(), (x.double() / 255 - mean) / std, atol=1e-6, rtol=0)
    assert torch.equal(out, normalize(x, MEAN, STD))


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(size=0), "size"),
        (dict(size=32.0), "size"),
        (dict(crop_scale=(0.0, 1.0)), "crop_scale"),
        (dict(crop_scale=(0.9, 0.5)), "crop_scale"),
        (dict(crop_scale=(0.2, 1.5)), "crop_scale"),
        (dict(crop_ratio=(2.0, 1.0)), "crop_ratio"),
        (dict(flip_p=1.5), "flip_p"),
        (dict(jitter_p=-0.1), "jitter_p"),
        (dict(grayscale_p="0.2"), "grayscale_p"),
        (dict(blur_p=2), "blur_p"),
        (dict(solarize_p=float("nan")), "solarize_p"),
        (dict(jitter_strength=3.0), "jitter_strength"),
        (dict(blur_sigma=(0.0, 2.0)), "blur_sigma"),
    ],
)
def test_bad_spec_raises_config_error(kwargs, field):
    fields = dict(size=32)
    fields.update(kwargs)
    with pytest.raises(ConfigError) as err:
        AugmentSpec(**fields)
    assert err.value.field == field and field in str(err.value)


def test_bad_images_and_stats_raise_config_error(digits_rgb):
    aug = BatchAugment(AugmentSpec(32), MEAN, STD)
    for bad in [digits_rgb[:4].float(), digits_rgb[:4, :1], digits_rgb[0]]:
        with pytest.raises(ConfigError, match="images"):
            aug(bad)
        with pytest.raises(ConfigError, match="images"):
            normalize(bad, MEAN, STD)
    with pytest.raises(ConfigError, match="std"):
        BatchAugment(AugmentSpec(32), MEAN, (0.2, 0.0, 0.3))
    with pytest.raises(ConfigError, match="mean"):
        normalize(digits_rgb[:4], (0.5, 0.5), STD)
    with pytest.raises(ConfigError, match="spec"):
        BatchAugment({"size": 32}, MEAN, STD)


def test_trial_augment_overrides_every_view_of_every_method():
    """`augment:` reaches every view the trainer builds, and only the named fields change."""
    from methods import METHODS
    from methods.views import with_overrides
    from suite.config import make_config
    from suite.trial.train import build_model

    for name in METHODS:
        cfg = make_config(
            {
                "method": name,
                "backbone": "test_resnet",
                "image_size": 16,
                "augment": {"flip_p": 0.0, "crop_scale": [0.5, 1.0]},
            }
        )
        original = build_model(cfg).view_specs(cfg.image_size)
        changed = with_overrides(original, cfg.augment)
        assert len(changed) == len(original)
        for before, after in zip(original, changed):
            assert after.flip_p == 0.0 and after.crop_scale == (0.5, 1.0)
            untouched = {k: v for k, v in before.model_dump().items() if k not in ("flip_p", "crop_scale")}
            assert {k: after.model_dump()[k] for k in untouched} == untouched


@pytest.mark.parametrize(
    "augment,field",
    [
        ({"flipp": 0.0}, "augment.flipp"),
        ({"size": 8}, "augment.size"),
        ({"flip_p": 1.5}, "augment.flip_p"),
        ({"crop_scale": [0.9, 0.2]}, "augment.crop_scale"),
    ],
)
def test_bad_trial_augment_is_refused_naming_the_field(augment, field):
    from suite.config import make_config

    with pytest.raises(ConfigError) as err:
        make_config({"augment": augment})
    assert err.value.field == field and field in str(err.value)
