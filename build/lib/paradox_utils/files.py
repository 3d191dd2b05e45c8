"""Writing and reading the project's files: atomically, with ordinary permissions, and
with a clear sentence when a file cannot be read.

One rule for every file the package writes (checkpoints, sidecars, the catalog, caches,
result tables, the executed chapters): write to a temporary file in the target's folder,
give it :data:`FILE_MODE` — the permissions a plain ``open()`` would (``0666 & ~umask``,
usually 0644; ``mkstemp`` alone gives 0600, which breaks a checkpoint folder shared by
Dask workers of different users) — then rename it into place (:func:`place`), so a
kill never leaves half a file. A writer that cannot be handed a path of its own choosing
(papermill, pandas, safetensors) writes to :func:`atomic_path`'s temporary path.

Result tables are Parquet. A table may carry *provenance* — a JSON mapping stored
in the Parquet schema metadata (e.g. ``{"weights": {net_id: sha256}, "eval_set":
...}``) — so a reader can check it was made from the inputs it is about to be
combined with (:func:`read_provenance`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "FILE_MODE", "ResultError", "atomic_path", "lock_handle", "place", "read_cache_table", "read_provenance",
    "read_table", "write_json", "write_table",
]

PROVENANCE_KEY = b"paradox.provenance"


class ResultError(ValueError):
    """A result file that is missing, unreadable, or made from other inputs."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# The mode every file the package writes ends with (0644 under the usual umask 022).
# Read once: os.umask can only be read by setting it, which would race with other threads.
FILE_MODE = 0o666 & ~_umask()


def place(finished: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Put the complete file ``finished`` (in ``target``'s folder) in place as ``target``:
    flushed to disk, given :data:`FILE_MODE`, then renamed onto it in one step."""
    with open(finished, "rb+") as handle:  # on disk before the rename, so a crash never leaves an empty file
        os.fsync(handle.fileno())
    os.chmod(finished, FILE_MODE)
    os.replace(finished, target)
    return Path(target)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success :func:`place` it onto ``target``
    (with :data:`FILE_MODE`). On failure the target is untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        place(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def lock_handle(path: str | os.PathLike) -> IO[str]:
    """An append handle on the lock file ``path`` (for ``fcntl.flock``), created empty with
    :data:`FILE_MODE` when absent. Not through :func:`place`: every holder must lock one
    and the same inode, and a rename would swap it for another."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, FILE_MODE)
        os.fchmod(fd, FILE_MODE)  # os.open's mode passes through the umask; the package's does not
    except FileExistsError:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    return os.fdopen(fd, "a")


def write_json(target: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))


def write_table(table: pd.DataFrame, target: str | os.PathLike, provenance: dict | None = None) -> Path:
    """Write ``table`` as Parquet (no index) atomically; ``provenance`` goes into its metadata."""
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if provenance is not None:
        metadata = dict(arrow.schema.metadata or {})
        metadata[PROVENANCE_KEY] = json.dumps(provenance, sort_keys=True, default=str).encode()
        arrow = arrow.replace_schema_metadata(metadata)
    with atomic_path(target) as tmp:
        pq.write_table(arrow, tmp)
    return Path(target)


def read_table(path: str | os.PathLike, what: str = "Result table", hint: str = "") -> pd.DataFrame:
    """A Parquet table; one sentence naming the file when it is missing or unreadable.

    ``what`` names the table in the message; ``hint`` says how to make it.
    """
    path = Path(path)
    if not path.exists():
        raise ResultError(f"{what} {path} does not exist{': ' + hint if hint else ''}.")
    try:
        return pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types; the user needs one sentence
        raise ResultError(f"{what} {path} is unreadable ({type(error).__name__}); "
                          f"{hint or 'delete it and run the chapter that writes it again'}.") from error


def read_cache_table(path: str | os.PathLike | None, columns: list[str], what: str = "cache",
                     defaults: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """A derived cache: empty when absent; rebuilt (empty, with a warning) when unreadable
    or lacking ``columns`` — a cache only saves work, it is never worth stopping for.
    ``defaults``: column → the value every row of an older format had (a column added
    since, whose only earlier value is known), filled in rather than rebuilding."""
    empty = pd.DataFrame(columns=columns)
    if path is None or not Path(path).exists():
        return empty
    try:
        table = pd.read_parquet(path)
    except Exception as error:
        warnings.warn(f"The {what} {path} is unreadable ({type(error).__name__}); it is rebuilt.",
                      RuntimeWarning, stacklevel=2)
        return empty
    for column, value in (defaults or {}).items():
        if column not in table.columns:
            table[column] = value
    if missing := [c for c in columns if c not in table.columns]:
        warnings.warn(f"The {what} {path} lacks columns {missing} (an older format); it is rebuilt.",
                      RuntimeWarning, stacklevel=2)
        return empty
    return table


def read_provenance(path: str | os.PathLike) -> dict:
    """The provenance mapping stored by :func:`write_table` (empty if none)."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except Exception as error:
        raise ResultError(f"Result table {path} is unreadable ({type(error).__name__}).") from error
    raw = metadata.get(PROVENANCE_KEY)
    return json.loads(raw) if raw else {}
