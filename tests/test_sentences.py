"""The prose the chapters glue (``paradox_utils.sentences``): verdicts and per-method
sentences, summaries, changes with their intervals, values against chance, and the narrow
text tables of chapters 3, 5 and 6."""

import numpy as np
import pandas as pd
import pytest

from paradox_utils import distortions, evaluation, paradox, sentences, transplant


def statistics(r: float, p: float, family_p: float = np.nan, partial: tuple = (np.nan, np.nan)) -> pd.DataFrame:
    index = pd.MultiIndex.from_tuples([("paper", "compatibility"), ("cka", "compatibility")],
                                      names=["method", "behaviour"])
    return pd.DataFrame({"mantel_r": [r, np.nan], "mantel_p": [p, np.nan], "ci_low": [r - 0.1, np.nan],
                         "ci_high": [r + 0.1, np.nan], "family_p": [family_p, np.nan],
                         "holm_p": [min(1.0, 2 * family_p), np.nan], "n_families": 4, "n_networks": 12,
                         "partial_r": [partial[0], np.nan], "partial_p": [partial[1], np.nan],
                         "similar_yet_different": [1, 0], "different_yet_similar": [40, 2], "pairs": 66,
                         "similar_threshold": 0.141, "similar_threshold_kind": "null p99",
                         "behaviour_threshold": 0.568, "behaviour_threshold_kind": "null p99"}, index=index)


def counts(syd=2, dys=1, defined=True, reason="") -> pd.DataFrame:
    index = pd.MultiIndex.from_tuples([("paper", "compatibility"), ("cka", "compatibility")],
                                      names=["method", "behaviour"])
    return pd.DataFrame({"pairs": 66, "similar_yet_different": [syd if defined else np.nan, 0],
                         "different_yet_similar": [dys if defined else np.nan, 0], "defined": [defined, True],
                         "reason": [reason, ""]}, index=index)


def test_the_verdict_never_shows_a_paradox_the_references_cannot_define():
    text = sentences.verdict(counts(defined=False, reason="behaviour (compatibility): the run has no pair of seed "
                                                          "replicates (one recipe, different seeds)"),
                             statistics(0.4, 0.01))
    assert text.startswith("By its own references this run cannot say whether either paradox occurs (paper kernels "
                           "× compatibility): behaviour (compatibility): the run has no pair of seed replicates")
    assert "shows" not in text


def test_the_verdict_counts_weighs_and_reads_families():
    text = sentences.verdict(counts(2, 1), statistics(0.4, 0.01, family_p=0.2, partial=(0.05, 0.6)),
                             {"r": 0.62, "rho": 0.6, "power": 0.8, "n_families": 4})
    assert text.startswith("By its own references this run shows both paradoxes (paper kernels × compatibility: "
                           "2 similar-yet-different pairs, 1 different-yet-similar pair). The evidence is weak")
    assert "With whole families permuted p = 0.2 (Holm-adjusted 0.4: not significant at 0.05 after Holm's " \
           "correction over 2 tests); treating the 12 networks as independent would give p = 0.01." in text
    assert "Holding lineage and training data fixed, r = 0.050 (p = 0.6): none that the run can detect." in text
    assert text.endswith("With 4 families, the smallest correlation this run detects at 80% power is r ≈ 0.62 "
                         "(similarity setting ρ = 0.6 of behaviour's variation beyond its family structure), "
                         "simulated with its own family structure and noise; a weaker association would likely "
                         "go unseen.")
    assert sentences.verdict(counts(0, 5), statistics(0.4, 0.01)).startswith(
        'By its own references this run shows only "different yet similar"')
    assert "weak" not in sentences.verdict(counts(0, 5), statistics(0.4, 0.01))
    assert "Mantel p = 0.01 with networks as the unit, significant" in sentences.verdict(counts(0, 0),
                                                                                        statistics(0.4, 0.01))
    assert "no correlation is detected at 80% power" in sentences.detectable({"r": np.nan, "n_families": 2,
                                                                              "reason": "too few families"})
    with pytest.raises(KeyError, match="no row 'hungarian'"):
        sentences.verdict(counts(), statistics(0.1, 0.5), method="hungarian")


def test_paradox_glue_names_every_value_the_book_uses():
    glued = sentences.paradox_glue(counts(2, 1), statistics(0.4, 0.01, family_p=0.2))
    assert {k: glued[k] for k in ("n_pairs", "n_syd", "n_dys", "mantel_r", "mantel_p", "family_p", "mantel_ci")} == {
        "n_pairs": "66", "n_syd": "2", "n_dys": "1", "mantel_r": "0.400", "mantel_p": "0.01", "family_p": "0.2",
        "mantel_ci": "[0.300, 0.500]"}
    assert glued["per_method"].startswith("paper × compatibility — r = 0.400 (p = 0.2), 2 similar yet different")
    assert sentences.paradox_glue(counts(defined=False), statistics(0.4, 0.01))["n_syd"] == "undefined"


def test_references_are_told_per_axis():
    index = pd.MultiIndex.from_tuples([("weights", "paper"), ("behaviour", "compatibility"), ("behaviour", "kappa")],
                                      names=["axis", "measure"])
    thresholds = pd.DataFrame({"alike_pairs": [2, 2, 2], "alike_floor": [0.99, 0.9, 0.3],
                               "unlike_pairs": [40, 30, 30], "unlike_ceiling": [0.2, 0.8, 0.4],
                               "separates": [True, True, False], "reason": ["", "", "its references overlap (…)"],
                               "chance": [0.14, np.nan, 0.05]}, index=index)
    text = sentences.references_sentence(thresholds)
    assert text == ("Weights: a parent and its child fine-tuned without manipulation (2 pairs) against networks of "
                    "different families (40); paper separates them. Behaviour: seed replicates (one recipe, different "
                    "seeds) (2 pairs) against networks of different families and recipes (30); compatibility "
                    "separates them; kappa does not (its references overlap (…)).")
    table = sentences.reference_table(thresholds)
    assert table.loc[("weights", "paper")].tolist() == ["2 pairs, 0.990", "40 pairs, 0.200", "0.140", "separates"]
    assert table.loc[("behaviour", "compatibility"), "chance (null p99)"] == "undefined"


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


def test_transplant_glue_names_the_one_layer_variant():
    summary = pd.DataFrame({"vi": [0.5, 0.6, 0.7, 0.65, 0.55, 0.45, 0.4], "delta_vi": [0.0, 0.1, 0.2, 0.15, 0.05,
                                                                                     -0.05, -0.1],
                            "delta_low": [0.0, 0.05, 0.1, -0.01, 0.0, -0.1, -0.2],
                            "delta_high": [0.0, 0.15, 0.3, 0.3, 0.1, 0.0, -0.05],
                            "verdict": ["—", "increase", "increase", "not distinguishable from no change",
                                        "increase", "not distinguishable from no change", "decrease"]},
                           index=["parent", "child", "parent + all child convs", "parent + child's layer3.0.conv1",
                                  "parent + child's layer3.0.conv1 (BN re-estimated)",
                                  "parent + child's layer3.0.conv1 (conv only)",
                                  "parent + all child convs (conv only)"]).assign(test_images=2000)
    results = transplant.TransplantResults(accuracy=pd.DataFrame(), summary=summary, sweep=sweep([0.1, -0.2, 0.0]),
                                           profile=pd.DataFrame(), deviated="layer3.0.conv1",
                                           one_layer="parent + child's layer3.0.conv1")
    glued = sentences.transplant_glue(results, "n1", "n1-ft-all")
    assert glued["vi_one"] == "0.650" and glued["vi_all"] == "0.700"  # by name, not by row position
    assert glued["vi_one_conv"] == "0.450" and glued["vi_all_conv"] == "0.400"  # the BatchNorms left the parent's
    assert glued["change_all_conv"] == "-0.100, 95 % interval -0.200 to -0.050"
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


def test_statistics_split_into_two_narrow_tables_of_rounded_text():
    stats = statistics(0.0076191, 0.934, family_p=0.5, partial=(-0.41, 0.003))
    association = sentences.association_table(stats)
    assert list(association.columns) == ["r", "95 % interval (families)", "p: networks / families / Holm",
                                         "beyond lineage and data: r (p)"]
    assert association.iloc[0].tolist() == ["0.008", "−0.092 to 0.108", "0.934 / 0.500 / 1.000", "−0.410 (0.003)"]
    assert association.iloc[1, 1] == "undefined to undefined"
    networks_only = sentences.association_table(stats.drop(columns=["family_p", "holm_p", "partial_r", "partial_p"]))
    assert list(networks_only.columns) == ["r", "95 % interval (networks)", "p"]
    table = sentences.count_table(counts(3, 0), stats)
    assert table.columns.tolist() == ["by the run's references", "by above chance (null p99)", "pairs"]
    assert table.iloc[0].tolist() == ["3 / 0", "1 / 40", 66]
    assert sentences.count_table(counts(defined=False), stats).iloc[0, 0] == "undefined"
    fixed = stats.assign(similar_threshold_kind="fixed", behaviour_threshold_kind="fixed")
    assert sentences.count_table(counts(), fixed).columns[1] == "by the paper's 0.5"


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


def grounding_table(values: dict, n_families: int = 8, scope: str = "all") -> pd.DataFrame:
    """{(similarity, behaviour, pairs): (r, low, high)} → a grounding table as grounding.grounding_table writes it."""
    return pd.DataFrame([{"similarity": s, "behaviour": b, "scope": scope, "pairs": p, "r": r, "low": lo, "high": hi,
                          "n_pairs": 100, "n_families": n_families, "resamples": 1000, "level": 0.95}
                         for (s, b, p), (r, lo, hi) in values.items()])


def test_grounding_sentences_name_the_best_measure_and_whether_it_holds_within_families():
    holds = grounding_table({("paper", "kappa", "all"): (0.30, 0.05, 0.50), ("cka", "kappa", "all"): (0.62, 0.31, 0.80),
                             ("cka", "kappa", "within families"): (0.45, 0.12, 0.70),
                             ("paper", "kappa", "within families"): (0.9, 0.8, 0.95)})
    text = sentences.grounding_sentences(holds)
    assert text.startswith("Over the whole grid, cka tracks kappa best (r = 0.62, 95 % interval over 8 families "
                           "0.31 to 0.80; next, paper at r = 0.30).")
    assert "It holds within families (r = 0.45, 95 % interval over 8 families 0.12 to 0.70)" in text
    assert "weak" not in text
    lineage = grounding_table({("cka", "compatibility", "all"): (0.62, 0.31, 0.80),
                               ("cka", "compatibility", "within families"): (0.05, -0.30, 0.40)})
    text = sentences.grounding_sentences(lineage)
    assert "Within families it does not clearly hold (r = 0.05, 95 % interval over 8 families −0.30 to 0.40, " \
           "an interval that reaches 0): what it tracks may be family membership alone." in text


def test_grounding_sentences_say_when_the_evidence_is_weak():
    table = grounding_table({("paper", "compatibility", "all"): (0.20, -0.10, 0.45),
                             ("cka", "compatibility", "all"): (-0.05, -0.40, 0.30),
                             ("paper", "compatibility", "within families"): (np.nan, np.nan, np.nan)}, n_families=4)
    text = sentences.grounding_sentences(table)
    assert text.startswith("Over the whole grid, no similarity measure clearly tracks compatibility: the largest "
                           "correlation, paper's (r = 0.20, 95 % interval over 4 families −0.10 to 0.45; next, cka "
                           "at r = −0.05), has an interval that reaches 0.")
    assert "Within families it cannot be read" in text
    assert text.endswith("The evidence is weak: only 4 families (the intervals need about 7 or more) and the "
                         "interval over all pairs reaches 0.")
    few = grounding_table({("cka", "kappa", "all"): (0.7, 0.2, 0.9)}, n_families=3, scope="salt_pepper")
    assert sentences.grounding_sentences(few, "salt_pepper").startswith("Under salt & pepper, cka tracks kappa best")
    assert "The evidence is weak: only 3 families" in sentences.grounding_sentences(few, "salt_pepper")
    undefined = grounding_table({("cka", "kappa", "all"): (np.nan, np.nan, np.nan)})
    assert sentences.grounding_sentences(undefined) == ("No similarity measure has a defined correlation with kappa "
                                                        "over the whole grid.")
    with pytest.raises(ValueError, match="no scope 'blur'"):
        sentences.grounding_sentences(table, "blur")


def test_the_recipe_is_read_from_the_recorded_configs():
    import json

    catalog = pd.DataFrame({"config": [json.dumps({"optimiser": "sgd", "lr": lr, "epochs": 2, "seed": seed,
                                                   "manipulation": None}) for lr, seed in ((0.1, 0), (0.1, 1),
                                                                                           (0.15, 2))]})
    text = sentences.recipe_text(catalog)
    assert text.startswith("This run trained 3 networks with optimiser sgd; peak learning rate 0.1 or 0.15; epochs 2; "
                           "augmentation none; 3 distinct seeds. The paper trained with Adam")
    assert "not recorded" in sentences.recipe_text(pd.DataFrame({"config": [None]}))
