"""Training and fine-tuning one network, deterministic and resumable (as in the paper).

A :class:`TrainConfig` says everything about a run. :func:`train` writes an atomic
checkpoint after every epoch (weights, optimiser state, iteration count, history);
rerunning after a kill continues from the last finished epoch. The random stream
of epoch ``e`` (shuffle, geometric and manipulation augmentation) comes from a
generator seeded by (seed, e) alone, so a resumed run is bit-identical to an
uninterrupted one on the same machine and thread count. A network whose training loss
or weights become NaN or ±inf stops at that epoch's end with :class:`TrainingDiverged`,
before the epoch's checkpoint is written: a diverged network is never saved as done.

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
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoints
from .data import ImageSet, load_cifar10, load_imagenet, stratified_subset
from .distortions import ManipulationAugment
from .models import ARCHITECTURES, INITIALISERS, build, conv_layers, num_classes
from .names import listed
from .profiles import kind_name, same_kind
from .progress import tqdm
from .runtime import available_cores
from .stacking import StackedNetworks

__all__ = ["GROUP_FREE", "PRECISIONS", "SPEED_SWITCHES", "TrainConfig", "TrainingData", "TrainingDiverged",
           "config_differences", "geometric_augment", "learning_rate", "mixed_precision", "native_bfloat16", "train",
           "train_group"]

SCHEDULES = ("paper", "cosine", "constant", "onecycle")
OPTIMISERS = ("adam", "sgd")
PRECISIONS = ("float32", "bfloat16")
# The paper's piecewise schedule: (fraction of the epoch budget, factor) — Keras's
# cifar10_resnet break points 80, 120, 160, 180 of 200 epochs.
PAPER_STEPS = ((0.9, 5e-4), (0.8, 1e-3), (0.6, 1e-2), (0.4, 1e-1))
# One-cycle (triangular): from ONECYCLE_START·lr up to lr over the first ONECYCLE_PEAK of the
# steps, then down to 0 at the last — the policy of fast CIFAR-10 training recipes.
ONECYCLE_START, ONECYCLE_PEAK = 0.1, 0.2


class TrainingDiverged(ValueError):
    """A network whose training loss, or weights, became NaN or ±inf: the epoch is not saved, and
    the message (one sentence) names the network, the epoch and what to change."""


# Settings that change how fast a network trains, not what it learns: changing one
# never makes a checkpoint "trained with another config".
SPEED_SWITCHES = ("channels_last", "compile")


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
    nesterov: bool = False  # SGD only: Nesterov momentum
    time_decay: float = 1e-6  # Keras Adam "decay": lr / (1 + decay · iteration)
    # "paper": Keras's piecewise steps (PAPER_STEPS); "constant": the base lr, so with time_decay
    # > 0 the time decay alone; "cosine": half a cosine to 0 over the run; "onecycle": up, then
    # down to 0 (ONECYCLE_*). time_decay acts on all.
    schedule: str = "paper"
    init: str = "he_normal"
    l2: float = 1e-4  # Keras kernel_regularizer on conv kernels: loss += l2 · Σ w²
    label_smoothing: float = 0.0  # cross-entropy against (1 − ε)·one-hot + ε/classes
    geometric: bool = True  # flip, zoom ±10 %, shift ±10 %
    manipulation: str | None = None  # None, a manipulation's name, or "all"
    train_per_class: int | None = None  # stratified training subset (None: all)
    val_per_class: int | None = 100  # validation images per class from the test split
    data_seed: int = 0  # which subset: shared by the whole population
    num_classes: int | None = None
    # "bfloat16": mixed precision (torch.autocast) — the forward and backward convolutions and
    # matrix products in bfloat16, the weights, optimiser, loss and validation in float32. It
    # changes the arithmetic, so it is part of what a network is (not a speed switch).
    precision: str = "float32"
    channels_last: bool = True  # NHWC convs: faster on this CPU (benchmarks/bench_training.py)
    compile: bool = False  # torch.compile the model (pays a one-off compile per process)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form labels (kept in metadata)

    def validate(self) -> TrainConfig:
        """Raise one clear ValueError for an impossible setting or a value of the wrong type; return self."""
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), _FIELD_TYPES[f.name]
            if not same_kind(kind, value):
                raise ValueError(f"Invalid training config: {f.name} should be {kind_name(kind)}, "
                                 f"got {value!r} ({type(value).__name__}).")
        checks = [
            (self.arch in ARCHITECTURES, f"arch {self.arch!r} is not one of {', '.join(ARCHITECTURES)}"),
            (self.dataset in ("cifar10", "imagenet"), f"dataset {self.dataset!r} is not cifar10 or imagenet"),
            (self.epochs >= 1, f"epochs must be ≥ 1, got {self.epochs}"),
            (self.batch_size >= 2, f"batch_size must be ≥ 2, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (self.time_decay >= 0, f"time_decay must be ≥ 0, got {self.time_decay}"),
            (self.l2 >= 0, f"l2 must be ≥ 0, got {self.l2}"),
            (0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}"),
            (not self.nesterov or self.optimiser == "sgd", "nesterov needs optimiser sgd"),
            (self.optimiser in OPTIMISERS, f"optimiser {self.optimiser!r} is not one of {OPTIMISERS}"),
            (self.schedule in SCHEDULES, f"schedule {self.schedule!r} is not one of {SCHEDULES}"),
            (self.precision in PRECISIONS, f"precision {self.precision!r} is not one of {PRECISIONS}"),
            (self.init in INITIALISERS, f"init {self.init!r} is not one of {sorted(INITIALISERS)}"),
            (self.train_per_class is None or self.train_per_class >= 1, "train_per_class must be ≥ 1"),
            (self.val_per_class is None or self.val_per_class >= 1, "val_per_class must be ≥ 1"),
            (self.num_classes is None or self.num_classes >= 2, "num_classes must be ≥ 2"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"Invalid training config: {message}.")
        ManipulationAugment(self.manipulation)  # raises for an unknown manipulation
        return self

    def identity(self) -> dict[str, Any]:
        """The settings that make a network what it is: everything but the speed switches."""
        return {k: v for k, v in self.to_dict().items() if k not in SPEED_SWITCHES}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"Unknown training config keys: {sorted(unknown)}.")
        return cls(**values)


# Each field's annotation, evaluated (``int | None``, ``dict[str, Any]``): the types validate() checks.
_FIELD_TYPES = typing.get_type_hints(TrainConfig)


def learning_rate(config: TrainConfig, epoch: int, iteration: int, steps_per_epoch: int) -> float:
    """The lr at ``iteration`` (global step) of ``epoch`` (0-based)."""
    base = config.lr / (1.0 + config.time_decay * iteration)
    if config.schedule == "paper":
        # Keras's scheduler tests "epoch > 80" on 0-based epochs: compare likewise.
        for fraction, factor in PAPER_STEPS:
            if epoch > fraction * config.epochs:
                return base * factor
        return base
    total = max(1, config.epochs * steps_per_epoch)
    progress = min(iteration, total) / total
    if config.schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    if config.schedule == "onecycle":
        if progress < ONECYCLE_PEAK:
            return base * (ONECYCLE_START + (1 - ONECYCLE_START) * progress / ONECYCLE_PEAK)
        return base * (1 - progress) / (1 - ONECYCLE_PEAK)
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


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (oneDNN with AVX512-BF16 or AMX): there,
    precision "bfloat16" trains ResNet20 1.6–2.2× faster than float32 (benchmarks/bench_training.py);
    elsewhere bfloat16 is emulated and slower."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(torch.backends.mkldnn.is_available() and check is not None and check())


def mixed_precision(precision: str, device: str | torch.device):
    """The context a forward pass runs in — a training step's, or an evaluation's: for precision
    "bfloat16", torch.autocast (convolutions and matrix products in bfloat16, everything else
    float32); for "float32", a no-op."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bfloat16")


def _l2_penalty(model: nn.Module) -> torch.Tensor:
    return sum(module.weight.pow(2).sum() for _, module in conv_layers(model))


def _optimiser(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimiser == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=1e-7)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


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


@dataclass
class TrainingData:
    """The images a network trains on and the held-out images its validation accuracy is
    measured on: :class:`~paradox_utils.data.ImageSet` (in memory) or ``ImageFolderSet``."""

    train: Any
    val: Any

    @classmethod
    def for_config(cls, config: TrainConfig) -> TrainingData:
        """The config's dataset from its usual source (``PARADOX_CIFAR10`` / ``PARADOX_IMAGENET``)."""
        if config.dataset == "cifar10":
            train = stratified_subset(load_cifar10("train"), config.train_per_class, config.data_seed)
            val = stratified_subset(load_cifar10("test"), config.val_per_class, config.data_seed)
            return cls(train, val)
        # ImageNet: random-resized crops and flips are the geometric augmentation here
        return cls(load_imagenet("train", train=config.geometric), load_imagenet("val"))


def _batches(dataset, batch_size: int, generator: torch.Generator, device) -> Any:
    """Yield (float images in [0, 1] on device, labels) for one shuffled epoch of ``dataset``."""
    if isinstance(dataset, ImageSet):
        order = torch.randperm(len(dataset), generator=generator)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            if len(rows) < 2:  # BatchNorm cannot train on one image
                continue
            yield dataset.images[rows].to(device).float().div_(255), dataset.labels[rows].to(device)
        return
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator,
                                         num_workers=min(8, available_cores()), drop_last=True)
    for images, labels, _ in loader:
        yield images.to(device).float().div_(255), labels.to(device)


def _steps(dataset, batch_size: int) -> int:
    if isinstance(dataset, ImageSet):
        return sum(1 for s in range(0, len(dataset), batch_size) if len(dataset) - s >= 2)
    return len(dataset) // batch_size


@torch.inference_mode()
def _accuracies(net: nn.Module, size: int, dataset, device, memory_format, batch_size: int = 500) -> list[float]:
    """Validation accuracy of each of the ``size`` networks stacked in ``net``."""
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


def config_differences(recorded: dict[str, Any], config: TrainConfig) -> list[str]:
    """The identity fields in which a checkpoint's recorded config differs from ``config``.

    A field the record lacks counts as its default: a setting added to ``TrainConfig``
    later, with a default that does what the code did before, leaves older checkpoints
    current (and a non-default value makes them stale)."""
    wanted = config.identity()
    defaults = TrainConfig().identity()
    fields = set(wanted) | (set(recorded) - set(SPEED_SWITCHES))
    return sorted(k for k in fields if recorded.get(k, defaults.get(k)) != wanted.get(k))


def _load_member(member: _Member, device) -> None:
    """Build the member's network: resumed from ``out``, else from its parent, else fresh.

    A finished checkpoint with the same identity is returned as is; one trained with
    another config is refused; an unfinished one whose file is corrupt starts again.
    """
    config = member.config
    parent_id = None if member.parent is None else member.parent.name.removesuffix(".safetensors")
    resuming = member.out.with_suffix(".json").exists()
    if resuming and (problem := checkpoints.verify(member.out)):
        warnings.warn(f"{problem} {member.net_id} is trained again from the start.", RuntimeWarning, stacklevel=3)
        resuming = False
    if resuming:
        meta = checkpoints.load_metadata(member.out)
        if differ := config_differences(meta.get("config") or {}, config):
            raise ValueError(f"Checkpoint {member.out} was trained with another config (differs in "
                             f"{', '.join(differ)}); move it away or give this run another id.")
        if meta.get("status") == "done":
            member.done = meta
            return
    torch.manual_seed(config.seed)
    model = build(config.arch, config.num_classes, init=config.init)
    parent_sha = None
    if resuming:  # its own weights replace the parent's: no need to read the parent
        weights, member.extra, meta = checkpoints.load_state(member.out, arch=config.arch)
        member.epochs_done, member.iteration, member.history = meta["epochs_done"], meta["iteration"], meta["history"]
        parent_id, parent_sha = meta.get("parent", parent_id), meta.get("parent_sha256")
        model.load_state_dict(weights)
    elif member.parent is not None:
        weights, _, parent_meta = checkpoints.load_state(member.parent, arch=config.arch)
        parent_id, parent_sha = parent_meta.get("net_id", parent_id), parent_meta["sha256"]
        model.load_state_dict(weights)
    member.meta_base = {"config": config.to_dict(), "net_id": member.net_id, "parent": parent_id,
                        "parent_sha256": parent_sha}
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    member.model = model.to(device, memory_format=memory_format)


def train(config: TrainConfig, out: str | os.PathLike, device: str | torch.device = "cpu",
          parent: str | os.PathLike | None = None, progress: bool = True, net_id: str | None = None,
          data: TrainingData | None = None) -> dict:
    """Train ``config`` into checkpoint ``out`` (``out``.safetensors + .json); return its metadata.

    ``parent``: a checkpoint to start from (fine-tuning); its id and sha256 are
    recorded. ``data``: the training and validation sets (default: the config's
    dataset from its usual source). An existing finished checkpoint at ``out`` is
    returned as is; an unfinished one is resumed; one trained with another config is
    refused.
    """
    return train_group([config], [out], device, [parent], progress, [net_id], data)[0]


def train_group(configs: list[TrainConfig], outs: list[str | os.PathLike], device: str | torch.device = "cpu",
                parents: list[str | os.PathLike | None] | None = None, progress: bool = True,
                net_ids: list[str | None] | None = None, data: TrainingData | None = None) -> list[dict]:
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
    while pending := [m for m in members if m.done is None]:
        first = min(m.epochs_done for m in pending)
        behind = [m for m in pending if m.epochs_done == first]
        stop = min([m.epochs_done for m in pending if m.epochs_done > first], default=configs[0].epochs)
        data = data or TrainingData.for_config(configs[0])
        _Run(behind, data, device).epochs(stop, progress)
    return [m.done for m in members]


class _Run:
    """One training group's run: the stack of its members, the optimiser, the steps."""

    def __init__(self, members: list[_Member], data: TrainingData, device):
        self.members, self.data, self.device = members, data, device
        self.config, self.size = members[0].config, len(members)
        self.memory_format = torch.channels_last if self.config.channels_last else torch.contiguous_format
        self.stack = StackedNetworks([m.model for m in members]).to(memory_format=self.memory_format)
        self.net = self.stack.net
        self.forward = torch.compile(self.net) if self.config.compile else self.net
        self.names = [n for n, _ in self.net.named_parameters()]
        self.optimiser = _optimiser(self.config, self.net)
        if members[0].extra:  # resumed: every member saved its slice of the optimiser state
            _load_optimiser(self.optimiser, {key: self.stack.stack_tensors(self._param(key), [m.extra[key].to(device)
                                                                                          for m in members])
                                             for key in members[0].extra if key.startswith("opt/")})
        self.augments = [ManipulationAugment(m.config.manipulation) for m in members]
        self.steps = _steps(data.train, self.config.batch_size)
        if self.config.precision == "bfloat16" and torch.device(device).type == "cpu" and not native_bfloat16():
            warnings.warn("This CPU has no native bfloat16 arithmetic (AVX512-BF16 or AMX), so precision "
                          "'bfloat16' trains slower than 'float32' here; set precision: float32 to train faster "
                          "(the networks then differ slightly).", RuntimeWarning, stacklevel=4)

    def _param(self, key: str) -> str:
        """"opt/<parameter index>/<state>" → the parameter's name."""
        return self.names[int(key.split("/")[1])]

    def epochs(self, stop: int, progress: bool) -> None:
        """Train every member (all at the same epoch) up to epoch ``stop``, checkpointing each epoch."""
        first = self.members[0]
        label = first.net_id if self.size == 1 else f"{first.net_id} +{self.size - 1}"
        bar = tqdm(range(first.epochs_done, stop), desc=label, disable=not progress, initial=first.epochs_done,
                   total=self.config.epochs, unit="epoch")
        for epoch in bar:
            record = self._epoch(epoch, progress)
            bar.set_postfix(val_acc=f"{max(record['val_accuracy']):.3f}")
            self._save(epoch, record)
        if stop < self.config.epochs:  # caught up: the caller regroups these members with those ahead
            for k, member in enumerate(self.members):
                member.model.load_state_dict(self.stack.member_state_dict(k))

    def _inputs(self, batch, generators) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's augmented images side by side (N, K·3, H, W) and labels (N, K)."""
        inputs = []
        for (images, _), member, generator, manipulate in zip(batch, self.members, generators, self.augments,
                                                              strict=True):
            if member.config.geometric and isinstance(self.data.train, ImageSet):  # folders crop when loading
                images = geometric_augment(images, generator)
            inputs.append(manipulate(images, generator))
        x = torch.cat(inputs, 1).contiguous(memory_format=self.memory_format)
        return x, torch.stack([b[1] for b in batch], 1)

    def _epoch(self, epoch: int, progress: bool) -> dict[str, Any]:
        """One pass over the training set; returns per-member loss, accuracy and the epoch's numbers."""
        config, size, device = self.config, self.size, self.device
        generators = [torch.Generator().manual_seed(m.config.seed * 1_000_003 + epoch) for m in self.members]
        iteration = self.members[0].iteration
        self.net.train()
        # Running sums stay on the device: reading them every step would stall an accelerator.
        seen, correct, loss_sum = 0, torch.zeros(size, device=device), torch.zeros(size, device=device)
        started = time.perf_counter()
        streams = zip(*(_batches(self.data.train, config.batch_size, g, device) for g in generators), strict=True)
        batches = tqdm(streams, total=self.steps, leave=False, disable=not progress, desc=f"epoch {epoch + 1}")
        lr = config.lr
        for batch in batches:
            lr = learning_rate(config, epoch, iteration, self.steps)
            x, labels = self._inputs(batch, generators)
            losses, logits = self._step(x, labels, lr)
            iteration += 1
            seen += len(labels)
            correct += (logits.argmax(2) == labels).sum(0)
            loss_sum += losses.detach() * len(labels)
            if progress and iteration % 10 == 0:  # mean over the group's networks
                batches.set_postfix(loss=f"{float(loss_sum.mean()) / seen:.3f}",
                                    acc=f"{float(correct.mean()) / seen:.3f}", lr=f"{lr:.2e}")
        loss_sum, correct = loss_sum.tolist(), correct.tolist()  # waits for the device
        seconds = time.perf_counter() - started
        self._refuse_diverged(epoch, loss_sum)
        vals = _accuracies(self.net, size, self.data.val, device, self.memory_format)
        return {"loss": [v / max(seen, 1) for v in loss_sum], "train_accuracy": [c / max(seen, 1) for c in correct],
                "val_accuracy": vals, "lr": lr, "seconds": seconds, "images_per_second": seen / seconds,
                "iteration": iteration}

    def _refuse_diverged(self, epoch: int, loss_sums: list[float]) -> None:
        """Raise :class:`TrainingDiverged` when a member's summed training loss over ``epoch``
        (NaN or inf once any step's was), or else its weights after it, are not finite: a diverged
        network is never checkpointed, and the others of its stack stop with it."""
        causes = {}
        state = self.net.state_dict()
        for k, (member, loss) in enumerate(zip(self.members, loss_sums, strict=True)):
            if not math.isfinite(loss):
                causes[member.net_id] = f"the training loss is {'NaN' if math.isnan(loss) else 'inf'}"
            elif (name := checkpoints.first_nonfinite({n: self.stack.member_tensor(n, value, k)
                                                       for n, value in state.items()})) is not None:
                causes[member.net_id] = f"its {name} holds NaN or ±inf"
        if causes:
            others = [m.net_id for m in self.members if m.net_id not in causes]
            stacked = (f" ({listed(others)}, trained stacked with {'it' if len(causes) == 1 else 'them'}, "
                       f"stop{'s' if len(others) == 1 else ''} too)" if others else "")
            raise TrainingDiverged(f"{listed(list(causes))} diverged in epoch {epoch + 1}: "
                                   f"{next(iter(causes.values()))}{stacked}; lower lr or use another schedule.")

    def _step(self, x: torch.Tensor, labels: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step of every member; returns (per-member mean loss (K,), logits (N, K, classes))."""
        for group in self.optimiser.param_groups:
            group["lr"] = lr
        with mixed_precision(self.config.precision, self.device):
            logits = self.forward(x).reshape(len(x), self.size, -1).float()
        losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none",
                                 label_smoothing=self.config.label_smoothing).view(-1, self.size).mean(0)
        total = losses.sum() + self.config.l2 * _l2_penalty(self.net) if self.config.l2 else losses.sum()
        self.optimiser.zero_grad(set_to_none=True)
        total.backward()
        self.optimiser.step()
        return losses, logits

    def _save(self, epoch: int, record: dict[str, Any]) -> None:
        """Every member's checkpoint after ``epoch`` (optimiser state only while unfinished)."""
        done = epoch + 1 == self.config.epochs
        opt_state = {} if done else _optimiser_tensors(self.optimiser)
        for k, member in enumerate(self.members):
            member.history.append({"epoch": epoch + 1, "loss": record["loss"][k],
                                   "train_accuracy": record["train_accuracy"][k],
                                   "val_accuracy": record["val_accuracy"][k], "lr": record["lr"],
                                   "seconds": record["seconds"], "images_per_second": record["images_per_second"],
                                   "group_size": self.size})
            extra = {key: self.stack.member_tensor(self._param(key), value, k) for key, value in opt_state.items()}
            meta = checkpoints.save(member.out, self.stack.member_state_dict(k), self.config.arch,
                                    num_classes(member.model), extra_tensors=extra, **member.meta_base,
                                    epochs_done=epoch + 1, iteration=record["iteration"], history=member.history,
                                    status="done" if done else "running",
                                    metrics={"val_accuracy": record["val_accuracy"][k]})
            member.epochs_done, member.iteration, member.extra = epoch + 1, record["iteration"], extra
            if done:
                member.done = meta
