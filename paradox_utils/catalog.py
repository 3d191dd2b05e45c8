"""The catalog: a population's networks, one row each, as their checkpoints' sidecars say.

One Parquet table per population (``<checkpoints>/catalog.parquet``), rewritten
atomically by the one driver process as jobs finish. Parquet rather than SQLite: only
the driver writes it (workers write checkpoints, never the catalog), it stays small
(one row a network), and every reader here is pandas.

The catalog is derived from the sidecars, so an unreadable one is rebuilt from them, with
a warning — when read, and when a training run writes it anew (:func:`check_catalog`):
here for imported networks (their sidecars hold every column), through
``population.read_catalog`` for trained ones (their rows need their ``TrainConfig``).
:func:`parents_first` is the one order in which a population's networks are listed
wherever lineage decides it: every network after its parent.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from . import checkpoints
from .files import write_table

__all__ = ["KEY_COLUMNS", "STATUSES", "catalog_path", "check_catalog", "configs", "families",
           "holds_imported_networks", "imported_catalog", "is_imported", "parents_first", "parents_of", "parse_config",
           "read_catalog", "sidecars", "sources", "was_imported", "write_catalog"]

# A network's status in the catalog: not trained yet, training, trained, its job failed, its
# checkpoint made with other settings or from another parent, its checkpoint unreadable.
STATUSES = ("pending", "running", "done", "failed", "stale", "corrupt")
# the columns every reader finds a catalog's networks by: a table without them is no catalog
KEY_COLUMNS = ("net_id", "status", "checkpoint", "sha256")


def catalog_path(checkpoint_dir: str | os.PathLike) -> Path:
    return Path(checkpoint_dir) / "catalog.parquet"


def write_catalog(catalog: pd.DataFrame, checkpoint_dir: str | os.PathLike) -> Path:
    return write_table(catalog, catalog_path(checkpoint_dir))


def read_catalog(checkpoint_dir: str | os.PathLike,
                 rebuild_trained: Callable[[Path], pd.DataFrame] | None = None) -> pd.DataFrame:
    """The catalog of ``checkpoint_dir``. One that is unreadable, or lacks the columns of
    :data:`KEY_COLUMNS`, is rebuilt, with a warning, from the checkpoints' sidecars and written back:
    imported networks' by :func:`imported_catalog`, trained ones' by ``rebuild_trained`` (the
    folder → its catalog; ``population.read_catalog`` passes it). Without it, a folder of trained
    networks whose catalog is unreadable raises ValueError (one sentence)."""
    path = catalog_path(checkpoint_dir)
    if not path.exists():
        raise FileNotFoundError(f"No catalog at {path}: run the training chapter (01_train) first, or import "
                                "networks (python -m paradox_utils import).")
    table, problem = _read(path)
    if table is not None:
        return table
    catalog = imported_catalog(checkpoint_dir)
    if catalog is None and rebuild_trained is None:
        raise ValueError(f"The catalog {path} is unreadable ({problem}) and its folder holds no imported networks "
                         "to rebuild it from; population.read_catalog rebuilds the catalog of trained ones.")
    _warn_rebuilt(path, problem)
    if catalog is None:
        catalog = rebuild_trained(Path(checkpoint_dir))
    write_catalog(catalog, checkpoint_dir)
    return catalog


def check_catalog(checkpoint_dir: str | os.PathLike) -> None:
    """Warn, in one sentence, when ``checkpoint_dir`` holds a catalog that is unreadable or lacks
    the columns of :data:`KEY_COLUMNS`: a training run (``cluster.run_population``) writes the catalog
    anew from the checkpoints without reading it, and says so rather than replace it silently."""
    path = catalog_path(checkpoint_dir)
    if path.exists() and (problem := _read(path)[1]):
        _warn_rebuilt(path, problem)


def _read(path: Path) -> tuple[pd.DataFrame | None, str]:
    """(the catalog at ``path``, "") or (None, why it cannot be used)."""
    try:
        table = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types; its name is enough for the warning
        return None, type(error).__name__
    if missing := [c for c in KEY_COLUMNS if c not in table.columns]:
        return None, f"it has no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}"
    return table, ""


def _warn_rebuilt(path: Path, problem: str) -> None:
    warnings.warn(f"The catalog {path} is unreadable ({problem}); it is rebuilt from the checkpoints' sidecars.",
                  RuntimeWarning, stacklevel=3)


def parents_first(parents: Mapping[str, str | None]) -> list[str]:
    """The ids of ``parents`` (network id → its parent's id, None for a base), every one
    after its parent: in rounds, each round the ids whose parent is placed already or is
    not among them, in the mapping's order. Ids in a cycle of parents are left out."""
    ordered: list[str] = []
    placed: set[str] = set()
    while len(ordered) < len(parents):
        ready = [n for n, parent in parents.items() if n not in placed
                 and (parent is None or parent in placed or parent not in parents)]
        if not ready:
            break
        ordered += ready
        placed.update(ready)
    return ordered


def parents_of(catalog: pd.DataFrame) -> dict[str, str | None]:
    """net_id → its parent's id, None for a base (an empty or missing parent cell)."""
    return {row.net_id: (row.parent if isinstance(row.parent, str) and row.parent else None)
            for row in catalog.itertuples()}


def parse_config(raw: Any) -> dict:
    """One ``config`` cell of a catalog as a dict: its JSON, {} where none is recorded."""
    return json.loads(raw) if isinstance(raw, str) and raw else {}


def configs(catalog: pd.DataFrame) -> dict[str, dict]:
    """net_id → its recorded training config (:func:`parse_config` of the ``config`` column),
    {} where the catalog records none (imported networks, or a table without the column)."""
    return {row.net_id: parse_config(getattr(row, "config", None)) for row in catalog.itertuples()}


def families(parents: Mapping[str, str | None]) -> dict[str, str]:
    """Network id → its family: the id of its root ancestor (the first one up the lineage
    without a parent among ``parents``). A base is its own family; networks imported
    without a lineage are each a family of one. Ids in a cycle of parents take the
    smallest id of the cycle, so every network has exactly one family.

    The family is the unit of inference: a parent and its offspring share their start and
    their training, so they are not independent samples of a recipe.
    """
    out: dict[str, str] = {}
    for net in parents:
        seen = [net]
        while (up := parents.get(seen[-1])) is not None and up in parents and up not in seen:
            seen.append(up)
        up = parents.get(seen[-1])
        out[net] = min(seen[seen.index(up):]) if up in seen else seen[-1]
    return out


def sidecars(folder: Path) -> Iterator[tuple[Path, dict]]:
    """(sidecar, its metadata) for every readable checkpoint sidecar in ``folder``, by name."""
    for sidecar in sorted(folder.glob("*.json")):
        try:
            yield sidecar, checkpoints.load_metadata(sidecar)
        except checkpoints.CheckpointError:
            continue  # not a checkpoint's sidecar


# ----------------------------------------------------------------------------- imported networks

def was_imported(meta: dict) -> bool:
    """A checkpoint written by an import: it records the file it came from (a trained one never does)."""
    return "source_sha256" in meta


def holds_imported_networks(checkpoint_dir: str | os.PathLike) -> bool:
    """Whether ``checkpoint_dir`` holds networks imported by ``importing.import_population``: then
    its population was trained elsewhere, and chapters 1–2 (training) do not apply to it. An
    import never writes beside networks trained here, so the first checkpoint decides."""
    return next((was_imported(meta) for _, meta in sidecars(Path(checkpoint_dir))), False)


def _row(meta: dict, path: Path) -> dict[str, Any]:
    """One catalog row (``population.scan_catalog``'s columns, then source and its sha256)."""
    problem = checkpoints.verify(path)
    return {"net_id": meta["net_id"], "arch": meta["arch"], "kind": meta["kind"], "parent": meta.get("parent"),
            "config": json.dumps(meta["config"], sort_keys=True),
            "labels": json.dumps(meta.get("labels") or {}, sort_keys=True),
            "status": "corrupt" if problem else "done", "checkpoint": str(path), "sha256": meta["sha256"],
            "val_accuracy": float("nan"), "epochs_done": 0, "train_seconds": 0.0, "error": problem or "",
            "source": meta["source"], "source_sha256": meta["source_sha256"]}


def imported_catalog(checkpoint_dir: str | os.PathLike, ids: Sequence[str] | None = None) -> pd.DataFrame | None:
    """The catalog of the imported networks in ``checkpoint_dir`` as their sidecars say
    (``ids``: these, in this order; None: every imported sidecar, :func:`parents_first`), or
    None when the folder holds none. Rebuilds an unreadable catalog (:func:`read_catalog`)."""
    metas = {meta["net_id"]: (meta, sidecar.with_suffix(".safetensors")) for sidecar, meta in
             sidecars(Path(checkpoint_dir)) if was_imported(meta) and "net_id" in meta}
    if not metas:
        return None
    if ids is None:
        ids = parents_first({n: m.get("parent") for n, (m, _) in metas.items()})
    return pd.DataFrame([_row(*metas[n]) for n in ids])


def is_imported(catalog: pd.DataFrame) -> bool:
    """Whether the catalog's networks were imported (its rows name their source files), not
    trained by chapters 1–2: what the book is made of follows from it (``pipeline.book_chapters``)."""
    return bool(sources(catalog))


def sources(catalog: pd.DataFrame) -> list[str]:
    """The weight files the catalog's networks were imported from, in its order ([] for trained networks)."""
    return [s for s in catalog.get("source", pd.Series(dtype=str)).fillna("") if s]
