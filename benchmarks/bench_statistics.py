"""Chapter 5's statistics at the paper's scale: the Mantel test and the network bootstrap.

Two random symmetric 329 × 329 matrices that share a component (r ≈ 0.3, like a
similarity and a compatibility matrix). Timed in one run: ``paradox.mantel``'s ranked
permutations (both upper triangles ranked once; each permutation a gather and a dot
product) against the literal ones (both triangles ranked again every permutation,
``paradox._permuted_literal``), the literal path timed on ``--baseline`` permutations and
extrapolated; the two paths' values on those permutations are compared. Also
``bootstrap.bootstrap_correlation``, whose resamples must rank again (resampled networks
make ties), at the profile's ``--resamples``.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_statistics.py [--nets 329] [--permutations 999]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from paradox_utils import paradox
from paradox_utils.bootstrap import bootstrap_correlation


def matrices(nets: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shared, a, b = (rng.normal(size=(nets, nets)) for _ in range(3))
    x, y = shared + 1.5 * a, shared + 1.5 * b
    return np.triu(x, 1) + np.triu(x, 1).T, np.triu(y, 1) + np.triu(y, 1).T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", type=int, default=329)
    parser.add_argument("--permutations", type=int, default=999, help="the paper-smoke profile's; paper: 9999")
    parser.add_argument("--baseline", type=int, default=50, help="permutations the literal path is timed on")
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples (paper-smoke's)")
    args = parser.parse_args()
    x, y = matrices(args.nets)
    started = time.perf_counter()
    test = paradox.mantel(x, y, args.permutations)
    ranked = time.perf_counter() - started
    rng = np.random.default_rng(1)
    orders = [rng.permutation(args.nets) for _ in range(args.baseline)]
    started = time.perf_counter()
    slow = np.array(list(paradox._permuted_literal(x, y, orders)))
    literal = (time.perf_counter() - started) / args.baseline * args.permutations
    fast = np.array(list(paradox._permuted_ranked(x, y, orders)))
    started = time.perf_counter()
    interval = bootstrap_correlation(x, y, args.resamples)
    bootstrap = time.perf_counter() - started
    print(f"{args.nets} networks, {args.nets * (args.nets - 1) // 2:,} pairs; Mantel r {test['r']:.3f}, "
          f"p {test['p']:.3g} ({args.permutations} permutations)")
    print(f"Mantel, ranked once:         {ranked:7.2f} s")
    print(f"Mantel, literal (from {args.baseline}):   {literal:7.2f} s   ({literal / ranked:.0f}× the ranked; "
          f"largest difference {np.abs(fast - slow).max():.1e})")
    print(f"bootstrap, {args.resamples} resamples:    {bootstrap:7.2f} s   (CI [{interval['low']:.3f}, "
          f"{interval['high']:.3f}])")
    print("chapter 5 runs 9 Mantel tests and 9 bootstraps (3 similarity methods × 3 behaviours)")


if __name__ == "__main__":
    main()
