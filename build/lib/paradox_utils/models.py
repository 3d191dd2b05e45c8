"""Network architectures: the paper's ResNet20, torchvision's ResNet50 and the Keras ResNet50.

Parameter counts (checked by ``tests/test_models.py``):

==============  ===========  ==================  ==================  =====
arch            Keras count  PyTorch parameters  + BN running stats  convs
==============  ===========  ==================  ==================  =====
resnet20        274,442      273,066             274,442             21
resnet50        —            25,557,032          25,610,152          53
resnet50_keras  25,636,712   25,583,592          25,636,712          53
==============  ===========  ==================  ==================  =====

Keras counts BatchNorm's moving mean and variance as (non-trainable) parameters;
PyTorch keeps them as buffers, so "parameters + running statistics" is the number
that matches Keras. ``resnet50`` is torchvision's (no conv biases, stride in the 3x3
conv), the project's default, so users can load torchvision's pretrained weights
into it by name; it has no Keras twin (Keras's convs carry biases: 53 convs' output
channels, 26,560 numbers, more). ``resnet50_keras`` is the network the paper used,
``keras.applications.ResNet50`` (v1), ported layer for layer under Keras's layer
names (:class:`ResNet50Keras`); :func:`torchvision_to_keras` names torchvision's
layers the Keras way.

All models take RGB images in [0, 1], shape (N, 3, H, W), and normalise inside
``forward``: a checkpoint is the whole network, and the image manipulations act on
[0, 1] pixels as the paper's did.

Networks trained elsewhere (``paradox_utils.importing``) may also be any torchvision
classification model, named ``torchvision:<name>`` (``torchvision:vgg11``): built by
``torchvision.models.get_model`` and given the same normalisation in front of its
``forward`` (:func:`set_normalisation`), so they too take [0, 1] images. The prefix
keeps the two namespaces apart: plain ``resnet50`` is the project's, and a bare
torchvision name (``resnet18``) is refused.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

__all__ = ["ARCHITECTURES", "KERAS_STAGES", "PAPER_ACCURACY", "TORCHVISION_PREFIX", "ResNet20", "ResNet50",
           "ResNet50Keras", "build", "build_for_loading", "classifier", "conv_layers", "is_architecture", "num_classes",
           "set_normalisation", "stage_outputs", "torchvision_architectures", "torchvision_to_keras"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ARCHITECTURES = {"resnet20": 10, "resnet50": 1000, "resnet50_keras": 1000}  # arch -> default number of classes
# The clean accuracy the paper reports per architecture (low, high): ResNet20 on CIFAR-10, ResNet50 top-1 on ImageNet
PAPER_ACCURACY = {"resnet20": (0.88, 0.92), "resnet50": (0.69, 0.73), "resnet50_keras": (0.69, 0.73)}
TORCHVISION_PREFIX = "torchvision:"  # "torchvision:vgg11": a torchvision classification model (imported networks)


def _he_normal_(weight: torch.Tensor) -> None:
    """Keras ``he_normal``: truncated normal (±2 std), std = sqrt(2 / fan_in) / 0.8796.

    The divisor corrects the truncation's loss of variance, as Keras does.
    """
    fan_in = weight[0].numel()
    std = math.sqrt(2.0 / fan_in) / 0.87962566103423978
    nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-2 * std, b=2 * std)


def _glorot_uniform_(weight: torch.Tensor) -> None:
    nn.init.xavier_uniform_(weight)


def _kaiming_uniform_(weight: torch.Tensor) -> None:
    nn.init.kaiming_uniform_(weight, nonlinearity="relu")


def _kaiming_normal_(weight: torch.Tensor) -> None:
    nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")  # torchvision's ResNet init


def _orthogonal_(weight: torch.Tensor) -> None:
    nn.init.orthogonal_(weight.view(weight.shape[0], -1))


INITIALISERS = {
    "he_normal": _he_normal_,
    "glorot_uniform": _glorot_uniform_,
    "kaiming_uniform": _kaiming_uniform_,
    "kaiming_normal": _kaiming_normal_,
    "orthogonal": _orthogonal_,
}


class _Normalise(nn.Module):
    """(x - mean) / std per channel; constants, not parameters (not in the state_dict)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class BasicBlock(nn.Module):
    """Keras ``resnet_v1`` block: conv-BN-ReLU, conv-BN, + shortcut, ReLU.

    The shortcut is the identity, or, where the width changes, a 1x1 stride-2 conv
    with bias and no BatchNorm (exactly the Keras example).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=True)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=True)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride, 0, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        skip = x if self.shortcut is None else self.shortcut(x)
        return F.relu(skip + y)


class ResNet20(nn.Module):
    """ResNet20 for 32x32 images (Keras ``cifar10_resnet`` v1, depth 20).

    Input (N, 3, 32, 32) in [0, 1]; output (N, num_classes) logits.
    """

    def __init__(self, num_classes: int = 10, init: str | None = "he_normal"):
        super().__init__()
        self.normalise = _Normalise(CIFAR10_MEAN, CIFAR10_STD)
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=True)
        self.bn1 = nn.BatchNorm2d(16)
        stages, width = [], 16
        for stage, out in enumerate((16, 32, 64)):
            blocks = [BasicBlock(width if b == 0 else out, out, 2 if stage > 0 and b == 0 else 1)
                      for b in range(3)]
            stages.append(nn.Sequential(*blocks))
            width = out
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(64, num_classes)
        _initialise(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(self.normalise(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ResNet50(torchvision.models.ResNet):
    """torchvision's ResNet50 with input normalisation inside.

    Input (N, 3, 224, 224) in [0, 1]; output (N, num_classes) logits. Parameter
    names are torchvision's, so its pretrained state_dicts load unchanged.
    """

    def __init__(self, num_classes: int = 1000, init: str | None = "kaiming_normal"):
        super().__init__(torchvision.models.resnet.Bottleneck, [3, 4, 6, 3], num_classes=num_classes)
        self.normalise = _Normalise(IMAGENET_MEAN, IMAGENET_STD)
        if init != "kaiming_normal":  # torchvision's own init otherwise
            _initialise(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.normalise(x))


# (stage, block letters, (filters of branch2a, 2b, 2c), stride of the stage's conv_block): keras-applications'
# ResNet50, whose stage numbers (2-5) and block letters make the layer names
KERAS_STAGES = (
    (2, "abc", (64, 64, 256), 1),
    (3, "abcd", (128, 128, 512), 2),
    (4, "abcdef", (256, 256, 1024), 2),
    (5, "abc", (512, 512, 2048), 2),
)
KERAS_BN_EPSILON = 1e-3  # keras.layers.BatchNormalization's default; resnet50.py sets none
KERAS_BN_MOMENTUM = 0.01  # Keras momentum 0.99 keeps 99 % of the old average; PyTorch's momentum is the new share


class ResNet50Keras(nn.Module):
    """``keras.applications.ResNet50`` (v1) as in Keras 2.2.3–2.2.4, which install
    keras-applications ≥ 1.0.6 (its resnet50.py is unchanged up to 1.0.8): the ResNet50
    the paper trained, layer for layer and under its Keras layer names.

    Input (N, 3, H, W) RGB in [0, 1] (224x224 as the paper's; any H, W ≥ 32 runs);
    output (N, num_classes) logits (Keras's fc1000 applies the softmax, the loss does
    here). The modules are flat and named as Keras names its layers, so state_dict keys
    read ``res3c_branch2c.weight``, ``bn3c_branch2c.running_var``, ``fc1000.bias``:

    * stem: ``conv1`` 7x7/2 (ZeroPadding2D(3) then a valid conv = padding 3), ``bn_conv1``,
      ReLU, then ZeroPadding2D(1) and a 3x3/2 max pool (keras-applications added that
      ``pool1_pad`` in 1.0.6; Keras 2.2.0–2.2.2, with keras-applications 1.0.2–1.0.4,
      pooled without it: 55x55 instead of 56x56 maps at 224 input, same parameters).
      Zeros are padded, as Keras does (after the ReLU, the same as ignoring the border).
    * stages 2–5 of 3, 4, 6, 3 bottleneck blocks ``res{stage}{letter}``: branch2a 1x1
      (*the stride sits here*), branch2b 3x3 'same', branch2c 1x1, each with BatchNorm
      ``bn{stage}{letter}_branch2{a,b,c}``; block a (Keras's conv_block) adds a projection
      shortcut ``res{stage}a_branch1`` (1x1, same stride) + ``bn{stage}a_branch1``, the other
      blocks add the identity; then ReLU (module ``res{stage}{letter}_relu``, parameter-free,
      so a block's output can be hooked). Stage 2's conv_block has stride 1, the others 2.
    * every conv has a bias (Keras's ``use_bias`` default); BatchNorm epsilon 1e-3 and
      momentum 0.99 (Keras's defaults: the 1.001e-5 epsilon belongs to the later
      ``resnet_common`` ResNet50, whose layers are named ``conv2_block1_1_conv``).
    * global average pool (``avg_pool``; AveragePooling2D(7) + Flatten before 1.0.6,
      equal at 224 input), ``fc1000``.

    ``init`` is the convs' kernel initialiser: keras-applications ≥ 1.0.4 declares
    he_normal (Keras's, truncated), 1.0.2 (Keras 2.2.0) left Keras's glorot_uniform.
    ``fc1000`` keeps Keras's Dense default, glorot_uniform, which no version overrides.
    Biases start at zero, BatchNorms at γ = 1, β = 0. (``init=None``, for weights about
    to be loaded: PyTorch's layer defaults, as for every class here.)
    """

    def __init__(self, num_classes: int = 1000, init: str | None = "he_normal"):
        super().__init__()
        self.normalise = _Normalise(IMAGENET_MEAN, IMAGENET_STD)
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=True)
        self.bn_conv1 = self._norm(64)
        self.blocks: list[tuple[str, bool]] = []  # (block name "3c", has a projection shortcut), in order
        width = 64
        for stage, letters, (f1, f2, f3), stride in KERAS_STAGES:
            for letter in letters:
                name, first = f"{stage}{letter}", letter == "a"
                block_stride = stride if first else 1
                self._conv_bn(name, "2a", width, f1, 1, block_stride)
                self._conv_bn(name, "2b", f1, f2, 3, 1)
                self._conv_bn(name, "2c", f2, f3, 1, 1)
                if first:
                    self._conv_bn(name, "1", width, f3, 1, block_stride)
                setattr(self, f"res{name}_relu", nn.ReLU())
                self.blocks.append((name, first))
                width = f3
        self.fc1000 = nn.Linear(width, num_classes)
        if init is not None:
            _initialise(self, init)
            _glorot_uniform_(self.fc1000.weight)  # Keras Dense's default, whatever the convs' initialiser

    @staticmethod
    def _norm(channels: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(channels, eps=KERAS_BN_EPSILON, momentum=KERAS_BN_MOMENTUM)

    def _conv_bn(self, block: str, branch: str, c_in: int, c_out: int, size: int, stride: int) -> None:
        """res{block}_branch{branch} (size x size, stride, 'same' for 3x3) and its BatchNorm."""
        setattr(self, f"res{block}_branch{branch}", nn.Conv2d(c_in, c_out, size, stride, size // 2, bias=True))
        setattr(self, f"bn{block}_branch{branch}", self._norm(c_out))

    def _branch(self, x: torch.Tensor, block: str, branch: str) -> torch.Tensor:
        # modules are looked up by name at every call (not cached): StackedNetworks swaps them for wide ones
        return getattr(self, f"bn{block}_branch{branch}")(getattr(self, f"res{block}_branch{branch}")(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn_conv1(self.conv1(self.normalise(x))))
        x = F.max_pool2d(F.pad(x, (1, 1, 1, 1)), 3, 2)  # pool1_pad: zeros, as Keras's ZeroPadding2D
        for block, projection in self.blocks:
            y = F.relu(self._branch(x, block, "2a"))
            y = F.relu(self._branch(y, block, "2b"))
            y = self._branch(y, block, "2c")
            skip = self._branch(x, block, "1") if projection else x
            x = getattr(self, f"res{block}_relu")(y + skip)
        return self.fc1000(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def torchvision_to_keras() -> dict[str, str]:
    """torchvision ResNet50 module names → keras-applications ResNet50 layer names.

    Every conv (53), BatchNorm (53) and the classifier: ``conv1`` → ``conv1``, ``bn1``
    → ``bn_conv1``, ``layer2.2.conv3`` → ``res3c_branch2c``, ``layer2.2.bn3`` →
    ``bn3c_branch2c``, ``layer2.0.downsample.0`` → ``res3a_branch1``,
    ``layer2.0.downsample.1`` → ``bn3a_branch1``, ``fc`` → ``fc1000``: torchvision's
    ``layer{s}`` is Keras's stage s + 1 and block i its letter ``"abcdef"[i]``. Paired
    layers play one role and have one kernel shape (out, in, kh, kw) — but torchvision
    strides in conv2 (branch2b), Keras in conv1 (branch2a), and torchvision's convs
    have no bias, so the two networks differ even with equal kernels. Invert with
    ``{v: k for k, v in torchvision_to_keras().items()}``.
    """
    names = {"conv1": "conv1", "bn1": "bn_conv1"}
    for stage, letters, _, _ in KERAS_STAGES:
        for i, letter in enumerate(letters):
            block, keras = f"layer{stage - 1}.{i}", f"{stage}{letter}"
            for k, branch in zip((1, 2, 3), "abc", strict=True):
                names[f"{block}.conv{k}"] = f"res{keras}_branch2{branch}"
                names[f"{block}.bn{k}"] = f"bn{keras}_branch2{branch}"
            if i == 0:
                names[f"{block}.downsample.0"] = f"res{keras}_branch1"
                names[f"{block}.downsample.1"] = f"bn{keras}_branch1"
    names["fc"] = "fc1000"
    return names


def _initialise(model: nn.Module, init: str | None) -> None:
    """Every conv and Linear weight drawn by ``INITIALISERS[init]``, biases zeroed; ``init``
    None leaves PyTorch's layer defaults (a network whose weights are about to be loaded)."""
    if init is None:
        return
    if init not in INITIALISERS:
        raise ValueError(f"Unknown weight init {init!r}; valid: {sorted(INITIALISERS)}.")
    fn = INITIALISERS[init]
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fn(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


_CLASSES = {"resnet20": ResNet20, "resnet50": ResNet50, "resnet50_keras": ResNet50Keras}
_DEFAULT_INIT = {"resnet20": "he_normal", "resnet50": "kaiming_normal", "resnet50_keras": "he_normal"}


@functools.cache
def torchvision_architectures() -> tuple[str, ...]:
    """Every torchvision classification model as an architecture name here:
    ``torchvision:<name>`` for each of ``torchvision.models.list_models(module=torchvision.models)``
    (classification only: detection, segmentation and video models live in submodules)."""
    return tuple(TORCHVISION_PREFIX + name for name in torchvision.models.list_models(module=torchvision.models))


def is_architecture(arch: str) -> bool:
    """``arch`` names one of :data:`ARCHITECTURES` or of :func:`torchvision_architectures`."""
    return arch in ARCHITECTURES or arch in torchvision_architectures()


def _checked_classes(arch: str, num_classes: int | None) -> int:
    """``num_classes`` (the arch's default when None), after checking ``arch`` and the count."""
    if not is_architecture(arch):
        hint = (f" ({arch!r} is torchvision's: name it {TORCHVISION_PREFIX}{arch})"
                if TORCHVISION_PREFIX + arch in torchvision_architectures() else "")
        raise ValueError(f"Unknown architecture {arch!r}; valid: {sorted(ARCHITECTURES)}, or "
                         f"{TORCHVISION_PREFIX}<name> for a torchvision classification model{hint}.")
    num_classes = ARCHITECTURES.get(arch, 1000) if num_classes is None else int(num_classes)
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
    return num_classes


class _InputNormalised:
    """Mixin put in front of a torchvision model's class: ``forward`` normalises the [0, 1]
    input with the model's ``normalise`` module first, as the project's models do."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.normalise(x))


@functools.cache
def _input_normalised(cls: type) -> type:
    # one subclass per torchvision class (so isinstance and deepcopy see one type); same name, its module
    return type(cls.__name__, (_InputNormalised, cls), {"__module__": cls.__module__})


def _torchvision(arch: str, num_classes: int, init: str | None) -> nn.Module:
    """torchvision's ``arch`` (prefixed name), untrained, with ImageNet normalisation in front
    (torchvision's convention; :func:`set_normalisation` replaces it). ``init``: None keeps
    torchvision's own initialisation, a name of ``INITIALISERS`` redraws every conv and Linear."""
    model = torchvision.models.get_model(arch.removeprefix(TORCHVISION_PREFIX), weights=None,
                                         num_classes=num_classes)
    model.__class__ = _input_normalised(type(model))
    model.normalise = _Normalise(IMAGENET_MEAN, IMAGENET_STD)
    _initialise(model, init)
    return model


def set_normalisation(model: nn.Module, normalisation: str | Mapping[str, Sequence[float]] | None) -> nn.Module:
    """``model`` (changed in place and returned) with another input normalisation in front.

    ``normalisation``: None keeps the model's own; "none" feeds the [0, 1] images unchanged
    (a network that normalises itself, or was trained on [0, 1] pixels); ``{"mean": (3,),
    "std": (3,)}`` per RGB channel, as ``(x - mean) / std``. The normalisation holds no
    parameters, so the state_dict's names and shapes are untouched. Every model
    :func:`build` makes has one (``model.normalise``).
    """
    if normalisation is None:
        return model
    if not isinstance(getattr(model, "normalise", None), nn.Module):
        raise ValueError(f"{type(model).__name__} has no input normalisation to set (models.build makes one).")
    if normalisation == "none":
        model.normalise = nn.Identity()
        return model
    if not isinstance(normalisation, Mapping) or set(normalisation) != {"mean", "std"}:
        raise ValueError(f"A normalisation is 'none' or a mapping with mean and std, got {normalisation!r}.")
    mean, std = (tuple(float(v) for v in normalisation[k]) for k in ("mean", "std"))
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"A normalisation needs three means and three positive stds (RGB), got {normalisation!r}.")
    model.normalise = _Normalise(mean, std)
    return model


def build(arch: str, num_classes: int | None = None, init: str | None = None) -> nn.Module:
    """A freshly initialised network of ``arch`` (one of :data:`ARCHITECTURES`, or a
    ``torchvision:<name>`` of :func:`torchvision_architectures`).

    ``num_classes`` defaults to 10 (resnet20) or 1000 (resnet50, resnet50_keras, torchvision's);
    ``init`` to he_normal (resnet20, the paper's; resnet50_keras's convs, as Keras 2.2.4
    declares) or torchvision's kaiming_normal (resnet50); torchvision's models keep their
    own initialisation unless ``init`` names one. Seed the global torch RNG first for
    reproducible weights.
    """
    num_classes = _checked_classes(arch, num_classes)
    if arch not in _CLASSES:
        return _torchvision(arch, num_classes, init)
    return _CLASSES[arch](num_classes, init or _DEFAULT_INIT[arch])


def build_for_loading(arch: str, num_classes: int | None = None,
                      normalisation: str | Mapping[str, Sequence[float]] | None = None) -> nn.Module:
    """A network of ``arch`` whose weights are about to be replaced by a state_dict:
    PyTorch's own layer initialisation only, none of the Keras initialisers
    (he_normal's truncated draws take ~15 s for resnet50_keras's 23.5 M conv weights
    on a busy 2-core CPU). Same names, shapes and buffers as :func:`build`'s.
    ``normalisation``: see :func:`set_normalisation` (None: the architecture's own)."""
    num_classes = _checked_classes(arch, num_classes)  # before the lookup: an unknown arch reads as one
    model = _CLASSES[arch](num_classes, init=None) if arch in _CLASSES else _torchvision(arch, num_classes, None)
    return set_normalisation(model, normalisation)


def conv_layers(model: nn.Module | dict) -> list[tuple[str, nn.Module | torch.Tensor]]:
    """Every Conv2d of ``model`` as (name, module), in definition order.

    For a state_dict, the 4-d ``*.weight`` tensors as (name, weight tensor): the
    same names and order as for the module it came from.
    """
    if isinstance(model, nn.Module):
        return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    return [(k[: -len(".weight")], v) for k, v in model.items()
            if k.endswith(".weight") and getattr(v, "ndim", 0) == 4]


def classifier(model: nn.Module) -> nn.Linear:
    """The network's last Linear layer: its classifier (``fc``, or ``fc1000`` in Keras's names)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def num_classes(model: nn.Module) -> int:
    """Output width of the network's classifier (its number of classes)."""
    return classifier(model).out_features


def stage_outputs(model: nn.Module) -> list[str]:
    """Names of the modules whose outputs are the residual stages' outputs, in order:
    ``layer1``… (ResNet20, ResNet50) or each stage's last block's ReLU (ResNet50Keras:
    ``res2c_relu``, ``res3d_relu``, ``res4f_relu``, ``res5c_relu``). Each output is
    (N, C, H, W) activations after the stage's last residual addition and ReLU."""
    if isinstance(model, ResNet50Keras):
        return [f"res{stage}{letters[-1]}_relu" for stage, letters, _, _ in KERAS_STAGES]
    return [n for n, _ in model.named_children() if n.startswith("layer")]
