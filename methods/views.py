"""View recipes: what each augmented view of an image looks like.

A method declares its views as a list of :class:`AugmentSpec` (SimCLR's
symmetric pair, BYOL's asymmetric pair, DINO's global and local crops); the
trainer turns each into a batched augmentation on the training device. The
recipe is plain data, validated once, so the method layer needs no image code.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from methods.errors import ConfigError, config_error, suggestion

Probability = Annotated[float, Field(strict=True, ge=0.0, le=1.0)]


def _ordered_pair(upper: float):
    def check(value: tuple[float, float]) -> tuple[float, float]:
        lo, hi = value
        if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 < lo <= hi <= upper):
            bound = "1" if upper == 1.0 else "inf"
            raise ValueError(f"(lo, hi) with 0 < lo <= hi{' <= ' + bound if upper == 1.0 else ''}")
        return value

    return AfterValidator(check)


class AugmentSpec(BaseModel):
    """One view's augmentation recipe (SimCLR/BYOL-style).

    ``jitter_strength`` is SimCLR's ``s``: brightness, contrast and saturation vary by
    ``0.8*s`` and hue by ``0.2*s`` (hue must stay within half a turn, so s <= 2.5).
    The fields after ``solarize_p`` are extensions with the usual literature defaults.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: Annotated[int, Field(strict=True, ge=1, description="output side in pixels")]
    crop_scale: Annotated[tuple[float, float], _ordered_pair(1.0)] = (0.2, 1.0)
    flip_p: Probability = 0.5
    jitter_strength: Annotated[float, Field(strict=True, ge=0.0, le=2.5)] = 0.5
    jitter_p: Probability = 0.8
    grayscale_p: Probability = 0.2
    blur_p: Probability = 0.0
    solarize_p: Probability = 0.0
    crop_ratio: Annotated[tuple[float, float], _ordered_pair(math.inf)] = (3.0 / 4.0, 4.0 / 3.0)
    blur_sigma: Annotated[tuple[float, float], _ordered_pair(math.inf)] = (0.1, 2.0)
    solarize_threshold: Probability = 0.5

    def __init__(self, size: Any = None, /, **fields: Any) -> None:
        if size is not None:
            fields["size"] = size
        try:
            super().__init__(**fields)
        except ValidationError as err:
            raise config_error(err, AugmentSpec) from None

    @property
    def blur_kernel_size(self) -> int:
        """Odd kernel side of about 10% of the view (SimCLR), at least 3."""
        k = max(3, int(round(0.1 * self.size)))
        return k if k % 2 == 1 else k + 1


def default_view_specs(image_size: int, num_views: int = 2, **overrides: Any) -> list[AugmentSpec]:
    """SimCLR-style symmetric views (the norm paper's CIFAR recipe); Gaussian blur
    only above 64 px, as SimCLR omits it on CIFAR-sized images."""
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
        raise ConfigError("image_size", image_size, "a positive integer")
    kwargs: dict[str, Any] = dict(
        size=image_size,
        crop_scale=(0.2, 1.0),
        flip_p=0.5,
        jitter_strength=0.5,
        jitter_p=0.8,
        grayscale_p=0.2,
        blur_p=0.5 if image_size > 64 else 0.0,
        solarize_p=0.0,
    )
    kwargs.update(overrides)
    return [AugmentSpec(**kwargs) for _ in range(num_views)]


# Fields a trial may override on every view; the size is the method's choice
# (DINO's local crops are smaller than its global ones).
OVERRIDABLE_FIELDS: tuple[str, ...] = tuple(f for f in AugmentSpec.model_fields if f != "size")


def with_overrides(specs: list[AugmentSpec], overrides: dict[str, Any]) -> list[AugmentSpec]:
    """The method's view recipes with ``overrides`` applied to every view and
    validated again (a dataset-specific change, e.g. no flips for digits)."""
    if not overrides:
        return specs
    unknown = sorted(set(overrides) - set(OVERRIDABLE_FIELDS))
    if unknown:
        raise ConfigError(
            f"augment.{unknown[0]}",
            overrides[unknown[0]],
            OVERRIDABLE_FIELDS,
            hint="; ".join(p for p in ("unknown augmentation field", suggestion(unknown[0], OVERRIDABLE_FIELDS)) if p),
        )
    out = []
    for spec in specs:
        try:
            out.append(AugmentSpec(**{**spec.model_dump(), **overrides}))
        except ConfigError as err:
            raise ConfigError(f"augment.{err.field}", err.value, err.allowed) from None
    return out
