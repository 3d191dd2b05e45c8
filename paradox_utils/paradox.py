"""Behavioural compatibility, the paradox matrix, and whether similarity predicts behaviour.

* compatibility(a, b) — Pearson r of two networks' accuracy vectors over the
  manipulation cells (PAPER_SPEC §3); NaN (with a warning) where a vector is constant.
* difference = compatibility − similarity (PAPER_SPEC §1.5): ≈ −1 "similar yet
  different", ≈ +1 "different yet similar", ≈ 0 agreement.
* quadrant_of — the one rule that sorts a pair into a paradox quadrant by the
  similarity and compatibility thresholds (counts and figures both use it).
* pair_table — one row per pair of networks (similarity alone, or with compatibility).
* What the paper did not do: a Mantel test (Spearman, seeded permutations) between
  the two matrices and bootstrap confidence intervals over networks (statistics_table).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .evaluation import accuracy_vectors

__all__ = [
    "QUADRANTS", "QUADRANT_NAMES", "bootstrap_correlation", "compatibility", "difference", "first_family",
    "mantel", "most_paradoxical", "pair_table", "quadrant_counts", "quadrant_of", "relation", "statistics_table",
]

RELATIONS = ("parent-child", "siblings", "unrelated")
QUADRANTS = ("similar_yet_different", "different_yet_similar", "agree_similar", "agree_different")
QUADRANT_NAMES = {q: q.replace("_", " ") for q in QUADRANTS}
UNDEFINED = "undefined"
CONSTANT_RTOL = 1e-9  # a vector whose std is below this fraction of its largest |value| is constant


def compatibility(acc_table: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """(N × N) Pearson r between the networks' accuracy vectors (cells in the paper's order).

    A vector that is constant up to float rounding (std ≤ ``CONSTANT_RTOL`` × its largest
    |value|, e.g. 0.1 in every cell) has no correlation: its row and column are NaN, with
    a warning naming the network.
    """
    vectors = accuracy_vectors(acc_table, metric)
    values = vectors.to_numpy(dtype=float)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN row: nanstd/nanmax warn, the test is False
        spread, scale = np.nanstd(values, axis=1), np.nanmax(np.abs(values), axis=1)
    constant = spread <= CONSTANT_RTOL * scale
    if constant.any():
        warnings.warn(f"Compatibility is undefined (NaN) for networks with a constant accuracy vector: "
                      f"{', '.join(str(i) for i in vectors.index[constant])}.", RuntimeWarning, stacklevel=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = values - values.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(centred, axis=1)
        r = (centred @ centred.T) / np.outer(norms, norms)
    r[constant[:, None] | constant[None, :]] = np.nan
    return pd.DataFrame(np.clip(r, -1, 1), index=vectors.index, columns=vectors.index)


def _as_frame(matrix, ids) -> pd.DataFrame:
    if isinstance(matrix, pd.DataFrame):
        return matrix
    return pd.DataFrame(np.asarray(matrix), index=list(ids), columns=list(ids))


def difference(compat: pd.DataFrame, similarity: pd.DataFrame | np.ndarray, ids=None) -> pd.DataFrame:
    """compatibility − similarity on the networks both know, in ``compat``'s order."""
    sim = _as_frame(similarity, compat.index if ids is None else ids)
    common = [i for i in compat.index if i in sim.index]
    if len(common) < 2:
        raise ValueError("Compatibility and similarity share fewer than two networks; check the ids.")
    return compat.loc[common, common] - sim.loc[common, common]


def relation(a: str, b: str, parents: Mapping[str, str | None]) -> str:
    """"parent-child", "siblings" (same parent) or "unrelated"."""
    pa, pb = parents.get(a), parents.get(b)
    if pa == b or pb == a:
        return "parent-child"
    if pa is not None and pa == pb:
        return "siblings"
    return "unrelated"


def first_family(parents: Mapping[str, str | None]) -> list[str]:
    """The first parent that has offspring, followed by its offspring."""
    parent = next((p for p in parents.values() if p), None)
    return [] if parent is None else [parent, *[n for n, p in parents.items() if p == parent]]


def pair_table(similarities: Mapping[str, pd.DataFrame], parents: Mapping[str, str | None] | None = None, *,
               compat: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per pair a < b (in the matrices' order): ``a``, ``b``, ``relation``, and per
    similarity method ``similarity_<m>``; with ``compat`` also ``compatibility`` and per
    method ``difference_<m>`` = compatibility − similarity.

    Only networks every matrix knows are paired (a warning names any left out).
    """
    matrices = dict(similarities)
    first = compat if compat is not None else next(iter(matrices.values()), None)
    if first is None:
        raise ValueError("pair_table needs at least one similarity matrix (or a compatibility matrix).")
    others = ([compat] if compat is not None else []) + list(matrices.values())
    ids = [n for n in first.index if all(n in m.index for m in others)]
    left_out = sorted({str(n) for m in others for n in m.index} - {str(n) for n in ids})
    if left_out:
        warnings.warn(f"pair_table leaves out networks missing from some matrix: {', '.join(left_out)}.",
                      RuntimeWarning, stacklevel=2)
    i, j = np.triu_indices(len(ids), 1)
    names = np.array(ids, dtype=object)
    parents = parents or {}
    table = pd.DataFrame({"a": names[i], "b": names[j],
                          "relation": [relation(a, b, parents) for a, b in zip(names[i], names[j], strict=True)]})
    if compat is not None:
        comp = compat.loc[ids, ids].to_numpy(dtype=float)[i, j]
        table["compatibility"] = comp
    for method, sim in matrices.items():
        values = sim.loc[ids, ids].to_numpy(dtype=float)[i, j]
        table[f"similarity_{method}"] = values
        if compat is not None:
            table[f"difference_{method}"] = comp - values
    return table


def quadrant_of(similarity, compatibility, similar: float = 0.5, compatible: float = 0.5) -> np.ndarray:
    """The paradox rule, per pair: its quadrant (one of ``QUADRANTS``, or "undefined"
    where either value is NaN).

    "similar_yet_different": similarity ≥ ``similar`` and compatibility < ``compatible``;
    "different_yet_similar": similarity < ``similar`` and compatibility ≥ ``compatible``;
    "agree_similar" / "agree_different": both at or above / both below their threshold.
    """
    sim, comp = np.asarray(similarity, dtype=float), np.asarray(compatibility, dtype=float)
    is_similar, is_compatible = sim >= similar, comp >= compatible
    labels = np.where(is_similar, np.where(is_compatible, "agree_similar", "similar_yet_different"),
                      np.where(is_compatible, "different_yet_similar", "agree_different")).astype(object)
    labels[np.isnan(sim) | np.isnan(comp)] = UNDEFINED
    return labels


def quadrant_counts(pairs: pd.DataFrame, method: str, similar: float = 0.5, compatible: float = 0.5) -> dict:
    """How many pairs of ``pairs`` (a :func:`pair_table` with compatibility) fall in each
    quadrant of :func:`quadrant_of` for ``method``; pairs with a NaN count as "undefined"."""
    labels = quadrant_of(pairs[f"similarity_{method}"], pairs["compatibility"], similar, compatible)
    return {**{q: int((labels == q).sum()) for q in (*QUADRANTS, UNDEFINED)},
            "pairs": len(pairs), "similar_threshold": similar, "compatible_threshold": compatible}


def _upper(matrix: np.ndarray) -> np.ndarray:
    return matrix[np.triu_indices(len(matrix), 1)]


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 3:
        return float("nan")
    rx, ry = rankdata(x[keep]), rankdata(y[keep])
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def mantel(a: pd.DataFrame | np.ndarray, b: pd.DataFrame | np.ndarray, permutations: int = 9999,
           seed: int = 0) -> dict[str, float]:
    """Mantel test: Spearman r between the upper triangles of two N × N matrices, and
    its permutation p-value (rows and columns of ``b`` permuted together, two-sided,
    (k + 1) / (permutations + 1))."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 2 or x.shape[0] != x.shape[1]:
        raise ValueError(f"Mantel needs two square matrices of one size, got {x.shape} and {y.shape}.")
    n = len(x)
    observed = _spearman(_upper(x), _upper(y))
    if n < 4 or np.isnan(observed):
        return {"r": observed, "p": float("nan"), "n_networks": n, "permutations": 0}
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(permutations):
        order = rng.permutation(n)
        r = _spearman(_upper(x), _upper(y[np.ix_(order, order)]))
        hits += abs(r) >= abs(observed) - 1e-12
    return {"r": observed, "p": (hits + 1) / (permutations + 1), "n_networks": n, "permutations": permutations}


def bootstrap_correlation(a: pd.DataFrame | np.ndarray, b: pd.DataFrame | np.ndarray, resamples: int = 1000,
                          seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Spearman r between two matrices' off-diagonal entries with a percentile CI from
    resampling *networks* with replacement (pairs of a network with its own copy dropped)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(x)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        pick = rng.integers(0, n, n)
        i, j = np.triu_indices(n, 1)
        keep = pick[i] != pick[j]
        values.append(_spearman(x[pick[i][keep], pick[j][keep]], y[pick[i][keep], pick[j][keep]]))
    values = np.array(values)
    values = values[~np.isnan(values)]
    tail = (1 - level) / 2 * 100
    low, high = (np.percentile(values, [tail, 100 - tail]) if len(values) else (np.nan, np.nan))
    return {"r": _spearman(_upper(x), _upper(y)), "low": float(low), "high": float(high), "level": level,
            "resamples": int(len(values))}


def most_paradoxical(pairs: pd.DataFrame, method: str, n: int = 5) -> pd.DataFrame:
    """The ``n`` pairs with the largest |compatibility − similarity| for ``method``."""
    column = f"difference_{method}"
    order = pairs[column].abs().sort_values(ascending=False).index[:n]
    return pairs.loc[order].reset_index(drop=True)


def statistics_table(similarities: Mapping[str, pd.DataFrame], compat: pd.DataFrame, pairs: pd.DataFrame,
                     similar: float, compatible: float, permutations: int, resamples: int,
                     seed: int = 0) -> pd.DataFrame:
    """Per similarity method (the index, "method"): Mantel r and p against compatibility,
    the bootstrap CI, and the two paradox counts of :func:`quadrant_counts`."""
    rows = []
    for method, sim in similarities.items():
        ids = [i for i in compat.index if i in sim.index]
        test = mantel(sim.loc[ids, ids], compat.loc[ids, ids], permutations, seed)
        ci = bootstrap_correlation(sim.loc[ids, ids], compat.loc[ids, ids], resamples, seed)
        counts = quadrant_counts(pairs, method, similar, compatible)
        rows.append({"method": method, "mantel_r": test["r"], "mantel_p": test["p"], "ci_low": ci["low"],
                     "ci_high": ci["high"], "similar_yet_different": counts["similar_yet_different"],
                     "different_yet_similar": counts["different_yet_similar"], "pairs": counts["pairs"]})
    return pd.DataFrame(rows).set_index("method")
