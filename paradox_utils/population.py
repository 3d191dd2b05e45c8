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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import checkpoints
from .checkpoints import atomic_path
from .training import TrainConfig

__all__ = ["NetworkSpec", "build_population", "catalog_path", "read_catalog", "scan_catalog", "write_catalog"]


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
    "manipulations": [None | "all" | name, ...]}}``. Every network gets its own
    seed (its position) unless the grid sets ``seed``.
    """
    unknown = set(population) - {"base", "finetune"}
    if unknown:
        raise ValueError(f"Unknown population keys {sorted(unknown)}; valid: base, finetune.")
    base = population.get("base") or {}
    grid = base.get("grid") or {}
    keys = sorted(grid)
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]
    if base.get("sample") is not None:
        if base["sample"] > len(combos):
            raise ValueError(f"population.base.sample={base['sample']} exceeds the grid's {len(combos)} combinations.")
        combos = random.Random(base.get("sample_seed", 0)).sample(combos, base["sample"])
    specs = []
    for i, combo in enumerate(combos):
        values = {"arch": arch, "dataset": dataset, "seed": i, **(base.get("common") or {}), **combo}
        specs.append(NetworkSpec(f"b{i:03d}", TrainConfig.from_dict(values).validate(), None, "base", combo))
    finetune = population.get("finetune") or []
    for group in [finetune] if isinstance(finetune, dict) else finetune:
        specs += _finetunes(group, specs)
    if not specs:
        raise ValueError("The population is empty: give population.base.grid at least one value.")
    return specs


def _finetunes(group: dict[str, Any], specs: list[NetworkSpec]) -> list[NetworkSpec]:
    """One fine-tune group: parents × manipulations, ids ``<parent>-ft-<manipulation><suffix>``."""
    unknown = set(group) - {"parents", "manipulations", "common", "suffix"}
    if unknown:
        raise ValueError(f"Unknown fine-tune keys {sorted(unknown)}; valid: parents, manipulations, common, suffix.")
    parents = group.get("parents", 0)
    bases = [s for s in specs if s.kind == "base"]
    parent_ids = [s.net_id for s in bases[:parents]] if isinstance(parents, int) else list(parents)
    by_id = {s.net_id: s for s in specs}
    if missing := [p for p in parent_ids if p not in by_id]:
        raise ValueError(f"population.finetune.parents names unknown networks {missing}.")
    out = []
    for parent in parent_ids:
        for manipulation in group.get("manipulations", [None]):
            values = {**by_id[parent].config.to_dict(), **(group.get("common") or {}),
                      "manipulation": manipulation, "seed": by_id[parent].config.seed + 10_000}
            values.pop("extra", None)
            config = TrainConfig.from_dict(values).validate()
            net_id = f"{parent}-ft-{_label(manipulation)}{group.get('suffix', '')}"
            out.append(NetworkSpec(net_id, config, parent, "finetune", {"manipulation": _label(manipulation)}))
    taken = {s.net_id for s in specs}
    if clash := [s.net_id for s in out if s.net_id in taken]:
        raise ValueError(f"Fine-tune ids {clash} are taken; give the group a distinct 'suffix'.")
    return out


def catalog_path(checkpoint_dir: str | os.PathLike) -> Path:
    return Path(checkpoint_dir) / "catalog.parquet"


def scan_catalog(specs: list[NetworkSpec], checkpoint_dir: str | os.PathLike,
                 errors: dict[str, str] | None = None) -> pd.DataFrame:
    """The catalog as the checkpoints on disk say it is (status, accuracy, timings)."""
    rows = []
    for spec in specs:
        path = Path(checkpoint_dir) / f"{spec.net_id}.safetensors"
        row = {"net_id": spec.net_id, "arch": spec.config.arch, "kind": spec.kind, "parent": spec.parent,
               "config": json.dumps(spec.config.to_dict(), sort_keys=True),
               "labels": json.dumps(spec.labels, sort_keys=True, default=str),
               "status": "pending", "checkpoint": str(path), "val_accuracy": float("nan"),
               "epochs_done": 0, "train_seconds": 0.0, "error": (errors or {}).get(spec.net_id, "")}
        if path.with_suffix(".json").exists():
            meta = checkpoints.load_metadata(path)
            history = meta.get("history", [])
            row.update(status=meta.get("status", "done"), epochs_done=meta.get("epochs_done", 0),
                       val_accuracy=(meta.get("metrics") or {}).get("val_accuracy", float("nan")),
                       train_seconds=float(sum(h.get("seconds", 0.0) for h in history)))
        if row["error"] and row["status"] != "done":
            row["status"] = "failed"
        rows.append(row)
    return pd.DataFrame(rows)


def write_catalog(catalog: pd.DataFrame, checkpoint_dir: str | os.PathLike) -> Path:
    path = catalog_path(checkpoint_dir)
    with atomic_path(path) as tmp:
        catalog.to_parquet(tmp, index=False)
    return path


def read_catalog(checkpoint_dir: str | os.PathLike) -> pd.DataFrame:
    path = catalog_path(checkpoint_dir)
    if not path.exists():
        raise FileNotFoundError(f"No catalog at {path}: run the training chapter (01_train) first.")
    return pd.read_parquet(path)
