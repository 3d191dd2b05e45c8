"""Null distributions of the behavioural measures, and the thresholds read from nulls.

* :func:`compatibility_null` — (relative) compatibility of networks whose accuracies
  were shuffled across the levels within each manipulation.
* :func:`kappa_null` — error consistency κ of simulated pairs that err independently
  within each cell.
* :func:`null_threshold` / :func:`threshold` — a null's ``NULL_QUANTILE`` (the one place
  "above chance" is set), or the paper's fixed value.

Similarity nulls (untrained networks) are ``similarity.null_distribution``.
(methods: Null models and thresholds)
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .behaviour import _complete_vectors, _minus_population_mean, _row_correlations
from .distortions import clean_once

__all__ = [
    "FIXED", "KAPPA_NULL_PAIRS", "NULL_PERMUTATIONS", "NULL_QUANTILE", "behaviour_nulls", "compatibility_null",
    "kappa_null", "null_threshold", "null_values_needed", "threshold",
]

NULL_QUANTILE = 0.99  # "above chance" = above the null's 99th percentile
NULL_PERMUTATIONS = 100  # compatibility null: 100 shufflings × every pair (4,500 values for 10 networks)
KAPPA_NULL_PAIRS = 10_000  # κ null: simulated pairs, drawn with replacement (cheap: three draws per cell)
FIXED = "fixed"


def compatibility_null(acc_table: pd.DataFrame, permutations: int = NULL_PERMUTATIONS, seed: int = 0,
                       relative: bool = False, metric: str = "accuracy") -> np.ndarray:
    """Null distribution of (relative) compatibility: (permutations · N(N−1)/2,) Pearson r
    of every pair of networks after each network's accuracies were shuffled across the
    levels *within each manipulation*, independently per network and per permutation
    (the values pool pairs and permutations). A manipulation of one level is left as is.

    ``relative=True``: each permutation's shuffled population is re-centred on its own
    per-cell mean, as the observed statistic is on the observed population (re-centring
    on the observed mean would leave its level profile in every shuffled vector). Needs at
    least three networks.

    ``acc_table``: the tidy accuracy table (net_id, manipulation, level, ``metric``), every
    network in every cell. Constant vectors give NaN r, which is dropped. Seeded
    (``numpy.random.default_rng(seed)``). (methods: Null models and thresholds)
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
    simulated pairs of networks that err independently of each other within every cell,
    at the table's accuracies, pooled over cells as ``behaviour.error_consistency_matrix``
    pools them by default: every cell, each clean image once (``distortions.clean_once``:
    of the identity cells only the first enters) (methods: Null models and thresholds).

    Per simulated pair (a, b) and cell c, with n = ``n_images`` trials and the table's
    accuracies p_ac, p_bc as the true rates: right answers R_a ~ Binomial(n, p_ac), R_b ~
    Binomial(n, p_bc) and both right K ~ Hypergeometric (R_b of the n trials drawn, R_a of
    them a's rights) — exactly the overlap of independent Bernoulli trials given their
    counts. Pooled over those C cells (T = C·n trials, a = ΣR_a, b = ΣR_b, k = ΣK):
    c_obs = (T − a − b + 2k) / T, c_exp = p_a p_b + (1 − p_a)(1 − p_b) with p = a / T,
    b / T, and κ = (c_obs − c_exp) / (1 − c_exp) = 2(T·k − a·b) / (T(a + b) − 2a·b).
    Its centre is not 0 (shared cell difficulty alone gives κ ≈ 2·cov_cells(p_a, p_b) /
    (1 − c_exp)); its spread shrinks as 1/√(C·n).

    ``n_images``: trials per cell (default: the table's n_images column, which must be
    one number). ``pairs``: that many pairs of distinct networks drawn uniformly with
    replacement (each simulated afresh), or None for every pair once. Pairs with
    c_exp = 1 (both always right or both always wrong) have no κ and are dropped. Seeded.
    """
    vectors = _complete_vectors(acc_table, "accuracy", "kappa_null")
    vectors = vectors[clean_once(list(vectors.columns))]  # the cells the observed κ pools
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


def behaviour_nulls(acc_table: pd.DataFrame, permutations: int = NULL_PERMUTATIONS,
                    seed: int = 0) -> dict[str, np.ndarray]:
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


def null_values_needed(quantile: float) -> int:
    """The fewest values whose ``quantile`` is not simply their largest (or smallest):
    ⌈1 / (1 − q)⌉ for q ≥ 0.5, e.g. 100 for 0.99."""
    tail = min(quantile, 1 - quantile)
    return int(np.ceil(1 / tail - 1e-9))  # 1 / 0.01 is 100.000…01 in floats


def null_threshold(null_values, quantile: float = NULL_QUANTILE) -> float:
    """The ``quantile`` (default ``NULL_QUANTILE``) of a null distribution (1-D values; NaNs
    ignored): a pair above it is more similar, or more compatible, than that share of pairs
    under the null.

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

