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
# # 3. Behaviour under eight image manipulations
#
# ## Overview
# ```{glue} regime
# ```
#
# Each network is tested on the same images under contrast, illuminant, blur,
# gamma, salt-and-pepper, Gaussian, speckle and Poisson manipulations at the paper's
# levels: 37 cells (as in the paper). Noise is *shared*: image i in a cell receives
# the same noise for every network, so a difference between two networks never comes
# from different noise draws. That removes the noise draw's variance, not the
# sampling error of the test images themselves: every accuracy is measured on a finite
# sample of images, so a network's VI — and a difference between two — would move with
# another sample. The intervals below measure how much for each network's VI.
# *Visual intelligence* (VI) is the mean over the eight manipulations of the mean
# accuracy over their levels; every VI here is quoted with the number of test images it
# was measured on, as another set — chapter 6's, say — gives the same network another VI.
# The [methods appendix](../methods.md) gives each manipulation's formula and levels,
# and the measures of behaviour.
#
# Beyond the paper, the engine keeps *which* images each network got right in every
# cell, so behaviour can be compared trial by trial: error consistency (Cohen's κ,
# Geirhos et al. 2020) asks whether two networks fail on the same images beyond what
# their accuracies predict.
#
# ## Prerequisites
# - The trained population (`checkpoints/<profile>/catalog.parquet`, chapters 1–2), or
#   networks trained elsewhere and imported (`python -m paradox_utils import`).
# - Output: `data/results/<profile>/accuracy.parquet`, one row per network × cell, and
#   beside it `accuracy.correct.parquet`, the per-image correctness bits.

# %% [markdown]
# ## Imports

# %%
from paradox_utils import behaviour, bootstrap, evaluation, files, plots, report, sentences
from paradox_utils.preamble import glue_regime, glue_texts, open_chapter

# %% [markdown]
# ## Parameters

# %% tags=["parameters"]
profile: str = "quick"  # profiles/NAME.yaml or a YAML path: its values replace the defaults not passed with -p
dataset: str = "cifar10"  # cifar10 or imagenet
checkpoint_dir: str = ""  # where the checkpoints are ("": checkpoints/<profile>)
results_dir: str = ""  # where the result tables go ("": data/results/<profile>)
device: str = "auto"  # torch device to evaluate on (auto: a GPU when present, else the CPU)
eval_per_class: int = 100  # test images of each class
eval_batch_size: int = 500  # images per forward pass
eval_precision: str = "float32"  # forward passes in float32, or bfloat16 (2.6× faster on CPUs with AMX)
noise_seed: int = 0  # seed of the noise every network shares
image_resamples: int = 1000  # paired bootstrap over test images (intervals for VI and κ)
statistics_seed: int = 0  # seed of the bootstrap
subset: int = 20  # networks drawn in the overview figures (whole families, seeded; 0: all); statistics use all

# %%
ch = open_chapter("03_evaluate", globals())  # the profile's values, folders, device and finished networks
paths, catalog, parents, shown, target = ch.paths, ch.catalog, ch.parents, ch.shown, ch.device
networks = report.load_networks(catalog, device=target)
images = report.evaluation_set(dataset, eval_per_class)
len(networks), len(images)

# %% [markdown]
# ## Evaluation
# Every batch is distorted once per cell and all networks run on it; results are
# saved after each cell, so an interrupted evaluation resumes where it stopped. The
# result is one row per network and cell, keyed also by the weights' sha256, the
# evaluation set and the noise seed (left out of the first rows shown here), and by the
# precision of the forward passes (`eval_precision`).

# %%
accuracy = evaluation.evaluate_cached(networks, images, seed=noise_seed, batch_size=eval_batch_size, device=target,
                                      weights=report.weight_hashes(catalog), precision=eval_precision,
                                      out=paths["accuracy"]).table
accuracy.head()[["net_id", "manipulation", "level", "accuracy", "n_images", "precision"]]

# %% [markdown]
# ## Where this run stands
# The box at the top of this chapter, computed here: the base networks' clean accuracy, against the paper's.

# %% tags=["remove-output"]
glue_regime(catalog, accuracy)

# %% [markdown]
# ## Visual intelligence (the paper's Figures 1 and 4)
# One bar per network, one segment per manipulation (its mean accuracy divided by
# eight, so the bar's height is the VI), sorted by VI. Hover for the numbers. Like the
# paper's Figure 1, a larger population is drawn as a representative subset (the
# `subset` parameter: whole families — a parent with its offspring — picked at random
# with a fixed seed); the tables and statistics below use every network.

# %%
plots.show(plots.vi_bars(accuracy, networks=shown))

# %% [markdown]
# ## VI per network
# Each network's clean accuracy and VI, highest VI first. The interval is a 95 %
# interval from resampling the test images (the same draw for every network): how much a
# network's VI owes to which images were drawn.

# %%
bits = report.read_correctness(paths["accuracy"], catalog)  # per image: what the intervals and κ resample
vi = bootstrap.vi_interval(bits, image_resamples, statistics_seed)
table = evaluation.network_table(accuracy, vi)
by_vi = sentences.vi_table(table)
by_vi

# %% [markdown]
# ## Per manipulation
# Mean accuracy over each manipulation's levels — the segments of the bars above — for
# the networks in the same order (every cell's accuracy, level by level, is in
# `accuracy.parquet`).

# %%
sentences.manipulation_table(table, by_vi.index)

# %% [markdown]
# ## Trial by trial: which images
# For each cell, the share of images that every network classifies correctly, that
# every network gets wrong, and the rest — the only images on which two networks can
# disagree.

# %%
outcomes = bits.shared_outcomes()
outcomes.groupby("manipulation", sort=False).mean().round(3)

# %% [markdown]
# ## Error consistency (κ)
# κ = 1: two networks get exactly the same images right and wrong; κ ≈ 0: their errors
# overlap no more than two independent observers with their accuracies would (pooled
# over all 37 cells; chapter 5 compares it with its null). In the paper's colours for
# similarity, red is 0 — agreement no better than chance, marked on the colour bar —
# and green is 1.

# %%
kappa = behaviour.error_consistency_matrix(bits)
files.write_table(kappa.reset_index(), paths["kappa"], provenance={"weights": report.weight_hashes(catalog)})
plots.show(plots.heatmap(kappa, "Error consistency κ (pooled over the 37 cells)", parents,
                         kind="kappa", chance=0.0, networks=shown))  # κ = 0: agreement expected by chance

# %% tags=["remove-cell"]
glue_texts(sentences.evaluation_glue(accuracy, table, outcomes, kappa, catalog))  # n_images, vi, kappa, origin, …

# %% [markdown]
# ## Summary
# {glue:text}`n_evaluated` networks were tested on {glue:text}`n_images` images in each
# of the 37 cells. Clean accuracy is {glue:text}`clean_accuracy`; VI is {glue:text}`vi`,
# ranging {glue:text}`vi_range` (the paper: clean 0.88–0.92 and VI 0.59–0.85 for fully
# trained ResNet20). The hardest manipulation for this population is
# {glue:text}`hardest`. A network's VI is known to within a 95 % interval of median
# width {glue:text}`vi_interval_width` from these images alone. On average
# {glue:text}`disagree` of a cell's images split the networks; over pairs, error
# consistency is κ = {glue:text}`kappa`.
#
# ## What's next
# [Chapter 4](04_similarity.ipynb) asks how alike the same networks are inside.
