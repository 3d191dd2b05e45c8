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
# # 2. Fine-tuning offspring
#
# ## Overview
# The paper's sharpest pairs are a parent and its *offspring*: a copy trained a few
# more epochs with different augmentation only (one manipulation, all eight, or
# none). The paper reports that their kernels barely move while their behaviour under
# distortion can change; chapters 4 and 5 measure whether that holds here. This chapter
# trains those offspring and records their lineage. The [methods appendix](../methods.md)
# states the fine-tuning recipe and how each parent's augmentations are drawn.
#
# ## Prerequisites
# - The base networks of [chapter 1](01_train.ipynb) in `checkpoints/<profile>/`.
# - Output: the offspring checkpoints (their metadata names the parent) and the
#   full `catalog.parquet`.

# %% [markdown]
# ## Imports

# %%
from paradox_utils import cluster, plots, population, report, sentences
from paradox_utils.preamble import glue_texts, open_chapter

# %% [markdown]
# ## Parameters

# %% tags=["parameters"]
profile: str = "quick"  # profiles/NAME.yaml or a YAML path: its values replace the defaults not passed with -p
checkpoint_dir: str = ""  # where the checkpoints go ("": checkpoints/<profile>)
results_dir: str = ""  # where the result tables go ("": data/results/<profile>)
scheduler: str = "auto"  # auto, serial, local, slurm, or a running Dask scheduler's address tcp://host:8786
workers: int = 0  # Dask workers of a local or slurm cluster (0: one per available core, or one slurm job)
device: str = "auto"  # torch device to train on (auto: a GPU when present, else the CPU)
group_size: int = 1  # networks trained at once, stacked (for GPUs; 1 is fastest on a CPU)
cluster_options: dict = {}  # scheduler slurm: SLURMCluster settings (queue, cores, memory, walltime …)
retrain: list = []  # ids whose finished checkpoints are trained again (with their offspring); "stale": all that differ
finetune_parents: int = 2  # the first n base networks have offspring
finetune_manipulations: list = [None, "all", "contrast", "gaussian"]  # the offspring's augmentations (None: none)
finetune_per_parent: int = 0  # 0: each parent gets every augmentation; k: k of them each, drawn at random (seeded)
finetune_total: int = 0  # with finetune_per_parent: offspring in all (the extra ones go one each to random parents)
finetune_seed: int = 0  # seed of those draws
finetune_common: dict = {"epochs": 1, "lr": 0.01, "schedule": "cosine",
                         "train_per_class": 2000}  # settings every offspring shares (the rest: its parent's)
finetune_groups: list = []  # further offspring groups, each a mapping of population.finetune_specs' keywords

# %%
ch = open_chapter("02_finetune", globals())  # the profile's values, the folders, threads and device
bases = population.specs_from_catalog(population.read_catalog(ch.paths["checkpoints"]), kind="base")
specs = bases + population.offspring_specs(bases, parents=finetune_parents, manipulations=finetune_manipulations,
                                           common=finetune_common, groups=finetune_groups,
                                           per_parent=finetune_per_parent, total=finetune_total, seed=finetune_seed)

# %% [markdown]
# ## The offspring
# The parents are the base networks chapter 1 recorded in the catalog (their
# settings are read from there, not declared again). Each offspring starts from its
# parent's weights and trains with one augmentation.

# %%
report.population_table([s for s in specs if s.kind == "finetune"])

# %% [markdown]
# ## Fine-tuning
# Offspring wait for their parents (already finished in chapter 1, so they start at
# once). The catalog now lists the whole population.

# %%
catalog = cluster.run_population(specs, ch.paths["checkpoints"], scheduler=scheduler, workers=workers or None,
                                 device=str(ch.device), group_size=group_size,
                                 retrain=population.retrain_for(specs, retrain, "finetune"),
                                 cluster_options=cluster_options or None)
offspring = catalog[catalog["kind"] == "finetune"]
offspring[["net_id", "parent", "status", "val_accuracy", "train_seconds", "error"]]

# %% [markdown]
# ## Offspring against their parents
# Validation accuracy of each offspring beside its parent's.

# %%
comparison = report.offspring_comparison(catalog)
comparison

# %% [markdown]
# Validation accuracy per fine-tuning epoch — or, when every offspring was fine-tuned for
# a single epoch, a bar each (a curve needs two epochs):

# %%
plots.show(plots.training_figure(report.histories(offspring)))

# %% tags=["remove-cell"]
glue_texts(sentences.finetune_glue(catalog, comparison))  # n_offspring, n_population, offspring_change

# %% [markdown]
# ## Summary
# {glue:text}`n_offspring` offspring were fine-tuned, for a population of
# {glue:text}`n_population` networks. Fine-tuning changed validation accuracy by
# {glue:text}`offspring_change` (offspring − parent).
#
# ## What's next
# [Chapter 3](03_evaluate.ipynb) measures every network under the eight image manipulations.
