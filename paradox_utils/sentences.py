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

from .catalog import parse_config
from .distortions import MANIPULATIONS
from .names import listed  # sentences.listed: the name an issue gave it
from .nulls import NULL_QUANTILE
from .references import REFERENCES
from .transplant import CONV_ONLY

if TYPE_CHECKING:  # an annotation only: the prose needs no networks
    from .transplant import TransplantResults

__all__ = [
    "against_chance", "association", "association_table", "behaviour_against_chance", "best_sweep_layer",
    "change_text", "count_table", "detectable", "evaluation_glue", "finetune_glue", "grounding_sentences",
    "images_text", "listed", "manipulation_table", "mean_std", "method_sentences", "most_moved_layer",
    "pair_intervals", "paradox_glue", "recipe_text", "reference_table", "references_sentence", "relation_summary",
    "share_above", "similarity_glue", "training_glue", "transplant_glue", "transplant_table", "verdict",
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


def _count(value) -> str:
    return "undefined" if not np.isfinite(value) else str(int(value))


def _few(n: int, name: str) -> str:
    return f"{n} {name} pair{'s' if n != 1 else ''}"


def verdict(counts: pd.DataFrame, statistics: pd.DataFrame, power: Mapping | None = None, method: str = "paper",
            behaviour: str = "compatibility", alpha: float = 0.05) -> str:
    """The paper's question answered for ``method`` × ``behaviour``, in sentences computed from
    ``references.paradox_counts`` (``counts``), ``paradox.statistics_table`` (``statistics``)
    and ``inference.detectable_correlation`` (``power``, optional).

    It never says the run shows a paradox where the run's references cannot define it
    (a reference missing, or its two references overlapping): it says which and why. The
    association is read with families as the unit and Holm's correction where the table
    has them (``family_p``, ``holm_p``), beside the network-level Mantel p.
    """
    if (method, behaviour) not in counts.index:
        raise KeyError(f"The paradox counts have no row {method!r} × {behaviour!r}.")
    row = counts.loc[(method, behaviour)]
    label = f"{method} kernels × {behaviour}" if method != "cka" else f"CKA × {behaviour}"
    if not row["defined"]:
        text = (f"By its own references this run cannot say whether either paradox occurs ({label}): "
                f"{row['reason']}.")
    else:
        syd, dys = int(row["similar_yet_different"]), int(row["different_yet_similar"])
        text = ("By its own references this run shows both paradoxes" if syd and dys else
                "By its own references this run shows only \"similar yet different\"" if syd else
                "By its own references this run shows only \"different yet similar\"" if dys else
                "By its own references this run shows neither paradox")
        text += f" ({label}: {_few(syd, 'similar-yet-different')}, {_few(dys, 'different-yet-similar')})."
        if few := [_few(n, name) for n, name in ((syd, "similar-yet-different"), (dys, "different-yet-similar"))
                   if 0 < n < 3]:
            text += f" The evidence is weak: only {' and '.join(few)}, which a threshold crossed by chance can give."
    return f"{text} {association(statistics, method, behaviour, alpha)}{detectable(power)}"


def association(statistics: pd.DataFrame, method: str = "paper", behaviour: str = "compatibility",
                alpha: float = 0.05) -> str:
    """Does ``method``'s similarity predict ``behaviour`` across pairs? One or two sentences
    from its row of ``paradox.statistics_table``: Spearman r, the network-level Mantel p
    and, where the table has them, the family-level p (Holm-adjusted over the table's
    tests), the family interval and the association holding lineage and training data
    fixed (``partial_r``, ``partial_p``)."""
    row = _row(statistics, method, behaviour)
    r = _number(row["mantel_r"], ".3f")
    if "family_p" not in row.index or not np.isfinite(row.get("family_p", np.nan)):
        if not np.isfinite(row["mantel_p"]):
            return f"Across pairs r = {r}; its test is undefined here (too few networks or constant values)."
        reading = "significant" if row["mantel_p"] < alpha else "not significant"
        return (f"Across pairs similarity and {behaviour} correlate at r = {r} (Spearman; Mantel p = "
                f"{_number(row['mantel_p'], '.3g')} with networks as the unit, {reading} at {alpha}).")
    tests = len(statistics)
    adjusted = row.get("holm_p", row["family_p"])
    reading = (f"significant at {alpha} after Holm's correction over {tests} tests" if adjusted < alpha else
               f"not significant at {alpha} after Holm's correction over {tests} tests")
    text = (f"Across pairs similarity and {behaviour} correlate at r = {r} (Spearman; 95 % interval over "
            f"{int(row['n_families'])} families {_interval(row['ci_low'], row['ci_high'])}). With whole families "
            f"permuted p = {_number(row['family_p'], '.3g')} (Holm-adjusted {_number(adjusted, '.3g')}: {reading}); "
            f"treating the {_networks(row)} networks as independent would give p = {_number(row['mantel_p'], '.3g')}.")
    if np.isfinite(row.get("partial_r", np.nan)):
        beyond = ("similarity still predicts behaviour" if row["partial_p"] < alpha else
                  "none that the run can detect")
        text += (f" Holding lineage and training data fixed, r = {_number(row['partial_r'], '.3f')} "
                 f"(p = {_number(row['partial_p'], '.3g')}): {beyond}.")
    return text


def _networks(row: pd.Series) -> str:
    return str(int(row["n_networks"])) if np.isfinite(row.get("n_networks", np.nan)) else "several"


def detectable(power: Mapping | None) -> str:
    """" With 4 families, the smallest correlation this run detects at 80 % power is r ≈ 0.62."
    from ``inference.detectable_correlation``'s result ("" without one)."""
    if not power:
        return ""
    families = f"With {int(power['n_families'])} families" if "n_families" in power else "Here"
    target = f"{power.get('power', 0.8):.0%}"
    if not np.isfinite(power.get("r", np.nan)):
        why = power.get("reason") or "no effect size on the simulated grid reached it"
        return f" {families}, no correlation is detected at {target} power by this run's design ({why})."
    strength = (" — only when similarity sets all of behaviour's variation beyond its family structure"
                if power.get("rho", 0) >= 1 else
                f" (similarity setting ρ = {power['rho']:.1f} of behaviour's variation beyond its family structure)"
                if np.isfinite(power.get("rho", np.nan)) else "")
    return (f" {families}, the smallest correlation this run detects at {target} power is r ≈ {power['r']:.2f}"
            f"{strength}, simulated with its own family structure and noise; a weaker association would likely "
            "go unseen.")


def method_sentences(counts: pd.DataFrame, statistics: pd.DataFrame) -> str:
    """"method × behaviour — r, family p, counts by the references" for every row."""
    parts = []
    for key, row in statistics.iterrows():
        method, behaviour = key if isinstance(key, tuple) else (key, "compatibility")
        c = counts.loc[(method, behaviour)] if (method, behaviour) in counts.index else None
        p = row.get("family_p", row["mantel_p"])
        tally = ("paradoxes undefined" if c is None or not c["defined"] else
                 f"{_count(c['similar_yet_different'])} similar yet different, "
                 f"{_count(c['different_yet_similar'])} different yet similar")
        parts.append(f"{method} × {behaviour} — r = {_number(row['mantel_r'], '.3f')} "
                     f"(p = {_number(p, '.3g')}), {tally}")
    return "; ".join(parts) + "."


# A family bootstrap of F families has C(2F − 1, F) distinct resamples: 462 for 6, 1,716 for 7.
# Below 7 the 1,000 drawn repeat each other and a percentile interval is rough (and tends to be too narrow).
FEW_FAMILIES = 7


def _r_with_interval(row: pd.Series) -> str:
    """"r = 0.62, 95 % interval over 6 families 0.31 to 0.80" from a grounding table row."""
    return (f"r = {_number(row['r'], '.2f').replace('-', '−')}, {float(row.get('level', 0.95)) * 100:g} % interval "
            f"over {int(row['n_families'])} families {_interval(row['low'], row['high'], '.2f')}")


def grounding_sentences(table: pd.DataFrame, scope: str = "all") -> str:
    """Which similarity measure tracks behaviour, from ``grounding.grounding_table``: for each
    behavioural measure, the similarity measure of the largest r over all pairs in ``scope``,
    whether its interval over families excludes 0, whether it holds within families (the
    within-family interval excluding 0 or not), and a weak-evidence note where the families
    are few (fewer than ``FEW_FAMILIES``) or the intervals span 0."""
    part = table[table["scope"] == scope]
    if part.empty:
        raise ValueError(f"The grounding table has no scope {scope!r}.")
    where = "over the whole grid" if scope == "all" else f"under {MANIPULATION_WORDS.get(scope, scope)}"
    texts = []
    for measure in dict.fromkeys(part["behaviour"]):
        rows = part[part["behaviour"] == measure]
        everything = rows[(rows["pairs"] == "all") & np.isfinite(rows["r"].astype(float))]
        if everything.empty:
            texts.append(f"No similarity measure has a defined correlation with {measure} {where}.")
            continue
        best = everything.loc[everything["r"].astype(float).idxmax()]
        others = everything[everything["similarity"] != best["similarity"]]
        runner = (f"; next, {others.loc[others['r'].astype(float).idxmax(), 'similarity']} at r = "
                  f"{_number(float(others['r'].max()), '.2f').replace('-', '−')}" if len(others) else "")
        clear = best["low"] > 0
        text = (f"{where[0].upper()}{where[1:]}, {best['similarity']} tracks {measure} best "
                f"({_r_with_interval(best)}{runner})." if clear else
                f"{where[0].upper()}{where[1:]}, no similarity measure clearly tracks {measure}: the largest "
                f"correlation, {best['similarity']}'s ({_r_with_interval(best)}{runner}), has an interval that "
                "reaches 0.")
        within = rows[(rows["similarity"] == best["similarity"]) & (rows["pairs"] == "within families")]
        w = within.iloc[0] if len(within) else None
        if w is None or not np.isfinite(w["r"]):
            text += " Within families it cannot be read (no family has two networks with defined values)."
        elif not clear:
            text += f" Within families: {_r_with_interval(w)}."
        elif w["low"] > 0:
            text += f" It holds within families ({_r_with_interval(w)}): not only through lineage."
        else:
            text += (f" Within families it does not clearly hold ({_r_with_interval(w)}, an interval that "
                     f"{'reaches' if w['high'] >= 0 else 'lies below'} 0): what it tracks may be "
                     "family membership alone.")
        weak = []
        if int(best["n_families"]) < FEW_FAMILIES:
            weak.append(f"only {int(best['n_families'])} families (the intervals need about {FEW_FAMILIES} or more)")
        if not clear:
            weak.append("the interval over all pairs reaches 0")
        if weak:
            text += f" The evidence is weak: {' and '.join(weak)}."
        texts.append(text)
    return " ".join(texts)


# The training settings a recipe sentence names, in its order, and how it names them.
RECIPE_FIELDS = {"optimiser": "optimiser", "nesterov": "Nesterov momentum", "momentum": "momentum",
                 "schedule": "learning-rate schedule", "lr": "peak learning rate", "epochs": "epochs",
                 "batch_size": "batch size", "l2": "weight decay (L2)", "label_smoothing": "label smoothing",
                 "precision": "precision", "init": "initialisation", "manipulation": "augmentation",
                 "train_per_class": "training images per class (0: all)"}


def recipe_text(catalog: pd.DataFrame) -> str:
    """What this run's networks were trained with, from their recorded configs (the catalog's
    ``config`` JSON): every field of :data:`RECIPE_FIELDS` with its value, or its values where
    the networks differ ("peak learning rate 0.1 or 0.15"), and how many seeds — then the
    paper's recipe beside it, so a reader sees where this run departs from it."""
    recorded = [c for c in map(parse_config, catalog.get("config", pd.Series(dtype=object))) if c]
    if not recorded:
        return "The networks' training settings were not recorded (imported networks)."
    parts = []
    for field, words in RECIPE_FIELDS.items():
        values = list(dict.fromkeys("none" if c.get(field) is None else c.get(field) for c in recorded if field in c))
        if values:
            parts.append(f"{words} {' or '.join(str(v) for v in values)}")
    seeds = len({c.get("seed") for c in recorded})
    return (f"This run trained {len(recorded)} networks with {'; '.join(parts)}; {seeds} distinct seeds. "
            "The paper trained with Adam and Keras' time decay of the learning rate (lr 0.001–0.0066, batch "
            "sizes 32–256) for about 200 epochs, so where the lines above differ this run departs from it "
            "(the methods appendix says why).")


def training_glue(catalog: pd.DataFrame) -> dict:
    """Chapter 1's glued values from its catalog of base networks: n_base, base_val_accuracy
    (mean ± sd), base_train_minutes (summed over networks), recipe (:func:`recipe_text`)."""
    return {"n_base": len(catalog), "base_val_accuracy": mean_std(catalog["val_accuracy"]),
            "base_train_minutes": f"{catalog['train_seconds'].sum() / 60:.1f}", "recipe": recipe_text(catalog)}


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


def paradox_glue(counts: pd.DataFrame, statistics: pd.DataFrame, power: Mapping | None = None,
                 method: str = "paper", behaviour: str = "compatibility", alpha: float = 0.05) -> dict[str, str]:
    """Chapter 5's glued values: n_pairs, n_syd, n_dys (by the run's references, "undefined"
    where they cannot define a paradox), mantel_r, mantel_p, family_p, mantel_ci (the family
    interval where the table has it), detectable, verdict and per_method."""
    row, tally = _row(statistics, method, behaviour), counts.loc[(method, behaviour)]
    return {"n_pairs": str(int(tally["pairs"])), "n_syd": _count(tally["similar_yet_different"]),
            "n_dys": _count(tally["different_yet_similar"]), "mantel_r": _number(row["mantel_r"], ".3f"),
            "mantel_p": _number(row["mantel_p"], ".3g"), "family_p": _number(row.get("family_p", np.nan), ".3g"),
            "mantel_ci": f"[{_number(row['ci_low'], '.3f')}, {_number(row['ci_high'], '.3f')}]",
            "detectable": detectable(power).strip() or "The run's power was not simulated.",
            "verdict": verdict(counts, statistics, power, method, behaviour, alpha),
            "per_method": method_sentences(counts, statistics)}


def reference_table(thresholds: pd.DataFrame) -> pd.DataFrame:
    """The run's references per axis and measure (``references.reference_thresholds``) as
    narrow text: each reference's pairs and the value it sets, the measure's chance level,
    and whether the two references separate (else why not)."""
    def side(n, value) -> str:
        return f"{int(n)} pairs, {_number(value, '.3f')}" if n else "none in this run"

    return pd.DataFrame({"alike: pairs, floor": [side(r.alike_pairs, r.alike_floor) for r in thresholds.itertuples()],
                         "unlike: pairs, ceiling": [side(r.unlike_pairs, r.unlike_ceiling)
                                                    for r in thresholds.itertuples()],
                         f"chance (null p{NULL_QUANTILE * 100:g})": _column(thresholds["chance"]),
                         "reads": ["separates" if r.separates else r.reason for r in thresholds.itertuples()]},
                        index=thresholds.index)


def references_sentence(thresholds: pd.DataFrame) -> str:
    """Per axis: what its two references are, how many pairs each has, and which measures
    they separate (and why the others cannot be read)."""
    parts = []
    for axis in dict.fromkeys(thresholds.index.get_level_values("axis")):
        rows = thresholds.loc[axis]
        first = rows.iloc[0]
        text = (f"{axis.capitalize()}: {REFERENCES[axis, 'alike'][1]} ({int(first['alike_pairs'])} pairs) against "
                f"{REFERENCES[axis, 'unlike'][1]} ({int(first['unlike_pairs'])})")
        good = [m for m, r in rows.iterrows() if r["separates"]]
        bad = [f"{m} does not ({r['reason']})" for m, r in rows.iterrows() if not r["separates"]]
        text += (f"; {listed(good)} separate{'s' if len(good) == 1 else ''} them" if good else "")
        text += (f"; {'; '.join(bad)}" if bad else "")
        parts.append(text)
    return ". ".join(parts) + "."


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
    index), as text: Spearman r; its 95 % interval (over families where the table has
    them, else networks); its p with networks as the unit and — where the table has them —
    with whole families permuted and Holm-adjusted ("0.034 / 0.412 / 1.000"); and the
    association holding lineage and training data fixed, r (p)."""
    family = "family_p" in statistics
    unit = "families" if family else "networks"
    columns = {"r": _column(statistics["mantel_r"]),
               f"95 % interval ({unit})": [_interval(lo, hi) for lo, hi in
                                           zip(statistics["ci_low"], statistics["ci_high"], strict=True)]}
    if family:
        holm = statistics["holm_p"] if "holm_p" in statistics else statistics["family_p"]
        columns["p: networks / families / Holm"] = [
            " / ".join(_number(v, ".3f") for v in values)
            for values in zip(statistics["mantel_p"], statistics["family_p"], holm, strict=True)]
    else:
        columns["p"] = [_number(v, ".3f") for v in statistics["mantel_p"]]
    if "partial_r" in statistics:
        columns["beyond lineage and data: r (p)"] = [f"{_number(r, '.3f')} ({_number(p, '.3f')})".replace("-", "−")
                                                     for r, p in zip(statistics["partial_r"], statistics["partial_p"],
                                                                     strict=True)]
    return pd.DataFrame(columns, index=statistics.index)


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


def count_table(counts: pd.DataFrame, statistics: pd.DataFrame) -> pd.DataFrame:
    """How many pairs fall in each paradox? Per (method, behaviour): by the run's references
    (``references.paradox_counts``: "similar yet different / different yet similar", or
    "undefined"), and by the threshold reading of ``paradox.statistics_table`` (the measures'
    null 99th percentiles — "above chance" — or the paper's fixed 0.5), with the pairs
    counted. The header names the threshold kind when one kind drew every row."""
    kinds = set(statistics["similar_threshold_kind"]) | set(statistics["behaviour_threshold_kind"])
    reading = ("the paper's 0.5" if kinds == {"fixed"} else "above chance (null p99)" if kinds == {"null p99"}
               else "fixed or null thresholds")
    by_references = [f"{_count(counts.loc[k, 'similar_yet_different'])} / "
                     f"{_count(counts.loc[k, 'different_yet_similar'])}" if counts.loc[k, "defined"] else "undefined"
                     for k in statistics.index]
    return pd.DataFrame({"by the run's references": by_references,
                         f"by {reading}": [f"{int(r.similar_yet_different)} / {int(r.different_yet_similar)}"
                                           for r in statistics.itertuples()],
                         "pairs": statistics["pairs"].astype(int)}, index=statistics.index)


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
    interval, :func:`change_text`), the same for the transplants without their BatchNorms
    (vi_one_conv, vi_all_conv, change_one_conv, change_all_conv) and sweep_best. The VIs are bare numbers: the sentence
    quoting them names tp_images beside them."""
    summary = results.summary
    vi = summary["vi"]
    one, every = results.one_layer, "parent + all child convs"
    conv_only = {f"vi_{key}_conv": f"{vi[f'{name} {CONV_ONLY}']:.3f}"
                 for key, name in (("one", one), ("all", every))}
    conv_only |= {f"change_{key}_conv": change_text(summary.loc[f"{name} {CONV_ONLY}"])
                  for key, name in (("one", one), ("all", every))}
    return {**conv_only, "tp_parent": parent_id, "tp_child": child_id, "tp_layer": str(results.deviated),
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
