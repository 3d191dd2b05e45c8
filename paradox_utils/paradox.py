"""Behavioural compatibility, the paradox matrix, and whether similarity predicts behaviour.

* compatibility(a, b) — Pearson r of two networks' accuracy vectors over the
  manipulation cells (PAPER_SPEC §3); NaN (with a warning) where a vector is constant.
* difference = compatibility − similarity (PAPER_SPEC §1.5): ≈ −1 "similar yet
  different", ≈ +1 "different yet similar", ≈ 0 agreement.
* What the paper did not do: a Mantel test (Spearman, seeded permutations) between
  the two matrices and bootstrap confidence intervals over networks.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .evaluation import accuracy_vectors

__all__ = [
    "bootstrap_correlation", "compatibility", "difference", "mantel", "most_paradoxical", "pair_table",
    "quadrant_counts", "relation",
]

RELATIONS = ("parent-child", "siblings", "unrelated")


def compatibility(acc_table: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """(N × N) Pearson r between the networks' accuracy vectors (cells in the paper's order)."""
    vectors = accuracy_vectors(acc_table, metric)
    values = vectors.to_numpy(dtype=float)
    constant = [str(i) for i, row in zip(vectors.index, values, strict=True) if np.nanstd(row) == 0]
    if constant:
        warnings.warn(f"Compatibility is undefined (NaN) for networks with a constant accuracy vector: "
                      f"{', '.join(constant)}.", RuntimeWarning, stacklevel=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = values - values.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(centred, axis=1)
        r = (centred @ centred.T) / np.outer(norms, norms)
    r[(norms == 0)[:, None] | (norms == 0)[None, :]] = np.nan
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


def pair_table(compat: pd.DataFrame, similarities: Mapping[str, pd.DataFrame],
               parents: Mapping[str, str | None] | None = None) -> pd.DataFrame:
    """One row per pair a < b: relation, compatibility, and per similarity method its
    value and the difference (columns ``similarity_<m>``, ``difference_<m>``)."""
    ids = list(compat.index)
    parents = parents or {}
    rows = []
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            row = {"a": a, "b": b, "relation": relation(a, b, parents), "compatibility": compat.loc[a, b]}
            for method, sim in similarities.items():
                row[f"similarity_{method}"] = sim.loc[a, b]
                row[f"difference_{method}"] = compat.loc[a, b] - sim.loc[a, b]
            rows.append(row)
    return pd.DataFrame(rows)


def quadrant_counts(pairs: pd.DataFrame, method: str, similar: float = 0.5, compatible: float = 0.5) -> dict:
    """Count the paradoxical pairs for ``method``.

    "similar yet different": similarity ≥ ``similar`` and compatibility < ``compatible``;
    "different yet similar": similarity < ``similar`` and compatibility ≥ ``compatible``.
    """
    sim, comp = pairs[f"similarity_{method}"], pairs["compatibility"]
    return {
        "similar_yet_different": int(((sim >= similar) & (comp < compatible)).sum()),
        "different_yet_similar": int(((sim < similar) & (comp >= compatible)).sum()),
        "agree_similar": int(((sim >= similar) & (comp >= compatible)).sum()),
        "agree_different": int(((sim < similar) & (comp < compatible)).sum()),
        "pairs": len(pairs), "similar_threshold": similar, "compatible_threshold": compatible,
    }


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
