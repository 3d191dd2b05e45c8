"""Chapter-level helpers: load what an earlier chapter wrote, and summarise it.

The chapters call these so that their cells stay short; every function here reads
or writes the files named by ``pipeline.chapter_paths`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import checkpoints, data, distortions, evaluation, paradox, similarity, transplant
from .checkpoints import atomic_path
from .population import NetworkSpec, read_catalog

__all__ = [
    "best_sweep_layer", "done_networks", "evaluation_set", "explorer", "first_family", "histories",
    "layer_table", "load_matrices", "load_networks", "mean_std", "method_sentences", "most_moved_layer",
    "parents_of", "population_spec", "population_table", "probe_images", "relation_summary", "save_matrices",
    "scheduler_of", "similarity_pairs", "statistics_table", "transplant_experiments", "transplant_pair", "verdict",
]


def population_spec(base_common: dict, base_grid: dict, base_sample: int | None, finetune_parents: int | list,
                    finetune_manipulations: list, finetune_common: dict, finetune_groups: list | None = None) -> dict:
    """The ``population`` mapping of ``population.build_population`` from chapter parameters;
    ``finetune_groups`` adds further fine-tune groups (dicts with a distinct ``suffix``)."""
    spec = {"base": {"common": base_common, "grid": base_grid, "sample": base_sample}, "finetune": []}
    if finetune_parents and finetune_manipulations:
        spec["finetune"].append({"parents": finetune_parents, "manipulations": finetune_manipulations,
                                 "common": finetune_common})
    spec["finetune"] += list(finetune_groups or [])
    return spec


def scheduler_of(name: str) -> str | None:
    return None if name in ("", "auto") else name


def population_table(specs: Sequence[NetworkSpec]) -> pd.DataFrame:
    """One row per network: id, kind, parent and what varies."""
    return pd.DataFrame([{"net_id": s.net_id, "kind": s.kind, "parent": s.parent or "",
                          "epochs": s.config.epochs, "lr": s.config.lr, "batch_size": s.config.batch_size,
                          "init": s.config.init, "manipulation aug.": s.config.manipulation or "none"}
                         for s in specs]).set_index("net_id")


def histories(catalog: pd.DataFrame) -> dict[str, list[dict]]:
    return {row.net_id: checkpoints.load_metadata(row.checkpoint)["history"]
            for row in catalog.itertuples() if row.status == "done"}


def done_networks(checkpoint_dir: str | Path) -> pd.DataFrame:
    """The catalog's finished networks (a clear error when none are)."""
    catalog = read_catalog(checkpoint_dir)
    done = catalog[catalog["status"] == "done"]
    if done.empty:
        raise ValueError(f"No finished networks in {checkpoint_dir}: run 01_train (and 02_finetune) first.")
    return done.reset_index(drop=True)


def parents_of(catalog: pd.DataFrame) -> dict[str, str | None]:
    return {row.net_id: (row.parent if isinstance(row.parent, str) and row.parent else None)
            for row in catalog.itertuples()}


def load_networks(catalog: pd.DataFrame, device: str | torch.device = "cpu") -> dict[str, nn.Module]:
    """net_id → model in eval mode, for every row of ``catalog`` (hash-checked)."""
    return {row.net_id: checkpoints.load(row.checkpoint, device=device)[0] for row in catalog.itertuples()}


def evaluation_set(dataset: str, per_class: int | None, seed: int = 0):
    """The images networks are evaluated on: a stratified CIFAR-10 test subset, or ImageNet val."""
    if dataset == "imagenet":
        return data.load_imagenet("val")
    return data.stratified_subset(data.load_cifar10("test"), per_class, seed)


def probe_images(dataset: str, n: int, seed: int = 1) -> torch.Tensor:
    """A fixed probe batch (float, [0, 1]) for representation similarity."""
    if dataset == "imagenet":
        val = data.load_imagenet("val")
        return torch.stack([val[i][0] for i in range(min(n, len(val)))]).float() / 255
    test = data.load_cifar10("test")
    pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:n]
    return test.images[pick].float() / 255


def save_matrices(path: Path, matrices: Mapping[str, pd.DataFrame]) -> None:
    """Store named N × N matrices in one long Parquet table (method, a, b, value)."""
    rows = [pd.DataFrame({"method": name, "a": np.repeat(m.index, len(m)), "b": np.tile(m.columns, len(m)),
                          "value": m.to_numpy(dtype=float).ravel()}) for name, m in matrices.items()]
    with atomic_path(path) as tmp:
        pd.concat(rows, ignore_index=True).to_parquet(tmp, index=False)


def load_matrices(path: Path) -> dict[str, pd.DataFrame]:
    table = pd.read_parquet(path)
    out = {}
    for name, part in table.groupby("method", sort=False):
        order = list(dict.fromkeys(part["a"]))
        out[name] = part.pivot(index="a", columns="b", values="value").loc[order, order]
    return out


def mean_std(values: Sequence[float] | pd.Series, digits: int = 3) -> str:
    """"m ± s (n = k)" over the finite values."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return "n/a (no values)"
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f} (n = {len(values)})"


def relation_summary(pairs: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Mean ± std of each column per relation (parent-child, siblings, unrelated)."""
    rows = {relation: {c: mean_std(part[c]) for c in columns} for relation, part in pairs.groupby("relation")}
    return pd.DataFrame(rows).T


# ----------------------------------------------------------------------------- transplant

def transplant_pair(catalog: pd.DataFrame, parent: str = "", child: str = "") -> tuple[str, str]:
    """(parent, child) for the transplant: as given, else the first offspring trained
    with all eight manipulations (the paper's N1 / N1-All), else the first offspring."""
    lineage = parents_of(catalog)
    if child:
        if child not in lineage or lineage[child] is None:
            raise ValueError(f"Transplant child {child!r} is not a fine-tuned network of this population.")
        return lineage[child], child
    offspring = [n for n, p in lineage.items() if p is not None and (not parent or p == parent)]
    if not offspring:
        raise ValueError("The transplant needs a parent with a fine-tuned child; this population has none.")
    chosen = next((n for n in offspring if n.endswith("-ft-all")), offspring[0])
    return lineage[chosen], chosen


def transplant_experiments(parent: nn.Module, child: nn.Module, images, grid=distortions.PAPER_GRID,
                           sweep: bool = True, recalibration_images: torch.Tensor | None = None,
                           seed: int = 0, progress: bool = True) -> dict[str, pd.DataFrame | str]:
    """The four experiments of the transplant chapter, evaluated in one engine pass.

    Returns "accuracy" (the tidy table of every variant), "summary" (VI per variant),
    "sweep" (per layer: parent–child correlation and ΔVI), "profile" (the pair's
    per-layer correlations) and "deviated" (the name of the most-moved layer).
    """
    profile = similarity.layer_profile(parent, child)
    deviated = profile.loc[profile["mean"].idxmin(), "layer"]
    variants = {"parent": parent, "child": child,
                f"parent + child's {deviated}": transplant.transplant(parent, child, deviated),
                "parent + all child convs": transplant.transplant(parent, child, "all")}
    if recalibration_images is not None:
        for name in list(variants)[2:]:
            variants[f"{name} (BN re-estimated)"] = transplant.recalibrate_batchnorm(variants[name], recalibration_images)
    if sweep:
        for layer in profile["layer"]:
            variants[f"sweep:{layer}"] = transplant.transplant(parent, child, layer)
    table = evaluation.evaluate(variants, images, grid=grid, seed=seed, progress=progress)
    vi = evaluation.visual_intelligence(table)
    summary = evaluation.per_manipulation(table).assign(vi=vi).loc[[v for v in variants if not v.startswith("sweep:")]]
    summary["delta_vi"] = summary["vi"] - vi["parent"]
    rows = [{"layer": layer, "layer_correlation": r, "vi": vi[f"sweep:{layer}"], "delta_vi": vi[f"sweep:{layer}"] - vi["parent"]}
            for layer, r in zip(profile["layer"], profile["mean"], strict=True) if f"sweep:{layer}" in vi]
    return {"accuracy": table, "summary": summary, "sweep": pd.DataFrame(rows), "deviated": deviated,
            "profile": profile}


# ----------------------------------------------------------------------------- explorer

def explorer(acc_table: pd.DataFrame, matrices: Mapping[str, pd.DataFrame], layer_scores: pd.DataFrame):
    """An ipywidgets explorer (JupyterLab): pick two networks → their accuracy profiles
    side by side, their per-layer similarity and their cell in each matrix."""
    import ipywidgets as widgets
    from IPython.display import display

    from . import plots
    from .progress import batch_mode

    if batch_mode():  # widgets need a live frontend, and can block nbclient (jupyter/nbclient#312)
        return "The explorer is interactive: open this chapter in JupyterLab (make lab) to use it."

    ids = sorted(acc_table["net_id"].unique())
    first = widgets.Dropdown(options=ids, value=ids[0], description="network A")
    second = widgets.Dropdown(options=ids, value=ids[min(1, len(ids) - 1)], description="network B")
    out = widgets.Output()

    def update(*_):
        out.clear_output(wait=True)
        a, b = first.value, second.value
        with out:
            cells = {name: float(m.loc[a, b]) for name, m in matrices.items() if a in m.index and b in m.index}
            display(pd.Series(cells, name=f"{a} vs {b}").to_frame().T.round(4))
            plots.show(plots.accuracy_profiles(acc_table, [a, b]))
            key = (min(a, b), max(a, b))
            part = layer_scores[(layer_scores["a"] == key[0]) & (layer_scores["b"] == key[1])]
            if len(part):
                display(part.set_index("layer")[["value"]].T.round(3))

    first.observe(update, "value")
    second.observe(update, "value")
    update()
    return widgets.VBox([widgets.HBox([first, second]), out])


def layer_table(ids: Sequence[str], layers: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """Per-layer similarity (N, N, L) as a long table (a < b)."""
    rows = [{"a": ids[i], "b": ids[j], "layer": names[k], "value": float(layers[i, j, k])}
            for i in range(len(ids)) for j in range(i + 1, len(ids)) for k in range(len(names))]
    return pd.DataFrame(rows)


def statistics_table(similarities: Mapping[str, pd.DataFrame], compat: pd.DataFrame, pairs: pd.DataFrame,
                     similar: float, compatible: float, permutations: int, resamples: int, seed: int = 0) -> pd.DataFrame:
    """Per similarity method: Mantel r and p, bootstrap CI, and the quadrant counts."""
    rows = []
    for method, sim in similarities.items():
        ids = [i for i in compat.index if i in sim.index]
        test = paradox.mantel(sim.loc[ids, ids], compat.loc[ids, ids], permutations, seed)
        ci = paradox.bootstrap_correlation(sim.loc[ids, ids], compat.loc[ids, ids], resamples, seed)
        counts = paradox.quadrant_counts(pairs, method, similar, compatible)
        rows.append({"method": method, "mantel_r": test["r"], "mantel_p": test["p"], "ci_low": ci["low"],
                     "ci_high": ci["high"], **{k: counts[k] for k in
                                                ("similar_yet_different", "different_yet_similar", "pairs")}})
    return pd.DataFrame(rows).set_index("method")


def first_family(parents: Mapping[str, str | None]) -> list[str]:
    """The first parent that has offspring, followed by its offspring."""
    parent = next((p for p in parents.values() if p), None)
    return [] if parent is None else [parent, *[n for n, p in parents.items() if p == parent]]


def similarity_pairs(matrices: Mapping[str, pd.DataFrame], parents: Mapping[str, str | None]) -> pd.DataFrame:
    """One row per pair a < b: relation and the value of every matrix."""
    ids = list(next(iter(matrices.values())).index)
    return pd.DataFrame([{"a": a, "b": b, "relation": paradox.relation(a, b, parents),
                          **{m: matrices[m].loc[a, b] for m in matrices}}
                         for i, a in enumerate(ids) for b in ids[i + 1:]])


def most_moved_layer(profiles: Mapping[str, pd.DataFrame]) -> str:
    """The conv layer with the lowest mean parent–child correlation over all offspring."""
    if not profiles:
        return "n/a (no offspring)"
    merged = pd.concat(profiles.values()).groupby("layer", sort=False)["mean"].mean()
    return str(merged.idxmin())


def verdict(statistics: pd.DataFrame, alpha: float = 0.05) -> str:
    """One sentence on the paper's question, from the paper-alignment row."""
    row = statistics.loc["paper"]
    both = row["similar_yet_different"] > 0 and row["different_yet_similar"] > 0
    shows = ("This run shows both paradoxes." if both else
             "This run shows only one of the two paradoxes." if row["similar_yet_different"] + row["different_yet_similar"]
             else "This run shows neither paradox at these thresholds.")
    if not np.isfinite(row["mantel_p"]):
        return shows + " The Mantel test is undefined here (too few networks or constant values)."
    if row["mantel_p"] < alpha:
        direction = "positively" if row["mantel_r"] > 0 else "negatively"
        return shows + f" Even so, similarity and compatibility are {direction} related across pairs (p < {alpha})."
    return shows + f" Similarity does not significantly predict compatibility across pairs (p ≥ {alpha})."


def method_sentences(statistics: pd.DataFrame) -> str:
    """"method: Mantel r (p), quadrant counts" for every similarity measure."""
    return "; ".join(f"{m} — Mantel r = {r.mantel_r:.3f} (p = {r.mantel_p:.3g}), {int(r.similar_yet_different)} similar "
                     f"yet different, {int(r.different_yet_similar)} different yet similar"
                     for m, r in statistics.iterrows()) + "."


def best_sweep_layer(sweep: pd.DataFrame) -> str:
    """A sentence naming the single-layer transplant that raised the parent's VI most."""
    if sweep.empty:
        return "the sweep was not run."
    best = sweep.loc[sweep["delta_vi"].idxmax()]
    rho = sweep["layer_correlation"].corr(sweep["delta_vi"], method="spearman")
    return (f"{best['layer']} changes the parent's VI most ({best['delta_vi']:+.3f}); across layers, the Spearman "
            f"correlation between how little a layer moved and ΔVI is {rho:.2f}.")
