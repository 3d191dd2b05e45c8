"""Error consistency (Cohen's κ) of every pair at the paper's scale (issue: kappa).

A synthetic population: 329 networks × 37 cells × 10,000 images of random right/wrong
bits, each (network, cell) at a realistic accuracy (a cell difficulty from 0.1 to 0.95
plus a per-network offset). Half of each cell's trials draw from one shared uniform per
image, so errors overlap beyond chance (mean κ ≈ 0.4) as they do for real networks.

Timed in one run: ``behaviour.error_consistency_matrix`` (popcounts over the packed bits)
against a straightforward per-pair NumPy loop (``behaviour.error_consistency``
on pre-unpacked bool rows), the loop timed on a sample of pairs and extrapolated to all
N(N − 1)/2 pairs. Memory: the process's max RSS (importing the package, which imports
torch, is ~0.9 GiB of it) and the peak NumPy allocation of one matrix call (tracemalloc,
in a second, untimed call). ``--table-popcount`` also times the NumPy < 2 fallback.

    .venv/bin/python benchmarks/bench_behaviour.py [--nets 329] [--cells 37] [--images 10000]
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np

from paradox_utils import behaviour
from paradox_utils.correctness import Correctness
from paradox_utils.distortions import PAPER_GRID


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def population(nets: int, cells: int, images: int, seed: int = 0) -> Correctness:
    """Packed random bits, one network at a time (the unpacked floats would be 4 GB)."""
    rng = np.random.default_rng(seed)
    difficulty = np.linspace(0.95, 0.1, cells)[:, None]  # (C, 1) mean accuracy per cell
    shared = rng.random((cells, images), dtype=np.float32)  # the images' own difficulty
    bits = np.empty((nets, cells, (images + 7) // 8), dtype=np.uint8)
    for n in range(nets):
        accuracy = np.clip(difficulty + rng.normal(0, 0.05), 0.01, 0.99)
        draw = np.where(rng.random((cells, images)) < 0.5, shared, rng.random((cells, images), dtype=np.float32))
        bits[n] = np.packbits(draw < accuracy, axis=1)
    grid = [(m, float(lv)) for m, lv in PAPER_GRID]
    cell_names = grid[:cells] if cells <= len(grid) else [("synthetic", float(c)) for c in range(cells)]
    return Correctness([f"net{n:03d}" for n in range(nets)], cell_names, bits, images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", type=int, default=329)
    parser.add_argument("--cells", type=int, default=37)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--baseline-pairs", type=int, default=300, help="pairs the per-pair loop is timed on")
    parser.add_argument("--table-popcount", action="store_true", help="also time the NumPy < 2 table fallback")
    args = parser.parse_args()
    pairs = args.nets * (args.nets - 1) // 2
    started = time.perf_counter()
    data = population(args.nets, args.cells, args.images)
    print(f"population: {args.nets} networks × {args.cells} cells × {args.images} images "
          f"({data.bits.nbytes / 2**20:.0f} MiB packed) in {time.perf_counter() - started:.1f} s, "
          f"peak RSS {peak_gib():.2f} GiB")

    started = time.perf_counter()
    kappa = behaviour.error_consistency_matrix(data)
    fast = time.perf_counter() - started
    tracemalloc.start()
    behaviour.error_consistency_matrix(data)
    allocated = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"error_consistency_matrix: {fast:.2f} s for {pairs} pairs, peak NumPy allocation "
          f"{allocated / 2**20:.0f} MiB, peak RSS {peak_gib():.2f} GiB, "
          f"mean off-diagonal κ {kappa.to_numpy()[np.triu_indices(args.nets, 1)].mean():.4f}")
    if args.table_popcount:
        native, behaviour._popcount = behaviour._popcount, behaviour._popcount_table
        started = time.perf_counter()
        same = behaviour.error_consistency_matrix(data).equals(kappa)
        print(f"  with the table popcount (NumPy < 2): {time.perf_counter() - started:.2f} s, same κ: {same}")
        behaviour._popcount = native

    right = data.boolean().reshape(args.nets, -1)  # (N, C·I) bool, unpacked once outside the timing
    rng = np.random.default_rng(1)
    sample = [tuple(rng.choice(args.nets, 2, replace=False)) for _ in range(min(args.baseline_pairs, pairs))]
    started = time.perf_counter()
    loop = [behaviour.error_consistency(right[i], right[j]) for i, j in sample]
    per_pair = (time.perf_counter() - started) / len(sample)
    worst = max(abs(k - kappa.iloc[i, j]) for k, (i, j) in zip(loop, sample, strict=True))
    print(f"per-pair NumPy loop: {per_pair * 1e3:.2f} ms/pair on {len(sample)} pairs → {per_pair * pairs:.0f} s "
          f"for {pairs} pairs (extrapolated); largest |κ difference| {worst:.1e}")
    print(f"ratio: loop / matrix = {per_pair * pairs / fast:.0f}×  (target: matrix ≤ 60 s for 329 networks; "
          f"{'met' if fast <= 60 else 'MISSED'}), final peak RSS {peak_gib():.2f} GiB")


if __name__ == "__main__":
    main()
