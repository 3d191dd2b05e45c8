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
# # 1. Training a population from scratch
#
# ## Overview
# The paper's question needs many networks of one architecture that differ only in
# how they were trained. This chapter trains the *base* networks of the population:
# one ResNet trained with the settings its profile varies (learning rate, batch size,
# initialisation, augmentation, seed). What this profile trained, and where that departs
# from the paper's recipe, is stated from the networks' recorded settings at the end of
# this chapter. The [methods appendix](../methods.md) states the recipes, the schedules
# and the populations.
#
# ## Prerequisites
# - CIFAR-10 (or ImageNet for the `imagenet` profile), found through `PARADOX_CIFAR10`
#   / `PARADOX_IMAGENET` or downloaded by torchvision.
# - Nothing from earlier chapters. Output: `checkpoints/<profile>/` with one
#   `.safetensors` + `.json` per network and `catalog.parquet`.

# %% [markdown]
# ## Imports

# %%
from paradox_utils import cluster, plots, population, report, sentences
from paradox_utils.preamble import glue_texts, open_chapter

# %% [markdown]
# ## Parameters
# The defaults are the `quick` profile; `notebooks/profiles/*.yaml` hold the others.

# %% tags=["parameters"]
profile: str = "quick"  # profiles/NAME.yaml or a YAML path: its values replace the defaults not passed with -p
arch: str = "resnet20"  # the architecture of every network (resnet20 for CIFAR-10, resnet50 for ImageNet)
dataset: str = "cifar10"  # cifar10 or imagenet
checkpoint_dir: str = ""  # where the checkpoints go ("": checkpoints/<profile>)
results_dir: str = ""  # where the result tables go ("": data/results/<profile>)
scheduler: str = "auto"  # auto, serial, local, slurm, or a running Dask scheduler's address tcp://host:8786
workers: int = 0  # Dask workers of a local or slurm cluster (0: one per available core, or one slurm job)
device: str = "auto"  # torch device to train on (auto: a GPU when present, else the CPU)
group_size: int = 1  # networks trained at once, stacked (for GPUs; 1 is fastest on a CPU)
cluster_options: dict = {}  # scheduler slurm: SLURMCluster settings (queue, cores, memory, walltime …)
retrain: list = []  # ids whose finished checkpoints are trained again (with their offspring); "stale": all that differ
base_common: dict = {"epochs": 2, "val_per_class": 50, "batch_size": 128, "optimiser": "sgd", "nesterov": True,
                     "momentum": 0.9, "schedule": "onecycle", "time_decay": 0.0, "l2": 0.00025,
                     "label_smoothing": 0.1,
                     "precision": "bfloat16"}  # training settings every base network shares (TrainConfig fields)
base_grid: dict = {"lr": [0.1, 0.15]}  # setting -> values: one base network per combination
base_sample = None  # type: Optional[int] draw this many of the grid's combinations (seeded); None: every one
base_replicates: int = 2  # networks per combination, differing only in seed (the noise floor of a recipe)
base_overrides: dict = {}  # net id -> settings for that one base network, e.g. {"b001": {"manipulation": "all"}}

# %% [markdown]
# Derived values (papermill does not recompute them, so they live here).

# %%
ch = open_chapter("01_train", globals())  # the profile's values, the folders, threads and device
specs = population.base_specs(common=base_common, grid=base_grid, sample=base_sample, arch=arch, dataset=dataset,
                              overrides=base_overrides, replicates=base_replicates)
ch.settings

# %% [markdown]
# ## The base networks
# One row per network; the varied settings come from the profile's grid.

# %%
report.population_table(specs)

# %% [markdown]
# ## Training
# Each network trains into its own checkpoint, saved after every epoch; finished
# networks are skipped and interrupted ones resume; a finished checkpoint made with
# other settings than this profile's is refused (name it in `retrain` to train it
# again). With more than one job the
# jobs run on a Dask cluster (a LocalCluster by default, or the `scheduler` given).
# With `group_size` > 1, networks that differ only in seed, init or augmentation
# train together as one stacked network — each keeps its own weights, BatchNorm
# statistics and checkpoint.

# %%
catalog = cluster.run_population(specs, ch.paths["checkpoints"], scheduler=scheduler, workers=workers or None,
                                 device=str(ch.device), group_size=group_size,
                                 retrain=population.retrain_for(specs, retrain, "base"),
                                 cluster_options=cluster_options or None)
catalog[["net_id", "status", "epochs_done", "val_accuracy", "train_seconds", "error"]]

# %% [markdown]
# ## Learning curves
# Validation accuracy after each epoch (a held-out stratified subset of the test split);
# when every network trained a single epoch, a bar each: a curve needs two epochs.

# %%
plots.show(plots.training_figure(report.histories(catalog)))

# %% tags=["remove-cell"]
glue_texts(sentences.training_glue(catalog))  # n_base, base_val_accuracy, base_train_minutes

# %% [markdown]
# ## Summary
# {glue:text}`recipe`
#
# This run trained {glue:text}`n_base` base networks in {glue:text}`base_train_minutes`
# CPU-minutes of training; their validation accuracy is {glue:text}`base_val_accuracy`
# (mean ± std over networks). Chance is 0.10.
#
# ## What's next
# [Chapter 2](02_finetune.ipynb) fine-tunes some of them into offspring that start
# from their parent's weights.
