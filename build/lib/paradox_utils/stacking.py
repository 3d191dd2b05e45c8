"""Several networks of one architecture as one wide network (grouped convolutions).

:class:`StackedNetworks` turns K networks into one: every Conv2d becomes a grouped
convolution K times as wide (member k owns channels ``[k·C, (k+1)·C)``), every
BatchNorm2d K times as wide (BatchNorm is per channel, so each member keeps its own
batch statistics and running averages), every Linear a batched matmul, and the
input normalisation is repeated. ReLU, pooling, residual additions and flattening
act per channel, so they need no change. No channel of one member ever meets a
channel of another: the forward, the gradients and any elementwise optimiser
(Adam, SGD) are exactly those of K separate networks, up to floating-point
summation order. One wide step replaces K small ones — the way to keep a large
accelerator busy with ResNet20's 16–64-channel layers (on a 2-core CPU it is not
faster: ``benchmarks/bench_training.py --group``).

Shapes: input (N, K, 3, H, W) — member k sees ``x[:, k]`` — output (N, K, classes).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["GroupedLinear", "StackedNetworks"]


class GroupedLinear(nn.Module):
    """K independent Linear layers: (N, K·in) → (N, K·out). weight (K, out, in), bias (K, out)."""

    def __init__(self, linears: list[nn.Linear]):
        super().__init__()
        self.groups = len(linears)
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in linears]))
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in linears])) if linears[0].bias is not None \
            else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.einsum("nki,koi->nko", x.reshape(x.shape[0], self.groups, -1), self.weight)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(x.shape[0], -1)


def _wide_conv(convs: list[nn.Conv2d]) -> nn.Conv2d:
    first, k = convs[0], len(convs)
    wide = nn.Conv2d(k * first.in_channels, k * first.out_channels, first.kernel_size, first.stride,
                     first.padding, first.dilation, k * first.groups, first.bias is not None, first.padding_mode,
                     device=first.weight.device, dtype=first.weight.dtype)
    with torch.no_grad():
        wide.weight.copy_(torch.cat([c.weight for c in convs]))
        if wide.bias is not None:
            wide.bias.copy_(torch.cat([c.bias for c in convs]))
    return wide


def _wide_batchnorm(norms: list[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    first, k = norms[0], len(norms)
    wide = nn.BatchNorm2d(k * first.num_features, first.eps, first.momentum, first.affine,
                          first.track_running_stats, device=first.running_mean.device,
                          dtype=first.running_mean.dtype)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            if getattr(wide, name) is not None:
                getattr(wide, name).copy_(torch.cat([getattr(n, name) for n in norms]))
        if wide.num_batches_tracked is not None:  # shared; StackedNetworks keeps each member's offset
            wide.num_batches_tracked.copy_(first.num_batches_tracked)
    return wide


def _wide_buffers(modules: list[nn.Module]) -> nn.Module:
    """A parameter-free module whose per-channel buffers (input mean/std) are repeated."""
    wide = copy.deepcopy(modules[0])
    for name in dict(modules[0].named_buffers(recurse=False)):
        setattr(wide, name, torch.cat([dict(m.named_buffers(recurse=False))[name] for m in modules], 1))
    return wide


class StackedNetworks(nn.Module):
    """K networks of one architecture trained or evaluated as one.

    ``members``: the networks (same class and shapes; they are copied, not changed).
    ``forward``: (N, K, C, H, W) → (N, K, classes). :meth:`member_state_dict` gives
    member k's state_dict with the original names and shapes.
    """

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("StackedNetworks needs at least one network.")
        shapes = {k: v.shape for k, v in members[0].state_dict().items()}
        for i, member in enumerate(members[1:], 1):
            if type(member) is not type(members[0]) or {k: v.shape for k, v in member.state_dict().items()} != shapes:
                raise ValueError(f"Network {i} is not the same architecture as network 0; only networks "
                                 "of one architecture and shape can be stacked.")
        self.size = len(members)
        self.net = copy.deepcopy(members[0])
        self._indexed: set[str] = set()  # parameter names stacked on a new axis 0 (GroupedLinear)
        # Shared counters (BatchNorm's num_batches_tracked) advance together; keep each
        # member's own starting value so its state_dict reads as if trained alone.
        # The wide counters start at member 0's values (_wide_batchnorm copies them).
        self._counter_offsets = [{k: v.clone() for k, v in m.state_dict().items() if v.ndim == 0}
                                 for m in members]
        if self.size == 1:  # a stack of one is the network itself: same layers, same arithmetic
            return
        named = [dict(m.named_modules()) for m in members]
        for name, module in list(self.net.named_modules()):
            if next(module.children(), None) is not None:  # a container: its leaves are widened
                if next(module.parameters(recurse=False), None) is not None:
                    raise ValueError(f"Cannot stack {type(module).__name__} {name!r}: it holds its own parameters.")
                continue
            group = [n[name] for n in named]
            if isinstance(module, nn.Conv2d):
                wide = _wide_conv(group)
            elif isinstance(module, nn.BatchNorm2d):
                wide = _wide_batchnorm(group)
            elif isinstance(module, nn.Linear):
                wide = GroupedLinear(group)
                self._indexed |= {f"{name}.{p}" for p, _ in wide.named_parameters()}
            elif next(module.parameters(recurse=False), None) is not None:
                raise ValueError(f"Cannot stack {type(module).__name__} {name!r}: only Conv2d, BatchNorm2d "
                                 "and Linear layers carry parameters here.")
            elif next(module.buffers(recurse=False), None) is not None:
                wide = _wide_buffers(group)
            else:
                continue
            parent_name, _, child = name.rpartition(".")
            setattr(self.net.get_submodule(parent_name) if parent_name else self.net, child, wide)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K, C, H, W) — or already side by side, (N, K·C, H, W) — → (N, K, classes)."""
        if x.ndim == 5:
            if x.shape[1] != self.size:
                raise ValueError(f"Input has {x.shape[1]} member images per row; the stack has {self.size} networks.")
            x = x.reshape(x.shape[0], -1, *x.shape[3:])
        return self.net(x).reshape(x.shape[0], self.size, -1)

    def member_tensor(self, name: str, stacked: torch.Tensor, k: int) -> torch.Tensor:
        """Member ``k``'s slice of a stacked tensor named ``name`` (a parameter, buffer, or
        optimiser state shaped like one)."""
        if stacked.ndim == 0:  # a shared counter (Adam's step, BatchNorm's batches)
            return stacked
        if name in self._indexed:
            return stacked[k]
        return stacked.chunk(self.size)[k]

    def stack_tensors(self, name: str, parts: list[torch.Tensor]) -> torch.Tensor:
        """The inverse of :meth:`member_tensor`: one stacked tensor from the members' parts."""
        if parts[0].ndim == 0:
            return parts[0].clone()
        if name in self._indexed:
            return torch.stack(parts)
        return torch.cat(parts)

    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member ``k``'s weights and buffers under the original names and shapes."""
        out = {}
        for name, value in self.net.state_dict().items():
            part = self.member_tensor(name, value, k).detach().clone()
            if name in self._counter_offsets[k]:  # shared counter: member's start + steps taken here
                start, own = self._counter_offsets[0][name], self._counter_offsets[k][name]
                part = value + (own - start).to(value.device)
            out[name] = part
        return out
