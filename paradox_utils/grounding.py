"""Each similarity measure grounded in behaviour (after Ding, Denain & Steinhardt 2021, and
Geirhos et al. 2020 for κ).

A similarity measure is useful for the paradox only insofar as it tracks behaviour. For every
similarity measure and every behavioural measure, over the whole grid and per manipulation,
:func:`grounding_table` gives the Spearman r across pairs of networks — over all pairs, over
the pairs within one family and over the pairs between two families — with a percentile
interval from resampling whole families (:func:`paradox_utils.bootstrap.bootstrap_correlation`'s
scheme, vectorised: one set of family draws serves every row, so the rows are comparable).
:func:`per_layer` does the same for one behavioural measure against a similarity per layer.

Within and between are read by the ORIGINAL families, in the data and in every resample
(a pair of two copies of one family drawn twice is neither: it is dropped, as the bootstrap
drops it). (methods: Grounding each measure in behaviour)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .behaviour import compatibility, error_consistency_matrix
from .bootstrap import _spearman, family_codes, pair_mask, resampled_pairs
from .correctness import Correctness

__all__ = ["COLUMNS", "PAIRS", "behaviour_scopes", "family_draws", "grounding_table", "per_layer"]

PAIRS = {"all": "all", "within families": "within", "between families": "between"}  # table label → pair set
ALL = "all"  # the scope pooled over the whole grid
MAX_BYTES = 256 * 2**20  # working memory of one block of resamples: every matrix's ranks over its pairs
COLUMNS = ["similarity", "behaviour", "scope", "pairs", "r", "low", "high", "n_pairs", "n_families", "resamples",
           "level"]


def behaviour_scopes(acc_table: pd.DataFrame, correctness: Correctness | None = None,
                     metric: str = "accuracy") -> dict[str, dict[str, pd.DataFrame]]:
    """scope → {behavioural measure → (N × N)}: scope "all" pooled over the grid, then each
    manipulation (the table's order) over its own levels.

    Measures: "compatibility" (Pearson r of the accuracy vectors), "relative compatibility"
    (the same minus the population's mean per cell; only with ≥ 3 networks, with 2 it is −1
    by construction) and, given ``correctness``, "kappa" (error consistency; pooled over the
    grid with each clean image once, per manipulation with its own identity level).
    """
    n = acc_table["net_id"].nunique()
    if n < 2:
        raise ValueError(f"behaviour_scopes needs at least two networks; the table has {n}.")
    measures = {"compatibility": compatibility(acc_table, metric),
                "compatibility per": compatibility(acc_table, metric, by_manipulation=True)}
    if n >= 3:
        measures["relative compatibility"] = compatibility(acc_table, metric, relative=True)
        measures["relative compatibility per"] = compatibility(acc_table, metric, relative=True,
                                                               by_manipulation=True)
    if correctness is not None:
        measures["kappa"] = error_consistency_matrix(correctness)
        measures["kappa per"] = error_consistency_matrix(correctness, by_manipulation=True)
    names = [m for m in measures if not m.endswith(" per")]
    scopes = {ALL: {m: measures[m] for m in names}}
    for manipulation in measures["compatibility per"]:
        scopes[manipulation] = {m: measures[f"{m} per"][manipulation] for m in names
                                if manipulation in measures[f"{m} per"]}
    return scopes


# ----------------------------------------------------------------------------- the family draws

def family_draws(codes: np.ndarray, resamples: int, seed: int,
                 block: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every resample's pairs of networks, ``block`` resamples at a time (default all): blocks
    of (k, M) int row and column indices and (k, M) bool, True where the entry is one of that
    resample's pairs (the rest padding).

    The draws of ``bootstrap.bootstrap_correlation``, by its ``bootstrap.resampled_pairs``
    (same generator, same order, so the blocks do not change them).
    """
    members = [np.flatnonzero(codes == f) for f in range(codes.max() + 1 if len(codes) else 0)]
    rng = np.random.default_rng(seed)
    block = resamples if block is None else max(1, int(block))
    for start in range(0, resamples, block):
        rows, cols = [], []
        for _ in range(min(block, resamples - start)):
            p, q = resampled_pairs(codes, members, rng)
            rows.append(p)
            cols.append(q)
        width = max((len(p) for p in rows), default=0)
        p_out = np.zeros((len(rows), width), dtype=np.int64)
        q_out = np.zeros((len(rows), width), dtype=np.int64)
        valid = np.zeros((len(rows), width), dtype=bool)
        for k, (p, q) in enumerate(zip(rows, cols, strict=True)):
            p_out[k, :len(p)], q_out[k, :len(q)], valid[k, :len(p)] = p, q, True
        yield p_out, q_out, valid


def _ranks(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(R, M) average ranks (1 … n per row) of the valid entries among themselves; the invalid
    ones ranked after them (as +inf), so they never move a valid entry's rank."""
    return rankdata(np.where(valid, values, np.inf), axis=1)


def _rank_pearson(rx: np.ndarray, ry: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(R,) Pearson r of two (R, M) rank arrays over each row's valid entries: Spearman r.
    NaN with fewer than three entries or where a side's ranks are all tied (as ``_spearman``)."""
    n = valid.sum(axis=1)
    centre = (n + 1) / 2  # the mean of average ranks 1 … n, exactly
    dx = np.where(valid, rx - centre[:, None], 0.0)
    dy = np.where(valid, ry - centre[:, None], 0.0)
    sxx, syy = (dx * dx).sum(axis=1), (dy * dy).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (dx * dy).sum(axis=1) / np.sqrt(sxx * syy)
    return np.where((n >= 3) & (sxx > 0) & (syy > 0), np.clip(r, -1, 1), np.nan)


def _correlate(matrices: Mapping, rows: list[tuple], codes: np.ndarray, resamples: int, seed: int, level: float,
               max_bytes: int) -> list[dict]:
    """r, interval and counts of every row (x key, y key, pair-set label) of ``matrices``, on one
    set of family draws.

    Resamples go in blocks sized so a block's ranks of every matrix fit ``max_bytes``; within
    a block each matrix is ranked once per pair set where it has no NaN among that set's
    pairs (the common case), else per row over the pairs where both matrices are defined.
    """
    n = len(codes)
    upper = np.triu_indices(n, 1)
    masks = {label: pair_mask(codes, which) for label, which in PAIRS.items()}
    off = {label: mask & ~np.eye(n, dtype=bool) for label, mask in masks.items()}  # every entry a resample reads
    finite = {(key, label): bool(np.isfinite(m[off[label]]).all()) for key, m in matrices.items() for label in PAIRS}
    per_resample = 16 * max(1, len(upper[0])) * (len(matrices) + 4)  # ranks, values and indices, with slack
    block = max(1, min(resamples, max_bytes // per_resample))
    boot = np.full((len(rows), resamples), np.nan)
    done = 0
    for p_all, q_all, valid_all in family_draws(codes, resamples, seed, block):
        k = len(p_all)
        for label in PAIRS:
            keep = valid_all & masks[label][p_all, q_all]
            width = int(keep.sum(axis=1).max(initial=0))
            order = np.argsort(~keep, axis=1, kind="stable")[:, :width]  # each row's pairs first: narrower arrays
            p, q, keep = (np.take_along_axis(a, order, 1) for a in (p_all, q_all, keep))
            ranked = {}
            for r_index, (kx, ky, row_label) in enumerate(rows):
                if row_label != label:
                    continue
                x, y = matrices[kx][p, q], matrices[ky][p, q]
                if finite[kx, label] and finite[ky, label]:
                    for key, values in ((kx, x), (ky, y)):
                        if key not in ranked:
                            ranked[key] = _ranks(values, keep)
                    boot[r_index, done:done + k] = _rank_pearson(ranked[kx], ranked[ky], keep)
                else:
                    both = keep & np.isfinite(x) & np.isfinite(y)
                    boot[r_index, done:done + k] = _rank_pearson(_ranks(x, both), _ranks(y, both), both)
        done += k
    tail = (1 - level) / 2 * 100
    out = []
    for r_index, (kx, ky, label) in enumerate(rows):
        x, y = matrices[kx], matrices[ky]
        kept = boot[r_index][~np.isnan(boot[r_index])]
        low, high = np.percentile(kept, [tail, 100 - tail]) if len(kept) else (np.nan, np.nan)
        i, j = upper
        chosen = masks[label][i, j]
        pairs = chosen & np.isfinite(x[i, j]) & np.isfinite(y[i, j])
        families = np.unique(np.concatenate([codes[i[pairs]], codes[j[pairs]]]))
        out.append({"r": _spearman(x[i, j][chosen], y[i, j][chosen]), "low": float(low), "high": float(high),
                    "n_pairs": int(pairs.sum()), "n_families": len(families), "resamples": len(kept),
                    "level": level})
    return out


# ----------------------------------------------------------------------------- inputs

def _check_settings(resamples: int, level: float) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise ValueError(f"resamples must be a whole number ≥ 1, got {resamples!r}.")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1 (e.g. 0.95), got {level!r}.")


def _ids(matrix, what: str) -> list:
    if not isinstance(matrix, pd.DataFrame):
        raise ValueError(f"{what} must be an (N × N) DataFrame indexed by network id both ways.")
    if list(matrix.index) != list(matrix.columns) and set(matrix.index) != set(matrix.columns):
        raise ValueError(f"{what} must have the same networks as rows and columns.")
    return list(matrix.index)


def _aligned(matrix, ids: list, what: str) -> np.ndarray:
    """``matrix`` as an (N, N) float array in the order of ``ids``; one sentence where its networks differ."""
    own = _ids(matrix, what)
    if set(own) != set(ids) or len(own) != len(ids):
        extra, missing = sorted(map(str, set(own) - set(ids))), sorted(map(str, set(ids) - set(own)))
        raise ValueError(f"{what} does not hold the same networks as the first similarity matrix"
                         + (f"; missing {', '.join(missing[:5])}" if missing else "")
                         + (f"; extra {', '.join(extra[:5])}" if extra else "") + ".")
    return matrix.loc[ids, ids].to_numpy(dtype=float)


def _codes(groups, ids: list) -> np.ndarray:
    frame = pd.DataFrame(index=pd.Index(ids), columns=ids)  # family_codes reads a mapping in a frame's index order
    return family_codes(frame, groups, len(ids))


# ----------------------------------------------------------------------------- the tables

def grounding_table(similarities: Mapping[str, pd.DataFrame], behaviours: Mapping[str, Mapping[str, pd.DataFrame]],
                    groups: Mapping[str, str] | Sequence[str] | None, resamples: int = 1000, seed: int = 0,
                    level: float = 0.95, distorted: Mapping[str, Mapping[str, pd.DataFrame]] | None = None,
                    max_bytes: int = MAX_BYTES) -> pd.DataFrame:
    """Spearman r of every similarity measure with every behavioural measure, per scope and pair set.

    ``similarities``: name → (N × N) similarity (DataFrames indexed by network id both
    ways; the first sets the order). ``behaviours``: scope → {measure → (N × N)}, scope
    "all" pooled over the grid and then each manipulation (:func:`behaviour_scopes`).
    ``groups``: network id → family label (``catalog.families``), or labels aligned with
    the first matrix's rows; None makes every network its own family. ``distorted``:
    similarity name → {scope → (N × N)} measured on that scope's distorted images (e.g. CKA
    on the probe images under each manipulation), each read only against behaviour in the
    scopes it holds.

    Returns the tidy table :data:`COLUMNS`, one row per (similarity, behaviour, scope,
    pairs) with pairs "all", "within families", "between families": r (over the pairs in
    the data where neither matrix is NaN), low and high (the ``level`` percentile interval
    over ``resamples`` family resamples — the same draws for every row), n_pairs,
    n_families (the families with a pair in the set), resamples (those with a defined r).
    r and the interval equal ``bootstrap.bootstrap_correlation(x, y, resamples, seed, level,
    groups, pairs)`` (its slow, literal twin). Vectorised over resamples, in blocks that keep
    the working arrays within ``max_bytes``: 5 × 3 × 9 × 3 rows of 1,000 resamples for 24
    networks take about two seconds; 329 networks (54k pairs) minutes, not hours.
    """
    _check_settings(resamples, level)
    distorted = dict(distorted or {})
    if not similarities and not distorted:
        raise ValueError("grounding_table needs at least one similarity matrix.")
    if not behaviours or not any(behaviours.values()):
        raise ValueError("grounding_table needs at least one behavioural matrix (scope → {measure → matrix}).")
    if both := sorted(set(similarities) & set(distorted)):
        raise ValueError(f"A similarity name is both plain and distorted: {', '.join(both)}; name them apart.")
    first = next(iter(similarities.values())) if similarities else next(iter(next(iter(distorted.values())).values()))
    ids = _ids(first, "A similarity matrix")
    if len(ids) < 3:
        raise ValueError(f"grounding_table needs at least three networks; got {len(ids)}.")
    codes = _codes(groups, ids)
    sims = {name: _aligned(m, ids, f"Similarity {name!r}") for name, m in similarities.items()}
    behs = {(scope, name): _aligned(m, ids, f"Behaviour {name!r} ({scope})")
            for scope, measures in behaviours.items() for name, m in measures.items()}
    bent = {(name, scope): _aligned(m, ids, f"Similarity {name!r} ({scope})")
            for name, scopes in distorted.items() for scope, m in scopes.items() if scope in behaviours}
    matrices = {("s", name): m for name, m in sims.items()}
    matrices |= {("d", name, scope): m for (name, scope), m in bent.items()}
    matrices |= {("b", scope, measure): m for (scope, measure), m in behs.items()}
    labels, specs = [], []
    for name in [*sims, *distorted]:
        for measure in dict.fromkeys(m for scope in behaviours.values() for m in scope):
            for scope, held in behaviours.items():
                kx = ("s", name) if name in sims else ("d", name, scope)
                if measure not in held or kx not in matrices:
                    continue
                for label in PAIRS:
                    labels.append({"similarity": name, "behaviour": measure, "scope": scope, "pairs": label})
                    specs.append((kx, ("b", scope, measure), label))
    results = _correlate(matrices, specs, codes, resamples, seed, level, max_bytes)
    rows = [{**label, **result} for label, result in zip(labels, results, strict=True)]
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.attrs.update({"resamples": int(resamples), "seed": int(seed), "level": level, "unit": "families",
                        "interval": "percentile"})
    return table


def per_layer(layer_matrices: Mapping[str, pd.DataFrame], behaviour: pd.DataFrame,
              groups: Mapping[str, str] | Sequence[str] | None, resamples: int = 1000, seed: int = 0,
              level: float = 0.95) -> pd.DataFrame:
    """Spearman r of a per-layer similarity with one behavioural measure, all / within /
    between families, with family intervals.

    ``layer_matrices``: layer name → (N × N) similarity (e.g. linear CKA per stage), in
    the network's order; ``behaviour``: (N × N). Returns one row per (layer, pairs):
    layer, pairs, r, low, high, n_pairs, n_families, resamples, level (as
    :func:`grounding_table`, whose draws it shares).
    """
    if not layer_matrices:
        raise ValueError("per_layer needs at least one layer's similarity matrix.")
    table = grounding_table(layer_matrices, {ALL: {"behaviour": behaviour}}, groups, resamples, seed, level)
    return table.drop(columns=["behaviour", "scope"]).rename(columns={"similarity": "layer"})
