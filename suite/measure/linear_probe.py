"""Linear probe: a linear classifier trained on frozen, precomputed backbone features.

Features are standardized with the train split's mean/std (so one learning rate
fits every backbone, whatever its feature scale: every non-constant feature is
standardized, however small its values, which makes the probe invariant to
rescaling features), the layer starts at zero
(softmax regression is convex, so no random init is needed) and the mini-batch
order comes from a private ``torch.Generator(seed)``: the result is a
deterministic function of the inputs and the seed, and the global RNG is untouched.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from suite.core.errors import ConfigError

__all__ = ["linear_probe"]

_EVAL_CHUNK = 8192
_CONSTANT_RELATIVE_STD = 1e-6


def _check_labels(labels: Tensor, n: int, num_classes: int, field: str) -> None:
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ConfigError(field, tuple(labels.shape), f"a 1-D tensor of length {n}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ConfigError(field, str(labels.dtype), "an integer dtype")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        raise ConfigError(field, f"range [{lo}, {hi}]", f"class indices in [0, {num_classes - 1}]")


def _validate(
    train_f: Tensor,
    train_y: Tensor,
    test_f: Tensor,
    test_y: Tensor,
    num_classes: int,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
) -> None:
    def positive_int(name: str, v: object) -> None:
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(name, v, "an integer >= 1")

    positive_int("num_classes", num_classes)
    positive_int("epochs", epochs)
    positive_int("batch_size", batch_size)
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise ConfigError("lr", lr, "a number > 0")
    if not isinstance(weight_decay, (int, float)) or not weight_decay >= 0:
        raise ConfigError("weight_decay", weight_decay, "a number >= 0")
    if train_f.ndim != 2 or train_f.shape[0] == 0:
        raise ConfigError("train_features", tuple(train_f.shape), "a non-empty 2-D tensor [N_train, D]")
    if test_f.ndim != 2 or test_f.shape[0] == 0 or test_f.shape[1] != train_f.shape[1]:
        raise ConfigError("test_features", tuple(test_f.shape), f"a non-empty 2-D tensor [N_test, {train_f.shape[1]}]")
    _check_labels(train_y, train_f.shape[0], num_classes, "train_labels")
    _check_labels(test_y, test_f.shape[0], num_classes, "test_labels")


def linear_probe(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    *,
    num_classes: int,
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> dict[str, float | Tensor]:
    """Train ``Linear(D, num_classes)`` with AdamW + per-step cosine decay and cross-entropy.

    Returns ``{"top1": test accuracy in [0, 1], "predictions": int64 CPU tensor [N_test],
    "train_top1": accuracy on the train features, "final_loss": mean loss of the last epoch}``.
    ``device`` defaults to the device of ``train_features``.
    """
    _validate(
        train_features, train_labels, test_features, test_labels, num_classes, epochs, batch_size, lr, weight_decay
    )
    device = torch.device(device) if device is not None else train_features.device
    with torch.no_grad():
        x_train = train_features.detach().to(device=device, dtype=torch.float32)
        mean = x_train.double().mean(0)
        std = x_train.double().std(0, correction=0)
        # A feature is constant only when its values are all equal, whatever its scale: a cut-initialized
        # network's features can all sit near 1e-9 and are still informative. std == 0 catches exact
        # constants; std <= 1e-6 * |mean| catches a constant plus float32 rounding (unit roundoff 6e-8,
        # so a spread of a few ulps of the mean is rounding, not signal). Both sides scale together,
        # so the rule (and the probe) is invariant to rescaling any feature. Constant features stay 0.
        varying = std > _CONSTANT_RELATIVE_STD * mean.abs()
        std = torch.where(varying, std, torch.ones_like(std))
        mean, std = mean.float(), std.float()
        x_train = (x_train - mean) / std
        y_train = train_labels.to(device=device, dtype=torch.int64)

    # skip_init: nn.Linear's default init would draw from the global RNG.
    layer = torch.nn.utils.skip_init(torch.nn.Linear, x_train.shape[1], num_classes, device=device)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=lr, weight_decay=weight_decay)
    n = x_train.shape[0]
    steps_per_epoch = -(-n // batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)

    epoch_loss = torch.zeros((), device=device)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(device)
        epoch_loss = torch.zeros((), device=device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(layer(x_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            epoch_loss += loss.detach() * idx.numel()

    @torch.no_grad()
    def predict(features: Tensor) -> Tensor:
        out = []
        for start in range(0, features.shape[0], _EVAL_CHUNK):
            chunk = features[start : start + _EVAL_CHUNK].to(device=device, dtype=torch.float32)
            out.append(layer((chunk - mean) / std).argmax(dim=1).cpu())
        return torch.cat(out)

    test_pred = predict(test_features.detach())
    train_pred = predict(train_features.detach())
    return {
        "top1": float((test_pred == test_labels.cpu()).double().mean()),
        "predictions": test_pred,
        "train_top1": float((train_pred == train_labels.cpu()).double().mean()),
        "final_loss": float(epoch_loss / n),
    }
