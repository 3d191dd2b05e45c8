"""Confidence intervals by the bootstrap: a paired bootstrap over test images, and a
bootstrap over networks of a correlation between two matrices.

Over images: every number the book reports from the evaluation grid (VI, ΔVI of a
transplant, compatibility, error consistency κ) is a function of the per-image
correctness bits (:class:`~paradox_utils.correctness.Correctness`). A resample draws I
image indices with replacement and applies the SAME draw to every network and every
cell (methods: Intervals over test images; tests/test_bootstrap.py shows how resampling
(cell, image) pairs, or each network on its own, gives intervals of the wrong width).

Efficient form: a resample is the vector of multiplicities w (I,) of its indices
(w ~ Multinomial(I, 1/I)), and a cell's resampled hit count is bits · w. All
networks × cells × resamples is then one matrix product of the unpacked correctness
(N·C, I) float32 with W (I, R), done in blocks of rows and resamples to bound memory.
The counts are exact: 0/1 times small integers summed in float32 stays an integer
below 2**24. :func:`draw_indices` is the one place the indices are drawn, so a literal
resampler (``x[..., idx].mean()``) reproduces the fast path bit for bit.

Intervals are percentile intervals: the (1 − level)/2 and (1 + level)/2 quantiles of
the resampled statistic (``np.percentile``, linear interpolation). Chosen because they
respect the statistic's range (κ ≤ 1, |r| ≤ 1), are invariant to monotone transforms,
and for statistics that are smooth functions of image means with hundreds of images
(VI, ΔVI) the bootstrap distribution is close to symmetric, where percentile, basic
and BCa intervals agree; the coverage test checks the 95 % level on synthetic truth. (A
percentile interval can miss the point estimate when the resampled values are very
skewed, e.g. κ from a handful of errors; then read it with the ``resamples`` kept.)
A resample where the statistic is undefined (a constant accuracy vector for r,
c_exp = 1 for κ) is dropped; ``resamples`` in the result counts the ones kept.

Over networks: :func:`bootstrap_correlation`, the interval beside chapter 5's Mantel test.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .correctness import Correctness
from .distortions import clean_once

__all__ = [
    "NO_CHANGE", "PAIR_SETS", "bootstrap_correlation", "compatibility_interval", "delta_vi", "draw_indices",
    "family_codes", "kappa_interval", "pair_mask", "resampled_pairs", "vi_interval", "vi_weights",
]

NO_CHANGE = "not distinguishable from no change"
MAX_BYTES = 256 * 2**20  # working memory of one pass: unpacked rows, weights, indices
EXACT_COUNTS = 2**24  # float32 holds every integer below this: the hit counts stay exact


# --- validation --------------------------------------------------------------------------------------------------

def _check_settings(correctness: Correctness, resamples: int, level: float) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise ValueError(f"resamples must be a whole number ≥ 1, got {resamples!r}.")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1 (e.g. 0.95), got {level!r}.")
    if correctness.n_images < 1:
        raise ValueError("The correctness holds no images: there is nothing to resample.")
    if correctness.n_images >= EXACT_COUNTS:
        raise ValueError(f"{correctness.n_images} images is too many for exact float32 hit counts "
                         f"(at most {EXACT_COUNTS - 1}).")
    if not correctness.cells:
        raise ValueError("The correctness holds no cells: there is nothing to average.")


def _row(correctness: Correctness, net: str) -> int:
    if net not in correctness.ids:
        shown = ", ".join(map(str, correctness.ids[:5])) + (", …" if len(correctness.ids) > 5 else "")
        raise ValueError(f"Unknown network {net!r}; the correctness holds {len(correctness.ids)} networks ({shown}).")
    return correctness.ids.index(net)


def _cell_columns(correctness: Correctness, cells: Sequence[tuple[str, float]]) -> list[int]:
    wanted = [(str(name), float(lv)) for name, lv in cells]
    missing = [c for c in wanted if c not in correctness.cells]
    if missing:
        raise ValueError(f"The correctness has no cell {missing[0][0]}={missing[0][1]}; "
                         f"it holds {len(correctness.cells)} cells.")
    if not wanted:
        raise ValueError("cells is empty: choose at least one (manipulation, level) cell.")
    return [correctness.cells.index(c) for c in wanted]


# --- the resampling engine ---------------------------------------------------------------------------------------

def draw_indices(n_images: int, resamples: int, seed: int, block: int | None = None) -> Iterator[np.ndarray]:
    """The bootstrap's draws: blocks (k, I) int64 of image indices, k ≤ ``block``, R rows in all.

    Resample r is row r of ``rng.integers(0, I, (R, I))`` on ``np.random.default_rng(seed)``
    (what ``rng.choice(I, (R, I))`` draws). A block is the next k rows of that one stream,
    so the draws do not depend on ``block`` (tests/test_bootstrap.py checks this for odd sizes).
    """
    rng = np.random.default_rng(seed)
    block = resamples if block is None else max(1, int(block))
    for start in range(0, resamples, block):
        yield rng.integers(0, n_images, (min(block, resamples - start), n_images))


def _multiplicities(indices: np.ndarray, n_images: int) -> np.ndarray:
    """(k, I) indices → (k, I) float32 counts: how often each image was drawn in each resample."""
    k = len(indices)
    flat = (np.arange(k)[:, None] * n_images + indices).ravel()  # one bincount for the whole block
    return np.bincount(flat, minlength=k * n_images).reshape(k, n_images).astype(np.float32)


def _hit_blocks(rows: np.ndarray, n_images: int, resamples: int, seed: int,
                max_bytes: int = MAX_BYTES) -> Iterator[np.ndarray]:
    """Resampled hit counts of packed rows (M, ⌈I/8⌉) uint8: blocks (k, M) float32, k resamples each.

    ``max_bytes`` bounds the working arrays: a row block of unpacked float32 (half the
    budget) and a resample block of indices int64 + multiplicities float32 (a quarter).
    """
    m = len(rows)
    row_block = max(1, max_bytes // 2 // (4 * n_images))
    sample_block = max(1, max_bytes // 4 // (12 * n_images))

    def unpacked(lo: int) -> np.ndarray:
        return np.unpackbits(rows[lo:lo + row_block], axis=1, count=n_images).astype(np.float32)

    whole = unpacked(0) if row_block >= m else None  # fits: unpack once, not once per resample block
    for indices in draw_indices(n_images, resamples, seed, sample_block):
        weights = _multiplicities(indices, n_images)  # (k, I); BLAS reads the transposed rows in place
        if whole is not None:
            yield weights @ whole.T
            continue
        out = np.empty((len(indices), m), dtype=np.float32)
        for lo in range(0, m, row_block):
            out[:, lo:lo + row_block] = weights @ unpacked(lo).T
        yield out


def _hits(rows: np.ndarray, n_images: int) -> np.ndarray:
    """Hit counts of packed rows on the images as drawn: (1, M) float32, the point estimate's input."""
    return np.unpackbits(rows, axis=1, count=n_images).sum(axis=1, dtype=np.int64)[None].astype(np.float32)


def _estimate(rows: np.ndarray, n_images: int, statistic: Callable[[np.ndarray], np.ndarray],
              resamples: int, seed: int, max_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """``statistic`` of hit counts (k, M) → (k, …), on the data (…,) and on every resample (R, …)."""
    point = statistic(_hits(rows, n_images))[0]
    boot = np.concatenate([statistic(h) for h in _hit_blocks(rows, n_images, resamples, seed, max_bytes)])
    return point, boot


# --- statistics ----------------------------------------------------------------------------------------------------

def vi_weights(cells: Sequence[tuple[str, float]]) -> np.ndarray:
    """(C,) weights with VI = accuracies · weights: 1 / (manipulations × that manipulation's levels).

    The structure of :func:`~paradox_utils.evaluation.visual_intelligence` (mean over the
    manipulations present of the mean over each one's levels), read from the cells.
    """
    names = [name for name, _ in cells]
    counts = {name: names.count(name) for name in names}
    return np.array([1.0 / (len(counts) * counts[name]) for name in names])


def _interval(boot: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile interval of (R, …) resampled values along axis 0, NaN resamples dropped: low, high, kept."""
    tail = (1 - level) / 2 * 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": the NaN it returns is the answer
        low, high = np.nanpercentile(boot, [tail, 100 - tail], axis=0)
    return low, high, np.sum(~np.isnan(boot), axis=0)


def _attrs(frame, level: float, resamples: int, seed: int):
    frame.attrs.update({"level": level, "resamples": int(resamples), "seed": int(seed), "interval": "percentile"})
    return frame


def vi_interval(correctness: Correctness, resamples: int = 1000, seed: int = 0, level: float = 0.95,
                max_bytes: int = MAX_BYTES) -> pd.DataFrame:
    """VI of every network with a percentile interval over image resamples.

    Returns a DataFrame indexed by net_id: vi (the point estimate, a fraction), low and
    high (the ``level`` interval), se (the bootstrap standard deviation). ``attrs`` holds
    level, resamples, seed.
    """
    _check_settings(correctness, resamples, level)
    n, c, width = correctness.bits.shape
    weights = vi_weights(correctness.cells) / correctness.n_images

    def vi(hits: np.ndarray) -> np.ndarray:  # (k, N·C) → (k, N)
        return hits.reshape(-1, n, c).astype(np.float64) @ weights

    point, boot = _estimate(correctness.bits.reshape(n * c, width), correctness.n_images, vi, resamples, seed,
                            max_bytes)
    low, high, _ = _interval(boot, level)
    frame = pd.DataFrame({"vi": point, "low": low, "high": high, "se": boot.std(axis=0, ddof=1) if resamples > 1
                          else np.nan}, index=pd.Index(correctness.ids, name="net_id"))
    return _attrs(frame, level, resamples, seed)


def _verdict(low: float, high: float) -> str:
    if low > 0:
        return "increase"
    if high < 0:
        return "decrease"
    return NO_CHANGE  # the interval spans 0 (or touches it)


def delta_vi(correctness: Correctness, parent: str, variants: Sequence[str], resamples: int = 1000, seed: int = 0,
             level: float = 0.95, max_bytes: int = MAX_BYTES) -> pd.DataFrame:
    """ΔVI = VI(variant) − VI(parent) for each variant, with a paired percentile interval.

    One image draw per resample serves the parent and every variant (the transplant
    chapter's parent-vs-variants table). Returns a DataFrame indexed by variant: delta,
    low, high, verdict ("increase", "decrease" or :data:`NO_CHANGE` when the interval
    contains 0).
    """
    _check_settings(correctness, resamples, level)
    variants = list(variants)
    if not variants:
        raise ValueError("delta_vi() got no variants to compare with the parent.")
    picked = [_row(correctness, parent)] + [_row(correctness, v) for v in variants]
    bits = correctness.bits[picked]
    n, c, width = bits.shape
    weights = vi_weights(correctness.cells) / correctness.n_images

    def delta(hits: np.ndarray) -> np.ndarray:  # (k, n·C) → (k, n − 1)
        vi = hits.reshape(-1, n, c).astype(np.float64) @ weights
        return vi[:, 1:] - vi[:, :1]

    point, boot = _estimate(bits.reshape(n * c, width), correctness.n_images, delta, resamples, seed, max_bytes)
    low, high, _ = _interval(boot, level)
    frame = pd.DataFrame({"parent": parent, "delta": point, "low": low, "high": high,
                          "verdict": [_verdict(lo, hi) for lo, hi in zip(low, high, strict=True)]},
                         index=pd.Index(variants, name="variant"))
    return _attrs(frame, level, resamples, seed)


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise Pearson r of (k, C) arrays; NaN where either row is constant (r undefined)."""
    dx, dy = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    nx, ny = np.sqrt((dx * dx).sum(axis=1)), np.sqrt((dy * dy).sum(axis=1))
    # constant up to float rounding (behaviour.compatibility's rule: std ≤ 1e-9 × the largest |value|)
    scale = 1e-9 * np.sqrt(x.shape[1])
    flat = (nx <= scale * np.abs(x).max(axis=1)) | (ny <= scale * np.abs(y).max(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (dx * dy).sum(axis=1) / (nx * ny)
    return np.where(flat, np.nan, np.clip(r, -1, 1))


def compatibility_interval(correctness: Correctness, a: str, b: str, resamples: int = 1000, seed: int = 0,
                           level: float = 0.95, max_bytes: int = MAX_BYTES) -> dict:
    """Compatibility (Pearson r of a's and b's accuracy vectors over the cells) with a percentile interval.

    Each resample recomputes both C-long accuracy vectors on the same images. Returns
    {a, b, r, low, high, level, resamples}; r is NaN when a vector is constant, and
    resamples counts the resamples where r is defined.
    """
    _check_settings(correctness, resamples, level)
    bits = correctness.bits[[_row(correctness, a), _row(correctness, b)]]
    c, width = bits.shape[1:]

    def r(hits: np.ndarray) -> np.ndarray:  # (k, 2·C) → (k,)
        acc = hits.reshape(-1, 2, c).astype(np.float64) / correctness.n_images
        return _pearson(acc[:, 0], acc[:, 1])

    point, boot = _estimate(bits.reshape(2 * c, width), correctness.n_images, r, resamples, seed, max_bytes)
    low, high, kept = _interval(boot, level)
    return {"a": a, "b": b, "r": float(point), "low": float(low), "high": float(high), "level": level,
            "resamples": int(kept)}


def _kappa(hits_a: np.ndarray, hits_b: np.ndarray, agree: np.ndarray, trials: float) -> np.ndarray:
    """Cohen's κ from pooled counts (k,): a right, b right, both agree, over ``trials``; NaN when c_exp = 1."""
    p_a, p_b, c_obs = hits_a / trials, hits_b / trials, agree / trials
    c_exp = p_a * p_b + (1 - p_a) * (1 - p_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c_exp < 1, (c_obs - c_exp) / (1 - c_exp), np.nan)


def kappa_interval(correctness: Correctness, a: str, b: str, cells: Sequence[tuple[str, float]] | None = None,
                   resamples: int = 1000, seed: int = 0, level: float = 0.95, max_bytes: int = MAX_BYTES) -> dict:
    """Error consistency κ of a and b pooled over the trials of ``cells``, with a percentile interval.

    Default cells: every cell with each clean image counted once, as
    ``behaviour.error_consistency_matrix`` pools them (``distortions.clean_once``: of the
    identity cells only the first enters). Pooled: p_a, p_b and c_obs count all C·I
    (cell, image) trials together. A resampled
    image brings its trials in every chosen cell, as often as it was drawn. Returns
    {a, b, kappa, low, high, level, resamples, cells}; κ is NaN when c_exp = 1 (both
    networks always right, or always wrong), and resamples counts those where it is defined.
    """
    _check_settings(correctness, resamples, level)
    columns = _cell_columns(correctness, clean_once(correctness.cells) if cells is None else cells)
    bits_a = correctness.bits[_row(correctness, a)][columns]
    bits_b = correctness.bits[_row(correctness, b)][columns]
    agree = ~(bits_a ^ bits_b)  # packed: 1 where both right or both wrong (padding bits are never unpacked)
    c = len(columns)
    trials = float(c * correctness.n_images)

    def kappa(hits: np.ndarray) -> np.ndarray:  # (k, 3·C) → (k,)
        sums = hits.reshape(-1, 3, c).astype(np.float64).sum(axis=2)
        return _kappa(sums[:, 0], sums[:, 1], sums[:, 2], trials)

    rows = np.concatenate([bits_a, bits_b, agree])
    point, boot = _estimate(rows, correctness.n_images, kappa, resamples, seed, max_bytes)
    low, high, kept = _interval(boot, level)
    return {"a": a, "b": b, "kappa": float(point), "low": float(low), "high": float(high), "level": level,
            "resamples": int(kept), "cells": c}


# --- the network bootstrap of a matrix correlation ------------------------------------------------------------------

def _upper(matrix: np.ndarray) -> np.ndarray:
    """The entries above the diagonal of an (N, N) matrix, row by row: (N(N − 1)/2,)."""
    return matrix[np.triu_indices(len(matrix), 1)]


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman r of two 1-D arrays over the entries where neither is NaN; NaN with fewer
    than three such entries or where either side's ranks are constant."""
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 3:
        return float("nan")
    rx, ry = rankdata(x[keep]), rankdata(y[keep])
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


PAIR_SETS = ("all", "within", "between")


def family_codes(matrix, groups, n: int) -> np.ndarray:
    """(n,) integer family code per row of ``matrix``: ``groups`` is None (every network a
    family of one), a sequence of n labels aligned with the rows, or a Mapping id → label
    for a DataFrame (read in its index order). One sentence if a network has no label."""
    if groups is None:
        return np.arange(n)
    if isinstance(groups, Mapping):
        if not isinstance(matrix, pd.DataFrame):
            raise ValueError("Family labels given as a mapping need matrices with ids (DataFrames).")
        missing = [str(i) for i in matrix.index if i not in groups]
        if missing:
            raise ValueError(f"The family labels have no entry for {', '.join(missing[:5])}.")
        labels = [groups[i] for i in matrix.index]
    else:
        labels = list(groups)
        if len(labels) != n:
            raise ValueError(f"One family label per network is needed: {len(labels)} labels for {n} networks.")
    return np.unique(np.asarray(labels, dtype=str), return_inverse=True)[1].ravel()


def pair_mask(codes: np.ndarray, pairs: str = "all") -> np.ndarray:
    """(n, n) bool: the pairs of ``pairs`` — "all", "within" (both networks of one family)
    or "between" (of two families) — given (n,) family codes (:func:`family_codes`)."""
    if pairs not in PAIR_SETS:
        raise ValueError(f"pairs must be one of {', '.join(PAIR_SETS)}; got {pairs!r}.")
    same = codes[:, None] == codes[None, :]
    return np.ones_like(same) if pairs == "all" else same if pairs == "within" else ~same


def resampled_pairs(codes: np.ndarray, members: Sequence[np.ndarray],
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One family resample's pairs, as (M,) row and column indices into the original networks:
    F families of the F (``members``: each family's row indices; ``codes``: each row's family)
    drawn with replacement, all their members kept. The pairs of a network with its own copy
    are dropped, and so are the pairs across two copies of one family: a family drawn twice
    pairs its members within each copy, so a within-family pair weighs as often as the family
    is drawn (not its square). The one place the draw is made (``grounding.family_draws``
    reuses it)."""
    drawn = rng.integers(0, len(members), len(members))
    pick = np.concatenate([members[f] for f in drawn])
    copy = np.repeat(np.arange(len(drawn)), [len(members[f]) for f in drawn])
    i, j = np.triu_indices(len(pick), 1)
    p, q = pick[i], pick[j]
    keep = ((copy[i] == copy[j]) | (codes[p] != codes[q])) & (p != q)
    return p[keep], q[keep]


def bootstrap_correlation(a: pd.DataFrame | np.ndarray, b: pd.DataFrame | np.ndarray, resamples: int = 1000,
                          seed: int = 0, level: float = 0.95, groups=None, pairs: str = "all") -> dict:
    """Spearman r between two (N × N) matrices' off-diagonal entries, with a percentile CI
    from resampling the independent units with replacement.

    ``groups`` None: the units are networks. With ``groups`` (one family label per network,
    see :func:`family_codes`), the units are families: a resample draws F families of the
    F with replacement and keeps all their members, so the interval is as wide as the
    number of families allows, not the number of networks. In both, the pairs of a network
    with its own copy are dropped, and so are the pairs across two copies of one family
    (:func:`resampled_pairs`). ``pairs``: which pairs the correlation runs over —
    "all", "within" families or "between" families (by the ORIGINAL families, in the data
    and in every resample).

    Returns r (all data), low, high, level, resamples (those with a defined r),
    unit ("networks" or "families") and n_units.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 2 or x.shape[0] != x.shape[1]:
        raise ValueError(f"bootstrap_correlation needs two square matrices of one size, got {x.shape} and {y.shape}.")
    n = len(x)
    codes = family_codes(a, groups, n)
    mask = pair_mask(codes, pairs)
    members = [np.flatnonzero(codes == f) for f in range(codes.max() + 1 if n else 0)]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        p, q = resampled_pairs(codes, members, rng)
        keep = mask[p, q]
        values.append(_spearman(x[p[keep], q[keep]], y[p[keep], q[keep]]))
    values = np.array(values)
    values = values[~np.isnan(values)]
    tail = (1 - level) / 2 * 100
    low, high = (np.percentile(values, [tail, 100 - tail]) if len(values) else (np.nan, np.nan))
    i, j = np.triu_indices(n, 1)
    keep = mask[i, j]
    return {"r": _spearman(x[i, j][keep], y[i, j][keep]), "low": float(low), "high": float(high), "level": level,
            "resamples": int(len(values)), "unit": "networks" if groups is None else "families",
            "n_units": len(members)}
