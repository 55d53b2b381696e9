"""The paper's mechanism as exact checks on one fixed batch at a fixed checkpoint (claims C2b and C3).

Why not a regression across epochs: between two epochs the loss falls, the batch
changes and the norms change together, so a slope of gradient on norm mixes the
law with everything else that moved. Both checks here change *only* the norm, on
the same network, batch and views, and compare against what the theory says exactly.

* **C2b, the 1/||z|| law** (`gradient_identity_deviation`). For a loss L(z) = f(z / ||z||)
  the gradient at z is (I - u u^T) grad f(u) / ||z|| with u = z / ||z||, so
  ``dL/dz_i * ||z_i||`` equals the gradient at the normalized embedding ``dL/du_i``
  *as a vector*, sample by sample. Two backward passes -- the embeddings as they are,
  then rescaled to unit norm right before the loss -- give both sides; the largest
  relative deviation over the batch is float rounding (about 1e-6 in float32) for a
  loss that normalizes its embedding and of order 1 for one that does not.
* **C3, the effective step ~ 1/||z||^2** (`step_turn_slopes`). Scale the last layer of
  the embedding path (weight and bias) by a: the embedding becomes a z, the loss and
  every direction stay the same, and the gradient at the embedding becomes g / a.
  One plain-SGD step of that layer alone moves the embedding by -eta (g / a)(h.h + 1)
  (summed over the batch), so it turns by an angle proportional to a^-2: the slope of
  log(mean angle) on log a is -2 (with GradScale p, which multiplies the gradient by
  ||z||^p, it is p - 2). The step is tiny (eta chosen so that the embeddings move by
  ``RELATIVE_MOVE`` of their norm at a = 1, the same eta for every a) and the moved
  embeddings are computed in float64 from the layer's input, so the finite-step
  correction and rounding stay far below the tolerance the claim judges with. Layers
  below get the same gradient whatever a ((a W)^T (g / a) = W^T g), so their share of a
  real step does not depend on a: the layer is stepped alone. **Placebo**: scale the embedding by a after the
  layer (a constant factor no parameter carries): its norm changes exactly as before,
  but the chain rule cancels the factor and the turn does not change (theory slope 0).
  A test that accepts the placebo as the law cannot tell the mechanism from a
  coincidence of norms.

Under momentum SGD the first step from an empty buffer is the plain step; later, the
buffer carries earlier gradients that do not scale with a, and that part of a step turns
the embedding as a^-1. Adam divides each coordinate's step by its running
gradient scale, so its step does not shrink with a: the turn scales as a^-1 (slope -1).
Weight decay adds a radial shrink that turns nothing. The checks run in evaluation
mode (BatchNorm statistics fixed, no queue or centre updates) without autocast, so
they leave the trial untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from methods.base import SSLMethod

ALPHAS = (1.0, 0.5, 2.0)  # 1 first: it sets the probe step
RELATIVE_MOVE = 1e-6  # the probe step at a = 1 moves the embeddings by this fraction of their norm


def _eval_forward(method: SSLMethod, views: list[Tensor], tap: Callable[[Tensor], Tensor]) -> Tensor:
    """The loss of ``views`` in evaluation mode, in float32, with ``tap`` at the embedding."""
    device_type = views[0].device.type
    with method.embedding_tap(tap), torch.autocast(device_type, enabled=False), torch.enable_grad():
        return method(views).loss


class _evaluation_mode:
    """Evaluation mode inside the block (fixed BatchNorm statistics, no queue / centre updates)."""

    def __init__(self, method: SSLMethod) -> None:
        self.method = method

    def __enter__(self) -> None:
        self.modes = [(m, m.training) for m in self.method.modules()]
        self.method.eval()

    def __exit__(self, *exc) -> None:
        for m, training in self.modes:
            m.training = training


def _recorder(store: list[Tensor], transform: Callable[[Tensor], Tensor] | None = None):
    def tap(z: Tensor) -> Tensor:
        out = transform(z) if transform is not None else z
        store.append(out)
        return out

    return tap


def gradient_identity_deviation(method: SSLMethod, views: list[Tensor]) -> float:
    """Largest relative deviation, over every embedding row of the batch, of
    ``dL/dz_i * ||z_i||`` from ``dL/du_i`` at ``u_i = z_i / ||z_i||`` (C2b; 0 up to rounding
    for a loss that L2-normalizes its embedding). NaN when no embedding gets a gradient."""
    with _evaluation_mode(method):
        raw: list[Tensor] = []
        loss = _eval_forward(method, views, _recorder(raw))
        live = [z for z in raw if z.requires_grad]
        if not live:
            return math.nan
        grads = torch.autograd.grad(loss, live, allow_unused=True)
        unit: list[Tensor] = []
        loss_u = _eval_forward(
            method, views, _recorder(unit, lambda z: z * (1.0 / z.detach().norm(dim=-1, keepdim=True)))
        )
        live_u = [u for u in unit if u.requires_grad]
        grads_u = torch.autograd.grad(loss_u, live_u, allow_unused=True)
    worst = 0.0
    for z, g, g_u in zip(live, grads, grads_u):
        if g is None or g_u is None:
            continue
        z, g, g_u = z.detach().double(), g.double(), g_u.double()
        scaled = g * z.norm(dim=-1, keepdim=True)
        gap = (scaled - g_u).norm(dim=-1)
        size = torch.maximum(g_u.norm(dim=-1), scaled.norm(dim=-1))
        rel = torch.where(size > 0, gap / size.clamp_min(1e-300), torch.zeros_like(gap))
        worst = max(worst, float(rel.max()))
    return worst


def _angles(before: Tensor, after: Tensor) -> Tensor:
    """Per-row angle between two float64 embedding matrices: 2 asin(|a - b| / 2) of the unit
    vectors, exact for the tiny angles of a probe step, where arccos of the cosine is not."""
    a = before / before.norm(dim=-1, keepdim=True)
    b = after / after.norm(dim=-1, keepdim=True)
    return 2.0 * torch.asin(((a - b).norm(dim=-1) / 2.0).clamp(max=1.0))


def _slope(alphas: Sequence[float], values: Sequence[float]) -> float:
    x = torch.log(torch.tensor(list(alphas), dtype=torch.float64))
    y = torch.log(torch.tensor(list(values), dtype=torch.float64))
    if not torch.isfinite(y).all():
        return math.nan
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc * xc).sum())


def _layer_step(
    method: SSLMethod, views: list[Tensor], alpha: float, placebo: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """(layer input h, weight, bias, and the loss gradients of weight and bias), float64, at scale
    ``alpha``: the layer's parameters scaled by it, or (placebo) the embedding after the layer."""
    layer = method.embedding_layer()
    if not isinstance(layer, torch.nn.Linear):
        raise TypeError(f"{method.name}.embedding_layer() must be an nn.Linear, not {type(layer).__name__}")
    inputs: list[Tensor] = []
    hook = layer.register_forward_hook(lambda module, args, output: inputs.append(args[0].detach()))
    params = [layer.weight] + ([layer.bias] if layer.bias is not None else [])
    saved = [p.detach().clone() for p in params]
    try:
        if not placebo:
            with torch.no_grad():
                for p in params:
                    p.mul_(alpha)
        loss = _eval_forward(method, views, (lambda z: z * alpha) if placebo else (lambda z: z))
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    finally:
        hook.remove()
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
    if not inputs or grads[0] is None:
        return None
    scale = 1.0 if placebo else alpha
    weight = saved[0].double() * scale
    bias = saved[1].double() * scale if len(saved) > 1 else torch.zeros(weight.shape[0], dtype=torch.float64)
    grad_b = grads[1] if len(grads) > 1 and grads[1] is not None else torch.zeros_like(bias)
    return torch.cat([h.double() for h in inputs]), weight, bias, grads[0].double(), grad_b.double()


def _turns(method: SSLMethod, views: list[Tensor], alphas: Sequence[float], placebo: bool) -> list[float]:
    """Mean angle the embeddings turn in one plain-SGD step of the embedding layer alone, per a.

    Only that layer moves, so its input h is fixed and the embedding after the step is
    (W - eta dW) h + (b - eta db): computed in float64 from the layer's input, no second forward
    (a placebo's constant factor turns nothing and is left out). eta is set once, at a = 1, so that
    the embeddings move by ``RELATIVE_MOVE`` of their norm, and is the same for every a."""
    eta, turns = None, []
    for alpha in alphas:
        step = _layer_step(method, views, alpha, placebo)
        if step is None:
            return [math.nan] * len(alphas)
        h, weight, bias, grad_w, grad_b = step
        before = h @ weight.T + bias
        move = -(h @ grad_w.T + grad_b)  # the displacement per unit eta
        if eta is None:
            if alpha != 1.0:
                raise ValueError("alphas must start with 1 (it sets the step)")
            size = float((move.norm(dim=-1) / before.norm(dim=-1).clamp_min(1e-300)).mean())
            if not size > 0:
                return [math.nan] * len(alphas)
            eta = RELATIVE_MOVE / size
        turns.append(float(_angles(before, before + eta * move).mean()))
    return turns


def step_turn_slopes(method: SSLMethod, views: list[Tensor], alphas: Sequence[float] = ALPHAS) -> tuple[float, float]:
    """(slope, placebo slope) of log(mean turn of one probe step) on log a (C3): the embedding
    layer's parameters scaled by a (theory: p - 2, with GradScale power p, else -2), and the
    embedding scaled by a after the layer (theory: 0). The layer is restored exactly."""
    with _evaluation_mode(method):
        real = _turns(method, views, alphas, placebo=False)
        placebo = _turns(method, views, alphas, placebo=True)
    return _slope(alphas, real), _slope(alphas, placebo)


def theory_slope(gradscale: float | None) -> float:
    """C3's prediction for the real manipulation: -2, or p - 2 under GradScale with power p."""
    return -2.0 + (gradscale or 0.0)
