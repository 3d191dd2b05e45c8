"""Tests with the family as the unit: the Mantel test, its partial form, Holm's correction, power.

A parent and its offspring share their start and most of their training, so the networks
of one family are not independent samples. With ``groups`` (one family label per network,
see ``bootstrap.family_codes``), every permutation here moves *whole families*: a family
is exchanged only with a family of the same size and its members are shuffled within it.
Which pairs are within a family and which are between families never changes, so lineage
alone (related pairs alike on both measures) yields no significance, while an association
within families or between families is still tested. Without ``groups`` each network is
its own family (the classical Mantel test).

* :func:`mantel` — Spearman r of two matrices' upper triangles and its permutation p.
* :func:`partial_mantel` — the same holding pair covariates fixed (e.g. same family, same
  training data): ranks regressed on the covariates, residuals correlated, the similarity
  residuals permuted (Freedman–Lane; in the spirit of Dekker, Krackhardt & Snijders 2007).
* :func:`holm` — Holm's step-down adjustment of a family of p-values.
* :func:`detectable_correlation` — the smallest correlation the family test detects at a
  given power, simulated with the run's own family structure and noise.

(methods: References, families and the verdict)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .bootstrap import _spearman, _upper, family_codes

__all__ = ["detectable_correlation", "family_orders", "holm", "mantel", "partial_mantel", "permutation_count"]


def _square(a, b=None) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=float), np.asarray(a if b is None else b, dtype=float)
    if x.shape != y.shape or x.ndim != 2 or x.shape[0] != x.shape[1]:
        raise ValueError(f"The Mantel test needs two square matrices of one size, got {x.shape} and {y.shape}.")
    return x, y


def permutation_count(codes: np.ndarray) -> int:
    """How many distinct orders :func:`family_orders` can draw: per family size s held by k
    families, k! · (s!)^k. With every network its own family, N!."""
    sizes = np.bincount(np.bincount(codes))
    return math.prod(math.factorial(int(k)) * math.factorial(int(s)) ** int(k) for s, k in enumerate(sizes) if k)


def family_orders(codes: np.ndarray, permutations: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """``permutations`` random orders (N,) that move whole families: each family's slots
    receive the members of a family of the same size (possibly itself), in random order.
    Families of one network each: a plain ``rng.permutation(N)``, the classical test's draw."""
    n = len(codes)
    members = [np.flatnonzero(codes == f) for f in range(codes.max() + 1 if n else 0)]
    if all(len(m) == 1 for m in members):
        for _ in range(permutations):
            yield rng.permutation(n)
        return
    by_size: dict[int, list[int]] = {}
    for f, m in enumerate(members):
        by_size.setdefault(len(m), []).append(f)
    for _ in range(permutations):
        order = np.empty(n, dtype=int)
        for families in by_size.values():
            for f, g in zip(families, rng.permutation(families), strict=True):
                order[members[f]] = rng.permutation(members[g])
        yield order


def mantel(a: pd.DataFrame | np.ndarray, b: pd.DataFrame | np.ndarray, permutations: int = 9999,
           seed: int = 0, groups=None) -> dict:
    """Mantel test: Spearman r between the upper triangles of two N × N matrices, and its
    two-sided permutation p, (k + 1) / (permutations + 1), k the permuted |r| at least |r|.

    ``groups`` None: rows and columns of ``b`` permuted together over all networks. With
    ``groups`` (a label per network, aligned with the rows, or a mapping id → label for
    DataFrames): whole families moved (:func:`family_orders`). The result says ``unit``
    ("networks" or "families"), ``n_families`` and ``distinct`` (how many different orders
    exist: with few, p cannot fall below about 1 / distinct).
    """
    x, y = _square(a, b)
    n = len(x)
    codes = family_codes(a, groups, n)
    base = {"n_networks": n, "n_families": int(codes.max() + 1) if n else 0,
            "unit": "networks" if groups is None else "families",
            "distinct": permutation_count(codes) if n else 0}
    observed = _spearman(_upper(x), _upper(y))
    if n < 4 or np.isnan(observed) or base["distinct"] < 2:
        return {"r": observed, "p": float("nan"), **base, "permutations": 0}
    orders = family_orders(codes, permutations, np.random.default_rng(seed))
    permuted = _permuted_ranked(x, y, orders) if _ranks_once(x, y) else _permuted_literal(x, y, orders)
    hits = sum(abs(r) >= abs(observed) - 1e-12 for r in permuted)
    return {"r": observed, "p": (hits + 1) / (permutations + 1), **base, "permutations": permutations}


def _permuted_literal(x: np.ndarray, y: np.ndarray, orders: Iterable[np.ndarray]) -> Iterator[float]:
    """Spearman r of x's upper triangle with that of y, rows and columns permuted by each order:
    the definition, ranking both triangles again every time (the slow twin of _permuted_ranked)."""
    for order in orders:
        yield _spearman(_upper(x), _upper(y[np.ix_(order, order)]))


def _ranks_once(x: np.ndarray, y: np.ndarray) -> bool:
    """Whether _permuted_ranked applies: y symmetric (to rounding: a correlation matrix's two
    triangles may differ in the last bit) and neither upper triangle with a NaN."""
    symmetric = np.allclose(y, y.T, rtol=1e-12, atol=1e-12, equal_nan=True)
    return symmetric and not (np.isnan(_upper(x)).any() or np.isnan(_upper(y)).any())


def _permuted_ranked(x: np.ndarray, y: np.ndarray, orders: Iterable[np.ndarray]) -> Iterator[float]:
    """_permuted_literal's values, each one (N × N) gather and one dot product (N = 329: ~1 ms, not ~20).

    Permuting the rows and columns of a symmetric y together only reorders its off-diagonal
    values, so every permutation's upper triangle holds the same multiset: its ranks are y's
    ranks reordered (ties included), with the same mean and spread. Both are ranked once;
    x's centred ranks sit in the upper triangle of an otherwise zero matrix, so the sum of
    its product with the permuted rank matrix is the dot product of the two triangles."""
    n = len(x)
    i, j = np.triu_indices(n, 1)
    rx = np.zeros((n, n))
    rx[i, j] = rankdata(x[i, j])
    rx[i, j] -= rx[i, j].mean()
    ry = np.zeros((n, n))
    ry[i, j] = rankdata(y[i, j])
    ry[i, j] -= ry[i, j].mean()
    ry[j, i] = ry[i, j]
    scale = np.sqrt(np.sum(rx * rx) * np.sum(ry[i, j] ** 2))
    for order in orders:  # einsum, not a BLAS dot: BLAS threads stall when the cores are busy
        yield float(np.einsum("ij,ij->", rx, ry[np.ix_(order, order)]) / scale)


def _residuals(values: np.ndarray, design: np.ndarray) -> np.ndarray:
    """``values`` minus their least-squares fit on the columns of ``design``."""
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)
    return values - design @ coef


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    scale = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / scale) if scale > 0 else float("nan")


def partial_mantel(a: pd.DataFrame | np.ndarray, b: pd.DataFrame | np.ndarray,
                   covariates: Mapping[str, pd.DataFrame | np.ndarray], permutations: int = 9999, seed: int = 0,
                   groups=None) -> dict:
    """The association of two N × N matrices holding pair covariates fixed, and its p.

    Both upper triangles are ranked (so r is a partial Spearman), each regressed on an
    intercept and the covariates' upper triangles (e.g. "same family" and "same training
    data", 0/1), and r is the Pearson correlation of the two residuals. The p-value
    permutes the matrix of ``a``'s residuals (rows and columns together, whole families
    with ``groups``), residualises it on the covariates again and correlates it with
    ``b``'s residuals: the permutation of residuals under the reduced model (Freedman &
    Lane 1983), which keeps the test's size when the covariates are correlated with
    ``a`` — the case here, where similarity is high within families by construction —
    unlike permuting ``a`` itself (Legendre & Legendre, Numerical Ecology, ch. 10;
    Dekker, Krackhardt & Snijders 2007 for the network-regression form). Pairs where
    anything is NaN are left out of the fit and the tests (then each permutation is
    computed by its definition). Returns r, p, n_networks, n_families, unit, distinct,
    permutations and ``covariates`` (their names).
    """
    x, y = _square(a, b)
    n = len(x)
    names = list(covariates)
    z = [np.asarray(covariates[name], dtype=float) for name in names]
    if any(c.shape != x.shape for c in z):
        raise ValueError(f"Each covariate must be a {n} × {n} matrix like the two compared.")
    codes = family_codes(a, groups, n)
    i, j = np.triu_indices(n, 1)
    keep = np.isfinite(x[i, j]) & np.isfinite(y[i, j]) & np.all([np.isfinite(c[i, j]) for c in z], axis=0)
    design = np.column_stack([np.ones(keep.sum()), *[c[i, j][keep] for c in z]])
    rank_x = np.full((n, n), np.nan)
    rank_x[i[keep], j[keep]] = rankdata(x[i, j][keep])
    rank_x[j[keep], i[keep]] = rank_x[i[keep], j[keep]]
    ry = _residuals(rankdata(y[i, j][keep]), design)
    rx = np.full((n, n), np.nan)
    rx[i[keep], j[keep]] = _residuals(rank_x[i[keep], j[keep]], design)
    rx[j[keep], i[keep]] = rx[i[keep], j[keep]]
    observed = _pearson(rx[i[keep], j[keep]], ry)
    base = {"n_networks": n, "n_families": int(codes.max() + 1) if n else 0, "covariates": names,
            "unit": "networks" if groups is None else "families", "distinct": permutation_count(codes) if n else 0}
    if n < 4 or keep.sum() <= design.shape[1] + 1 or np.isnan(observed) or base["distinct"] < 2:
        return {"r": observed, "p": float("nan"), **base, "permutations": 0}
    projector = np.linalg.pinv(design)  # the residualisation, once: e − Z (Z⁺ e)
    hits = 0
    for order in family_orders(codes, permutations, np.random.default_rng(seed)):
        moved = rx[np.ix_(order, order)][i[keep], j[keep]]
        if np.isnan(moved).any():  # a NaN pair moved into a kept place: the definition, pair by pair
            both = np.isfinite(moved)
            value = _pearson(_residuals(moved[both], design[both]), ry[both])
        else:
            value = _pearson(moved - design @ (projector @ moved), ry)
        hits += abs(value) >= abs(observed) - 1e-12
    return {"r": observed, "p": (hits + 1) / (permutations + 1), **base, "permutations": permutations}


def holm(pvalues) -> np.ndarray | pd.Series:
    """Holm's step-down adjustment: the m finite p-values sorted, p_(k) · (m − k + 1) for
    k = 1…m, made non-decreasing in that order and capped at 1. NaN stays NaN and is not
    counted in m. A Series keeps its index; anything else comes back as an array."""
    values = np.asarray(pvalues, dtype=float)
    out = np.full(values.shape, np.nan)
    flat, finite = values.ravel(), np.isfinite(values.ravel())
    p = flat[finite]
    order = np.argsort(p, kind="stable")
    m = len(p)
    stepped = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    result = out.ravel()
    result[finite] = adjusted
    result = result.reshape(values.shape)
    return pd.Series(result, index=pvalues.index, name=pvalues.name) if isinstance(pvalues, pd.Series) else result


def _block_means(values: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """Each value's block mean: (P,) values, (P,) integer block ids."""
    sums = np.bincount(blocks, weights=values)
    counts = np.bincount(blocks)
    return (sums / np.maximum(counts, 1))[blocks]


def detectable_correlation(similarity: pd.DataFrame | np.ndarray, behaviour: pd.DataFrame | np.ndarray, groups, *,
                           power: float = 0.8, alpha: float = 0.05, simulations: int = 200, permutations: int = 199,
                           seed: int = 0, effects=None) -> dict:
    """The smallest Spearman correlation between ``similarity`` and a behaviour that the
    family-level :func:`mantel` detects (p < ``alpha``) in at least ``power`` of simulated
    runs with this run's design: its networks, its families and its noise.

    Pairs are sorted into blocks by their two families (a within-family block per family, a
    between block per pair of families). A simulated behaviour is the observed behaviour's
    block means (its family structure) plus, per effect ρ of ``effects`` (default 0, 0.1,
    …, 1), ρ · the similarity's standardised residual from its own block means plus
    √(1 − ρ²) · the observed behaviour's residuals shuffled across pairs and standardised,
    all scaled by the residuals' spread. So the planted association lies beyond lineage,
    as the family test asks. The grid stops at the first ρ reaching ``power``.

    Returns r (the median Spearman r of similarity and the simulated behaviour at that ρ;
    NaN if none reaches it), rho, power (the target), power_reached, n_families,
    ``curve`` (a DataFrame: rho, achieved_r, power) and ``reason`` (why r is NaN, else "").
    Cost: simulations × permutations gathers per ρ; 200 × 199 for 12 networks ≈ 1–2 s.
    """
    x, y = _square(similarity, behaviour)
    n = len(x)
    codes = family_codes(similarity, groups, n)
    n_families = int(codes.max() + 1) if n else 0
    i, j = np.triu_indices(n, 1)
    sx, sy = x[i, j], y[i, j]
    result = {"r": float("nan"), "rho": float("nan"), "power": power, "power_reached": float("nan"),
              "n_families": n_families, "curve": pd.DataFrame(columns=["rho", "achieved_r", "power"]), "reason": ""}
    distinct = permutation_count(codes) if n else 0
    if n < 4 or not (np.isfinite(sx).all() and np.isfinite(sy).all()):
        return {**result, "reason": "too few networks, or undefined values in the matrices"}
    if distinct * alpha < 1:
        return {**result, "reason": f"{n_families} families allow only {distinct} distinct family permutations, "
                                    f"too few for a p below {alpha}"}
    fa, fb = np.minimum(codes[i], codes[j]), np.maximum(codes[i], codes[j])
    blocks = np.unique(fa * n_families + fb, return_inverse=True)[1].ravel()
    structure = _block_means(sy, blocks)
    noise = sy - structure
    signal = sx - _block_means(sx, blocks)
    if signal.std() == 0 or noise.std() == 0:
        return {**result, "reason": "similarity or behaviour does not vary beyond its family blocks"}
    signal, spread = signal / signal.std(), noise.std()
    rng = np.random.default_rng(seed)
    rows = []
    for rho in (np.linspace(0, 1, 11) if effects is None else effects):
        rejected, achieved = 0, []
        for _ in range(simulations):
            shuffled = rng.permutation(noise)
            shuffled = (shuffled - shuffled.mean()) / shuffled.std()
            simulated = np.zeros((n, n))
            simulated[i, j] = structure + spread * (rho * signal + np.sqrt(max(0.0, 1 - rho ** 2)) * shuffled)
            simulated[j, i] = simulated[i, j]
            test = mantel(x, simulated, permutations, int(rng.integers(2 ** 32)), groups=codes)
            rejected += test["p"] < alpha
            achieved.append(test["r"])
        rows.append({"rho": float(rho), "achieved_r": float(np.median(achieved)), "power": rejected / simulations})
        if rows[-1]["power"] >= power:
            break
    curve = pd.DataFrame(rows)
    reached = curve[curve["power"] >= power]
    if reached.empty:
        return {**result, "curve": curve, "power_reached": float(curve["power"].max()),
                "reason": f"no planted effect up to ρ = {curve['rho'].max():g} reached {power:.0%} power"}
    first = reached.iloc[0]
    return {**result, "r": float(first["achieved_r"]), "rho": float(first["rho"]),
            "power_reached": float(first["power"]), "curve": curve}
