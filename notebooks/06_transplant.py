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
# # 6. Weight transplant: which layer carries the change?
#
# ## Overview
# ```{glue} regime
# ```
#
# If an offspring behaves differently from its parent while its kernels barely moved,
# where does the difference live? The paper transplanted the layer that moved most
# in fine-tuning from the child into the parent (with the BatchNorms on either side,
# as the authors did) and saw the parent's VI rise; transplanting all conv layers gave
# the child's VI (as in the paper). This chapter repeats both, sweeps every conv layer
# one at a time, and checks whether re-estimating BatchNorm statistics after a
# transplant changes the answer. The [methods appendix](../methods.md) describes the
# transplant and the intervals over images. Every VI here is measured on this chapter's
# own evaluation set (`transplant_eval_per_class` images a class), which may be smaller
# than chapter 3's: the parent and child then have other VIs than there, and the chapter
# says by how much and why.
#
# ## Prerequisites
# - The population (chapters 1–2); the evaluation settings of chapter 3; the
#   similarity nulls of chapter 4 (`similarity_nulls.parquet`: the chance level the
#   figures mark).
# - Output: `transplant.parquet` (VI of every variant) and `transplant_sweep.parquet`.

# %% [markdown]
# ## Imports

# %%
from paradox_utils import files, plots, report, sentences, transplant
from paradox_utils.preamble import glue_regime, glue_texts, open_chapter

# %% [markdown]
# ## Parameters

# %% tags=["parameters"]
profile: str = "quick"  # profiles/NAME.yaml or a YAML path: its values replace the defaults not passed with -p
dataset: str = "cifar10"  # cifar10 or imagenet
checkpoint_dir: str = ""  # where the checkpoints are ("": checkpoints/<profile>)
results_dir: str = ""  # where the result tables go ("": data/results/<profile>)
device: str = "auto"  # torch device to evaluate on (auto: a GPU when present, else the CPU)
transplant_parent: str = ""  # the parent whose offspring is transplanted ("": any parent)
transplant_child: str = ""  # the offspring ("": one trained with all eight manipulations, else the first)
transplant_eval_per_class: int = 30  # test images of each class for every VI (as eval_per_class: chapter 3's VIs)
transplant_sweep: bool = True  # also transplant every conv layer on its own
bn_recalibration_images: int = 500  # clean images that re-estimate BatchNorm after a transplant (0: none)
noise_seed: int = 0  # seed of the noise every variant shares
eval_precision: str = "float32"  # forward passes in float32, or bfloat16 (as chapter 3's eval_precision)
image_resamples: int = 1000  # paired bootstrap over the evaluation images (ΔVI intervals)

# %%
ch = open_chapter("06_transplant", globals(), reads=("accuracy", "pairs", "nulls"))  # values, networks, tables
paths, catalog, target = ch.paths, ch.catalog, ch.device
accuracy, pairs, nulls = ch.tables
chance = report.null_summary(nulls)
chance_paper = chance.loc["paper", "mean"]  # untrained pairs
parent_id, child_id = report.transplant_pair(catalog, transplant_parent, transplant_child)
parent, child = report.load_networks(catalog.set_index("net_id").loc[[parent_id, child_id]].reset_index(),
                                     device=target).values()
images = report.evaluation_set(dataset, transplant_eval_per_class)
clean = report.probe_images(dataset, bn_recalibration_images, seed=2).to(target) if bn_recalibration_images else None
parent_id, child_id

# %% [markdown]
# ## Where this run stands
# The box at the top of this chapter, computed here: the base networks' clean accuracy
# and the unrelated pairs' similarity beside its chance level, against the paper's.

# %% tags=["remove-output"]
glue_regime(catalog, accuracy, pairs, chance)

# %% [markdown]
# ## The experiments
# All variants are evaluated together on the full manipulation grid: parent, child,
# the parent with the child's most-deviated layer, the parent with all the child's
# conv layers, those two after BatchNorm re-estimation on clean images, and (the
# sweep) the parent with each single child layer.

# %%
results = transplant.transplant_experiments(parent, child, images, sweep=transplant_sweep,
                                            recalibration_images=clean, seed=noise_seed, resamples=image_resamples,
                                            device=target, precision=eval_precision)
made_from = {"weights": report.weight_hashes(catalog.set_index("net_id").loc[[parent_id, child_id]].reset_index()),
             "eval_set": images.fingerprint(), "noise_seed": noise_seed, "precision": eval_precision}
files.write_table(results.summary.reset_index(), paths["transplant"], provenance=made_from)
files.write_table(results.sweep, paths["sweep"], provenance=made_from)
sentences.transplant_table(results.summary)

# %% [markdown]
# ΔVI is each variant's VI less the parent's, on the same images; its 95 % interval comes
# from resampling those images. Mean accuracy per manipulation, per variant:

# %%
sentences.manipulation_table(results.summary)

# %% [markdown]
# ## The same networks in chapter 3
# Chapter 3 measured the parent's and the child's VI too, on its own evaluation set
# (`eval_per_class` images a class). A VI belongs to a network *and* the images it was
# measured on: the two chapters' values agree only when both use the same images and
# the same noise.

# %%
both_chapters = transplant.vi_in_both_chapters(results.accuracy, accuracy, parent_id, child_id)
glue_texts({"vi_chapters": sentences.vi_across_chapters(both_chapters)})
sentences.vi_chapters_table(both_chapters)

# %% [markdown]
# {glue:text}`vi_chapters`

# %% [markdown]
# ## The layer that moved most
# Parent–child kernel correlation per layer for this pair; the lowest is transplanted.
# The chance level (the paper's measure between untrained networks, chapter 4) is
# marked — at the axis' edge where it lies far below the profile.

# %%
plots.show(plots.layer_profile_figure({child_id: results.profile}, chance=chance_paper))

# %% [markdown]
# ## Every layer alone
# ΔVI of the parent when one child layer replaces its own, against how far that
# layer moved. If the change lived in the most-moved layers, points would fall
# from the top left.

# %%
if len(results.sweep):
    plots.show(plots.transplant_sweep_figure(results.sweep, chance=chance_paper))

# %% tags=["remove-cell"]
glue_texts(sentences.transplant_glue(results, parent_id, child_id))  # tp_*, vi_*, sweep_best

# %% [markdown]
# ## Summary
# On {glue:text}`tp_images`, parent {glue:text}`tp_parent` has VI {glue:text}`vi_parent`, its offspring
# {glue:text}`tp_child` {glue:text}`vi_child` (ΔVI {glue:text}`change_child`).
# Transplanting the most-moved layer, {glue:text}`tp_layer`, gives the parent VI
# {glue:text}`vi_one` (ΔVI {glue:text}`change_one`); transplanting every conv layer
# gives {glue:text}`vi_all` (ΔVI {glue:text}`change_all`; the paper: the child's VI).
# These copy the BatchNorms around each conv too; the paper's text counts the conv
# alone, which gives {glue:text}`vi_one_conv` (ΔVI {glue:text}`change_one_conv`) for the
# one layer and {glue:text}`vi_all_conv` (ΔVI {glue:text}`change_all_conv`) for every conv.
# Intervals are 95 % paired bootstrap intervals over the evaluation images. In the
# sweep, {glue:text}`sweep_best`
#
# This closes the book: the [introduction](../intro.md) gathers the answers.
