"""Checkpoints: ``<id>.safetensors`` (tensors) + ``<id>.json`` (metadata). No pickle.

The JSON sidecar holds arch, num_classes, config, parent id, epochs done, history,
metrics, the sha256 of the tensor file and the package version. Every write goes
to a temporary file in the same folder and is renamed into place, so a kill never
leaves a half-written checkpoint. Loading checks the hash, the architecture and
that every tensor is finite (no NaN or ±inf) before any tensor reaches a model.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__
from .files import atomic_path, write_json
from .models import build_for_loading

__all__ = ["CheckpointError", "CheckpointWriteError", "NonFiniteWeights", "first_nonfinite", "load", "load_metadata",
           "load_state", "save", "sha256_file", "state_sha256", "verify"]


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or not what the caller asked for."""


class NonFiniteWeights(CheckpointError):
    """A checkpoint whose tensors hold NaN or ±inf: a network that diverged, never analysed or trained on."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, no permission): never a network's failure
    to record and move past — the run stops, naming the file."""


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_sha256(weights: nn.Module | Mapping[str, torch.Tensor]) -> str:
    """sha256 of a network's weights in memory: every tensor's name, dtype, shape and bytes,
    in name order. Keys results computed from a model that has no checkpoint file."""
    state = weights.state_dict() if isinstance(weights, nn.Module) else weights
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        # reshape(-1): a 0-d tensor (BatchNorm's num_batches_tracked) cannot be viewed as bytes
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def first_nonfinite(tensors: Mapping[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point (or complex) tensor in ``tensors`` (dense, all on one
    device) that holds NaN or ±inf, or None when every one is finite. One pass over each tensor
    and a single read of the answers, so tensors on an accelerator cost one synchronisation."""
    floating = [(name, t) for name, t in tensors.items() if t.is_floating_point() or t.is_complex()]
    if not floating:
        return None
    finite = torch.stack([torch.isfinite(t).all() for _, t in floating]).tolist()
    return next((name for (name, _), ok in zip(floating, finite, strict=True) if not ok), None)


_VERIFIED: dict[tuple[str, int, int, str], bool] = {}


def verify(path: str | os.PathLike) -> str | None:
    """Why the checkpoint at ``path`` cannot be used (one sentence), or None when its tensor
    file exists and matches the sha256 its sidecar records.

    The hash is computed once per (file, size, mtime, recorded hash) in a process, so
    re-cataloguing a large population after every job costs only the new files.
    """
    tensors_path, _ = _paths(path)
    try:
        meta = load_metadata(path)
    except CheckpointError as error:
        return str(error)
    if not tensors_path.exists():
        return f"Checkpoint tensors {tensors_path} are missing."
    stat = tensors_path.stat()
    key = (str(tensors_path.resolve()), stat.st_size, stat.st_mtime_ns, meta["sha256"])
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_file(tensors_path) == meta["sha256"]
    if not _VERIFIED[key]:
        return f"Checkpoint {tensors_path} is corrupt: its sha256 does not match the one recorded in its sidecar."
    return None


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in {".safetensors", ".json"} else path
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def save(path: str | os.PathLike, model: nn.Module | dict[str, torch.Tensor], arch: str,
         num_classes: int, extra_tensors: dict[str, torch.Tensor] | None = None, **metadata: Any) -> dict:
    """Save ``model`` (or its state_dict) to ``path``.safetensors + ``path``.json.

    ``extra_tensors`` (e.g. optimiser state, prefixed) are stored beside the weights
    under ``extra/``; ``metadata`` goes into the JSON (config, parent, history, ...).
    A ``normalisation`` in it (``models.set_normalisation``'s, for an imported network)
    is also written into the tensor file's header: results are cached by that file's
    sha256, and the same weights behind another normalisation are another network.
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
    try:
        with atomic_path(tensors_path) as tmp:
            header = {"arch": arch}
            if "normalisation" in metadata:
                header["normalisation"] = json.dumps(metadata["normalisation"], sort_keys=True)
            save_file(tensors, str(tmp), metadata=header)
        meta = {**metadata, "arch": arch, "num_classes": int(num_classes),
                "sha256": sha256_file(tensors_path), "package_version": __version__}
        write_json(json_path, meta)
    except OSError as error:
        raise CheckpointWriteError(f"Checkpoint {tensors_path} could not be written ({error}).") from error
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
    """(weights, extra tensors, metadata) of a checkpoint, after checking hash and arch, and that
    every tensor is finite (:class:`NonFiniteWeights` names the first that is not)."""
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
    if (name := first_nonfinite(tensors)) is not None:
        raise NonFiniteWeights(f"Checkpoint {tensors_path}: {name} holds non-finite values (NaN or ±inf), so these "
                               "weights cannot be analysed or trained on: train the network again without diverging "
                               "(a lower lr), or import it from finite weights.")
    weights = {k: v for k, v in tensors.items() if not k.startswith("extra/")}
    extra = {k.removeprefix("extra/"): v for k, v in tensors.items() if k.startswith("extra/")}
    return weights, extra, meta


def load(path: str | os.PathLike, arch: str | None = None, device: str | torch.device = "cpu",
         verify: bool = True) -> tuple[nn.Module, dict]:
    """(model in eval mode on ``device``, metadata). Refuses another architecture. An imported
    network's recorded ``normalisation`` is rebuilt in front of it (none recorded: the arch's own)."""
    weights, _, meta = load_state(path, arch, verify)
    # no initialiser: the weights are replaced
    model = build_for_loading(meta["arch"], meta["num_classes"], normalisation=meta.get("normalisation"))
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"Checkpoint {_paths(path)[0]} does not fit a {meta['arch']} "
                              f"({str(error).splitlines()[0]}).") from error
    return model.to(device).eval(), meta
