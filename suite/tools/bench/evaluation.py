"""Evaluation costs: encoding, kNN (chunked vs one full similarity matrix), linear probe.

The kNN bank is synthetic but realistic in size (50,000 x 512 by default,
ten Gaussian classes), so the figures are about cost, not accuracy; the
accuracies are printed only to show both sides did the same job.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from suite.measure.knn import knn_evaluate
from suite.measure.linear_probe import linear_probe
from suite.tools.bench.report import Figure, Report, speedup
from suite.tools.bench.timing import best_seconds, log, peak_memory, synchronize
from suite.trial.augment import normalize
from suite.trial.runtime import autocast_context

NUM_CLASSES = 10


@torch.no_grad()
def encode_features(
    model: nn.Module,
    images: Tensor,
    mean,
    std,
    *,
    batch_size: int,
    device: torch.device,
    precision: str,
    channels_last: bool,
) -> Tensor:
    """Backbone features of clean images in eval mode: the evaluation protocol's forward
    (normalize, backbone), as float32."""
    was_training = model.training
    model.eval()
    feats = []
    try:
        for start in range(0, len(images), batch_size):
            x = normalize(images[start : start + batch_size].to(device, non_blocking=True), mean, std)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast_context(device, precision):
                feats.append(model.backbone(x).float())
    finally:
        model.train(was_training)
    return torch.cat(feats)


def full_matrix_knn(
    train_f: Tensor, train_y: Tensor, test_f: Tensor, ks: tuple[int, ...], temperature: float, num_classes: int
) -> dict[int, Tensor]:
    """Reference kNN: the whole N_test x N_train similarity matrix at once, one top-k, one scatter per k."""
    bank = F.normalize(train_f, dim=1)
    sim = F.normalize(test_f, dim=1) @ bank.T
    top_sim, top_idx = sim.topk(min(max(ks), bank.shape[0]), dim=1)
    weights, labels = (top_sim / temperature).exp(), train_y[top_idx]
    out = {}
    for k in ks:
        votes = torch.zeros(test_f.shape[0], num_classes, device=test_f.device)
        votes.scatter_add_(1, labels[:, :k], weights[:, :k])
        out[k] = votes.argmax(1).cpu()
    return out


def clustered_bank(n_train: int, n_test: int, dim: int, seed: int, device: torch.device) -> tuple[Tensor, ...]:
    """Train and test features of the same ten Gaussian classes (centres with std 0.25 per
    dimension, unit noise): (train_f, train_y, test_f, test_y)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(NUM_CLASSES, dim, generator=g) * 0.25
    out = []
    for n in (n_train, n_test):
        labels = torch.randint(0, NUM_CLASSES, (n,), generator=g)
        out += [(centres[labels] + torch.randn(n, dim, generator=g)).to(device), labels.to(device)]
    return tuple(out)


def _timed_peak(fn, device: torch.device) -> tuple[float, float, str, object]:
    """(seconds, peak bytes, how measured, result) of one call."""
    box = {}

    def call() -> None:
        synchronize(device)
        start = time.perf_counter()
        box["out"] = fn()
        synchronize(device)
        box["s"] = time.perf_counter() - start

    peak, how = peak_memory(call, device)
    return box["s"], peak, how, box["out"]


def measure_encode(report: Report, settings, splits) -> None:
    """Encode images/s at the trial's precision vs fp32 (bf16 autocast on CUDA; the same on CPU)."""
    from suite.trial.train import build_model

    log("evaluation: encode")
    cfg = settings.trial_config(settings.methods[0])
    device = torch.device(settings.device)
    channels_last = device.type == "cuda"
    model = build_model(cfg).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    images = splits.train_images
    kw = dict(batch_size=cfg.eval_batch_size, device=device)
    t_suite = best_seconds(
        lambda: encode_features(
            model, images, splits.mean, splits.std, precision=cfg.precision, channels_last=channels_last, **kw
        ),
        settings.repeats,
        device,
    )
    t_fp32 = best_seconds(
        lambda: encode_features(model, images, splits.mean, splits.std, precision="fp32", channels_last=False, **kw),
        settings.repeats,
        device,
    )
    report.add(
        "evaluation",
        "encode",
        speedup(
            "images_per_s",
            f"encode, precision={cfg.precision} ({len(images)} images)",
            len(images) / t_suite,
            "images/s",
            "fp32_images_per_s",
            "encode in fp32, contiguous",
            len(images) / t_fp32,
            "vs_fp32_ratio",
        ),
    )


def measure_knn_and_probe(report: Report, settings) -> None:
    device = torch.device(settings.device)
    n_train, n_test, dim = settings.bank_size, settings.bank_queries, settings.bank_dim
    log(f"evaluation: kNN bank {n_train} x {dim}, {n_test} queries")
    train_f, train_y, test_f, test_y = clustered_bank(n_train, n_test, dim, settings.seed, device)
    ks, temperature = (200, 20), 0.1

    def chunked():
        return knn_evaluate(
            train_f,
            train_y,
            test_f,
            test_y,
            ks=ks,
            temperature=temperature,
            num_classes=NUM_CLASSES,
            chunk_size=settings.knn_chunk,
        )

    chunked()  # warm-up (allocator, threads) on the cheaper variant
    t_chunk, mem_chunk, how, out_chunk = _timed_peak(chunked, device)  # chunked first: its RSS growth is its own
    t_full, mem_full, _, out_full = _timed_peak(
        lambda: full_matrix_knn(train_f, train_y, test_f, ks, temperature, NUM_CLASSES), device
    )
    agree = min(float((out_chunk.predictions[k] == out_full[k]).double().mean()) for k in ks)
    group = "knn"
    report.add(
        "evaluation",
        group,
        speedup(
            "chunked_queries_per_s",
            f"kNN chunked ({settings.knn_chunk} queries/block)",
            n_test / t_chunk,
            "queries/s",
            "full_queries_per_s",
            "full similarity matrix",
            n_test / t_full,
            "chunked_vs_full_ratio",
        ),
    )
    block, full = min(settings.knn_chunk, n_test) * n_train * 4, n_test * n_train * 4
    report.add(
        "evaluation",
        group,
        speedup(
            "chunked_largest_tensor_mib",
            "kNN chunked: largest tensor (analytic)",
            block / 2**20,
            "MiB",
            "full_largest_tensor_mib",
            "full: N_test x N_train",
            full / 2**20,
            "memory_ratio",
            higher_is_better=False,
        ),
    )
    report.add(
        "evaluation",
        group,
        Figure(
            "chunked_peak_mib",
            f"kNN chunked: peak, {how}",
            mem_chunk / 2**20,
            "MiB",
            "full_peak_mib",
            "full matrix, same measure",
            mem_full / 2**20,
            # a zero RSS growth (an earlier part peaked higher) has no meaningful ratio
            "peak_memory_ratio" if mem_chunk > 0 else None,
            mem_full / mem_chunk if mem_chunk > 0 else None,
        ),
    )
    report.add(
        "evaluation",
        group,
        Figure(
            "prediction_agreement",
            "kNN predictions chunked == full",
            agree,
            "fraction",
            "chunked_top1_k200",
            "chunked kNN top-1 (k=200)",
            out_chunk.accuracy[200],
        ),
    )

    log(f"evaluation: linear probe (lbfgs, its penalty chosen on a validation split), best of {settings.repeats}")
    probe: dict = {}

    def ours() -> None:
        probe.update(
            linear_probe(
                train_f,
                train_y,
                test_f,
                test_y,
                num_classes=NUM_CLASSES,
                probe="lbfgs",
                seed=settings.seed,
                device=device,
            )
        )

    reference: dict = {}
    t_probe = best_seconds(ours, settings.repeats, device, warmup=0)
    t_sk = best_seconds(
        lambda: reference.update(top1=sklearn_probe(train_f, train_y, test_f, test_y)),
        settings.repeats,
        device,
        warmup=0,
    )
    acc_sk = reference["top1"]
    report.add(
        "evaluation",
        "linear_probe",
        speedup(
            "seconds",
            f"suite.measure.linear_probe lbfgs (l2 grid on a validation split, refit) on {n_train} x {dim}",
            t_probe,
            "s",
            "sklearn_seconds",
            "sklearn LogisticRegression (lbfgs, its default penalty, 100 it), same best-of",
            t_sk,
            "vs_sklearn_ratio",
            higher_is_better=False,
        ),
    )
    report.add(
        "evaluation",
        "linear_probe",
        speedup(
            "top1",
            "suite probe test top-1",
            float(probe["top1"]),
            "fraction",
            "sklearn_top1",
            "sklearn test top-1",
            acc_sk,
            "top1_ratio",
        ),
    )


def sklearn_probe(train_f: Tensor, train_y: Tensor, test_f: Tensor, test_y: Tensor) -> float:
    """Test top-1 of the common reference probe: multinomial logistic regression on standardized
    features; standardizing, fitting and scoring all happen inside the timed call, as in ours."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = train_f.cpu().numpy(), train_y.cpu().numpy()
    scaler = StandardScaler().fit(x)
    clf = LogisticRegression(max_iter=100).fit(scaler.transform(x), y)
    return float((clf.predict(scaler.transform(test_f.cpu().numpy())) == test_y.cpu().numpy()).mean())
