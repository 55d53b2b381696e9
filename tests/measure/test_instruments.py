"""The instruments behind the norm claims, each against an independent computation:
precise BatchNorm, the epoch-0 row, the gradient at the embedding and the probe angle."""

from __future__ import annotations

import copy
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from methods import METHODS
from methods.byol import byol_loss
from methods.dino import dino_loss
from methods.moco import moco_loss
from methods.mocov3 import mocov3_loss
from methods.nnclr import nnclr_loss
from methods.simclr import nt_xent_loss
from methods.simsiam import simsiam_loss
from methods.swav import swav_loss
from suite.config import make_config
from suite.measure.instruments import EmbeddingGradStats, angle_change, probe_indices, recomputed_batchnorm
from suite.measure.knn import knn_evaluate
from suite.trial.augment import normalize
from suite.trial.train import build_model, load_data, run_trial


def _bn_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5), nn.BatchNorm1d(5)
    )


def test_recomputed_batchnorm_holds_the_whole_sets_statistics_then_restores_training_state():
    net = _bn_net()
    with torch.no_grad():  # training-like running statistics to be replaced, then restored
        for bn in (net[1], net[5]):
            bn.running_mean.uniform_(-3, 3)
            bn.running_var.uniform_(2, 5)
            bn.num_batches_tracked.fill_(17)
    before = copy.deepcopy(net.state_dict())
    net.train()
    x = torch.randn(40, 3, 8, 8)
    # By hand: each BN layer normalizes with the batch's own statistics (train mode).
    h1 = net[0](x).detach()
    mean1, var1 = h1.mean((0, 2, 3)), h1.var((0, 2, 3), unbiased=True)
    y1 = F.relu(F.batch_norm(h1, None, None, net[1].weight, net[1].bias, training=True))
    h2 = net[4](net[3](y1)).detach()
    mean2, var2 = h2.mean(0), h2.var(0, unbiased=True)

    with recomputed_batchnorm([net], iter([x]), net):
        assert not net.training and not net[1].training
        torch.testing.assert_close(net[1].running_mean, mean1)
        torch.testing.assert_close(net[1].running_var, var1)
        torch.testing.assert_close(net[5].running_mean, mean2, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(net[5].running_var, var2, rtol=1e-5, atol=1e-6)
    assert net.training and net[1].momentum == 0.1
    for key, value in before.items():
        assert torch.equal(net.state_dict()[key], value), key


def test_recomputed_batchnorm_averages_batches_equally():
    net = nn.BatchNorm1d(3)
    a, b = torch.randn(10, 3), torch.randn(10, 3) + 4
    with recomputed_batchnorm([net], iter([a, b]), net):
        torch.testing.assert_close(net.running_mean, (a.mean(0) + b.mean(0)) / 2)
        torch.testing.assert_close(net.running_var, (a.var(0) + b.var(0)) / 2)


TINY = dict(
    backbone="test_resnet",
    image_size=16,
    batch_size=64,
    train_limit=192,
    epochs=2,
    linear_epochs=5,
    eval_batch_size=512,
    method="byol",
    device="cpu",
)


@pytest.mark.slow  # over 10 s on 2 cores: make test runs it, test-fast does not
def test_evaluating_between_epochs_does_not_change_training(tmp_path):
    """Evaluation (with BatchNorm re-estimation, probe encodings, epoch 0) is
    invisible to training: the same weights and statistics on CPU either way."""
    quiet = run_trial(make_config({**TINY, "eval_every": 0}), tmp_path / "a", progress=False)
    watched = run_trial(make_config({**TINY, "eval_every": 1}), tmp_path / "b", progress=False)
    assert [c["epoch"] for c in watched.curves] == [0, 1, 2] and [c["epoch"] for c in quiet.curves] == [1, 2]
    a = torch.load(tmp_path / "a" / "checkpoints" / "last" / "state.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "checkpoints" / "last" / "state.pt", weights_only=False)["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert quiet.row["final_loss"] == watched.row["final_loss"]


def test_epoch_zero_row_is_the_untrained_network(tmp_path):
    """Recomputed independently: a freshly built model, BatchNorm statistics set
    by hand from the whole clean training set, then kNN on backbone features."""
    cfg = make_config(
        {
            **TINY,
            "method": "simclr",
            "intervention": "cut:3",
            "eval_every": 1,
            "epochs": 1,
            "method_args": {"proj_batch_norm": True},
        }
    )
    result = run_trial(cfg, tmp_path / "t", progress=False)
    epoch0 = result.curves[0]
    assert epoch0["epoch"] == 0 and "loss" not in epoch0

    model = build_model(cfg)
    splits = load_data(cfg)
    train_x = normalize(splits.train_images.materialize(), splits.mean, splits.std)
    test_x = normalize(splits.test_images.materialize(), splits.mean, splits.std)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()
    with torch.no_grad():
        model.projector(model.backbone(train_x))  # one batch: the whole (small) training set
        model.eval()
        train_f, test_f = model.backbone(train_x), model.backbone(test_x)
        test_emb = model.projector(test_f)
    knn = knn_evaluate(
        train_f,
        splits.train_labels,
        test_f,
        splits.test_labels,
        ks=(200, 20),
        temperature=0.1,
        num_classes=splits.num_classes,
    )
    assert epoch0["knn_top1_k20"] == pytest.approx(knn.accuracy[20], abs=1e-9)
    assert epoch0["knn_top1_k200"] == pytest.approx(knn.accuracy[200], abs=1e-9)
    assert epoch0["test_emb_norm_mean"] == pytest.approx(float(test_emb.norm(dim=1).mean()), rel=1e-4)
    assert result.row["knn_top1_k20_init"] == epoch0["knn_top1_k20"]
    assert math.isnan(epoch0["probe_angle_change_mean"]) and epoch0["probe_emb_norm_mean"] > 0
    curves = pd.read_csv(tmp_path / "t" / "curves.csv")
    assert list(curves["epoch"]) == [0, 1] and curves["probe_angle_change_mean"].iloc[1] > 0


def _losses(n: int = 8, d: int = 6):
    """Every method's pure loss, as a function of free embeddings."""
    g = torch.Generator().manual_seed(3)
    other = torch.randn(n, d, generator=g)
    queue = torch.randn(16, d, generator=g)
    prototypes = F.normalize(torch.randn(10, d, generator=g), dim=1)
    return {
        "nt_xent": lambda z: nt_xent_loss(z, other, 0.5),
        "moco": lambda z: moco_loss(z, other, queue, 0.2),
        "byol": lambda z: byol_loss(z, other),
        "simsiam": lambda z: simsiam_loss(z, other),
        # z is the second student crop: the teacher's crop 0 is never paired with student crop 0
        "dino": lambda z: dino_loss(
            [F.normalize(other, dim=1) @ prototypes.T, F.normalize(z, dim=1) @ prototypes.T],
            [F.normalize(other, dim=1) @ prototypes.T],
            torch.zeros(1, 10),
            0.1,
            0.04,
        ),
        "mocov3": lambda z: mocov3_loss(z, other, other.flip(0), queue[:n], 0.2),
        "nnclr": lambda z: nnclr_loss(other, other.flip(0), other, z, queue, 0.2),
        # z is the second crop: it predicts crop 0's code (and crop 1's code is predicted by crop 0)
        "swav": lambda z: swav_loss(
            [F.normalize(other, dim=1) @ prototypes.T, F.normalize(z, dim=1) @ prototypes.T],
            [torch.softmax(F.normalize(other, dim=1) @ prototypes.T / 0.05, dim=1)] * 2,
            0.1,
        ),
    }


@pytest.mark.parametrize("name", sorted(_losses()))
def test_gradient_statistics_match_autograd_and_the_one_over_norm_law(name):
    loss_fn = _losses()[name]
    z = (torch.randn(8, 6, generator=torch.Generator().manual_seed(5)) * 3).requires_grad_()
    stats = EmbeddingGradStats(torch.device("cpu"))
    stats.watch([z])
    loss_fn(z).backward()
    logged = stats.summary()
    grad = z.grad.double()
    assert logged["emb_grad_norm_mean"] == pytest.approx(float(grad.norm(dim=1).mean()), rel=1e-9)
    assert logged["emb_grad_cos_abs_mean"] < 1e-5  # orthogonal to z: the loss only sees its direction
    assert logged["emb_grad_norm_mean"] > 0

    big = (z.detach() * 10).requires_grad_()
    scaled = EmbeddingGradStats(torch.device("cpu"))
    scaled.watch([big])
    loss_fn(big).backward()
    scaled_logged = scaled.summary()
    assert scaled_logged["emb_grad_norm_mean"] == pytest.approx(logged["emb_grad_norm_mean"] / 10, rel=1e-6)
    assert scaled_logged["emb_dir_grad_norm_mean"] == pytest.approx(logged["emb_dir_grad_norm_mean"], rel=1e-6)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_exposes_the_embedding_its_loss_normalizes(name):
    """The live embeddings a method returns are what its loss differentiates: their gradient is orthogonal
    to them (before GradScale rescales it) where the loss L2-normalizes them, and not for the controls."""
    cfg = make_config({**TINY, "method": name, "intervention": "gradscale:1"})
    model = build_model(cfg)
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(16, 3, s.size, s.size, generator=g) for s in model.view_specs(16)]
    out = model(views)
    stats = EmbeddingGradStats(torch.device("cpu"))
    stats.watch(out.live_embeddings)
    out.loss.backward()
    logged = stats.summary()
    assert logged["emb_grad_norm_mean"] > 0
    if METHODS[name].loss_normalizes_embedding:
        assert logged["emb_grad_cos_abs_mean"] < 1e-4
    else:
        assert logged["emb_grad_cos_abs_mean"] > 1e-2


def test_probe_angle_is_zero_for_the_same_embeddings_and_the_rotation_angle_otherwise():
    z = torch.randn(5, 4)
    assert torch.allclose(angle_change(z, z), torch.zeros(5, dtype=torch.float64), atol=1e-6)
    theta = 0.3
    plane = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    v = torch.randn(5, 2)
    rotated = v @ plane.T * 7.0  # rotated by theta and rescaled: only the direction counts
    torch.testing.assert_close(angle_change(v, rotated), torch.full((5,), theta, dtype=torch.float64))


def test_probe_set_is_fixed_and_inside_the_training_set():
    a, b = probe_indices(1000), probe_indices(1000)
    assert torch.equal(a, b) and len(a) == 256 and len(set(a.tolist())) == 256 and int(a.max()) < 1000
    assert len(probe_indices(100)) == 100


def test_bf16_evaluation_keeps_fp32_outputs_close_to_the_fp32_evaluation():
    """Evaluation under bf16 autocast (the CUDA default, run here on the CPU) returns float32
    vectors, so norms and kNN similarities accumulate in fp32; checked against an fp32 encode."""
    from suite.trial.evaluate import EvalSettings, encode

    cfg = make_config({**TINY, "method": "byol"})
    model = build_model(cfg)
    splits = load_data(cfg)
    images = splits.test_images.materialize()[:96]
    out = {
        p: encode(model, images, splits.mean, splits.std, EvalSettings(32, torch.device("cpu"), p, False))
        for p in ("fp32", "bf16")
    }
    for name in ("features", "embedding", "projection"):
        ref, low = getattr(out["fp32"], name), getattr(out["bf16"], name)
        assert low.dtype == torch.float32
        assert not torch.equal(ref, low)  # the bf16 path really ran
        torch.testing.assert_close(low.norm(dim=1), ref.norm(dim=1), rtol=3e-2, atol=1e-3)
        assert F.cosine_similarity(low, ref, dim=1).min() > 0.99
