"""Intrinsic similarity of networks by their conv kernels (as in the paper), and linear CKA.

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
reads each network once and streams pairs in chunks (bounded memory), optionally on
a GPU; ``pairwise_similarity_cached`` does the same with a cache keyed on the sha256 of
each network's weights (``weights_key``) and the settings of the measure.

This module is the public face of the measures; kernel extraction lives in
``kernels``, the coupled alignment in ``permutations`` and linear CKA in ``cka``
(re-exported here, so ``similarity.cka_matrix`` and the like work).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment

from .cka import cka_matrix, distorted_cka, linear_cka, probe_activations
from .files import read_cache_table, write_table
from .kernels import (
    NetworkLike,
    conv_kernels,
    layer_names,
    same_architecture,
    standardise,
    state_of,
    weights_key,
)
from .models import build
from .permutations import MAX_ITER, RTOL, coupled_scores, permutation_graph, permuted_copy, spec_for
from .progress import tqdm

__all__ = [
    "METHODS", "NULL_NETWORKS", "Similarity", "cka_matrix", "conv_kernels", "distorted_cka", "kernel_scores",
    "layer_names", "layer_profile", "layer_similarities", "linear_cka", "null_distribution", "pairwise_similarity",
    "pairwise_similarity_cached", "permutation_graph", "permuted_copy", "probe_activations", "spec_for", "weights_key",
]

METHODS = ("paper", "hungarian", "coupled")


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
    state_a, state_b = state_of(a), state_of(b)  # a checkpoint is read once, whichever the method
    ka, kb = conv_kernels(state_a), conv_kernels(state_b)
    same_architecture(ka, kb)
    if method == "coupled":
        return coupled_scores(state_a, state_b, dtype, device)
    out = []
    for (name, wa), (_, wb) in zip(ka, kb, strict=True):
        xa = standardise(wa.to(device, dtype))
        xb = standardise(wb.to(device, dtype))
        out.append((name, _align((xa @ xb.T)[None], method)[0].cpu().numpy()))
    return out


def layer_similarities(a: NetworkLike, b: NetworkLike, method: str = "paper",
                       dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> np.ndarray:
    """(n_conv_layers,) similarity of A to B per conv layer, by ``method``.

    ``a``, ``b``: modules, state_dicts or checkpoint paths of one architecture.
    """
    return np.array([scores.mean() for _, scores in kernel_scores(a, b, method, dtype, device)])


def layer_profile(parent: NetworkLike, child: NetworkLike, method: str = "paper") -> pd.DataFrame:
    """Per conv layer: mean and std of the aligned kernel correlations (the paper's Figure 5)."""
    rows = [{"layer": name, "position": i, "mean": float(s.mean()), "std": float(s.std()), "kernels": len(s)}
            for i, (name, s) in enumerate(kernel_scores(parent, child, method))]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- pairwise

def _upper_pairs(stacks: list[torch.Tensor], method: str, block_bytes: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """All pairs i < j, row block by row block: yields (pairs (P, 2), layer scores (P, L))."""
    n = stacks[0].shape[0]
    kmax = max(s.shape[1] for s in stacks)
    rows_per_block = max(1, int(block_bytes // (n * kmax * kmax * stacks[0].element_size())))
    for start in range(0, n - 1, rows_per_block):
        stop = min(n - 1, start + rows_per_block)
        # column j of the block is network start + 1 + j, so j ≥ i is exactly "B after A"
        i_local, j_local = torch.triu_indices(stop - start, n - start - 1, offset=0)
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


CACHE_COLUMNS = ["method", "settings", "a", "b", "scores"]


def _settings(method: str, dtype: torch.dtype) -> str:
    """Everything besides the two networks that shaped a cached score (method apart)."""
    settings = f"dtype={str(dtype).removeprefix('torch.')}"
    if method == "coupled":  # the ascent's stopping rule decides where it ends
        settings += f";max_iter={MAX_ITER};rtol={RTOL}"
    return settings


def _read_cache(path: Path | None, method: str,
                settings: str) -> tuple[pd.DataFrame, dict[tuple[str, str], np.ndarray]]:
    """(the whole cache table, (key A, key B) → (L,) layer scores for ``method`` and ``settings``).

    An unreadable or older-format file is rebuilt with a RuntimeWarning (``files.read_cache_table``).
    """
    table = read_cache_table(path, CACHE_COLUMNS, what="similarity cache")
    mine = table[(table["method"] == method) & (table["settings"] == settings)]
    return table, {(a, b): np.asarray(s, dtype=float)
                   for a, b, s in zip(mine["a"], mine["b"], mine["scores"], strict=True)}


def _write_cache(path: Path, old: pd.DataFrame, method: str, settings: str,
                 new: dict[tuple[str, str], np.ndarray]) -> None:
    """``old`` (as read before the computation) plus the ``new`` rows, written atomically."""
    rows = pd.DataFrame({"method": method, "settings": settings, "a": [k[0] for k in new], "b": [k[1] for k in new],
                         "scores": [np.asarray(v, dtype=float).tolist() for v in new.values()]})
    if len(old):
        old = old[CACHE_COLUMNS].assign(scores=[np.asarray(v, dtype=float).tolist() for v in old["scores"]])
        rows = pd.concat([old, rows], ignore_index=True)
    write_table(rows, path)


@dataclass(frozen=True)
class Similarity:
    """What :func:`pairwise_similarity` measured of N networks with L conv layers.

    ``matrix``: (N, N) network similarity, entry [i, j] the score of A_i → A_j for i < j,
    mirrored, diagonal 1 — the mean of ``layers`` over its last axis. ``layers``: (N, N, L)
    per-layer scores, laid out alike.
    """

    matrix: np.ndarray
    layers: np.ndarray


def pairwise_similarity(networks: Sequence[NetworkLike] | Mapping[str, NetworkLike], method: str = "paper",
                        device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                        block_bytes: int = 256 * 2**20, progress: bool = True) -> Similarity:
    """The :class:`Similarity` of every pair of ``networks`` by ``method``.

    ``networks``: a sequence or an id → network mapping (modules, state_dicts or
    checkpoint paths) of one architecture, at least one (one network gives [[1.0]]).
    Each is read once. Pairs are computed in chunks on ``device`` in ``dtype``;
    ``block_bytes`` bounds the correlation tensors in memory. ``progress``: a bar for
    reading the networks and one for the pairs. :func:`pairwise_similarity_cached` gives
    the same, computing only the pairs its cache lacks.
    """
    _check_method(method)
    kernels, states, _ = _read_networks(networks, method, progress)
    layers, _ = _layer_scores(kernels, states, {}, method, device, dtype, block_bytes, progress)
    return _mirrored(layers)


def pairwise_similarity_cached(networks: Sequence[NetworkLike] | Mapping[str, NetworkLike], method: str = "paper",
                               device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                               block_bytes: int = 256 * 2**20, progress: bool = True, *,
                               cache: str | os.PathLike) -> Similarity:
    """:func:`pairwise_similarity` with ``cache``, a Parquet file of per-pair layer scores,
    so adding a network computes only its new pairs (the new rows are written at the end).

    A row is keyed by (method, settings, key A, key B): the key is
    :func:`~paradox_utils.kernels.weights_key`, the sha256 of *every* tensor of the
    network, and settings are the dtype (and, for ``coupled``, the ascent's stopping
    rule). A key over the conv kernels alone would also be correct for ``paper`` and
    ``hungarian``, which read nothing else — but not for ``coupled``, whose matching
    reads the classifier too, and not for any measure added later that reads more.
    One key of the whole state is right for every measure and names a network the
    same way everywhere; its cost is that a BatchNorm-only change (e.g. re-estimated
    statistics) recomputes that network's pairs, which is rare and only costs time.
    """
    _check_method(method)
    kernels, states, keys = _read_networks(networks, method, progress)
    cache = Path(cache)
    settings = _settings(method, dtype)
    old, cached = _read_cache(cache, method, settings)
    n, n_layers = len(keys), len(kernels[0])
    known = {}
    for i in range(n):
        for j in range(i + 1, n):
            hit = cached.get((keys[i], keys[j]))
            if hit is not None and hit.shape == (n_layers,):
                known[(i, j)] = hit
    layers, fresh = _layer_scores(kernels, states, known, method, device, dtype, block_bytes, progress)
    if fresh:
        _write_cache(cache, old, method, settings, {(keys[i], keys[j]): s for (i, j), s in fresh.items()})
    return _mirrored(layers)


def _read_networks(networks: Sequence[NetworkLike] | Mapping[str, NetworkLike], method: str,
                   progress: bool) -> tuple[list[list[tuple[str, torch.Tensor]]], list[dict], list[str]]:
    """Each network read (and, for a checkpoint, hash-checked) once: (its conv kernels, its
    state for ``coupled`` — else nothing is kept of it —, its :func:`weights_key`), as lists."""
    items = list(networks.values()) if isinstance(networks, Mapping) else list(networks)
    if not items:
        raise ValueError("pairwise_similarity needs at least one network; it was given none.")
    kernels, states, keys = [], [], []
    for item in tqdm(items, desc="networks", disable=not progress or len(items) < 2):
        state = state_of(item)
        kernels.append(conv_kernels(state))
        same_architecture(kernels[0], kernels[-1])  # one sentence before any pair is computed
        if method == "coupled":
            spec_for(state)  # an unsupported architecture is refused before any pair, too
            states.append(state)
        keys.append(weights_key(state))
    return kernels, states, keys


def _layer_scores(kernels: list[list[tuple[str, torch.Tensor]]], states: list[dict],
                  known: Mapping[tuple[int, int], np.ndarray], method: str, device: str | torch.device,
                  dtype: torch.dtype, block_bytes: int,
                  progress: bool) -> tuple[np.ndarray, dict[tuple[int, int], np.ndarray]]:
    """(the (N, N, L) layer scores, upper triangle and diagonal filled, the pairs computed
    here: (i, j) → (L,) scores): every pair i < j that ``known`` lacks is computed."""
    n, n_layers = len(kernels), len(kernels[0])
    layers = np.zeros((n, n, n_layers))
    layers[np.arange(n), np.arange(n)] = 1.0
    todo = []
    for i in range(n):
        for j in range(i + 1, n):
            if (i, j) in known:
                layers[i, j] = known[(i, j)]
            else:
                todo.append((i, j))
    fresh: dict[tuple[int, int], np.ndarray] = {}
    if todo and method == "coupled":
        for i, j in tqdm(todo, desc="pairs (coupled)", disable=not progress):
            layers[i, j] = [s.mean() for _, s in coupled_scores(states[i], states[j], dtype, device)]
            fresh[(i, j)] = layers[i, j]
    elif todo:
        stacks = [standardise(torch.stack([k[layer][1] for k in kernels]).to(device, dtype))
                  for layer in range(n_layers)]
        complete = len(todo) == n * (n - 1) // 2
        chunks = (_upper_pairs(stacks, method, block_bytes) if complete
                  else _listed_pairs(stacks, np.array(todo), method, block_bytes))
        bar = tqdm(total=len(todo), desc=f"pairs ({method})", disable=not progress)
        for pairs, scores in chunks:
            layers[pairs[:, 0], pairs[:, 1]] = scores
            for (i, j), s in zip(pairs, scores, strict=True):
                fresh[(int(i), int(j))] = s
            bar.update(len(pairs))
        bar.close()
    return layers, fresh


def _mirrored(layers: np.ndarray) -> Similarity:
    """The :class:`Similarity` of upper-triangle layer scores, mirrored (the paper's a→b)."""
    upper = np.triu_indices(len(layers), 1)
    layers[upper[1], upper[0]] = layers[upper]
    return Similarity(layers.mean(axis=2), layers)


# Untrained networks per similarity null: 32 (496 pairs) for the kernel measures, 16 (120
# pairs) for CKA, whose cost grows with the probe images too; both ≥ 100 pairs, so that a
# 99th percentile is not simply the largest value (times in null_distribution's docstring)
NULL_NETWORKS = {"paper": 32, "hungarian": 32, "coupled": 32, "cka": 16}


def null_distribution(arch: str = "resnet20", method: str = "paper", n_networks: int | None = None, seed: int = 0,
                      init: str | None = None, images: torch.Tensor | None = None,
                      device: str | torch.device = "cpu") -> np.ndarray:
    """The similarity of networks that share nothing but their architecture: (n(n−1)/2,)
    values of ``method`` over every pair of ``n_networks`` independently initialised,
    *untrained* networks of ``arch``.

    Why this null: every measure here is biased above 0 for unrelated weights (the greedy
    and the assignment pick each kernel's best match among K; weight matching searches
    permutations; linear CKA of two random ResNet20 on the same images is ≈ 0.6, the shared
    input shaping both representations), so "similar" must mean "more similar than two networks that have never
    shared anything". Untrained networks of the same architecture and initialiser are the
    cleanest such pairs: same shapes and weight scales, independent draws. (Trained
    networks have other weight statistics, so this is a floor, not the distribution of
    unrelated *trained* networks.)

    Size (``n_networks``, default ``NULL_NETWORKS[method]``): at least 100 pairs, so that
    the 99th percentile (``nulls.null_threshold``) is not simply the largest value —
    32 networks (496 pairs) for paper, hungarian and coupled, 16 (120 pairs) for cka.
    Pairs share networks, so they are fewer independent draws than their number; pairs
    grow as n². Measured for ResNet20 on one CPU core (building the networks included):
    paper 2.4 s and hungarian 2.4 s (32 networks), coupled 27 s (32; 5.5 s for 16), cka
    13 s with 256 probe images and 70 s with 1000 (16 networks: CKA's cost is the forward
    passes, linear in networks × images). On a busy shared machine use
    ``torch.set_num_threads(1)``: two contended threads made coupled ten times slower.

    Network i is initialised from torch seed ``seed``·1000 + i (the caller's global RNG
    state is restored afterwards). ``init``: the weight initialiser (``models.build``'s
    default when None). ``method``: one of ``METHODS`` or "cka"; "cka" needs the probe
    ``images`` (float (n, 3, H, W) in [0, 1], the batch the CKA matrix of the trained
    networks used) and runs on their device; the kernel methods run on ``device``.
    """
    _check_method(method, (*METHODS, "cka"))
    n_networks = NULL_NETWORKS[method] if n_networks is None else n_networks
    if n_networks < 2:
        raise ValueError(f"A similarity null needs at least two networks (one pair); n_networks={n_networks}.")
    if method == "cka" and images is None:
        raise ValueError("The CKA null needs the probe images the CKA matrix used.")
    nets = []
    with torch.random.fork_rng(devices=[]):  # seeded builds without disturbing the caller's random stream
        for i in range(n_networks):
            torch.manual_seed(seed * 1000 + i)
            nets.append(build(arch, init=init).eval())
    if method == "cka":
        matrix, _ = cka_matrix([net.to(images.device) for net in nets], images, progress=False)
    else:
        matrix = pairwise_similarity(nets, method=method, device=device, progress=False).matrix
    return np.asarray(matrix, dtype=float)[np.triu_indices(n_networks, 1)]
