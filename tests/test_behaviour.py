"""The behavioural measures: compatibility (the paper's and relative) and error consistency (Cohen's κ,
Geirhos et al. 2020)."""

import warnings

import numpy as np
import pandas as pd
import pytest

from paradox_utils import behaviour
from paradox_utils.correctness import Correctness
from paradox_utils.distortions import PAPER_GRID, is_identity
from paradox_utils.evaluation import accuracy_vectors

CELLS = [("contrast", 0.5), ("contrast", 1.0), ("blur", 1.0), ("blur", 2.0), ("gamma", 0.3)]


def loop_kappa(a, b) -> float:
    """The definition, one trial at a time in plain Python."""
    n = len(a)
    agree = right_a = right_b = 0
    for x, y in zip(a, b, strict=True):
        agree += x == y
        right_a += x
        right_b += y
    c_obs = agree / n
    p_a, p_b = right_a / n, right_b / n
    c_exp = p_a * p_b + (1 - p_a) * (1 - p_b)
    return (c_obs - c_exp) / (1 - c_exp)


def correctness(right: np.ndarray, ids=None, cells=CELLS, junk_padding: bool = True) -> Correctness:
    """(N, C, I) bool → Correctness; with ``junk_padding`` the unused bits of the last byte are set
    to 1, which nothing may count as a trial."""
    bits = np.packbits(right, axis=2)
    if junk_padding and right.shape[2] % 8:
        bits[..., -1] |= np.uint8((1 << (8 - right.shape[2] % 8)) - 1)
    ids = ids or [f"n{i}" for i in range(len(right))]
    return Correctness(list(ids), list(cells), bits, right.shape[2])


def random_right(rng, n: int, cells: int, images: int) -> np.ndarray:
    """(n, cells, images) bool with an accuracy per (network, cell) between 0.1 and 0.95."""
    accuracy = rng.uniform(0.1, 0.95, size=(n, cells, 1))
    return rng.random((n, cells, images)) < accuracy


def test_error_consistency_matches_a_plain_loop_over_trials():
    rng = np.random.default_rng(0)
    for trials, p_a, p_b in [(7, 0.5, 0.5), (100, 0.9, 0.2), (1001, 0.3, 0.35), (50, 1.0, 0.6), (64, 0.0, 0.4)]:
        a, b = rng.random(trials) < p_a, rng.random(trials) < p_b
        assert behaviour.error_consistency(a, b) == pytest.approx(loop_kappa(a.tolist(), b.tolist()), abs=1e-12)
        assert behaviour.error_consistency(a.astype(int), b.astype(float)) == behaviour.error_consistency(a, b)
    a = rng.random(200) < 0.5
    assert behaviour.error_consistency(a, a) == pytest.approx(1.0)
    opposite = behaviour.error_consistency(a, ~a)
    assert opposite < 0 and opposite == pytest.approx(loop_kappa(a.tolist(), (~a).tolist()), abs=1e-12)
    assert behaviour.error_consistency(np.ones(10, bool), a[:10]) == pytest.approx(0.0)  # one always right: chance


def test_error_consistency_is_nan_with_the_pair_named_and_refuses_bad_input():
    with pytest.warns(RuntimeWarning, match="for x and y: both are always right"):
        assert np.isnan(behaviour.error_consistency(np.ones(9, bool), np.ones(9, bool), names=("x", "y")))
    with pytest.warns(RuntimeWarning, match="the two networks: both are always wrong"):
        assert np.isnan(behaviour.error_consistency([0, 0, 0], [0, 0, 0]))
    with pytest.raises(ValueError, match="same trials"):
        behaviour.error_consistency(np.ones(3, bool), np.ones(4, bool))
    with pytest.raises(ValueError, match="correct_b holds other values"):
        behaviour.error_consistency([1, 0, 1], [1, 2, 0])
    with pytest.raises(ValueError, match="no trials"):
        behaviour.error_consistency([], [])


@pytest.mark.parametrize("popcount", ["native", "table"])
@pytest.mark.parametrize("chunk_words", [behaviour.KAPPA_CHUNK_WORDS, 1])
def test_error_consistency_matrix_matches_error_consistency_per_pair(monkeypatch, chunk_words, popcount):
    """The fast path (popcounts over packed bits, chunked) against the scalar κ per pair, on 203
    images (not a multiple of 8, padding bits set to junk) with an always-right, a second
    always-right and an always-wrong network; with NumPy's popcount and the table fallback."""
    monkeypatch.setattr(behaviour, "KAPPA_CHUNK_WORDS", chunk_words)  # 1 word: many chunks, cells split across
    if popcount == "table":
        monkeypatch.setattr(behaviour, "_popcount", behaviour._popcount_table)
    rng = np.random.default_rng(1)
    right = random_right(rng, 7, len(CELLS), 203)
    right[4], right[5], right[6] = True, True, False
    ids = ["a", "b", "c", "d", "always", "always2", "never"]
    data = correctness(right, ids)
    subset = [CELLS[0], CELLS[2], CELLS[3]]
    with pytest.warns(RuntimeWarning) as caught:
        pooled = behaviour.error_consistency_matrix(data)
    assert len(caught) == 1
    assert "always–always, always–always2, always2–always2, never–never." in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        chosen = behaviour.error_consistency_matrix(data, cells=subset)
        per = behaviour.error_consistency_matrix(data, cells=subset, by_manipulation=True)
    assert list(per) == ["contrast", "blur"] and list(pooled.index) == ids and pooled.index.name == "net_id"
    expected_nan = {("always", "always"), ("always", "always2"), ("always2", "always"), ("always2", "always2"),
                    ("never", "never")}
    for frame, cells in [(pooled, CELLS), (chosen, subset), (per["contrast"], [CELLS[0]]),
                         (per["blur"], subset[1:])]:
        columns = [CELLS.index(c) for c in cells]
        for i, x in enumerate(ids):
            for j, y in enumerate(ids):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    want = behaviour.error_consistency(right[i, columns], right[j, columns])
                if (x, y) in expected_nan:
                    assert np.isnan(want) and np.isnan(frame.loc[x, y]), (x, y)
                else:
                    assert frame.loc[x, y] == pytest.approx(want, abs=1e-12), (x, y, cells)
    assert (np.diag(pooled.loc[["a", "b", "c", "d"], ["a", "b", "c", "d"]]) == 1).all()


def test_error_consistency_matrix_warning_is_truncated_and_bad_input_refused():
    right = np.ones((14, 2, 16), bool)
    data = correctness(right, cells=CELLS[:2])
    with pytest.warns(RuntimeWarning, match=r"n0–n0, n0–n1, .* and 95 more\.") as caught:
        kappa = behaviour.error_consistency_matrix(data)
    assert len(caught) == 1 and kappa.isna().all().all()  # 14·15/2 = 105 pairs, 10 named
    with pytest.warns(RuntimeWarning, match="contrast: n0–n0"):
        behaviour.error_consistency_matrix(data, by_manipulation=True)
    with pytest.raises(ValueError, match=r"has no cell \('blur', 1.0\)"):
        behaviour.error_consistency_matrix(data, cells=[("blur", 1)])
    with pytest.raises(ValueError, match="got no cells"):
        behaviour.error_consistency_matrix(data, cells=[])
    with pytest.raises(ValueError, match="must be uint8 of shape"):
        behaviour.error_consistency_matrix(Correctness(data.ids, data.cells, data.bits[:, :, :1], 16))
    with pytest.raises(TypeError, match="needs a Correctness"):
        behaviour.error_consistency_matrix(right)


def test_error_consistency_of_a_synthetic_population_has_the_known_answer():
    """a and b are wrong on a shared 20 % of hard trials plus 10 % each of their own: κ =
    (0.856 − 0.5968) / (1 − 0.5968) = 0.643. c and d are right with p = 0.75 independently: κ = 0,
    whose sampling error is 1/√T = 0.007 for T = 5 cells × 4,000 images."""
    rng = np.random.default_rng(2)
    shape = (len(CELLS), 4000)
    hard = rng.random(shape) < 0.2
    right = np.stack([~(hard | (rng.random(shape) < 0.1)), ~(hard | (rng.random(shape) < 0.1)),
                      rng.random(shape) < 0.75, rng.random(shape) < 0.75])
    kappa = behaviour.error_consistency_matrix(correctness(right, ["a", "b", "c", "d"]))
    assert kappa.loc["a", "b"] == pytest.approx(0.6429, abs=0.03)
    trials = right[0].size
    for x, y in [("c", "d"), ("a", "c"), ("b", "d")]:
        assert abs(kappa.loc[x, y]) < 4 / np.sqrt(trials), (x, y)
    assert np.allclose(kappa.to_numpy(), kappa.to_numpy().T)


def table(vectors: dict[str, list[float]]) -> pd.DataFrame:
    cells = [("contrast", 0.5), ("contrast", 1.0), ("gamma", 0.3), ("blur", 1.0)]
    return pd.DataFrame([(k, m, lv, acc) for k, v in vectors.items() for (m, lv), acc in zip(cells, v, strict=True)],
                        columns=["net_id", "manipulation", "level", "accuracy"])


def test_compatibility_is_pearson_and_nan_for_constant():
    acc = table({"a": [0.1, 0.9, 0.5, 0.3], "b": [0.2, 0.8, 0.6, 0.1], "c": [0.5, 0.5, 0.5, 0.5]})
    with pytest.warns(RuntimeWarning, match="constant accuracy vector: c"):
        comp = behaviour.compatibility(acc)
    vectors = accuracy_vectors(acc)
    assert comp.loc["a", "b"] == pytest.approx(np.corrcoef(vectors.loc["a"], vectors.loc["b"])[0, 1])
    assert np.isnan(comp.loc["a", "c"]) and np.isnan(comp.loc["c", "c"]) and comp.loc["a", "a"] == pytest.approx(1)


def test_compatibility_is_nan_for_a_vector_constant_up_to_rounding():
    rng = np.random.default_rng(0)
    cells = [(m, float(lv)) for m, lv in PAPER_GRID]
    vectors = {"flat": [0.1] * len(cells), "a": rng.uniform(size=len(cells)), "b": rng.uniform(size=len(cells))}
    acc = pd.DataFrame([(k, m, lv, x) for k, v in vectors.items() for (m, lv), x in zip(cells, v, strict=True)],
                       columns=["net_id", "manipulation", "level", "accuracy"])
    assert 0 < np.nanstd(accuracy_vectors(acc).loc["flat"].to_numpy()) < 1e-15  # rounding, not exactly 0
    with pytest.warns(RuntimeWarning, match="constant accuracy vector: flat"):
        comp = behaviour.compatibility(acc)
    assert comp.loc["flat"].isna().all() and comp["flat"].isna().all()
    assert np.isfinite(comp.loc["a", "b"]) and comp.loc["b", "b"] == pytest.approx(1)


def test_constant_vector_warning_names_the_first_ten_and_counts_the_rest():
    rng = np.random.default_rng(1)
    vectors = {f"flat{i:02d}": [0.1] * 4 for i in range(12)} | {"a": rng.uniform(size=4), "b": rng.uniform(size=4)}
    with pytest.warns(RuntimeWarning, match=r"vector: flat00, flat01, .*, flat09 and 2 more\.$") as caught:
        comp = behaviour.compatibility(table(vectors))
    assert "flat10" not in str(caught[0].message)  # named only in the count
    assert comp.loc["flat11"].isna().all() and np.isfinite(comp.loc["a", "b"])


def accuracy_table(vectors: np.ndarray, ids=None) -> pd.DataFrame:
    """(N, 37) accuracies → the tidy table over the paper's cells."""
    cells = [(m, float(lv)) for m, lv in PAPER_GRID]
    ids = ids or [f"n{i}" for i in range(len(vectors))]
    return pd.DataFrame([(k, m, lv, x) for k, v in zip(ids, vectors, strict=True)
                         for (m, lv), x in zip(cells, v, strict=True)],
                        columns=["net_id", "manipulation", "level", "accuracy"])


def difficulty(rng) -> np.ndarray:
    return np.sort(rng.uniform(0.15, 0.9, len(PAPER_GRID)))[::-1]  # shared task difficulty per cell


def test_relative_compatibility_takes_out_shared_difficulty():
    """40 networks = cell difficulty + independent noise: plain compatibility is high for all,
    relative compatibility ≈ −1/39 on average and small per pair; n0 and n1 share a deviation
    from the mean and their relative compatibility is high."""
    rng = np.random.default_rng(3)
    base = difficulty(rng)
    vectors = base + rng.normal(0, 0.02, (40, len(base)))
    shared = rng.normal(0, 0.05, len(base))
    vectors[0] += shared
    vectors[1] += shared
    acc = accuracy_table(vectors)
    plain = behaviour.compatibility(acc)
    relative = behaviour.compatibility(acc, relative=True)
    off = ~np.eye(40, dtype=bool)
    assert plain.to_numpy()[off].min() > 0.9
    independent = relative.iloc[2:, 2:].to_numpy()[~np.eye(38, dtype=bool)]
    assert abs(independent.mean() + 1 / 39) < 0.02 and np.abs(independent).max() < 0.6
    assert abs(relative.loc["n2", "n3"]) < 0.4
    assert relative.loc["n0", "n1"] > 0.8
    # literal twin: corrcoef of the vectors minus the population mean, pair by pair
    wide = accuracy_vectors(acc)
    residual = wide.to_numpy() - wide.to_numpy().mean(axis=0)
    for i, j in [(0, 1), (2, 3), (5, 39), (7, 7)]:
        want = np.corrcoef(residual[i], residual[j])[0, 1]
        assert relative.iloc[i, j] == pytest.approx(want, abs=1e-12)


def test_relative_compatibility_nan_for_a_constant_relative_vector_and_minus_one_for_two():
    rng = np.random.default_rng(4)
    x, y = difficulty(rng) + rng.normal(0, 0.05, (2, len(PAPER_GRID)))
    flat = np.full(len(PAPER_GRID), 0.1)
    with pytest.warns(RuntimeWarning, match="constant accuracy vector: flat"):
        plain = behaviour.compatibility(accuracy_table(np.stack([x, y, flat]), ["x", "y", "flat"]))
    assert plain.loc["flat"].isna().all()
    # z is the mean of x and y plus 0.05, so z minus the population mean is 0.05 / 1.5 in every cell
    z = (x + y) / 2 + 0.05
    with pytest.warns(RuntimeWarning, match=r"constant relative accuracy vector .*: z\.$"):
        relative = behaviour.compatibility(accuracy_table(np.stack([x, y, z]), ["x", "y", "z"]), relative=True)
    assert relative.loc["z"].isna().all() and relative["z"].isna().all()
    assert relative.loc["x", "y"] == pytest.approx(-1)  # the other two are exact negatives now
    # two networks: relative vectors (x − y)/2 and (y − x)/2, so −1 by construction
    with pytest.warns(RuntimeWarning, match="population of two networks is -1 by construction"):
        two = behaviour.compatibility(accuracy_table(np.stack([x, flat]), ["x", "flat"]), relative=True)
    assert two.loc["x", "flat"] == pytest.approx(-1) and two.loc["x", "x"] == pytest.approx(1)
    # … or NaN for both when they differ by a constant (each relative vector is ±half that constant)
    with pytest.warns(RuntimeWarning) as caught:
        offset = behaviour.compatibility(accuracy_table(np.stack([x, x + 0.1]), ["x", "up"]), relative=True)
    assert any("constant relative accuracy vector" in str(w.message) and "up, x." in str(w.message)
               for w in caught)
    assert offset.isna().all().all()


# ----------------------------------------------------------------------------- each trial once, per manipulation

def grid_correctness(rng, n: int = 5, images: int = 61) -> tuple[np.ndarray, Correctness]:
    """(n, 37, images) bits over the paper's grid whose eight identity cells are the same trials (the
    clean images), as a real evaluation gives them; the rest random. Returns the bits and the Correctness."""
    cells = [(m, float(lv)) for m, lv in PAPER_GRID]
    right = random_right(rng, n, len(cells), images)
    identity = [c for c, (m, lv) in enumerate(cells) if is_identity(m, lv)]
    right[:, identity] = right[:, identity[:1]]  # the clean images: one outcome per network and image
    return right, correctness(right, cells=cells)


def test_pooled_kappa_counts_each_clean_trial_once():
    """The default pooled κ equals κ of the literal trial list: every image of every non-identity
    cell once, and the clean images once (not eight times)."""
    rng = np.random.default_rng(5)
    right, data = grid_correctness(rng)
    cells = [(m, float(lv)) for m, lv in PAPER_GRID]
    assert sum(is_identity(m, lv) for m, lv in cells) == 8
    trials = {i: [] for i in range(len(right))}
    clean_seen = False
    for c, (m, lv) in enumerate(cells):  # the literal list, built trial by trial
        if is_identity(m, lv):
            if clean_seen:
                continue
            clean_seen = True
        for i in trials:
            trials[i] += right[i, c].tolist()
    assert len(trials[0]) == 30 * right.shape[2]
    pooled = behaviour.error_consistency_matrix(data)
    every = behaviour.error_consistency_matrix(data, cells=cells)  # explicit cells: pooled as given
    for i, j in [(0, 1), (2, 4), (3, 0)]:
        want = loop_kappa(trials[i], trials[j])
        assert pooled.iloc[i, j] == pytest.approx(want, abs=1e-12)
        assert every.iloc[i, j] == pytest.approx(loop_kappa(right[i].ravel().tolist(), right[j].ravel().tolist()),
                                                 abs=1e-12)
        assert abs(every.iloc[i, j] - want) > 1e-6  # the clean trials counted 8 times weigh differently
    # per manipulation, each keeps its own identity level
    per = behaviour.error_consistency_matrix(data, by_manipulation=True)
    for name in ("blur", "poisson"):
        columns = [c for c, (m, _) in enumerate(cells) if m == name]
        assert any(is_identity(*cells[c]) for c in columns)
        want = loop_kappa(right[1, columns].ravel().tolist(), right[2, columns].ravel().tolist())
        assert per[name].iloc[1, 2] == pytest.approx(want, abs=1e-12)


def test_compatibility_by_manipulation_matches_a_loop():
    rng = np.random.default_rng(6)
    vectors = difficulty(rng) + rng.normal(0, 0.05, (5, len(PAPER_GRID)))
    acc = accuracy_table(vectors)
    cells = [(m, float(lv)) for m, lv in PAPER_GRID]
    for relative in (False, True):
        per = behaviour.compatibility(acc, relative=relative, by_manipulation=True)
        assert list(per) == list(dict.fromkeys(m for m, _ in cells))
        means = vectors.mean(axis=0)
        for name, frame in per.items():
            columns = [c for c, (m, _) in enumerate(cells) if m == name]
            assert list(frame.index) == [f"n{i}" for i in range(5)]
            for i in range(5):
                for j in range(5):
                    x, y = vectors[i, columns], vectors[j, columns]
                    if relative:
                        x, y = x - means[columns], y - means[columns]
                    assert frame.iloc[i, j] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12), (name, i, j)
    # a network flat over one manipulation's levels is NaN there only, the warning names the manipulation
    flat = vectors.copy()
    flat[0, [c for c, (m, _) in enumerate(cells) if m == "gamma"]] = 0.4
    with pytest.warns(RuntimeWarning, match=r"constant accuracy vector: gamma: n0\.$"):
        per = behaviour.compatibility(accuracy_table(flat), by_manipulation=True)
    assert per["gamma"].loc["n0"].isna().all() and np.isfinite(per["blur"].loc["n0", "n1"])
