"""RankMe (`suite.measure.rank`) against its definition computed here from `torch.linalg.svdvals`."""

from __future__ import annotations

import math

import pytest
import torch

from suite.measure.rank import RANKME_EPS, rankme


def rankme_from_svdvals(matrix: torch.Tensor, eps: float = RANKME_EPS) -> float:
    """Garrido et al. 2023, eq. 1: p_k = sigma_k / ||sigma||_1 + eps, RankMe = exp(-sum p_k log p_k), by a loop."""
    sigma = torch.linalg.svdvals(matrix.double())
    total = float(sigma.sum())
    entropy = 0.0
    for s in sigma.tolist():
        p = s / total + eps
        entropy -= p * math.log(p)
    return math.exp(entropy)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape", [(300, 40), (40, 300), (64, 64)])
def test_random_matrices_match_the_svdvals_definition_and_are_nearly_full_rank(shape):
    z = torch.randn(*shape, generator=_gen(0))
    ours = rankme(z)
    assert ours == pytest.approx(rankme_from_svdvals(z), rel=1e-9)
    assert 0.6 * min(shape) < ours <= min(shape)


@pytest.mark.parametrize("rank", [1, 3, 10])
def test_low_rank_matrices_match_and_read_about_their_rank(rank):
    g = _gen(rank)
    z = torch.randn(500, rank, generator=g, dtype=torch.float64) @ torch.randn(
        rank, 64, generator=g, dtype=torch.float64
    )
    ours = rankme(z)
    assert ours == pytest.approx(rankme_from_svdvals(z), rel=1e-6)
    assert 0.5 * rank <= ours <= rank * 1.01


def test_equal_singular_values_give_their_number():
    q, _ = torch.linalg.qr(torch.randn(200, 16, generator=_gen(4), dtype=torch.float64))  # orthonormal columns
    assert rankme(q * 5.0) == pytest.approx(16.0, rel=1e-4)
    assert rankme(q * 5.0) == pytest.approx(rankme_from_svdvals(q * 5.0), rel=1e-9)


def test_a_collapsed_representation_reads_about_one():
    row = torch.randn(1, 256, generator=_gen(5))
    collapsed = row.repeat(1000, 1)  # every sample the same embedding
    assert rankme(collapsed) == pytest.approx(1.0, abs=1e-3)
    assert rankme(collapsed) == pytest.approx(rankme_from_svdvals(collapsed), rel=1e-4)
    # collapsed up to a little noise: still far below the width
    noisy = collapsed + 1e-4 * torch.randn(1000, 256, generator=_gen(6))
    assert rankme(noisy) < 2.0


def test_rows_beyond_the_cap_are_evenly_subsampled_and_degenerate_input_is_nan():
    z = torch.randn(9000, 8, generator=_gen(7))
    assert rankme(z, max_rows=100) == pytest.approx(rankme_from_svdvals(z[torch.linspace(0, 8999, 100).long()]))
    assert math.isnan(rankme(torch.zeros(10, 4)))
    assert math.isnan(rankme(torch.full((10, 4), float("nan"))))
    assert math.isnan(rankme(torch.empty(0, 4)))


def test_a_trial_records_both_ranks_at_every_evaluation_and_in_its_row(tmp_path):
    """Epoch 0 (the untrained network), each evaluated epoch and the final row; the final curves row is the
    trials row's value, and each is recomputed here from the trained model's clean training-set encoding."""
    import pandas as pd

    from suite.config import make_config
    from suite.results import schema
    from suite.trial.evaluate import EvalSettings, encode
    from suite.trial.train import build_model, load_data, run_trial

    cfg = make_config(
        dict(
            method="simclr",
            backbone="test_resnet",
            image_size=16,
            batch_size=64,
            train_limit=128,
            epochs=2,
            eval_every=1,
            linear_epochs=2,
            eval_bn="running",  # the model as saved is the model evaluated
            method_args={"proj_hidden_dim": 32, "proj_output_dim": 16},
        )
    )
    row = run_trial(cfg, tmp_path / "t", progress=False).row
    curves = pd.read_csv(tmp_path / "t" / "curves.csv")
    assert list(curves["epoch"]) == [0, 1, 2]
    for column in schema.RANK_COLUMNS:
        assert curves[column].notna().all() and (curves[column] >= 1).all(), column
        assert curves[column].iloc[-1] == pytest.approx(row[column]), column
    assert row[schema.EMB_RANKME] <= 16 and row[schema.FEAT_RANKME] <= 128
    untrained = build_model(cfg)
    splits = load_data(cfg)
    images = splits.train_images.materialize() if hasattr(splits.train_images, "materialize") else splits.train_images
    encoded = encode(untrained, images, splits.mean, splits.std, EvalSettings(512, torch.device("cpu"), "fp32", False))
    assert curves.loc[0, schema.EMB_RANKME] == pytest.approx(rankme_from_svdvals(encoded.embedding), rel=1e-6)
    assert curves.loc[0, schema.FEAT_RANKME] == pytest.approx(rankme_from_svdvals(encoded.features), rel=1e-6)
