"""Evaluation engine vs a naive loop and vs the forward-only limit (issue: evaluation).

8 ResNet20, 1,000 CIFAR-10 test images, one level of each of the 8 manipulations
(the noisy ones included). Prints seconds and ratios measured in this one run, and the
engine in bfloat16 (``precision="bfloat16"``) against float32: its speed and how often an
image's correctness is the same — meaningful with trained networks (``--checkpoints``:
the first ``--nets`` checkpoints of a folder, e.g. a laptop run's).

    .venv/bin/python benchmarks/bench_evaluation.py [--images 1000] [--nets 8] [--checkpoints DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from paradox_utils import checkpoints, data, distortions, evaluation, models, runtime

CELLS = [("contrast", 0.15), ("illuminant", 0.25), ("blur", 1.0), ("gamma", 3.0),
         ("salt_pepper", 0.05), ("gaussian", 0.05), ("speckle", 0.05), ("poisson", 0.05)]


def naive(nets, subset, batch_size):
    """Re-distorts the data for every network (what a per-network script does)."""
    for net in nets.values():
        for name, level in CELLS:
            for images, labels, index in subset.batches(batch_size):
                x = distortions.apply(images.float() / 255, name, level, index=index)
                with torch.inference_mode():
                    (net(x).argmax(1) == labels).sum()


def limit(nets, distorted, labels):
    """Forward passes over tensors distorted beforehand: the floor for any engine."""
    with torch.inference_mode():
        for net in nets.values():
            for batches in distorted:
                for x, y in zip(batches, labels, strict=True):
                    (net(x).argmax(1) == y).sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--nets", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--checkpoints", type=Path, help="trained networks: the first --nets *.safetensors here")
    args = parser.parse_args()
    runtime.configure(seed=0)
    subset = data.stratified_subset(data.load_cifar10("test"), args.images // 10)
    if args.checkpoints:
        files = sorted(args.checkpoints.glob("*.safetensors"))[:args.nets]
        nets = {f.stem: checkpoints.load(f)[0].eval().to(memory_format=torch.channels_last) for f in files}
    else:
        nets = {f"n{i}": models.build("resnet20").eval().to(memory_format=torch.channels_last)
                for i in range(args.nets)}
    distorted = [[distortions.apply(im.float() / 255, n, lv, index=ix).contiguous(memory_format=torch.channels_last)
                  for im, _, ix in subset.batches(args.batch_size)] for n, lv in CELLS]
    labels = [y for _, y, _ in subset.batches(args.batch_size)]
    limit(nets, distorted[:1], labels)  # warm-up

    timings = {}
    for name, run in [("limit (forward only)", lambda: limit(nets, distorted, labels)),
                      ("engine", lambda: evaluation.evaluate(nets, subset, grid=CELLS, batch_size=args.batch_size,
                                                             progress=False)),
                      ("naive (re-distort per network)", lambda: naive(nets, subset, args.batch_size))]:
        started = time.perf_counter()
        run()
        timings[name] = time.perf_counter() - started
        print(f"{name:34s} {timings[name]:7.2f} s")
    print(f"engine / limit            = {timings['engine'] / timings['limit (forward only)']:.3f}  (goal ≤ 1.3)")
    print(f"naive / engine (speed-up) = {timings['naive (re-distort per network)'] / timings['engine']:.2f}×")
    bits = {}
    for precision in ("float32", "bfloat16"):
        started = time.perf_counter()
        measured = evaluation.evaluate(nets, subset, grid=CELLS, batch_size=args.batch_size, progress=False,
                                       precision=precision)
        table, bits[precision] = measured.table, measured.correctness
        timings[precision] = time.perf_counter() - started
        label = f"engine, {precision}"
        print(f"{label:34s} {timings[precision]:7.2f} s   mean accuracy {table['accuracy'].mean():.4f}")
    same = bits["float32"].boolean() == bits["bfloat16"].boolean()
    print(f"float32 / bfloat16 (speed-up) = {timings['float32'] / timings['bfloat16']:.2f}×; "
          f"the same correctness for {same.mean():.2%} of {same.size:,} (network, cell, image)")


if __name__ == "__main__":
    main()
