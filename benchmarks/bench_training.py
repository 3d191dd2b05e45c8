"""ResNet20 training throughput on this machine (issue: training).

Baseline: the plain recipe — a torchvision DataLoader over PIL images with
per-sample transforms (flip, ±10 % shift and zoom, ToTensor), NCHW, defaults.
Against it, measured in the same run: the project's loop (uint8 tensors in memory,
batched augmentation on tensors) in NCHW and channels_last, and optionally with
torch.compile. Prints images/s and ratios.

    .venv/bin/python benchmarks/bench_training.py [--images 5120] [--compile]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from paradox_utils import data, models, runtime
from paradox_utils.training import TrainConfig, train


class PILDataset(torch.utils.data.Dataset):
    def __init__(self, subset, transform):
        self.images = [Image.fromarray(im.permute(1, 2, 0).numpy()) for im in subset.images]
        self.labels = subset.labels.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


def baseline(subset, batch_size: int) -> float:
    transform = transforms.Compose([transforms.RandomHorizontalFlip(),
                                    transforms.RandomAffine(0, translate=(0.1, 0.1), scale=(0.9, 1.1)),
                                    transforms.ToTensor()])
    loader = torch.utils.data.DataLoader(PILDataset(subset, transform), batch_size=batch_size, shuffle=True)
    torch.manual_seed(0)
    model = models.build("resnet20").train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    started, seen = time.perf_counter(), 0
    for images, labels in loader:
        loss = F.cross_entropy(model(images), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        seen += len(labels)
    return seen / (time.perf_counter() - started)


def ours(per_class: int, batch_size: int, **changes) -> float:
    """Steady state: the second of two epochs (the first pays warm-up and any compile)."""
    config = TrainConfig(epochs=2, train_per_class=per_class, val_per_class=1, batch_size=batch_size,
                         schedule="constant", **changes)
    with tempfile.TemporaryDirectory() as folder:
        return train(config, f"{folder}/net", progress=False)["history"][-1]["images_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5120, help="training images per measurement")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    args = parser.parse_args()
    runtime.configure()
    per_class = args.images // 10
    subset = data.stratified_subset(data.load_cifar10("train"), per_class)
    ours(10, args.batch_size)  # warm-up: caches, allocator, thread pool
    baseline(data.stratified_subset(subset, 13), args.batch_size)
    rates = {"baseline (DataLoader + PIL transforms, NCHW)": baseline(subset, args.batch_size),
             "ours, NCHW": ours(per_class, args.batch_size, channels_last=False),
             "ours, channels_last": ours(per_class, args.batch_size, channels_last=True)}
    if args.compile:
        rates["ours, channels_last + torch.compile"] = ours(per_class, args.batch_size, compile=True)
    base = rates["baseline (DataLoader + PIL transforms, NCHW)"]
    for name, rate in rates.items():
        print(f"{name:45s} {rate:7.0f} images/s   {rate / base:5.2f}× baseline")
    print(f"threads: {torch.get_num_threads()}; {args.images} images per measurement, batch {args.batch_size}")


if __name__ == "__main__":
    main()
