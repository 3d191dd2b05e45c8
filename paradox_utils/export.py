"""Results others can read: a run's networks, its N × N matrices and its pair table as tidy
CSV and Parquet (``paradox export --profile P DIR``, :func:`export_profile`).

Three tables, each written as ``NAME.csv`` and ``NAME.parquet`` into one folder:

- ``networks``: one row per finished network — ``net_id``, ``parent`` ("" for a base),
  ``family`` (its root ancestor, :func:`catalog.families`), ``kind``, ``arch``, ``sha256`` (of
  its weights), ``val_accuracy``, ``source`` (imported networks), then every field of its
  training config (``lr``, ``batch_size``, ``init``, ``seed``, ``manipulation``, ``epochs``,
  ``precision``, …; a mapping such as ``extra`` as one column per key, ``extra.KEY``).
- ``matrices``: one row per measure, condition and ordered pair, the diagonal included, so a
  pivot gives the full N × N matrix in the networks' order — ``measure``, ``condition``, ``a``,
  ``b``, ``value``. Measures: ``similarity_<method>`` (the kernel alignments and ``cka``, as the
  pair table names them), ``compatibility`` and ``relative compatibility`` (Pearson r of the
  accuracy vectors over the cells), ``kappa`` (error consistency), ``cka_layer`` (condition:
  the layer) and ``cka_distorted`` (condition: the manipulation); ``condition`` is
  :data:`OVERALL` for the others (never empty: a CSV reader would read an empty one as missing).
  Every value is a similarity (1: alike), not a dissimilarity.
- ``pairs``: chapter 5's pair table (one row per pair a < b: relation, every measure, the
  paradox columns, families and references), with each side's ``parent`` and every factor
  that varies in the population as ``<factor>_a``, ``<factor>_b``.

Every table is read through the chapters' own readers (:data:`preamble.TABLES`,
:func:`report.read_result`), so one made from other weights than the catalog lists is refused
as a chapter refuses it; a table whose chapter has not run is left out, and said so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import behaviour, files, report
from .catalog import configs, families, parents_of
from .preamble import TABLES
from .profiles import chapter_paths, profile_values

__all__ = ["OVERALL", "Export", "export_profile", "export_results", "matrices_table", "networks_table", "pairs_table"]

# columns of the catalog a network's row keeps, before its training config's fields
CATALOG_COLUMNS = ("kind", "arch", "sha256", "val_accuracy", "source")
# the condition of a measure that has one matrix (not one per layer or manipulation)
OVERALL = "overall"
# the chapter that writes each table, for the sentence saying a table was left out
WRITTEN_BY = {"similarity": "chapter 4 (04_similarity)", "cka_layers": "chapter 4 (04_similarity)",
              "cka_distorted": "chapter 4 (04_similarity)", "accuracy": "chapter 3 (03_evaluate)",
              "kappa": "chapter 3 (03_evaluate)", "pairs": "chapter 5 (05_paradox)"}


@dataclass(frozen=True)
class Export:
    """What :func:`export_results` wrote: ``files`` (paths, CSV and Parquet of each table) and
    ``left_out`` (one sentence per table not written yet by its chapter)."""

    files: list[Path]
    left_out: list[str]

    def summary(self) -> str:
        return "\n".join([*(f"wrote {path}" for path in self.files), *self.left_out])


def _flat(config: Mapping[str, Any]) -> dict[str, Any]:
    """A training config as one level of columns: a mapping becomes ``FIELD.KEY`` columns, a
    list its JSON text (a cell of a table holds one value)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": (json.dumps(v) if isinstance(v, list | Mapping) else v)
                        for k, v in value.items()})
        else:
            out[key] = json.dumps(value) if isinstance(value, list) else value
    return out


def networks_table(catalog: pd.DataFrame) -> pd.DataFrame:
    """One row per network of ``catalog`` (its order): net_id, parent, family, the catalog's
    :data:`CATALOG_COLUMNS` it has, then every field of the network's training config (the
    catalog's ``config`` JSON; imported networks have none, so their fields are empty)."""
    parents = parents_of(catalog)
    family, recorded = families(parents), configs(catalog)
    rows = []
    for row in catalog.to_dict("records"):
        config = _flat(recorded[row["net_id"]])
        kept = {c: row[c] for c in CATALOG_COLUMNS if c in row}
        rows.append({"net_id": row["net_id"], "parent": parents[row["net_id"]] or "", "family": family[row["net_id"]],
                     **kept, **{k: v for k, v in config.items() if k not in kept and k not in ("net_id", "parent")}})
    return _arrow_safe(pd.DataFrame(rows))


def _arrow_safe(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with each column of values of several types (a free-form label that is a number
    for one network and a word for another) as text, so Parquet can store it."""
    out = table.copy()
    for column in out.columns:
        kinds = {"number" if isinstance(v, int | float) and not isinstance(v, bool) else type(v).__name__
                 for v in out[column] if v is not None and not (isinstance(v, float) and pd.isna(v))}
        if len(kinds) > 1:
            out[column] = [None if v is None or (isinstance(v, float) and pd.isna(v)) else str(v) for v in out[column]]
    return out


def _long(measure: str, condition: str, matrix: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    square = matrix.loc[ids, ids]
    n = len(ids)
    return pd.DataFrame({"measure": measure, "condition": condition, "a": [a for a in ids for _ in range(n)],
                         "b": ids * n, "value": square.to_numpy(dtype=float).ravel()})


def matrices_table(paths: Mapping[str, Path], catalog: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Every N × N matrix the run wrote, for the catalog's networks in its order, as the long
    ``matrices`` table (module docstring), and the names of the files not written yet.
    Compatibility and relative compatibility are computed from the accuracy table as chapter 5
    computes them (:func:`behaviour.compatibility`); the rest are read as stored."""
    ids = list(catalog["net_id"])
    parts, missing = [], []

    def present(name: str) -> bool:
        if not Path(paths[name]).exists():
            missing.append(name)
            return False
        return True

    if present("similarity"):
        parts += [_long(f"similarity_{m}", OVERALL, s, ids) for m, s in TABLES["similarities"](paths, catalog).items()]
    if present("accuracy"):
        accuracy = TABLES["accuracy"](paths, catalog)
        parts += [_long("compatibility", OVERALL, behaviour.compatibility(accuracy), ids),
                  _long("relative compatibility", OVERALL, behaviour.compatibility(accuracy, relative=True), ids)]
    if present("kappa"):
        kappa = report.read_result(paths["kappa"], catalog, "The error consistency table", WRITTEN_BY["kappa"])
        kappa = kappa.set_index(kappa.columns[0])
        kappa.index = kappa.index.astype(str)
        parts.append(_long("kappa", OVERALL, kappa, ids))
    for name, measure in (("cka_layers", "cka_layer"), ("cka_distorted", "cka_distorted")):
        if present(name):
            parts += [_long(measure, str(c), m, ids) for c, m in TABLES[name](paths, catalog).items()]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["measure", "condition", "a", "b", "value"])
    return table, missing


def pairs_table(paths: Mapping[str, Path], catalog: pd.DataFrame, networks: pd.DataFrame) -> pd.DataFrame:
    """Chapter 5's pair table (:data:`preamble.TABLES` ``pairs``) with each side's ``parent`` and
    every factor that varies among ``networks`` (:func:`networks_table`) as ``<factor>_a``,
    ``<factor>_b`` (columns the pair table has already are kept as they are)."""
    pairs = TABLES["pairs"](paths, catalog)
    by_id = networks.set_index("net_id")
    factors = [c for c in by_id.columns if c not in ("family", "sha256", "val_accuracy")
               and (c == "parent" or by_id[c].astype(str).nunique(dropna=False) > 1)]
    out = pairs.copy()
    for factor in factors:
        for side in ("a", "b"):
            if f"{factor}_{side}" not in out.columns:
                out[f"{factor}_{side}"] = out[side].map(by_id[factor]).to_numpy()
    return out


def _write(table: pd.DataFrame, folder: Path, name: str, provenance: dict) -> list[Path]:
    """``table`` as ``folder/NAME.parquet`` (with ``provenance``) and ``folder/NAME.csv``, atomically."""
    parquet = files.write_table(table, folder / f"{name}.parquet", provenance=provenance)
    with files.atomic_path(folder / f"{name}.csv") as tmp:
        table.to_csv(tmp, index=False)
    return [parquet, folder / f"{name}.csv"]


def export_results(paths: Mapping[str, Path], folder: str | Path, profile: str = "") -> Export:
    """Write the ``networks``, ``matrices`` and ``pairs`` tables (module docstring) of the run
    whose folders are ``paths`` (:func:`profiles.chapter_paths`) into ``folder``, as CSV and
    Parquet (the Parquet files record ``profile`` and the weights, net_id → sha256, in their
    provenance). ValueError (one sentence) when the run has no finished networks or no result
    table yet, or a table was made from other weights than the catalog lists
    (:class:`files.ResultError`), before anything is written."""
    catalog = report.done_networks(paths["checkpoints"])
    networks = networks_table(catalog)
    matrices, missing = matrices_table(paths, catalog)
    pairs = pairs_table(paths, catalog, networks) if Path(paths["pairs"]).exists() else None
    if pairs is None:
        missing.append("pairs")
    if matrices.empty and pairs is None:
        raise ValueError(f"The run in {paths['results']} has no result tables to export yet: run chapters 3–5 "
                         "(paradox run --from 03_evaluate) first.")
    folder = Path(folder)
    provenance = {"profile": profile, "weights": report.weight_hashes(catalog)}
    written = _write(networks, folder, "networks", provenance) + _write(matrices, folder, "matrices", provenance)
    if pairs is not None:
        written += _write(pairs, folder, "pairs", provenance)
    left_out = [f"left out: {Path(paths[name]).name} does not exist yet (written by {WRITTEN_BY[name]})"
                for name in missing]
    return Export(written, left_out)


def export_profile(profile: str, folder: str | Path, parameters: Mapping[str, Any] | None = None) -> Export:
    """:func:`export_results` for ``profile`` (a shipped profile's name, an imported population's,
    or a YAML path; ``parameters`` override its values, e.g. ``results_dir``)."""
    values = profile_values(profile, dict(parameters or {}))
    paths = chapter_paths(values["profile"], values.get("checkpoint_dir", ""), values.get("results_dir", ""))
    return export_results(paths, folder, values["profile"])
