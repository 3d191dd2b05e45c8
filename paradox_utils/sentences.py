"""The prose the chapters glue into the book: every sentence and formatted number a
chapter shows beside its figures is written here, from the chapter's result tables.

Each function returns text (or a table of text); none computes a statistic the
chapters do not already hold. ``paradox_glue`` and ``transplant_glue`` give the
named values chapters 5 and 6 glue (the names the book's pages refer to).

A VI is a property of a network *and* of the images it was measured on: every sentence
that quotes one names its evaluation set (:func:`images_text`), and
:func:`vi_across_chapters` says why chapters 3 and 6 quote different VIs for one network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .distortions import MANIPULATIONS
from .names import listed  # sentences.listed: the name an issue gave it
from .nulls import NULL_QUANTILE

if TYPE_CHECKING:  # an annotation only: the prose needs no networks
    from .transplant import TransplantResults

__all__ = [
    "against_chance", "association_table", "behaviour_against_chance", "best_sweep_layer", "change_text",
    "count_table", "evaluation_glue", "finetune_glue", "images_text", "listed", "manipulation_table", "mean_std",
    "method_sentences", "most_moved_layer", "pair_intervals", "paradox_glue", "relation_summary", "share_above",
    "similarity_glue", "survival", "training_glue", "transplant_glue", "transplant_table", "verdict",
    "vi_across_chapters", "vi_chapters_table", "vi_summary", "vi_table",
]

# What each behavioural null of ``nulls.behaviour_nulls`` is, as the sentences name it.
BEHAVIOUR_NULLS = {"compatibility": "accuracy profiles shuffled across levels within each manipulation",
                   "relative compatibility": "relative profiles shuffled across levels within each manipulation",
                   "kappa": "networks erring independently at their accuracies"}




def _number(value: float, spec: str) -> str:
    return format(value, spec) if np.isfinite(value) else "undefined"


def _interval(low: float, high: float, spec: str = ".3f") -> str:
    """"−0.295 to 0.379": a 95 % interval as the book's tables show it (a true minus sign)."""
    return f"{_number(low, spec)} to {_number(high, spec)}".replace("-", "−")


def _column(values, spec: str = ".3f") -> list[str]:
    """Numbers as the book's tables show them: text in ``spec`` ("+.3f" for a change), a true minus sign."""
    return [_number(float(v), spec).replace("-", "−") for v in values]


def mean_std(values: Sequence[float] | pd.Series, digits: int = 3) -> str:
    """"m ± s (n = k)" over the finite values (s: population std)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return "n/a (no values)"
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f} (n = {len(values)})"


def images_text(n_images: int) -> str:
    """"2,000 test images": the evaluation set a VI is quoted with."""
    return f"{n_images:,} test image{'s' if n_images != 1 else ''}"


def vi_summary(values: Sequence[float] | pd.Series, n_images: int) -> str:
    """"0.394 ± 0.020 (n = 4) on 1,000 test images": VIs over networks (:func:`mean_std`)
    with the evaluation set they were measured on."""
    return f"{mean_std(values)} on {images_text(n_images)}"


def relation_summary(pairs: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Mean ± std of each method's ``similarity_<m>`` column of a ``paradox.pair_table``,
    per relation (rows: parent-child, siblings, unrelated; columns: the methods)."""
    rows = {relation: {m: mean_std(part[f"similarity_{m}"]) for m in methods}
            for relation, part in pairs.groupby("relation")}
    return pd.DataFrame(rows).T.reindex(columns=list(methods))


def most_moved_layer(profiles: Mapping[str, pd.DataFrame]) -> str:
    """The conv layer with the lowest mean parent–child correlation over all offspring."""
    if not profiles:
        return "n/a (no offspring)"
    merged = pd.concat(profiles.values()).groupby("layer", sort=False)["mean"].mean()
    return str(merged.idxmin())


def _row(statistics: pd.DataFrame, method: str, behaviour: str) -> pd.Series:
    """``method``'s row of a ``paradox.statistics_table``: indexed by method alone (one
    behavioural measure) or, for several, by (method, behaviour)."""
    if isinstance(statistics.index, pd.MultiIndex):
        if (method, behaviour) not in statistics.index:
            raise KeyError(f"The statistics table has no row {method!r} × {behaviour!r} (it has "
                           f"{', '.join(f'{m} × {b}' for m, b in statistics.index)}).")
        return statistics.loc[(method, behaviour)]
    if method not in statistics.index:
        raise KeyError(f"The statistics table has no row {method!r} (it has {', '.join(statistics.index)}).")
    return statistics.loc[method]


def verdict(statistics: pd.DataFrame, alpha: float = 0.05, method: str = "paper",
            behaviour: str = "compatibility") -> str:
    """One sentence on the paper's question, from ``method``'s row (and ``behaviour``'s,
    where the table has several) of ``paradox.statistics_table``."""
    row = _row(statistics, method, behaviour)
    behaviour = row.get("behaviour", behaviour)
    syd, dys = int(row["similar_yet_different"]), int(row["different_yet_similar"])
    shows = ("This run shows both paradoxes." if syd and dys else
             "This run shows only one of the two paradoxes." if syd + dys else
             "This run shows neither paradox at these thresholds.")
    few = [f"{n} {name} pair{'s' if n > 1 else ''}" for n, name in ((syd, "similar-yet-different"),
                                                                    (dys, "different-yet-similar")) if 0 < n < 3]
    if few:  # a pair or two beyond a threshold is what chance alone produces in a population of pairs
        shows += f" The evidence is weak: only {' and '.join(few)} (a pair or two can cross a threshold by chance)."
    if not np.isfinite(row["mantel_p"]):
        return shows + " The Mantel test is undefined here (too few networks or constant values)."
    if row["mantel_p"] < alpha:
        direction = "positively" if row["mantel_r"] > 0 else "negatively"
        return shows + f" Even so, similarity and {behaviour} are {direction} related across pairs (p < {alpha})."
    return shows + f" Similarity does not significantly predict {behaviour} across pairs (p ≥ {alpha})."


def method_sentences(statistics: pd.DataFrame) -> str:
    """"method — Mantel r (p), quadrant counts" for every similarity measure (and
    "method × behaviour" where the table has several behavioural measures)."""
    def label(key) -> str:
        return " × ".join(key) if isinstance(key, tuple) else str(key)

    return "; ".join(f"{label(m)} — Mantel r = {_number(r.mantel_r, '.3f')} (p = {_number(r.mantel_p, '.3g')}), "
                     f"{int(r.similar_yet_different)} similar yet different, "
                     f"{int(r.different_yet_similar)} different yet similar"
                     for m, r in statistics.iterrows()) + "."


def training_glue(catalog: pd.DataFrame) -> dict:
    """Chapter 1's glued values from its catalog of base networks: n_base, base_val_accuracy
    (mean ± sd), base_train_minutes (summed over networks)."""
    return {"n_base": len(catalog), "base_val_accuracy": mean_std(catalog["val_accuracy"]),
            "base_train_minutes": f"{catalog['train_seconds'].sum() / 60:.1f}"}


def finetune_glue(catalog: pd.DataFrame, comparison: pd.DataFrame) -> dict:
    """Chapter 2's glued values: n_offspring, n_population and offspring_change (mean ± sd of
    ``report.offspring_comparison``'s ``change``)."""
    return {"n_offspring": len(comparison), "n_population": len(catalog),
            "offspring_change": mean_std(comparison["change"])}


def evaluation_glue(accuracy: pd.DataFrame, table: pd.DataFrame, outcomes: pd.DataFrame, kappa: pd.DataFrame,
                    catalog: pd.DataFrame) -> dict:
    """Chapter 3's glued values from its accuracy table, its per-network ``table``
    (``evaluation.network_table``), the shared outcomes and the κ matrix (N × N): n_evaluated,
    n_images, clean_accuracy, vi, vi_range, hardest, vi_interval_width, disagree, kappa, and
    origin (the introduction's: trained here, or imported from where)."""
    from .evaluation import hardest_manipulation, images_per_cell
    from .importing import origin_sentence

    return {"n_evaluated": len(table), "n_images": f"{images_per_cell(accuracy):,}",
            "clean_accuracy": mean_std(table["clean"]), "vi": vi_summary(table["vi"], images_per_cell(accuracy)),
            "vi_range": f"{table['vi'].min():.3f}–{table['vi'].max():.3f}",
            "hardest": hardest_manipulation(accuracy),
            "vi_interval_width": f"{(table['vi_high'] - table['vi_low']).median():.3f}",
            "disagree": f"{outcomes['disagree'].mean():.2f}",
            "kappa": mean_std(kappa.to_numpy()[np.triu_indices(len(kappa), 1)]), "origin": origin_sentence(catalog)}


def similarity_glue(pairs: pd.DataFrame, chance: pd.DataFrame, nulls: Mapping[str, np.ndarray],
                    profiles: Mapping[str, pd.DataFrame]) -> dict:
    """Chapter 4's glued values from its pair table, the nulls' summary (rows by measure;
    ``mean``, ``p99``), the null values and the parent-child layer profiles: sim_parent_child,
    sim_unrelated, sim_chance, most_moved, cka_reading, sim_p99, unrelated_above."""
    summary = relation_summary(pairs, ["paper"])["paper"]
    return {"sim_parent_child": summary.get("parent-child", "n/a (no offspring)"),
            "sim_unrelated": summary.get("unrelated", "n/a (no unrelated pairs)"),
            "sim_chance": f"{chance.loc['paper', 'mean']:.3f}", "most_moved": most_moved_layer(profiles),
            "cka_reading": against_chance(pairs["similarity_cka"], nulls["cka"], "linear CKA", "untrained networks"),
            "sim_p99": f"{chance.loc['paper', 'p99']:.3f}",
            "unrelated_above": share_above(pairs, "similarity_paper", chance.loc["paper", "p99"], "unrelated")}


def paradox_glue(statistics: pd.DataFrame, method: str = "paper", alpha: float = 0.05,
                 behaviour: str = "compatibility") -> dict[str, str]:
    """Chapter 5's glued values from ``paradox.statistics_table``: n_pairs, n_syd, n_dys,
    mantel_r, mantel_p, mantel_ci (for ``method`` and ``behaviour``), verdict and per_method."""
    row = _row(statistics, method, behaviour)
    return {"n_pairs": str(int(row["pairs"])), "n_syd": str(int(row["similar_yet_different"])),
            "n_dys": str(int(row["different_yet_similar"])), "mantel_r": _number(row["mantel_r"], ".3f"),
            "mantel_p": _number(row["mantel_p"], ".3g"),
            "mantel_ci": f"[{_number(row['ci_low'], '.3f')}, {_number(row['ci_high'], '.3f')}]",
            "verdict": verdict(statistics, alpha, method, behaviour), "per_method": method_sentences(statistics)}


def share_above(pairs: pd.DataFrame, column: str, threshold: float, relation: str | None = None) -> str:
    """"k of n unrelated pairs (x %) lie above 0.141" — how many pairs (of one ``relation``)
    exceed a threshold such as a null's 99th percentile."""
    part = pairs if relation is None else pairs[pairs["relation"] == relation]
    values = part[column].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    label = f"{relation} pairs" if relation else "pairs"
    if len(values) == 0:
        return f"there are no {label} to compare with {threshold:.3f}"
    above = int((values > threshold).sum())
    return f"{above} of {len(values)} {label} ({above / len(values):.0%}) lie above {threshold:.3f}"


def against_chance(values: Sequence[float] | pd.Series, null: Sequence[float] | np.ndarray, measure: str,
                   baseline: str, quantile: float = NULL_QUANTILE) -> str:
    """How a measure's values over pairs (``values``, 1-D) read against its null (``null``,
    1-D, e.g. ``similarity.null_distribution``): "linear CKA is 0.912 ± 0.030 (n = 66) over
    pairs, against 0.850 on average for untrained networks (99th percentile 0.890); 60 of
    66 pairs (91%) lie above that percentile" — or "every pair lies above it" / "no pair
    lies above it, …" at the extremes. ``baseline`` names what the null's pairs are;
    ``quantile`` is the "above chance" threshold (``nulls.NULL_QUANTILE``). Nothing is
    said about whether values are high: the numbers say it."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    null = np.asarray(null, dtype=float)
    null = null[np.isfinite(null)]
    if len(values) == 0 or len(null) == 0:
        missing = "pairs" if len(values) == 0 else "null values"
        return f"{measure} cannot be read against chance here (no {missing})"
    cut = float(np.quantile(null, quantile))
    text = (f"{measure} is {mean_std(values)} over pairs, against {null.mean():.3f} on average for {baseline} "
            f"({quantile * 100:g}th percentile {cut:.3f}); ")
    above = int((values > cut).sum())
    if above == len(values):
        return text + "every pair lies above it"
    if above == 0:
        return text + f"no pair lies above it, so by {measure} no pair is more alike than {baseline}"
    return text + f"{above} of {len(values)} pairs ({above / len(values):.0%}) lie above it"


def behaviour_against_chance(pairs: pd.DataFrame, nulls: Mapping[str, np.ndarray] | None) -> str:
    """:func:`against_chance` for every behavioural measure with a null (``nulls.behaviour_nulls``;
    ``pairs``: a ``paradox.with_behaviour`` table with a column per measure), one clause
    each; without nulls (fixed thresholds) a sentence saying behaviour was not read
    against chance."""
    if not nulls:
        return "Behaviour was not read against a null here (thresholds: fixed)."
    parts = [against_chance(pairs[name], null, name, BEHAVIOUR_NULLS.get(name, "its null"))
             for name, null in nulls.items() if name in pairs]
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "."


def survival(statistics: pd.DataFrame, method: str = "paper") -> str:
    """Do the paradoxes survive behaviour measured against chance? One sentence per
    behavioural measure of ``method``'s rows of a multi-behaviour ``statistics_table``:
    the two counts and the thresholds they used (fixed, or a null's 99th percentile)."""
    if not isinstance(statistics.index, pd.MultiIndex):
        return "Only the paper's compatibility was measured."
    parts = []
    for behaviour, row in statistics.loc[method].iterrows():
        parts.append(f"with {behaviour} ({row['behaviour_threshold_kind']} threshold "
                     f"{row['behaviour_threshold']:.3f}; similarity {row['similar_threshold_kind']} "
                     f"{row['similar_threshold']:.3f}): {int(row['similar_yet_different'])} similar yet different, "
                     f"{int(row['different_yet_similar'])} different yet similar")
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "."


# The book's tables. A DataFrame as pandas shows it is as wide as its widest cells: the
# eleven-column statistics table (~1,800 px), chapter 3's per-network table and chapter 6's
# transplant summary (~1,300 px each) hid most columns behind a sideways scroll in the
# book's ~680 px content column. So each wide table is shown as two narrow ones — numbers
# as text at three decimals, headers in words, which wrap — and the full tables stay in
# the chapters' Parquet files.

# Manipulation names as table headers: words that can wrap ("salt_pepper" cannot).
MANIPULATION_WORDS = {"salt_pepper": "salt & pepper"}


def association_table(statistics: pd.DataFrame) -> pd.DataFrame:
    """Does similarity predict behaviour? Per row of a ``paradox.statistics_table`` (same
    index): the Mantel correlation r, its p and its 95 % bootstrap interval, as text at
    three decimals ("−0.295 to 0.379")."""
    return pd.DataFrame({"Mantel r": _column(statistics["mantel_r"]),
                         "p": [_number(v, ".3f") for v in statistics["mantel_p"]],
                         "95 % interval": [_interval(lo, hi) for lo, hi in zip(statistics["ci_low"],
                                                                               statistics["ci_high"], strict=True)]},
                        index=statistics.index)


def vi_table(networks: pd.DataFrame) -> pd.DataFrame:
    """Chapter 3's VI per network, highest first, from an ``evaluation.network_table``:
    clean accuracy, the VI — its header names the test images every value was measured on
    — and the VI's 95 % interval, as text at three decimals."""
    ordered = networks.sort_values("vi", ascending=False)
    counts = sorted(set(ordered["test_images"].astype(int)))
    vi = f"VI on {images_text(counts[0])}" if len(counts) == 1 else "VI"
    out = pd.DataFrame({"clean accuracy": _column(ordered["clean"]), vi: _column(ordered["vi"]),
                        "95 % interval": [_interval(lo, hi) for lo, hi in zip(ordered["vi_low"], ordered["vi_high"],
                                                                              strict=True)]},
                       index=ordered.index)
    if len(counts) > 1:  # never from one evaluate call; said beside each VI if it ever happens
        out["test images"] = [f"{n:,}" for n in ordered["test_images"].astype(int)]
    return out


def manipulation_table(table: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean accuracy per manipulation, one row per network (or transplant variant), from a
    table with one column per manipulation (``evaluation.per_manipulation``'s, as in
    ``evaluation.network_table`` and the transplant summary): the manipulations in the
    paper's order, headers in words, text at three decimals; rows in ``order`` (e.g.
    :func:`vi_table`'s index) when given. Clean accuracy is :func:`vi_table`'s: eight
    columns are what fits the book's column at 1280 px."""
    rows = table.loc[list(order)] if order is not None else table
    return pd.DataFrame({MANIPULATION_WORDS.get(m, m): _column(rows[m]) for m in MANIPULATIONS if m in rows.columns},
                        index=rows.index)


def transplant_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Chapter 6's result per variant, from ``transplant.transplant_experiments``' summary:
    the VI (its header names the test images), ΔVI against the parent, its 95 % interval
    and the verdict, as text at three decimals; the per-manipulation accuracies are
    :func:`manipulation_table`'s."""
    n_images = int(summary["test_images"].iloc[0])
    return pd.DataFrame({f"VI on {images_text(n_images)}": _column(summary["vi"]),
                         "ΔVI": _column(summary["delta_vi"], "+.3f"),
                         "95 % interval": [_interval(lo, hi) for lo, hi in zip(summary["delta_low"],
                                                                               summary["delta_high"], strict=True)],
                         "verdict": summary["verdict"]}, index=summary.index)


def count_table(statistics: pd.DataFrame) -> pd.DataFrame:
    """How many pairs fall in each paradox? Per row of a ``paradox.statistics_table`` (same
    index): the two quadrant counts, the pairs counted, and the thresholds that drew the
    quadrants, similarity / behaviour ("0.141 / 0.568"). What the thresholds are ("null
    p99", "fixed") goes in the column's header when every threshold is of one kind — else
    beside each number — so the cells stay short enough not to wrap."""
    kinds = set(statistics["similar_threshold_kind"]) | set(statistics["behaviour_threshold_kind"])
    one_kind = next(iter(kinds)) if len(kinds) == 1 else None

    def thresholds(row: pd.Series) -> str:
        similar, behaviour = _number(row["similar_threshold"], ".3f"), _number(row["behaviour_threshold"], ".3f")
        if one_kind:
            return f"{similar} / {behaviour}"
        return f"{similar} ({row['similar_threshold_kind']}) / {behaviour} ({row['behaviour_threshold_kind']})"

    header = "thresholds: similarity / behaviour" + (f" ({one_kind})" if one_kind else "")
    return pd.DataFrame({"similar yet different": statistics["similar_yet_different"].astype(int),
                         "different yet similar": statistics["different_yet_similar"].astype(int),
                         "pairs": statistics["pairs"].astype(int),
                         header: [thresholds(row) for _, row in statistics.iterrows()]},
                        index=statistics.index)


def pair_intervals(compatibility: Mapping, kappa: Mapping) -> str:
    """"a and b: compatibility 0.91 (95 % interval 0.85 to 0.95), κ 0.12 (0.05 to 0.19)" from
    :func:`~paradox_utils.bootstrap.compatibility_interval` and ``kappa_interval`` results,
    saying when an interval is too wide to tell the value from 0."""
    def part(value: float, low: float, high: float) -> str:
        if not np.isfinite(value):
            return "undefined"
        zero = " — not distinguishable from 0" if low <= 0 <= high else ""
        return f"{value:.3f} (95 % interval {low:.3f} to {high:.3f}{zero})"

    return (f"{compatibility['a']} and {compatibility['b']}: compatibility "
            f"{part(compatibility['r'], compatibility['low'], compatibility['high'])}, error consistency κ "
            f"{part(kappa['kappa'], kappa['low'], kappa['high'])}")


def best_sweep_layer(sweep: pd.DataFrame) -> str:
    """A sentence on the single-layer transplants (columns layer, layer_correlation,
    delta_vi, and test_images where known — the evaluation set, named beside the VI):
    which raises the parent's VI most — or that none does — and whether the largest
    change is a decrease."""
    finite = sweep[np.isfinite(sweep["delta_vi"].to_numpy(dtype=float))] if len(sweep) else sweep
    if finite.empty:
        return "the sweep was not run." if sweep.empty else "no single-layer transplant has a finite ΔVI."
    best = finite.loc[finite["delta_vi"].idxmax()]
    worst = finite.loc[finite["delta_vi"].idxmin()]
    vi = f"VI on {images_text(int(finite['test_images'].iloc[0]))}" if "test_images" in finite else "VI"
    if best["delta_vi"] > 0:
        text = f"{best['layer']} raises the parent's {vi} most ({change_text(best)})"
        if -worst["delta_vi"] > best["delta_vi"]:
            text += f", but the largest change is a decrease: {worst['layer']} ({worst['delta_vi']:+.3f})"
    elif worst["delta_vi"] == 0:
        text = f"no single layer changes the parent's {vi}"
    else:
        text = (f"no single layer raises the parent's {vi} (the least harmful, {best['layer']}, changes it by "
                f"{best['delta_vi']:+.3f}); the largest change is a decrease: {worst['layer']} "
                f"({worst['delta_vi']:+.3f})")
    varies = len(finite) > 2 and finite["layer_correlation"].nunique() > 1 and finite["delta_vi"].nunique() > 1
    rho = finite["layer_correlation"].corr(finite["delta_vi"], method="spearman") if varies else np.nan
    if not np.isfinite(rho):
        return text + "; with fewer than three layers (or constant values) the correlation across layers is undefined."
    return (text + f"; across layers, the Spearman correlation between how little a layer moved and ΔVI "
            f"is {rho:.2f}.")


def change_text(row: Mapping) -> str:
    """"+0.012, 95 % interval −0.004 to +0.027: not distinguishable from no change" (a ΔVI) from
    a row with delta_vi and, when a bootstrap was run, delta_low, delta_high and verdict."""
    text = f"{row['delta_vi']:+.3f}"
    if "delta_low" not in row or not np.isfinite(row["delta_low"]):
        return text
    verdict = "" if row["verdict"] in ("increase", "decrease") else f": {row['verdict']}"
    return text + f", 95 % interval {row['delta_low']:+.3f} to {row['delta_high']:+.3f}{verdict}"


def transplant_glue(results: TransplantResults, parent_id: str, child_id: str) -> dict[str, str]:
    """Chapter 6's glued values from ``transplant.transplant_experiments``: tp_parent, tp_child,
    tp_layer (the most-moved layer), tp_images (the evaluation set of every VI: "300 test
    images"), vi_parent, vi_child, vi_one (the parent with that one child layer), vi_all
    (with every child conv), change_one / change_all / change_child (their ΔVI with its
    interval, :func:`change_text`) and sweep_best. The VIs are bare numbers: the sentence
    quoting them names tp_images beside them."""
    summary = results.summary
    vi = summary["vi"]
    one, every = results.one_layer, "parent + all child convs"
    return {"tp_parent": parent_id, "tp_child": child_id, "tp_layer": str(results.deviated),
            "tp_images": images_text(int(summary["test_images"].iloc[0])),
            "vi_parent": f"{vi['parent']:.3f}", "vi_child": f"{vi['child']:.3f}", "vi_one": f"{vi[one]:.3f}",
            "vi_all": f"{vi[every]:.3f}", "change_one": change_text(summary.loc[one]),
            "change_all": change_text(summary.loc[every]), "change_child": change_text(summary.loc["child"]),
            "sweep_best": best_sweep_layer(results.sweep)}


def vi_chapters_table(both: pd.DataFrame) -> pd.DataFrame:
    """The transplant pair's VI in chapter 3 and here, from ``transplant.vi_in_both_chapters``
    (rows: parent, child): each VI under a header naming its test images, and their
    difference, as text at three decimals; :func:`vi_across_chapters` says why they differ."""
    there, here = int(both["test_images_chapter3"].iloc[0]), int(both["test_images"].iloc[0])
    return pd.DataFrame({f"VI in chapter 3, on {images_text(there)}": _column(both["vi_chapter3"]),
                         f"VI here, on {images_text(here)}": _column(both["vi"]),
                         "difference": _column(both["difference"], "+.3f")}, index=both.index)


def vi_across_chapters(both: pd.DataFrame) -> str:
    """One sentence on why the transplant pair's VI in chapter 6 differs from chapter 3's —
    or that it is the same — from ``transplant.vi_in_both_chapters`` (rows: parent, child).

    Four cases: other images (a VI is an estimate from a finite sample of test images, so
    two samples give two VIs; equal ``eval_per_class`` and ``transplant_eval_per_class``,
    as in the laptop profile, give one set); the same images under another noise seed; the
    same images and noise in another precision (``eval_precision``); the same images, noise
    and precision (one measurement made twice)."""
    ids = list(both.index)
    names = " and ".join(ids)

    def values(column: str) -> str:
        return " and ".join(f"{v:.3f}" for v in both[column])

    here, there = int(both["test_images"].iloc[0]), int(both["test_images_chapter3"].iloc[0])
    seed, seed3 = int(both["noise_seed"].iloc[0]), int(both["noise_seed_chapter3"].iloc[0])
    gap = float(both["difference"].abs().max())
    if not bool(both["same_images"].all()):
        sets = (f"on {images_text(there)} (VI {values('vi_chapter3')}), this chapter on {here:,} "
                f"({values('vi')})" if here != there else
                f"on another sample of {images_text(here)} (VI {values('vi_chapter3')}) than this chapter "
                f"({values('vi')})")
        return (f"Chapter 3 measured {names} {sets}: a VI is estimated from a finite sample of test images, so "
                f"two samples give VIs that differ — here by up to {gap:.3f} — with no change in the networks; a "
                f"profile that sets transplant_eval_per_class to eval_per_class (as the laptop profile does) "
                f"measures both chapters on the same images, and their VIs agree.")
    if seed != seed3:
        return (f"Chapter 3 measured {names} on the same {images_text(here)} but with noise seed {seed3} (this "
                f"chapter: {seed}), so the four noise manipulations drew other noise: VI {values('vi_chapter3')} "
                f"there, {values('vi')} here (up to {gap:.3f} apart); one noise_seed for both chapters gives one VI.")
    precision, precision3 = str(both["precision"].iloc[0]), str(both["precision_chapter3"].iloc[0])
    if precision != precision3:
        return (f"Chapter 3 measured {names} on the same {images_text(here)} with the same noise but in {precision3} "
                f"(this chapter: {precision}): VI {values('vi_chapter3')} there, {values('vi')} here (up to {gap:.3f} "
                f"apart); one eval_precision for both chapters gives one VI.")
    if gap < 5e-4:
        return (f"Chapter 3 measured {names} on the same {images_text(here)} with the same noise, so their VIs "
                f"agree: {values('vi')} in both chapters.")
    return (f"Chapter 3 measured {names} on the same {images_text(here)} with the same noise, yet their VIs "
            f"differ by up to {gap:.3f} ({values('vi_chapter3')} there, {values('vi')} here): only numerical "
            f"differences (another device or batch size) can cause that.")
