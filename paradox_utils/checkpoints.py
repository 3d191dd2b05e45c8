"""Checkpoints: ``<id>.safetensors`` (tensors) + ``<id>.json`` (metadata). No pickle.

The JSON sidecar holds arch, num_classes, config, parent id, epochs done, history,
metrics, the sha256 of the tensor file and the package version. Every write goes
to a temporary file in the same folder and is renamed into place, so a kill never
leaves a half-written checkpoint. Loading checks the hash and the architecture
before any tensor reaches a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__
from .models import build

__all__ = ["CheckpointError", "atomic_path", "load", "load_metadata", "load_state", "save",
           "sha256_file", "write_json"]


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or not what the caller asked for."""


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(target: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in {".safetensors", ".json"} else path
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def save(path: str | os.PathLike, model: nn.Module | dict[str, torch.Tensor], arch: str,
         num_classes: int, extra_tensors: dict[str, torch.Tensor] | None = None, **metadata: Any) -> dict:
    """Save ``model`` (or its state_dict) to ``path``.safetensors + ``path``.json.

    ``extra_tensors`` (e.g. optimiser state, prefixed) are stored beside the weights
    under ``extra/``; ``metadata`` goes into the JSON (config, parent, history, ...).
    Returns the metadata written. The tensor file is renamed into place before the
    sidecar, and the sidecar carries its hash, so a torn pair is detected on load.
    """
    tensors_path, json_path = _paths(path)
    state = model.state_dict() if isinstance(model, nn.Module) else model
    # DataParallel / compiled wrappers prefix names; store the plain ones.
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    for name, value in (extra_tensors or {}).items():
        tensors[f"extra/{name}"] = value.detach().cpu().contiguous()
    with atomic_path(tensors_path) as tmp:
        save_file(tensors, str(tmp), metadata={"arch": arch})
    meta = {**metadata, "arch": arch, "num_classes": int(num_classes),
            "sha256": sha256_file(tensors_path), "package_version": __version__}
    write_json(json_path, meta)
    return meta


def load_metadata(path: str | os.PathLike) -> dict:
    """The JSON sidecar of ``path``; a clear error when it is missing or unreadable."""
    tensors_path, json_path = _paths(path)
    if not json_path.exists():
        raise CheckpointError(f"Checkpoint sidecar {json_path} is missing (every .safetensors "
                              "needs its .json metadata).")
    try:
        meta = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"Checkpoint sidecar {json_path} is not valid JSON ({error}).") from error
    if not isinstance(meta, dict) or "arch" not in meta or "sha256" not in meta:
        raise CheckpointError(f"Checkpoint sidecar {json_path} lacks 'arch' or 'sha256'.")
    return meta


def load_state(path: str | os.PathLike, arch: str | None = None,
               verify: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    """(weights, extra tensors, metadata) of a checkpoint, after checking hash and arch."""
    tensors_path, _ = _paths(path)
    meta = load_metadata(path)
    if arch is not None and meta["arch"] != arch:
        raise CheckpointError(f"Checkpoint {tensors_path} is a {meta['arch']}, not a {arch}.")
    if not tensors_path.exists():
        raise CheckpointError(f"Checkpoint tensors {tensors_path} are missing.")
    if verify and sha256_file(tensors_path) != meta["sha256"]:
        raise CheckpointError(f"Checkpoint {tensors_path} is corrupt: its sha256 does not match "
                              "the one recorded in its sidecar.")
    try:
        tensors = load_file(str(tensors_path))
    except Exception as error:
        raise CheckpointError(f"Checkpoint {tensors_path} is not a readable safetensors file ({error}).") from error
    weights = {k: v for k, v in tensors.items() if not k.startswith("extra/")}
    extra = {k.removeprefix("extra/"): v for k, v in tensors.items() if k.startswith("extra/")}
    return weights, extra, meta


def load(path: str | os.PathLike, arch: str | None = None, device: str | torch.device = "cpu",
         verify: bool = True) -> tuple[nn.Module, dict]:
    """(model in eval mode on ``device``, metadata). Refuses another architecture."""
    weights, _, meta = load_state(path, arch, verify)
    model = build(meta["arch"], meta["num_classes"])
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"Checkpoint {_paths(path)[0]} does not fit a {meta['arch']} "
                              f"({str(error).splitlines()[0]}).") from error
    return model.to(device).eval(), meta
