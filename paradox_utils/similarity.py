"""Intrinsic similarity of networks by their conv kernels (PAPER_SPEC §4), and linear CKA.

A kernel is one output channel of a Conv2d, flattened over (in_channels, kh, kw).
After centring and scaling each kernel to unit norm ("standardising"), the Pearson
r of two kernels is their dot product, so one layer's K × K correlation matrix for
many pairs of networks is one large matmul. Three alignments turn that matrix into
a layer score:

* ``paper`` — the authors' sequential greedy in network A's kernel order: kernel a
  takes the untaken b with the largest r (ties: lowest b); if that r ≤ 0 the score
  of a is 0 and no b is taken. Layer score = mean over a. Asymmetric.
* ``hungarian`` — the one-to-one assignment maximising Σ r
  (``scipy.optimize.linear_sum_assignment``); layer score = mean assigned r.
* ``coupled`` — one permutation per group of channels, consistent through the
  network (a layer's input channels follow the permutation of the layer feeding
  it; residual additions share one), found by weight matching (Ainsworth et al.,
  "Git Re-Basin") on the standardised kernels; layer score = mean r under it.

Network similarity = unweighted mean of layer scores. ``pairwise_similarity``
streams pairs in chunks (bounded memory), optionally on a GPU, with a cache keyed
on the hash of each network's conv kernels.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from . import checkpoints
from .checkpoints import atomic_path
from .models import build, conv_layers
from .progress import tqdm

__all__ = [
    "METHODS", "chance_level", "cka_matrix", "conv_kernels", "layer_names", "layer_profile",
    "layer_similarities", "linear_cka", "network_similarity", "pairwise_similarity",
    "permutation_graph", "permuted_copy", "probe_activations",
]

METHODS = ("paper", "hungarian", "coupled")
NetworkLike = nn.Module | Mapping[str, torch.Tensor] | str | os.PathLike


# ----------------------------------------------------------------------------- inputs

def _state(network: NetworkLike) -> Mapping[str, torch.Tensor]:
    if isinstance(network, nn.Module):
        return network.state_dict()
    if isinstance(network, (str, os.PathLike)):
        return checkpoints.load_state(network)[0]
    return network


def conv_kernels(network: NetworkLike) -> list[tuple[str, torch.Tensor]]:
    """Every conv layer as (name, kernels (K, C·kh·kw)), in the model's conv order."""
    return [(name, weight.detach().reshape(weight.shape[0], -1)) for name, weight in conv_layers(_state(network))]


def layer_names(network: NetworkLike) -> list[str]:
    return [name for name, _ in conv_kernels(network)]


def _standardise(kernels: torch.Tensor) -> torch.Tensor:
    """Rows centred and scaled to unit norm; a constant row becomes zeros (r = 0 with all).

    "Constant" is judged relative to the row's size: centring a constant row leaves
    rounding residue (~eps·|value|), which must not be blown up into a random unit vector.
    """
    centred = kernels - kernels.mean(dim=-1, keepdim=True)
    norm = centred.norm(dim=-1, keepdim=True)
    eps = torch.finfo(kernels.dtype).eps
    floor = 16 * eps * kernels.norm(dim=-1, keepdim=True) + torch.finfo(kernels.dtype).tiny
    return torch.where(norm > floor, centred / norm.clamp_min(floor), torch.zeros_like(centred))


def _same_architecture(a: list, b: list, what: str = "networks") -> None:
    shapes_a = [(n, tuple(w.shape)) for n, w in a]
    shapes_b = [(n, tuple(w.shape)) for n, w in b]
    if shapes_a != shapes_b:
        raise ValueError(f"The {what} are not of the same architecture ({len(a)} vs {len(b)} conv layers, "
                         "or different shapes); similarity pairs layers by position.")


# ----------------------------------------------------------------------------- alignments

def _greedy(r: torch.Tensor) -> torch.Tensor:
    """The paper's sequential greedy on a batch of (P, K, K) correlations → (P, K) scores."""
    p, k, _ = r.shape
    taken = torch.zeros(p, k, dtype=torch.bool, device=r.device)
    scores = torch.zeros(p, k, dtype=r.dtype, device=r.device)
    rows = torch.arange(p, device=r.device)
    for a in range(k):
        value, best = r[:, a, :].masked_fill(taken, float("-inf")).max(dim=1)  # first max: lowest b
        accept = value > 0
        scores[:, a] = torch.where(accept, value, torch.zeros_like(value))
        taken[rows[accept], best[accept]] = True
    return scores


def _hungarian(r: torch.Tensor) -> torch.Tensor:
    """Assignment maximising Σ r, per pair of a (P, K, K) batch → (P, K) scores in A's order."""
    host = r.detach().cpu().numpy()
    out = np.empty(host.shape[:2], dtype=host.dtype)
    for p, matrix in enumerate(host):
        rows, cols = linear_sum_assignment(matrix, maximize=True)
        out[p, rows] = matrix[rows, cols]
    return torch.from_numpy(out)


def _align(r: torch.Tensor, method: str) -> torch.Tensor:
    return _greedy(r) if method == "paper" else _hungarian(r)


def _check_method(method: str, allowed: Sequence[str] = METHODS) -> None:
    if method not in allowed:
        raise ValueError(f"Unknown similarity method {method!r}; valid: {', '.join(allowed)}.")


def kernel_scores(a: NetworkLike, b: NetworkLike, method: str = "paper", dtype: torch.dtype = torch.float32,
                  device: str | torch.device = "cpu") -> list[tuple[str, np.ndarray]]:
    """Per conv layer, the aligned correlation of each of A's kernels: (name, (K,) array)."""
    _check_method(method)
    ka, kb = conv_kernels(a), conv_kernels(b)
    _same_architecture(ka, kb)
    if method == "coupled":
        return _coupled_scores(a, b, dtype, device)
    out = []
    for (name, wa), (_, wb) in zip(ka, kb, strict=True):
        xa = _standardise(wa.to(device, dtype))
        xb = _standardise(wb.to(device, dtype))
        out.append((name, _align((xa @ xb.T)[None], method)[0].cpu().numpy()))
    return out


def layer_similarities(a: NetworkLike, b: NetworkLike, method: str = "paper",
                       dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> np.ndarray:
    """(n_conv_layers,) similarity of A to B per conv layer, by ``method``.

    ``a``, ``b``: modules, state_dicts or checkpoint paths of one architecture.
    """
    return np.array([scores.mean() for _, scores in kernel_scores(a, b, method, dtype, device)])


def network_similarity(a: NetworkLike, b: NetworkLike, method: str = "paper", **kwargs) -> float:
    """Intrinsic similarity of A to B: the unweighted mean of the layer scores."""
    return float(layer_similarities(a, b, method, **kwargs).mean())


def layer_profile(parent: NetworkLike, child: NetworkLike, method: str = "paper") -> pd.DataFrame:
    """Per conv layer: mean and std of the aligned kernel correlations (the paper's Figure 5)."""
    rows = [{"layer": name, "position": i, "mean": float(s.mean()), "std": float(s.std()), "kernels": len(s)}
            for i, (name, s) in enumerate(kernel_scores(parent, child, method))]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- coupled

def permutation_graph(network: NetworkLike) -> tuple[list[tuple[str, str, str, str | None]], tuple[str, str]]:
    """Channel groups of a ResNet: per conv (name, out_group, in_group, its BN or None),
    and (classifier name, its input group). Residual additions share a group."""
    names = set(_state(network))
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
        return _standardise(w.reshape(w.shape[0], -1)).reshape(w.shape[0], w.shape[1], -1)  # (K, C, hw)

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


def _coupled_scores(a: NetworkLike, b: NetworkLike, dtype, device) -> list[tuple[str, np.ndarray]]:
    state_a, state_b = _state(a), _state(b)
    graph = permutation_graph(state_a)
    perms = _coupled_permutations(state_a, state_b, graph, dtype, device)
    out = []
    for name, out_group, in_group, _ in graph[0]:
        xa = _standardise(state_a[f"{name}.weight"].to(device, dtype).flatten(1))
        wb = state_b[f"{name}.weight"].to(device, dtype)[perms[out_group]][:, perms[in_group]]
        out.append((name, (xa * _standardise(wb.flatten(1))).sum(1).cpu().numpy()))
    return out


def permuted_copy(model: nn.Module, seed: int = 0) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A functionally identical copy of ``model`` with its hidden channels permuted
    consistently (residual groups included): the test case for ``coupled``."""
    import copy

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


# ----------------------------------------------------------------------------- pairwise

def _fingerprint(kernels: list[tuple[str, torch.Tensor]]) -> str:
    digest = hashlib.sha256()
    for name, weight in kernels:
        digest.update(name.encode())
        digest.update(weight.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def _upper_pairs(stacks: list[torch.Tensor], method: str, block_bytes: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """All pairs i < j, row block by row block: yields (pairs (P, 2), layer scores (P, L))."""
    n = stacks[0].shape[0]
    kmax = max(s.shape[1] for s in stacks)
    rows_per_block = max(1, int(block_bytes // (n * kmax * kmax * stacks[0].element_size())))
    for start in range(0, n - 1, rows_per_block):
        stop = min(n - 1, start + rows_per_block)
        i, j = torch.triu_indices(stop - start, n - start - 1, offset=0)
        i_local, j_local = i, j  # j is relative to start + 1
        keep = (j_local + start + 1) > (i_local + start)
        i_local, j_local = i_local[keep], j_local[keep]
        scores = []
        for x in stacks:
            b, k, d = x[start:stop].shape
            r = (x[start:stop].reshape(b * k, d) @ x[start + 1:].reshape(-1, d).T)
            r = r.view(b, k, n - start - 1, k).permute(0, 2, 1, 3)[i_local, j_local]
            scores.append(_align(r, method).mean(dim=1).cpu())
        pairs = torch.stack([i_local + start, j_local + start + 1], 1).numpy()
        yield pairs, torch.stack(scores, 1).double().numpy()


def _listed_pairs(stacks: list[torch.Tensor], pairs: np.ndarray, method: str,
                  block_bytes: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Given pairs only (the cache has the rest): batched matmuls over pair chunks."""
    kmax = max(s.shape[1] for s in stacks)
    chunk = max(1, int(block_bytes // (kmax * kmax * stacks[0].element_size())))
    for start in range(0, len(pairs), chunk):
        part = pairs[start:start + chunk]
        a, b = torch.as_tensor(part[:, 0]), torch.as_tensor(part[:, 1])
        scores = [_align(torch.bmm(x[a], x[b].transpose(1, 2)), method).mean(dim=1).cpu() for x in stacks]
        yield part, torch.stack(scores, 1).double().numpy()


def _read_cache(path: Path | None, method: str) -> dict[tuple[str, str], np.ndarray]:
    if path is None or not path.exists():
        return {}
    table = pd.read_parquet(path)
    table = table[table["method"] == method]
    return {(a, b): np.asarray(s) for a, b, s in zip(table["a"], table["b"], table["scores"], strict=True)}


def _write_cache(path: Path, method: str, new: dict[tuple[str, str], np.ndarray]) -> None:
    old = pd.read_parquet(path) if path.exists() else None
    rows = pd.DataFrame({"method": method, "a": [k[0] for k in new], "b": [k[1] for k in new],
                         "scores": [v.tolist() for v in new.values()]})
    table = rows if old is None else pd.concat([old, rows], ignore_index=True)
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


def pairwise_similarity(networks: Sequence[NetworkLike] | Mapping[str, NetworkLike], method: str = "paper",
                        device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                        cache: str | os.PathLike | None = None, block_bytes: int = 256 * 2**20,
                        progress: bool = True, return_layers: bool = False):
    """(N, N) similarity matrix: entry [i, j] is A_i → A_j for i < j, mirrored; diagonal 1.

    ``networks``: a sequence or an id → network mapping (modules, state_dicts or
    checkpoint paths) of one architecture. ``cache``: a Parquet file of per-pair
    layer scores keyed on each network's kernel hash, so adding a network computes
    only its new pairs. ``block_bytes`` bounds the correlation tensors in memory.
    ``return_layers=True`` also returns the (N, N, L) per-layer scores.
    """
    _check_method(method)
    items = list(networks.values()) if isinstance(networks, Mapping) else list(networks)
    n = len(items)
    kernels = [conv_kernels(item) for item in items]
    for other in kernels[1:]:
        _same_architecture(kernels[0], other)
    n_layers = len(kernels[0])
    layers = np.zeros((n, n, n_layers))
    layers[np.arange(n), np.arange(n)] = 1.0
    keys = [_fingerprint(k) for k in kernels]
    cache_path = Path(cache) if cache is not None else None
    cached = _read_cache(cache_path, method)
    todo = [(i, j) for i in range(n) for j in range(i + 1, n) if (keys[i], keys[j]) not in cached]
    for i in range(n):
        for j in range(i + 1, n):
            if (keys[i], keys[j]) in cached:
                layers[i, j] = cached[(keys[i], keys[j])]
    fresh: dict[tuple[str, str], np.ndarray] = {}
    if todo and method == "coupled":
        for i, j in tqdm(todo, desc="pairs (coupled)", disable=not progress):
            layers[i, j] = [s.mean() for _, s in _coupled_scores(items[i], items[j], dtype, device)]
            fresh[(keys[i], keys[j])] = layers[i, j]
    elif todo:
        stacks = [_standardise(torch.stack([k[layer][1] for k in kernels]).to(device, dtype))
                  for layer in range(n_layers)]
        complete = len(todo) == n * (n - 1) // 2
        chunks = (_upper_pairs(stacks, method, block_bytes) if complete
                  else _listed_pairs(stacks, np.array(todo), method, block_bytes))
        bar = tqdm(total=len(todo), desc=f"pairs ({method})", disable=not progress)
        for pairs, scores in chunks:
            layers[pairs[:, 0], pairs[:, 1]] = scores
            for (i, j), s in zip(pairs, scores, strict=True):
                fresh[(keys[i], keys[j])] = s
            bar.update(len(pairs))
        bar.close()
    if fresh and cache_path is not None:
        _write_cache(cache_path, method, fresh)
    upper = np.triu_indices(n, 1)
    layers[upper[1], upper[0]] = layers[upper]  # the paper mirrors a→b
    matrix = layers.mean(axis=2)
    return (matrix, layers) if return_layers else matrix


def chance_level(arch: str = "resnet20", n: int = 4, method: str = "paper", seed: int = 0,
                 init: str | None = None) -> dict[str, float]:
    """Similarity of independently initialised, untrained networks: mean, std over pairs.

    Greedy maximisation over K kernels is biased well above 0 even for random
    weights; this is the floor against which trained networks' similarity reads.
    """
    nets = []
    for i in range(n):
        torch.manual_seed(seed * 1000 + i)
        nets.append(build(arch, init=init).state_dict())
    matrix = pairwise_similarity(nets, method=method, progress=False)
    values = matrix[np.triu_indices(n, 1)]
    return {"method": method, "mean": float(values.mean()), "std": float(values.std()), "pairs": len(values)}


# ----------------------------------------------------------------------------- CKA

def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two representations of the same n examples, from features.

    x: (n, p), y: (n, q). ||Yᶜᵀ Xᶜ||²_F / (||Xᶜᵀ Xᶜ||_F ||Yᶜᵀ Yᶜ||_F), Xᶜ column-centred.
    """
    x = (x - x.mean(0)).double()
    y = (y - y.mean(0)).double()
    return float((y.T @ x).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm()))


@torch.inference_mode()
def probe_activations(model: nn.Module, images: torch.Tensor, layers: Sequence[str] | None = None,
                      batch_size: int = 250) -> dict[str, torch.Tensor]:
    """Activations of ``layers`` (default: each residual stage's output and the pooled
    features) for float ``images`` (n, 3, H, W) → name → (n, features)."""
    model = model.eval()
    if layers is None:
        layers = [n for n, _ in model.named_children() if n.startswith("layer")] + ["pool"]
    captured: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    hooks = []
    for name in layers:
        if name == "pool":
            target = model.fc
            hooks.append(target.register_forward_hook(lambda m, inp, out: captured["pool"].append(inp[0].flatten(1))))
        else:
            hooks.append(model.get_submodule(name).register_forward_hook(
                lambda m, inp, out, name=name: captured[name].append(out.flatten(1))))
    try:
        for start in range(0, len(images), batch_size):
            model(images[start:start + batch_size])
    finally:
        for hook in hooks:
            hook.remove()
    return {name: torch.cat(chunks) for name, chunks in captured.items()}


def _centred_gram_vector(features: torch.Tensor) -> torch.Tensor:
    """The n × n Gram matrix of centred features, flattened and scaled to unit norm."""
    x = (features - features.mean(0)).double()
    gram = x @ x.T
    return (gram / gram.norm()).flatten()


def cka_matrix(networks: Mapping[str, nn.Module] | Sequence[nn.Module], images: torch.Tensor,
               layers: Sequence[str] | None = None, progress: bool = True) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Linear CKA between every pair of networks on one fixed probe batch.

    ``images``: float (n, 3, H, W) in [0, 1], the same for all networks. Returns the
    (N, N) mean over layers and the per-layer (N, N) matrices. Each network's
    centred n × n Gram matrix is computed once; a pair's CKA is then a dot product
    (CKA = ⟨K̃, L̃⟩ / (‖K̃‖ ‖L̃‖), equal to the feature formula of ``linear_cka``).
    """
    items = list(networks.values()) if isinstance(networks, Mapping) else list(networks)
    vectors: dict[str, list[torch.Tensor]] = {}
    for model in tqdm(items, desc="probe activations", disable=not progress):
        for name, feats in probe_activations(model, images, layers).items():
            vectors.setdefault(name, []).append(_centred_gram_vector(feats))
    per_layer = {name: (torch.stack(v) @ torch.stack(v).T).numpy() for name, v in vectors.items()}
    return np.mean(list(per_layer.values()), axis=0), per_layer
