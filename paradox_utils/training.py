"""Training and fine-tuning one network, deterministic and resumable (PAPER_SPEC §5).

A :class:`TrainConfig` says everything about a run. :func:`train` writes an atomic
checkpoint after every epoch (weights, optimiser state, iteration count, history);
rerunning after a kill continues from the last finished epoch. The random stream
of epoch ``e`` (shuffle, geometric and manipulation augmentation) comes from a
generator seeded by (seed, e) alone, so a resumed run is bit-identical to an
uninterrupted one on the same machine and thread count.

:func:`train_group` trains several networks at once as one stacked network
(:mod:`paradox_utils.stacking`) — one wide step instead of K narrow ones, for
accelerators. Each member keeps its own init, data order, augmentation stream,
BatchNorm statistics and checkpoint; :func:`train` is the group of one.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoints
from .data import ImageSet, load_cifar10, load_imagenet, stratified_subset
from .distortions import ManipulationAugment
from .models import INITIALISERS, build, conv_layers, num_classes
from .progress import tqdm
from .stacking import StackedNetworks

__all__ = ["GROUP_FREE", "TrainConfig", "fine_tune", "geometric_augment", "learning_rate", "train", "train_group"]

SCHEDULES = ("paper", "cosine", "constant")
OPTIMISERS = ("adam", "sgd")
# The paper's piecewise schedule: (fraction of the epoch budget, factor) — Keras's
# cifar10_resnet break points 80, 120, 160, 180 of 200 epochs.
PAPER_STEPS = ((0.9, 5e-4), (0.8, 1e-3), (0.6, 1e-2), (0.4, 1e-1))


@dataclass
class TrainConfig:
    """One training run. Units: lr per step; epochs over the (sub)set; l2 per conv weight²."""

    arch: str = "resnet20"
    dataset: str = "cifar10"  # or "imagenet"
    seed: int = 0
    epochs: int = 1
    batch_size: int = 128
    optimiser: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # SGD only
    time_decay: float = 1e-6  # Keras Adam "decay": lr / (1 + decay · iteration)
    schedule: str = "paper"
    init: str = "he_normal"
    l2: float = 1e-4  # Keras kernel_regularizer on conv kernels: loss += l2 · Σ w²
    geometric: bool = True  # flip, zoom ±10 %, shift ±10 %
    manipulation: str | None = None  # None, a manipulation's name, or "all"
    train_per_class: int | None = None  # stratified training subset (None: all)
    val_per_class: int | None = 100  # validation images per class from the test split
    data_seed: int = 0  # which subset: shared by the whole population
    num_classes: int | None = None
    channels_last: bool = True  # NHWC convs: faster on this CPU (benchmarks/bench_training.py)
    compile: bool = False  # torch.compile the model (pays a one-off compile per process)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form labels (kept in metadata)

    def validate(self) -> TrainConfig:
        """Raise one clear ValueError for an impossible setting; return self."""
        checks = [
            (self.arch in ("resnet20", "resnet50"), f"arch {self.arch!r} is not resnet20 or resnet50"),
            (self.dataset in ("cifar10", "imagenet"), f"dataset {self.dataset!r} is not cifar10 or imagenet"),
            (self.epochs >= 1, f"epochs must be ≥ 1, got {self.epochs}"),
            (self.batch_size >= 2, f"batch_size must be ≥ 2, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.optimiser in OPTIMISERS, f"optimiser {self.optimiser!r} is not one of {OPTIMISERS}"),
            (self.schedule in SCHEDULES, f"schedule {self.schedule!r} is not one of {SCHEDULES}"),
            (self.init in INITIALISERS, f"init {self.init!r} is not one of {sorted(INITIALISERS)}"),
            (self.train_per_class is None or self.train_per_class >= 1, "train_per_class must be ≥ 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"Invalid training config: {message}.")
        ManipulationAugment(self.manipulation)  # raises for an unknown manipulation
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"Unknown training config keys: {sorted(unknown)}.")
        return cls(**values)


def learning_rate(config: TrainConfig, epoch: int, iteration: int, steps_per_epoch: int) -> float:
    """The lr at ``iteration`` (global step) of ``epoch`` (0-based)."""
    base = config.lr / (1.0 + config.time_decay * iteration)
    if config.schedule == "paper":
        # Keras's scheduler tests "epoch > 80" on 0-based epochs: compare likewise.
        for fraction, factor in PAPER_STEPS:
            if epoch > fraction * config.epochs:
                return base * factor
        return base
    if config.schedule == "cosine":
        total = max(1, config.epochs * steps_per_epoch)
        return base * 0.5 * (1 + math.cos(math.pi * min(iteration, total) / total))
    return base


def geometric_augment(images: torch.Tensor, generator: torch.Generator, flip: float = 0.5,
                      zoom: float = 0.1, shift: float = 0.1) -> torch.Tensor:
    """Batched random flip, zoom (±``zoom``) and shift (±``shift`` of the size).

    images (N, 3, H, W) float; one affine warp per image (bilinear, border fill as
    Keras's ``fill_mode="nearest"``), parameters drawn on the CPU from ``generator``.
    """
    n = images.shape[0]
    u = torch.rand(n, 4, generator=generator)
    scale = 1 + zoom * (2 * u[:, 0] - 1)
    sign = torch.where(u[:, 1] < flip, -1.0, 1.0)
    tx, ty = shift * 2 * (2 * u[:, 2] - 1), shift * 2 * (2 * u[:, 3] - 1)  # grid units span 2
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = sign / scale, 1 / scale
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    grid = F.affine_grid(theta.to(images.device, images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _l2_penalty(model: nn.Module) -> torch.Tensor:
    return sum(module.weight.pow(2).sum() for _, module in conv_layers(model))


def _optimiser(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimiser == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=1e-7)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)


def _optimiser_tensors(optimiser: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for i, state in optimiser.state_dict()["state"].items():
        for key, value in state.items():
            out[f"opt/{i}/{key}"] = torch.as_tensor(value)
    return out


def _load_optimiser(optimiser: torch.optim.Optimizer, extra: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in extra.items():
        if name.startswith("opt/"):
            _, i, key = name.split("/", 2)
            state.setdefault(int(i), {})[key] = value
    saved = optimiser.state_dict()
    saved["state"] = state
    optimiser.load_state_dict(saved)


class _Data:
    """Training batches and the validation set for a config."""

    def __init__(self, config: TrainConfig):
        self.config = config
        if config.dataset == "cifar10":
            train = load_cifar10("train")
            self.train: ImageSet | Any = stratified_subset(train, config.train_per_class, config.data_seed)
            self.val = stratified_subset(load_cifar10("test"), config.val_per_class, config.data_seed)
        else:
            self.train = load_imagenet("train", train=True)
            self.val = load_imagenet("val")

    def __len__(self) -> int:
        return len(self.train)

    def epoch(self, generator: torch.Generator, device) -> Any:
        """Yield (float images in [0, 1] on device, labels) for one shuffled epoch."""
        bs = self.config.batch_size
        if isinstance(self.train, ImageSet):
            order = torch.randperm(len(self.train), generator=generator)
            for start in range(0, len(order), bs):
                rows = order[start:start + bs]
                if len(rows) < 2:  # BatchNorm cannot train on one image
                    continue
                yield self.train.images[rows].to(device).float().div_(255), self.train.labels[rows].to(device)
            return
        loader = torch.utils.data.DataLoader(self.train, batch_size=bs, shuffle=True, generator=generator,
                                             num_workers=min(8, os.cpu_count() or 1), drop_last=True)
        for images, labels, _ in loader:
            yield images.to(device).float().div_(255), labels.to(device)

    def steps(self) -> int:
        bs = self.config.batch_size
        return sum(1 for s in range(0, len(self.train), bs) if len(self.train) - s >= 2)


@torch.inference_mode()
def _accuracies(net: nn.Module, size: int, dataset, device, memory_format, batch_size: int = 500) -> list[float]:
    """Validation accuracy of each of the ``size`` networks in ``net`` (a stack when > 1)."""
    net.eval()
    correct, total = torch.zeros(size, dtype=torch.long), 0
    for images, labels, _ in dataset.batches(batch_size):
        x = images.to(device).float().div_(255)
        x = x.repeat(1, size, 1, 1).contiguous(memory_format=memory_format)  # every member sees the image
        predicted = net(x).reshape(len(x), size, -1).argmax(2)
        correct += (predicted == labels.to(device)[:, None]).sum(0).cpu()
        total += len(labels)
    return (correct / max(total, 1)).tolist()


# Settings a group's members may differ in; everything else (data, optimiser,
# schedule, epochs) is shared, because one optimiser steps them all at one lr.
GROUP_FREE = ("seed", "init", "geometric", "manipulation", "extra")


@dataclass
class _Member:
    """One network of a training group and where it stands."""

    config: TrainConfig
    out: Path
    net_id: str
    parent: Path | None
    model: nn.Module | None = None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # saved optimiser state
    epochs_done: int = 0
    iteration: int = 0
    history: list[dict] = field(default_factory=list)
    meta_base: dict[str, Any] = field(default_factory=dict)
    done: dict | None = None  # the finished checkpoint's metadata


def _load_member(member: _Member, device) -> None:
    """Build the member's network: resumed from ``out``, else from its parent, else fresh."""
    config = member.config
    parent_id = None if member.parent is None else member.parent.name.removesuffix(".safetensors")
    resuming = member.out.with_suffix(".json").exists()
    if resuming:
        meta = checkpoints.load_metadata(member.out)
        if meta.get("config") != config.to_dict():
            raise ValueError(f"Checkpoint {member.out} was trained with another config; move it away or "
                             "give this run another id.")
        if meta.get("status") == "done":
            member.done = meta
            return
    torch.manual_seed(config.seed)
    model = build(config.arch, config.num_classes, init=config.init)
    if resuming:  # its own weights replace the parent's: no need to read the parent
        weights, member.extra, meta = checkpoints.load_state(member.out, arch=config.arch)
        member.epochs_done, member.iteration, member.history = meta["epochs_done"], meta["iteration"], meta["history"]
        parent_id = meta.get("parent", parent_id)
        model.load_state_dict(weights)
    elif member.parent is not None:
        weights, _, parent_meta = checkpoints.load_state(member.parent, arch=config.arch)
        parent_id = parent_meta.get("net_id", parent_id)
        model.load_state_dict(weights)
    member.meta_base = {"config": config.to_dict(), "net_id": member.net_id, "parent": parent_id}
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    member.model = model.to(device, memory_format=memory_format)


def train(config: TrainConfig, out: str | os.PathLike, device: str | torch.device = "cpu",
          parent: str | os.PathLike | None = None, progress: bool = True, net_id: str | None = None) -> dict:
    """Train ``config`` into checkpoint ``out`` (``out``.safetensors + .json); return its metadata.

    ``parent``: a checkpoint to start from (fine-tuning); its id is recorded. An
    existing finished checkpoint at ``out`` is returned as is; an unfinished one is
    resumed; one trained with another config is refused.
    """
    return train_group([config], [out], device, [parent], progress, [net_id])[0]


def train_group(configs: list[TrainConfig], outs: list[str | os.PathLike], device: str | torch.device = "cpu",
                parents: list[str | os.PathLike | None] | None = None, progress: bool = True,
                net_ids: list[str | None] | None = None) -> list[dict]:
    """Train several networks at once, stacked side by side (:mod:`paradox_utils.stacking`).

    Each network gets exactly what :func:`train` would give it — its own init, data
    order and augmentation stream, checkpoint and history — up to floating-point
    summation order; one wide forward/backward serves them all. The configs may
    differ only in ``GROUP_FREE`` settings. Members resumed at different epochs
    (a kill between two members' checkpoints) first catch up alone. Returns each
    member's metadata, in order.
    """
    parents = parents or [None] * len(configs)
    net_ids = net_ids or [None] * len(configs)
    if not (len(configs) == len(outs) == len(parents) == len(net_ids)) or not configs:
        raise ValueError("train_group needs one out, parent and net_id per config (and at least one config).")
    shared = [{k: v for k, v in c.validate().to_dict().items() if k not in GROUP_FREE} for c in configs]
    for i, values in enumerate(shared[1:], 1):
        if differ := sorted(k for k in values if values[k] != shared[0][k]):
            raise ValueError(f"Config {i} differs from config 0 in {differ}; a training group may differ "
                             f"only in {list(GROUP_FREE)}.")
    outs = [Path(o) for o in outs]
    members = [_Member(c, o, n or o.name.removesuffix(".safetensors"), None if p is None else Path(p))
               for c, o, p, n in zip(configs, outs, parents, net_ids, strict=True)]
    for member in members:
        _load_member(member, device)
    data = None
    while pending := [m for m in members if m.done is None]:
        first = min(m.epochs_done for m in pending)
        behind = [m for m in pending if m.epochs_done == first]
        stop = min([m.epochs_done for m in pending if m.epochs_done > first], default=configs[0].epochs)
        data = _Data(configs[0]) if data is None else data
        _train_epochs(behind, stop, data, device, progress)
    return [m.done for m in members]


def _train_epochs(members: list[_Member], stop: int, data: _Data, device, progress: bool) -> None:
    """Train ``members`` (all at the same epoch) up to epoch ``stop``, checkpointing each epoch."""
    config, size = members[0].config, len(members)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    stack = StackedNetworks([m.model for m in members]).to(memory_format=memory_format) if size > 1 else None
    net = members[0].model if stack is None else stack.net
    names = [n for n, _ in net.named_parameters()]

    def param_name(key: str) -> str:  # "opt/<parameter index>/<state>" -> the parameter's name
        return names[int(key.split("/")[1])]

    optimiser = _optimiser(config, net)
    if members[0].extra:
        if stack is None:
            _load_optimiser(optimiser, members[0].extra)
        else:
            _load_optimiser(optimiser, {key: stack.stack_tensors(param_name(key), [m.extra[key].to(device) for m in members])
                                        for key in members[0].extra if key.startswith("opt/")})
    forward = torch.compile(net) if config.compile else net
    steps = data.steps()
    start, iteration = members[0].epochs_done, members[0].iteration
    augments = [ManipulationAugment(m.config.manipulation) for m in members]
    label = members[0].net_id if size == 1 else f"{members[0].net_id} +{size - 1}"
    epochs = tqdm(range(start, stop), desc=label, disable=not progress, initial=start,
                  total=config.epochs, unit="epoch")
    for epoch in epochs:
        generators = [torch.Generator().manual_seed(m.config.seed * 1_000_003 + epoch) for m in members]
        net.train()
        # Running sums stay on the device: reading them every step would stall an accelerator.
        seen, correct, loss_sum = 0, torch.zeros(size, device=device), torch.zeros(size, device=device)
        started = time.perf_counter()
        streams = zip(*(data.epoch(g, device) for g in generators), strict=True)
        batches = tqdm(streams, total=steps, leave=False, disable=not progress, desc=f"epoch {epoch + 1}")
        for batch in batches:
            lr = learning_rate(config, epoch, iteration, steps)
            for group in optimiser.param_groups:
                group["lr"] = lr
            inputs = []
            for (images, _), member, generator, manipulate in zip(batch, members, generators, augments, strict=True):
                if member.config.geometric and config.dataset == "cifar10":
                    images = geometric_augment(images, generator)
                inputs.append(manipulate(images, generator))
            labels = torch.stack([b[1] for b in batch], 1)  # (N, K)
            x = (inputs[0] if size == 1 else torch.cat(inputs, 1)).contiguous(memory_format=memory_format)
            logits = forward(x).reshape(len(x), size, -1)
            losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(-1, size).mean(0)
            total_loss = losses.sum() + config.l2 * _l2_penalty(net) if config.l2 else losses.sum()
            optimiser.zero_grad(set_to_none=True)
            total_loss.backward()
            optimiser.step()
            iteration += 1
            seen += len(labels)
            correct += (logits.argmax(2) == labels).sum(0)
            loss_sum += losses.detach() * len(labels)
            if progress and iteration % 10 == 0:  # mean over the group's networks
                batches.set_postfix(loss=f"{float(loss_sum.mean()) / seen:.3f}",
                                    acc=f"{float(correct.mean()) / seen:.3f}", lr=f"{lr:.2e}")
        loss_sum, correct = loss_sum.tolist(), correct.tolist()  # waits for the device
        seconds = time.perf_counter() - started
        vals = _accuracies(net, size, data.val, device, memory_format)
        epochs.set_postfix(val_acc=f"{max(vals):.3f}")
        done = epoch + 1 == config.epochs
        opt_state = {} if done else _optimiser_tensors(optimiser)  # optimiser state only while unfinished
        for k, member in enumerate(members):
            member.history.append({"epoch": epoch + 1, "loss": float(loss_sum[k]) / max(seen, 1),
                                   "train_accuracy": float(correct[k]) / max(seen, 1), "val_accuracy": vals[k],
                                   "lr": lr, "seconds": seconds, "images_per_second": seen / seconds,
                                   "group_size": size})
            if stack is None:
                state, extra = net.state_dict(), opt_state
            else:
                state = stack.member_state_dict(k)
                extra = {key: stack.member_tensor(param_name(key), value, k) for key, value in opt_state.items()}
            meta = checkpoints.save(member.out, state, config.arch, num_classes(member.model), extra_tensors=extra,
                                    **member.meta_base, epochs_done=epoch + 1, iteration=iteration,
                                    history=member.history, status="done" if done else "running",
                                    metrics={"val_accuracy": vals[k]})
            member.epochs_done, member.iteration, member.extra = epoch + 1, iteration, extra
            if done:
                member.done = meta
    if stack is not None and stop < config.epochs:  # caught up: the caller regroups with the members ahead
        for k, member in enumerate(members):
            member.model.load_state_dict(stack.member_state_dict(k))


def fine_tune(parent: str | os.PathLike, config: TrainConfig, out: str | os.PathLike, **kwargs) -> dict:
    """An offspring of checkpoint ``parent`` trained with ``config`` into ``out``.

    The offspring's metadata names its parent; ``config.arch`` must match the parent's.
    """
    parent_meta = checkpoints.load_metadata(parent)
    if parent_meta.get("status", "done") != "done":
        raise ValueError(f"Parent checkpoint {parent} has not finished training.")
    return train(config, out, parent=parent, **kwargs)
