# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. Behaviour under eight image manipulations
#
# ## Overview
# Each network is tested on the same images under contrast, illuminant, blur,
# gamma, salt-and-pepper, Gaussian, speckle and Poisson manipulations at the paper's
# levels: 37 cells (PAPER_SPEC §3). Noise is *shared*: image i in a cell receives
# the same noise for every network, so differences between networks are not noise.
# *Visual intelligence* (VI) is the mean over the eight manipulations of the mean
# accuracy over their levels.
#
# ## Prerequisites
# - The trained population (`checkpoints/<profile>/catalog.parquet`, chapters 1–2).
# - Output: `data/results/<profile>/accuracy.parquet`, one row per network × cell.

# %% [markdown]
# ## Imports

# %%
from myst_nb import glue

from paradox_utils import evaluation, pipeline, plots, report, runtime, sentences

# %% [markdown]
# ## Parameters

# %% tags=["parameters"]
profile = "quick"
dataset = "cifar10"
checkpoint_dir = ""
results_dir = ""
device = "auto"
eval_per_class = 100
eval_batch_size = 500
noise_seed = 0

# %%
paths = pipeline.chapter_paths(profile, checkpoint_dir, results_dir)
runtime.configure()
plots.set_theme()
target = runtime.pick_device(device)
catalog = report.done_networks(paths["checkpoints"])
networks = report.load_networks(catalog, device=target)
images = report.evaluation_set(dataset, eval_per_class)
len(networks), len(images)

# %% [markdown]
# ## Evaluation
# Every batch is distorted once per cell and all networks run on it; results are
# saved after each cell, so an interrupted evaluation resumes where it stopped.

# %%
accuracy = evaluation.evaluate(networks, images, seed=noise_seed, batch_size=eval_batch_size, device=target,
                               out=paths["accuracy"], weights=report.weight_hashes(catalog))
accuracy.head()

# %% [markdown]
# ## Visual intelligence (the paper's Figures 1 and 4)
# One bar per network, one segment per manipulation (its mean accuracy divided by
# eight, so the bar's height is the VI), sorted by VI. Hover for the numbers.

# %%
plots.show(plots.vi_bars(accuracy))

# %% [markdown]
# ## Per manipulation
# Mean accuracy over each manipulation's levels, with clean accuracy and VI.

# %%
table = evaluation.per_manipulation(accuracy)
table = table.assign(clean=evaluation.clean_accuracy(accuracy), vi=evaluation.visual_intelligence(accuracy))
table.sort_values("vi", ascending=False).round(3)

# %%
glue("n_evaluated", len(table), display=False)
glue("n_images", int(accuracy["n_images"].iloc[0]), display=False)
glue("clean_accuracy", sentences.mean_std(table["clean"]), display=False)
glue("vi", sentences.mean_std(table["vi"]), display=False)
glue("vi_range", f"{table['vi'].min():.3f}–{table['vi'].max():.3f}", display=False)
glue("hardest", table.drop(columns=["clean", "vi"]).mean().idxmin(), display=False)

# %% [markdown]
# ## Summary
# {glue:text}`n_evaluated` networks were tested on {glue:text}`n_images` images in each
# of the 37 cells. Clean accuracy is {glue:text}`clean_accuracy`; VI is {glue:text}`vi`,
# ranging {glue:text}`vi_range` (the paper: clean 0.88–0.92 and VI 0.59–0.85 for fully
# trained ResNet20). The hardest manipulation for this population is
# {glue:text}`hardest`.
#
# ## What's next
# [Chapter 4](04_similarity.ipynb) asks how alike the same networks are inside.
