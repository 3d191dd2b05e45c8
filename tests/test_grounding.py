"""Each similarity measure against behaviour: the vectorised family bootstrap against its literal twin
(bootstrap.bootstrap_correlation), all / within / between families, per scope and per layer."""

import time
import warnings

import numpy as np
import pandas as pd
import pytest

from paradox_utils import behaviour, bootstrap, grounding
from paradox_utils.correctness import Correctness
from paradox_utils.distortions import PAPER_GRID

IDS = [f"n{i:02d}" for i in range(12)]
FAMILY = {net: f"f{i // 3}" for i, net in enumerate(IDS)}  # 4 families of 3


def symmetric(values: np.ndarray, ids=IDS) -> pd.DataFrame:
    m = (values + values.T) / 2
    np.fill_diagonal(m, 1.0)
    return pd.DataFrame(m, index=pd.Index(ids, name="net_id"), columns=list(ids))


def family_population(rng, within: float, between: float, n_families: int = 6, size: int = 4):
    """Similarity and behaviour that share ``between`` · a family-pair effect and ``within`` · a
    pair effect inside families, plus independent noise each."""
    ids = [f"n{i:02d}" for i in range(n_families * size)]
    family = {net: f"f{i // size}" for i, net in enumerate(ids)}
    codes = np.arange(len(ids)) // size
    block = rng.normal(size=(n_families, n_families))
    shared = between * block[codes][:, codes] + within * rng.normal(size=(len(ids), len(ids))) * (
        codes[:, None] == codes[None, :])
    sim = symmetric(shared + rng.normal(size=(len(ids), len(ids))), ids)
    beh = symmetric(shared + rng.normal(size=(len(ids), len(ids))), ids)
    return sim, beh, family


def test_rows_equal_the_literal_family_bootstrap_with_nans_and_shuffled_ids():
    rng = np.random.default_rng(0)
    sims = {"a": symmetric(rng.normal(size=(12, 12))), "b": symmetric(rng.normal(size=(12, 12)))}
    gappy = symmetric(rng.normal(size=(12, 12)))
    gappy.loc["n04", :] = np.nan
    gappy.loc[:, "n04"] = np.nan  # a network with a constant vector: NaN row and column
    scrambled = symmetric(rng.normal(size=(12, 12))).loc[IDS[::-1], IDS[::-1]]  # its own order
    behaviours = {"all": {"compat": gappy, "kappa": scrambled},
                  "blur": {"compat": symmetric(rng.normal(size=(12, 12)))}}
    table = grounding.grounding_table(sims, behaviours, FAMILY, resamples=80, seed=3)
    assert list(table.columns) == grounding.COLUMNS and len(table) == 2 * 3 * 3
    assert list(table["pairs"].unique()) == ["all", "within families", "between families"]
    for _, row in table.iterrows():
        y = behaviours[row.scope][row.behaviour]
        want = bootstrap.bootstrap_correlation(sims[row.similarity], y.loc[IDS, IDS], 80, 3, 0.95, groups=FAMILY,
                                               pairs=grounding.PAIRS[row.pairs])
        got = row[["r", "low", "high"]].to_numpy(dtype=float)
        np.testing.assert_allclose(got, [want["r"], want["low"], want["high"]], atol=1e-12)
        assert row.resamples == want["resamples"] and row.level == 0.95
    nan_rows = table[table["behaviour"].eq("compat") & table["scope"].eq("all")].set_index(["similarity", "pairs"])
    # 66 pairs, 12 within 4 families of 3; n04 (family f1) loses its 2 within and 9 between pairs
    assert nan_rows.loc[("a", "all"), "n_pairs"] == 55 and nan_rows.loc[("a", "within families"), "n_pairs"] == 10
    assert nan_rows.loc[("a", "between families"), "n_pairs"] == 45
    assert (table["n_families"] == 4).all() and table.attrs["unit"] == "families"


def test_within_and_between_tell_a_family_effect_from_a_pair_effect():
    """Similarity that tracks behaviour only through the families (shared family blocks) correlates
    across all pairs and between families, not within; the reverse population within only."""
    rng = np.random.default_rng(1)
    sim, beh, family = family_population(rng, within=0.0, between=2.0)
    table = grounding.grounding_table({"s": sim}, {"all": {"b": beh}}, family, resamples=200, seed=0)
    row = table.set_index("pairs")
    assert row.loc["between families", "r"] > 0.5 and row.loc["between families", "low"] > 0
    assert row.loc["within families", "low"] < 0 < row.loc["within families", "high"]
    sim, beh, family = family_population(rng, within=3.0, between=0.0)
    row = grounding.grounding_table({"s": sim}, {"all": {"b": beh}}, family, resamples=200, seed=0).set_index("pairs")
    assert row.loc["within families", "r"] > 0.6 and row.loc["within families", "low"] > 0
    assert row.loc["between families", "low"] < 0 < row.loc["between families", "high"]


def test_distorted_similarity_is_read_against_its_own_scope():
    rng = np.random.default_rng(2)
    base = symmetric(rng.normal(size=(12, 12)))
    per_scope = {"blur": symmetric(rng.normal(size=(12, 12))), "gamma": symmetric(rng.normal(size=(12, 12)))}
    behaviours = {"all": {"c": symmetric(rng.normal(size=(12, 12)))},
                  "blur": {"c": per_scope["blur"]}, "contrast": {"c": symmetric(rng.normal(size=(12, 12)))}}
    table = grounding.grounding_table({"paper": base}, behaviours, FAMILY, resamples=20,
                                      distorted={"cka (distorted)": per_scope})
    bent = table[table["similarity"] == "cka (distorted)"]
    assert set(bent["scope"]) == {"blur"}  # gamma has no behaviour, the other scopes no distorted matrix
    assert bent.set_index("pairs").loc["all", "r"] == pytest.approx(1)  # the same matrix both sides
    assert set(table[table["similarity"] == "paper"]["scope"]) == {"all", "blur", "contrast"}


def test_per_layer_is_the_table_of_each_layer():
    rng = np.random.default_rng(3)
    layers = {f"stage{k}": symmetric(rng.normal(size=(12, 12))) for k in range(3)}
    compat = symmetric(rng.normal(size=(12, 12)))
    out = grounding.per_layer(layers, compat, FAMILY, 50, 1)
    assert list(out.columns) == ["layer", "pairs", "r", "low", "high", "n_pairs", "n_families", "resamples", "level"]
    assert list(out["layer"]) == [layer for layer in layers for _ in range(3)]
    for _, row in out.iterrows():
        want = bootstrap.bootstrap_correlation(layers[row.layer], compat, 50, 1, groups=FAMILY,
                                               pairs=grounding.PAIRS[row.pairs])
        assert (row.r, row.low, row.high) == pytest.approx((want["r"], want["low"], want["high"]), abs=1e-12)


def test_behaviour_scopes_are_the_behaviour_module_per_scope():
    rng = np.random.default_rng(4)
    ids = ["a", "b", "c", "d"]
    cells = [(m, float(lv)) for m, lv in PAPER_GRID]
    right = rng.random((4, len(cells), 40)) < rng.uniform(0.2, 0.9, (4, len(cells), 1))
    bits = Correctness(ids, cells, np.packbits(right, axis=2), 40)
    acc = pd.DataFrame([(net, m, lv, right[i, c].mean()) for i, net in enumerate(ids)
                        for c, (m, lv) in enumerate(cells)], columns=["net_id", "manipulation", "level", "accuracy"])
    scopes = grounding.behaviour_scopes(acc, bits)
    assert list(scopes) == ["all", *dict.fromkeys(m for m, _ in cells)]
    assert list(scopes["all"]) == ["compatibility", "relative compatibility", "kappa"]
    pd.testing.assert_frame_equal(scopes["all"]["kappa"], behaviour.error_consistency_matrix(bits))
    pd.testing.assert_frame_equal(scopes["gamma"]["relative compatibility"],
                                  behaviour.compatibility(acc, relative=True, by_manipulation=True)["gamma"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        two = grounding.behaviour_scopes(acc[acc["net_id"].isin(["a", "b"])])
    assert list(two["blur"]) == ["compatibility"]  # no relative measure of two, no κ without the bits


def test_bad_input_is_refused_in_one_sentence():
    rng = np.random.default_rng(5)
    s = symmetric(rng.normal(size=(12, 12)))
    with pytest.raises(ValueError, match="does not hold the same networks .*missing n11"):
        grounding.grounding_table({"s": s}, {"all": {"b": s.iloc[:11, :11]}}, FAMILY)
    with pytest.raises(ValueError, match="resamples must be a whole number"):
        grounding.grounding_table({"s": s}, {"all": {"b": s}}, FAMILY, resamples=0)
    with pytest.raises(ValueError, match="at least one behavioural matrix"):
        grounding.grounding_table({"s": s}, {}, FAMILY)
    with pytest.raises(ValueError, match="no entry for n00"):
        grounding.grounding_table({"s": s}, {"all": {"b": s}}, {"x": "f"})
    with pytest.raises(ValueError, match="DataFrame indexed by network id"):
        grounding.grounding_table({"s": s.to_numpy()}, {"all": {"b": s}}, FAMILY)


@pytest.mark.slow
def test_the_full_table_of_a_population_of_24_takes_seconds():
    rng = np.random.default_rng(6)
    ids = [f"n{i:02d}" for i in range(24)]
    family = {net: f"f{i % 8}" for i, net in enumerate(ids)}
    sims = {f"s{k}": symmetric(rng.normal(size=(24, 24)), ids) for k in range(5)}
    behaviours = {scope: {f"b{k}": symmetric(rng.normal(size=(24, 24)), ids) for k in range(3)}
                  for scope in ["all", *dict.fromkeys(m for m, _ in PAPER_GRID)]}
    start = time.perf_counter()
    table = grounding.grounding_table(sims, behaviours, family, resamples=1000)
    assert len(table) == 5 * 3 * 9 * 3 and (table["resamples"] == 1000).all()
    assert time.perf_counter() - start < 30  # ~2 s on one core; the literal twin takes minutes


def test_blocks_of_resamples_do_not_change_the_table():
    rng = np.random.default_rng(7)
    sims = {"a": symmetric(rng.normal(size=(12, 12)))}
    gappy = symmetric(rng.normal(size=(12, 12)))
    gappy.iloc[2, 5] = gappy.iloc[5, 2] = np.nan
    behaviours = {"all": {"b": symmetric(rng.normal(size=(12, 12))), "gappy": gappy}}
    whole = grounding.grounding_table(sims, behaviours, FAMILY, resamples=37, seed=2)
    blocks = grounding.grounding_table(sims, behaviours, FAMILY, resamples=37, seed=2, max_bytes=1)  # 1 per block
    pd.testing.assert_frame_equal(whole, blocks)

    def pairs(block):  # each resample's pairs as sorted codes, the padding left out
        return [np.sort(p[v] * 100 + q[v]) for ps, qs, vs in grounding.family_draws(np.arange(12) // 3, 5, 1, block)
                for p, q, v in zip(ps, qs, vs, strict=True)]

    for one, other in zip(pairs(None), pairs(2), strict=True):
        np.testing.assert_array_equal(one, other)
