import numpy as np
import pandas as pd
import pytest

from paradox_utils import paradox, plots
from paradox_utils.distortions import PAPER_GRID


def table(vectors: dict[str, list[float]]) -> pd.DataFrame:
    cells = [("contrast", 0.5), ("contrast", 1.0), ("gamma", 0.3), ("blur", 1.0)]
    return pd.DataFrame([(k, m, lv, acc) for k, v in vectors.items() for (m, lv), acc in zip(cells, v, strict=True)],
                        columns=["net_id", "manipulation", "level", "accuracy"])


def test_compatibility_is_pearson_and_nan_for_constant():
    acc = table({"a": [0.1, 0.9, 0.5, 0.3], "b": [0.2, 0.8, 0.6, 0.1], "c": [0.5, 0.5, 0.5, 0.5]})
    with pytest.warns(RuntimeWarning, match="constant accuracy vector: c"):
        comp = paradox.compatibility(acc)
    vectors = paradox.accuracy_vectors(acc)
    assert comp.loc["a", "b"] == pytest.approx(np.corrcoef(vectors.loc["a"], vectors.loc["b"])[0, 1])
    assert np.isnan(comp.loc["a", "c"]) and np.isnan(comp.loc["c", "c"]) and comp.loc["a", "a"] == pytest.approx(1)


def test_compatibility_is_nan_for_a_vector_constant_up_to_rounding():
    rng = np.random.default_rng(0)
    cells = [(m, float(lv)) for m, lv in PAPER_GRID]
    vectors = {"flat": [0.1] * len(cells), "a": rng.uniform(size=len(cells)), "b": rng.uniform(size=len(cells))}
    acc = pd.DataFrame([(k, m, lv, x) for k, v in vectors.items() for (m, lv), x in zip(cells, v, strict=True)],
                       columns=["net_id", "manipulation", "level", "accuracy"])
    assert 0 < np.nanstd(paradox.accuracy_vectors(acc).loc["flat"].to_numpy()) < 1e-15  # rounding, not exactly 0
    with pytest.warns(RuntimeWarning, match="constant accuracy vector: flat"):
        comp = paradox.compatibility(acc)
    assert comp.loc["flat"].isna().all() and comp["flat"].isna().all()
    assert np.isfinite(comp.loc["a", "b"]) and comp.loc["b", "b"] == pytest.approx(1)


def test_constant_vector_warning_names_the_first_ten_and_counts_the_rest():
    rng = np.random.default_rng(1)
    vectors = {f"flat{i:02d}": [0.1] * 4 for i in range(12)} | {"a": rng.uniform(size=4), "b": rng.uniform(size=4)}
    with pytest.warns(RuntimeWarning, match=r"vector: flat00, flat01, .*, flat09 and 2 more\.$") as caught:
        comp = paradox.compatibility(table(vectors))
    assert "flat10" not in str(caught[0].message)  # named only in the count
    assert comp.loc["flat11"].isna().all() and np.isfinite(comp.loc["a", "b"])


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


def test_mantel_detects_related_matrices_and_not_unrelated():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(12, 3))
    a = -np.linalg.norm(points[:, None] - points[None], axis=-1)
    b = a + rng.normal(scale=0.1, size=a.shape)
    b = (b + b.T) / 2
    strong = paradox.mantel(a, b, permutations=499)
    assert strong["r"] > 0.8 and strong["p"] < 0.01
    noise = rng.normal(size=a.shape)
    weak = paradox.mantel(a, (noise + noise.T) / 2, permutations=499)
    assert weak["p"] > 0.01
    assert paradox.mantel(a, b, permutations=99, seed=3) == paradox.mantel(a, b, permutations=99, seed=3)
    ci = paradox.bootstrap_correlation(a, b, resamples=200)
    assert ci["low"] <= ci["r"] <= ci["high"] and ci["low"] > 0.5


def test_mantel_ranked_permutations_equal_the_literal_ones(monkeypatch):
    """The fast path (rank once, gather per permutation) against its slow twin (rank again
    every permutation), on matrices with ties, and the p-value either way."""
    rng = np.random.default_rng(5)
    n = 15
    x = rng.normal(size=(n, n)).round(1)  # ties; x need not be symmetric: only its upper triangle counts
    y = rng.normal(size=(n, n)).round(1) + 0.3 * x
    y = np.triu(y, 1) + np.triu(y, 1).T  # symmetric, with ties
    assert paradox._ranks_once(x, y)
    orders = [rng.permutation(n) for _ in range(200)]
    fast = np.array(list(paradox._permuted_ranked(x, y, orders)))
    slow = np.array(list(paradox._permuted_literal(x, y, orders)))
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    assert fast.std() > 0.05  # the permutations really moved the values
    ranked = paradox.mantel(x, y, permutations=199, seed=1)
    monkeypatch.setattr(paradox, "_ranks_once", lambda *_: False)
    assert paradox.mantel(x, y, permutations=199, seed=1) == ranked
    monkeypatch.undo()
    y[0, 1] = np.nan  # a NaN, or an asymmetric y, takes the literal path
    assert not paradox._ranks_once(x, y) and not paradox._ranks_once(x, y + np.triu(np.ones((n, n))))
