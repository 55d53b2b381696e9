"""Weighted k-nearest-neighbour classifier on frozen features (InstDisc / lightly style).

Protocol: L2-normalize the backbone features, score cosine similarity against a
memory bank (the un-augmented train set), take the top-k neighbours and add
exp(sim / T) to the neighbour's class; the class with the largest vote wins.

Test samples are processed in chunks so memory stays bounded by one
``chunk_size x N_train`` similarity block, never the full ``N_test x N_train``
matrix.  The top-``max(ks)`` search runs once per chunk and is shared by every
``k`` (``torch.topk`` returns neighbours sorted by similarity, so the first k
columns are the top-k).

Edge cases (documented behaviour):

* ``k`` larger than the bank is clamped to the bank size (every train sample votes).
* Equal class votes resolve to the smallest class index (``torch.argmax`` returns
  the first maximum).
* Neighbours with exactly equal similarity at the k-th boundary are chosen by
  ``torch.topk``, i.e. arbitrarily among the tied ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from suite.core.errors import ConfigError


@dataclass
class KnnResult:
    """Top-1 accuracy and predictions per k (the column names live in `suite.results.schema`)."""

    accuracy: dict[int, float]
    predictions: dict[int, Tensor]


__all__ = ["knn_predict", "knn_scores", "knn_evaluate"]


def _validate(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    ks: Sequence[int],
    temperature: float,
    num_classes: int,
    chunk_size: int,
) -> None:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ConfigError("num_classes", num_classes, "an integer >= 1")
    if len(ks) == 0:
        raise ConfigError("ks", tuple(ks), "a non-empty sequence of integers >= 1")
    for k in ks:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError("k", k, "an integer >= 1")
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ConfigError("temperature", temperature, "a number > 0")
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ConfigError("chunk_size", chunk_size, "an integer >= 1")
    if train_features.ndim != 2 or train_features.shape[0] == 0:
        raise ConfigError("train_features", tuple(train_features.shape), "a non-empty 2-D tensor [N_train, D]")
    if test_features.ndim != 2 or test_features.shape[1] != train_features.shape[1]:
        raise ConfigError(
            "test_features", tuple(test_features.shape), f"a 2-D tensor [N_test, {train_features.shape[1]}]"
        )
    if train_labels.ndim != 1 or train_labels.shape[0] != train_features.shape[0]:
        raise ConfigError(
            "train_labels", tuple(train_labels.shape), f"a 1-D tensor of length {train_features.shape[0]}"
        )
    if train_labels.dtype.is_floating_point or train_labels.dtype == torch.bool:
        raise ConfigError("train_labels", str(train_labels.dtype), "an integer dtype")
    lo, hi = int(train_labels.min()), int(train_labels.max())
    if lo < 0 or hi >= num_classes:
        raise ConfigError("train_labels", f"range [{lo}, {hi}]", f"class indices in [0, {num_classes - 1}]")


def _compute_dtype(x: Tensor) -> torch.dtype:
    # float64 stays float64 (exact tests); everything else is scored in float32.
    return torch.float64 if x.dtype == torch.float64 else torch.float32


@torch.no_grad()  # torch wraps generators so grad mode does not leak between yields
def _chunk_votes(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    ks: Sequence[int],
    temperature: float,
    num_classes: int,
    chunk_size: int,
) -> Iterator[dict[int, Tensor]]:
    """Yield, per test chunk, ``{k: votes [chunk, num_classes]}`` for every requested k."""
    device = train_features.device
    dtype = _compute_dtype(train_features)
    bank = F.normalize(train_features.to(dtype), dim=1)
    bank_labels = train_labels.to(device=device, dtype=torch.int64)
    k_max = min(max(ks), bank.shape[0])
    for start in range(0, test_features.shape[0], chunk_size):
        query = F.normalize(test_features[start : start + chunk_size].to(device=device, dtype=dtype), dim=1)
        sim = query @ bank.T  # [chunk, N_train]: the only large block
        top_sim, top_idx = sim.topk(k_max, dim=1, largest=True, sorted=True)
        del sim
        weights = (top_sim / temperature).exp()
        neighbour_labels = bank_labels[top_idx]
        out: dict[int, Tensor] = {}
        for k in ks:
            kk = min(k, k_max)
            votes = torch.zeros(query.shape[0], num_classes, dtype=dtype, device=device)
            votes.scatter_add_(1, neighbour_labels[:, :kk], weights[:, :kk])
            out[k] = votes
        yield out


def knn_scores(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    *,
    k: int,
    temperature: float = 0.1,
    num_classes: int,
    chunk_size: int = 1024,
) -> Tensor:
    """Per-class weighted votes ``[N_test, num_classes]`` (on the bank's device).

    Useful when a confidence (the winning vote share) is needed, not only the class.
    """
    _validate(train_features, train_labels, test_features, (k,), temperature, num_classes, chunk_size)
    parts = [
        votes[k]
        for votes in _chunk_votes(
            train_features, train_labels, test_features, (k,), temperature, num_classes, chunk_size
        )
    ]
    if not parts:
        return torch.zeros(0, num_classes, dtype=_compute_dtype(train_features), device=train_features.device)
    return torch.cat(parts)


def knn_predict(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    *,
    k: int,
    temperature: float = 0.1,
    num_classes: int,
    chunk_size: int = 1024,
) -> Tensor:
    """Predicted class (int64 ``[N_test]``, on the bank's device) by weighted kNN vote;
    equal votes go to the smallest class index (argmax takes the first maximum)."""
    scores = knn_scores(
        train_features,
        train_labels,
        test_features,
        k=k,
        temperature=temperature,
        num_classes=num_classes,
        chunk_size=chunk_size,
    )
    return scores.argmax(dim=1)


def knn_evaluate(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    *,
    ks: Sequence[int] = (200, 20),
    temperature: float = 0.1,
    num_classes: int,
    chunk_size: int = 1024,
) -> KnnResult:
    """kNN top-1 for several k sharing one neighbour search: the accuracy in [0, 1] and the
    predicted labels (int64, CPU) for every k in ``ks``."""
    ks = tuple(ks)
    _validate(train_features, train_labels, test_features, ks, temperature, num_classes, chunk_size)
    if test_labels.ndim != 1 or test_labels.shape[0] != test_features.shape[0]:
        raise ConfigError("test_labels", tuple(test_labels.shape), f"a 1-D tensor of length {test_features.shape[0]}")
    if test_features.shape[0] == 0:
        raise ConfigError("test_features", tuple(test_features.shape), "at least one test sample")
    preds: dict[int, list[Tensor]] = {k: [] for k in ks}
    for votes in _chunk_votes(train_features, train_labels, test_features, ks, temperature, num_classes, chunk_size):
        for k in ks:
            preds[k].append(votes[k].argmax(dim=1).cpu())
    labels = test_labels.detach().cpu().to(torch.int64)
    result = KnnResult({}, {})
    for k in ks:
        p = torch.cat(preds[k])
        result.accuracy[k] = float((p == labels).double().mean())
        result.predictions[k] = p
    return result
