"""The ``coupled`` alignment: one channel permutation per group, consistent through a ResNet.

A layer's input channels follow the permutation of the layer feeding it, and the
convs whose outputs meet in a residual addition share one permutation. The
permutations are found by weight matching (Ainsworth et al., "Git Re-Basin"):
coordinate ascent over groups, each step a linear assignment, on standardised
kernels, so the objective is the sum of kernel Pearson correlations.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from .kernels import NetworkLike, standardise, state_of
from .models import build, conv_layers

__all__ = ["coupled_scores", "permutation_graph", "permuted_copy"]


def permutation_graph(network: NetworkLike) -> tuple[list[tuple[str, str, str, str | None]], tuple[str, str]]:
    """Channel groups of a ResNet: per conv (name, out_group, in_group, its BN or None),
    and (classifier name, its input group). Residual additions share a group."""
    names = set(state_of(network))
    arch = "resnet50" if any(k.endswith("conv3.weight") for k in names) else "resnet20"
    with torch.device("meta"):
        skeleton = build(arch)
    convs: list[tuple[str, str, str, str | None]] = [("conv1", "stem", "input", "bn1")]
    current = "stem"
    for block_name, block in skeleton.named_modules():
        inner = [n for n in ("conv1", "conv2", "conv3") if hasattr(block, n)] if block_name.count(".") == 1 else []
        if not inner:
            continue
        shortcut = "shortcut" if getattr(block, "shortcut", None) is not None else (
            "downsample.0" if getattr(block, "downsample", None) is not None else None)
        out = f"{block_name}.out" if shortcut else current
        source = current
        for i, conv in enumerate(inner):
            target = out if i == len(inner) - 1 else f"{block_name}.{conv}"
            convs.append((f"{block_name}.{conv}", target, source, f"{block_name}.bn{i + 1}"))
            source = target
        if shortcut:
            bn = "downsample.1" if shortcut == "downsample.0" else None
            convs.append((f"{block_name}.{shortcut}", out, current, f"{block_name}.{bn}" if bn else None))
        current = out
    order = {name: i for i, (name, _) in enumerate(conv_layers(skeleton))}
    convs.sort(key=lambda c: order[c[0]])
    return convs, ("fc", current)


def _coupled_permutations(state_a, state_b, graph, dtype, device, max_iter: int = 100,
                          seed: int = 0) -> dict[str, torch.Tensor]:
    """Weight matching: π_g maps A's channel k of group g to B's channel π_g[k]."""
    convs, (fc, fc_in) = graph
    layers = [(name, out, inp) for name, out, inp, _ in convs] + [(fc, "classes", fc_in)]

    def standard(state, name):
        w = state[f"{name}.weight"].detach().to(device, dtype)
        return standardise(w.reshape(w.shape[0], -1)).reshape(w.shape[0], w.shape[1], -1)  # (K, C, hw)

    wa = {name: standard(state_a, name) for name, _, _ in layers}
    wb = {name: standard(state_b, name) for name, _, _ in layers}
    sizes = {out: wa[name].shape[0] for name, out, _ in layers}
    groups = sorted(g for g in sizes if g not in ("classes",))
    perms = {g: torch.arange(n, device=device) for g, n in sizes.items()}
    perms["input"] = torch.arange(3, device=device)
    order_rng = np.random.default_rng(seed)
    for _ in range(max_iter):
        changed = False
        for g in order_rng.permutation(groups):
            m = torch.zeros(sizes[g], sizes[g], dtype=dtype, device=device)
            for name, out, inp in layers:
                if out == g:  # (K, C·hw) · (K, C·hw)ᵀ with B's inputs permuted
                    m += wa[name].flatten(1) @ wb[name][:, perms[inp]].flatten(1).T
                if inp == g:  # Σ_k Σ_hw a[k, c, x] b[π_out(k), d, x]
                    m += torch.einsum("kcx,kdx->cd", wa[name], wb[name][perms[out]])
            _, cols = linear_sum_assignment(m.cpu().numpy(), maximize=True)
            new = torch.as_tensor(cols, device=device)
            if not torch.equal(new, perms[g]):
                perms[g], changed = new, True
        if not changed:
            break
    return perms


def coupled_scores(a: NetworkLike, b: NetworkLike, dtype, device) -> list[tuple[str, np.ndarray]]:
    state_a, state_b = state_of(a), state_of(b)
    graph = permutation_graph(state_a)
    perms = _coupled_permutations(state_a, state_b, graph, dtype, device)
    out = []
    for name, out_group, in_group, _ in graph[0]:
        xa = standardise(state_a[f"{name}.weight"].to(device, dtype).flatten(1))
        wb = state_b[f"{name}.weight"].to(device, dtype)[perms[out_group]][:, perms[in_group]]
        out.append((name, (xa * standardise(wb.flatten(1))).sum(1).cpu().numpy()))
    return out


def permuted_copy(model: nn.Module, seed: int = 0) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A functionally identical copy of ``model`` with its hidden channels permuted
    consistently (residual groups included): the test case for ``coupled``."""
    convs, (fc, fc_in) = permutation_graph(model)
    generator = torch.Generator().manual_seed(seed)
    sizes = {out: model.get_submodule(name).out_channels for name, out, _, _ in convs}
    perms = {g: torch.randperm(n, generator=generator) for g, n in sizes.items()}
    perms["input"] = torch.arange(3)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for name, out, inp, bn in convs:
            conv = twin.get_submodule(name)
            conv.weight.copy_(conv.weight[perms[out]][:, perms[inp]])
            if conv.bias is not None:
                conv.bias.copy_(conv.bias[perms[out]])
            if bn is not None:
                norm = twin.get_submodule(bn)
                for tensor in (norm.weight, norm.bias, norm.running_mean, norm.running_var):
                    tensor.copy_(tensor[perms[out]])
        linear = twin.get_submodule(fc)
        linear.weight.copy_(linear.weight[:, perms[fc_in]])
    return twin, perms
