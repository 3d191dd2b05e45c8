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
# # 4. How alike are the networks inside?
#
# ## Overview
# ```{glue} regime
# ```
#
# *Intrinsic similarity* compares two networks' conv kernels: in every conv layer,
# kernels of network A are paired one-to-one with kernels of network B, the paired
# Pearson correlations are averaged, and the layer scores are averaged
# (as in the paper). How the kernels are paired matters, so three alignments are
# compared: the paper's sequential greedy (`paper`), the optimal assignment
# (`hungarian`), and permutations consistent through the whole network (`coupled`).
# Beside them, linear CKA compares *representations* on a fixed probe batch — the
# measure the paper's own discussion (§4.2) asks for. Every matrix is read against
# its chance level: the similarity of untrained, independently initialised networks.
# The [methods appendix](../methods.md) defines each alignment, CKA and the null models.
#
# ## Prerequisites
# - The trained population (chapters 1–2).
# - Output: `similarity.parquet` (every N × N matrix), `layer_similarity.parquet`,
#   `layer_profiles.parquet` and `chance.parquet` in `data/results/<profile>/`.

# %% [markdown]
# ## Imports

# %%
import pandas as pd

from paradox_utils import files, paradox, plots, report, sentences, similarity
from paradox_utils.preamble import glue_regime, glue_texts, open_chapter

# %% [markdown]
# ## Parameters

# %% tags=["parameters"]
profile: str = "quick"  # profiles/NAME.yaml or a YAML path: its values replace the defaults not passed with -p
arch: str = "resnet20"  # the architecture of the untrained networks of the chance level
dataset: str = "cifar10"  # cifar10 or imagenet (the CKA probe images)
checkpoint_dir: str = ""  # where the checkpoints are ("": checkpoints/<profile>)
results_dir: str = ""  # where the result tables go ("": data/results/<profile>)
device: str = "auto"  # torch device to compute on (auto: a GPU when present, else the CPU)
similarity_methods: list = ["paper", "hungarian", "coupled"]  # kernel alignments compared (paper first)
cka_probe_images: int = 500  # images whose activations CKA compares
chance_networks: int = 0  # untrained networks per null distribution (0: the measure's default, ≥ 100 pairs)
subset: int = 20  # networks drawn in the overview figures (whole families, seeded; 0: all); statistics use all

# %%
ch = open_chapter("04_similarity", globals(), reads=("accuracy",))  # the profile's values, networks, chapter 3's table
paths, catalog, parents, shown, target = ch.paths, ch.catalog, ch.parents, ch.shown, ch.device
(accuracy,) = ch.tables
ids, states = list(catalog["net_id"]), report.checkpoint_files(catalog)

# %% [markdown]
# ## Kernel similarity, three alignments
# Pairs are computed in chunks (on a GPU when one is given) and cached by the hash
# of each network's kernels, so adding a network computes only its new pairs.

# %%
matrices, per_layer = {}, {}
for method in similarity_methods:
    measured = similarity.pairwise_similarity_cached(states, method=method, device=target,
                                                     cache=paths["similarity_cache"])
    matrices[method] = pd.DataFrame(measured.matrix, index=ids, columns=ids)
    per_layer[method] = measured.layers
layer_names = similarity.layer_names(next(iter(states.values())))

# %% [markdown]
# ## Representation similarity (linear CKA)
# Activations of each residual stage and of the pooled features on one fixed probe
# batch; the network's CKA is the mean over those layers.

# %%
networks = report.load_networks(catalog, device=target)
probe = report.probe_images(dataset, cka_probe_images).to(target)
cka, cka_per_layer = similarity.cka_matrix(networks, probe)
matrices["cka"] = pd.DataFrame(cka, index=ids, columns=ids)
report.save_matrices(paths["similarity"], matrices, report.weight_hashes(catalog))
report.save_matrices(paths["cka_layers"], {layer: pd.DataFrame(m, index=ids, columns=ids)
                                           for layer, m in cka_per_layer.items()}, report.weight_hashes(catalog))

# %% [markdown]
# The same CKA on the probe images distorted by each manipulation (at the middle of its
# levels), so that chapter 5 can read representations under a manipulation against
# behaviour under it, not only clean ones.

# %%
distorted = similarity.distorted_cka(networks, probe)
report.save_matrices(paths["cka_distorted"], {m: pd.DataFrame(v, index=ids, columns=ids)
                                              for m, v in distorted.items()}, report.weight_hashes(catalog))
files.write_table(report.layer_table(ids, per_layer["paper"], layer_names), paths["layers"],
                 provenance={"weights": report.weight_hashes(catalog)})

# %% [markdown]
# ## Chance level
# Greedy maximisation over K kernels finds positive correlations even between
# random networks; this is the floor against which the matrices read. Each measure's
# *null distribution* is its value over every pair of independently initialised,
# untrained networks; its 99th percentile (`p99`) is what "similar" means in chapter 5
# (above chance), beside the paper's fixed threshold.

# %%
nulls = {m: similarity.null_distribution(arch, m, n_networks=chance_networks or None, images=probe)
         for m in [*similarity_methods, "cka"]}
report.save_nulls(paths["nulls"], nulls)
chance = report.null_summary(nulls)
files.write_table(chance.reset_index(), paths["chance"])
chance

# %% [markdown]
# ## The similarity matrix (the paper's Figures 7 and 10)
# Ordered by lineage: each base network is followed by its offspring. In the paper's
# colours for similarity, red is 0 (no correlation) and green is 1; the colour bar
# marks the chance level, the mean over pairs of untrained networks. A larger
# population is drawn as a representative subset of whole families (the `subset`
# parameter, the same networks as chapter 3's figures); every statistic uses all pairs.

# %%
chance_paper = chance.loc["paper", "mean"]
plots.show(plots.heatmap(matrices["paper"], "Intrinsic similarity (paper's alignment)", parents,
                         kind="similarity", chance=chance_paper, networks=shown))

# %% [markdown]
# The same networks by representation (CKA), clustered:

# %%
chance_cka = chance.loc["cka", "mean"]
plots.show(plots.heatmap(matrices["cka"], "Representation similarity (linear CKA)", parents, order="cluster",
                         zlabel="CKA", kind="similarity", chance=chance_cka, networks=shown))

# %% [markdown]
# ## Similarity by relation
# Mean ± std over pairs for parents and their offspring, siblings, and unrelated
# networks, for every measure.

# %%
pairs = paradox.pair_table(matrices, parents)
by_relation = sentences.relation_summary(pairs, list(matrices))
by_relation

# %% [markdown]
# ## Where this run stands
# The box at the top of this chapter, computed here: the base networks' clean accuracy
# and the unrelated pairs' similarity beside its chance level, against the paper's.

# %% tags=["remove-output"]
glue_regime(catalog, accuracy, pairs, chance)

# %% [markdown]
# ## Which layer moved most in fine-tuning? (the paper's Figure 5)
# Per conv layer, the mean ± 1 std of the aligned kernel correlations between each
# parent and its offspring. The chance level is the paper's measure between untrained
# networks (averaged over layers); where it lies far below the profiles, a note at the
# axis' edge gives it, so the differences between layers stay visible.

# %%
profiles = {child: similarity.layer_profile(states[parent], states[child])
            for child, parent in parents.items() if parent is not None}
if profiles:
    files.write_table(pd.concat(profiles, names=["child"]).reset_index(level=0), paths["profiles"],
                      provenance={"weights": report.weight_hashes(catalog)})
    plots.show(plots.layer_profile_figure(profiles, chance=chance_paper))

# %% tags=["remove-cell"]
glue_texts(sentences.similarity_glue(pairs, chance, nulls, profiles))  # sim_*, most_moved, cka_reading, …

# %% [markdown]
# ## Summary
# With the paper's alignment, parents and their offspring have intrinsic similarity
# {glue:text}`sim_parent_child`, unrelated networks {glue:text}`sim_unrelated`, and
# untrained random networks {glue:text}`sim_chance` on average (the null's 99th
# percentile: {glue:text}`sim_p99`); {glue:text}`unrelated_above`. The layer that
# moved most in fine-tuning is {glue:text}`most_moved`. (The paper: unrelated
# ResNet20 pairs 0.15–0.31, parent/offspring 0.99–1.00.) For representations,
# {glue:text}`cka_reading`: only what lies above that floor says the networks share
# more than their architecture.
#
# ## What's next
# [Chapter 5](05_paradox.ipynb) puts similarity beside behaviour.
