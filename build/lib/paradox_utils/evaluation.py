"""Networks × manipulation grid → a tidy accuracy table; visual intelligence (VI).

The engine distorts each batch ONCE per (manipulation, level) cell and runs every
network on it, so the distortion cost is shared by the whole population.
:func:`evaluate` measures; :func:`evaluate_cached` measures resumably, writing Parquet
after every cell (atomically) and computing only the (network, cell) pairs that are
missing — or stale: every row is keyed by the sha256 of the weights, the evaluation set,
the noise seed and the arithmetic of the forward passes (``precision``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .checkpoints import state_sha256
from .correctness import BIT_COLUMNS, Correctness, correctness_path, pack
from .distortions import MANIPULATIONS, PAPER_GRID, apply, check_level
from .files import read_cache_table, write_table
from .models import num_classes
from .progress import tqdm
from .training import PRECISIONS, mixed_precision

__all__ = ["Evaluation", "accuracy_vectors", "clean_accuracy", "evaluate", "evaluate_cached", "hardest_manipulation",
           "images_per_cell", "network_table", "per_manipulation", "visual_intelligence", "with_precision"]

# Tables written before the precision column existed were all made in float32
BEFORE_PRECISION = {"precision": "float32"}
COLUMNS = ["net_id", "weights_sha256", "eval_set", "noise_seed", "precision", "manipulation", "level", "accuracy",
           "top5", "n_images"]


def with_precision(table: pd.DataFrame) -> pd.DataFrame:
    """An accuracy or correctness table with its ``precision`` column: one written before
    rows named their precision was made in float32 (:data:`BEFORE_PRECISION`)."""
    return table.assign(**{column: value for column, value in BEFORE_PRECISION.items() if column not in table})


def _level_key(level: float | Sequence[float]) -> float:
    """Cells are keyed by a float level (illuminant 3-vectors by their red gain)."""
    return float(level[0]) if isinstance(level, (list, tuple)) else float(level)


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` measured of networks × grid.

    ``table``: the tidy accuracy table, one row per network × cell (:data:`COLUMNS`): net_id,
    weights_sha256, eval_set, noise_seed, precision, manipulation, level, accuracy (top-1,
    fraction), top5 (fraction or NaN), n_images. ``correctness``: the per-image
    :class:`~paradox_utils.correctness.Correctness` (networks in the order given, cells in the
    grid's order).
    """

    table: pd.DataFrame
    correctness: Correctness


def evaluate(networks: Mapping[str, nn.Module], dataset, grid: Iterable[tuple[str, float]] = PAPER_GRID,
             seed: int = 0, batch_size: int = 500, device: str | torch.device = "cpu", top5: bool | None = None,
             weights: Mapping[str, str] | None = None, precision: str = "float32",
             progress: bool = True) -> Evaluation:
    """Accuracy and per-image correctness of every network under every cell of ``grid``.

    ``networks``: net_id → model (taking [0, 1] images). ``dataset``: anything with
    ``batches(batch_size)`` yielding (uint8 images (B, 3, H, W), labels (B,), dataset
    indices (B,)) and a ``fingerprint()`` — :class:`~paradox_utils.data.ImageSet` or
    ``ImageFolderSet``. ``seed``: the noise seed every network shares. ``top5`` defaults
    to True when the networks have more than 10 classes. ``weights``: net_id → sha256 of
    its weights (e.g. the checkpoint's, from the catalog); by default the hash of each
    model's state_dict. ``precision``: the forward passes' arithmetic, "float32" or
    "bfloat16" (torch.autocast, as in a bfloat16 training step: 2.6× faster on a CPU with
    AMX; four trained ResNet20s were right or wrong on the same images as in float32 99.7 %
    of the time — benchmarks/bench_evaluation.py). ``progress``: a "cells" bar.

    Returns an :class:`Evaluation`; :func:`evaluate_cached` gives the same, resumably.
    """
    grid = _checked(networks, grid, precision)
    keys = _keys(networks, weights)
    return _measure(networks, dataset, grid, seed, batch_size, device, top5, keys, dataset.fingerprint()[:24],
                    precision, progress, pd.DataFrame(columns=COLUMNS), pd.DataFrame(columns=BIT_COLUMNS))


def evaluate_cached(networks: Mapping[str, nn.Module], dataset, grid: Iterable[tuple[str, float]] = PAPER_GRID,
                    seed: int = 0, batch_size: int = 500, device: str | torch.device = "cpu",
                    top5: bool | None = None, weights: Mapping[str, str] | None = None, precision: str = "float32",
                    progress: bool = True, *, out: str | os.PathLike) -> Evaluation:
    """:func:`evaluate`, resumable: ``out`` is a Parquet accuracy table and beside it
    (:func:`~paradox_utils.correctness.correctness_path`) the per-image correctness bits of
    every (network, cell), with the same keys; both are written (atomically) after every cell.

    A (network, cell) is computed only when missing from either file or stale: a row is
    reused only when it was made from the same weights (sha256), the same evaluation set
    (its fingerprint), the same noise ``seed`` and the same ``precision``; a network's rows
    made otherwise are recomputed and replaced, never reused. Rows of networks not in
    ``networks`` stay in the files and out of the result. Returns :func:`evaluate`'s
    :class:`Evaluation` of ``networks`` × ``grid`` — the same, whether computed or reused.
    """
    grid = _checked(networks, grid, precision)  # fail before any heavy work
    keys = _keys(networks, weights)
    out = Path(out)
    bits_out = correctness_path(out)
    eval_set = dataset.fingerprint()[:24]
    stored = read_cache_table(out, COLUMNS, "accuracy table", BEFORE_PRECISION)
    stored_bits = read_cache_table(bits_out, BIT_COLUMNS, "correctness table", BEFORE_PRECISION)

    def save(table: pd.DataFrame, bits: pd.DataFrame) -> None:
        write_table(bits, bits_out)
        write_table(table, out)

    return _measure(networks, dataset, grid, seed, batch_size, device, top5, keys, eval_set, precision, progress,
                    _current(stored, keys, eval_set, seed, precision),
                    _current(stored_bits, keys, eval_set, seed, precision), save)


def _checked(networks: Mapping[str, nn.Module], grid: Iterable[tuple[str, float]],
             precision: str) -> list[tuple[str, float]]:
    """``grid`` as a list, once every cell, the precision and the networks are known good."""
    grid = [(name, level) for name, level in grid]
    if precision not in PRECISIONS:
        raise ValueError(f"Evaluation precision {precision!r} is not one of {PRECISIONS}.")
    for name, level in grid:
        check_level(name, level)
    if not networks:
        raise ValueError("evaluate() got no networks.")
    if not grid:
        raise ValueError("evaluate() got no cells.")
    return grid


def _keys(networks: Mapping[str, nn.Module], weights: Mapping[str, str] | None) -> dict[str, str]:
    """net_id → sha256 of its weights: as ``weights`` gives it, else its state_dict's."""
    return {k: (weights or {}).get(k) or state_sha256(m) for k, m in networks.items()}


def _measure(networks: Mapping[str, nn.Module], dataset, grid: list[tuple[str, float]], seed: int, batch_size: int,
             device: str | torch.device, top5: bool | None, keys: Mapping[str, str], eval_set: str, precision: str,
             progress: bool, table: pd.DataFrame, bits: pd.DataFrame,
             save: Callable[[pd.DataFrame, pd.DataFrame], None] | None = None) -> Evaluation:
    """The engine: every (network, cell) of ``networks`` × ``grid`` that ``table`` and ``bits``
    (accuracy and correctness rows of these keys) do not both hold, cell by cell; after each
    cell ``save`` gets both tables, with the cell's rows added."""
    # a cell is done only when both its accuracy and its per-image bits are known
    done = _cells(table) & _cells(bits)
    models = {k: m.to(device, memory_format=torch.channels_last).eval() for k, m in networks.items()}
    if top5 is None:
        top5 = any(num_classes(m) > 10 for m in models.values())
    # Counted by hand: an iterating bar keeps its count to itself between prints, so a batch
    # log read "2/37" for several cells in a row; naming each cell prints the count so far.
    bar = tqdm(total=len(grid), desc="cells", disable=not progress)
    for name, level in grid:
        todo = [k for k in models if (k, name, _level_key(level)) not in done]
        if not todo:
            bar.update()
            continue
        bar.set_postfix_str(f"{name}={level} × {len(todo)} nets")
        rows, packed = _evaluate_cell({k: models[k] for k in todo}, dataset, name, level, seed, batch_size, device,
                                      top5, precision)
        rows.insert(1, "weights_sha256", [keys[k] for k in todo])
        rows.insert(2, "eval_set", eval_set)
        rows.insert(3, "noise_seed", seed)
        rows.insert(4, "precision", precision)
        new_bits = rows[BIT_COLUMNS[:-1]].assign(bits=[packed[k] for k in todo])
        table, bits = _replace(table, rows), _replace(bits, new_bits)
        if save is not None:
            save(table, bits)
        bar.update()
    bar.close()
    keep = {(n, _level_key(lv)) for n, lv in grid}
    mask = [(m, float(lv)) in keep and k in models
            for k, m, lv in zip(table["net_id"], table["manipulation"], table["level"], strict=True)]
    cells = list(dict.fromkeys((name, _level_key(level)) for name, level in grid))
    return Evaluation(table[mask].reset_index(drop=True),
                      Correctness.from_table(bits[bits["net_id"].isin(list(models))], list(models), cells))


def _current(table: pd.DataFrame, keys: Mapping[str, str], eval_set: str, seed: int, precision: str) -> pd.DataFrame:
    """``table`` without the rows of ``keys``' networks made from other weights, another
    evaluation set, another noise seed or another precision (rows of other networks are kept)."""
    fresh = [n not in keys or (keys[n] == w and e == eval_set and int(s) == seed and p == precision)
             for n, w, e, s, p in zip(table["net_id"], table["weights_sha256"], table["eval_set"], table["noise_seed"],
                                      table["precision"], strict=True)]
    return table.loc[np.array(fresh, dtype=bool)].reset_index(drop=True)


def _cells(table: pd.DataFrame) -> set[tuple[str, str, float]]:
    return set(zip(table["net_id"], table["manipulation"], table["level"].astype(float), strict=True))


def _replace(table: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``rows`` added, replacing any row of the same (network, cell)."""
    if table.empty:
        return rows
    new = _cells(rows)
    keep = [k not in new for k in zip(table["net_id"], table["manipulation"], table["level"].astype(float),
                                      strict=True)]
    return pd.concat([table.loc[np.array(keep, dtype=bool)], rows], ignore_index=True)


@torch.inference_mode()
def _evaluate_cell(models: Mapping[str, nn.Module], dataset, name: str, level, seed: int,
                   batch_size: int, device, top5: bool, precision: str) -> pd.DataFrame:
    hits = {k: [] for k in models}  # per batch, (B,) bool: which images were classified right
    correct5 = dict.fromkeys(models, 0)
    total = 0
    for images, labels, index in dataset.batches(batch_size):
        x = images.to(device, non_blocking=True).float().div_(255)
        x = apply(x, name, level, seed=seed, index=index).contiguous(memory_format=torch.channels_last)
        labels = labels.to(device)
        with mixed_precision(precision, device):  # the forwards only: blur's convolution stays float32
            for key, model in models.items():
                logits = model(x).float()
                hits[key].append((logits.argmax(1) == labels).cpu())
                if top5:
                    best = logits.topk(min(5, logits.shape[1]), dim=1).indices
                    correct5[key] += int((best == labels[:, None]).any(1).sum())
        total += len(labels)
    if total == 0:
        raise ValueError("The evaluation dataset is empty.")
    correct = {k: torch.cat(v).numpy() for k, v in hits.items()}
    rows = pd.DataFrame({
        "net_id": list(models), "manipulation": name, "level": _level_key(level),
        "accuracy": [int(correct[k].sum()) / total for k in models],
        "top5": [correct5[k] / total if top5 else float("nan") for k in models],
        "n_images": total,
    })
    return rows, {k: pack(v) for k, v in correct.items()}


def per_manipulation(table: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """(networks × 8) mean ``metric`` over each manipulation's levels, columns in paper order."""
    means = table.groupby(["net_id", "manipulation"])[metric].mean().unstack("manipulation")
    return means[[m for m in MANIPULATIONS if m in means.columns]]


def visual_intelligence(table: pd.DataFrame, metric: str = "accuracy") -> pd.Series:
    """VI per network: mean over manipulations of the mean over that manipulation's levels."""
    return per_manipulation(table, metric).mean(axis=1).rename("vi")


def images_per_cell(table: pd.DataFrame) -> int:
    """How many images every cell of an accuracy table (``evaluate``'s, with its n_images
    column) was measured on: the evaluation set a VI from that table is quoted with —
    the same network has another VI on another set. Refused when the cells differ."""
    counts = sorted(set(table["n_images"].astype(int)))
    if len(counts) != 1:
        raise ValueError(f"The accuracy table's cells were measured on different numbers of images ({counts}); "
                         "a VI needs one evaluation set.")
    return counts[0]


def network_table(table: pd.DataFrame, vi_intervals: pd.DataFrame) -> pd.DataFrame:
    """Chapter 3's table, one row per network: the mean accuracy per manipulation (paper
    order), clean accuracy, VI with its interval (``vi_intervals``: a
    ``bootstrap.vi_interval`` table with vi, low, high) as vi, vi_low, vi_high, and
    test_images — the evaluation set every VI of the row was measured on."""
    intervals = vi_intervals[["vi", "low", "high"]].rename(columns={"low": "vi_low", "high": "vi_high"})
    out = per_manipulation(table).assign(clean=clean_accuracy(table)).join(intervals)
    return out.assign(test_images=images_per_cell(table))


def hardest_manipulation(table: pd.DataFrame, metric: str = "accuracy") -> str:
    """The manipulation with the lowest mean ``metric`` over its levels and all networks."""
    return str(per_manipulation(table, metric).mean().idxmin())


def clean_accuracy(table: pd.DataFrame, metric: str = "accuracy") -> pd.Series:
    """Accuracy on undistorted images (the contrast = 1 cell, which is the identity)."""
    clean = table[(table["manipulation"] == "contrast") & (table["level"] == 1.0)]
    return clean.set_index("net_id")[metric].rename("clean_accuracy")


def accuracy_vectors(table: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """(networks × cells) accuracy matrix, cells in the paper's order — the compatibility input."""
    wide = table.pivot_table(index="net_id", columns=["manipulation", "level"], values=metric)
    order = [c for c in ((n, float(lv)) for n, lv in PAPER_GRID) if c in wide.columns]
    extra = [c for c in wide.columns if c not in set(order)]
    return wide[order + extra]
