"""Behavioural compatibility, the paradox matrix, and whether similarity predicts behaviour.

* compatibility(a, b) — Pearson r of two networks' accuracy vectors over the
  manipulation cells (as in the paper); NaN (with a warning) where a vector is constant.
  ``relative=True`` correlates what is left after the population's mean accuracy per
  cell is subtracted (the shared task difficulty taken out).
* error_consistency / error_consistency_matrix — trial by trial: Cohen's κ between two
  networks' right/wrong answers on the same images (Geirhos et al. 2020), from the
  correctness bits (:class:`~paradox_utils.correctness.Correctness`).
* difference = compatibility − similarity (as in the paper): ≈ −1 "similar yet
  different", ≈ +1 "different yet similar", ≈ 0 agreement.
* quadrant_of — the one rule that sorts a pair into a paradox quadrant by the
  similarity and compatibility thresholds (counts and figures both use it).
* pair_table — one row per pair of networks (similarity alone, or with compatibility).
* What the paper did not do: a Mantel test (Spearman, seeded permutations) between
  the two matrices and bootstrap confidence intervals over networks (statistics_table).
* Nulls and thresholds: compatibility_null (levels shuffled within each manipulation),
  kappa_null (networks that err independently within each cell), null_threshold and
  threshold (a null's 99th percentile, or the paper's fixed 0.5), so that "similar" and
  "compatible" can mean "above what chance gives" (similarity nulls:
  ``similarity.null_distribution``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .correctness import Correctness
from .evaluation import accuracy_vectors
from .names import listed

__all__ = [
    "QUADRANTS", "QUADRANT_NAMES", "behaviour_nulls", "bootstrap_correlation", "compatibility", "compatibility_null",
    "difference", "error_consistency", "error_consistency_matrix", "first_family", "kappa_null", "mantel",
    "most_paradoxical", "null_threshold", "null_values_needed", "pair_table", "quadrant_counts", "quadrant_of",
    "relation", "statistics_table", "threshold", "with_behaviour",
]

# the nulls' names and settings apart, so that a merge with other additions above stays clean
NULL_QUANTILE = 0.99  # "above chance" = above the null's 99th percentile
NULL_PERMUTATIONS = 100  # compatibility null: 100 shufflings × every pair (4,500 values for 10 networks)
KAPPA_NULL_PAIRS = 10_000  # κ null: simulated pairs, drawn with replacement (cheap: three draws per cell)
FIXED = "fixed"

RELATIONS = ("parent-child", "siblings", "unrelated")
QUADRANTS = ("similar_yet_different", "different_yet_similar", "agree_similar", "agree_different")
QUADRANT_NAMES = {q: q.replace("_", " ") for q in QUADRANTS}
UNDEFINED = "undefined"
CONSTANT_RTOL = 1e-9  # a vector whose std is below this fraction of its largest |value| is constant
KAPPA_CHUNK_WORDS = 512  # 64-bit words (32,768 trials) of every network at a time: 1.3 MB for 329, in cache


def compatibility(acc_table: pd.DataFrame, metric: str = "accuracy", relative: bool = False) -> pd.DataFrame:
    """(N × N) Pearson r between the networks' accuracy vectors (cells in the paper's order).

    ``acc_table``: the tidy accuracy table (one row per network × cell); ``metric``: its
    column to correlate (fractions). Returns a DataFrame indexed by net_id both ways.

    ``relative=False`` (the paper's compatibility): r of the raw vectors. Every network
    finds blur 5 harder than contrast 1, so this is high for almost any two networks.

    ``relative=True``: r of the vectors after subtracting the population's mean accuracy
    per cell (over all N networks of the table, each network included in the mean) —
    what two networks share beyond the shared task difficulty. Networks that are the
    mean plus independent noise score ≈ −1/(N − 1), i.e. ≈ 0 for a population; two that
    deviate from the mean together score high. It needs a population: with N = 2 the
    two relative vectors are exact negatives (a − b)/2 and (b − a)/2, so their relative
    compatibility is −1 by construction (a warning says so), or NaN when the two differ
    by a constant (both relative vectors are then constant); with N = 1 it is NaN.

    A vector that is constant up to float rounding (std ≤ ``CONSTANT_RTOL`` × its largest
    |value|, e.g. 0.1 in every cell; for ``relative`` the scale also covers the cell
    means, whose rounding the difference carries) has no correlation: its row and column
    are NaN, with one warning naming the networks (the first ``names.LISTED``).
    """
    vectors = accuracy_vectors(acc_table, metric)
    values = vectors.to_numpy(dtype=float)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN row: nanstd/nanmax warn, the test is False
        scale = np.nanmax(np.abs(values), axis=1)
        if relative:
            means = np.nanmean(values, axis=0, keepdims=True)  # (1, C) the population's accuracy per cell
            values = values - means
            scale = np.maximum(scale, np.nanmax(np.abs(means)))  # a − mean is only as exact as both
        spread = np.nanstd(values, axis=1)
    if relative and len(values) == 2:
        warnings.warn("Relative compatibility of a population of two networks is -1 by construction (each "
                      "relative vector is the negative of the other): use a population.", RuntimeWarning,
                      stacklevel=2)
    constant = spread <= CONSTANT_RTOL * scale
    if constant.any():
        kind = "relative accuracy vector (accuracy minus the population mean)" if relative else "accuracy vector"
        warnings.warn(f"Compatibility is undefined (NaN) for networks with a constant {kind}: "
                      f"{listed(vectors.index[constant])}.", RuntimeWarning, stacklevel=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = values - values.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(centred, axis=1)
        r = (centred @ centred.T) / np.outer(norms, norms)
    r[constant[:, None] | constant[None, :]] = np.nan
    return pd.DataFrame(np.clip(r, -1, 1), index=vectors.index, columns=vectors.index)


def _trials(correct, name: str) -> np.ndarray:
    """``correct`` as flat bool trials; one sentence if it holds anything but 0/1 or True/False."""
    values = np.asarray(correct)
    if values.dtype != bool:
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"error_consistency needs right/wrong trials (bool or 0/1); {name} holds other values.")
        values = values.astype(bool)
    return values.ravel()


def _undefined_warning(pairs: list[str]) -> None:
    """One warning for every pair whose κ is NaN (the first ``names.LISTED`` named)."""
    if not pairs:
        return
    warnings.warn(f"Error consistency is undefined (NaN) where both networks are always right or both always "
                  f"wrong (c_exp = 1): {listed(pairs)}.", RuntimeWarning, stacklevel=3)


def error_consistency(correct_a, correct_b, names: tuple[str, str] | None = None) -> float:
    """Cohen's κ between two observers' right/wrong answers on the same trials (Geirhos et al. 2020).

    ``correct_a``, ``correct_b``: (T,) bool (or 0/1), True where the network was right on
    trial t, the trials in one order for both (arrays of any one shape are read as T
    flat trials). ``names``: the two networks' names, used only in the warning.

    c_obs = fraction of trials where both are right or both wrong; with p_a, p_b the
    accuracies, c_exp = p_a·p_b + (1 − p_a)(1 − p_b) is c_obs expected of two
    independent observers of those accuracies; κ = (c_obs − c_exp) / (1 − c_exp).
    κ = 1: the same trials right and wrong; ≈ 0: errors overlap no more than chance;
    < 0: less than chance. NaN, with a RuntimeWarning naming the pair, where c_exp = 1
    (both always right, or both always wrong: there is no error to be consistent about).
    """
    a, b = _trials(correct_a, "correct_a"), _trials(correct_b, "correct_b")
    if np.shape(correct_a) != np.shape(correct_b):
        raise ValueError(f"error_consistency needs two vectors over the same trials, got shapes "
                         f"{np.shape(correct_a)} and {np.shape(correct_b)}.")
    if a.size == 0:
        raise ValueError("error_consistency got no trials.")
    right_a, right_b = int(a.sum()), int(b.sum())
    if right_a == right_b and right_a in (0, a.size):  # c_exp = 1 exactly; tested on counts, not on floats
        pair = " and ".join(names) if names else "the two networks"
        warnings.warn(f"Error consistency is undefined (NaN) for {pair}: both are always "
                      f"{'right' if right_a else 'wrong'} (c_exp = 1).", RuntimeWarning, stacklevel=2)
        return float("nan")
    p_a, p_b = right_a / a.size, right_b / b.size
    c_obs = float(np.mean(a == b))
    c_exp = p_a * p_b + (1 - p_a) * (1 - p_b)
    return (c_obs - c_exp) / (1 - c_exp)


_BIT_COUNTS = np.array([bin(b).count("1") for b in range(256)], dtype=np.uint8)


def _popcount_table(words: np.ndarray) -> np.ndarray:
    """(R, K) uint64 → (R, 8K) uint8 set bits per byte (a table look-up, for NumPy < 2 which
    has no ``np.bitwise_count``; ~20× slower); summed along axis 1 it counts the same bits."""
    return _BIT_COUNTS[words.view(np.uint8)]


_popcount = getattr(np, "bitwise_count", _popcount_table)  # (R, K) uint64 → per-word (or per-byte) bit counts


def _counts(bits: np.ndarray, n_images: int) -> np.ndarray:
    """(N, C, ⌈I/8⌉) packed bits → (N, N) float64 counts of trials both networks got right
    (diagonal: each network's right answers), exact integers.

    Popcounts on the packed bits, 64 trials per word: for each network, AND its words with
    those of every later network and count the set bits. A loop over networks (N, not over
    pairs), each step vectorised over the later networks; the words go ``KAPPA_CHUNK_WORDS``
    at a time so every step's operands stay in cache. On 2 cores this was ~8× faster than a
    float32 matrix product of the unpacked bits (benchmarks/bench_behaviour.py).
    """
    n = len(bits)
    packed = np.array(bits, dtype=np.uint8, copy=True)  # a copy: the padding is masked below
    if n_images % 8:
        packed[..., -1] &= np.uint8((0xFF << (8 - n_images % 8)) & 0xFF)  # padding bits count as neither
    packed = packed.reshape(n, -1)  # (N, C·⌈I/8⌉): cells × images are the trials, padding zeros
    words = np.zeros((n, -(-packed.shape[1] // 8) * 8), dtype=np.uint8)  # zero-padded to whole 64-bit words
    words[:, :packed.shape[1]] = packed
    words = words.view(np.uint64)
    upper = np.zeros((n, n), dtype=np.int64)
    for start in range(0, words.shape[1], KAPPA_CHUNK_WORDS):
        chunk = np.ascontiguousarray(words[:, start:start + KAPPA_CHUNK_WORDS])
        for i in range(n):
            upper[i, i:] += _popcount(chunk[i:] & chunk[i]).sum(axis=1, dtype=np.int64)
    return (upper + np.triu(upper, 1).T).astype(float)


def _kappa_from_counts(both: np.ndarray, trials: int) -> tuple[np.ndarray, np.ndarray]:
    """κ for every pair from (N, N) both-right counts over ``trials`` trials.

    With n trials, a and b right answers and k both right, κ of :func:`error_consistency`
    simplifies to 2(n·k − a·b) / (n(a + b) − 2a·b); the denominator is n²(1 − c_exp) =
    a(n − b) + b(n − a), zero exactly when both are always right or both always wrong.
    Integers below 2^53 throughout, so float64 is exact. Returns κ (N, N) and that mask.
    """
    right = np.diag(both)
    product = np.outer(right, right)
    numerator = 2 * (trials * both - product)
    denominator = trials * (right[:, None] + right[None, :]) - 2 * product
    undefined = denominator == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = numerator / denominator
    kappa[undefined] = np.nan
    return kappa, undefined


def _undefined_pairs(undefined: np.ndarray, ids: list[str], prefix: str = "") -> list[str]:
    i, j = np.nonzero(np.triu(undefined))
    return [f"{prefix}{ids[a]}–{ids[b]}" for a, b in zip(i, j, strict=True)]


def error_consistency_matrix(correctness: Correctness, cells=None,
                             by_manipulation: bool = False) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """(N × N) error consistency κ (:func:`error_consistency`) of every pair of networks.

    ``correctness``: a :class:`~paradox_utils.correctness.Correctness` (N networks, C
    cells, I images). ``cells``: the (manipulation, level) cells to pool (default: all);
    the trials are cells × images, every image of every chosen cell one trial.
    ``by_manipulation``: instead a dict manipulation → (N × N) κ, each pooled over that
    manipulation's chosen cells (manipulations in the order of the cells).

    Returns DataFrames indexed by ``correctness.ids`` both ways; the diagonal is 1.
    Where c_exp = 1 (both always right or both always wrong over the pooled trials, a
    constant network with itself included) κ is NaN, with one RuntimeWarning naming the
    pairs (the first ``names.LISTED``). Vectorised: popcounts of the packed bits, a loop
    over networks only; memory beyond the bits ≈ two copies of them plus N × 4 KiB.
    """
    for field in ("ids", "cells", "bits", "n_images"):
        if not hasattr(correctness, field):
            raise TypeError(f"error_consistency_matrix needs a Correctness (ids, cells, bits, n_images), "
                            f"got {type(correctness).__name__}.")
    ids, bits, n_images = [str(i) for i in correctness.ids], np.asarray(correctness.bits), int(correctness.n_images)
    expected = (len(ids), len(correctness.cells), (n_images + 7) // 8)
    if not ids or n_images < 1:
        raise ValueError("error_consistency_matrix needs at least one network and one image.")
    if bits.dtype != np.uint8 or bits.shape != expected:
        raise ValueError(f"Correctness bits must be uint8 of shape (networks, cells, ⌈images/8⌉) = {expected}, "
                         f"got {bits.dtype} {bits.shape}.")
    known = {(m, float(lv)): c for c, (m, lv) in enumerate(correctness.cells)}
    chosen = list(known) if cells is None else [(m, float(lv)) for m, lv in cells]
    missing = [c for c in chosen if c not in known]
    if missing or not chosen:
        raise ValueError(f"error_consistency_matrix: the correctness has no cell {missing[0]}." if missing
                         else "error_consistency_matrix got no cells.")
    groups = {"": chosen}
    if by_manipulation:
        groups = {}
        for cell in chosen:
            groups.setdefault(cell[0], []).append(cell)
    index = pd.Index(ids, name="net_id")
    frames, undefined = {}, []
    for name, group in groups.items():
        both = _counts(bits[:, [known[c] for c in group]], n_images)
        kappa, bad = _kappa_from_counts(both, len(group) * n_images)
        undefined += _undefined_pairs(bad, ids, f"{name}: " if by_manipulation else "")
        frames[name] = pd.DataFrame(kappa, index=index, columns=index.copy())
    _undefined_warning(undefined)
    return frames if by_manipulation else frames[""]


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
    orders = (rng.permutation(n) for _ in range(permutations))
    permuted = _permuted_ranked(x, y, orders) if _ranks_once(x, y) else _permuted_literal(x, y, orders)
    hits = sum(abs(r) >= abs(observed) - 1e-12 for r in permuted)
    return {"r": observed, "p": (hits + 1) / (permutations + 1), "n_networks": n, "permutations": permutations}


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


def bootstrap_correlation(a: pd.DataFrame | np.ndarray, b: pd.DataFrame | np.ndarray, resamples: int = 1000,
                          seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Spearman r between two matrices' off-diagonal entries with a percentile CI from
    resampling *networks* with replacement (pairs of a network with its own copy dropped)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(x)
    rng = np.random.default_rng(seed)
    values = []
    i, j = np.triu_indices(n, 1)
    for _ in range(resamples):
        pick = rng.integers(0, n, n)
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


def behaviour_nulls(acc_table: pd.DataFrame, permutations: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    """The null of each behavioural measure the population allows: compatibility (≥ 2
    networks), relative compatibility (≥ 3: it needs a population mean to subtract) and κ.
    A measure left out is read against the fixed threshold, with a warning saying so."""
    n = acc_table["net_id"].nunique()
    nulls = {}
    if n >= 2:
        nulls["compatibility"] = compatibility_null(acc_table, permutations, seed)
        nulls["kappa"] = kappa_null(acc_table, seed=seed)
    if n >= 3:
        nulls["relative compatibility"] = compatibility_null(acc_table, permutations, seed, relative=True)
    if missing := [m for m in ("compatibility", "relative compatibility", "kappa") if m not in nulls]:
        warnings.warn(f"With {n} networks there is no null for {', '.join(missing)}: the fixed threshold is used.",
                      RuntimeWarning, stacklevel=2)
    # Networks at chance in every cell (e.g. untrained) give constant vectors, whose r is undefined and
    # dropped: a null with no value has no percentile, so that measure is read against the fixed threshold too.
    if empty := [m for m, values in nulls.items() if not len(values)]:
        warnings.warn(f"The null of {', '.join(empty)} has no defined value (the networks' accuracy vectors are "
                      "constant): the fixed threshold is used.", RuntimeWarning, stacklevel=2)
    return {m: values for m, values in nulls.items() if len(values)}


def statistics_table(similarities: Mapping[str, pd.DataFrame],
                     compat: pd.DataFrame | Mapping[str, pd.DataFrame], pairs: pd.DataFrame,
                     similar: float | Mapping[str, float], compatible: float | Mapping[str, float],
                     permutations: int, resamples: int, seed: int = 0, *,
                     similarity_nulls: Mapping[str, np.ndarray] | None = None,
                     behaviour_nulls: Mapping[str, np.ndarray] | None = None,
                     quantile: float = NULL_QUANTILE) -> pd.DataFrame:
    """One row per (similarity method × behavioural measure): Mantel r and p of the two
    matrices, the bootstrap CI, the two paradox counts of :func:`quadrant_counts` and the
    thresholds they used.

    ``compat``: one (N × N) compatibility matrix — the rows are then indexed by "method"
    alone, as before — or a mapping behaviour name → (N × N) matrix (e.g.
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
            test = mantel(sim.loc[ids, ids], matrix.loc[ids, ids], permutations, seed)
            ci = bootstrap_correlation(sim.loc[ids, ids], matrix.loc[ids, ids], resamples, seed)
            counts = quadrant_counts(pairs, method, sim_value, value, behaviour)
            rows.append({"method": method, "behaviour": behaviour, "mantel_r": test["r"], "mantel_p": test["p"],
                         "ci_low": ci["low"], "ci_high": ci["high"],
                         "similar_yet_different": counts["similar_yet_different"],
                         "different_yet_similar": counts["different_yet_similar"], "pairs": counts["pairs"],
                         "similar_threshold": sim_value, "similar_threshold_kind": sim_kind,
                         "behaviour_threshold": value, "behaviour_threshold_kind": kind})
    return pd.DataFrame(rows).set_index("method" if single else ["method", "behaviour"])


# ----------------------------------------------------------------------------- nulls and thresholds

def null_values_needed(quantile: float) -> int:
    """The fewest values whose ``quantile`` is not simply their largest (or smallest):
    ⌈1 / (1 − q)⌉ for q ≥ 0.5, e.g. 100 for 0.99."""
    tail = min(quantile, 1 - quantile)
    return int(np.ceil(1 / tail - 1e-9))  # 1 / 0.01 is 100.000…01 in floats


def null_threshold(null_values, quantile: float = NULL_QUANTILE) -> float:
    """The ``quantile`` (default 0.99) of a null distribution (1-D values; NaNs ignored):
    a pair above it is more similar, or more compatible, than 99 % of pairs under the null.

    Refused with fewer than :func:`null_values_needed` finite values (100 for 0.99): the
    99th percentile of fewer values is merely their largest.
    """
    if not 0 < quantile < 1:
        raise ValueError(f"The null quantile must lie strictly between 0 and 1; got {quantile}.")
    values = np.asarray(null_values, dtype=float).ravel()
    values = values[np.isfinite(values)]
    needed = null_values_needed(quantile)
    if len(values) < needed:
        raise ValueError(f"A {quantile:g} quantile needs at least {needed} finite null values (with fewer it is "
                         f"merely the largest); got {len(values)}.")
    return float(np.quantile(values, quantile))


def threshold(fixed: float, null=None, quantile: float = NULL_QUANTILE) -> tuple[float, str]:
    """The one rule for a quadrant threshold, shared by counts, tables and figures:
    (:func:`null_threshold` of ``null``, "null p99") where null values are given, else
    (``fixed``, "fixed") — the paper's reading uses 0.5 for both axes."""
    if null is None:
        return float(fixed), FIXED
    return null_threshold(null, quantile), f"null p{quantile * 100:g}"


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


def _complete_vectors(acc_table: pd.DataFrame, metric: str, what: str) -> pd.DataFrame:
    """The (N × C) accuracy vectors, refused (one sentence) if a network misses a cell or N < 2."""
    vectors = accuracy_vectors(acc_table, metric)
    if len(vectors) < 2:
        raise ValueError(f"{what} needs at least two networks; the table has {len(vectors)}.")
    gaps = vectors.index[vectors.isna().any(axis=1)]
    if len(gaps):
        raise ValueError(f"{what} needs every network in every cell; missing cells for: "
                         f"{listed(gaps)}.")
    return vectors


def _minus_population_mean(values: np.ndarray) -> np.ndarray:
    """(N, C) accuracies minus the population's mean per cell: "relative" accuracies, as
    ``compatibility(..., relative=True)`` correlates them (every network in the mean)."""
    return values - values.mean(axis=0, keepdims=True)


def _row_correlations(values: np.ndarray) -> np.ndarray:
    """(N, N) Pearson r of the rows of (N, C) ``values``; NaN for a constant row (std ≤
    ``CONSTANT_RTOL`` × its largest |value|), as in :func:`compatibility`."""
    centred = values - values.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    constant = values.std(axis=1) <= CONSTANT_RTOL * np.abs(values).max(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (centred @ centred.T) / np.outer(norms, norms)
    r[constant[:, None] | constant[None, :]] = np.nan
    return np.clip(r, -1, 1)


def compatibility_null(acc_table: pd.DataFrame, permutations: int = NULL_PERMUTATIONS, seed: int = 0,
                       relative: bool = False, metric: str = "accuracy") -> np.ndarray:
    """Null distribution of (relative) compatibility: (permutations · N(N−1)/2,) Pearson r
    of every pair of networks after each network's accuracies were shuffled across the
    levels *within each manipulation*, independently per network and per permutation.

    Why this null: compatibility is high for almost any two trained networks because all
    of them share the manipulations' difficulty (what each manipulation costs on average)
    and the fall of accuracy with severity. The shuffle keeps each network's mean — and
    set of accuracies — per manipulation and the grouping of cells into manipulations,
    and destroys only the level-by-level profile, so a pair above the null's 99th
    percentile shares the shape of its accuracy curves, not just which manipulations hurt.
    (Because trained networks all share the monotone fall with severity, most pairs exceed
    it for raw compatibility; the relative version asks what a pair shares beyond the
    population.) The values pool pairs and permutations: one threshold for the population,
    the distribution of a random pair; its spread grows with how alike the networks'
    manipulation means are.

    ``relative=True``: the null of relative compatibility (r after subtracting the
    population's mean accuracy per cell): each permutation's shuffled population is
    re-centred on *its own* per-cell mean, exactly as the observed statistic is on the
    observed population — re-centring on the observed mean would leave its level profile
    in every shuffled vector and correlate them. Needs at least three networks (with two
    the relative vectors are exact negatives, r = −1).

    ``acc_table``: the tidy accuracy table (net_id, manipulation, level, ``metric``), every
    network in every cell. Constant vectors give NaN r, which is dropped. Seeded
    (``numpy.random.default_rng(seed)``).
    """
    if permutations < 1:
        raise ValueError(f"compatibility_null needs at least one permutation; permutations={permutations}.")
    vectors = _complete_vectors(acc_table, metric, "compatibility_null")
    if relative and len(vectors) < 3:
        raise ValueError("The relative compatibility null needs at least three networks (with two, the relative "
                         "vectors are exact negatives).")
    values = vectors.to_numpy(dtype=float)
    manipulation = vectors.columns.get_level_values("manipulation")
    groups = [np.flatnonzero(manipulation == name) for name in dict.fromkeys(manipulation)]
    groups = [cols for cols in groups if len(cols) > 1]  # a manipulation of one level has nothing to shuffle
    n = len(values)
    upper = np.triu_indices(n, 1)
    rng = np.random.default_rng(seed)
    out = np.empty((permutations, len(upper[0])))
    for k in range(permutations):
        shuffled = values.copy()
        for cols in groups:  # an independent permutation of this manipulation's levels for every network
            order = np.argsort(rng.random((n, len(cols))), axis=1)
            shuffled[:, cols] = np.take_along_axis(values[:, cols], order, axis=1)
        if relative:
            shuffled = _minus_population_mean(shuffled)
        out[k] = _row_correlations(shuffled)[upper]
    out = out.ravel()
    return out[np.isfinite(out)]


def kappa_null(acc_table: pd.DataFrame, n_images: int | None = None, pairs: int | None = KAPPA_NULL_PAIRS,
               seed: int = 0) -> np.ndarray:
    """Sampling distribution of error consistency κ under independence: (pairs,) κ of
    simulated pairs of networks that err independently of each other.

    Why this null: κ (Cohen's, Geirhos et al. 2020) asks whether two networks err on the
    same images more often than their accuracies imply. Within one cell, two networks
    that err independently have κ = 0 in expectation; but κ pooled over cells — every
    image of every cell one trial, c_exp from the pooled accuracies, as
    ``error_consistency_matrix`` computes it — is not: both networks are right more often
    in easy cells and wrong more often in hard ones, which alone gives
    κ ≈ 2·cov_cells(p_a, p_b) / (1 − c_exp) > 0 (about 0.2 for profiles falling from 0.9
    to 0.1). The simulation keeps each network's accuracy in each cell and the number of
    trials, and makes the errors independent within every cell; what remains is the κ
    that shared cell difficulty and finite images give, so a pair above its 99th
    percentile shares *which images* it gets wrong. The values pool pairs: one threshold
    for the population.

    Per simulated pair (a, b) and cell c, with n = ``n_images`` trials and the table's
    accuracies p_ac, p_bc as the true rates: right answers R_a ~ Binomial(n, p_ac), R_b ~
    Binomial(n, p_bc) and both right K ~ Hypergeometric (R_b of the n trials drawn, R_a of
    them a's rights) — exactly the overlap of independent Bernoulli trials given their
    counts. Pooled over the C cells (T = C·n trials, a = ΣR_a, b = ΣR_b, k = ΣK):
    c_obs = (T − a − b + 2k) / T, c_exp = p_a p_b + (1 − p_a)(1 − p_b) with p = a / T,
    b / T, and κ = (c_obs − c_exp) / (1 − c_exp) = 2(T·k − a·b) / (T(a + b) − 2a·b).
    Its spread shrinks as 1/√(C·n).

    ``n_images``: trials per cell (default: the table's n_images column, which must be
    one number). ``pairs``: that many pairs of distinct networks drawn uniformly with
    replacement (each simulated afresh), or None for every pair once. Pairs with
    c_exp = 1 (both always right or both always wrong) have no κ and are dropped. Seeded.
    """
    vectors = _complete_vectors(acc_table, "accuracy", "kappa_null")
    p = vectors.to_numpy(dtype=float)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("kappa_null needs accuracies as fractions in [0, 1].")
    if n_images is None:
        if "n_images" not in acc_table.columns or acc_table["n_images"].nunique() != 1:
            raise ValueError("kappa_null needs n_images: the table has no single n_images value; pass it.")
        n_images = int(acc_table["n_images"].iloc[0])
    if int(n_images) != n_images or n_images < 1:
        raise ValueError(f"kappa_null needs a positive whole number of images per cell; n_images={n_images}.")
    n_images = int(n_images)
    n = len(p)
    rng = np.random.default_rng(seed)
    if pairs is None:
        a, b = np.triu_indices(n, 1)
    else:
        if pairs < 1:
            raise ValueError(f"kappa_null needs at least one pair; pairs={pairs}.")
        a = rng.integers(0, n, pairs)
        b = rng.integers(0, n - 1, pairs)
        b = b + (b >= a)  # uniform over the other n − 1 networks
    right_a = rng.binomial(n_images, p[a])  # (P, C)
    right_b = rng.binomial(n_images, p[b])
    # numpy's hypergeometric needs at least one draw: draw one where b has no right answer, then zero it
    both = np.where(right_b > 0, rng.hypergeometric(right_a, n_images - right_a, np.maximum(right_b, 1)), 0)
    trials = p.shape[1] * n_images
    ra, rb, k = right_a.sum(1).astype(float), right_b.sum(1).astype(float), both.sum(1).astype(float)
    denominator = trials * (ra + rb) - 2 * ra * rb
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = 2 * (trials * k - ra * rb) / denominator
    return kappa[denominator > 0]
