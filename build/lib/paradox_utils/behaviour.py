"""Behavioural agreement of networks: compatibility and error consistency κ.

* :func:`compatibility` — (N × N) Pearson r of the networks' accuracy vectors over the
  manipulation cells (the paper's), or of what is left after the population's mean
  accuracy per cell (``relative=True``).
* :func:`error_consistency` / :func:`error_consistency_matrix` — Cohen's κ of two
  networks' right/wrong answers on the same trials, from the correctness bits
  (:class:`~paradox_utils.correctness.Correctness`).

(methods: Behaviour, three ways)
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .correctness import Correctness
from .distortions import clean_once
from .evaluation import accuracy_vectors
from .names import listed

__all__ = ["compatibility", "error_consistency", "error_consistency_matrix"]

CONSTANT_RTOL = 1e-9  # a vector whose std is below this fraction of its largest |value| is constant
KAPPA_CHUNK_WORDS = 512  # 64-bit words (32,768 trials) of every network at a time: 1.3 MB for 329, in cache


def compatibility(acc_table: pd.DataFrame, metric: str = "accuracy", relative: bool = False,
                  by_manipulation: bool = False) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """(N × N) Pearson r between the networks' accuracy vectors (cells in the paper's order).

    ``acc_table``: the tidy accuracy table (one row per network × cell); ``metric``: its
    column to correlate (fractions). Returns a DataFrame indexed by net_id both ways.

    ``relative=False``: the paper's compatibility, r of the raw vectors.
    ``relative=True``: r of the vectors minus the population's mean accuracy per cell
    (over all N networks of the table, each included in the mean). With N = 2 it is −1
    by construction (a warning says so), or NaN where the two differ by a constant; with
    N = 1 it is NaN.

    ``by_manipulation``: instead a dict manipulation → (N × N) r over that manipulation's
    levels only (its identity level included; manipulations in the table's cell order).
    The per-cell mean of ``relative`` is the same cell's mean, so a manipulation's relative
    vectors are the whole grid's restricted to its levels.

    A vector that is constant up to float rounding (std ≤ ``CONSTANT_RTOL`` × its largest
    |value|; for ``relative`` the scale also covers the cell means, whose rounding the
    difference carries) has NaN in its row and column, with one warning naming the
    networks (the first ``names.LISTED``; per manipulation, prefixed by its name).
    (methods: Behaviour, three ways)
    """
    vectors = accuracy_vectors(acc_table, metric)
    if relative and len(vectors) == 2:
        warnings.warn("Relative compatibility of a population of two networks is -1 by construction (each "
                      "relative vector is the negative of the other): use a population.", RuntimeWarning,
                      stacklevel=2)
    values = vectors.to_numpy(dtype=float)
    manipulation = vectors.columns.get_level_values("manipulation")
    groups = ({name: manipulation == name for name in dict.fromkeys(manipulation)} if by_manipulation
              else {"": slice(None)})  # a slice, not a mask: the whole grid's values as they are
    frames, flat = {}, []
    for name, columns in groups.items():
        r, constant = _compatibility(values[:, columns], relative)
        flat += [f"{name}: {net}" if by_manipulation else str(net) for net in vectors.index[constant]]
        frames[name] = pd.DataFrame(r, index=vectors.index, columns=vectors.index.copy())
    if flat:
        kind = "relative accuracy vector (accuracy minus the population mean)" if relative else "accuracy vector"
        warnings.warn(f"Compatibility is undefined (NaN) for networks with a constant {kind}: "
                      f"{listed(flat)}.", RuntimeWarning, stacklevel=2)
    return frames if by_manipulation else frames[""]


def _compatibility(values: np.ndarray, relative: bool) -> tuple[np.ndarray, np.ndarray]:
    """(N, N) r of the rows of (N, C) accuracies (NaN allowed: a missing cell), or of the rows
    minus the per-column mean with ``relative``; and (N,) bool, the rows that are constant."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN row: nanstd/nanmax warn, the test is False
        scale = np.nanmax(np.abs(values), axis=1)
        if relative:
            means = np.nanmean(values, axis=0, keepdims=True)  # (1, C) the population's accuracy per cell
            values = values - means
            scale = np.maximum(scale, np.nanmax(np.abs(means)))  # a − mean is only as exact as both
        spread = np.nanstd(values, axis=1)
    constant = spread <= CONSTANT_RTOL * scale
    return _row_correlations(values, constant), constant


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


def _row_correlations(values: np.ndarray, constant: np.ndarray | None = None) -> np.ndarray:
    """(N, N) Pearson r of the rows of (N, C) ``values``, clipped to [−1, 1]; NaN in the row
    and column of every row that ``constant`` ((N,) bool) marks — by default a row whose
    std ≤ ``CONSTANT_RTOL`` × its largest |value|."""
    if constant is None:
        constant = values.std(axis=1) <= CONSTANT_RTOL * np.abs(values).max(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = values - values.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(centred, axis=1)
        r = (centred @ centred.T) / np.outer(norms, norms)
    r[constant[:, None] | constant[None, :]] = np.nan
    return np.clip(r, -1, 1)


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
    at a time so every step's operands stay in cache: ~8× faster on 2 cores than a float32
    matrix product of the unpacked bits (benchmarks/bench_behaviour.py).
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
    cells, I images). ``cells``: the (manipulation, level) cells to pool; the trials are
    cells × images, every image of every chosen cell one trial. The default pools every
    cell with each clean image counted once (``distortions.clean_once``): the grid's
    identity cells (contrast 1, illuminant 1, blur 0, gamma 1, the noises 0) show the same
    clean images, so only the first of them (contrast 1 on the paper's grid) enters; cells
    given explicitly are pooled as given.
    ``by_manipulation``: instead a dict manipulation → (N × N) κ, each pooled over that
    manipulation's chosen cells (manipulations in the order of the cells), every
    manipulation with its own identity level (its reference within the manipulation).

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
    if cells is None:
        chosen = list(known) if by_manipulation else clean_once(list(known))
    else:
        chosen = [(m, float(lv)) for m, lv in cells]
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
