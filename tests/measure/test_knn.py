"""kNN classifier against a brute-force reference written here (Python loops, numpy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from suite.core.errors import ConfigError
from suite.measure.knn import knn_evaluate, knn_predict, knn_scores


def brute_force_votes(train_x, train_y, test_x, k, temperature, num_classes) -> np.ndarray:
    """One test sample at a time: cosine similarities, stable sort, exp(sim/T) vote."""
    train_x = np.asarray(train_x, dtype=np.float64)
    test_x = np.asarray(test_x, dtype=np.float64)
    train_unit = [row / max(np.sqrt((row * row).sum()), 1e-12) for row in train_x]
    votes = np.zeros((len(test_x), num_classes))
    for i, q in enumerate(test_x):
        q = q / max(np.sqrt((q * q).sum()), 1e-12)
        sims = [float(np.dot(q, t)) for t in train_unit]
        order = sorted(range(len(sims)), key=lambda j: -sims[j])
        for j in order[: min(k, len(sims))]:
            votes[i, int(train_y[j])] += np.exp(sims[j] / temperature)
    return votes


def brute_force_predict(train_x, train_y, test_x, k, temperature, num_classes) -> np.ndarray:
    votes = brute_force_votes(train_x, train_y, test_x, k, temperature, num_classes)
    return votes.argmax(axis=1)  # numpy argmax: first maximum on ties, like torch


def assert_no_boundary_ambiguity(train_x, train_y, test_x, k):
    """The reference is only unique if the k-th and (k+1)-th neighbours are distinguishable."""
    tr = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    te = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
    sims = np.sort(te @ tr.T, axis=1)[:, ::-1]
    if k < sims.shape[1]:
        assert np.min(sims[:, k - 1] - sims[:, k]) > 1e-9


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float64) + 1e-3  # no all-zero rows
    return x[:1200], y[:1200], x[1200:], y[1200:]


def test_random_data_matches_brute_force_with_ragged_chunks():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(300, 16, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (300,), generator=g)
    test = torch.randn(77, 16, generator=g, dtype=torch.float64)
    for k in (1, 7, 20):
        assert_no_boundary_ambiguity(train.numpy(), labels.numpy(), test.numpy(), k)
        ref = brute_force_predict(train.numpy(), labels.numpy(), test.numpy(), k, 0.1, 5)
        for chunk in (10, 77, 1024):  # 10 does not divide 77
            got = knn_predict(train, labels, test, k=k, temperature=0.1, num_classes=5, chunk_size=chunk)
            assert got.dtype == torch.int64
            np.testing.assert_array_equal(got.numpy(), ref)
        votes = knn_scores(train, labels, test, k=k, temperature=0.1, num_classes=5, chunk_size=10)
        np.testing.assert_allclose(
            votes.numpy(), brute_force_votes(train.numpy(), labels.numpy(), test.numpy(), k, 0.1, 5), rtol=1e-10
        )


def test_float32_features_match_reference(digits):
    tr_x, tr_y, te_x, _ = digits
    tr = torch.from_numpy(tr_x).float()
    te = torch.from_numpy(te_x[:100]).float()
    ref = brute_force_votes(tr_x, tr_y, te_x[:100], 20, 0.1, 10)
    got = knn_scores(tr, torch.from_numpy(tr_y), te, k=20, num_classes=10, chunk_size=33)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-3)


def test_digits_pixels_match_brute_force_and_are_accurate(digits):
    tr_x, tr_y, te_x, te_y = digits
    tr, te = torch.from_numpy(tr_x), torch.from_numpy(te_x)
    tr_lab, te_lab = torch.from_numpy(tr_y), torch.from_numpy(te_y)
    out = knn_evaluate(tr, tr_lab, te, te_lab, ks=(200, 20), temperature=0.1, num_classes=10, chunk_size=100)
    for k in (200, 20):
        ref = brute_force_predict(tr_x, tr_y, te_x, k, 0.1, 10)
        np.testing.assert_array_equal(out.predictions[k].numpy(), ref)
        assert out.accuracy[k] == pytest.approx(float((ref == te_y).mean()))
    # Real digits are easy for cosine kNN; a broken vote would not reach this.
    assert out.accuracy[20] > 0.9


def test_shared_search_equals_separate_calls(digits):
    tr_x, tr_y, te_x, te_y = digits
    tr, te = torch.from_numpy(tr_x), torch.from_numpy(te_x)
    out = knn_evaluate(
        tr, torch.from_numpy(tr_y), te, torch.from_numpy(te_y), ks=(5, 50), num_classes=10, chunk_size=64
    )
    for k in (5, 50):
        single = knn_predict(tr, torch.from_numpy(tr_y), te, k=k, num_classes=10, chunk_size=1000)
        assert torch.equal(out.predictions[k], single)


def test_k_larger_than_bank_is_clamped():
    g = torch.Generator().manual_seed(1)
    train = torch.randn(12, 4, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (12,), generator=g)
    test = torch.randn(9, 4, generator=g, dtype=torch.float64)
    ref = brute_force_votes(train.numpy(), labels.numpy(), test.numpy(), 12, 0.5, 3)
    got = knn_scores(train, labels, test, k=200, temperature=0.5, num_classes=3, chunk_size=4)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12)
    out = knn_evaluate(
        train, labels, test, torch.zeros(9, dtype=torch.long), ks=(200, 12), temperature=0.5, num_classes=3
    )
    assert torch.equal(out.predictions[200], out.predictions[12])


def test_vote_ties_go_to_smallest_class_and_similarity_ties_are_counted():
    # Bank: two identical points of class 2 and two identical points of class 1,
    # orthogonal to each other. A query at 45 degrees ties them exactly.
    train = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    labels = torch.tensor([2, 2, 1, 1])
    test = torch.tensor([[1.0, 1.0], [2.0, 0.1], [0.1, 3.0]], dtype=torch.float64)
    got = knn_predict(train, labels, test, k=4, num_classes=3, chunk_size=2)
    assert got.tolist() == [1, 2, 1]
    # k=2 on the first query: the two picks among four equally similar neighbours
    # are arbitrary, but the summed vote must still be 2 * exp(sim/T).
    votes = knn_scores(train, labels, test[:1], k=2, temperature=0.1, num_classes=3)
    assert float(votes.sum()) == pytest.approx(2 * np.exp(np.sqrt(0.5) / 0.1))
    # Duplicated bank rows of the same class: boundary ties cannot change the answer.
    ref = brute_force_predict(train.numpy(), labels.numpy(), test.numpy(), 1, 0.1, 3)
    assert knn_predict(train, labels, test[1:], k=1, num_classes=3).tolist() == ref[1:].tolist()


def test_bad_input_raises_config_error_before_work():
    x = torch.randn(10, 3)
    y = torch.randint(0, 2, (10,))
    with pytest.raises(ConfigError, match="k"):
        knn_predict(x, y, x, k=0, num_classes=2)
    with pytest.raises(ConfigError, match="temperature"):
        knn_predict(x, y, x, k=3, temperature=0.0, num_classes=2)
    with pytest.raises(ConfigError, match="chunk_size"):
        knn_predict(x, y, x, k=3, num_classes=2, chunk_size=0)
    with pytest.raises(ConfigError, match="train_labels"):
        knn_predict(x, y + 5, x, k=3, num_classes=2)
    with pytest.raises(ConfigError, match="test_features"):
        knn_predict(x, y, torch.randn(4, 5), k=3, num_classes=2)
    with pytest.raises(ConfigError, match="test_labels"):
        knn_evaluate(x, y, x, y[:3], ks=(3,), num_classes=2)
