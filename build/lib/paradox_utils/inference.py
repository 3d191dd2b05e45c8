"""Tests with the family as the unit: the Mantel test, its partial form, Holm's correction, power.

A parent and its offspring share their start and most of their training, so the networks
of one family are not independent samples. With ``groups`` (one family label per network,
see ``bootstrap.family_codes``), every permutation here moves *whole families*: a family
is exchanged only with a family of the same size and its members are shuffled within it.
Which pairs are within a family and which are between families never changes, so lineage
alone (related pairs alike on both measures) yields no significance, while an association
within families or between families is still tested. Without ``groups`` each network is
its own family (the classical Mantel test). Where a design has no more distinct orders
than the permutations asked for, every one is compared (an exact test); p never falls
below 1 / (the number of distinct orders), so a handful of families cannot reach a small p.

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

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .bootstrap import _spearman, _upper, family_codes

__all__ = ["all_family_orders", "detectable_correlation", "family_orders", "holm", "mantel", "partial_mantel",
           "permutation_count"]


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


def all_family_orders(codes: np.ndarray) -> np.ndarray:
    """Every order :func:`family_orders` can draw, (distinct, N), the identity first; for small
    designs only (:func:`permutation_count` rows). Per family size: each arrangement of the
    families of that size over their slots, times each order of the members within every slot."""
    n = len(codes)
    members = [np.flatnonzero(codes == f) for f in range(codes.max() + 1 if n else 0)]
    by_size: dict[int, list[int]] = {}
    for f, m in enumerate(members):
        by_size.setdefault(len(m), []).append(f)
    slots, choices = [], []  # per size class: the positions it fills, and every filling (rows)
    for size, families in by_size.items():
        slots.append(np.concatenate([members[f] for f in families]))
        choices.append(np.array([np.concatenate([members[g][list(inner)] for g, inner in zip(arranged, within,
                                                                                             strict=True)])
                                 for arranged in itertools.permutations(families)
                                 for within in itertools.product(itertools.permutations(range(size)),
                                                                 repeat=len(families))]))
    orders = np.empty((math.prod(len(c) for c in choices), n), dtype=int)
    for row, picked in enumerate(itertools.product(*(range(len(c)) for c in choices))):
        for where, options, k in zip(slots, choices, picked, strict=True):
            orders[row, where] = options[k]
    return orders


def _orders(codes: np.ndarray, permutations: int, seed: int) -> tuple[Iterable[np.ndarray], int, bool]:
    """The orders a test compares the data with: (orders, how many, exact).

    Where the design allows no more distinct orders than ``permutations`` + 1, every one but
    the identity (the exact test: p = (k + 1) / distinct, and p cannot fall below 1 / distinct);
    otherwise ``permutations`` random ones from :func:`family_orders` with ``seed``."""
    distinct = permutation_count(codes)
    if distinct - 1 <= permutations:
        return all_family_orders(codes)[1:], distinct - 1, True
    return family_orders(codes, permutations, np.random.default_rng(seed)), permutations, False


def mantel(a: pd.DataFrame | np.ndarray, b: pd.DataFrame | np.ndarray, permutations: int = 9999,
           seed: int = 0, groups=None) -> dict:
    """Mantel test: Spearman r between the upper triangles of two N × N matrices, and its
    two-sided permutation p, (k + 1) / (permutations + 1), k the permuted |r| at least |r|.

    ``groups`` None: rows and columns of ``b`` permuted together over all networks. With
    ``groups`` (a label per network, aligned with the rows, or a mapping id → label for
    DataFrames): whole families moved (:func:`family_orders`). The result says ``unit``
    ("networks" or "families"), ``n_families``, ``distinct`` (how many different orders the
    design has) and ``exact``: where ``distinct`` − 1 ≤ ``permutations`` every order is
    compared once instead of drawn (``permutations`` is then ``distinct`` − 1), and either
    way p cannot fall below 1 / ``distinct`` — four families of three networks have
    4! · 6⁴ = 31 104 orders, two of two only 8, too few for any p below 0.05.
    """
    x, y = _square(a, b)
    n = len(x)
    codes = family_codes(a, groups, n)
    base = {"n_networks": n, "n_families": int(codes.max() + 1) if n else 0,
            "unit": "networks" if groups is None else "families",
            "distinct": permutation_count(codes) if n else 0}
    observed = _spearman(_upper(x), _upper(y))
    if n < 4 or np.isnan(observed) or base["distinct"] < 2:
        return {"r": observed, "p": float("nan"), **base, "permutations": 0, "exact": False}
    orders, count, exact = _orders(codes, permutations, seed)
    permuted = _permuted_ranked(x, y, orders) if _ranks_once(x, y) else _permuted_literal(x, y, orders)
    hits = sum(abs(r) >= abs(observed) - 1e-12 for r in permuted)
    return {"r": observed, "p": (hits + 1) / (count + 1), **base, "permutations": count, "exact": exact}


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
    intercept and the covariates' upper triangles as given (e.g. "same family" and "same
    training data", 0/1), and r is the Pearson correlation of the two residuals.

    Why permute residuals. Under the null, ``b`` depends on the covariates only; ``a``
    depends on them too (similarity is high within families by construction). Permuting
    ``a`` itself breaks its link with the covariates as well, so the permuted r's are
    those of a world without that link and the test rejects too often when covariates are
    strong (Legendre & Legendre, Numerical Ecology, ch. 10). Permuting ``a``'s *residuals*
    keeps the covariates' share of ``a`` in place and moves only what they leave over
    (the residual permutation of Freedman & Lane 1983, applied to the predictor); each
    permuted residual matrix is residualised on the covariates again and correlated with
    ``b``'s residuals, as in the double semi-partialling of MRQAP, which Dekker,
    Krackhardt & Snijders (2007) found the most robust to collinear covariates. The residuals are moved as a
    matrix (rows and columns together), so the pairs sharing a network stay dependent
    as they are in the data.

    Why families. With ``groups`` the residual matrix is moved by whole families
    (:func:`family_orders`): pairs within a family stay within, pairs between stay
    between, so the dependence of a family's networks on their common ancestry is not
    mistaken for independent evidence. Pairs where anything is NaN are left out of the fit
    and the tests (each permutation is then computed by its definition). Covariate
    DataFrames are read in ``a``'s order when ``a`` is one. Returns r, p, n_networks,
    n_families, unit, distinct, exact, permutations and ``covariates`` (their names).
    """
    x, y = _square(a, b)
    n = len(x)
    names = list(covariates)
    z = [np.asarray(covariates[name].loc[a.index, a.index] if isinstance(a, pd.DataFrame)
                    and isinstance(covariates[name], pd.DataFrame) else covariates[name], dtype=float)
         for name in names]
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
        return {"r": observed, "p": float("nan"), **base, "permutations": 0, "exact": False}
    projector = np.linalg.pinv(design)  # the residualisation, once: e − Z (Z⁺ e)
    hits = 0
    orders, count, exact = _orders(codes, permutations, seed)
    for order in orders:
        moved = rx[np.ix_(order, order)][i[keep], j[keep]]
        if np.isnan(moved).any():  # a NaN pair moved into a kept place: the definition, pair by pair
            both = np.isfinite(moved)
            value = _pearson(_residuals(moved[both], design[both]), ry[both])
        else:
            value = _pearson(moved - design @ (projector @ moved), ry)
        hits += abs(value) >= abs(observed) - 1e-12
    return {"r": observed, "p": (hits + 1) / (count + 1), **base, "permutations": count, "exact": exact}


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


def _simulated_tests(x: np.ndarray, simulated: np.ndarray, orders: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The family :func:`mantel` of x against each simulated behaviour at once: (S,) Spearman r
    and (S,) p, (k + 1) / (P + 1), from (S, M) simulated upper triangles and (P, N) orders.

    r(x, y permuted by π) = r(x permuted by π⁻¹, y), and the orders of a family design form a
    group (each order's inverse is one too), so permuting x's ranks once per order serves
    every simulation: one (P, M) × (M, S) product instead of S × P gathers (the slow twin,
    per simulation and order by the definition, is in the tests)."""
    n = len(x)
    i, j = np.triu_indices(n, 1)
    rx = np.zeros((n, n))
    rx[i, j] = rankdata(x[i, j])
    rx[i, j] -= rx[i, j].mean()
    rx[j, i] = rx[i, j]
    moved = rx[orders[:, :, None], orders[:, None, :]][:, i, j]  # (P, M)
    ry = rankdata(simulated, axis=1)
    ry -= ry.mean(axis=1, keepdims=True)
    scale = np.sqrt((rx[i, j] @ rx[i, j]) * np.einsum("sm,sm->s", ry, ry))
    observed = np.einsum("m,sm->s", rx[i, j], ry) / scale
    permuted = np.einsum("pm,sm->ps", moved, ry) / scale  # einsum, not BLAS: BLAS threads stall on busy cores
    hits = (np.abs(permuted) >= np.abs(observed) - 1e-12).sum(axis=0)
    return observed, (hits + 1) / (len(orders) + 1)


def detectable_correlation(similarity: pd.DataFrame | np.ndarray, behaviour: pd.DataFrame | np.ndarray, groups, *,
                           power: float = 0.8, alpha: float = 0.05, simulations: int = 200, permutations: int = 199,
                           seed: int = 0, effects=None) -> dict:
    """The smallest Spearman correlation between ``similarity`` and a behaviour that the
    family-level :func:`mantel` detects (p < ``alpha``) in at least ``power`` of simulated
    runs with this run's design: its networks, its families and its noise.

    Pairs are sorted into blocks by their two families (a within-family block per family, a
    between block per pair of families). A simulated behaviour is
    (1) the observed behaviour's block means — its family structure — handed to the
    families by a random family order (:func:`family_orders`), so lineage stays as strong
    as observed but owes nothing to the similarity: at ρ = 0 the test rejects at most
    ``alpha`` of the time whatever the data; plus
    (2) ρ · the similarity's standardised residual from its own block means (an
    association beyond lineage, the one the family test asks about); plus
    (3) √(1 − ρ²) · the observed behaviour's residuals from its block means, shuffled
    across pairs (so symmetric) and standardised;
    (2) and (3) scaled by the residuals' spread. For each ρ of ``effects`` (default 0,
    0.1, …, 1; the grid stops at the first reaching ``power``) the ``simulations`` tests
    share ``permutations`` family orders (every order where the design has no more).

    Returns r (the median Spearman r of similarity and the simulated behaviour at that ρ;
    NaN if none reaches it), rho, power (the target), power_reached, n_families,
    distinct (the design's family orders), ``curve`` (a DataFrame: rho, achieved_r, power)
    and ``reason`` (why r is NaN, else ""). Cost: 200 simulations × 199 orders per ρ take
    ~0.02 s for 12 networks and ~0.05 s for 30 (one core), the whole grid under a second.
    """
    x, y = _square(similarity, behaviour)
    n = len(x)
    codes = family_codes(similarity, groups, n)
    n_families = int(codes.max() + 1) if n else 0
    i, j = np.triu_indices(n, 1)
    sx, sy = x[i, j], y[i, j]
    distinct = permutation_count(codes) if n else 0
    result = {"r": float("nan"), "rho": float("nan"), "power": power, "power_reached": float("nan"),
              "n_families": n_families, "distinct": distinct,
              "curve": pd.DataFrame(columns=["rho", "achieved_r", "power"]), "reason": ""}
    if not 0 < power <= 1 or not 0 < alpha < 1 or simulations < 1 or permutations < 1:
        raise ValueError(f"detectable_correlation needs 0 < power ≤ 1, 0 < alpha < 1 and at least one simulation "
                         f"and permutation; got power={power}, alpha={alpha}, simulations={simulations}, "
                         f"permutations={permutations}.")
    if n < 4 or not (np.isfinite(sx).all() and np.isfinite(sy).all()):
        return {**result, "reason": "too few networks, or undefined values in the matrices"}
    if distinct * alpha <= 1:
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
    orders, _, _ = _orders(codes, permutations, int(rng.integers(2 ** 32)))
    orders = np.array(list(orders))
    lineage = np.zeros((n, n))
    lineage[i, j] = structure
    lineage[j, i] = structure
    rows = []
    for rho in (np.linspace(0, 1, 11) if effects is None else effects):
        assigned = np.array(list(family_orders(codes, simulations, rng)))  # (S, N): whose lineage each family gets
        shuffled = rng.permuted(np.broadcast_to(noise, (simulations, len(noise))), axis=1)
        shuffled = (shuffled - shuffled.mean(axis=1, keepdims=True)) / shuffled.std(axis=1, keepdims=True)
        simulated = (lineage[assigned[:, :, None], assigned[:, None, :]][:, i, j]
                     + spread * (rho * signal + np.sqrt(max(0.0, 1 - rho ** 2)) * shuffled))
        achieved, p = _simulated_tests(x, simulated, orders)
        rows.append({"rho": float(rho), "achieved_r": float(np.median(achieved)), "power": float(np.mean(p < alpha))})
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
