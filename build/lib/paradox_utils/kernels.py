"""Networks as the similarity measures read them: their state, its identity (a hash of
every weight), and conv kernels extracted, flattened and standardised.

A kernel is one output channel of a Conv2d, flattened over (in_channels, kh, kw).
Networks may be given as modules, state_dicts or checkpoint paths.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from . import checkpoints
from .models import conv_layers

__all__ = ["NetworkLike", "conv_kernels", "layer_names", "same_architecture", "standardise", "state_of",
           "weights_key"]

NetworkLike = nn.Module | Mapping[str, torch.Tensor] | str | os.PathLike


def state_of(network: NetworkLike) -> Mapping[str, torch.Tensor]:
    """The state_dict of a module, a checkpoint (read and hash-checked) or a state_dict."""
    if isinstance(network, nn.Module):
        return network.state_dict()
    if isinstance(network, (str, os.PathLike)):
        return checkpoints.load_state(network)[0]
    return network


def weights_key(network: NetworkLike) -> str:
    """The sha256 (hex) of every tensor of the network's state_dict: over the entries
    sorted by name, each one's "name:dtype:shape" and raw bytes.

    Two networks share a key exactly when their states are equal bit for bit (BatchNorm
    statistics and counters included), however they are given: as a module, a
    state_dict or a checkpoint (whose file hash would also cover its extra tensors
    and header, so it is not used). The bytes hashed are those of
    ``checkpoints.state_sha256`` (the one implementation), so the two name a network alike.
    """
    return checkpoints.state_sha256(state_of(network))


def conv_kernels(network: NetworkLike) -> list[tuple[str, torch.Tensor]]:
    """Every conv layer as (name, kernels (K, C·kh·kw)), in the model's conv order."""
    return [(name, weight.detach().reshape(weight.shape[0], -1)) for name, weight in conv_layers(state_of(network))]


def layer_names(network: NetworkLike) -> list[str]:
    return [name for name, _ in conv_kernels(network)]


def standardise(kernels: torch.Tensor) -> torch.Tensor:
    """Rows centred and scaled to unit norm; a constant row becomes zeros (r = 0 with all).

    "Constant" is judged relative to the row's size: centring a constant row leaves
    rounding residue (~eps·|value|), which must not be blown up into a random unit vector.
    """
    centred = kernels - kernels.mean(dim=-1, keepdim=True)
    norm = centred.norm(dim=-1, keepdim=True)
    eps = torch.finfo(kernels.dtype).eps
    floor = 16 * eps * kernels.norm(dim=-1, keepdim=True) + torch.finfo(kernels.dtype).tiny
    return torch.where(norm > floor, centred / norm.clamp_min(floor), torch.zeros_like(centred))


def same_architecture(a: list, b: list, what: str = "networks") -> None:
    shapes_a = [(n, tuple(w.shape)) for n, w in a]
    shapes_b = [(n, tuple(w.shape)) for n, w in b]
    if shapes_a != shapes_b:
        raise ValueError(f"The {what} are not of the same architecture ({len(a)} vs {len(b)} conv layers, "
                         "or different shapes); similarity pairs layers by position.")
