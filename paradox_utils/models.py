"""Network architectures: the paper's ResNet20 and torchvision's ResNet50.

Parameter counts (checked by ``tests/test_models.py``):

=========  ================  =====================  ====================  =====
arch       Keras count       PyTorch parameters     + BN running stats    convs
=========  ================  =====================  ====================  =====
resnet20   274,442           273,066                274,442               21
resnet50   25,636,712 (v1)   25,557,032             25,610,152            53
=========  ================  =====================  ====================  =====

Keras counts BatchNorm's moving mean and variance as (non-trainable) parameters;
PyTorch keeps them as buffers, so "parameters + running statistics" is the number
that matches Keras for ResNet20. ResNet50 is torchvision's (no conv biases, stride
in the 3x3 conv), the project's default, so users can load
torchvision's pretrained weights into it by name.

Both models take RGB images in [0, 1], shape (N, 3, H, W), and normalise inside
``forward``: a checkpoint is the whole network, and the image manipulations act on
[0, 1] pixels as the paper's did.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

__all__ = ["ARCHITECTURES", "ResNet20", "ResNet50", "build", "conv_layers", "count_keras_parameters", "num_classes"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ARCHITECTURES = {"resnet20": 10, "resnet50": 1000}  # arch -> default number of classes


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

    def __init__(self, num_classes: int = 10, init: str = "he_normal"):
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

    def __init__(self, num_classes: int = 1000, init: str = "kaiming_normal"):
        super().__init__(torchvision.models.resnet.Bottleneck, [3, 4, 6, 3], num_classes=num_classes)
        self.normalise = _Normalise(IMAGENET_MEAN, IMAGENET_STD)
        if init != "kaiming_normal":  # torchvision's own init otherwise
            _initialise(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.normalise(x))


def _initialise(model: nn.Module, init: str) -> None:
    if init not in INITIALISERS:
        raise ValueError(f"Unknown weight init {init!r}; valid: {sorted(INITIALISERS)}.")
    fn = INITIALISERS[init]
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fn(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def build(arch: str, num_classes: int | None = None, init: str | None = None) -> nn.Module:
    """A freshly initialised network of ``arch`` ("resnet20" or "resnet50").

    ``num_classes`` defaults to 10 (resnet20) or 1000 (resnet50); ``init`` to
    he_normal (resnet20, the paper's) or torchvision's kaiming_normal (resnet50).
    Seed the global torch RNG first for reproducible weights.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {arch!r}; valid: {sorted(ARCHITECTURES)}.")
    num_classes = ARCHITECTURES[arch] if num_classes is None else int(num_classes)
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
    if arch == "resnet20":
        return ResNet20(num_classes, init or "he_normal")
    return ResNet50(num_classes, init or "kaiming_normal")


def conv_layers(model: nn.Module | dict) -> list[tuple[str, nn.Module | torch.Tensor]]:
    """Every Conv2d of ``model`` as (name, module), in definition order.

    For a state_dict, the 4-d ``*.weight`` tensors as (name, weight tensor): the
    same names and order as for the module it came from.
    """
    if isinstance(model, nn.Module):
        return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    return [(k[: -len(".weight")], v) for k, v in model.items()
            if k.endswith(".weight") and getattr(v, "ndim", 0) == 4]


def num_classes(model: nn.Module) -> int:
    """Output width of the network's last Linear layer (its number of classes)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features


def count_keras_parameters(model: nn.Module) -> int:
    """Parameters + BatchNorm running mean/variance: the number Keras reports."""
    stats = sum(m.running_mean.numel() + m.running_var.numel()
                for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    return sum(p.numel() for p in model.parameters()) + stats
