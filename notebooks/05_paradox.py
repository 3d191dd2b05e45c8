# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. The paradox: similar yet different, different yet similar
#
# ## Overview
# ```{glue} regime
# ```
#
# *Compatibility* of two networks is the Pearson correlation of their accuracies over
# the 37 manipulation cells; the *paradox matrix* is compatibility − similarity
# (as in the paper). Near −1 a pair is "similar yet different" (near-identical kernels,
# different behaviour), near +1 "different yet similar". The paper showed such pairs.
# This chapter reads "similar" and "different" against pairs of this run whose relation
# is known (its *references*), tests the paper's implied conclusion — does intrinsic
# similarity predict behaviour? — with families, not networks, as the independent units,
# and asks which similarity measure tracks behaviour at all.
#
# ## Prerequisites
# - `accuracy.parquet` (chapter 3) and `similarity.parquet`, `layer_similarity.parquet`
#   and the CKA tables (chapter 4); the catalog for lineage and recipes.
# - Output: `pairs.parquet`, `references.parquet`, `paradox_counts.parquet`,
#   `paradox_statistics.parquet` and `grounding.parquet`.

# %% [markdown]
# ## Imports

# %%
from paradox_utils import (
    behaviour,
    bootstrap,
    explorer,
    files,
    grounding,
    inference,
    nulls,
    paradox,
    plots,
    references,
    report,
    sentences,
)
from paradox_utils.catalog import families
from paradox_utils.preamble import glue_regime, glue_texts, open_chapter

# %% [markdown]
# ## Parameters

# %% tags=["parameters"]
profile: str = "quick"  # profiles/NAME.yaml or a YAML path: its values replace the defaults not passed with -p
checkpoint_dir: str = ""  # where the checkpoints are ("": checkpoints/<profile>)
results_dir: str = ""  # where the result tables are ("": data/results/<profile>)
similar_threshold: float = 0.5  # the paper's fixed reading, used when thresholds is "fixed"
compatible_threshold: float = 0.5  # the same for compatibility
thresholds: str = "null"  # "null": above each measure's null 99th percentile, or "fixed": the two numbers above
null_permutations: int = 100  # shuffles per network for the compatibility nulls
mantel_permutations: int = 999  # permutations of the Mantel tests (networks, whole families, partial)
bootstrap_resamples: int = 500  # family bootstrap resamples of every correlation's interval
power_simulations: int = 200  # simulated populations per effect size of the power statement
power_permutations: int = 199  # family permutations of each simulated test
statistics_seed: int = 0  # seed of the permutations and resamples
subset: int = 20  # networks drawn in the overview figures (whole families, seeded; 0: all); statistics use all

# %%
ch = open_chapter("05_paradox", globals(), reads=("accuracy", "similarities", "layers", "correctness", "nulls", "cka_distorted", "cka_layers"))  # noqa: E501 (one line: the chapter's setup line)
paths, catalog, parents, shown = ch.paths, ch.catalog, ch.parents, ch.shown
accuracy, similarities, layer_scores, bits, untrained, cka_distorted, cka_layers = ch.tables  # untrained: nulls
family_of = families(parents)  # network → its family (the root ancestor): the unit of inference
similarity_chance = report.null_summary(untrained)["mean"]
similarity_nulls = untrained if thresholds == "null" else None

# %% [markdown]
# ## Compatibility (the paper's Figures 6 and 9)
# In the paper's colours for similarity and compatibility, red is 0 (no correlation)
# and green is 1. A larger population is drawn as a representative subset of whole
# families (the `subset` parameter, the same networks as chapters 3 and 4); every
# statistic below uses all pairs.

# %%
compat = behaviour.compatibility(accuracy)
plots.show(plots.heatmap(compat, "Visual-intelligence compatibility (Pearson r over 37 cells)", parents,
                         kind="compatibility", networks=shown))

# %% [markdown]
# ## The paradox matrix (the paper's Figures 2, 3, 8 and 11)
# compatibility − intrinsic similarity (paper's alignment). Yellow (−1): similar yet
# different; red (+1): different yet similar; green (0): the two agree.

# %%
differences = {m: paradox.difference(compat, s) for m, s in similarities.items()}
plots.show(plots.heatmap(differences["paper"], "Paradox matrix: compatibility − similarity (paper)", parents,
                         zlabel="difference", kind="paradox", networks=shown))

# %% [markdown]
# The same matrix for one family only — a parent and its offspring — as in the
# paper's per-family figures:

# %%
family = paradox.first_family(parents)
if len(family) > 1:
    plots.show(plots.heatmap(differences["paper"].loc[family, family], "Paradox matrix within one family",
                             parents, zlabel="difference", kind="paradox"))

# %% [markdown]
# ## Behaviour beyond shared difficulty, and against chance
# Compatibility can be high for any two networks merely because every network finds
# the same cells hard (shared difficulty, not a shared way of failing). Two further
# behavioural measures take that out: *relative
# compatibility* correlates what is left of the accuracy vectors after subtracting
# the population's mean per cell, and *error consistency* κ compares the networks
# image by image (chapter 3), each clean image counted once (the grid's eight identity
# cells show the same clean images). Each measure has a null: compatibility and relative
# compatibility that of accuracy profiles shuffled across levels within each
# manipulation; κ that of two networks erring independently at their per-cell
# accuracies. The [methods appendix](../methods.md) says why. These nulls are the floor,
# "above chance"; what decides the paradoxes is the run's references, further below.

# %%
behaviours = {"compatibility": compat, "relative compatibility": behaviour.compatibility(accuracy, relative=True),
              "kappa": behaviour.error_consistency_matrix(bits)}
behaviour_nulls = None if thresholds == "fixed" else nulls.behaviour_nulls(accuracy, null_permutations, statistics_seed)
report.null_summary(behaviour_nulls).round(3) if behaviour_nulls else "fixed thresholds"

# %% [markdown]
# ## Every pair, every measure
# Intrinsic similarity (the paper's alignment) against each behavioural measure,
# coloured by relation; the shaded corners are the two paradoxes *above chance*, the
# dashed lines the thresholds (a null's 99th percentile, or the paper's fixed values),
# the dotted line the similarity's chance level (its mean over pairs of untrained networks).

# %%
pairs = paradox.with_behaviour(paradox.pair_table(similarities, parents, compat=compat), behaviours)
pairs = references.roles(pairs, catalog)  # each pair's families, training data, and which references it is
files.write_table(pairs, paths["pairs"], provenance={"weights": report.weight_hashes(catalog)})
for measure in behaviours:
    plots.show(plots.paradox_scatter(pairs, "paper", similar_threshold, compatible_threshold, measure,
                                     similarity_null=(similarity_nulls or {}).get("paper"),
                                     behaviour_null=(behaviour_nulls or {}).get(measure),
                                     chance=similarity_chance["paper"]))

# %% [markdown]
# ## Where this run stands
# The box at the top of this chapter, computed here: the base networks' clean accuracy
# and the unrelated pairs' similarity beside its chance level, against the paper's.

# %% tags=["remove-output"]
glue_regime(catalog, accuracy, pairs, report.null_summary(untrained))

# %% [markdown]
# ## The run's references
# Which of this run's pairs define "alike" and "unlike" on each axis, and the values
# they set (the [methods appendix](../methods.md) states the rule): a pair is alike at
# or above the alike reference's floor (its 5th percentile), unlike at or below the
# unlike reference's ceiling (its 95th), in between otherwise. The chance column is
# the measure's null 99th percentile, the floor for "above chance".
# {glue:text}`references`

# %%
thresholds = references.reference_thresholds(pairs, list(similarities), list(behaviours),
                                             nulls={**untrained, **(behaviour_nulls or {})})
files.write_table(thresholds.reset_index(), paths["references"], provenance={"weights": report.weight_hashes(catalog)})
sentences.reference_table(thresholds)

# %% [markdown]
# ## Does similarity predict behaviour?
# The Mantel test correlates two matrices (Spearman over pairs) and compares that with
# the networks relabelled at random. Relabelling single networks treats them as
# independent, which a parent and its offspring are not: the test that counts is the one
# that permutes *whole families* (this run has {glue:text}`n_families` of them), and
# every interval resamples families. The last column holds lineage (same family or not)
# and training data (same manipulation or not) fixed. The p-values of the family test
# are corrected for the table's number of tests (Holm).

# %%
statistics = paradox.statistics_table(similarities, behaviours, pairs, similar_threshold, compatible_threshold,
                                      mantel_permutations, bootstrap_resamples, statistics_seed,
                                      similarity_nulls=similarity_nulls, behaviour_nulls=behaviour_nulls,
                                      groups=family_of, covariates=references.covariates(catalog, list(compat.index)))
files.write_table(statistics.reset_index(), paths["statistics"], provenance={"weights": report.weight_hashes(catalog)})
sentences.association_table(statistics)

# %% [markdown]
# What the design could have seen: the smallest correlation between the paper's
# similarity and compatibility that the family test detects at 80 % power, simulated
# with this run's own family structure and noise. {glue:text}`detectable`

# %%
power = inference.detectable_correlation(similarities["paper"], compat, family_of, simulations=power_simulations,
                                         permutations=power_permutations, seed=statistics_seed)
power["curve"].round(3)

# %% [markdown]
# ## How many pairs fall in each paradox
# By the run's references (the verdict), and by the thresholds above — the measures'
# null 99th percentiles ("above chance"), or the paper's fixed 0.5 — as
# similar yet different / different yet similar. Every column, unrounded, is in
# `paradox_counts.parquet` and `paradox_statistics.parquet`.

# %%
counts = references.paradox_counts(pairs, thresholds, list(similarities), list(behaviours))
files.write_table(counts.reset_index(), paths["counts"], provenance={"weights": report.weight_hashes(catalog)})
sentences.count_table(counts, statistics)

# %% [markdown]
# ## Which similarity measure tracks behaviour?
# For every similarity measure and every behavioural measure — over the whole grid and
# per manipulation — the rank correlation across all pairs, within families and between
# families, with 95 % intervals over families. CKA measured on the distorted images
# themselves is read against behaviour under the same manipulation.

# %%
table = grounding.grounding_table(similarities, grounding.behaviour_scopes(accuracy, bits), family_of,
                                  bootstrap_resamples, statistics_seed, distorted={"cka (distorted)": cka_distorted})
files.write_table(table, paths["grounding"], provenance={"weights": report.weight_hashes(catalog)})
plots.show(plots.grounding_figure(table))

# %% [markdown]
# Per layer: linear CKA of each residual stage (clean probe images) against
# compatibility, all pairs, within and between families.

# %%
grounding.per_layer(cka_layers, compat, family_of, bootstrap_resamples, statistics_seed).round(3)

# %% [markdown]
# ## The most paradoxical pairs
# The pairs whose compatibility and similarity disagree most, and their accuracy
# profiles side by side.

# %%
top = paradox.most_paradoxical(pairs, "paper", n=5)
top[["a", "b", "relation", "compatibility", "similarity_paper", "difference_paper"]].round(3)

# %%
plots.show(plots.accuracy_profiles(accuracy, [top.loc[0, "a"], top.loc[0, "b"]]))

# %% [markdown]
# How well the test images pin down this pair's behavioural agreement (paired
# bootstrap over images, the same draw for both networks): {glue:text}`top_pair`.

# %% tags=["remove-cell"]
top_pair = sentences.pair_intervals(bootstrap.compatibility_interval(bits, top.loc[0, "a"], top.loc[0, "b"]),
                                    bootstrap.kappa_interval(bits, top.loc[0, "a"], top.loc[0, "b"]))
glue_texts({"top_pair": top_pair})

# %% [markdown]
# ## Explore two networks (JupyterLab)
# Pick two networks to see their accuracy profiles, their per-layer similarity and
# their cell in each matrix. It needs a live kernel: in the static book the most
# paradoxical pair above stands in for it.

# %%
explorer.explorer(accuracy, {"compatibility": compat, **similarities,
                             **{f"difference ({m})": d for m, d in differences.items()}}, layer_scores)

# %% tags=["remove-cell"]
glue_texts({"behaviour_chance": sentences.behaviour_against_chance(pairs, behaviour_nulls),
            "references": sentences.references_sentence(thresholds), "n_families": str(len(set(family_of.values()))),
            "grounding": sentences.grounding_sentences(table),
            **sentences.paradox_glue(counts, statistics, power)})  # n_pairs, n_syd, n_dys, mantel_*, verdict, …

# %% [markdown]
# ## Summary
# {glue:text}`verdict`
#
# Which measure tracks behaviour: {glue:text}`grounding`
#
# The most paradoxical pair, {glue:text}`top_pair`.
#
# {glue:text}`behaviour_chance`
#
# By measure (r, family-level p, counts by the references): {glue:text}`per_method`
#
# ## What's next
# Chapter 6 moves single layers between a parent and its offspring; a population without
# offspring (networks imported without a lineage) ends here.
# % Not a link: a book without chapter 6 fails on a link to it (warnings are errors); the page's "Next" links it.
