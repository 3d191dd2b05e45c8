"""Populations: a profile → the list of networks (with lineage) → the catalog.

A profile's ``population`` section describes base networks as a grid (the
cartesian product of the listed settings, optionally a seeded sample of it) and
fine-tunes as parents × augmentations. Ids are stable and readable: ``b000`` …
for base networks, ``b000-ft-gamma`` for an offspring.

The catalog is one Parquet table per population (``<checkpoints>/catalog.parquet``),
rewritten atomically by the one driver process as jobs finish. Parquet rather than
SQLite: only the driver writes it (workers write checkpoints, never the catalog),
it stays small (one row a network), and every reader here is pandas.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import checkpoints
from .files import write_table
from .training import TrainConfig, config_differences

__all__ = [
    "NetworkSpec", "STATUSES", "base_specs", "build_population", "catalog_path", "descendants", "finetune_specs",
    "offspring_specs", "read_catalog", "retrain_for", "scan_catalog", "specs_from_catalog", "write_catalog",
]


@dataclass
class NetworkSpec:
    """One network to train: its id, config, parent id (fine-tunes) and kind."""

    net_id: str
    config: TrainConfig
    parent: str | None = None
    kind: str = "base"  # "base" or "finetune"
    labels: dict[str, Any] = field(default_factory=dict)


def _label(value: Any) -> str:
    return "none" if value is None else str(value)


def build_population(population: dict[str, Any], arch: str = "resnet20", dataset: str = "cifar10") -> list[NetworkSpec]:
    """The networks a profile's ``population`` section describes, parents first.

    ``population = {"base": {"common": {...}, "grid": {key: [values]}, "sample": n,
    "sample_seed": s}, "finetune": {"common": {...}, "parents": n | [ids],
    "manipulations": [None | "all" | name, ...], "suffix": ""} | [such groups]}``.
    Every base network gets its own seed (its position) unless the grid sets ``seed``.
    """
    unknown = set(population) - {"base", "finetune"}
    if unknown:
        raise ValueError(f"Unknown population keys {sorted(unknown)}; valid: base, finetune.")
    base = population.get("base") or {}
    if unknown := set(base) - {"common", "grid", "sample", "sample_seed"}:
        raise ValueError(f"Unknown population.base keys {sorted(unknown)}; valid: common, grid, sample, sample_seed.")
    bases = base_specs(arch=arch, dataset=dataset, **base)
    finetune = population.get("finetune") or []
    return bases + offspring_specs(bases, groups=[finetune] if isinstance(finetune, dict) else finetune)


def base_specs(common: dict[str, Any] | None = None, grid: dict[str, list] | None = None, sample: int | None = None,
               sample_seed: int = 0, arch: str = "resnet20", dataset: str = "cifar10") -> list[NetworkSpec]:
    """Base networks ``b000`` …: the cartesian product of ``grid`` (optionally a seeded
    ``sample`` of it), each with ``common`` settings. Every config is validated here."""
    grid = grid or {}
    if not isinstance(grid, dict) or any(not isinstance(v, list) or not v for v in grid.values()):
        raise ValueError("The base grid must map each setting to a non-empty list of values.")
    keys = sorted(grid)
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]
    if sample is not None:
        if sample > len(combos):
            raise ValueError(f"population.base.sample={sample} exceeds the grid's {len(combos)} combinations.")
        combos = random.Random(sample_seed).sample(combos, sample)
    specs = []
    for i, combo in enumerate(combos):
        values = {"arch": arch, "dataset": dataset, "seed": i, **(common or {}), **combo}
        try:
            config = TrainConfig.from_dict(values).validate()
        except (TypeError, ValueError) as error:
            raise ValueError(f"Base network b{i:03d}: {error}") from None
        specs.append(NetworkSpec(f"b{i:03d}", config, None, "base", combo))
    if not specs:
        raise ValueError("The population is empty: give population.base.grid at least one value.")
    return specs


def _checked_group(group: dict[str, Any]) -> dict[str, Any]:
    unknown = set(group) - {"parents", "manipulations", "common", "suffix"}
    if unknown:
        raise ValueError(f"Unknown fine-tune keys {sorted(unknown)}; valid: parents, manipulations, common, suffix.")
    return group


def finetune_specs(specs: list[NetworkSpec], parents: int | list[str] = 0, manipulations: list | None = None,
                   common: dict[str, Any] | None = None, suffix: str = "") -> list[NetworkSpec]:
    """One fine-tune group: parents × manipulations, ids ``<parent>-ft-<manipulation><suffix>``.

    ``specs``: the networks already in the population (the parents are taken from
    them: the first ``parents`` bases, or the listed ids). Each offspring starts
    from its parent's config with ``common`` and its manipulation applied.
    """
    bases = [s for s in specs if s.kind == "base"]
    parent_ids = [s.net_id for s in bases[:parents]] if isinstance(parents, int) else list(parents)
    by_id = {s.net_id: s for s in specs}
    if missing := [p for p in parent_ids if p not in by_id]:
        raise ValueError(f"population.finetune.parents names unknown networks {missing}.")
    out = []
    for parent in parent_ids:
        for manipulation in manipulations if manipulations is not None else [None]:
            values = {**by_id[parent].config.to_dict(), **(common or {}),
                      "manipulation": manipulation, "seed": by_id[parent].config.seed + 10_000}
            values.pop("extra", None)
            net_id = f"{parent}-ft-{_label(manipulation)}{suffix}"
            try:
                config = TrainConfig.from_dict(values).validate()
            except (TypeError, ValueError) as error:
                raise ValueError(f"Fine-tune {net_id}: {error}") from None
            out.append(NetworkSpec(net_id, config, parent, "finetune", {"manipulation": _label(manipulation)}))
    taken = {s.net_id for s in specs}
    if clash := [s.net_id for s in out if s.net_id in taken]:
        raise ValueError(f"Fine-tune ids {clash} are taken; give the group a distinct 'suffix'.")
    return out


def offspring_specs(bases: list[NetworkSpec], parents: int | list[str] = 0, manipulations: list | None = None,
                    common: dict[str, Any] | None = None, groups: list[dict[str, Any]] = ()) -> list[NetworkSpec]:
    """Every offspring of ``bases``: the group (``parents`` × ``manipulations`` with
    ``common``) when both are given, then each further group of ``groups`` (dicts of
    :func:`finetune_specs`' keywords, each with a distinct ``suffix``)."""
    out: list[NetworkSpec] = []
    if parents and manipulations:
        out += finetune_specs(bases, parents=parents, manipulations=manipulations, common=common)
    for group in groups:
        out += finetune_specs(bases + out, **_checked_group(group))
    return out


def specs_from_catalog(catalog: pd.DataFrame, kind: str | None = None) -> list[NetworkSpec]:
    """The networks a catalog lists (optionally only one ``kind``), as specs: how chapter 2
    takes the bases chapter 1 trained, without declaring them a second time."""
    rows = catalog if kind is None else catalog[catalog["kind"] == kind]
    return [NetworkSpec(row.net_id, TrainConfig.from_dict(json.loads(row.config)),
                        row.parent if isinstance(row.parent, str) and row.parent else None, row.kind,
                        json.loads(row.labels)) for row in rows.itertuples()]


def descendants(specs: list[NetworkSpec], ids: list[str]) -> list[str]:
    """``ids`` and every network trained (directly or not) from one of them, in ``specs`` order."""
    chosen = set(ids)
    for spec in specs:  # parents come first, so one pass sees every generation
        if spec.parent in chosen:
            chosen.add(spec.net_id)
    return [s.net_id for s in specs if s.net_id in chosen]


def retrain_for(specs: list[NetworkSpec], retrain: list[str], kind: str) -> list[str]:
    """The networks of ``kind`` among ``specs`` to train again when ``retrain`` names some
    networks of the population: those named and every offspring of a named one. Chapter 1
    retrains named bases; chapter 2 their offspring and named offspring — never a base again."""
    kinds = {s.net_id: s.kind for s in specs}
    return [n for n in descendants(specs, list(retrain)) if kinds.get(n) == kind]


def catalog_path(checkpoint_dir: str | os.PathLike) -> Path:
    return Path(checkpoint_dir) / "catalog.parquet"


STATUSES = ("pending", "running", "done", "failed", "stale", "corrupt")


def _checkpoint_status(spec: NetworkSpec, path: Path, shas: dict[str, str]) -> tuple[str, str, dict]:
    """(status, the problem in one sentence or "", sidecar metadata) of one network's checkpoint.

    "stale": a checkpoint made with other settings than ``spec`` asks for, or from a
    parent whose weights have changed since; "corrupt": unreadable or its hash fails.
    """
    if not path.with_suffix(".json").exists():
        return "pending", "", {}
    if problem := checkpoints.verify(path):
        return "corrupt", problem, {}
    meta = checkpoints.load_metadata(path)
    if differ := config_differences(meta.get("config") or {}, spec.config):
        return "stale", f"trained with other settings ({', '.join(differ)})", meta
    parent_sha = meta.get("parent_sha256")
    if spec.parent is not None and parent_sha and shas.get(spec.parent) not in (None, parent_sha):
        return "stale", f"its parent {spec.parent} has been retrained since", meta
    return meta.get("status", "done"), "", meta


def scan_catalog(specs: list[NetworkSpec], checkpoint_dir: str | os.PathLike,
                 errors: dict[str, str] | None = None) -> pd.DataFrame:
    """The catalog as the checkpoints on disk say it is: status (one of ``STATUSES``),
    the weights' sha256, accuracy, timings, and the problem or error in one sentence.

    Every checkpoint's hash is verified (once per file version, see
    :func:`checkpoints.verify`), so a corrupt file never counts as done.
    """
    rows, shas = [], {}
    for spec in specs:
        path = Path(checkpoint_dir) / f"{spec.net_id}.safetensors"
        status, problem, meta = _checkpoint_status(spec, path, shas)
        history = meta.get("history", [])
        row = {"net_id": spec.net_id, "arch": spec.config.arch, "kind": spec.kind, "parent": spec.parent,
               "config": json.dumps(spec.config.to_dict(), sort_keys=True),
               "labels": json.dumps(spec.labels, sort_keys=True, default=str),
               "status": status, "checkpoint": str(path), "sha256": meta.get("sha256", ""),
               "val_accuracy": float((meta.get("metrics") or {}).get("val_accuracy", float("nan"))),
               "epochs_done": int(meta.get("epochs_done", 0)),
               "train_seconds": float(sum(h.get("seconds", 0.0) for h in history)),
               "error": (errors or {}).get(spec.net_id, "") or problem}
        if status == "done":
            shas[spec.net_id] = row["sha256"]
        if (errors or {}).get(spec.net_id) and status not in ("done", "stale", "corrupt"):
            row["status"] = "failed"
        rows.append(row)
    return pd.DataFrame(rows)


def write_catalog(catalog: pd.DataFrame, checkpoint_dir: str | os.PathLike) -> Path:
    return write_table(catalog, catalog_path(checkpoint_dir))


def read_catalog(checkpoint_dir: str | os.PathLike) -> pd.DataFrame:
    """The catalog of ``checkpoint_dir``. One that is unreadable is rebuilt, with a warning,
    from the checkpoints' sidecars (the catalog is derived from them)."""
    path = catalog_path(checkpoint_dir)
    if not path.exists():
        raise FileNotFoundError(f"No catalog at {path}: run the training chapter (01_train) first.")
    try:
        return pd.read_parquet(path)
    except Exception as error:
        warnings.warn(f"The catalog {path} is unreadable ({type(error).__name__}); it is rebuilt from the "
                      "checkpoints' sidecars.", RuntimeWarning, stacklevel=2)
    catalog = scan_catalog(_specs_from_sidecars(Path(checkpoint_dir)), checkpoint_dir)
    write_catalog(catalog, checkpoint_dir)
    return catalog


def _specs_from_sidecars(folder: Path) -> list[NetworkSpec]:
    """Specs for every checkpoint sidecar in ``folder``, parents before their offspring."""
    specs = {}
    for sidecar in sorted(folder.glob("*.json")):
        try:
            meta = checkpoints.load_metadata(sidecar)
            config = TrainConfig.from_dict(meta["config"])
        except (checkpoints.CheckpointError, KeyError, TypeError, ValueError):
            continue  # not a checkpoint of this package
        net_id, parent = meta.get("net_id") or sidecar.stem, meta.get("parent")
        labels = {"manipulation": _label(config.manipulation)} if parent else {}
        specs[net_id] = NetworkSpec(net_id, config, parent, "finetune" if parent else "base", labels)
    ordered: list[NetworkSpec] = []
    while len(ordered) < len(specs):
        placed = {s.net_id for s in ordered}
        ready = [s for s in specs.values() if s.net_id not in placed and (s.parent is None or s.parent in placed
                                                                         or s.parent not in specs)]
        if not ready:
            break
        ordered += ready
    return ordered
