"""Linear probes: a linear classifier trained on frozen, precomputed backbone features.

Both probes standardize the features with the training set's mean and std (so one
set of hyper-parameters fits every backbone, whatever its feature scale: every
non-constant feature is standardized, however small its values, which makes the
probes invariant to rescaling features) and start from zero weights (softmax
regression is convex, so no random init is needed). Their randomness comes from a
private ``torch.Generator(seed)``: each result is a deterministic function of the
inputs and the seed, and the global RNG is untouched.

* ``lbfgs`` (the default, `lbfgs_probe`): multinomial logistic regression -- mean
  cross-entropy plus ``l2 / 2 * ||W||^2`` (the bias is not penalized) -- solved
  full-batch with L-BFGS and a strong-Wolfe line search, on the features' device.
  ``l2`` is chosen from `L2_GRID` on a stratified validation split of the
  *training* features (warm-started from the strongest penalty down), then the
  probe is refit on the whole training set with that ``l2``.
* ``adamw`` (`adamw_probe`): mini-batch AdamW with a per-step cosine decay for a
  fixed number of epochs; every committed result before the ``lbfgs`` probe was
  measured with it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from suite.config.model import LINEAR_PROBES
from suite.core.errors import ConfigError

__all__ = ["L2_GRID", "adamw_probe", "lbfgs_probe", "linear_probe"]

# Penalties of the mean objective, strongest first (scikit-learn's C=1 is l2 = 1 / N_train).
L2_GRID = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
VAL_FRACTION = 0.2
# The final fit stops at max |gradient| 3e-5 of the mean objective, tighter than scikit-learn's default
# tol (1e-4): at 1e-4 two fits of the same objective from float32 inputs that differ only in rounding
# (features scaled by 1e-9, then standardized) stopped at different points and disagreed on test samples.
_TOLERANCE = 3e-5
_MAX_ITER = 300
# The fits that only rank penalties stop earlier; at 3e-3 they stopped so early that weak penalties
# looked no better and the search settled on too strong a one (trained digits features: 346 vs 353 of 360).
_SELECTION_TOLERANCE = 1e-3
_SELECTION_MAX_ITER = 50
_HISTORY = 10
_PATIENCE = 2  # grid values without a better validation score before the search stops
_EVAL_CHUNK = 8192
_MOMENT_BLOCK = 4096  # rows per block of the moment sums (their float64 copy stays small)
_CONSTANT_RELATIVE_STD = 1e-6


def _check_labels(labels: Tensor, n: int, num_classes: int, field: str) -> None:
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ConfigError(field, tuple(labels.shape), f"a 1-D tensor of length {n}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ConfigError(field, str(labels.dtype), "an integer dtype")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        raise ConfigError(field, f"range [{lo}, {hi}]", f"class indices in [0, {num_classes - 1}]")


def _positive_int(name: str, v: object) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ConfigError(name, v, "an integer >= 1")


def _validate_data(train_f: Tensor, train_y: Tensor, test_f: Tensor, test_y: Tensor, num_classes: int) -> None:
    _positive_int("num_classes", num_classes)
    if train_f.ndim != 2 or train_f.shape[0] == 0:
        raise ConfigError("train_features", tuple(train_f.shape), "a non-empty 2-D tensor [N_train, D]")
    if test_f.ndim != 2 or test_f.shape[0] == 0 or test_f.shape[1] != train_f.shape[1]:
        raise ConfigError("test_features", tuple(test_f.shape), f"a non-empty 2-D tensor [N_test, {train_f.shape[1]}]")
    _check_labels(train_y, train_f.shape[0], num_classes, "train_labels")
    _check_labels(test_y, test_f.shape[0], num_classes, "test_labels")


def _scale(mean: Tensor, std: Tensor) -> Tensor:
    """The std that standardizes each feature, 1 for a constant one.

    A feature is constant only when its values are all equal, whatever its scale: a cut-initialized
    network's features can all sit near 1e-9 and are still informative. std == 0 catches exact
    constants; std <= 1e-6 * |mean| catches a constant plus float32 rounding (unit roundoff 6e-8,
    so a spread of a few ulps of the mean is rounding, not signal). Both sides scale together,
    so the rule (and the probe) is invariant to rescaling any feature. Constant features stay 0.
    """
    varying = std > _CONSTANT_RELATIVE_STD * mean.abs()
    return torch.where(varying, std, torch.ones_like(std))


def linear_probe(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    *,
    num_classes: int,
    probe: str = "lbfgs",
    epochs: int = 100,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> dict[str, float | Tensor]:
    """The probe a trial's ``linear_probe`` names: `lbfgs_probe` or `adamw_probe` (which alone uses ``epochs``)."""
    if probe == "lbfgs":
        return lbfgs_probe(
            train_features, train_labels, test_features, test_labels, num_classes=num_classes, seed=seed, device=device
        )
    if probe == "adamw":
        return adamw_probe(
            train_features,
            train_labels,
            test_features,
            test_labels,
            num_classes=num_classes,
            epochs=epochs,
            seed=seed,
            device=device,
        )
    raise ConfigError("linear_probe", probe, " or ".join(LINEAR_PROBES))


# ---------------------------------------------------------------------------------------- L-BFGS


def stratified_split(labels: Tensor, fraction: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(fit indices, validation indices) of ``labels``: ``round(fraction * n_c)`` random samples of
    each class ``c`` go to validation, at least one and never all of a class with two or more."""
    labels = labels.cpu()
    n = labels.numel()
    shuffled = torch.randperm(n, generator=generator)
    by_class = shuffled[torch.sort(labels[shuffled], stable=True).indices]  # grouped by class, random within
    counts = torch.bincount(labels)
    starts = torch.cumsum(counts, 0) - counts
    sorted_labels = labels[by_class]
    rank = torch.arange(n) - starts[sorted_labels]
    n_val = torch.round(counts.double() * fraction).long().clamp(min=1).minimum(counts - 1)
    is_val = rank < n_val[sorted_labels]
    return by_class[~is_val], by_class[is_val]


def _standardized_copy(features: Tensor, order: Tensor, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """(rows ``order`` of the features standardized, as one new float32 tensor; mean; std).

    The sums accumulate in float64 block by block, without a float64 copy of the features: the
    mean exactly enough that an exactly constant feature has deviations of exactly 0 (the float32
    deviations from the float32 mean are then exact), the squared deviations in float32 within a
    block (a relative error ~1e-8 of the std, far below the constant-feature threshold).
    """
    x = features.detach().to(device)[order.to(device)].to(torch.float32)
    n = x.shape[0]
    total = torch.zeros(x.shape[1], dtype=torch.float64, device=device)
    for block in x.split(_MOMENT_BLOCK):
        total += block.double().sum(0)
    mean = (total / n).to(torch.float32)
    x.sub_(mean)
    total.zero_()
    for block in x.split(_MOMENT_BLOCK):
        total += block.square().sum(0).double()
    std = _scale(mean.double(), (total / n).sqrt()).to(torch.float32)
    x.div_(std)
    return x, mean, std


class _Softmax:
    """Mean cross-entropy + ``l2 / 2 * ||W||^2`` of the logits ``x @ W.T + b`` and its gradient,
    written by hand: one matrix product over ``x`` forward and one backward per evaluation, no
    autograd graph, nothing of size N x C kept between evaluations."""

    def __init__(self, x: Tensor, labels: Tensor) -> None:
        self.x, self.labels = x, labels[:, None]
        # The gradient residual.T @ x is a [C, N] x [N, D] product that MKL runs on one thread; on the CPU
        # it is split into one batch of rows per thread (a view, no copy) so torch.bmm runs them at once.
        self.splits = torch.get_num_threads() if x.device.type == "cpu" else 1
        self.bulk = x.shape[0] // self.splits * self.splits
        self.x_blocks = x[: self.bulk].view(self.splits, -1, x.shape[1]) if self.splits > 1 else None

    def weight_gradient(self, residual: Tensor, weight: Tensor, l2: float) -> Tensor:
        """``residual.T @ x + l2 * weight``."""
        if self.x_blocks is None:
            return torch.addmm(weight, residual.T, self.x, beta=l2)
        blocks = residual[: self.bulk].view(self.splits, -1, residual.shape[1]).transpose(1, 2)
        grad = torch.bmm(blocks, self.x_blocks).sum(0).add_(weight, alpha=l2)
        if self.bulk < self.x.shape[0]:
            grad.addmm_(residual[self.bulk :].T, self.x[self.bulk :])
        return grad

    def fit(self, weight: Tensor, bias: Tensor, l2: float, tolerance: float, max_iter: int) -> int:
        """Minimize in place from the given weights; returns the number of objective evaluations."""
        x, labels, n = self.x, self.labels, self.x.shape[0]
        evaluations = 0

        def closure() -> Tensor:
            nonlocal evaluations
            evaluations += 1
            # log-softmax by hand: on [N, C] with C ~ 10 torch's fused kernel is several times slower.
            logits = torch.addmm(bias, x, weight.T)
            logits.sub_(logits.amax(1, keepdim=True))
            true_logit = logits.gather(1, labels)
            exp = logits.exp_()
            total = exp.sum(1, keepdim=True)
            cross_entropy = (total.log().sum() - true_logit.sum()) / n
            residual = exp.mul_(total.reciprocal_().div_(n))  # softmax / n ...
            residual.scatter_(1, labels, residual.gather(1, labels).sub_(1 / n))  # ... - onehot / n
            weight.grad = self.weight_gradient(residual, weight, l2)  # d objective / d W
            bias.grad = residual.sum(0)
            return cross_entropy + 0.5 * l2 * weight.square().sum()

        optimizer = torch.optim.LBFGS(
            [weight, bias],
            lr=1.0,
            max_iter=max_iter,
            tolerance_grad=tolerance,
            tolerance_change=1e-12,
            history_size=_HISTORY,
            line_search_fn="strong_wolfe",
        )
        optimizer.step(closure)
        weight.grad = bias.grad = None
        return evaluations


def _scores(x: Tensor, labels: Tensor, weight: Tensor, bias: Tensor) -> tuple[float, float]:
    """(top-1, mean cross-entropy) of the standardized ``x``."""
    logits = torch.addmm(bias, x, weight.T)
    return float((logits.argmax(1) == labels).double().mean()), float(F.cross_entropy(logits, labels))


def lbfgs_probe(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    *,
    num_classes: int,
    seed: int = 0,
    device: str | torch.device | None = None,
    l2_grid: tuple[float, ...] = L2_GRID,
    val_fraction: float = VAL_FRACTION,
) -> dict[str, float | Tensor]:
    """Multinomial logistic regression on standardized features, full-batch L-BFGS.

    ``l2`` is the value of ``l2_grid`` (tried in the order given, strongest first, each fit
    warm-started from the previous one, stopping once two in a row score no better) with the
    best top-1 -- ties: the lower cross-entropy -- on a stratified ``val_fraction`` of the
    training features, fit on the rest; the probe is then refit on every training feature.
    Without a validation sample (every class a singleton) ``l2`` is ``l2_grid[0]``.

    Returns ``{"top1": test accuracy in [0, 1], "predictions": int64 CPU tensor [N_test],
    "train_top1", "final_loss": mean training cross-entropy, "l2": the chosen penalty,
    "val_top1": its validation top-1 (NaN without a validation split), "evaluations": objective
    evaluations in all}``. ``device`` defaults to the device of ``train_features``.
    """
    _validate_data(train_features, train_labels, test_features, test_labels, num_classes)
    if not l2_grid or not all(isinstance(v, (int, float)) and v > 0 for v in l2_grid):
        raise ConfigError("l2_grid", l2_grid, "a non-empty sequence of numbers > 0")
    if not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise ConfigError("val_fraction", val_fraction, "a number > 0 and < 1")
    device = torch.device(device) if device is not None else train_features.device
    fit_idx, val_idx = stratified_split(train_labels, val_fraction, torch.Generator().manual_seed(seed))
    n_fit = len(fit_idx)
    order = torch.cat([fit_idx, val_idx])  # fit rows first: both parts are views of one tensor
    with torch.no_grad():
        x, mean, std = _standardized_copy(train_features, order, device)
        y = train_labels.to(device=device, dtype=torch.int64)[order.to(device)]
    weight = torch.zeros(num_classes, x.shape[1], device=device)
    bias = torch.zeros(num_classes, device=device)
    evaluations = 0
    l2, val_top1 = float(l2_grid[0]), math.nan
    if len(val_idx) > 0:
        selection = _Softmax(x[:n_fit], y[:n_fit])
        x_val, y_val = x[n_fit:], y[n_fit:]
        best, since_best = None, 0
        for candidate in l2_grid:
            evaluations += selection.fit(weight, bias, float(candidate), _SELECTION_TOLERANCE, _SELECTION_MAX_ITER)
            top1, loss = _scores(x_val, y_val, weight, bias)
            if best is None or (top1, -loss) > best[0]:
                best, since_best = ((top1, -loss), float(candidate), weight.clone(), bias.clone()), 0
            else:
                since_best += 1
                if since_best >= _PATIENCE:
                    break
        (val_top1, _), l2, weight, bias = best
    evaluations += _Softmax(x, y).fit(weight, bias, l2, _TOLERANCE, _MAX_ITER)

    @torch.no_grad()
    def predict(features: Tensor) -> Tensor:
        out = []
        for start in range(0, features.shape[0], _EVAL_CHUNK):
            chunk = features[start : start + _EVAL_CHUNK].to(device=device, dtype=torch.float32)
            out.append(torch.addmm(bias, (chunk - mean) / std, weight.T).argmax(dim=1).cpu())
        return torch.cat(out)

    test_pred = predict(test_features.detach())
    with torch.no_grad():
        train_top1, final_loss = _scores(x, y, weight, bias)
    return {
        "top1": float((test_pred == test_labels.cpu()).double().mean()),
        "predictions": test_pred,
        "train_top1": train_top1,
        "final_loss": final_loss,
        "l2": l2,
        "val_top1": val_top1,
        "evaluations": evaluations,
    }


# ---------------------------------------------------------------------------------------- AdamW


def _validate_adamw(epochs: int, batch_size: int, lr: float, weight_decay: float) -> None:
    _positive_int("epochs", epochs)
    _positive_int("batch_size", batch_size)
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise ConfigError("lr", lr, "a number > 0")
    if not isinstance(weight_decay, (int, float)) or not weight_decay >= 0:
        raise ConfigError("weight_decay", weight_decay, "a number >= 0")


def adamw_probe(
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
    """Train ``Linear(D, num_classes)`` with AdamW + per-step cosine decay and cross-entropy;
    the mini-batch order comes from ``torch.Generator(seed)``.

    Returns ``{"top1": test accuracy in [0, 1], "predictions": int64 CPU tensor [N_test],
    "train_top1": accuracy on the train features, "final_loss": mean loss of the last epoch}``.
    ``device`` defaults to the device of ``train_features``.
    """
    _validate_adamw(epochs, batch_size, lr, weight_decay)
    _validate_data(train_features, train_labels, test_features, test_labels, num_classes)
    device = torch.device(device) if device is not None else train_features.device
    with torch.no_grad():
        x_train = train_features.detach().to(device=device, dtype=torch.float32)
        mean = x_train.double().mean(0)
        std = _scale(mean, x_train.double().std(0, correction=0))
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
