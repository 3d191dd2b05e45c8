import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from paradox_utils import plots
from paradox_utils.distortions import PAPER_GRID

GREEN, RED, YELLOW = "#1a9850", "#d73027", "#f2d600"


def matrix(ids=("a", "b", "c")) -> pd.DataFrame:
    n = len(ids)
    values = np.full((n, n), 0.3) + 0.7 * np.eye(n)
    return pd.DataFrame(values, index=list(ids), columns=list(ids))


@pytest.mark.parametrize("kind,low,high", [("similarity", 0, 1), ("compatibility", 0, 1), ("kappa", 0, 1)])
def test_similarity_like_kinds_run_from_red_at_zero_to_green_at_one(kind, low, high):
    trace = plots.heatmap(matrix(), "m", kind=kind).data[0]
    assert (trace.zmin, trace.zmax) == (low, high)
    assert trace.colorscale[0][1] == RED and trace.colorscale[-1][1] == GREEN  # the paper's Figures 6, 7, 9, 10
    assert [c for _, c in trace.colorscale] == [c for _, c in plots.SIMILARITY_COLORSCALE]
    assert trace.colorbar.title.text == plots.MATRIX_KINDS[kind].label


def test_paradox_kind_runs_yellow_green_red_over_minus_one_to_one():
    trace = plots.heatmap(matrix() - 0.5, "d", kind="paradox", zlabel="difference").data[0]
    assert (trace.zmin, trace.zmax) == (-1, 1)
    assert [c for _, c in trace.colorscale] == [YELLOW, GREEN, RED]  # −1, 0, +1: the paper's Figures 2, 3, 8, 11
    assert trace.colorbar.title.text == "difference"


def test_heatmap_kind_is_required_and_checked_and_zmin_overrides_the_kinds():
    with pytest.raises(TypeError):
        plots.heatmap(matrix(), "m")  # every figure must say what it holds
    with pytest.raises(ValueError, match="Unknown heat-map kind 'rainbow'; valid: paradox, similarity"):
        plots.heatmap(matrix(), "m", kind="rainbow")
    assert plots.heatmap(matrix(), "m", kind="similarity", zmin=0.2).data[0].zmin == 0.2


def test_chance_is_a_labelled_tick_on_the_colour_bar():
    bar = plots.heatmap(matrix(), "m", kind="similarity", chance=0.136).data[0].colorbar
    ticks = dict(zip(bar.tickvals, bar.ticktext, strict=True))
    assert ticks[0.136] == "chance 0.136"
    assert ticks[0.0] == "0" and ticks[1.0] == "1"
    close = plots.heatmap(matrix(), "m", kind="similarity", chance=0.19).data[0].colorbar
    assert 0.2 not in close.tickvals and 0.19 in close.tickvals  # a tick that would overlap the label goes
    kappa = plots.heatmap(matrix(), "κ", kind="kappa", chance=0.0).data[0].colorbar
    assert dict(zip(kappa.tickvals, kappa.ticktext, strict=True))[0.0] == "chance 0.000"
    off = plots.heatmap(matrix(), "m", kind="similarity", zmin=0.5, chance=0.136).data[0].colorbar
    assert 0.136 not in off.tickvals and "chance 0.136, off the scale" in off.title.text
    assert plots.heatmap(matrix(), "m", kind="similarity").data[0].colorbar.tickvals is None  # no chance: no marks
    with pytest.raises(ValueError, match="paradox matrix .* has no chance level"):
        plots.heatmap(matrix(), "d", kind="paradox", chance=0.1)


def test_heatmap_draws_the_networks_asked_for_and_says_how_many_of_all():
    ids = ["p", "c1", "u", "c2"]
    parents = {"p": None, "c1": "p", "u": None, "c2": "p"}
    fig = plots.heatmap(matrix(ids), "Similarity", parents, kind="similarity", networks=["u", "p", "c2"])
    assert list(fig.data[0].x) == ["p", "c2", "u"]  # lineage order within the subset
    assert fig.data[0].z.shape == (3, 3)
    assert fig.layout.title.text == "Similarity (3 of 4 networks)"
    assert plots.heatmap(matrix(ids), "Similarity", parents, kind="similarity").layout.title.text == "Similarity"
    with pytest.raises(ValueError, match="no network x"):
        plots.heatmap(matrix(ids), "Similarity", parents, kind="similarity", networks=["p", "x"])


def test_vi_bars_draw_the_subset_sorted_by_vi_and_say_how_many():
    rng = np.random.default_rng(0)
    rows = [{"net_id": net, "manipulation": name, "level": level, "accuracy": rng.uniform(0.1, 0.9)}
            for net in ("n0", "n1", "n2") for name, level in PAPER_GRID]
    acc = pd.DataFrame(rows)
    fig = plots.vi_bars(acc, networks=["n2", "n0"])
    vi = acc[acc["net_id"].isin(["n0", "n2"])].groupby(["net_id", "manipulation"])["accuracy"].mean()
    expected = vi.groupby("net_id").mean().sort_values().index
    assert list(fig.data[0].x) == list(expected)
    assert fig.layout.title.text == "Visual intelligence per network (sorted) (2 of 3 networks)"
    assert "networks)" not in plots.vi_bars(acc).layout.title.text
    measured = plots.vi_bars(acc.assign(n_images=1000))  # evaluate's table: the set is named beside the VI
    assert measured.layout.title.text == "Visual intelligence per network on 1,000 test images (sorted)"
    assert measured.layout.yaxis.title.text.startswith("VI on 1,000 test images")


def test_training_figure_draws_curves_for_several_epochs_and_bars_for_one():
    def history(*accuracies):
        return [{"epoch": k + 1, "val_accuracy": a} for k, a in enumerate(accuracies)]

    curves = plots.training_figure({"a": history(0.3, 0.5), "b": history(0.4)})
    assert [t.type for t in curves.data] == ["scatter", "scatter"] and list(curves.data[0].y) == [0.3, 0.5]
    single = plots.training_figure({"a": history(0.3), "b": history(0.45), "c": []})  # every network: one epoch
    assert [t.type for t in single.data] == ["bar"]  # not a column of dots at epoch 1
    assert list(single.data[0].x) == ["a", "b"] and list(single.data[0].y) == [0.3, 0.45]
    assert "single epoch" in single.layout.title.text


def population(families: dict[str, int], singletons: int) -> dict[str, str | None]:
    """net_id → parent: each key of ``families`` a parent with that many children, then singletons."""
    parents: dict[str, str | None] = {}
    for parent, children in families.items():
        parents[parent] = None
        parents.update({f"{parent}-c{i}": parent for i in range(children)})
    parents.update({f"s{i}": None for i in range(singletons)})
    return parents


def test_families_hold_each_base_with_every_descendant_in_lineage_order():
    parents = {"a": None, "b": None, "a1": "a", "a1x": "a1", "b1": "b", "a2": "a"}
    assert plots.families(parents) == [["a", "a1", "a1x", "a2"], ["b", "b1"]]


@pytest.mark.parametrize("seed", range(6))
def test_representative_subset_keeps_families_together_and_has_n_networks(seed):
    parents = population({"p": 3, "q": 2, "r": 5}, singletons=4)  # families of 4, 3, 6 and four of 1: 17
    order = plots.lineage_order(list(parents), parents)
    groups = plots.families(parents)
    for n in range(1, len(parents)):
        chosen = plots.representative_subset(parents, n, seed)
        assert len(chosen) == n == len(set(chosen))
        assert chosen == [net for net in order if net in chosen]  # lineage order
        assert all(parents[net] in chosen for net in chosen if parents[net])  # an offspring comes with its parent
        partial = [g for g in groups if 0 < len(set(g) & set(chosen)) < len(g)]
        assert len(partial) <= 1  # at most one family is cut to reach n exactly ...
        for group in partial:  # ... and it keeps its parent and first offspring
            assert [net for net in chosen if net in group] == group[:len(set(group) & set(chosen))]
        if n <= 4:  # the four singletons can always fill what is left: nothing needs cutting
            assert not partial


def test_representative_subset_is_seeded_and_takes_everyone_for_zero_or_too_many():
    parents = population({"p": 9, "q": 9, "r": 9}, singletons=20)
    assert plots.representative_subset(parents, 20, seed=3) == plots.representative_subset(dict(parents), 20, seed=3)
    draws = {tuple(plots.representative_subset(parents, 20, seed)) for seed in range(8)}
    assert len(draws) > 1  # the seed matters
    everyone = plots.lineage_order(list(parents), parents)
    for n in (0, -1, len(parents), len(parents) + 5):
        assert plots.representative_subset(parents, n) == everyone


def test_the_papers_population_gives_twenty_of_329_in_whole_families():
    parents = population({f"b{i:03d}": 9 for i in range(25)}, singletons=79)  # 104 bases + 225 offspring
    groups = plots.families(parents)
    for seed in range(5):
        chosen = plots.representative_subset(parents, 20, seed)
        assert len(chosen) == 20
        assert all(set(g) <= set(chosen) or not set(g) & set(chosen) for g in groups)  # whole families only
    ids = list(parents)
    fig = plots.heatmap(pd.DataFrame(np.eye(len(ids)), index=ids, columns=ids), "Similarity", parents,
                        kind="similarity", networks=plots.representative_subset(parents, 20))
    assert fig.layout.title.text == "Similarity (20 of 329 networks)"


def test_paradox_scatter_draws_the_similarity_chance_line():
    pairs = pd.DataFrame({"a": ["x", "y"], "b": ["y", "z"], "relation": ["unrelated", "siblings"],
                          "similarity_paper": [0.2, 0.8], "compatibility": [0.9, 0.3]})
    fig = plots.paradox_scatter(pairs, "paper", chance=0.136)
    line = next(s for s in fig.layout.shapes if s.name == "chance")
    assert (line.x0, line.x1) == (0.136, 0.136)
    assert next(a for a in fig.layout.annotations if a.name == "chance").text == "similarity chance 0.136"
    assert not [s for s in plots.paradox_scatter(pairs, "paper").layout.shapes if s.name == "chance"]


def test_paradox_scatter_draws_a_large_relation_with_webgl():
    """The paper's 53,956 pairs as SVG markers crawl in a browser: a relation with more than
    WEBGL_POINTS pairs is a scattergl trace, the few related pairs stay SVG."""
    rng = np.random.default_rng(0)
    n = plots.WEBGL_POINTS + 1
    pairs = pd.DataFrame({"a": [f"n{i}" for i in range(n + 2)], "b": [f"m{i}" for i in range(n + 2)],
                          "relation": ["unrelated"] * n + ["parent-child", "siblings"],
                          "similarity_paper": rng.uniform(0, 1, n + 2), "compatibility": rng.uniform(0, 1, n + 2)})
    fig = plots.paradox_scatter(pairs, "paper")
    assert {t.name: t.type for t in fig.data} == {"parent-child": "scatter", "siblings": "scatter",
                                                  "unrelated": "scattergl"}
    unrelated = next(t for t in fig.data if t.name == "unrelated")
    np.testing.assert_allclose(unrelated.x, pairs["similarity_paper"][:n], atol=1e-7)
    assert unrelated.text[0] == "n0 vs m0"


def profile(means, stds=None) -> pd.DataFrame:
    return pd.DataFrame({"layer": [f"conv{i}" for i in range(len(means))], "mean": means,
                         "std": stds if stds is not None else [0.01] * len(means)})


def test_layer_profile_marks_chance_as_a_line_within_its_range_else_at_the_edge():
    inside = plots.layer_profile_figure({"c": profile([0.3, 0.5, 0.1])}, chance=0.136)
    line = next(s for s in inside.layout.shapes if s.name == "chance")
    assert (line.y0, line.y1) == (0.136, 0.136)
    far = plots.layer_profile_figure({"c": profile([0.99, 0.97, 0.995])}, chance=0.136)
    assert not [s for s in far.layout.shapes if s.name == "chance"]
    note = next(a for a in far.layout.annotations if a.name == "chance")
    assert note.text == "chance 0.136 below this axis"
    low, high = far.layout.yaxis.range
    assert 0.95 < low < 0.96 and high > 1.0  # the axis stays on the profile (0.96–1.005) so its layers differ visibly
    assert not plots.layer_profile_figure({"c": profile([0.9, 0.8])}).layout.shapes


def test_transplant_sweep_marks_chance_on_the_correlation_axis():
    sweep = pd.DataFrame({"layer": ["conv1", "conv2", "conv3"], "layer_correlation": [0.97, 0.99, 0.995],
                          "delta_vi": [0.01, -0.02, 0.0]})
    far = plots.transplant_sweep_figure(sweep, chance=0.136)
    assert next(a for a in far.layout.annotations if a.name == "chance").text == "chance 0.136 left of this axis"
    near = plots.transplant_sweep_figure(sweep.assign(layer_correlation=[0.1, 0.4, 0.9]), chance=0.136)
    assert next(s for s in near.layout.shapes if s.name == "chance").x0 == 0.136
    assert far.layout.yaxis.title.text == "ΔVI of the parent"
    measured = plots.transplant_sweep_figure(sweep.assign(test_images=300))
    assert measured.layout.yaxis.title.text == "ΔVI of the parent on 300 test images"


def sweep_table() -> pd.DataFrame:
    """A ResNet20's 21 conv layers at nearly the same correlation, as a short fine-tune leaves them."""
    rng = np.random.default_rng(1)
    layers = ["conv1", *(f"layer{s}.{b}.conv{c}" for s in (1, 2, 3) for b in (0, 1, 2) for c in (1, 2)),
              "layer2.0.shortcut", "layer3.0.shortcut"]
    return pd.DataFrame({"layer": layers, "layer_correlation": rng.uniform(0.9995, 1.0, len(layers)),
                         "delta_vi": rng.normal(0, 0.008, len(layers))})


def test_long_titles_break_between_words_and_short_ones_stay():
    fig = go.Figure(layout={"title": "Intrinsic similarity (hungarian) vs relative compatibility, all pairs"})
    lines = plots.titled_for_any_width(fig).layout.title.text.split("<br>")
    assert len(lines) == 2 and all(len(line) <= plots.TITLE_CHARACTERS for line in lines)
    assert " ".join(lines) == fig.layout.title.text and "<br>" not in fig.layout.title.text  # the input is kept
    short = go.Figure(layout={"title": "Validation accuracy per epoch"})
    assert plots.titled_for_any_width(short) is short


def test_transplant_sweep_names_only_the_largest_changes_that_fit():
    sweep = sweep_table()
    fig = plots.transplant_sweep_figure(sweep, labels=5)
    trace = fig.data[0]
    named = [layer for layer, text in zip(sweep["layer"], trace.text, strict=True) if text]
    top = sweep.loc[sweep["delta_vi"].abs().nlargest(5).index]
    assert 1 <= len(named) <= 5 and set(named) <= set(top["layer"])
    assert list(trace.customdata) == list(sweep["layer"])  # every layer on hover
    first = top.iloc[0]  # the largest change gets its first choice: away from 0, towards the middle
    middle = sum(fig.layout.xaxis.range) / 2
    expected = f"{'bottom' if first.delta_vi < 0 else 'top'} {'left' if first.layer_correlation > middle else 'right'}"
    assert trace.textposition[first.name] == expected
    low, high = fig.layout.yaxis.range
    assert low < min(sweep["delta_vi"].min(), 0) and high > max(sweep["delta_vi"].max(), 0)
    assert not any(plots.transplant_sweep_figure(sweep, labels=0).data[0].text)
    close = pd.DataFrame({"layer": ["layer3.1.conv2", "layer3.2.conv2"], "layer_correlation": [0.99955, 0.99956],
                          "delta_vi": [-0.0125, -0.0130]})  # two names that would cover each other
    texts = plots.transplant_sweep_figure(close).data[0].text
    assert all(texts) and len(set(plots.transplant_sweep_figure(close).data[0].textposition)) == 2


def grounding_rows() -> pd.DataFrame:
    """A grounding table by hand: two similarity measures × two behavioural measures × three pair sets."""
    rows = []
    for s, sim in enumerate(["paper", "cka"]):
        for b, beh in enumerate(["compatibility", "kappa"]):
            for p, pairs in enumerate(["all", "within families", "between families"]):
                r = 0.1 * (s + 1) + 0.2 * b - 0.05 * p
                rows.append({"similarity": sim, "behaviour": beh, "scope": "all", "pairs": pairs, "r": r,
                             "low": r - 0.1, "high": r + 0.2, "n_pairs": 66, "n_families": 4, "resamples": 100,
                             "level": 0.95})
    rows.append({**rows[0], "scope": "blur"})
    return pd.DataFrame(rows)


def test_grounding_figure_draws_each_pair_set_with_its_family_interval_and_a_zero_line():
    table = grounding_rows()
    fig = plots.grounding_figure(table)
    assert [t.name for t in fig.data] == ["all", "within families", "between families"] * 2  # one panel per measure
    assert [t.showlegend for t in fig.data] == [True] * 3 + [False] * 3
    assert [a.text for a in fig.layout.annotations] == ["compatibility", "kappa"]
    within_kappa = fig.data[4]
    want = table[(table["scope"] == "all") & (table["behaviour"] == "kappa") & (table["pairs"] == "within families")]
    np.testing.assert_allclose(within_kappa.x, want["r"])  # rows in the table's similarity order
    np.testing.assert_allclose(within_kappa.error_x.array, want["high"] - want["r"])
    np.testing.assert_allclose(within_kappa.error_x.arrayminus, want["r"] - want["low"])
    assert within_kappa.marker.symbol == "diamond"
    assert within_kappa.marker.color == plots.RELATION_COLOURS["parent-child"]
    assert list(fig.layout.yaxis.ticktext) == ["paper", "cka"]
    zero = [s for s in fig.layout.shapes if s.name == "zero"]
    assert len(zero) == 2 and all(s.x0 == s.x1 == 0 for s in zero)  # in both panels
    assert "95 % family intervals" in fig.layout.title.text
    blur = plots.grounding_figure(table, scope="blur")
    assert len(blur.data) == 3 and "under blur" in blur.layout.title.text
    with pytest.raises(ValueError, match="no scope 'gamma'; it holds all, blur"):
        plots.grounding_figure(table, scope="gamma")
