import os
import stat

import numpy as np
import pandas as pd
import pytest

from paradox_utils import distortions, evaluation, explorer, files, paradox, report, sentences, transplant


def statistics(syd: int, dys: int, r: float, p: float) -> pd.DataFrame:
    return pd.DataFrame([{"method": "paper", "mantel_r": r, "mantel_p": p, "ci_low": r - 0.1, "ci_high": r + 0.1,
                          "similar_yet_different": syd, "different_yet_similar": dys, "pairs": 10},
                         {"method": "cka", "mantel_r": np.nan, "mantel_p": np.nan, "ci_low": np.nan,
                          "ci_high": np.nan, "similar_yet_different": 0, "different_yet_similar": 1, "pairs": 10}]
                        ).set_index("method")


def test_verdict_and_method_sentences():
    assert sentences.verdict(statistics(2, 1, 0.4, 0.01)) == (
        "This run shows both paradoxes. The evidence is weak: only 2 similar-yet-different pairs and 1 "
        "different-yet-similar pair (a pair or two can cross a threshold by chance). Even so, similarity and "
        "compatibility are positively related across pairs (p < 0.05).")
    assert "weak" not in sentences.verdict(statistics(0, 3, -0.2, 0.3))
    assert sentences.verdict(statistics(0, 3, -0.2, 0.3)).startswith("This run shows only one of the two")
    assert "does not significantly predict" in sentences.verdict(statistics(0, 3, -0.2, 0.3))
    assert "undefined" in sentences.verdict(statistics(0, 0, np.nan, np.nan))
    assert sentences.verdict(statistics(0, 0, 0.1, 0.5)).startswith("This run shows neither paradox")
    with pytest.raises(KeyError, match="no row 'hungarian'"):
        sentences.verdict(statistics(0, 0, 0.1, 0.5), method="hungarian")
    assert sentences.method_sentences(statistics(2, 1, 0.4, 0.01)) == (
        "paper — Mantel r = 0.400 (p = 0.01), 2 similar yet different, 1 different yet similar; "
        "cka — Mantel r = undefined (p = undefined), 0 similar yet different, 1 different yet similar.")


def test_paradox_glue_names_every_value_the_book_uses():
    glued = sentences.paradox_glue(statistics(2, 1, 0.4, 0.01))
    assert glued == {"n_pairs": "10", "n_syd": "2", "n_dys": "1", "mantel_r": "0.400", "mantel_p": "0.01",
                     "mantel_ci": "[0.300, 0.500]", "verdict": sentences.verdict(statistics(2, 1, 0.4, 0.01)),
                     "per_method": sentences.method_sentences(statistics(2, 1, 0.4, 0.01))}


def sweep(deltas: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"layer": [f"l{i}" for i in range(len(deltas))],
                         "layer_correlation": np.linspace(0.9, 1.0, len(deltas)), "delta_vi": deltas})


def test_best_sweep_layer_says_raise_decrease_or_none():
    rises = sentences.best_sweep_layer(sweep([0.01, 0.05, -0.02]))
    assert rises.startswith("l1 raises the parent's VI most (+0.050); across layers, the Spearman correlation")
    mixed = sentences.best_sweep_layer(sweep([0.01, -0.08, 0.0]))
    assert mixed.startswith("l0 raises the parent's VI most (+0.010), but the largest change is a decrease: "
                            "l1 (-0.080);")
    none = sentences.best_sweep_layer(sweep([-0.01, -0.08, -0.03]))
    assert none.startswith("no single layer raises the parent's VI (the least harmful, l0, changes it by -0.010); "
                           "the largest change is a decrease: l1 (-0.080);")
    assert sentences.best_sweep_layer(sweep([0.0, 0.0, 0.0])).startswith("no single layer changes the parent's VI;")
    assert "undefined" in sentences.best_sweep_layer(sweep([0.02, 0.01]))  # two layers: no rank correlation
    assert sentences.best_sweep_layer(sweep([])) == "the sweep was not run."
    assert "changes most" not in rises + mixed + none
    measured = sentences.best_sweep_layer(sweep([0.01, 0.05, -0.02]).assign(test_images=300))
    assert measured.startswith("l1 raises the parent's VI on 300 test images most (+0.050)")  # the set beside the VI


def test_mean_std_relation_summary_and_most_moved_layer():
    assert sentences.mean_std([1.0, 3.0, np.nan]) == "2.000 ± 1.000 (n = 2)"
    assert sentences.mean_std([np.nan]) == "n/a (no values)"
    ids = ["p", "c", "u"]
    sim = pd.DataFrame([[1, 0.9, 0.2], [0.9, 1, 0.4], [0.2, 0.4, 1]], index=ids, columns=ids, dtype=float)
    pairs = paradox.pair_table({"paper": sim, "cka": sim}, {"c": "p"})
    summary = sentences.relation_summary(pairs, ["paper", "cka"])
    assert list(summary.columns) == ["paper", "cka"]
    assert summary.loc["parent-child", "paper"] == "0.900 ± 0.000 (n = 1)"
    assert summary.loc["unrelated", "paper"] == "0.300 ± 0.100 (n = 2)"
    profiles = {"c": pd.DataFrame({"layer": ["conv1", "conv2"], "mean": [0.99, 0.95]}),
                "d": pd.DataFrame({"layer": ["conv1", "conv2"], "mean": [0.9, 0.97]})}
    assert sentences.most_moved_layer(profiles) == "conv1"  # mean 0.945 < 0.96
    assert sentences.most_moved_layer({}) == "n/a (no offspring)"


def test_matrices_and_layer_table_round_trip(tmp_path):
    ids = ["b", "a", "c"]  # not sorted: the stored order is kept
    matrix = pd.DataFrame(np.arange(9.0).reshape(3, 3), index=ids, columns=ids)
    catalog = pd.DataFrame({"net_id": ids, "sha256": ["s-b", "s-a", "s-c"]})
    report.save_matrices(tmp_path / "m.parquet", {"paper": matrix, "cka": matrix * 2}, report.weight_hashes(catalog))
    assert stat.S_IMODE(os.stat(tmp_path / "m.parquet").st_mode) == 0o666 & ~_umask()
    loaded = report.load_matrices(tmp_path / "m.parquet", catalog)
    assert list(loaded) == ["paper", "cka"]
    pd.testing.assert_frame_equal(loaded["cka"], matrix * 2, check_names=False)
    with pytest.raises(files.ResultError, match="run chapter 4"):
        report.load_matrices(tmp_path / "missing.parquet", catalog)
    retrained = catalog.assign(sha256=["s-b", "s-a2", "s-c"])  # a retrained since the matrices were made
    with pytest.raises(files.ResultError, match="other weights of a than the catalog lists.*run chapter 4"):
        report.load_matrices(tmp_path / "m.parquet", retrained)
    grown = pd.concat([catalog, pd.DataFrame({"net_id": ["d"], "sha256": ["s-d"]})])
    with pytest.raises(files.ResultError, match="has no results for d"):
        report.load_matrices(tmp_path / "m.parquet", grown)
    subset = report.load_matrices(tmp_path / "m.parquet", catalog.iloc[:2])  # networks not in the catalog drop
    assert list(subset["paper"].index) == ["b", "a"]
    layers = np.arange(18.0).reshape(3, 3, 2)
    table = report.layer_table(ids, layers, ["conv1", "conv2"])
    assert list(zip(table["a"], table["b"], table["layer"], strict=True))[:3] == [  # (b, a) is stored as (a, b)
        ("a", "b", "conv1"), ("a", "b", "conv2"), ("b", "c", "conv1")]
    assert table.set_index(["a", "b", "layer"]).loc[("a", "b", "conv2"), "value"] == layers[0, 1, 1]
    assert table.set_index(["a", "b", "layer"]).loc[("a", "c", "conv2"), "value"] == layers[1, 2, 1]
    assert len(table) == 3 * 2


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_explorer_finds_every_pair_of_a_population_the_writer_stored(tmp_path):
    """Catalog order is not alphabetical (b010 before b002, offspring after all bases): the
    explorer finds the layer table of every pair, in either order, through the Parquet file
    chapter 4 writes and chapter 5 reads."""
    ids = ["b010", "b002", "b001", "b010-ft-all", "b002-ft-none", "b001-ft-contrast", "a-first"]
    names = ["conv1", "layer1.0.conv1", "layer3.2.conv2"]
    rng = np.random.default_rng(0)
    upper = np.triu(rng.uniform(size=(len(ids), len(ids))), 1)
    layers = np.stack([upper + upper.T + np.eye(len(ids)) * (k + 1) for k in range(len(names))], axis=-1)
    files.write_table(report.layer_table(ids, layers, names), tmp_path / "layers.parquet")
    stored = files.read_table(tmp_path / "layers.parquet")
    assert all(report.pair_key(a, b) == (a, b) for a, b in zip(stored["a"], stored["b"], strict=True))
    found = 0
    for i, a in enumerate(ids):
        for j, b in enumerate(ids):
            if i == j:
                continue
            row = explorer.pair_layers(stored, a, b)
            assert list(row.columns) == names and row.index.tolist() == [f"{a} vs {b}"], (a, b)
            np.testing.assert_allclose(row.to_numpy()[0], layers[i, j])
            found += 1
    assert found == len(ids) * (len(ids) - 1)
    assert explorer.pair_layers(stored, "b001", "nobody").empty


def test_explorer_helpers_find_a_pair_in_either_order(monkeypatch):
    scores = pd.DataFrame({"a": ["a", "a"], "b": ["b", "b"], "layer": ["conv1", "conv2"], "value": [0.5, 0.7]})
    for a, b in (("a", "b"), ("b", "a")):
        assert explorer.pair_layers(scores, a, b).iloc[0].to_dict() == {"conv1": 0.5, "conv2": 0.7}
    assert explorer.pair_layers(scores, "a", "c").empty
    ids = ["a", "b"]
    cells = explorer.pair_cells({"m": pd.DataFrame([[1, 0.3], [0.3, 1]], index=ids, columns=ids),
                                 "other": pd.DataFrame([[1.0]], index=["c"], columns=["c"])}, "a", "b")
    assert cells.to_dict("records") == [{"m": 0.3}]
    monkeypatch.setenv("PARADOX_BATCH", "1")
    notice = explorer.explorer(pd.DataFrame({"net_id": ids}), {}, scores)
    assert notice is explorer.NOTICE and "JupyterLab" in str(notice)
    html = notice._repr_html_()  # the book's note admonition, not a quoted Python string
    assert html.startswith('<div class="admonition note"><p class="admonition-title">') and "'" not in html


def test_transplant_glue_names_the_one_layer_variant():
    summary = pd.DataFrame({"vi": [0.5, 0.6, 0.7, 0.65, 0.55], "delta_vi": [0.0, 0.1, 0.2, 0.15, 0.05],
                            "delta_low": [0.0, 0.05, 0.1, -0.01, 0.0], "delta_high": [0.0, 0.15, 0.3, 0.3, 0.1],
                            "verdict": ["—", "increase", "increase", "not distinguishable from no change",
                                        "increase"]},
                           index=["parent", "child", "parent + all child convs", "parent + child's layer3.0.conv1",
                                  "parent + child's layer3.0.conv1 (BN re-estimated)"]).assign(test_images=2000)
    results = transplant.TransplantResults(accuracy=pd.DataFrame(), summary=summary, sweep=sweep([0.1, -0.2, 0.0]),
                                           profile=pd.DataFrame(), deviated="layer3.0.conv1",
                                           one_layer="parent + child's layer3.0.conv1")
    glued = sentences.transplant_glue(results, "n1", "n1-ft-all")
    assert glued["vi_one"] == "0.650" and glued["vi_all"] == "0.700"  # by name, not by row position
    assert glued["change_one"].endswith("-0.010 to +0.300: not distinguishable from no change")
    assert glued["change_all"] == "+0.200, 95 % interval +0.100 to +0.300"
    assert {k: glued[k] for k in ("tp_parent", "tp_child", "tp_layer", "tp_images", "vi_parent", "vi_child")} == {
        "tp_parent": "n1", "tp_child": "n1-ft-all", "tp_layer": "layer3.0.conv1", "tp_images": "2,000 test images",
        "vi_parent": "0.500", "vi_child": "0.600"}
    assert glued["sweep_best"] == sentences.best_sweep_layer(results.sweep)


def evaluated(vis: dict[str, float], n_images: int, eval_set: str = "set-a", noise_seed: int = 0,
              precision: str = "float32") -> pd.DataFrame:
    """An accuracy table as ``evaluation.evaluate`` makes it, with every cell of a network at its VI."""
    rows = [{"net_id": net, "weights_sha256": f"sha-{net}", "eval_set": eval_set, "noise_seed": noise_seed,
             "precision": precision, "manipulation": m, "level": float(lv), "accuracy": vi, "top5": float("nan"),
             "n_images": n_images} for net, vi in vis.items() for m, lv in distortions.PAPER_GRID]
    return pd.DataFrame(rows, columns=evaluation.COLUMNS)


def test_vi_across_chapters_says_why_the_transplant_pair_has_other_vis_than_in_chapter_3():
    chapter3 = evaluated({"b000": 0.394, "b000-ft-all": 0.401, "b001": 0.5}, 1000)
    smaller = evaluated({"parent": 0.408, "child": 0.412, "parent + all child convs": 0.41}, 300, "set-b")
    both = transplant.vi_in_both_chapters(smaller, chapter3, "b000", "b000-ft-all")
    assert list(both.index) == ["b000", "b000-ft-all"]
    assert both.loc["b000", ["vi", "test_images", "vi_chapter3", "test_images_chapter3"]].tolist() == pytest.approx(
        [0.408, 300, 0.394, 1000])
    assert both.loc["b000", "difference"] == pytest.approx(0.014) and not both["same_images"].any()
    assert sentences.vi_across_chapters(both) == (
        "Chapter 3 measured b000 and b000-ft-all on 1,000 test images (VI 0.394 and 0.401), this chapter on 300 "
        "(0.408 and 0.412): a VI is estimated from a finite sample of test images, so two samples give VIs that "
        "differ — here by up to 0.014 — with no change in the networks; a profile that sets "
        "transplant_eval_per_class to eval_per_class (as the laptop profile does) measures both chapters on the "
        "same images, and their VIs agree.")
    same = evaluated({"parent": 0.394, "child": 0.401}, 1000)  # the laptop profile: one set
    agree = sentences.vi_across_chapters(transplant.vi_in_both_chapters(same, chapter3, "b000", "b000-ft-all"))
    assert agree == ("Chapter 3 measured b000 and b000-ft-all on the same 1,000 test images with the same noise, "
                     "so their VIs agree: 0.394 and 0.401 in both chapters.")
    noise = evaluated({"parent": 0.399, "child": 0.401}, 1000, noise_seed=1)
    other_noise = sentences.vi_across_chapters(transplant.vi_in_both_chapters(noise, chapter3, "b000", "b000-ft-all"))
    assert "the same 1,000 test images but with noise seed 0 (this chapter: 1)" in other_noise
    bf16 = evaluated({"parent": 0.395, "child": 0.401}, 1000, precision="bfloat16")
    other_precision = sentences.vi_across_chapters(
        transplant.vi_in_both_chapters(bf16, chapter3, "b000", "b000-ft-all"))
    assert "with the same noise but in float32 (this chapter: bfloat16)" in other_precision
    assert "one eval_precision for both chapters gives one VI" in other_precision
    older = chapter3.drop(columns="precision")  # written before rows named their precision: float32
    assert transplant.vi_in_both_chapters(same, older, "b000", "b000-ft-all")["precision_chapter3"].eq("float32").all()
    resampled = evaluated({"parent": 0.41, "child": 0.401}, 1000, "set-c")  # as many, other images
    assert "on another sample of 1,000 test images (VI 0.394 and 0.401) than this chapter (0.410 and 0.401)" in (
        sentences.vi_across_chapters(transplant.vi_in_both_chapters(resampled, chapter3, "b000", "b000-ft-all")))
    with pytest.raises(ValueError, match="no rows for b000-ft-all: run chapter 3"):
        transplant.vi_in_both_chapters(same, chapter3[chapter3["net_id"] != "b000-ft-all"], "b000", "b000-ft-all")
    assert sentences.vi_summary([0.3, 0.5], 1000) == "0.400 ± 0.100 (n = 2) on 1,000 test images"
    assert sentences.images_text(1) == "1 test image"


def test_change_text_quotes_the_interval_and_says_when_it_spans_zero():
    spans = {"delta_vi": 0.004, "delta_low": -0.01, "delta_high": 0.02, "verdict": "not distinguishable from no change"}
    assert sentences.change_text(spans) == ("+0.004, 95 % interval -0.010 to +0.020: not distinguishable from "
                                            "no change")
    rises = {"delta_vi": 0.05, "delta_low": 0.03, "delta_high": 0.07, "verdict": "increase"}
    assert sentences.change_text(rises) == "+0.050, 95 % interval +0.030 to +0.070"
    assert sentences.change_text({"delta_vi": -0.2}) == "-0.200"


def test_share_above_and_null_round_trip(tmp_path):
    pairs = pd.DataFrame({"relation": ["unrelated", "unrelated", "siblings"], "similarity_paper": [0.1, 0.3, 0.9]})
    assert sentences.share_above(pairs, "similarity_paper", 0.2, "unrelated") == (
        "1 of 2 unrelated pairs (50%) lie above 0.200")
    assert "no parent-child pairs" in sentences.share_above(pairs, "similarity_paper", 0.2, "parent-child")
    nulls = {"paper": np.linspace(0, 1, 101), "cka": np.full(120, 0.5)}
    report.save_nulls(tmp_path / "n.parquet", nulls)
    loaded = report.load_nulls(tmp_path / "n.parquet")
    assert list(loaded) == ["paper", "cka"] and np.array_equal(loaded["paper"], nulls["paper"])
    summary = report.null_summary(loaded)
    assert summary.loc["paper", "p99"] == pytest.approx(0.99) and summary.loc["cka", "pairs"] == 120


def test_survival_sentence_reads_every_behaviour_row():
    index = pd.MultiIndex.from_tuples([("paper", "compatibility"), ("paper", "kappa")], names=["method", "behaviour"])
    statistics = pd.DataFrame({"similar_yet_different": [3, 0], "different_yet_similar": [5, 1],
                               "similar_threshold": [0.14, 0.14], "similar_threshold_kind": ["null p99"] * 2,
                               "behaviour_threshold": [0.97, 0.31], "behaviour_threshold_kind": ["null p99"] * 2},
                              index=index)
    text = sentences.survival(statistics)
    assert text.startswith("With compatibility (null p99 threshold 0.970; similarity null p99 0.140): 3 similar yet "
                           "different, 5 different yet similar; with kappa")
    assert text.endswith("0 similar yet different, 1 different yet similar.")


def test_statistics_split_into_two_narrow_tables_of_rounded_text():
    index = pd.MultiIndex.from_tuples([("paper", "compatibility"), ("paper", "kappa")], names=["method", "behaviour"])
    statistics = pd.DataFrame({"mantel_r": [0.0076191, -0.41], "mantel_p": [0.934, 0.003],
                               "ci_low": [-0.295308, float("nan")], "ci_high": [0.378664, 0.7],
                               "similar_yet_different": [2, 0], "different_yet_similar": [43, 46], "pairs": [66, 66],
                               "similar_threshold": [0.14057, 0.14057], "similar_threshold_kind": ["null p99"] * 2,
                               "behaviour_threshold": [0.567725, 0.5],
                               "behaviour_threshold_kind": ["null p99", "fixed"]}, index=index)
    association = sentences.association_table(statistics)
    assert list(association.columns) == ["Mantel r", "p", "95 % interval"] and association.index.equals(index)
    assert association.iloc[0].tolist() == ["0.008", "0.934", "−0.295 to 0.379"]
    assert association.iloc[1].tolist() == ["−0.410", "0.003", "undefined to 0.700"]
    counts = sentences.count_table(statistics)
    assert counts.index.equals(index) and counts["pairs"].tolist() == [66, 66]
    assert counts.iloc[0, :3].tolist() == [2, 43, 66]
    assert counts.iloc[1, 3] == "0.141 (null p99) / 0.500 (fixed)"  # each threshold says what it is
    alike = sentences.count_table(statistics.assign(behaviour_threshold_kind="null p99"))
    assert alike.columns[3] == "thresholds: similarity / behaviour (null p99)"  # one kind: said once
    assert alike.iloc[0, 3] == "0.141 / 0.568"
    assert len(association.columns) + len(counts.columns) < len(statistics.columns)


def test_chapter3_and_6_tables_are_narrow_text_that_names_the_test_images():
    networks = pd.DataFrame({"contrast": [0.4, 0.1], "salt_pepper": [0.9, 0.4], "clean": [0.6, 0.1],
                             "vi": [0.25, 0.6504], "vi_low": [0.2, 0.6], "vi_high": [0.3, 0.7], "test_images": 300},
                            index=pd.Index(["a", "b"], name="net_id"))
    by_vi = sentences.vi_table(networks)
    assert list(by_vi.index) == ["b", "a"]  # highest VI first
    assert list(by_vi.columns) == ["clean accuracy", "VI on 300 test images", "95 % interval"]
    assert by_vi.loc["b"].tolist() == ["0.100", "0.650", "0.600 to 0.700"]
    mixed = sentences.vi_table(networks.assign(test_images=[300, 30]))  # never from one run; said if it happens
    assert mixed.columns[1] == "VI" and mixed["test images"].tolist() == ["30", "300"]
    per_manipulation = sentences.manipulation_table(networks, by_vi.index)
    assert list(per_manipulation.columns) == ["contrast", "salt & pepper"]  # headers that can wrap
    assert list(per_manipulation.index) == ["b", "a"] and per_manipulation.loc["a"].tolist() == ["0.400", "0.900"]
    summary = pd.DataFrame({"gamma": [0.5, 0.4], "vi": [0.5, 0.45], "test_images": 2000, "delta_vi": [0.0, -0.05],
                            "delta_low": [0.0, -0.07], "delta_high": [0.0, float("nan")], "verdict": ["—", "decrease"]},
                           index=pd.Index(["parent", "child"], name="variant"))
    result = sentences.transplant_table(summary)
    assert list(result.columns) == ["VI on 2,000 test images", "ΔVI", "95 % interval", "verdict"]
    assert result.loc["child"].tolist() == ["0.450", "−0.050", "−0.070 to undefined", "decrease"]
    assert sentences.manipulation_table(summary).columns.tolist() == ["gamma"]
    both = pd.DataFrame({"vi": [0.41, 0.39], "test_images": 40, "vi_chapter3": [0.4, 0.4], "test_images_chapter3": 2000,
                         "difference": [0.01, -0.01]}, index=pd.Index(["b000", "b000-ft-all"], name="net_id"))
    chapters = sentences.vi_chapters_table(both)
    assert list(chapters.columns) == ["VI in chapter 3, on 2,000 test images", "VI here, on 40 test images",
                                      "difference"]
    assert chapters.loc["b000-ft-all"].tolist() == ["0.400", "0.390", "−0.010"]


def test_pair_intervals_say_when_zero_is_inside():
    compat = {"a": "b000", "b": "b001", "r": 0.9, "low": 0.8, "high": 0.95}
    kappa = {"kappa": 0.02, "low": -0.01, "high": 0.05}
    assert sentences.pair_intervals(compat, kappa) == (
        "b000 and b001: compatibility 0.900 (95 % interval 0.800 to 0.950), error consistency κ 0.020 "
        "(95 % interval -0.010 to 0.050 — not distinguishable from 0)")
    assert "κ undefined" in sentences.pair_intervals(compat, {**kappa, "kappa": float("nan")})


def test_against_chance_states_only_what_the_numbers_show():
    null = np.linspace(0.0, 1.0, 101)  # mean 0.5, 99th percentile 0.99
    some = sentences.against_chance([0.995, 0.5, np.nan], null, "linear CKA", "untrained networks")
    assert some == ("linear CKA is 0.748 ± 0.247 (n = 2) over pairs, against 0.500 on average for untrained networks "
                    "(99th percentile 0.990); 1 of 2 pairs (50%) lie above it")
    assert sentences.against_chance([0.995, 0.999], null, "linear CKA", "untrained networks").endswith(
        "; every pair lies above it")
    assert sentences.against_chance([0.2, 0.3], null, "linear CKA", "untrained networks").endswith(
        "; no pair lies above it, so by linear CKA no pair is more alike than untrained networks")
    assert "no pairs" in sentences.against_chance([np.nan], null, "linear CKA", "untrained networks")
    assert "no null values" in sentences.against_chance([0.5], [], "linear CKA", "untrained networks")
    assert "high" not in some + sentences.against_chance([0.2], null, "CKA", "untrained networks")


def test_behaviour_against_chance_reads_every_null_or_says_there_were_none():
    pairs = pd.DataFrame({"compatibility": [0.995, 0.2], "kappa": [0.3, 0.4]})
    nulls = {"compatibility": np.linspace(0.0, 1.0, 101), "kappa": np.zeros(200)}
    text = sentences.behaviour_against_chance(pairs, nulls)
    assert text.startswith("Compatibility is 0.598 ± 0.397 (n = 2) over pairs, against 0.500 on average for accuracy "
                           "profiles shuffled across levels within each manipulation (99th percentile 0.990); "
                           "1 of 2 pairs (50%) lie above it; kappa is ")
    assert text.endswith("networks erring independently at their accuracies (99th percentile 0.000); every pair lies "
                         "above it.")
    assert sentences.behaviour_against_chance(pairs, None) == (
        "Behaviour was not read against a null here (thresholds: fixed).")


def test_the_chapters_after_training_name_the_networks_they_leave_out(tmp_path):
    cause = "RuntimeError: the whole cause, " + "word " * 30 + "end"
    rows = [("b000", "done", ""), ("b001", "failed", cause), ("b002", "done", ""), ("b003", "failed", "parent x")]
    files.write_table(pd.DataFrame([{"net_id": n, "parent": None, "status": s, "checkpoint": f"{n}.safetensors",
                                     "sha256": "", "error": e} for n, s, e in rows]), tmp_path / "catalog.parquet")
    with pytest.warns(RuntimeWarning) as warned:
        done = report.done_networks(tmp_path)
    assert done["net_id"].tolist() == ["b000", "b002"]
    assert [str(w.message) for w in warned] == [
        f"Left out: 2 networks that failed in training (b001, b003); the first, b001, failed with {cause}."]
