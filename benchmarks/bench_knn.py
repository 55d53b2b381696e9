"""Throughput and memory of the chunked kNN (suite.knn) against a naive full-matrix kNN.

Both score the same random features with the same protocol (cosine similarity,
top-max(k) search, exp(sim/T) vote, k=200 and k=20). The naive reference builds
the whole ``N_test x N_train`` similarity matrix at once; the chunked one never
holds more than ``chunk_size x N_train``. Prints test samples/s for both, their
ratio, whether predictions agree, and the peak memory: measured with
``torch.cuda.max_memory_allocated`` on CUDA, and on CPU the size of the largest
intermediate (the similarity block) plus the process's resident-set high-water
mark after each variant (chunked runs first, so growth after the naive run is its own).
Each time is the best of ``--repeats`` calls after one warm-up.

    python benchmarks/bench_knn.py --n-train 20000 --n-test 5000 --dim 512 --chunk-size 1024
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from suite.knn import knn_evaluate  # noqa: E402


def naive_knn(train_f, train_y, test_f, ks, temperature, num_classes) -> dict[int, torch.Tensor]:
    """Reference: one full similarity matrix, one top-k, one scatter per k."""
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


def best_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def peak_bytes(fn: Callable[[], object], device: torch.device) -> float:
    """CUDA: peak allocated during one call. CPU: process max RSS after the call."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0  # Linux reports KiB


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-train", type=int, default=20000, help="memory-bank size")
    p.add_argument("--n-test", type=int, default=5000, help="number of test samples")
    p.add_argument("--dim", type=int, default=512, help="feature dimension")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--chunk-size", type=int, default=1024, help="test samples per similarity block")
    p.add_argument("--ks", type=int, nargs="+", default=[200, 20])
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)

    device = torch.device(a.device)
    g = torch.Generator().manual_seed(a.seed)
    train_f = torch.randn(a.n_train, a.dim, generator=g).to(device)
    train_y = torch.randint(0, a.num_classes, (a.n_train,), generator=g).to(device)
    test_f = torch.randn(a.n_test, a.dim, generator=g).to(device)
    test_y = torch.randint(0, a.num_classes, (a.n_test,), generator=g)
    ks = tuple(a.ks)

    def chunked():
        return knn_evaluate(train_f, train_y, test_f, test_y, ks=ks, temperature=a.temperature,
                            num_classes=a.num_classes, chunk_size=a.chunk_size)

    def naive():
        return naive_knn(train_f, train_y, test_f, ks, a.temperature, a.num_classes)

    print(f"device={device} n_train={a.n_train} n_test={a.n_test} dim={a.dim} "
          f"classes={a.num_classes} ks={ks} chunk_size={a.chunk_size} torch={torch.__version__}")
    mem_chunked = peak_bytes(chunked, device)
    mem_naive = peak_bytes(naive, device)
    t_chunked = best_seconds(chunked, a.repeats, device)
    t_naive = best_seconds(naive, a.repeats, device)
    c, n = chunked(), naive()
    agree = min(float((c[f"predictions_k{k}"] == n[k]).double().mean()) for k in ks)

    mib = 1024.0**2
    sim_chunk = min(a.chunk_size, a.n_test) * a.n_train * 4 / mib
    sim_full = a.n_test * a.n_train * 4 / mib
    print(f"chunked: {a.n_test / t_chunked:12.0f} test samples/s  ({t_chunked * 1e3:.1f} ms)")
    print(f"naive:   {a.n_test / t_naive:12.0f} test samples/s  ({t_naive * 1e3:.1f} ms)")
    print(f"speed ratio chunked/naive: {t_naive / t_chunked:.2f}x")
    print(f"prediction agreement (min over ks): {agree:.4f}")
    print(f"largest similarity block: chunked {sim_chunk:.1f} MiB (chunk_size x n_train) "
          f"vs naive {sim_full:.1f} MiB (n_test x n_train)")
    label = "peak allocated during call" if device.type == "cuda" else "process max RSS after call"
    print(f"{label}: chunked {mem_chunked / mib:.1f} MiB, naive {mem_naive / mib:.1f} MiB")


if __name__ == "__main__":
    main()
