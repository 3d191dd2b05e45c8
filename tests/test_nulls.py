"""Null distributions and the thresholds read from them: similarity nulls from untrained
networks, the within-manipulation shuffle for compatibility, simulated independent errors
for κ, and the threshold rule."""

import numpy as np
import pandas as pd
import pytest
import torch

from paradox_utils import behaviour, models, nulls
from paradox_utils import similarity as S
from paradox_utils.distortions import PAPER_GRID, clean_once
from paradox_utils.evaluation import accuracy_vectors

CELLS = [(m, float(lv)) for m, lv in PAPER_GRID]
MANIPULATIONS = list(dict.fromkeys(m for m, _ in CELLS))


def tidy(vectors: dict[str, np.ndarray], n_images: int = 1000) -> pd.DataFrame:
    """The tidy accuracy table of {net_id: (37,) accuracies over the paper's cells}."""
    return pd.DataFrame([(k, m, lv, float(x), n_images) for k, v in vectors.items()
                         for (m, lv), x in zip(CELLS, v, strict=True)],
                        columns=["net_id", "manipulation", "level", "accuracy", "n_images"])


def make_population(severity: float = 0.0) -> pd.DataFrame:
    """12 networks that share the manipulations' difficulty (a common per-manipulation
    mean, small jitter per network) and otherwise have independent level profiles —
    except a and b, which share one level-by-level profile. ``severity``: the size of a
    fall of accuracy over each manipulation's levels common to every network (trained
    networks all have one)."""
    rng = np.random.default_rng(0)
    means = dict(zip(MANIPULATIONS, np.linspace(0.3, 0.85, len(MANIPULATIONS)), strict=True))
    fall = np.concatenate([np.linspace(severity / 2, -severity / 2, sum(m == name for m, _ in CELLS))
                           for name in MANIPULATIONS])  # PAPER_GRID lists each manipulation's levels together
    shared = rng.normal(0, 0.05, len(CELLS))
    names = ["a", "b", "c", "d", *[f"n{i}" for i in range(8)]]
    vectors = {}
    for name in names:
        jitter = {m: rng.normal(0, 0.02) for m in MANIPULATIONS}
        profile = shared + rng.normal(0, 0.01, len(CELLS)) if name in "ab" else rng.normal(0, 0.05, len(CELLS))
        vectors[name] = np.array([means[m] + jitter[m] for m, _ in CELLS]) + fall + profile
    return tidy(vectors)


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    return make_population()


def relative_r(acc: pd.DataFrame, x: str, y: str) -> float:
    vectors = accuracy_vectors(acc)
    residual = vectors - vectors.mean(axis=0)  # the population's per-cell mean subtracted
    return float(np.corrcoef(residual.loc[x], residual.loc[y])[0, 1])


# ----------------------------------------------------------------------------- compatibility null

def test_compatibility_null_separates_shared_profiles_from_shared_difficulty(population):
    comp = behaviour.compatibility(population)
    null = nulls.compatibility_null(population, permutations=100)
    assert null.shape == (100 * 12 * 11 // 2,)
    p99 = nulls.null_threshold(null)
    # c and d share only the manipulations' difficulty: compatible by the fixed 0.5, not above chance
    assert 0.5 < comp.loc["c", "d"] < p99
    assert comp.loc["a", "b"] > p99  # a and b share their level-by-level profile
    assert null.mean() > 0.5  # the shared manipulation means alone make raw compatibility high


def test_relative_compatibility_null(population):
    # with a fall over the levels that every network shares, as trained networks do
    falling = make_population(severity=0.3)
    raw = behaviour.compatibility(falling)
    assert raw.loc["c", "d"] > nulls.null_threshold(nulls.compatibility_null(falling))  # raw: all "compatible"
    for acc in (population, falling):
        null = nulls.compatibility_null(acc, permutations=100, relative=True)
        p99 = nulls.null_threshold(null)
        assert relative_r(acc, "a", "b") > p99 > relative_r(acc, "c", "d")
        assert abs(np.median(null)) < 0.15  # the shared difficulty is gone: the null sits near 0 (−1/(N−1) bias)
    with pytest.raises(ValueError, match="at least three networks"):
        nulls.compatibility_null(population[population["net_id"].isin(["a", "b"])], relative=True)


def test_compatibility_null_shuffles_only_within_manipulations():
    rng = np.random.default_rng(1)
    # each network constant across the levels of a manipulation: a within-manipulation shuffle changes nothing
    flat = {}
    for i in range(4):
        means = dict(zip(MANIPULATIONS, rng.uniform(0.2, 0.9, len(MANIPULATIONS)), strict=True))
        flat[f"n{i}"] = np.array([means[m] for m, _ in CELLS])
    acc = tidy(flat)
    observed = behaviour.compatibility(acc).to_numpy()[np.triu_indices(4, 1)]
    null = nulls.compatibility_null(acc, permutations=5).reshape(5, -1)
    np.testing.assert_array_equal(null, np.tile(observed, (5, 1)))  # one Pearson rule for both


def test_compatibility_null_is_seeded_and_refuses_gaps(population):
    one = nulls.compatibility_null(population, permutations=3, seed=4)
    np.testing.assert_array_equal(one, nulls.compatibility_null(population, permutations=3, seed=4))
    assert not np.array_equal(one, nulls.compatibility_null(population, permutations=3, seed=5))
    gap = population.drop(index=population.index[(population["net_id"] == "c")][:1])
    with pytest.raises(ValueError, match="every network in every cell; missing cells for: c"):
        nulls.compatibility_null(gap)
    with pytest.raises(ValueError, match="at least one permutation"):
        nulls.compatibility_null(population, permutations=0)


# ----------------------------------------------------------------------------- κ null

def brute_kappa(p_a: np.ndarray, p_b: np.ndarray, n: int, rng: np.random.Generator) -> float:
    """κ pooled over cells from explicit independent trials (the definition, slowly)."""
    a = rng.random((len(p_a), n)) < p_a[:, None]
    b = rng.random((len(p_b), n)) < p_b[:, None]
    pa, pb = a.mean(), b.mean()
    c_exp = pa * pb + (1 - pa) * (1 - pb)
    return (np.mean(a == b) - c_exp) / (1 - c_exp)


def test_kappa_null_is_centred_at_zero_and_narrows_with_images():
    rng = np.random.default_rng(2)
    # flat profiles: every cell equally hard, so independent errors give κ ≈ 0
    acc = tidy({f"n{i}": np.full(len(CELLS), rng.uniform(0.5, 0.9)) for i in range(6)}, n_images=100)
    few = nulls.kappa_null(acc, pairs=4000, seed=0)
    many = nulls.kappa_null(acc, n_images=10_000, pairs=4000, seed=0)
    assert few.shape == many.shape == (4000,)
    for values in (few, many):
        assert abs(values.mean()) < 4 * values.std() / np.sqrt(len(values))
    assert 7 < few.std() / many.std() < 13  # ∝ 1/√images: √100 = 10
    assert nulls.kappa_null(acc, pairs=None).shape == (15,)  # every pair once


def test_kappa_null_pooled_over_cells_carries_shared_difficulty():
    levels = np.linspace(0.9, 0.1, len(CELLS))  # both fall from 0.9 to 0.1 over the cells
    acc = tidy({"a": levels, "b": levels * 0.95}, n_images=200)
    null = nulls.kappa_null(acc, pairs=3000, seed=1)
    pooled = [CELLS.index(c) for c in clean_once(CELLS)]  # 30 cells: the clean images once, as κ pools them
    p_a, p_b = levels[pooled], levels[pooled] * 0.95
    mean_a, mean_b = p_a.mean(), p_b.mean()
    expected = 2 * np.mean((p_a - mean_a) * (p_b - mean_b)) / (1 - mean_a * mean_b - (1 - mean_a) * (1 - mean_b))
    assert expected > 0.15 and null.mean() == pytest.approx(expected, abs=0.005)
    rng = np.random.default_rng(3)
    brute = np.array([brute_kappa(p_a, p_b, 200, rng) for _ in range(300)])  # the definition, trial by trial
    assert brute.mean() == pytest.approx(null.mean(), abs=0.005)
    assert brute.std() == pytest.approx(null.std(), rel=0.15)


def test_kappa_null_input_checks():
    acc = tidy({"a": np.full(37, 0.5), "b": np.full(37, 0.6)})
    with pytest.raises(ValueError, match="single n_images"):
        nulls.kappa_null(acc.drop(columns="n_images"))
    with pytest.raises(ValueError, match="positive whole number"):
        nulls.kappa_null(acc, n_images=0)
    with pytest.raises(ValueError, match=r"fractions in \[0, 1\]"):
        nulls.kappa_null(acc.assign(accuracy=acc["accuracy"] * 100))


# ----------------------------------------------------------------------------- similarity null

@pytest.mark.slow
def test_similarity_null_floor_and_a_related_pair_above_it():
    state = torch.random.get_rng_state()
    null = S.null_distribution("resnet20", "paper", seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random stream is untouched
    assert null.shape == (32 * 31 // 2,) and 0.05 < null.mean() < 0.3
    p99 = nulls.null_threshold(null)
    assert null.mean() < p99 < null.max() + 1e-12
    torch.manual_seed(123)
    parent = models.build("resnet20").eval()
    relative = models.build("resnet20").eval()
    with torch.no_grad():  # a "trained-looking" relative: the parent's weights plus as much fresh noise
        for mine, theirs in zip(relative.parameters(), parent.parameters(), strict=True):
            mine.mul_(0.5).add_(theirs)
    stranger = models.build("resnet20").eval()
    assert S.layer_similarities(parent, relative).mean() > p99
    assert null.min() <= S.layer_similarities(parent, stranger).mean() < p99  # an unrelated draw reads as chance


@pytest.mark.slow
def test_similarity_null_every_measure():
    images = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for method in ("hungarian", "coupled", "cka"):
        values = S.null_distribution("resnet20", method, n_networks=4, images=images)
        assert values.shape == (6,) and np.all((values > 0) & (values < 1)), method
    with pytest.raises(ValueError, match="probe images"):
        S.null_distribution("resnet20", "cka", n_networks=4)
    with pytest.raises(ValueError, match="at least two networks"):
        S.null_distribution("resnet20", "paper", n_networks=1)


# ----------------------------------------------------------------------------- thresholds and quadrants

def test_null_threshold_and_threshold_rule():
    values = np.linspace(0, 1, 101)
    assert nulls.null_threshold(values) == pytest.approx(0.99)
    assert nulls.null_threshold(np.append(values, np.nan)) == pytest.approx(0.99)  # NaNs ignored
    with pytest.raises(ValueError, match="at least 100 finite null values"):
        nulls.null_threshold(values[:99])
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        nulls.null_threshold(values, 1.0)
    assert nulls.threshold(0.5) == (0.5, "fixed")
    assert nulls.threshold(0.5, values) == (pytest.approx(0.99), "null p99")
    assert nulls.threshold(0.5, values, 0.95) == (pytest.approx(0.95), "null p95")


def test_behaviour_nulls_leave_out_what_a_small_population_cannot_give():
    rng = np.random.default_rng(0)
    rows = [{"net_id": f"n{i}", "manipulation": n, "level": lv, "accuracy": float(rng.uniform(0.1, 0.9)),
             "n_images": 100} for i in range(2) for n, lv in PAPER_GRID]
    with pytest.warns(RuntimeWarning, match="no null for relative compatibility"):
        found = nulls.behaviour_nulls(pd.DataFrame(rows), permutations=60, seed=0)
    assert set(found) == {"compatibility", "kappa"} and all(len(v) >= 60 for v in found.values())
    constant = [{**row, "accuracy": 0.1} for row in rows]  # every network at chance everywhere: r undefined
    with pytest.warns(RuntimeWarning, match="null of compatibility has no defined value"):
        found = nulls.behaviour_nulls(pd.DataFrame(constant), permutations=60, seed=0)
    assert "compatibility" not in found and all(len(v) for v in found.values())


def test_kappa_null_pools_the_cells_the_observed_kappa_pools():
    """The null drops the seven repeated identity cells as behaviour.error_consistency_matrix does:
    the same draws as on a table that never had them."""
    rng = np.random.default_rng(4)
    acc = tidy({f"n{i}": rng.uniform(0.2, 0.9, len(CELLS)) for i in range(4)}, n_images=50)
    repeated = [c for c in CELLS if c not in clean_once(CELLS)]
    assert len(repeated) == 7 and ("contrast", 1.0) not in repeated
    without = acc[~acc[["manipulation", "level"]].apply(tuple, axis=1).isin(repeated)]
    np.testing.assert_array_equal(nulls.kappa_null(acc, pairs=200, seed=3), nulls.kappa_null(without, pairs=200,
                                                                                              seed=3))
