"""Populations: a profile → the list of networks (with lineage) → the catalog.

A profile's ``base_*`` settings describe base networks as a grid (the cartesian
product of the listed settings, optionally a seeded sample of it), its ``finetune_*``
settings fine-tunes as parents × augmentations (:func:`from_parameters`). Ids are
stable and readable: ``b000`` … for base networks, ``b000-ft-gamma`` for an offspring.

The catalog (one row a network: :mod:`paradox_utils.catalog`) takes from here what
needs a network's ``TrainConfig``: :func:`scan_catalog`, the catalog of a list of
networks as their checkpoints say, and :func:`read_catalog`, which rebuilds an
unreadable catalog of trained networks from their sidecars.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import catalog, checkpoints
from .catalog import STATUSES, catalog_path, write_catalog
from .names import plain_name
from .training import TrainConfig, config_differences

__all__ = [
    "GROUP_KEYS", "NetworkSpec", "RETRAIN_STALE", "STATUSES", "assign_augmentations", "base_specs", "catalog_path",
    "descendants", "finetune_specs", "from_parameters", "listing", "named_ids", "offspring_specs", "read_catalog",
    "retrain_for", "scan_catalog", "specs_from_catalog", "summary", "training_images", "write_catalog",
]


@dataclass
class NetworkSpec:
    """One network to train: its id, config, parent id (fine-tunes) and kind. The id names the
    network's checkpoint file, so it is a plain name (ValueError, one sentence, otherwise)."""

    net_id: str
    config: TrainConfig
    parent: str | None = None
    kind: str = "base"  # "base" or "finetune"
    labels: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        plain_name(self.net_id, "The network id", "it names the network's checkpoint file, <id>.safetensors (a "
                                                  "fine-tune's id is <parent>-ft-<manipulation><its group's suffix>)")


def _label(value: Any) -> str:
    return "none" if value is None else str(value)


def base_specs(common: dict[str, Any] | None = None, grid: dict[str, list] | None = None, sample: int | None = None,
               sample_seed: int = 0, arch: str = "resnet20", dataset: str = "cifar10",
               overrides: dict[str, dict[str, Any]] | None = None, replicates: int = 1) -> list[NetworkSpec]:
    """Base networks ``b000`` …: the cartesian product of ``grid`` (optionally a seeded
    ``sample`` of it), each with ``common`` settings, then ``overrides`` (net id → settings
    for that one network, e.g. the paper's N2 ``{"b001": {"manipulation": "all"}}``).
    ``replicates``: each combination trained that many times, one after another, differing
    only in their seed (seed replicates: the behavioural noise floor of a recipe).
    Every network's seed is its index (unless the grid or an override sets it).
    Every config is validated here."""
    grid = grid or {}
    if not isinstance(grid, dict) or any(not isinstance(v, list) or not v for v in grid.values()):
        raise ValueError("The base grid must map each setting to a non-empty list of values.")
    keys = sorted(grid)
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]
    if sample is not None:
        if sample > len(combos):
            raise ValueError(f"population.base.sample={sample} exceeds the grid's {len(combos)} combinations.")
        combos = random.Random(sample_seed).sample(combos, sample)
    if not isinstance(replicates, int) or replicates < 1:
        raise ValueError(f"base_replicates must be a whole number ≥ 1; got {replicates!r}.")
    combos = [combo for combo in combos for _ in range(replicates)]
    overrides = overrides or {}
    if unknown := sorted(set(overrides) - {f"b{i:03d}" for i in range(len(combos))}):
        raise ValueError(f"base_overrides names {', '.join(unknown)}, not a base network of this grid "
                         f"(b000 … b{len(combos) - 1:03d}).")
    specs = []
    for i, combo in enumerate(combos):
        combo = {**combo, **overrides.get(f"b{i:03d}", {})}
        values = {"arch": arch, "dataset": dataset, "seed": i, **(common or {}), **combo}
        try:
            config = TrainConfig.from_dict(values).validate()
        except (TypeError, ValueError) as error:
            raise ValueError(f"Base network b{i:03d}: {error}") from None
        specs.append(NetworkSpec(f"b{i:03d}", config, None, "base", combo))
    if not specs:
        raise ValueError("The population is empty: give population.base.grid at least one value.")
    return specs


GROUP_KEYS = ("parents", "manipulations", "common", "suffix", "per_parent", "total", "seed")


def _checked_group(group: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(group, dict):
        raise ValueError(f"Each of finetune_groups should be a mapping of {', '.join(GROUP_KEYS)}, got {group!r}.")
    if unknown := set(group) - set(GROUP_KEYS):
        raise ValueError(f"Unknown fine-tune keys {sorted(unknown, key=str)}; valid: {', '.join(GROUP_KEYS)}.")
    return group


def assign_augmentations(parents: list[str], manipulations: list, per_parent: int = 0, total: int = 0,
                         seed: int = 0) -> dict[str, list]:
    """Which augmentations each parent's offspring get: parent id → its list, in
    ``manipulations``' order.

    ``per_parent=0``: every parent gets every one. ``per_parent=k``: each parent gets k
    different ones, drawn at random without replacement; ``total`` (0: k per parent)
    offspring in all, the ``total − k·parents`` extra going one each to parents drawn at
    random — all from one ``random.Random(seed)``, parents in order, so the population is
    the same on every machine and run.
    """
    if not per_parent:
        return {p: list(manipulations) for p in parents}
    extra = (total or per_parent * len(parents)) - per_parent * len(parents)
    most = per_parent + (extra > 0)
    if per_parent < 0 or most > len(manipulations) or not 0 <= extra <= len(parents):
        raise ValueError(f"Fine-tunes: {total} offspring of {len(parents)} parents with {per_parent} each cannot be "
                         f"drawn from {len(manipulations)} augmentations (at most one extra per parent, "
                         f"no augmentation twice for a parent).")
    rng = random.Random(seed)
    lucky = set(rng.sample(parents, extra))
    chosen = {p: set(map(_label, rng.sample(manipulations, per_parent + (p in lucky)))) for p in parents}
    return {p: [m for m in manipulations if _label(m) in chosen[p]] for p in parents}


def finetune_specs(specs: list[NetworkSpec], parents: int | list[str] = 0, manipulations: list | None = None,
                   common: dict[str, Any] | None = None, suffix: str = "", per_parent: int = 0, total: int = 0,
                   seed: int = 0) -> list[NetworkSpec]:
    """One fine-tune group: parents × augmentations, ids ``<parent>-ft-<manipulation><suffix>``.

    ``specs``: the networks already in the population (the parents are taken from
    them: the first ``parents`` bases, or the listed ids). ``per_parent``, ``total``,
    ``seed``: which augmentations each parent gets (:func:`assign_augmentations`; by
    default all). Each offspring starts from its parent's config — optimiser, lr, batch
    size, schedule, time decay — with ``common`` (e.g. its epochs) and its augmentation
    applied, and its own seed (the parent's + 10,000).
    """
    bases = [s for s in specs if s.kind == "base"]
    parent_ids = [s.net_id for s in bases[:parents]] if isinstance(parents, int) else list(parents)
    by_id = {s.net_id: s for s in specs}
    if missing := [p for p in parent_ids if p not in by_id]:
        raise ValueError(f"population.finetune.parents names unknown networks {missing}.")
    if isinstance(parents, int) and parents > len(bases):
        raise ValueError(f"finetune_parents={parents} exceeds the {len(bases)} base networks.")
    augmentations = assign_augmentations(parent_ids, manipulations if manipulations is not None else [None],
                                         per_parent, total, seed)
    out = []
    for parent in parent_ids:
        for manipulation in augmentations[parent]:
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
                    common: dict[str, Any] | None = None, groups: list[dict[str, Any]] = (), per_parent: int = 0,
                    total: int = 0, seed: int = 0) -> list[NetworkSpec]:
    """Every offspring of ``bases``: the group (``parents`` × ``manipulations`` with
    ``common``, assigned by ``per_parent``, ``total``, ``seed``) when both are given, then
    each further group of ``groups`` (dicts of :func:`finetune_specs`' keywords, each with
    a distinct ``suffix``)."""
    out: list[NetworkSpec] = []
    if parents and manipulations:
        out += finetune_specs(bases, parents=parents, manipulations=manipulations, common=common,
                              per_parent=per_parent, total=total, seed=seed)
    for group in groups:
        out += finetune_specs(bases + out, **_checked_group(group))
    return out


def from_parameters(values: dict[str, Any]) -> list[NetworkSpec]:
    """The population the chapters' parameters describe (chapter 1's ``base_*`` and chapter
    2's ``finetune_*``, with ``arch`` and ``dataset``): the one place a profile becomes its
    networks, for the pre-run checks, ``python -m paradox_utils population`` and benchmarks."""
    bases = base_specs(common=values["base_common"], grid=values["base_grid"], sample=values["base_sample"],
                       arch=values["arch"], dataset=values["dataset"], overrides=values["base_overrides"],
                       replicates=values["base_replicates"])
    return bases + offspring_specs(bases, parents=values["finetune_parents"],
                                   manipulations=values["finetune_manipulations"], common=values["finetune_common"],
                                   groups=values["finetune_groups"], per_parent=values["finetune_per_parent"],
                                   total=values["finetune_total"], seed=values["finetune_seed"])


def listing(specs: list[NetworkSpec]) -> pd.DataFrame:
    """One row per network: ``net_id``, ``parent`` ("" for a base), ``kind`` and every
    :class:`TrainConfig` field as a column (``manipulation`` "" for none; ``extra`` as JSON)."""
    rows = []
    for spec in specs:
        config = spec.config.to_dict()
        config["manipulation"] = config["manipulation"] or ""
        config["extra"] = json.dumps(config.get("extra") or {}, sort_keys=True)
        rows.append({"net_id": spec.net_id, "parent": spec.parent or "", "kind": spec.kind, **config})
    return pd.DataFrame(rows)


def training_images(config: TrainConfig) -> int | None:
    """Images one epoch of ``config`` trains on (CIFAR-10: 5,000 a class at most; None for
    ImageNet, whose size depends on the folder)."""
    if config.dataset != "cifar10":
        return None
    return 10 * min(config.train_per_class or 5_000, 5_000)


def summary(specs: list[NetworkSpec]) -> str:
    """One line: how many networks of each kind, their epochs, and the training images
    they take (what a run costs before it starts)."""
    bases = sum(s.kind == "base" for s in specs)
    epochs = sum(s.config.epochs for s in specs)
    line = f"{len(specs)} networks ({bases} base, {len(specs) - bases} fine-tuned); {epochs:,} network-epochs"
    sizes = [training_images(s.config) for s in specs]
    if all(n is not None for n in sizes):
        images = sum(s.config.epochs * n for s, n in zip(specs, sizes, strict=True))
        line += f", {images:,} training images"
    return line + "."


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


# ``--retrain stale``: every network whose checkpoint does not match its spec, found when the
# checkpoints are scanned (cluster.run_population). Unlike a list of ids it is safe to repeat:
# a network retrained since matches, so a rerun after a kill resumes instead of starting over.
RETRAIN_STALE = "stale"


def named_ids(retrain: Sequence[str]) -> list[str]:
    """The network ids of ``retrain``, without the word ``stale``."""
    return [r for r in retrain if r != RETRAIN_STALE]


def retrain_for(specs: list[NetworkSpec], retrain: Sequence[str], kind: str) -> list[str]:
    """The networks of ``kind`` among ``specs`` to train again when ``retrain`` names some
    networks of the population: those named and every offspring of a named one (then the
    word ``stale``, if given, for :func:`~paradox_utils.cluster.run_population` to resolve).
    Chapter 1 retrains named bases; chapter 2 their offspring and named offspring — never
    a base again."""
    kinds = {s.net_id: s.kind for s in specs}
    named = [n for n in descendants(specs, named_ids(retrain)) if kinds.get(n) == kind]
    return named + ([RETRAIN_STALE] if RETRAIN_STALE in retrain else [])


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


def read_catalog(checkpoint_dir: str | os.PathLike) -> pd.DataFrame:
    """The catalog of ``checkpoint_dir`` (:func:`catalog.read_catalog`). One that is unreadable
    is rebuilt, with a warning, from the checkpoints' sidecars (the catalog is derived from them)."""
    return catalog.read_catalog(checkpoint_dir, rebuild_trained=_trained_catalog)


def _trained_catalog(folder: Path) -> pd.DataFrame:
    """The catalog of the networks trained into ``folder``, as their sidecars say."""
    return scan_catalog(_specs_from_sidecars(folder), folder)


def _specs_from_sidecars(folder: Path) -> list[NetworkSpec]:
    """Specs for every checkpoint sidecar in ``folder``, parents before their offspring
    (:func:`catalog.parents_first`)."""
    specs = {}
    for sidecar, meta in catalog.sidecars(folder):
        try:
            config = TrainConfig.from_dict(meta["config"])
        except (KeyError, TypeError, ValueError):
            continue  # not a checkpoint of this package
        net_id, parent = meta.get("net_id") or sidecar.stem, meta.get("parent")
        labels = {"manipulation": _label(config.manipulation)} if parent else {}
        specs[net_id] = NetworkSpec(net_id, config, parent, "finetune" if parent else "base", labels)
    return [specs[n] for n in catalog.parents_first({n: s.parent for n, s in specs.items()})]
