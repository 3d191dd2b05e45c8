"""The chapters' inputs and shared files: the population table, the catalog's finished
networks with their lineage, weight hashes and training histories, checkpoints,
evaluation and probe images, the transplant pair, and the formats of the similarity
files chapter 4 writes and chapter 5 reads.

Computation lives in its own module (``behaviour``, ``nulls``, ``paradox``,
``similarity``, ``transplant``), the prose the chapters glue in ``sentences``, the
widget explorer in ``explorer``; every table is written through ``files``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import checkpoints, data, distortions, files
from .catalog import parents_of
from .correctness import Correctness, correctness_path
from .names import listed
from .nulls import NULL_QUANTILE
from .population import NetworkSpec, read_catalog

__all__ = [
    "checkpoint_files", "done_networks", "evaluation_set", "histories", "layer_table", "load_matrices",
    "load_networks", "load_nulls", "null_summary", "offspring_comparison", "pair_key", "parents_of",
    "population_table", "probe_images", "read_correctness", "read_result", "save_matrices", "save_nulls",
    "transplant_pair", "weight_hashes",
]


def population_table(specs: Sequence[NetworkSpec]) -> pd.DataFrame:
    """One row per network: id, kind, parent and what varies."""
    return pd.DataFrame([{"net_id": s.net_id, "kind": s.kind, "parent": s.parent or "",
                          "epochs": s.config.epochs, "lr": s.config.lr, "batch_size": s.config.batch_size,
                          "init": s.config.init, "manipulation aug.": s.config.manipulation or "none"}
                         for s in specs]).set_index("net_id")


def weight_hashes(catalog: pd.DataFrame) -> dict[str, str]:
    """net_id → sha256 of its checkpoint: the key of every result made from it."""
    return dict(zip(catalog["net_id"], catalog["sha256"], strict=True))


def histories(catalog: pd.DataFrame) -> dict[str, list[dict]]:
    return {row.net_id: checkpoints.load_metadata(row.checkpoint)["history"]
            for row in catalog.itertuples() if row.status == "done"}


def done_networks(checkpoint_dir: str | Path) -> pd.DataFrame:
    """The catalog's finished networks (a clear error when none are). The others are left
    out with a warning naming them and the first one's state: its error in full when it failed."""
    catalog = read_catalog(checkpoint_dir)
    done = catalog[catalog["status"] == "done"]
    if done.empty:
        raise ValueError(f"No finished networks in {checkpoint_dir}: run 01_train (and 02_finetune) first.")
    left = catalog[catalog["status"] != "done"]
    if len(left):
        first, n = left.iloc[0], len(left)
        what = "that failed in training" if (left["status"] == "failed").all() else "not finished in training"
        error = " ".join(first.error.split()).rstrip(".") if isinstance(first.error, str) else ""
        state = f"failed with {error}" if first.status == "failed" else f"is {first.status}" + (
            f" ({error})" if error else "")
        which = f"the first, {first.net_id}," if n > 1 else "it"
        warnings.warn(f"Left out: {n} network{'s' if n > 1 else ''} {what} ({listed(list(left['net_id']))}); "
                      f"{which} {state}.", RuntimeWarning, stacklevel=2)
    return done.reset_index(drop=True)


def checkpoint_files(catalog: pd.DataFrame) -> dict[str, str]:
    """net_id → its checkpoint file, for every row of ``catalog``."""
    return {row.net_id: row.checkpoint for row in catalog.itertuples()}


def offspring_comparison(catalog: pd.DataFrame) -> pd.DataFrame:
    """One row per offspring (``kind`` finetune): net_id, parent, parent_val_accuracy,
    val_accuracy and change (its validation accuracy − its parent's)."""
    offspring = catalog[catalog["kind"] == "finetune"]
    accuracy = catalog.set_index("net_id")["val_accuracy"]
    comparison = offspring.assign(parent_val_accuracy=offspring["parent"].map(accuracy))
    comparison["change"] = comparison["val_accuracy"] - comparison["parent_val_accuracy"]
    return comparison[["net_id", "parent", "parent_val_accuracy", "val_accuracy", "change"]]


def load_networks(catalog: pd.DataFrame, device: str | torch.device = "cpu") -> dict[str, nn.Module]:
    """net_id → model in eval mode, for every row of ``catalog`` (hash-checked)."""
    return {row.net_id: checkpoints.load(row.checkpoint, device=device)[0] for row in catalog.itertuples()}


def evaluation_set(dataset: str, per_class: int | None, seed: int = 0):
    """The images networks are evaluated on: ``per_class`` test images of every class
    (a seeded stratified subset; None: all) of CIFAR-10's test split or ImageNet's val/."""
    source = data.load_imagenet("val") if dataset == "imagenet" else data.load_cifar10("test")
    return data.stratified_subset(source, per_class, seed)


def probe_images(dataset: str, n: int, seed: int = 1) -> torch.Tensor:
    """A fixed probe batch (float (n, 3, H, W) in [0, 1]) for representation similarity:
    ``n`` test images drawn at random with ``seed`` (all classes represented, not the
    first ``n`` in class order)."""
    source = data.load_imagenet("val") if dataset == "imagenet" else data.load_cifar10("test")
    pick = torch.randperm(len(source), generator=torch.Generator().manual_seed(seed))[:n]
    if isinstance(source, data.ImageSet):
        return source.images[pick].float() / 255
    return torch.stack([source[i][0] for i in pick.tolist()]).float() / 255


def save_matrices(path: Path, matrices: Mapping[str, pd.DataFrame], weights: Mapping[str, str]) -> None:
    """Store named N × N matrices in one long Parquet table (method, a, b, value), recording
    the ``weights`` (net_id → sha256) they were computed from."""
    rows = [pd.DataFrame({"method": name, "a": np.repeat(m.index, len(m)), "b": np.tile(m.columns, len(m)),
                          "value": m.to_numpy(dtype=float).ravel()}) for name, m in matrices.items()]
    files.write_table(pd.concat(rows, ignore_index=True), path, provenance={"weights": dict(weights)})


def read_result(path: Path, catalog: pd.DataFrame, what: str, chapter: str) -> pd.DataFrame:
    """A result table, checked to be made from exactly the weights the catalog lists.

    The weights a table came from are its ``weights_sha256`` column (per row, as the
    accuracy table has), else the ``weights`` its provenance records. Rows of networks
    not in the catalog are dropped. A table made from other weights of a network
    (retrained since), or lacking one, is refused in one sentence naming the chapter
    to run again — results of two versions of a network never meet in one figure.
    """
    table = files.read_table(path, what, f"run {chapter} first")
    if "weights_sha256" in table.columns:
        ids = set(catalog["net_id"])
        table = table[table["net_id"].isin(ids)].reset_index(drop=True)
        made_from = dict(zip(table["net_id"], table["weights_sha256"], strict=True))
        if len(table.groupby("net_id")["weights_sha256"].nunique().loc[lambda n: n > 1]):
            raise files.ResultError(f"{what} {path} mixes two versions of a network's weights: run {chapter} again.")
    else:
        made_from = files.read_provenance(path).get("weights")
    if made_from is None:
        raise files.ResultError(f"{what} {path} does not record the weights it was made from (an older format): "
                                f"run {chapter} again.")
    for net_id, sha in weight_hashes(catalog).items():
        if net_id not in made_from:
            raise files.ResultError(f"{what} {path} has no results for {net_id}: run {chapter} again.")
        if made_from[net_id] != sha:
            raise files.ResultError(f"{what} {path} was made from other weights of {net_id} than the catalog "
                                    f"lists (it was retrained since): run {chapter} again.")
    return table


def read_correctness(accuracy_path: Path, catalog: pd.DataFrame) -> Correctness:
    """The per-image correctness chapter 3 stored beside ``accuracy_path``, for the
    catalog's networks (in catalog order) and the cells evaluated (in the paper's order);
    refused when made from other weights (:func:`read_result`)."""
    table = read_result(correctness_path(accuracy_path), catalog, "The per-image correctness",
                        "chapter 3 (03_evaluate)")
    present = set(zip(table["manipulation"], table["level"].astype(float), strict=True))
    cells = [c for c in distortions.PAPER_GRID if c in present] + sorted(present - set(distortions.PAPER_GRID))
    return Correctness.from_table(table, list(catalog["net_id"]), cells)


def save_nulls(path: Path, nulls: Mapping[str, np.ndarray]) -> None:
    """Store null distributions (measure → 1-D values) as one long table (method, value)."""
    files.write_table(pd.concat([pd.DataFrame({"method": m, "value": np.asarray(v, dtype=float)})
                                 for m, v in nulls.items()], ignore_index=True), path)


def load_nulls(path: Path) -> dict[str, np.ndarray]:
    """The null distributions of :func:`save_nulls`, measure → values."""
    table = files.read_table(path, "The similarity nulls", "run chapter 4 (04_similarity) first")
    return {m: part["value"].to_numpy() for m, part in table.groupby("method", sort=False)}


def null_summary(nulls: Mapping[str, np.ndarray], quantile: float = NULL_QUANTILE) -> pd.DataFrame:
    """Per measure: mean, std, the ``quantile`` (the threshold for "above chance") and the pairs."""
    return pd.DataFrame([{"method": m, "mean": float(np.mean(v)), "std": float(np.std(v)),
                          f"p{round(quantile * 100)}": float(np.quantile(v, quantile)), "pairs": len(v)}
                         for m, v in nulls.items()]).set_index("method")


def load_matrices(path: Path, catalog: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The matrices of :func:`save_matrices` for the catalog's networks, by name, rows and
    columns in their stored order (refused when made from other weights: :func:`read_result`)."""
    table = read_result(path, catalog, "The similarity matrices", "chapter 4 (04_similarity)")
    keep = set(catalog["net_id"])
    table = table[table["a"].isin(keep) & table["b"].isin(keep)]
    out = {}
    for name, part in table.groupby("method", sort=False):
        order = list(dict.fromkeys(part["a"]))
        out[name] = part.pivot(index="a", columns="b", values="value").loc[order, order]
    return out


def pair_key(a: str, b: str) -> tuple[str, str]:
    """The one order a pair of networks is stored in (by id, alphabetically), whatever the
    catalog's order: writers store ``(a, b) = pair_key(x, y)``, readers look up the same."""
    return (a, b) if str(a) <= str(b) else (b, a)


def layer_table(ids: Sequence[str], layers: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """Per-layer similarity (N, N, L) of the networks ``ids`` as the long table of
    ``layer_similarity.parquet``: one row per pair and layer, (a, b) = :func:`pair_key`.
    The value is ``layers[i, j]`` with i the earlier of the two in ``ids`` (the upper triangle)."""
    i, j = np.triu_indices(len(ids), 1)
    keys = [pair_key(ids[x], ids[y]) for x, y in zip(i, j, strict=True)]
    names = np.asarray(names, dtype=object)
    return pd.DataFrame({"a": np.repeat(np.asarray([k[0] for k in keys], dtype=object), len(names)),
                         "b": np.repeat(np.asarray([k[1] for k in keys], dtype=object), len(names)),
                         "layer": np.tile(names, len(i)), "value": np.asarray(layers, dtype=float)[i, j].ravel()})


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
        who = f"parent {parent!r} has" if parent else "this population has"
        raise ValueError(f"The transplant needs a parent with a fine-tuned child; {who} none.")
    chosen = next((n for n in offspring if n.endswith("-ft-all")), offspring[0])
    return lineage[chosen], chosen

