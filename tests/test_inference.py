"""Tests with the family as the unit, on synthetic populations whose answers are known."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

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


def test_power_simulation_recovers_a_planted_effect_at_the_stated_rate():
    a, b, labels = family_driven(families=8, size=3, seed=5)
    found = inference.detectable_correlation(a, b, labels, simulations=60, permutations=99, seed=0)
    assert np.isfinite(found["r"]) and found["power_reached"] >= 0.8 and 0 < found["rho"] <= 1
    curve = found["curve"]
    assert curve["power"].iloc[0] <= 0.2  # ρ = 0: the test's size, about alpha
    again = inference.detectable_correlation(a, b, labels, simulations=60, permutations=99, seed=7,
                                             effects=[found["rho"]])
    assert again["curve"]["power"].iloc[0] >= 0.6  # an independent re-simulation at that effect: near the rate


def test_power_says_why_when_the_design_cannot_reject():
    a, b, _ = family_driven(families=2, size=2)
    found = inference.detectable_correlation(a, b, [0, 0, 1, 1], simulations=5, permutations=9)
    assert np.isnan(found["r"]) and "distinct family permutations" in found["reason"]
