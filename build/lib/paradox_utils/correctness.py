"""Per-image correctness: which test images each network got right, in every cell.

Accuracy says how often a network is right; trial-by-trial measures (error
consistency, Geirhos et al. 2020) need *which* images it got right. The evaluation
engine keeps one bit per (network, cell, image), packed eight to a byte with
``np.packbits`` (big-endian bit order, images in the evaluation set's order): 329
networks × 37 cells × 10,000 images is 15 MB.

Stored as a Parquet table beside the accuracy table (:func:`correctness_path`), one
row per (network, cell) with the same keys (weights sha256, evaluation-set
fingerprint, noise seed) and a binary ``bits`` column; in memory as
:class:`Correctness`, an (N, C, ⌈I/8⌉) uint8 array.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["BIT_COLUMNS", "Correctness", "correctness_path", "pack", "unpack"]

BIT_COLUMNS = ["net_id", "weights_sha256", "eval_set", "noise_seed", "precision", "manipulation", "level", "n_images",
               "bits"]


def correctness_path(accuracy_path: str | os.PathLike) -> Path:
    """Where the correctness bits of an accuracy table live: ``<stem>.correct.parquet`` beside it."""
    path = Path(accuracy_path)
    return path.with_name(f"{path.stem}.correct.parquet")


def pack(correct: np.ndarray) -> bytes:
    """A boolean vector (I,) → ⌈I/8⌉ bytes (``np.packbits``, image 0 in the top bit)."""
    return np.packbits(np.asarray(correct, dtype=bool)).tobytes()


def unpack(bits: bytes | np.ndarray, n_images: int) -> np.ndarray:
    """The inverse of :func:`pack`: (I,) bool."""
    return np.unpackbits(np.frombuffer(bits, dtype=np.uint8) if isinstance(bits, bytes) else bits,
                         count=n_images).astype(bool)


@dataclass
class Correctness:
    """Which images each network classified correctly, per cell.

    ids: N network ids; cells: C (manipulation, level) pairs; bits: (N, C, ⌈I/8⌉)
    uint8, packed along images; n_images: I, the trials of every cell.
    """

    ids: list[str]
    cells: list[tuple[str, float]]
    bits: np.ndarray
    n_images: int

    @classmethod
    def from_table(cls, table: pd.DataFrame, ids: Sequence[str] | None = None,
                   cells: Sequence[tuple[str, float]] | None = None) -> Correctness:
        """From a bits table (:data:`BIT_COLUMNS`), for ``ids`` and ``cells`` (default: all,
        in first-seen order). Every (network, cell) must be present, all with one image count."""
        if table.empty:
            raise ValueError("The correctness table is empty: evaluate the networks first.")
        ids = list(dict.fromkeys(table["net_id"])) if ids is None else list(ids)
        if cells is None:
            cells = list(dict.fromkeys(zip(table["manipulation"], table["level"].astype(float), strict=True)))
        counts = set(table["n_images"].astype(int))
        if len(counts) != 1:
            raise ValueError(f"The correctness table mixes evaluation sets of {sorted(counts)} images.")
        n_images = counts.pop()
        lookup = {(n, m, float(lv)): b for n, m, lv, b in
                  zip(table["net_id"], table["manipulation"], table["level"], table["bits"], strict=True)}
        width = (n_images + 7) // 8
        bits = np.zeros((len(ids), len(cells), width), dtype=np.uint8)
        for i, net in enumerate(ids):
            for c, (name, level) in enumerate(cells):
                key = (net, name, float(level))
                if key not in lookup:
                    raise ValueError(f"The correctness table has no row for {net} at {name}={level}: "
                                     "evaluate again.")
                bits[i, c] = np.frombuffer(lookup[key], dtype=np.uint8)
        return cls(ids, [(n, float(lv)) for n, lv in cells], bits, n_images)

    def boolean(self) -> np.ndarray:
        """(N, C, I) bool: image-level correctness unpacked."""
        return np.unpackbits(self.bits, axis=2, count=self.n_images).astype(bool)

    def accuracy(self) -> pd.DataFrame:
        """(N × C) fraction correct — equals the accuracy table's cells."""
        hits = np.unpackbits(self.bits, axis=2, count=self.n_images).sum(axis=2)
        columns = pd.MultiIndex.from_tuples(self.cells, names=["manipulation", "level"])
        return pd.DataFrame(hits / self.n_images, index=pd.Index(self.ids, name="net_id"), columns=columns)

    def shared_outcomes(self) -> pd.DataFrame:
        """Per cell, the fraction of images every network got right, every network got
        wrong, and the rest (where networks disagree — the only images that can tell two
        networks apart trial by trial)."""
        right = np.unpackbits(self.bits, axis=2, count=self.n_images).astype(bool)  # (N, C, I)
        all_right, all_wrong = right.all(axis=0).mean(axis=1), (~right).all(axis=0).mean(axis=1)
        index = pd.MultiIndex.from_tuples(self.cells, names=["manipulation", "level"])
        return pd.DataFrame({"all_right": all_right, "all_wrong": all_wrong,
                             "disagree": 1 - all_right - all_wrong}, index=index)

    def select(self, ids: Sequence[str] | None = None, cells: Sequence[tuple[str, float]] | None = None,
               manipulation: str | None = None) -> Correctness:
        """A subset: given ids and cells (or the cells of one ``manipulation``)."""
        rows = list(range(len(self.ids))) if ids is None else [self.ids.index(i) for i in ids]
        if manipulation is not None:
            cells = [c for c in self.cells if c[0] == manipulation]
        cols = list(range(len(self.cells))) if cells is None else [self.cells.index((n, float(lv)))
                                                                      for n, lv in cells]
        return Correctness([self.ids[r] for r in rows], [self.cells[c] for c in cols],
                           self.bits[np.ix_(rows, cols)], self.n_images)
