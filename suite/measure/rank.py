"""How many directions a representation uses, without labels: RankMe (Garrido et al., ICML 2023).

RankMe of a matrix Z (one row per sample) is the exponential of the Shannon entropy of its
singular values normalized to sum 1 (plus a small epsilon): the effective rank of Roy & Vetterli
(2007). A collapsed representation (every row the same direction) gives about 1, one whose
min(N, D) singular values are all equal gives min(N, D). Applied to the embedding it is RankMe;
applied to the backbone features, their effective rank. Why it sits beside the norms: a complete or
dimensional collapse shows in it at every evaluation, with no labels and no probe.

The singular values come from the eigenvalues of the smaller Gram matrix (Z^T Z or Z Z^T) in
float64, which costs a fraction of an SVD on a CPU; eigenvalues below the Gram matrix's rounding
floor count as zero, so a collapsed matrix reads 1 rather than its rounding noise.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["RANKME_EPS", "MAX_ROWS", "rankme", "singular_values"]

RANKME_EPS = 1e-7  # the paper's epsilon, added to every normalized singular value
MAX_ROWS = 4096  # rows used at most (evenly spaced): RankMe reaches min(N, D), so N >= D is what matters


def singular_values(matrix: Tensor) -> Tensor:
    """The singular values of ``matrix`` (float64, descending) from the eigenvalues of its smaller Gram matrix."""
    x = matrix.detach().to(torch.float64)
    gram = x.T @ x if x.shape[0] >= x.shape[1] else x @ x.T
    eigenvalues = torch.linalg.eigvalsh(gram).flip(0)
    floor = eigenvalues[0].clamp_min(0) * gram.shape[0] * torch.finfo(torch.float64).eps
    return torch.where(eigenvalues > floor, eigenvalues, torch.zeros_like(eigenvalues)).sqrt()


def rankme(matrix: Tensor, eps: float = RANKME_EPS, max_rows: int = MAX_ROWS) -> float:
    """exp(-sum_k p_k log p_k) with p_k = sigma_k / sum_j sigma_j + eps, over at most ``max_rows`` evenly
    spaced rows of ``matrix``; NaN for an empty, all-zero or non-finite matrix."""
    if matrix.ndim != 2 or matrix.numel() == 0:
        return math.nan
    if matrix.shape[0] > max_rows:
        matrix = matrix[torch.linspace(0, matrix.shape[0] - 1, max_rows, device=matrix.device).long()]
    if not bool(torch.isfinite(matrix).all()):
        return math.nan
    sigma = singular_values(matrix)
    total = sigma.sum()
    if not total > 0:
        return math.nan
    p = sigma / total + eps
    return float(torch.exp(-(p * p.log()).sum()))
