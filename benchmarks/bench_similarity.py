"""Pairwise intrinsic similarity at the paper's scale (issue: similarity).

329 random ResNet20 (53,956 pairs) with ``paper`` and ``hungarian``; optionally 20
ResNet50 (190 pairs). Baseline measured in the same run: a straightforward per-pair
NumPy loop (np.corrcoef per layer + the greedy in Python) on a sample of pairs,
extrapolated to all pairs. Peak memory from the process's max RSS.

    .venv/bin/python benchmarks/bench_similarity.py [--nets 329] [--resnet50 20] [--baseline-pairs 20]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from paradox_utils import models, runtime, similarity


def per_pair_numpy(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """The straightforward implementation: corrcoef per layer, greedy in Python."""
    scores = []
    for wa, wb in zip(a, b, strict=True):
        k = len(wa)
        r = np.corrcoef(wa, wb)[:k, k:]
        taken = np.zeros(k, bool)
        layer = []
        for i in range(k):
            row = np.where(taken, -np.inf, r[i])
            j = int(np.argmax(row))
            layer.append(row[j] if row[j] > 0 else 0.0)
            if row[j] > 0:
                taken[j] = True
        scores.append(np.mean(layer))
    return float(np.mean(scores))


def random_states(arch: str, n: int) -> list[dict]:
    out = []
    for i in range(n):
        torch.manual_seed(i)
        with torch.no_grad():
            out.append({k: v.clone() for k, v in models.build(arch).state_dict().items() if v.ndim == 4})
    return out


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", type=int, default=329)
    parser.add_argument("--resnet50", type=int, default=0, help="also time this many ResNet50 (paper: 20)")
    parser.add_argument("--baseline-pairs", type=int, default=20)
    parser.add_argument("--methods", default="paper,hungarian")
    args = parser.parse_args()
    runtime.configure()
    nets = random_states("resnet20", args.nets)
    pairs = args.nets * (args.nets - 1) // 2
    flat = [[w.reshape(w.shape[0], -1).double().numpy() for w in s.values()] for s in nets]
    started = time.perf_counter()
    for i in range(args.baseline_pairs):
        per_pair_numpy(flat[i], flat[i + 1])
    per_pair = (time.perf_counter() - started) / args.baseline_pairs
    print(f"baseline per-pair NumPy: {per_pair * 1e3:.1f} ms/pair → {per_pair * pairs:.0f} s "
          f"for {pairs} pairs (extrapolated)")
    for method in args.methods.split(","):
        started = time.perf_counter()
        matrix = similarity.pairwise_similarity(nets, method=method, progress=False).matrix
        seconds = time.perf_counter() - started
        print(f"{method:10s} {args.nets} ResNet20: {seconds:7.1f} s  "
              f"({per_pair * pairs / seconds:5.1f}× the baseline), "
              f"peak RSS {peak_gib():.2f} GiB, mean off-diagonal {matrix[np.triu_indices(args.nets, 1)].mean():.4f}")
    if args.resnet50:
        big = random_states("resnet50", args.resnet50)
        for method in args.methods.split(","):
            started = time.perf_counter()
            similarity.pairwise_similarity(big, method=method, progress=False)
            print(f"{method:10s} {args.resnet50} ResNet50: {time.perf_counter() - started:7.1f} s, "
                  f"peak RSS {peak_gib():.2f} GiB")


if __name__ == "__main__":
    main()
