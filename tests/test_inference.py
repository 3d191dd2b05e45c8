"""Tests with the family as the unit, on synthetic populations whose answers are known."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata, spearmanr

from paradox_utils import inference


def symmetric(m: np.ndarray) -> np.ndarray:
    m = (m + m.T) / 2
    np.fill_diagonal(m, 1.0)
    return m


def family_driven(families=8, size=4, seed=0):
    """Similarity and behaviour driven only by family: within-family pairs high in both, between
    low in both, independent noise on each."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(families), size)
    same = np.equal.outer(labels, labels).astype(float)
    a = symmetric(same + rng.normal(scale=0.3, size=same.shape))
    b = symmetric(same + rng.normal(scale=0.3, size=same.shape))
    return a, b, labels


def within_association(families=8, size=4, seed=0, strength=1.0):
    """A real association beyond lineage: each network has a trait t; a pair's similarity and
    behaviour both carry −|t_i − t_j| (plus the family offset and noise)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(families), size)
    same = np.equal.outer(labels, labels).astype(float)
    t = rng.normal(size=len(labels))
    shared = -np.abs(t[:, None] - t[None])
    a = symmetric(same + strength * shared + rng.normal(scale=0.3, size=same.shape))
    b = symmetric(same + strength * shared + rng.normal(scale=0.3, size=same.shape))
    return a, b, labels


def test_lineage_alone_is_significant_for_networks_and_not_for_families():
    a, b, labels = family_driven()
    networks = inference.mantel(a, b, permutations=499)
    families = inference.mantel(a, b, permutations=499, groups=labels)
    assert networks["r"] > 0.1 and networks["p"] < 0.01 and networks["unit"] == "networks"
    assert families["r"] == networks["r"] and families["p"] > 0.05 and families["unit"] == "families"
    assert families["n_families"] == 8 and families["distinct"] == math.factorial(8) * math.factorial(4) ** 8


def test_a_real_association_beyond_lineage_is_detected_by_the_family_test():
    a, b, labels = within_association()
    assert inference.mantel(a, b, permutations=499, groups=labels)["p"] < 0.01


def test_family_orders_keep_within_and_between_pairs():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 3, 4, 4])
    rng = np.random.default_rng(0)
    same = np.equal.outer(labels, labels)
    for order in inference.family_orders(labels, 50, rng):
        assert sorted(order) == list(range(10))
        assert (same[np.ix_(order, order)] == same).all()  # a family's slots get one family's members
    assert inference.permutation_count(labels) == 2 * 6 ** 2 * 2 * 2  # 2 of size 3, 2 of size 1, 1 of size 2
    every = inference.all_family_orders(labels)
    assert every.shape == (inference.permutation_count(labels), 10) and list(every[0]) == list(range(10))
    assert len({tuple(o) for o in every}) == len(every)  # all distinct
    assert all((same[np.ix_(o, o)] == same).all() and sorted(o) == list(range(10)) for o in every)
    drawn = {tuple(o) for o in inference.family_orders(labels, 2000, rng)}
    assert drawn <= {tuple(o) for o in every} and len(drawn) > 0.9 * len(every)  # the draws come from that set


def test_small_designs_compare_every_order_exactly():
    """Three families of two allow 3! · 2³ = 48 orders: with more permutations asked, each is
    compared once and p is (k + 1) / 48, here checked against the definition order by order."""
    a, b, labels = within_association(families=3, size=2, seed=4)
    test = inference.mantel(a, b, permutations=999, groups=labels)
    assert test["exact"] and test["distinct"] == 48 and test["permutations"] == 47
    i, j = np.triu_indices(6, 1)
    observed = spearmanr(a[i, j], b[i, j])[0]
    literal = [spearmanr(a[i, j], b[np.ix_(o, o)][i, j])[0] for o in inference.all_family_orders(labels)]
    assert test["p"] == pytest.approx(sum(abs(r) >= abs(observed) - 1e-12 for r in literal) / 48)
    assert test["p"] >= 1 / 48  # the floor of a design with 48 orders
    drawn = inference.mantel(a, b, permutations=20, groups=labels)  # fewer asked than there are: drawn
    assert not drawn["exact"] and drawn["permutations"] == 20
    partial = inference.partial_mantel(a, b, {"same family": np.equal.outer(labels, labels)}, permutations=999,
                                       groups=labels)
    assert partial["exact"] and partial["permutations"] == 47 and partial["p"] >= 1 / 48
    one = inference.mantel(a[:5, :5], b[:5, :5], groups=[0] * 5)  # one family: its members shuffled, 5! orders
    assert one["exact"] and one["distinct"] == 120 and one == {**inference.mantel(a[:5, :5], b[:5, :5]),
                                                               "n_families": 1, "unit": "families"}


def test_family_permutations_ranked_equal_literal():
    """The fast path of the Mantel test (ranks once) with whole-family orders against the definition."""
    a, b, labels = within_association(families=5, size=3, seed=6)
    b = b.round(1)  # ties
    orders = list(inference.family_orders(labels, 100, np.random.default_rng(2)))
    fast = np.array(list(inference._permuted_ranked(a, b, orders)))
    slow = np.array(list(inference._permuted_literal(a, b, orders)))
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    assert fast.std() > 0.05


def test_network_permutations_are_the_classical_mantel():
    a, b, _ = family_driven(families=3, size=4, seed=1)
    explicit = inference.mantel(a, b, permutations=99, seed=4, groups=[f"n{k}" for k in range(12)])
    plain = inference.mantel(a, b, permutations=99, seed=4)
    assert explicit["p"] == plain["p"] and explicit["r"] == plain["r"]
    rng = np.random.default_rng(4)
    observed = plain["r"]
    literal = [np.corrcoef(rankdata(a[np.triu_indices(12, 1)]),
                           rankdata(b[np.ix_(o, o)][np.triu_indices(12, 1)]))[0, 1]
               for o in (rng.permutation(12) for _ in range(99))]
    assert plain["p"] == (sum(abs(r) >= abs(observed) - 1e-12 for r in literal) + 1) / 100


def test_holm_adjusts_as_stated():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.5])
    expected = np.array([0.04, 0.09, 0.09, np.nan, 0.5])  # sorted .01 .03 .04 .5 × 4 3 2 1, made monotone
    assert np.allclose(inference.holm(p), expected, equal_nan=True)
    series = pd.Series([0.2, 0.001], index=["x", "y"])
    assert inference.holm(series).to_dict() == pytest.approx({"x": 0.2, "y": 0.002})
    rng = np.random.default_rng(0)
    for _ in range(20):  # the literal rule: step down, each p_(k)·(m−k+1), never below the one before
        values = rng.uniform(size=7)
        order = np.argsort(values)
        literal, running = np.empty(7), 0.0
        for k, index in enumerate(order):
            running = max(running, min(1.0, values[index] * (7 - k)))
            literal[index] = running
        assert np.allclose(inference.holm(values), literal)


def test_partial_mantel_removes_what_training_data_carries_and_keeps_a_real_association():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(8), 3)
    data = rng.integers(0, 2, len(labels))  # two training sets, drawn per network
    same_data = np.equal.outer(data, data).astype(float)
    same_family = np.equal.outer(labels, labels).astype(float)
    covariates = {"same family": same_family, "same training data": same_data}
    a = symmetric(same_data + rng.normal(scale=0.3, size=same_data.shape))  # both driven by the data only
    b = symmetric(same_data + rng.normal(scale=0.3, size=same_data.shape))
    assert inference.mantel(a, b, permutations=299)["p"] < 0.01
    carried = inference.partial_mantel(a, b, covariates, permutations=299, groups=labels)
    assert abs(carried["r"]) < 0.15 and carried["p"] > 0.05 and carried["covariates"] == list(covariates)
    t = rng.normal(size=len(labels))
    shared = -np.abs(t[:, None] - t[None])
    real = inference.partial_mantel(a + shared, b + shared, covariates, permutations=299, groups=labels)
    assert real["r"] > 0.3 and real["p"] < 0.01


def test_partial_mantel_keeps_its_size_when_the_covariate_drives_both():
    """Null runs where a shared covariate (training data) drives both matrices and nothing else
    links them: the residual permutation rejects about alpha of the time."""
    rng = np.random.default_rng(8)
    labels = np.repeat(np.arange(6), 3)
    rejected = 0
    for _ in range(40):
        data = rng.integers(0, 3, len(labels))
        same_data = np.equal.outer(data, data).astype(float)
        a = symmetric(2 * same_data + rng.normal(scale=0.5, size=same_data.shape))
        b = symmetric(2 * same_data + rng.normal(scale=0.5, size=same_data.shape))
        test = inference.partial_mantel(a, b, {"same training data": same_data}, permutations=99,
                                        seed=int(rng.integers(1000)), groups=labels)
        rejected += test["p"] < 0.05
    assert rejected <= 6  # 40 runs at alpha = 0.05: 2 expected, 7 or more has probability < 1 %


def test_partial_mantel_fast_path_is_the_definition():
    """Each permutation's residualisation by the precomputed projector equals a fresh least-squares fit."""
    a, b, labels = within_association(families=5, size=3, seed=2)
    covariates = {"same family": np.equal.outer(labels, labels).astype(float)}
    fast = inference.partial_mantel(a, b, covariates, permutations=99, seed=1, groups=labels)
    i, j = np.triu_indices(15, 1)
    design = np.column_stack([np.ones(len(i)), covariates["same family"][i, j]])

    def residual(v):
        return v - design @ np.linalg.lstsq(design, v, rcond=None)[0]

    rx = np.zeros((15, 15))
    rx[i, j] = residual(rankdata(a[i, j]))
    rx[j, i] = rx[i, j]
    ry = residual(rankdata(b[i, j]))
    observed = np.corrcoef(rx[i, j], ry)[0, 1]
    orders = inference.family_orders(labels, 99, np.random.default_rng(1))
    hits = sum(abs(np.corrcoef(residual(rx[np.ix_(o, o)][i, j]), ry)[0, 1]) >= abs(observed) - 1e-12 for o in orders)
    assert fast["r"] == pytest.approx(observed) and fast["p"] == (hits + 1) / 100


def blocks_of(labels: np.ndarray) -> np.ndarray:
    """Each pair's block (its two families, unordered), numbered, over the upper triangle."""
    i, j = np.triu_indices(len(labels), 1)
    keys = [(min(labels[a], labels[b]), max(labels[a], labels[b])) for a, b in zip(i, j, strict=True)]
    return np.unique(np.array(keys), axis=0, return_inverse=True)[1].ravel()


def literal_power(a, b, labels, rho, simulations, permutations, seed, alpha=0.05):
    """The power simulation by its description, pair by pair, each simulated run tested by
    inference.mantel with groups: the slow twin of detectable_correlation's vectorised tests."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    i, j = np.triu_indices(n, 1)
    blocks = blocks_of(labels)
    means = {k: (a[i, j][blocks == k].mean(), b[i, j][blocks == k].mean()) for k in set(blocks)}
    signal = a[i, j] - np.array([means[k][0] for k in blocks])
    noise = b[i, j] - np.array([means[k][1] for k in blocks])
    lineage = np.zeros((n, n))
    lineage[i, j] = [means[k][1] for k in blocks]
    lineage += lineage.T
    rejected, achieved = 0, []
    for run in range(simulations):
        order = next(inference.family_orders(labels, 1, rng))
        shuffled = rng.permutation(noise)
        shuffled = (shuffled - shuffled.mean()) / shuffled.std()
        simulated = np.zeros((n, n))
        simulated[i, j] = (lineage[np.ix_(order, order)][i, j]
                           + noise.std() * (rho * signal / signal.std() + np.sqrt(1 - rho ** 2) * shuffled))
        simulated += simulated.T
        test = inference.mantel(a, simulated, permutations, seed=run, groups=labels)
        rejected += test["p"] < alpha
        achieved.append(test["r"])
    return rejected / simulations, float(np.median(achieved))


@pytest.mark.slow
def test_power_simulation_recovers_a_planted_effect_at_the_stated_rate():
    a, b, labels = family_driven(families=8, size=3, seed=5)
    found = inference.detectable_correlation(a, b, labels, simulations=200, permutations=99, seed=0)
    assert np.isfinite(found["r"]) and found["power_reached"] >= 0.8 and 0 < found["rho"] <= 1
    curve = found["curve"]
    assert curve["power"].iloc[0] <= 0.1  # ρ = 0: the test's size, about alpha
    assert (curve["power"].iloc[:-1] < 0.8).all() and list(curve["rho"]) == pytest.approx(
        np.linspace(0, 1, 11)[:len(curve)])  # the grid stops at the first effect reaching the power
    rate, median_r = literal_power(a, b, labels, found["rho"], simulations=120, permutations=99, seed=11)
    assert rate >= 0.68 and abs(rate - found["power_reached"]) <= 0.15  # independent runs: the stated rate
    assert median_r == pytest.approx(found["r"], abs=0.05)
    null_rate, _ = literal_power(a, b, labels, 0.0, simulations=120, permutations=99, seed=12)
    assert null_rate <= 0.12  # no planted effect: about alpha


def between_family_association(families=8, size=3, seed=0):
    """Similarity and behaviour both follow a family-level trait u: −|u_f − u_g| between families
    f and g, high within; an association the family test can see (between families)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(families), size)
    u = rng.normal(size=families)[labels]
    shared = -np.abs(u[:, None] - u[None]) + 2 * np.equal.outer(labels, labels)
    a = symmetric(shared + rng.normal(scale=0.3, size=shared.shape))
    b = symmetric(shared + rng.normal(scale=0.3, size=shared.shape))
    return a, b, labels


def test_power_at_no_effect_is_the_size_even_when_the_families_carry_an_association():
    """The behaviour's family structure is handed to the families at random in each simulated
    run, so with ρ = 0 the test rejects about alpha of the time even where the observed block
    means follow the similarity's (taken as they stand, they would be rejected every time)."""
    a, b, labels = between_family_association()
    assert inference.mantel(a, b, permutations=199, groups=labels)["p"] < 0.05  # the observed data: associated
    null = inference.detectable_correlation(a, b, labels, simulations=300, permutations=99, seed=2, effects=[0.0])
    assert null["curve"]["power"].iloc[0] <= 0.1 and null["reason"].startswith("no planted effect")


def test_vectorised_power_tests_are_the_definition():
    """_simulated_tests (x's ranks permuted once per order, one product for all runs) against
    Spearman r and the permutation p computed run by run and order by order."""
    a, b, labels = within_association(families=4, size=3, seed=3)
    rng = np.random.default_rng(0)
    i, j = np.triu_indices(12, 1)
    simulated = b[i, j] + rng.normal(scale=0.5, size=(6, len(i)))
    simulated[0, :5] = simulated[0, 5]  # ties
    orders = np.array(list(inference.family_orders(labels, 49, rng)))
    r, p = inference._simulated_tests(a, simulated, orders)
    for s, values in enumerate(simulated):
        y = np.zeros((12, 12))
        y[i, j] = values
        y += y.T
        observed = spearmanr(a[i, j], values)[0]
        inverse = np.argsort(orders, axis=1)  # r(x moved by π, y) = r(x, y moved by π⁻¹)
        moved = [spearmanr(a[i, j], y[np.ix_(o, o)][i, j])[0] for o in inverse]
        assert r[s] == pytest.approx(observed, abs=1e-12)
        assert p[s] == (sum(abs(m) >= abs(observed) - 1e-12 for m in moved) + 1) / 50


def test_power_says_why_when_the_design_cannot_reject():
    a, b, _ = family_driven(families=2, size=2)
    found = inference.detectable_correlation(a, b, [0, 0, 1, 1], simulations=5, permutations=9)
    assert np.isnan(found["r"]) and "distinct family permutations" in found["reason"]
