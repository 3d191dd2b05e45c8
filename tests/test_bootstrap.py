"""The paired image bootstrap: fast paths against literal index resampling, and coverage on synthetic truth;
the network bootstrap of a matrix correlation."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.stats import norm

from paradox_utils import behaviour, bootstrap
from paradox_utils.correctness import Correctness
from paradox_utils.distortions import PAPER_GRID, clean_once
from paradox_utils.evaluation import visual_intelligence

from .test_paradox import related_matrices

CELLS = [(m, float(lv)) for m, lv in PAPER_GRID]


def latent(p: np.ndarray, n_images: int, rho: float, rng: np.random.Generator, ids=None) -> Correctness:
    """Bernoulli correctness with P(right) = p (N, C) exactly, correlated through a shared image difficulty.

    Network n is right on image i in cell c iff √ρ·d_i + √(1−ρ)·e_nci < Φ⁻¹(p_nc), d and e standard
    normal: every cell and every network sees the same d_i, as real images are hard for everyone.
    """
    d = rng.standard_normal(n_images)
    e = rng.standard_normal((*p.shape, n_images))
    right = np.sqrt(rho) * d + np.sqrt(1 - rho) * e < norm.ppf(p)[..., None]
    ids = [f"n{i}" for i in range(len(p))] if ids is None else ids
    return Correctness(list(ids), CELLS[:p.shape[1]], np.packbits(right, axis=2), n_images)


def draws(n_images: int, resamples: int, seed: int) -> np.ndarray:
    return np.concatenate(list(bootstrap.draw_indices(n_images, resamples, seed)))


def literal_accuracy(corr: Correctness, resamples: int, seed: int) -> np.ndarray:
    """(R, N, C): index the images with each draw, then take the mean — the definition of the resample."""
    x = corr.boolean()
    return np.stack([x[:, :, idx].mean(axis=2) for idx in draws(corr.n_images, resamples, seed)])


def literal_vi(acc: np.ndarray, corr: Correctness) -> np.ndarray:
    """VI through evaluation.visual_intelligence on a tidy table: (N,) for one (N, C) accuracy array."""
    rows = [(n, m, lv, acc[i, c]) for i, n in enumerate(corr.ids) for c, (m, lv) in enumerate(corr.cells)]
    table = pd.DataFrame(rows, columns=["net_id", "manipulation", "level", "accuracy"])
    return visual_intelligence(table).loc[corr.ids].to_numpy()


def literal_kappa(xa: np.ndarray, xb: np.ndarray) -> float:
    """Cohen's κ of two boolean trial arrays (any shape), pooled over all trials."""
    p_a, p_b, c_obs = xa.mean(), xb.mean(), (xa == xb).mean()
    c_exp = p_a * p_b + (1 - p_a) * (1 - p_b)
    return (c_obs - c_exp) / (1 - c_exp)


def percentile(values, level=0.95):
    tail = (1 - level) / 2 * 100
    return np.percentile(values, [tail, 100 - tail], axis=0)


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(1)
    return latent(rng.uniform(0.2, 0.9, (3, 11)), 29, 0.5, rng)  # 29 images: the last byte is partly padding


# --- the draws and the fast engine -------------------------------------------------------------------------------

def test_draws_are_seeded_and_do_not_depend_on_the_block():
    whole = draws(50, 23, seed=3)
    assert whole.shape == (23, 50) and whole.min() >= 0 and whole.max() < 50
    for block in (1, 4, 23, 100):
        assert np.array_equal(np.concatenate(list(bootstrap.draw_indices(50, 23, 3, block))), whole)
    assert not np.array_equal(draws(50, 23, seed=4), whole)
    assert np.array_equal(np.random.default_rng(3).choice(50, (23, 50)), whole)  # = index choice with replacement


# one pass; blocks of 30 of the 33 rows × 5 resamples; 1 row × 1 resample
@pytest.mark.parametrize("max_bytes", [bootstrap.MAX_BYTES, 7000, 1])
def test_resampled_hits_equal_literal_index_resampling_exactly(small, max_bytes):
    """The engine every interval uses: resampled hit counts, in whatever blocks, against indexing the images."""
    n, c, width = small.bits.shape
    blocks = bootstrap._hit_blocks(small.bits.reshape(n * c, width), small.n_images, 17, 5, max_bytes)
    fast = np.concatenate([h.reshape(-1, n, c).astype(np.float64) / small.n_images for h in blocks])
    slow = literal_accuracy(small, 17, 5)
    assert fast.shape == (17, 3, 11)
    assert np.array_equal(fast, slow)  # exact: integer counts in float32, one division in float64


def test_vi_interval_matches_the_literal_twin(small):
    got = bootstrap.vi_interval(small, resamples=40, seed=2, level=0.9)
    boot = np.stack([literal_vi(acc, small) for acc in literal_accuracy(small, 40, 2)])
    low, high = percentile(boot, 0.9)
    np.testing.assert_allclose(got["vi"], literal_vi(small.accuracy().to_numpy(), small), rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["low"], low, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["high"], high, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["se"], boot.std(axis=0, ddof=1), rtol=0, atol=1e-12)
    assert list(got.index) == small.ids and got.attrs["level"] == 0.9


def test_vi_weights_follow_the_cells_structure():
    cells = [("contrast", 0.1), ("contrast", 0.5), ("blur", 1.0)]  # VI = (mean(contrast) + blur) / 2
    assert np.allclose(bootstrap.vi_weights(cells), [0.25, 0.25, 0.5])
    assert bootstrap.vi_weights(CELLS).sum() == pytest.approx(1)


def test_delta_vi_matches_the_literal_twin(small):
    got = bootstrap.delta_vi(small, "n0", ["n1", "n2"], resamples=40, seed=7)
    boot = np.stack([literal_vi(acc, small) for acc in literal_accuracy(small, 40, 7)])
    point = literal_vi(small.accuracy().to_numpy(), small)
    np.testing.assert_allclose(got["delta"], point[1:] - point[0], rtol=0, atol=1e-12)
    for j, variant in enumerate(["n1", "n2"], start=1):
        low, high = percentile(boot[:, j] - boot[:, 0])
        assert got.loc[variant, "low"] == pytest.approx(low, abs=1e-12)
        assert got.loc[variant, "high"] == pytest.approx(high, abs=1e-12)


def test_compatibility_interval_matches_the_literal_twin(small):
    got = bootstrap.compatibility_interval(small, "n0", "n2", resamples=40, seed=3)
    x = small.boolean()
    boot = [np.corrcoef(x[0][:, idx].mean(1), x[2][:, idx].mean(1))[0, 1] for idx in draws(29, 40, 3)]
    low, high = percentile(boot)
    assert got["r"] == pytest.approx(np.corrcoef(x[0].mean(1), x[2].mean(1))[0, 1], abs=1e-12)
    assert (got["low"], got["high"]) == pytest.approx((low, high), abs=1e-12)
    assert got["resamples"] == 40


def test_kappa_interval_matches_the_literal_twin_on_chosen_cells(small):
    cells = [small.cells[1], small.cells[4], small.cells[9]]
    got = bootstrap.kappa_interval(small, "n1", "n2", cells=cells, resamples=40, seed=4)
    x = small.boolean()[:, [1, 4, 9]]
    boot = [literal_kappa(x[1][:, idx], x[2][:, idx]) for idx in draws(29, 40, 4)]  # an image brings all 3 cells
    low, high = percentile(boot)
    assert got["kappa"] == pytest.approx(literal_kappa(x[1], x[2]), abs=1e-12)
    assert (got["low"], got["high"]) == pytest.approx((low, high), abs=1e-12)
    assert got["cells"] == 3 and got["resamples"] == 40


def test_undefined_statistics_are_nan_not_errors():
    bits = np.packbits(np.ones((2, 3, 16), dtype=bool), axis=2)  # both always right: c_exp = 1, vectors constant
    corr = Correctness(["a", "b"], CELLS[:3], bits, 16)
    k = bootstrap.kappa_interval(corr, "a", "b", resamples=10)
    r = bootstrap.compatibility_interval(corr, "a", "b", resamples=10)
    assert np.isnan(k["kappa"]) and np.isnan(k["low"]) and k["resamples"] == 0
    assert np.isnan(r["r"]) and np.isnan(r["high"]) and r["resamples"] == 0


# --- properties --------------------------------------------------------------------------------------------------

def test_intervals_contain_the_point_estimate():
    rng = np.random.default_rng(11)
    corr = latent(rng.uniform(0.3, 0.95, (6, 37)), 400, 0.4, rng)
    vi = bootstrap.vi_interval(corr, resamples=300, seed=1)
    assert ((vi["low"] <= vi["vi"]) & (vi["vi"] <= vi["high"]) & (vi["low"] < vi["high"])).all()
    delta = bootstrap.delta_vi(corr, "n0", corr.ids[1:], resamples=300, seed=1)
    assert ((delta["low"] <= delta["delta"]) & (delta["delta"] <= delta["high"])).all()
    for b in corr.ids[1:]:
        r = bootstrap.compatibility_interval(corr, "n0", b, resamples=300, seed=1)
        k = bootstrap.kappa_interval(corr, "n0", b, resamples=300, seed=1)
        assert r["low"] <= r["r"] <= r["high"] and k["low"] <= k["kappa"] <= k["high"]


def test_identical_networks_differ_by_exactly_zero():
    rng = np.random.default_rng(2)
    corr = latent(rng.uniform(0.3, 0.9, (1, 37)), 200, 0.3, rng, ids=["parent"])
    twin = Correctness(["parent", "copy"], corr.cells, np.concatenate([corr.bits, corr.bits]), corr.n_images)
    got = bootstrap.delta_vi(twin, "parent", ["copy"], resamples=200).loc["copy"]
    assert (got["delta"], got["low"], got["high"]) == (0.0, 0.0, 0.0)
    assert got["verdict"] == bootstrap.NO_CHANGE
    assert bootstrap.kappa_interval(twin, "parent", "copy", resamples=50)["low"] == pytest.approx(1)


def test_a_clear_change_excludes_zero_and_a_small_one_does_not():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.3, 0.8, 37)
    corr = latent(np.stack([p, p + 0.1, p - 0.1, p + 0.001]), 1000, 0.5, rng, ids=["parent", "up", "down", "same"])
    got = bootstrap.delta_vi(corr, "parent", ["up", "down", "same"], resamples=500, seed=0)
    assert got.loc["up", "low"] > 0 and got.loc["up", "verdict"] == "increase"
    assert got.loc["down", "high"] < 0 and got.loc["down", "verdict"] == "decrease"
    assert got.loc["same", "low"] < 0 < got.loc["same", "high"] and got.loc["same", "verdict"] == bootstrap.NO_CHANGE


def test_bad_input_is_one_sentence(small):
    with pytest.raises(ValueError, match=r"^Unknown network 'zz'; the correctness holds 3 networks \(n0, n1, n2\)\.$"):
        bootstrap.delta_vi(small, "n0", ["zz"])
    with pytest.raises(ValueError, match=r"^resamples must be a whole number ≥ 1, got 0\.$"):
        bootstrap.vi_interval(small, resamples=0)
    with pytest.raises(ValueError, match="resamples must be"):
        bootstrap.vi_interval(small, resamples=2.5)
    with pytest.raises(ValueError, match=r"^level must lie strictly between 0 and 1"):
        bootstrap.kappa_interval(small, "n0", "n1", level=95)
    with pytest.raises(ValueError, match=r"^The correctness has no cell blur=7\.0"):
        bootstrap.kappa_interval(small, "n0", "n1", cells=[("blur", 7.0)])
    with pytest.raises(ValueError, match="no variants"):
        bootstrap.delta_vi(small, "n0", [])


# --- coverage on synthetic truth ---------------------------------------------------------------------------------

REPS, IMAGES, RESAMPLES, RHO = 400, 200, 250, 0.5
# The coverage estimate over REPS independent datasets has binomial sd √(0.95·0.05/400) = 0.011, so a correct
# 95 % interval lands in [0.91, 0.99] with probability > 99.9 % (±3.7 sd). A percentile bootstrap with 200
# images undercovers by about a point at most, inside the band. The wrong schemes below miss it by far.
BAND = (0.91, 0.99)


def truth():
    rng = np.random.default_rng(2024)
    parent = rng.uniform(0.35, 0.9, len(CELLS))
    variant = np.clip(parent + rng.normal(0.01, 0.03, len(CELLS)), 0.05, 0.95)
    weights = bootstrap.vi_weights(CELLS)
    return np.stack([parent, variant]), weights @ parent, weights @ variant - weights @ parent


@pytest.mark.slow
def test_paired_intervals_cover_the_true_vi_and_delta_vi_95_percent_of_the_time():
    p, true_vi, true_delta = truth()
    rng = np.random.default_rng(0)
    vi_hits = delta_hits = 0
    for rep in range(REPS):
        corr = latent(p, IMAGES, RHO, rng, ids=["parent", "variant"])
        vi = bootstrap.vi_interval(corr, resamples=RESAMPLES, seed=rep).loc["parent"]
        delta = bootstrap.delta_vi(corr, "parent", ["variant"], resamples=RESAMPLES, seed=rep).loc["variant"]
        vi_hits += vi["low"] <= true_vi <= vi["high"]
        delta_hits += delta["low"] <= true_delta <= delta["high"]
    coverage = {"vi": vi_hits / REPS, "delta": delta_hits / REPS}
    print(f"coverage over {REPS} datasets: {coverage}")
    assert BAND[0] <= coverage["vi"] <= BAND[1] and BAND[0] <= coverage["delta"] <= BAND[1], coverage


def test_the_coverage_test_fails_wrong_resampling_schemes():
    """Resampling (cell, image) pairs ignores that cells share images → too narrow for VI; resampling each network
    on its own ignores that they share images → too wide for ΔVI. 60 datasets, 100 resamples: the misses
    are tens of points."""
    p, true_vi, true_delta = truth()
    weights = bootstrap.vi_weights(CELLS)
    rng = np.random.default_rng(1)
    reps, resamples, vi_hits, delta_hits = 60, 100, 0, 0
    for rep in range(reps):
        corr = latent(p, IMAGES, RHO, rng, ids=["parent", "variant"])
        x = corr.boolean()[0]  # (C, I)
        idx = np.random.default_rng(rep).integers(0, IMAGES, (resamples, len(CELLS), IMAGES))  # per cell
        per_cell = np.take_along_axis(x[None], idx, axis=2).mean(axis=2) @ weights
        low, high = percentile(per_cell)
        vi_hits += low <= true_vi <= high
        vis = [literal_accuracy(corr.select([n]), resamples, seed=2 * rep + k)[:, 0] @ weights
               for k, n in enumerate(corr.ids)]  # a different draw per network
        low, high = percentile(vis[1] - vis[0])
        delta_hits += low <= true_delta <= high
    print(f"wrong schemes' coverage: per-cell VI {vi_hits / reps}, unpaired ΔVI {delta_hits / reps}")
    assert vi_hits / reps < BAND[0] - 0.1 and delta_hits / reps > BAND[1], (vi_hits / reps, delta_hits / reps)


# --- the network bootstrap ---------------------------------------------------------------------------------------

def test_bootstrap_correlation_interval_holds_the_estimate_of_related_matrices():
    a, b, _ = related_matrices()
    ci = bootstrap.bootstrap_correlation(a, b, resamples=200)
    assert ci["low"] <= ci["r"] <= ci["high"] and ci["low"] > 0.5


def family_driven(families: int = 6, size: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Two symmetric matrices driven only by family (within-family pairs high in both,
    between-family pairs low in both, independent noise) and the family labels."""
    rng = np.random.default_rng(seed)
    labels = [f"f{k}" for k in range(families) for _ in range(size)]
    same = np.equal.outer(labels, labels).astype(float)
    a, b = (same + rng.normal(scale=0.3, size=same.shape) for _ in range(2))
    return (a + a.T) / 2, (b + b.T) / 2, labels


def test_bootstrap_correlation_by_networks_is_families_of_one():
    a, b, _ = related_matrices()
    plain = bootstrap.bootstrap_correlation(a, b, resamples=100, seed=3)
    singles = bootstrap.bootstrap_correlation(a, b, resamples=100, seed=3, groups=[f"n{k:02d}" for k in range(12)])
    assert (plain["low"], plain["high"], plain["r"]) == (singles["low"], singles["high"], singles["r"])
    assert plain["unit"] == "networks" and singles["unit"] == "families" and singles["n_units"] == 12


def test_family_bootstrap_is_wider_than_the_network_bootstrap_when_a_family_effect_drives_both():
    """Both matrices carry one random effect per family (a_ij = u_f(i) + u_f(j) + noise): the
    correlation rests on 6 independent values, which resampling 24 networks as if independent hides."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 4)
    u = rng.normal(size=6)[labels]
    a, b = (u[:, None] + u[None] + rng.normal(scale=0.5, size=(24, 24)) for _ in range(2))
    a, b = (a + a.T) / 2, (b + b.T) / 2
    networks = bootstrap.bootstrap_correlation(a, b, resamples=300, seed=1)
    families = bootstrap.bootstrap_correlation(a, b, resamples=300, seed=1, groups=labels)
    assert families["n_units"] == 6 and networks["n_units"] == 24
    assert families["low"] <= families["r"] <= families["high"]
    assert families["high"] - families["low"] > 1.5 * (networks["high"] - networks["low"])


def test_family_bootstrap_subsets_use_the_original_families():
    a, b, labels = family_driven(seed=2)
    within = bootstrap.bootstrap_correlation(a, b, resamples=50, groups=labels, pairs="within")
    between = bootstrap.bootstrap_correlation(a, b, resamples=50, groups=labels, pairs="between")
    i, j = np.triu_indices(24, 1)
    same = np.array(labels)[i] == np.array(labels)[j]
    assert within["r"] == pytest.approx(stats.spearmanr(a[i, j][same], b[i, j][same])[0])
    assert between["r"] == pytest.approx(stats.spearmanr(a[i, j][~same], b[i, j][~same])[0])
    frame = pd.DataFrame(a, index=[f"n{k}" for k in range(24)], columns=[f"n{k}" for k in range(24)])
    by_id = dict(zip(frame.index, labels, strict=True))
    assert bootstrap.bootstrap_correlation(frame, b, resamples=50, groups=by_id, pairs="within")["r"] == within["r"]
    with pytest.raises(ValueError, match="One family label per network"):
        bootstrap.bootstrap_correlation(a, b, groups=labels[:3])


def test_kappa_interval_counts_each_clean_image_once_by_default():
    rng = np.random.default_rng(8)
    p = rng.uniform(0.2, 0.9, (2, len(CELLS)))
    corr = latent(p, 40, 0.5, rng)
    once = clean_once(CELLS)
    got = bootstrap.kappa_interval(corr, "n0", "n1", resamples=30, seed=2)
    assert got == bootstrap.kappa_interval(corr, "n0", "n1", cells=once, resamples=30, seed=2)
    assert got["cells"] == 30 and got["kappa"] == pytest.approx(
        behaviour.error_consistency_matrix(corr).loc["n0", "n1"], abs=1e-12)  # the interval's κ is the matrix's
