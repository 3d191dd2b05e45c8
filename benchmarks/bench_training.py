"""ResNet20 training throughput on this machine (issue: training).

Baseline: the plain recipe — a torchvision DataLoader over PIL images with
per-sample transforms (flip, ±10 % shift and zoom, ToTensor), NCHW, every setting
at its default (including glibc's allocator: the baseline runs in its own process).
Against it, measured in the same run: the project's loop (uint8 tensors in memory,
batched augmentation on tensors, tuned allocator) in NCHW and channels_last, then
in bfloat16 mixed precision (``precision="bfloat16"``: native on CPUs with AVX512-BF16
or AMX, emulated and slower elsewhere), optionally with torch.compile, and K networks
trained at once as one stacked network (``--group K``; images/s summed over the K
networks). "Compute limit" is forward + backward + Adam on one batch already in
memory — no data work at all — so limit / baseline bounds what any input pipeline can
gain here, in float32 and in bfloat16.

    .venv/bin/python benchmarks/bench_training.py [--images 5120] [--compile] [--group 4 8] [--device cuda]
        [--project paper]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from paradox_utils import data, models, population, profiles, runtime
from paradox_utils.training import TrainConfig, mixed_precision, train_group


class PILDataset(torch.utils.data.Dataset):
    def __init__(self, subset, transform):
        self.images = [Image.fromarray(im.permute(1, 2, 0).numpy()) for im in subset.images]
        self.labels = subset.labels.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


def baseline(subset, batch_size: int, device: str) -> float:
    transform = transforms.Compose([transforms.RandomHorizontalFlip(),
                                    transforms.RandomAffine(0, translate=(0.1, 0.1), scale=(0.9, 1.1)),
                                    transforms.ToTensor()])
    loader = torch.utils.data.DataLoader(PILDataset(subset, transform), batch_size=batch_size, shuffle=True)
    torch.manual_seed(0)
    model = models.build("resnet20").to(device).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    started, seen = time.perf_counter(), 0
    for images, labels in loader:
        loss = F.cross_entropy(model(images.to(device)), labels.to(device))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        seen += len(labels)
    if device != "cpu":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - started)


def compute_limit(batch_size: int, device: str, steps: int = 30, precision: str = "float32") -> float:
    """Forward + backward + Adam on one resident channels_last batch: no data work at all."""
    model = models.build("resnet20").to(device, memory_format=torch.channels_last).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch_size, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,), device=device)
    for step in range(steps + 5):
        if step == 5:
            if device != "cpu":
                torch.cuda.synchronize()
            started = time.perf_counter()
        with mixed_precision(precision, device):
            logits = model(x).float()
        loss = F.cross_entropy(logits, y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    if device != "cpu":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - started)


def ours(per_class: int, batch_size: int, device: str, group: int = 1, **changes) -> float:
    """Steady state: the second of two epochs (the first pays warm-up and any compile)."""
    configs = [TrainConfig(epochs=2, train_per_class=per_class, val_per_class=1, batch_size=batch_size,
                           schedule="constant", seed=seed, **changes) for seed in range(group)]
    with tempfile.TemporaryDirectory() as folder:
        metas = train_group(configs, [f"{folder}/net{i}" for i in range(group)], device=device, progress=False)
    return sum(meta["history"][-1]["images_per_second"] for meta in metas)


def training_images(profile: str) -> tuple[int, int]:
    """(networks, images seen in training) of a profile's whole population (CIFAR-10)."""
    specs = population.from_parameters(profiles.profile_values(profile))
    return len(specs), sum(s.config.epochs * population.training_images(s.config) for s in specs)


def _baseline_process(args) -> float:
    """The baseline in a fresh interpreter: default allocator, same threads."""
    command = [sys.executable, __file__, "--baseline-only", "--images", str(args.images),
               "--batch-size", str(args.batch_size), "--device", args.device]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["baseline"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5120, help="training images per measurement")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--group", type=int, nargs="*", default=[], help="also time K networks stacked, per K")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--project", metavar="PROFILE",
                        help="also project the hours a profile's population takes at each measured rate")
    parser.add_argument("--baseline-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    subset = data.stratified_subset(data.load_cifar10("train"), args.images // 10)
    if args.baseline_only:  # child process: no runtime.configure(), so glibc's defaults stay
        baseline(data.stratified_subset(subset, 13), args.batch_size, args.device)  # warm-up
        print(json.dumps({"baseline": baseline(subset, args.batch_size, args.device)}))
        return
    base = _baseline_process(args)
    runtime.configure()
    per_class = args.images // 10
    ours(10, args.batch_size, args.device)  # warm-up: caches, allocator, thread pool
    rates = {"baseline (DataLoader + PIL, NCHW, defaults)": base,
             "compute limit (resident batch, channels_last)": compute_limit(args.batch_size, args.device),
             "ours, NCHW": ours(per_class, args.batch_size, args.device, channels_last=False),
             "ours, channels_last": ours(per_class, args.batch_size, args.device, channels_last=True),
             "compute limit, bfloat16": compute_limit(args.batch_size, args.device, precision="bfloat16"),
             "ours, channels_last, bfloat16": ours(per_class, args.batch_size, args.device, precision="bfloat16")}
    if args.compile:
        rates["ours, channels_last + torch.compile"] = ours(per_class, args.batch_size, args.device, compile=True)
    for k in args.group:
        rates[f"ours, {k} networks stacked (sum)"] = ours(per_class, args.batch_size, args.device, group=k)
    for name, rate in rates.items():
        print(f"{name:48s} {rate:7.0f} images/s   {rate / base:5.2f}× baseline")
    print(f"threads: {torch.get_num_threads()}; device {args.device}; {args.images} images per measurement, "
          f"batch {args.batch_size}")
    trained = {name: rate for name, rate in rates.items() if not name.startswith("compute limit")}
    best = max(trained, key=trained.get)
    print(f"one ResNet20 epoch (50,000 images) at '{best}': {50_000 / trained[best]:.1f} s per network")
    if args.project:
        networks, images = training_images(args.project)
        for name, rate in trained.items():
            print(f"{args.project} ({networks} networks, {images / 1e6:,.1f} M training images) at "
                  f"'{name}': {images / rate / 3600:8.1f} {args.device}-hours (training only)")


if __name__ == "__main__":
    main()
