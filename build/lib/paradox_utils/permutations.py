"""The ``coupled`` alignment: one channel permutation per group, consistent through a ResNet.

A layer's input channels follow the permutation of the layer feeding it, and the
convs whose outputs meet in a residual addition share one permutation. Which
permutation acts on which axis of which tensor is *declared* per architecture, as
in git-re-basin's ``resnet20_permutation_spec``: a :class:`PermutationSpec` maps
every state_dict entry to one group name (or None) per axis. :data:`SPECS` holds
one spec builder per architecture name; a network's architecture is found by
comparing its state_dict's names and shapes exactly with ``models.build(arch)``
(built on the meta device), and anything else is refused in one sentence.

To support another architecture, write ``<arch>_permutation_spec()`` with the
``_SpecBuilder`` helpers and add it to :data:`SPECS` (``models.build`` must know
the name); ``tests/test_similarity.py`` then checks that the spec covers the
network exactly and that permuting by it leaves the network's function unchanged.

The permutations are found by weight matching (Ainsworth et al., "Git Re-Basin"):
coordinate ascent over groups, each step a linear assignment, on standardised
kernels (every ≥ 2-d weight: the conv kernels and the classifier), so the objective
is the sum of kernel Pearson correlations. It stops when a sweep over all groups
improves the objective by no more than ``rtol`` (relative), or after ``max_iter``
sweeps.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from .kernels import NetworkLike, standardise, state_of
from .models import ARCHITECTURES, KERAS_STAGES, build

__all__ = [
    "MAX_ITER", "RTOL", "SPECS", "Matching", "PermutationSpec", "coupled_scores", "match_weights",
    "permutation_graph", "permute_state", "permuted_copy", "resnet20_permutation_spec",
    "resnet50_keras_permutation_spec", "resnet50_permutation_spec", "spec_for",
]

MAX_ITER = 100  # sweeps over all groups: a guard; the objective's tolerance normally stops earlier
RTOL = 1e-6  # a sweep gaining ≤ RTOL · |objective| ends the ascent (~1e-3 of one kernel's r for ResNet20)


@dataclass(frozen=True)
class PermutationSpec:
    """Which channel permutation acts on each axis of each state_dict entry of ``arch``.

    ``axes``: entry name → one group name (or None: not permuted) per axis of the
    tensor, e.g. a conv kernel (out, in, kh, kw) → ("layer1.0.conv1", "stem", None,
    None), a BatchNorm's running mean (C,) → ("layer1.0.conv1",), a counter () → ().
    Every entry of the network's state_dict is listed, in the network's order.
    ``norms``: conv name → the BatchNorm applied to its output (convs without one are
    absent). ``classifier``: the Linear whose rows are the classes.
    """

    arch: str
    axes: dict[str, tuple[str | None, ...]]
    norms: dict[str, str]
    classifier: str
    groups: dict[str, list[tuple[str, int]]] = field(init=False)  # group → [(entry, axis)]: perm_to_axes

    def __post_init__(self):
        groups: dict[str, list[tuple[str, int]]] = {}
        for name, per_axis in self.axes.items():
            for axis, group in enumerate(per_axis):
                if group is not None:
                    groups.setdefault(group, []).append((name, axis))
        object.__setattr__(self, "groups", groups)

    @property
    def kernels(self) -> list[str]:
        """The weights weight matching reads: every ≥ 2-d entry (conv kernels, the classifier)."""
        return [name for name, per_axis in self.axes.items() if len(per_axis) >= 2]


class _SpecBuilder:
    """Declares a spec entry by entry (``conv``, ``norm``, ``dense``), in state_dict order."""

    def __init__(self, arch: str):
        self.arch = arch
        self.axes: dict[str, tuple[str | None, ...]] = {}
        self.norms: dict[str, str] = {}

    def conv(self, name: str, p_in: str | None, p_out: str, bias: bool, norm: str | None = None) -> None:
        """A Conv2d (kernel (out, in, kh, kw)) and, when given, the BatchNorm on its output."""
        self.axes[f"{name}.weight"] = (p_out, p_in, None, None)
        if bias:
            self.axes[f"{name}.bias"] = (p_out,)
        if norm is not None:
            self.norm(norm, p_out)
            self.norms[name] = norm

    def norm(self, name: str, p: str) -> None:
        for entry in ("weight", "bias", "running_mean", "running_var"):
            self.axes[f"{name}.{entry}"] = (p,)
        self.axes[f"{name}.num_batches_tracked"] = ()

    def dense(self, name: str, p_in: str) -> PermutationSpec:
        """The classifier (weight (classes, in)), last: it ends the spec."""
        self.axes[f"{name}.weight"] = (None, p_in)
        self.axes[f"{name}.bias"] = (None,)
        return PermutationSpec(self.arch, self.axes, self.norms, classifier=name)


def resnet20_permutation_spec() -> PermutationSpec:
    """The paper's ResNet20 (``models.ResNet20``): biased convs; a block's 1x1 shortcut
    conv (no BatchNorm) starts a new residual group where the width changes."""
    spec = _SpecBuilder("resnet20")
    spec.conv("conv1", None, "stem", bias=True, norm="bn1")
    residual = "stem"
    for stage in (1, 2, 3):
        for block in range(3):
            name = f"layer{stage}.{block}"
            shortcut = stage > 1 and block == 0
            out = f"{name}.out" if shortcut else residual  # identity blocks add onto the stream: same group
            spec.conv(f"{name}.conv1", residual, f"{name}.conv1", bias=True, norm=f"{name}.bn1")
            spec.conv(f"{name}.conv2", f"{name}.conv1", out, bias=True, norm=f"{name}.bn2")
            if shortcut:
                spec.conv(f"{name}.shortcut", residual, out, bias=True)
            residual = out
    return spec.dense("fc", residual)


def resnet50_permutation_spec() -> PermutationSpec:
    """torchvision's ResNet50 (``models.ResNet50``): bias-free convs, Bottleneck blocks
    conv1-bn1, conv2-bn2, conv3-bn3; each stage's first block has a downsample
    (1x1 conv, BatchNorm) that starts the stage's residual group."""
    spec = _SpecBuilder("resnet50")
    spec.conv("conv1", None, "stem", bias=False, norm="bn1")
    residual = "stem"
    for stage, blocks in enumerate((3, 4, 6, 3), start=1):
        for block in range(blocks):
            name = f"layer{stage}.{block}"
            out = f"{name}.out" if block == 0 else residual
            spec.conv(f"{name}.conv1", residual, f"{name}.conv1", bias=False, norm=f"{name}.bn1")
            spec.conv(f"{name}.conv2", f"{name}.conv1", f"{name}.conv2", bias=False, norm=f"{name}.bn2")
            spec.conv(f"{name}.conv3", f"{name}.conv2", out, bias=False, norm=f"{name}.bn3")
            if block == 0:
                spec.conv(f"{name}.downsample.0", residual, out, bias=False, norm=f"{name}.downsample.1")
            residual = out
    return spec.dense("fc", residual)


def resnet50_keras_permutation_spec() -> PermutationSpec:
    """keras-applications' ResNet50 (``models.ResNet50Keras``): biased convs under Keras's
    layer names; a block res{stage}{letter} is branch2a-bn, branch2b-bn, branch2c-bn, and
    each stage's block a has the projection shortcut branch1-bn that starts the stage's
    residual group (the other blocks add onto it)."""
    spec = _SpecBuilder("resnet50_keras")
    spec.conv("conv1", None, "stem", bias=True, norm="bn_conv1")
    residual = "stem"
    for stage, letters, _, _ in KERAS_STAGES:
        for letter in letters:
            block = f"{stage}{letter}"
            out = f"res{block}.out" if letter == "a" else residual
            inner = residual
            for branch in ("2a", "2b", "2c"):
                group = out if branch == "2c" else f"res{block}_branch{branch}"
                spec.conv(f"res{block}_branch{branch}", inner, group, bias=True, norm=f"bn{block}_branch{branch}")
                inner = group
            if letter == "a":
                spec.conv(f"res{block}_branch1", residual, out, bias=True, norm=f"bn{block}_branch1")
            residual = out
    return spec.dense("fc1000", residual)


SPECS: dict[str, Callable[[], PermutationSpec]] = {
    "resnet20": resnet20_permutation_spec,
    "resnet50": resnet50_permutation_spec,
    "resnet50_keras": resnet50_keras_permutation_spec,
}


@functools.cache
def _spec(arch: str) -> PermutationSpec:
    return SPECS[arch]()


@functools.cache
def _skeleton_shapes(arch: str, num_classes: int) -> dict[str, tuple[int, ...]]:
    """Names and shapes of ``models.build(arch, num_classes)``'s state_dict (no memory: meta)."""
    with torch.device("meta"):
        skeleton = build(arch, num_classes)
    return {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}


def _first_difference(shapes: Mapping[str, tuple[int, ...]], arch: str) -> tuple[int, str | None]:
    """(entries agreeing with ``arch``, the first difference or None when all agree)."""
    weight = shapes.get(f"{_spec(arch).classifier}.weight")
    classes = weight[0] if weight is not None and len(weight) == 2 and weight[0] >= 2 else ARCHITECTURES[arch]
    reference = _skeleton_shapes(arch, classes)  # the class count is the network's own, not a difference
    agree = sum(shapes.get(k) == s for k, s in reference.items())
    for key, shape in reference.items():
        if key not in shapes:
            return agree, f"{arch} has {key} {shape}, this network has none"
        if shapes[key] != shape:
            return agree, f"{key} is {shapes[key]} here, {shape} in {arch}"
    extra = [key for key in shapes if key not in reference]
    return agree, (f"this network has {extra[0]}, {arch} has none" if extra else None)


def spec_for(network: NetworkLike) -> PermutationSpec:
    """The permutation spec of ``network`` (module, state_dict or checkpoint path),
    whose state_dict must match one of :data:`SPECS`' architectures exactly."""
    shapes = {k: tuple(v.shape) for k, v in state_of(network).items()}
    found = {}
    for arch in SPECS:
        found[arch] = _first_difference(shapes, arch)
        if found[arch][1] is None:
            return _spec(arch)
    closest = max(found, key=lambda arch: found[arch][0])
    neither = "neither" if len(SPECS) == 2 else "none of them"
    raise ValueError(f"coupled supports {', '.join(SPECS)}; this network's parameters match {neither} "
                     f"(first difference: {found[closest][1]}).")


def permutation_graph(network: NetworkLike) -> tuple[list[tuple[str, str, str | None, str | None]], tuple[str, str]]:
    """Channel groups of a ResNet, from its spec: per conv (name, out_group, in_group
    (None for the image), its BatchNorm or None), in the network's conv order, and
    (classifier name, its input group). Residual additions share a group."""
    spec = spec_for(network)
    convs = [(name[: -len(".weight")], groups[0], groups[1], spec.norms.get(name[: -len(".weight")]))
             for name, groups in spec.axes.items() if len(groups) == 4]
    return convs, (spec.classifier, spec.axes[f"{spec.classifier}.weight"][1])


def _permute(tensor: torch.Tensor, groups: tuple[str | None, ...], perms: Mapping[str, torch.Tensor],
             skip: int | None = None) -> torch.Tensor:
    """``tensor`` with every grouped axis (but ``skip``) reordered: axis i → index π_gᵢ."""
    for axis, group in enumerate(groups):
        if group is not None and axis != skip:
            tensor = tensor.index_select(axis, perms[group].to(tensor.device))
    return tensor


def permute_state(state: Mapping[str, torch.Tensor], perms: Mapping[str, torch.Tensor],
                  spec: PermutationSpec | None = None) -> dict[str, torch.Tensor]:
    """``state`` with channel k of every group g replaced by channel π_g[k], on every
    axis the spec assigns to g (weights, biases, BatchNorm statistics alike)."""
    spec = spec or spec_for(state)
    return {name: _permute(tensor, spec.axes[name], perms) for name, tensor in state.items()}


class Matching(NamedTuple):
    """Weight matching's result: ``perms`` (group → (C,) index tensor: A's channel k of
    g pairs with B's channel π_g[k]) and ``objectives`` (Σ kernel r under the identity,
    then after each sweep; non-decreasing)."""

    perms: dict[str, torch.Tensor]
    objectives: list[float]


def _standardised(state: Mapping[str, torch.Tensor], spec: PermutationSpec, dtype, device) -> dict[str, torch.Tensor]:
    """Every kernel row (axis 0) centred and scaled to unit norm, in its original shape."""
    out = {}
    for name in spec.kernels:
        w = state[name].detach().to(device, dtype)
        out[name] = standardise(w.reshape(w.shape[0], -1)).reshape(w.shape)
    return out


def _objective(wa, wb, spec: PermutationSpec, perms) -> float:
    """Σ over kernels of r(A's kernel, B's aligned kernel): the sum of the aligned correlations."""
    # accumulated in float64: the stopping rule compares sums of ~10³ terms to a 1e-6 tolerance
    return float(sum((wa[name] * _permute(wb[name], spec.axes[name], perms)).sum(dtype=torch.float64)
                     for name in wa))


def match_weights(a: NetworkLike, b: NetworkLike, dtype: torch.dtype = torch.float32,
                  device: str | torch.device = "cpu", max_iter: int = MAX_ITER, rtol: float = RTOL,
                  seed: int = 0) -> Matching:
    """Weight matching of B onto A (one architecture of :data:`SPECS`).

    Each sweep visits every group in a seeded random order and sets π_g to the linear
    assignment maximising the objective with the other groups fixed, so the
    objective never decreases; the ascent stops when a sweep gains ≤ ``rtol`` ·
    |objective|, or after ``max_iter`` sweeps. The best permutations seen are returned.
    """
    state_a, state_b = state_of(a), state_of(b)
    spec = spec_for(state_a)
    if spec_for(state_b) is not spec:
        raise ValueError(f"Weight matching needs one architecture; A is a {spec.arch}, B is not.")
    wa, wb = _standardised(state_a, spec, dtype, device), _standardised(state_b, spec, dtype, device)
    sizes = {g: state_a[name].shape[axis] for g, ((name, axis), *_) in spec.groups.items()}
    perms = {g: torch.arange(n, device=device) for g, n in sizes.items()}
    objectives = [_objective(wa, wb, spec, perms)]
    best = dict(perms)
    order_rng = np.random.default_rng(seed)
    for _ in range(max_iter):
        for g in order_rng.permutation(sorted(sizes)):
            m = torch.zeros(sizes[g], sizes[g], dtype=dtype, device=device)
            for name, axis in spec.groups[g]:
                if name not in wa:  # biases, BatchNorms: not in the objective
                    continue
                # m[c, d] = Σ over the other axes of A[.., c, ..] · B[.., d, ..], B's other axes aligned
                xa = wa[name].movedim(axis, 0).reshape(sizes[g], -1)
                xb = _permute(wb[name], spec.axes[name], perms, skip=axis).movedim(axis, 0).reshape(sizes[g], -1)
                m += xa @ xb.T
            _, cols = linear_sum_assignment(m.cpu().numpy(), maximize=True)
            perms[g] = torch.as_tensor(cols, device=device)
        objectives.append(_objective(wa, wb, spec, perms))
        if objectives[-1] > max(objectives[:-1]):
            best = dict(perms)
        if objectives[-1] - objectives[-2] <= rtol * abs(objectives[-2]):
            break
    return Matching(best, objectives)


def coupled_scores(a: NetworkLike, b: NetworkLike, dtype: torch.dtype = torch.float32,
                   device: str | torch.device = "cpu") -> list[tuple[str, np.ndarray]]:
    """Per conv layer, the correlation of each of A's kernels with B's kernel under the
    coupled permutations: (name, (K,) array), in conv order. ``a``, ``b``: modules,
    state_dicts or checkpoint paths (each read once)."""
    state_a, state_b = state_of(a), state_of(b)
    spec = spec_for(state_a)
    perms, _ = match_weights(state_a, state_b, dtype, device)
    out = []
    for name, groups in spec.axes.items():
        if len(groups) != 4:
            continue
        xa = standardise(state_a[name].to(device, dtype).flatten(1))
        xb = standardise(_permute(state_b[name].to(device, dtype), groups, perms).flatten(1))
        out.append((name[: -len(".weight")], (xa * xb).sum(1).cpu().numpy()))
    return out


def permuted_copy(model: nn.Module, seed: int = 0) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A functionally identical copy of ``model`` with its hidden channels permuted
    consistently (residual groups included), and the permutations (group → (C,)):
    the test case for ``coupled``."""
    state = model.state_dict()
    spec = spec_for(state)
    generator = torch.Generator().manual_seed(seed)
    perms = {g: torch.randperm(state[name].shape[axis], generator=generator)
             for g, ((name, axis), *_) in spec.groups.items()}
    twin = copy.deepcopy(model)  # not build(): same device, dtype and mode, and the global RNG untouched
    twin.load_state_dict(permute_state(state, perms, spec))
    return twin, perms
