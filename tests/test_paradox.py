import numpy as np
import pandas as pd
import pytest

from paradox_utils import bootstrap, inference, nulls, paradox, plots, sentences


def test_difference_pairs_and_quadrants():
    ids = ["p", "c1", "c2", "u"]
    comp = pd.DataFrame(np.array([[1, 0.2, 0.9, 0.95], [0.2, 1, 0.3, 0.1], [0.9, 0.3, 1, 0.8], [0.95, 0.1, 0.8, 1]]),
                        index=ids, columns=ids)
    sim = np.array([[1, 0.99, 0.98, 0.2], [0.99, 1, 0.97, 0.2], [0.98, 0.97, 1, 0.2], [0.2, 0.2, 0.2, 1]])
    diff = paradox.difference(comp, sim, ids)
    assert diff.loc["p", "c1"] == pytest.approx(0.2 - 0.99)
    pairs = paradox.pair_table({"paper": paradox._as_frame(sim, ids)}, {"c1": "p", "c2": "p"}, compat=comp)
    assert pairs.set_index(["a", "b"]).loc[("p", "c1"), "relation"] == "parent-child"
    assert pairs.set_index(["a", "b"]).loc[("c1", "c2"), "relation"] == "siblings"
    counts = paradox.quadrant_counts(pairs, "paper")
    assert counts["similar_yet_different"] == 2 and counts["different_yet_similar"] == 2  # (p,c1),(c1,c2); (p,u),(c2,u)
    top = paradox.most_paradoxical(pairs, "paper", n=1)
    assert (top.loc[0, "a"], top.loc[0, "b"]) == ("p", "c1")  # |0.2 - 0.99| is the largest


def square(values: np.ndarray, ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame(values, index=ids, columns=ids)


def test_pair_table_with_and_without_compatibility():
    ids = ["p", "c", "u"]
    sim = square(np.array([[1, 0.9, 0.2], [0.9, 1, 0.3], [0.2, 0.3, 1]]), ids)
    cka = square(np.array([[1, 0.8, 0.6], [0.8, 1, 0.7], [0.6, 0.7, 1]]), ids)
    comp = square(np.array([[1, 0.1, 0.4], [0.1, 1, 0.5], [0.4, 0.5, 1]]), ids)
    only = paradox.pair_table({"paper": sim, "cka": cka}, {"c": "p"})  # chapter 4
    assert list(only.columns) == ["a", "b", "relation", "similarity_paper", "similarity_cka"]
    assert list(zip(only["a"], only["b"], strict=True)) == [("p", "c"), ("p", "u"), ("c", "u")]
    assert list(only["relation"]) == ["parent-child", "unrelated", "unrelated"]
    assert list(only["similarity_cka"]) == [0.8, 0.6, 0.7]
    full = paradox.pair_table({"paper": sim, "cka": cka}, {"c": "p"}, compat=comp)  # chapter 5
    pd.testing.assert_frame_equal(full[only.columns], only)
    assert list(full["compatibility"]) == [0.1, 0.4, 0.5]
    np.testing.assert_allclose(full["difference_paper"], [0.1 - 0.9, 0.4 - 0.2, 0.5 - 0.3])
    with pytest.warns(RuntimeWarning, match="leaves out networks missing from some matrix: u"):
        part = paradox.pair_table({"paper": sim.loc[["p", "c"], ["p", "c"]]}, compat=comp)
    assert len(part) == 1 and part.loc[0, "relation"] == "unrelated"


def test_quadrant_rule_is_shared_by_counts_and_figure():
    rng = np.random.default_rng(1)
    n = 60
    pairs = pd.DataFrame({"a": [f"n{i}" for i in range(n)], "b": [f"m{i}" for i in range(n)],
                          "relation": rng.choice(["parent-child", "siblings", "unrelated"], n),
                          "similarity_paper": rng.uniform(-0.2, 1, n), "compatibility": rng.uniform(-0.5, 1, n)})
    pairs.loc[:3, ["similarity_paper", "compatibility"]] = [[0.6, 0.4], [0.6, 0.2], [0.1, 0.4], [np.nan, 0.9]]
    similar, compatible = 0.6, 0.4  # rows 0–2 lie on the thresholds, row 3 is undefined
    labels = paradox.quadrant_of(pairs["similarity_paper"], pairs["compatibility"], similar, compatible)
    assert list(labels[:4]) == ["agree_similar", "similar_yet_different", "different_yet_similar", "undefined"]
    counts = paradox.quadrant_counts(pairs, "paper", similar, compatible)
    assert sum(counts[q] for q in (*paradox.QUADRANTS, "undefined")) == counts["pairs"] == n
    fig = plots.paradox_scatter(pairs, "paper", similar, compatible)
    shown = {a.name: int(a.text.rsplit(": ", 1)[1]) for a in fig.layout.annotations if a.name in paradox.QUADRANTS}
    assert shown == {q: counts[q] for q in ("similar_yet_different", "different_yet_similar")}
    x, y = pairs["similarity_paper"], pairs["compatibility"]
    for shape in (s for s in fig.layout.shapes if s.type == "rect"):  # each shaded corner: its quadrant's pairs
        inside = (x >= shape.x0) & (x < shape.x1) & (y >= shape.y0) & (y < shape.y1)
        assert set(pairs.index[inside]) == set(pairs.index[labels == shape.name])


def test_statistics_table_and_first_family():
    rng = np.random.default_rng(2)
    ids = [f"n{i}" for i in range(6)]
    points = rng.normal(size=(6, 2))
    sim = square(np.exp(-np.linalg.norm(points[:, None] - points[None], axis=-1)), ids)
    comp = square(np.clip(sim.to_numpy() + rng.normal(scale=0.05, size=(6, 6)), -1, 1), ids)
    comp = (comp + comp.T) / 2
    pairs = paradox.pair_table({"paper": sim}, compat=comp)
    stats = paradox.statistics_table({"paper": sim}, comp, pairs, 0.5, 0.5, permutations=49, resamples=20)
    assert list(stats.index) == ["paper"] and stats.index.name == "method"
    counts = paradox.quadrant_counts(pairs, "paper")
    assert stats.loc["paper", "similar_yet_different"] == counts["similar_yet_different"]
    assert stats.loc["paper", "pairs"] == 15 and stats.loc["paper", "mantel_r"] > 0.5
    assert paradox.first_family({"a": None, "b": None, "a1": "a", "a2": "a", "b1": "b"}) == ["a", "a1", "a2"]
    assert paradox.first_family({"a": None}) == []


def related_matrices() -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """Two symmetric 12 × 12 matrices, the second the first plus noise, and the generator that made them."""
    rng = np.random.default_rng(0)
    points = rng.normal(size=(12, 3))
    a = -np.linalg.norm(points[:, None] - points[None], axis=-1)
    b = a + rng.normal(scale=0.1, size=a.shape)
    return a, (b + b.T) / 2, rng


def test_mantel_detects_related_matrices_and_not_unrelated():
    a, b, rng = related_matrices()
    strong = paradox.mantel(a, b, permutations=499)
    assert strong["r"] > 0.8 and strong["p"] < 0.01
    noise = rng.normal(size=a.shape)
    weak = paradox.mantel(a, (noise + noise.T) / 2, permutations=499)
    assert weak["p"] > 0.01
    assert paradox.mantel(a, b, permutations=99, seed=3) == paradox.mantel(a, b, permutations=99, seed=3)


def test_mantel_ranked_permutations_equal_the_literal_ones(monkeypatch):
    """The fast path (rank once, gather per permutation) against its slow twin (rank again
    every permutation), on matrices with ties, and the p-value either way."""
    rng = np.random.default_rng(5)
    n = 15
    x = rng.normal(size=(n, n)).round(1)  # ties; x need not be symmetric: only its upper triangle counts
    y = rng.normal(size=(n, n)).round(1) + 0.3 * x
    y = np.triu(y, 1) + np.triu(y, 1).T  # symmetric, with ties
    assert inference._ranks_once(x, y)
    orders = [rng.permutation(n) for _ in range(200)]
    fast = np.array(list(inference._permuted_ranked(x, y, orders)))
    slow = np.array(list(inference._permuted_literal(x, y, orders)))
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    assert fast.std() > 0.05  # the permutations really moved the values
    ranked = paradox.mantel(x, y, permutations=199, seed=1)
    monkeypatch.setattr(inference, "_ranks_once", lambda *_: False)
    assert paradox.mantel(x, y, permutations=199, seed=1) == ranked
    monkeypatch.undo()
    y[0, 1] = np.nan  # a NaN, or an asymmetric y, takes the literal path
    assert not inference._ranks_once(x, y) and not inference._ranks_once(x, y + np.triu(np.ones((n, n))))


def test_statistics_table_with_families_covariates_and_holm():
    """Similarity and behaviour carried by lineage alone (8 families of 3): the network test
    finds an association, the family test does not; the family columns are those of
    inference and bootstrap with the same groups, and Holm runs over the table's family p."""
    rng = np.random.default_rng(7)
    ids = [f"n{k}" for k in range(24)]
    labels = np.repeat(np.arange(8), 3)
    same = np.equal.outer(labels, labels).astype(float)

    def noisy(scale):
        m = same + rng.normal(scale=scale, size=same.shape)
        return square((m + m.T) / 2, ids)

    sim, compat, kappa = noisy(0.3), noisy(0.3), noisy(1.0)
    groups = {n: f"f{label}" for n, label in zip(ids, labels, strict=True)}
    covariates = {"same family": square(same, ids)}
    behaviours = {"compatibility": compat, "kappa": kappa}
    pairs = paradox.pair_table({"paper": sim})
    stats = paradox.statistics_table({"paper": sim}, behaviours, pairs, 0.5, 0.5, permutations=199, resamples=50,
                                     groups=groups, covariates=covariates)
    row = stats.loc[("paper", "compatibility")]
    assert row["mantel_p"] < 0.01 and row["family_p"] > 0.05  # lineage alone: significant only for networks
    assert row["family_p"] == inference.mantel(sim, compat, 199, 0, groups=groups)["p"]
    assert (row["n_families"], row["n_networks"], row["family_distinct"]) == (8, 24, 8 * 7 * 6 * 5 * 4 * 3 * 2 * 6 ** 8)
    family_ci = bootstrap.bootstrap_correlation(sim, compat, 50, 0, groups=groups)
    assert (row["ci_low"], row["ci_high"]) == (family_ci["low"], family_ci["high"])
    partial = inference.partial_mantel(sim, compat, covariates, 199, 0, groups=groups)
    assert (row["partial_r"], row["partial_p"]) == (partial["r"], partial["p"]) and abs(partial["r"]) < 0.2
    np.testing.assert_allclose(stats["holm_p"], inference.holm(stats["family_p"].to_numpy()))
    assert stats["holm_p"].min() == pytest.approx(min(1, 2 * stats["family_p"].min()))
    plain = paradox.statistics_table({"paper": sim}, behaviours, pairs, 0.5, 0.5, permutations=199, resamples=50)
    assert "family_p" not in plain and "partial_r" not in plain  # without groups: the network columns only
    np.testing.assert_allclose(plain["holm_p"], inference.holm(plain["mantel_p"].to_numpy()))
    pd.testing.assert_series_equal(plain["mantel_p"], stats["mantel_p"])


@pytest.fixture()
def hand_pairs() -> tuple[pd.DataFrame, dict, dict]:
    """Six pairs and two nulls whose 99th percentiles are 0.198 (similarity) and 0.49 (κ)."""
    ids = ["p", "q", "r", "s"]
    sim = pd.DataFrame([[1, 0.30, 0.10, 0.25], [0.30, 1, 0.15, 0.05], [0.10, 0.15, 1, 0.40],
                        [0.25, 0.05, 0.40, 1]], index=ids, columns=ids)
    kappa = pd.DataFrame([[1, 0.20, 0.60, 0.70], [0.20, 1, 0.10, 0.55], [0.60, 0.10, 1, 0.30],
                          [0.70, 0.55, 0.30, 1]], index=ids, columns=ids)
    pairs = paradox.pair_table({"paper": sim})
    # by hand, similar ≥ 0.198 and κ ≥ 0.49:  p–q (0.30, 0.20) similar yet different;
    # p–r (0.10, 0.60) different yet similar; p–s (0.25, 0.70) agree similar; q–r (0.15, 0.10)
    # agree different; q–s (0.05, 0.55) different yet similar; r–s (0.40, 0.30) similar yet different
    null_values = {"similarity": np.linspace(0, 0.2, 101), "kappa": np.linspace(-0.5, 0.5, 101)}
    return pairs, {"paper": sim, "kappa": kappa}, null_values


def test_quadrant_counts_with_null_thresholds_equal_a_hand_count(hand_pairs):
    pairs, matrices, null_values = hand_pairs
    with pytest.raises(ValueError, match="no column 'kappa'; add it with paradox.with_behaviour"):
        paradox.quadrant_counts(pairs, "paper", behaviour="kappa")
    pairs = paradox.with_behaviour(pairs, {"kappa": matrices["kappa"]})
    assert list(pairs["kappa"]) == [0.20, 0.60, 0.70, 0.10, 0.55, 0.30]
    similar, _ = nulls.threshold(0.5, null_values["similarity"])
    compatible, _ = nulls.threshold(0.5, null_values["kappa"])
    assert (similar, compatible) == (pytest.approx(0.198), pytest.approx(0.49))
    counts = paradox.quadrant_counts(pairs, "paper", similar, compatible, behaviour="kappa")
    assert {q: counts[q] for q in paradox.QUADRANTS} == {"similar_yet_different": 2, "different_yet_similar": 2,
                                                         "agree_similar": 1, "agree_different": 1}
    fixed = paradox.quadrant_counts(pairs, "paper", behaviour="kappa")  # the paper's 0.5 / 0.5
    assert fixed["agree_different"] == 3 and fixed["different_yet_similar"] == 3


def test_figure_shades_counts_and_labels_the_null_thresholds(hand_pairs):
    pairs, matrices, null_values = hand_pairs
    pairs = paradox.with_behaviour(pairs, {"kappa": matrices["kappa"]})
    fig = plots.paradox_scatter(pairs, "paper", behaviour="kappa", similarity_null=null_values["similarity"],
                                behaviour_null=null_values["kappa"])
    counts = paradox.quadrant_counts(pairs, "paper", 0.198, 0.49, behaviour="kappa")
    notes = {a.name: a.text for a in fig.layout.annotations}
    shown = {q: int(notes[q].rsplit(": ", 1)[1]) for q in ("similar_yet_different", "different_yet_similar")}
    assert shown == {q: counts[q] for q in shown} == {"similar_yet_different": 2, "different_yet_similar": 2}
    assert notes["similar_threshold"] == "similarity null p99 = 0.198"
    assert notes["behaviour_threshold"] == "kappa null p99 = 0.490"
    lines = {s.name: s for s in fig.layout.shapes if s.type == "line"}
    assert lines["similar_threshold"].x0 == pytest.approx(0.198)
    assert lines["behaviour_threshold"].y0 == pytest.approx(0.49)
    labels = paradox.quadrant_of(pairs["similarity_paper"], pairs["kappa"], 0.198, 0.49)
    x, y = pairs["similarity_paper"], pairs["kappa"]
    for shape in fig.layout.shapes:
        if shape.type == "rect":  # each shaded corner holds exactly the pairs of its quadrant
            inside = (x >= shape.x0) & (x < shape.x1) & (y >= shape.y0) & (y < shape.y1)
            assert set(pairs.index[inside]) == set(pairs.index[labels == shape.name])
    assert fig.layout.yaxis.title.text == "kappa"


def test_statistics_table_rows_per_method_and_behaviour(hand_pairs):
    pairs, matrices, null_values = hand_pairs
    compat = matrices["kappa"] * 0.5 + 0.5  # a second behavioural matrix, all pairs ≥ 0.55
    behaviours = {"compatibility": compat, "kappa": matrices["kappa"]}
    stats = paradox.statistics_table({"paper": matrices["paper"]}, behaviours, pairs, 0.5,
                                     {"compatibility": 0.5, "kappa": 0.5}, permutations=19, resamples=10,
                                     similarity_nulls={"paper": null_values["similarity"]},
                                     behaviour_nulls={"kappa": null_values["kappa"]})
    assert list(stats.index) == [("paper", "compatibility"), ("paper", "kappa")]
    assert stats.index.names == ["method", "behaviour"]
    kappa, comp = stats.loc[("paper", "kappa")], stats.loc[("paper", "compatibility")]
    assert (kappa["similar_yet_different"], kappa["different_yet_similar"], kappa["pairs"]) == (2, 2, 6)
    assert kappa["similar_threshold"] == pytest.approx(0.198) and kappa["similar_threshold_kind"] == "null p99"
    assert kappa["behaviour_threshold"] == pytest.approx(0.49) and kappa["behaviour_threshold_kind"] == "null p99"
    assert comp["behaviour_threshold"] == 0.5 and comp["behaviour_threshold_kind"] == "fixed"
    assert (comp["similar_yet_different"], comp["different_yet_similar"]) == (0, 3)  # every pair compatible
    with pytest.raises(KeyError, match="no entry for 'kappa'"):
        paradox.statistics_table({"paper": matrices["paper"]}, {"kappa": matrices["kappa"]}, pairs, 0.5,
                                 {"compatibility": 0.5}, permutations=9, resamples=5)
    assert "similarity and kappa correlate" in sentences.association(stats, alpha=1.0, behaviour="kappa")
    with pytest.raises(KeyError, match="no row 'paper' × 'relative compatibility'"):
        sentences.association(stats, behaviour="relative compatibility")
    legacy = paradox.statistics_table({"paper": matrices["paper"]}, compat, pairs, 0.5, 0.5, permutations=9,
                                      resamples=5)  # one matrix: indexed by method alone
    assert list(legacy.index) == ["paper"] and legacy.loc["paper", "behaviour"] == "compatibility"
