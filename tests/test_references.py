"""The run's references: which pairs define alike and unlike, and the paradox counts they allow."""

import json

import numpy as np
import pandas as pd
import pytest

from paradox_utils import references
from paradox_utils.paradox import pair_table


def config(lr: float, seed: int, manipulation=None) -> str:
    return json.dumps({"arch": "resnet20", "lr": lr, "seed": seed, "data_seed": 0, "manipulation": manipulation})


def catalog(replicates: bool = True) -> pd.DataFrame:
    """Two recipes (lr 0.1, 0.2) × two seeds; b0 and b2 each with an unmanipulated and an "all" child."""
    rows = [("b0", None, config(0.1, 0)), ("b1", None, config(0.1, 1) if replicates else config(0.3, 1)),
            ("b2", None, config(0.2, 0)), ("b3", None, config(0.2, 1) if replicates else config(0.4, 1)),
            ("b0-none", "b0", config(0.01, 10_000, None)), ("b0-all", "b0", config(0.01, 10_000, "all")),
            ("b2-none", "b2", config(0.01, 10_002, None)), ("b2-all", "b2", config(0.01, 10_002, "all"))]
    return pd.DataFrame(rows, columns=["net_id", "parent", "config"])


def matrix(ids, value) -> pd.DataFrame:
    """A symmetric matrix whose [a, b] entry is value(a, b), 1 on the diagonal."""
    m = pd.DataFrame(1.0, index=ids, columns=ids)
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            m.loc[a, b] = m.loc[b, a] = value(a, b)
    return m


def table(cat: pd.DataFrame, weights, behaviour) -> pd.DataFrame:
    ids = list(cat["net_id"])
    parents = {r.net_id: r.parent for r in cat.itertuples()}
    pairs = pair_table({"paper": matrix(ids, weights)}, parents, compat=matrix(ids, behaviour))
    return references.roles(pairs, cat)


def family(net: str) -> str:
    return net.split("-")[0]


def related(a: str, b: str) -> bool:
    return family(a) == family(b)


def test_roles_name_each_reference():
    pairs = table(catalog(), lambda a, b: 0.9, lambda a, b: 0.9).set_index(["a", "b"])
    assert pairs.loc[("b0", "b0-none"), "reference_weights_alike"]
    assert not pairs.loc[("b0", "b0-all"), "reference_weights_alike"]  # manipulated child: not the reference
    assert pairs.loc[("b0", "b1"), "reference_behaviour_alike"]  # one recipe, two seeds
    assert not pairs.loc[("b0", "b2"), "reference_behaviour_alike"]
    assert pairs.loc[("b0", "b2"), "reference_behaviour_unlike"] and not pairs.loc[("b0", "b1"),
                                                                                   "reference_behaviour_unlike"]
    assert not pairs.loc[("b0-none", "b2-none"), "reference_behaviour_alike"]  # same recipe, different parents
    assert pairs.loc[("b0", "b2-all"), "reference_weights_unlike"] and not pairs.loc[("b0", "b0-all"),
                                                                                     "reference_weights_unlike"]
    assert pairs.loc[("b0", "b0-none"), "same_training_data"] and not pairs.loc[("b0", "b0-all"),
                                                                                "same_training_data"]
    assert pairs.loc[("b0-all", "b2-all"), "same_training_data"]


def test_a_paradox_is_counted_only_where_both_references_separate():
    # weights: related pairs 0.95, unrelated 0.2; behaviour: replicates and relatives 0.8, others 0.3, but the
    # "all" child of b0 behaves like nothing else (0.05)
    def weights(a, b):
        return 0.95 if related(a, b) else 0.2

    def behaviour(a, b):
        if "b0-all" in (a, b):
            return 0.05
        return 0.8 if {a, b} in ({"b0", "b1"}, {"b2", "b3"}) or related(a, b) else 0.3

    pairs = table(catalog(), weights, behaviour)
    thresholds = references.reference_thresholds(pairs, ["paper"], ["compatibility"])
    assert thresholds["separates"].all()
    counts = references.paradox_counts(pairs, thresholds, ["paper"], ["compatibility"]).iloc[0]
    # b0-all with its parent and with its unmanipulated sibling: kernels alike, behaviour unlike
    assert counts["defined"] and counts["similar_yet_different"] == 2
    # seed replicates are unrelated in weights (0.2) yet behave alike (0.8): different yet similar, twice
    assert counts["different_yet_similar"] == 2


def test_without_seed_replicates_the_behaviour_axis_is_undefined_and_says_why():
    pairs = table(catalog(replicates=False), lambda a, b: 0.9 if related(a, b) else 0.2, lambda a, b: 0.5)
    thresholds = references.reference_thresholds(pairs, ["paper"], ["compatibility"])
    assert not thresholds.loc[("behaviour", "compatibility"), "separates"]
    assert "seed replicates" in thresholds.loc[("behaviour", "compatibility"), "reason"]
    counts = references.paradox_counts(pairs, thresholds, ["paper"], ["compatibility"]).iloc[0]
    assert not counts["defined"] and np.isnan(counts["similar_yet_different"])
    assert "behaviour (compatibility)" in counts["reason"]


def test_overlapping_references_do_not_separate():
    pairs = table(catalog(), lambda a, b: 0.9 if related(a, b) else 0.2, lambda a, b: 0.5)  # behaviour flat
    thresholds = references.reference_thresholds(pairs, ["paper"], ["compatibility"], nulls={"paper": np.zeros(200)})
    assert thresholds.loc[("weights", "paper"), "separates"]
    assert thresholds.loc[("weights", "paper"), "chance"] == 0
    row = thresholds.loc[("behaviour", "compatibility")]
    assert not row["separates"] and "overlap" in row["reason"] and np.isnan(row["chance"])


def test_axis_state_reads_both_references():
    state = references.axis_state([0.99, 0.5, 0.1, np.nan], floor=0.9, ceiling=0.3)
    assert list(state) == ["alike", "between", "unlike", "undefined"]


def test_roles_refuse_networks_the_catalog_lacks():
    cat = catalog()
    pairs = pair_table({"paper": matrix(list(cat["net_id"]), lambda a, b: 0.5)})
    with pytest.raises(ValueError, match="no row for networks"):
        references.roles(pairs, cat.iloc[:3])


def test_covariates_are_pair_matrices_of_family_and_training_data():
    cat = catalog()
    ids = list(cat["net_id"])
    both = references.covariates(cat, ids)
    family, data = both["same family"], both["same training data"]
    assert family.loc["b0", "b0-all"] == 1 and family.loc["b0", "b1"] == 0 and family.loc["b0-all", "b2-all"] == 0
    assert data.loc["b0", "b0-none"] == 1 and data.loc["b0", "b0-all"] == 0 and data.loc["b0-all", "b2-all"] == 1
    pairs = table(cat, lambda a, b: 0.5, lambda a, b: 0.5)
    assert all(family.loc[r.a, r.b] == r.same_family and data.loc[r.a, r.b] == r.same_training_data
               for r in pairs.itertuples())  # one rule for the pair table and the matrices
