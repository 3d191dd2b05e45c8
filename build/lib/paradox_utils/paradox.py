"""The paradox: similarity beside behaviour, pair by pair, and whether one predicts the other.

* :func:`difference` — compatibility − similarity (the paradox matrix): ≈ −1 "similar
  yet different", ≈ +1 "different yet similar", ≈ 0 agreement.
* :func:`pair_table` / :func:`with_behaviour` — one row per pair of networks with its
  similarities and behavioural measures; :func:`relation` names how the two are related.
* :func:`quadrant_of` / :func:`quadrant_counts` — the one rule that sorts a pair into a
  paradox quadrant by the similarity and behaviour thresholds (``nulls.threshold``).
* :func:`statistics_table` — per similarity method × behavioural measure: the Mantel test
  with networks and with whole families as the unit (``inference.mantel``, re-exported
  here as ``paradox.mantel``), the family bootstrap interval, the association beyond
  lineage and training data (``inference.partial_mantel``), Holm's correction, and the
  threshold counts.

The behavioural measures live in ``behaviour``, their nulls and thresholds in ``nulls``.
(methods: Behaviour, three ways; Null models and thresholds)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

# compatibility, error_consistency(_matrix), compatibility_null and kappa_null: issues named them paradox.X
from .behaviour import compatibility, error_consistency, error_consistency_matrix
from .bootstrap import bootstrap_correlation
from .inference import holm, mantel, partial_mantel
from .names import listed
from .nulls import NULL_QUANTILE, compatibility_null, kappa_null, threshold

__all__ = [
    "QUADRANTS", "QUADRANT_NAMES", "compatibility", "compatibility_null", "difference", "error_consistency",
    "error_consistency_matrix", "first_family", "holm", "kappa_null", "mantel", "most_paradoxical", "pair_table",
    "partial_mantel", "quadrant_counts", "quadrant_of", "relation", "statistics_table", "with_behaviour",
]

QUADRANTS = ("similar_yet_different", "different_yet_similar", "agree_similar", "agree_different")
QUADRANT_NAMES = {q: q.replace("_", " ") for q in QUADRANTS}
UNDEFINED = "undefined"


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
        warnings.warn(f"pair_table leaves out networks missing from some matrix: {listed(left_out)}.",
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

    ``compatibility`` stands for any behavioural agreement (compatibility, relative
    compatibility, error consistency κ) and ``compatible`` for its threshold; thresholds
    are the paper's fixed 0.5 or a null's 99th percentile (:func:`threshold`).
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


def quadrant_counts(pairs: pd.DataFrame, method: str, similar: float = 0.5, compatible: float = 0.5,
                    behaviour: str = "compatibility") -> dict:
    """How many pairs of ``pairs`` (a :func:`pair_table` with compatibility, or with the
    column ``behaviour`` added by :func:`with_behaviour`, e.g. "kappa") fall in each
    quadrant of :func:`quadrant_of` for ``method``; pairs with a NaN count as "undefined"."""
    if behaviour not in pairs.columns:
        raise ValueError(f"The pair table has no column {behaviour!r}; add it with paradox.with_behaviour.")
    labels = quadrant_of(pairs[f"similarity_{method}"], pairs[behaviour], similar, compatible)
    return {**{q: int((labels == q).sum()) for q in (*QUADRANTS, UNDEFINED)}, "pairs": len(pairs),
            "similar_threshold": similar, "compatible_threshold": compatible, "behaviour": behaviour}


def most_paradoxical(pairs: pd.DataFrame, method: str, n: int = 5) -> pd.DataFrame:
    """The ``n`` pairs with the largest |compatibility − similarity| for ``method``."""
    column = f"difference_{method}"
    order = pairs[column].abs().sort_values(ascending=False).index[:n]
    return pairs.loc[order].reset_index(drop=True)


def statistics_table(similarities: Mapping[str, pd.DataFrame],
                     compat: pd.DataFrame | Mapping[str, pd.DataFrame], pairs: pd.DataFrame,
                     similar: float | Mapping[str, float], compatible: float | Mapping[str, float],
                     permutations: int, resamples: int, seed: int = 0, *,
                     similarity_nulls: Mapping[str, np.ndarray] | None = None,
                     behaviour_nulls: Mapping[str, np.ndarray] | None = None,
                     quantile: float = NULL_QUANTILE, groups: Mapping[str, str] | None = None,
                     covariates: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """One row per (similarity method × behavioural measure): the Mantel r and p of the two
    matrices with networks as the unit (``mantel_r``, ``mantel_p``), the bootstrap interval
    (``ci_low``, ``ci_high``), the two threshold counts of :func:`quadrant_counts` and the
    thresholds they used.

    With ``groups`` (net_id → family label): ``family_p`` (whole families permuted), the
    interval over families instead of networks, ``n_families``, ``family_distinct`` (the
    design's family orders: family_p cannot fall below 1 / family_distinct) and ``holm_p``
    (Holm's adjustment of ``family_p`` over the table's rows; of ``mantel_p`` without
    groups). ``n_networks`` always. With ``covariates`` (name → N × N matrix, e.g.
    ``references.covariates``): ``partial_r`` and ``partial_p``, the association holding
    them fixed, with the same permutation unit.

    ``compat``: one (N × N) compatibility matrix — the rows are then indexed by "method"
    alone — or a mapping behaviour name → (N × N) matrix (e.g.
    {"compatibility": C, "relative compatibility": R, "kappa": K}), indexed by
    ("method", "behaviour"). ``pairs``: a :func:`pair_table`; a behaviour it has no column
    for is added from its matrix (:func:`with_behaviour`).

    Thresholds, per row, by :func:`threshold`: ``similar`` (a number, or method → number)
    unless ``similarity_nulls`` has that method's null values, then the null's
    ``quantile``; likewise ``compatible`` and ``behaviour_nulls`` per behaviour. Columns
    similar_threshold / behaviour_threshold hold the values used and
    similar_threshold_kind / behaviour_threshold_kind say which ("fixed" or "null p99").
    """
    single = isinstance(compat, pd.DataFrame)
    behaviours = {"compatibility": compat} if single else dict(compat)
    missing = [b for b in behaviours if b not in pairs.columns]
    if missing:
        pairs = with_behaviour(pairs, {b: behaviours[b] for b in missing})
    rows = []
    for method, sim in similarities.items():
        sim_value, sim_kind = threshold(_pick(similar, method, "similar"), (similarity_nulls or {}).get(method),
                                        quantile)
        for behaviour, matrix in behaviours.items():
            value, kind = threshold(_pick(compatible, behaviour, "compatible"),
                                    (behaviour_nulls or {}).get(behaviour), quantile)
            ids = [i for i in matrix.index if i in sim.index]
            a, b = sim.loc[ids, ids], matrix.loc[ids, ids]
            test = mantel(a, b, permutations, seed)
            ci = bootstrap_correlation(a, b, resamples, seed, groups=groups)
            counts = quadrant_counts(pairs, method, sim_value, value, behaviour)
            row = {"method": method, "behaviour": behaviour, "mantel_r": test["r"], "mantel_p": test["p"],
                   "ci_low": ci["low"], "ci_high": ci["high"], "n_networks": len(ids)}
            if groups is not None:
                family = mantel(a, b, permutations, seed, groups=groups)
                row.update(family_p=family["p"], n_families=ci["n_units"], family_distinct=family["distinct"])
            if covariates:
                partial = partial_mantel(a, b, {k: c.loc[ids, ids] for k, c in covariates.items()}, permutations,
                                         seed, groups=groups)
                row.update(partial_r=partial["r"], partial_p=partial["p"])
            rows.append({**row, "similar_yet_different": counts["similar_yet_different"],
                         "different_yet_similar": counts["different_yet_similar"], "pairs": counts["pairs"],
                         "similar_threshold": sim_value, "similar_threshold_kind": sim_kind,
                         "behaviour_threshold": value, "behaviour_threshold_kind": kind})
    table = pd.DataFrame(rows)
    table["holm_p"] = holm(table["family_p" if groups is not None else "mantel_p"])
    return table.set_index("method" if single else ["method", "behaviour"])


def _pick(value: float | Mapping[str, float], key: str, what: str) -> float:
    """A fixed threshold: one number for every row, or the row's entry of a mapping."""
    if not isinstance(value, Mapping):
        return float(value)
    if key not in value:
        raise KeyError(f"The {what} thresholds have no entry for {key!r} (they have {', '.join(value)}).")
    return float(value[key])


def with_behaviour(pairs: pd.DataFrame, behaviours: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """A copy of a :func:`pair_table` with one column per behavioural matrix (name →
    (N × N) DataFrame indexed by net_id both ways): the pair's entry [a, b]."""
    out = pairs.copy()
    for name, matrix in behaviours.items():
        unknown = sorted({str(n) for n in (*pairs["a"], *pairs["b"])} - {str(n) for n in matrix.index})
        if unknown:
            raise ValueError(f"The {name!r} matrix has no row for networks of the pair table: {listed(unknown)}.")
        values = matrix.to_numpy(dtype=float)
        out[name] = values[matrix.index.get_indexer(pairs["a"]), matrix.columns.get_indexer(pairs["b"])]
    return out
