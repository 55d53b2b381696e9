"""Norm dynamics of free embeddings (no network), after Draganov et al. (ICML 2025).

Why free embeddings: with the network removed, every embedding is its own
parameter, so what we see is the geometry of a cosine loss alone. For a loss of
z/||z|| the gradient is orthogonal to z and scales as 1/||z||; one SGD step
rotates z by about lr*sin(theta)/||z||^2 and adds to its norm
(||z + dz||^2 = ||z||^2 + ||dz||^2). So the steps to converge grow about as
r^2 with the initial norm r, GradScale (gradient times ||z||^p) turns that into
r^(2-p), and weight decay shrinks norms and so speeds late convergence.

Two experiments:

* :func:`steps_vs_norm` -- n pairs (x_i, y_i) of free points, random
  directions, all at norm r; plain SGD on L = -mean_i cos(x_i, y_i) until the
  mean cosine exceeds a threshold. ``lr`` applies to this *mean* loss, as in the
  paper's code (``torch.optim.SGD(lr=10)`` on the mean over n = 500): each point
  then moves with an effective per-pair step of lr / n (10 / 500 = 0.02), which
  keeps r = 0.25 stable (a relative step of ~0.3) while r = 10 needs ~10^4 steps.
  With lr on the sum, lr = 10 would throw a point of norm 0.25 to norm ~40 in
  one step and the experiment would measure that jump, not the 1/r^2 law.
* :func:`norms_by_class_frequency` -- free embeddings of classes seen with
  frequencies 1:2:4:8, trained with SimCLR's NT-Xent; frequent classes get more
  gradient steps and so, by the Pythagoras rule above, larger norms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from methods.interventions import grad_scale
from methods.simclr import nt_xent_loss

PAPER_RADII: tuple[float, ...] = (0.25, 0.5, 0.75, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
NOT_CONVERGED = -1


@dataclass(frozen=True)
class Variant:
    """One optimizer setting of the steps-vs-norm experiment."""

    name: str
    weight_decay: float = 0.0
    gradscale: float | None = None


# Weight decay 5e-4 (the paper's SimSiam/BYOL value): with lr 10 it shrinks every point by 0.5 % per step.
PAPER_VARIANTS: tuple[Variant, ...] = (
    Variant("plain SGD"),
    Variant("weight decay 5e-4", weight_decay=5e-4),
    Variant("GradScale p=1", gradscale=1.0),
    Variant("GradScale p=2", gradscale=2.0),
)


def random_directions(shape: tuple[int, ...], radius: float, seed: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Gaussian directions scaled to norm ``radius`` along the last dimension (uniform on the sphere)."""
    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(*shape, generator=g, dtype=dtype)
    return radius * z / z.norm(dim=-1, keepdim=True)


def make_pairs(
    n: int, dim: int, radius: float, seeds: Sequence[int], dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """``x, y`` of shape [S, n, dim], every row at norm ``radius``; seed s draws the same
    points whichever other seeds run alongside it."""
    pairs = [random_directions((2, n, dim), radius, seed, dtype) for seed in seeds]
    stacked = torch.stack(pairs)  # [S, 2, n, dim]
    return stacked[:, 0].contiguous(), stacked[:, 1].contiguous()


def alignment_loss(x: Tensor, y: Tensor, gradscale: float | None = None) -> Tensor:
    """-mean_i cos(x_i, y_i) per leading index ([S, n, d] -> [S]); GradScale acts on
    both points right before the cosine normalizes them, as at a method's embedding.

    Written out (no ``torch.nn.functional.cosine_similarity``): no epsilon clamp, and about half the
    autograd work, which is most of this simulation's time."""
    if gradscale is not None:
        x, y = grad_scale(x, gradscale), grad_scale(y, gradscale)
    cos = (x * y).sum(dim=-1) / (x.norm(dim=-1) * y.norm(dim=-1))
    return -cos.mean(dim=-1)


@dataclass(frozen=True)
class AlignmentRun:
    """Outcome of :func:`run_alignment`; ``steps`` is ``NOT_CONVERGED`` (-1) where the
    threshold was not reached within ``max_steps``. ``x``, ``y`` and ``mean_cos`` are
    each problem's state when it stopped (at convergence, or after ``max_steps``)."""

    steps: Tensor  # [S] int64
    mean_cos: Tensor  # [S]
    x: Tensor
    y: Tensor


def run_alignment(
    x: Tensor,
    y: Tensor,
    *,
    lr: float,
    max_steps: int,
    threshold: float = 0.999,
    weight_decay: float = 0.0,
    gradscale: float | None = None,
    on_done: Callable[[int], None] | None = None,
) -> AlignmentRun:
    """Plain SGD (no momentum) on :func:`alignment_loss` for S independent problems at once.

    The problems share one tensor (their losses are summed, so their gradients never
    mix); a problem stops as soon as its mean cosine exceeds ``threshold`` and leaves
    the tensor, so a sweep over radii costs the sum, not S times the maximum, of the
    steps. ``steps[s]`` is the number of SGD steps problem s took to get there.
    ``on_done(k)`` is told whenever k problems finish (a progress hook).
    """
    steps = torch.full((x.shape[0],), NOT_CONVERGED, dtype=torch.int64)
    out_x, out_y = x.detach().clone(), y.detach().clone()
    out_cos = torch.full((x.shape[0],), math.nan, dtype=x.dtype)
    active = torch.arange(x.shape[0])
    x, y = out_x.clone().requires_grad_(True), out_y.clone().requires_grad_(True)
    opt = torch.optim.SGD([x, y], lr=lr, momentum=0.0, weight_decay=weight_decay)
    for step in range(max_steps + 1):
        loss = alignment_loss(x, y, gradscale)
        mean_cos = -loss.detach()
        done = mean_cos > threshold
        steps[active[done]] = step
        if step == max_steps:
            done = torch.ones_like(done)
        if bool(done.any()):
            rows = active[done]
            out_x[rows], out_y[rows], out_cos[rows] = x.detach()[done], y.detach()[done], mean_cos[done]
            if on_done is not None:
                on_done(int(done.sum()))
            keep = ~done
            if not bool(keep.any()):
                break
            # Plain SGD keeps no state, so a fresh optimizer on the remaining rows is exact.
            active = active[keep]
            x = x.detach()[keep].clone().requires_grad_(True)
            y = y.detach()[keep].clone().requires_grad_(True)
            opt = torch.optim.SGD([x, y], lr=lr, momentum=0.0, weight_decay=weight_decay)
            loss = alignment_loss(x, y, gradscale)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
    return AlignmentRun(steps, out_cos, out_x, out_y)


def steps_vs_norm(
    radii: Sequence[float] = PAPER_RADII,
    seeds: Sequence[int] = (0, 1, 2),
    *,
    variants: Sequence[Variant] = PAPER_VARIANTS,
    n: int = 500,
    dim: int = 20,
    lr: float = 10.0,
    threshold: float = 0.999,
    max_steps: int = 20_000,
    dtype: torch.dtype = torch.float32,
    on_done: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Steps to mean cosine > ``threshold`` for every variant x radius x seed.

    One row per (variant, radius, seed): ``steps`` (``NOT_CONVERGED`` if the cap was
    hit), ``converged``, and the mean norm of the points when the run stopped. All
    radii and seeds of a variant run as one batch of independent problems
    (:func:`run_alignment`); float32 as in the paper's code.
    """
    grid = [(float(r), int(s)) for r in radii for s in seeds]
    rows = []
    for variant in variants:
        pairs = [make_pairs(n, dim, r, [s], dtype) for r, s in grid]
        x, y = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
        run = run_alignment(
            x,
            y,
            lr=lr,
            max_steps=max_steps,
            threshold=threshold,
            weight_decay=variant.weight_decay,
            gradscale=variant.gradscale,
            on_done=on_done,
        )
        final_norm = torch.cat([run.x, run.y], dim=1).norm(dim=-1).mean(dim=-1)
        for i, (radius, seed) in enumerate(grid):
            rows.append(
                dict(
                    variant=variant.name,
                    weight_decay=variant.weight_decay,
                    gradscale=variant.gradscale,
                    radius=radius,
                    seed=seed,
                    steps=int(run.steps[i]),
                    converged=bool(run.steps[i] != NOT_CONVERGED),
                    final_mean_cos=float(run.mean_cos[i]),
                    final_mean_norm=float(final_norm[i]),
                    n=n,
                    dim=dim,
                    lr=lr,
                    threshold=threshold,
                    max_steps=max_steps,
                )
            )
    return pd.DataFrame(rows)


def fit_exponent(radii: Sequence[float], steps: Sequence[float]) -> float:
    """Least-squares slope a of log(steps) = a log(r) + b (steps ∝ r^a)."""
    r, s = np.asarray(radii, dtype=float), np.asarray(steps, dtype=float)
    if len(np.unique(r)) < 2 or np.any(s <= 0) or np.any(r <= 0):
        return math.nan
    return float(np.polyfit(np.log(r), np.log(s), 1)[0])


def exponents(frame: pd.DataFrame) -> pd.DataFrame:
    """Fitted exponent per variant: pooled over seeds and per seed (min/max), on converged
    runs only; ``not_converged`` counts the runs left out."""
    rows = []
    for name, group in frame.groupby("variant", sort=False):
        ok = group[group["converged"] & (group["steps"] > 0)]
        per_seed = [fit_exponent(g["radius"], g["steps"]) for _, g in ok.groupby("seed")]
        per_seed = [a for a in per_seed if not math.isnan(a)]
        rows.append(
            dict(
                variant=name,
                exponent=fit_exponent(ok["radius"], ok["steps"]),
                exponent_seed_min=min(per_seed, default=math.nan),
                exponent_seed_max=max(per_seed, default=math.nan),
                runs=len(group),
                not_converged=int((~group["converged"]).sum()),
                radius_min=float(ok["radius"].min()) if len(ok) else math.nan,
                radius_max=float(ok["radius"].max()) if len(ok) else math.nan,
            )
        )
    return pd.DataFrame(rows)


def noisy_view(z: Tensor, noise: float, generator: torch.Generator) -> Tensor:
    """z plus Gaussian noise of relative size ``noise`` (times ||z||, with gradient).

    Relative noise keeps the loss a function of directions only (scaling z scales the
    view), so its gradient stays orthogonal to z and norms change only through the
    Pythagoras rule; absolute noise would reward large norms (less relative noise)
    and confound the frequency effect.
    """
    eps = torch.randn(z.shape, generator=generator, dtype=z.dtype)
    return z + noise * z.norm(dim=-1, keepdim=True) * eps / math.sqrt(z.shape[-1])


def norms_by_class_frequency(
    frequencies: Sequence[float] = (1, 2, 4, 8),
    seeds: Sequence[int] = (0, 1, 2),
    *,
    points_per_class: int = 64,
    dim: int = 16,
    batch_size: int = 64,
    steps: int = 1500,
    lr: float = 10.0,
    temperature: float = 0.5,
    noise: float = 0.2,
    on_seed: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Final mean norm per class when classes are drawn with the given relative frequencies.

    Setup (why): each sample is its own free embedding, at norm 1 in a random
    direction; every step draws a batch of ``batch_size`` distinct samples with
    probability proportional to their class frequency, makes two views of each
    (:func:`noisy_view`) and takes one SGD step (lr on the mean loss) on
    ``methods.simclr.nt_xent_loss``. A free embedding has no network to share
    parameters with its class, so the only way its class can matter is how often
    it is drawn -- which is the mechanism the paper's claim rests on (an embedding
    that gets more updates accumulates more norm). One row per (seed, class):
    mean and std of the final norms and the mean number of draws per sample.
    """
    freq = torch.as_tensor([float(f) for f in frequencies], dtype=torch.float64)
    labels = torch.arange(len(freq)).repeat_interleave(points_per_class)
    weights = freq[labels]
    rows = []
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed))
        z = random_directions((len(labels), dim), 1.0, seed).requires_grad_(True)
        opt = torch.optim.SGD([z], lr=lr, momentum=0.0)
        draws = torch.zeros(len(labels), dtype=torch.int64)
        for _ in range(steps):
            idx = torch.multinomial(weights, batch_size, replacement=False, generator=g)
            draws[idx] += 1
            batch = z[idx]
            loss = nt_xent_loss(noisy_view(batch, noise, g), noisy_view(batch, noise, g), temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        norms = z.detach().norm(dim=-1)
        for c, f in enumerate(freq.tolist()):
            mask = labels == c
            rows.append(
                dict(
                    seed=int(seed),
                    class_index=c,
                    frequency=f,
                    mean_norm=float(norms[mask].mean()),
                    std_norm=float(norms[mask].std()),
                    draws_per_sample=float(draws[mask].float().mean()),
                    points=int(mask.sum()),
                    steps=steps,
                    batch_size=batch_size,
                    lr=lr,
                    temperature=temperature,
                    noise=noise,
                    dim=dim,
                )
            )
        if on_seed is not None:
            on_seed(int(seed))
    return pd.DataFrame(rows)
