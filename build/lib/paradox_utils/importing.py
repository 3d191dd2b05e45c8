"""Networks trained elsewhere, imported for chapters 3–6: weight files → checkpoints + catalog + profile.

``import_population(folder, arch, profile)`` (``python -m paradox_utils import DIR --arch
ARCH --profile NAME``) reads every weight file directly in ``folder``:

* ``*.safetensors`` — read by safetensors, no code runs;
* ``*.pt`` / ``*.pth`` — ``torch.load(..., weights_only=True)`` only: tensors and plain
  containers, never a full unpickle (unpickling runs whatever code a file names). A
  file that needs one — a whole model saved with ``torch.save(model)`` — is refused,
  saying to save ``model.state_dict()`` instead;
* ``*.ckpt`` — a Lightning checkpoint, read the same way, its ``state_dict`` taken.

A file may hold the state_dict itself or a dict holding it (``state_dict``,
``model_state_dict``, ``model``, …). Parameter names are matched to the architecture's
after stripping what wrappers add: ``module.`` (DataParallel), ``_orig_mod.``
(torch.compile) and the attribute a LightningModule keeps the network under
(``model.``, ``net.``, any one or two leading names under which *exactly* the
architecture's tensors sit; other tensors there, such as a loss's weights, are left).
Each file is checked against the architecture — missing and unexpected tensors,
shapes — and a misfit is refused in one sentence naming the file and its first mismatch;
so is a tensor holding NaN or ±inf (a network that diverged), as read and once in the
architecture's float32.

Each network becomes a project checkpoint (``checkpoints.save``: safetensors + JSON
sidecar) recording its source file and that file's sha256, the input normalisation it
expects and its lineage; the folder gets the same ``catalog.parquet`` chapters 3–6 read
(kind ``base`` or ``finetune``, plus a ``source`` column naming the file) and a small
``profile.yaml`` for ``python -m paradox_utils run --profile <it> --from 03_evaluate``.

Lineage comes from an optional CSV (``net_id,parent[,label][,file]``); without it every
network is a base, its id the file's stem (characters other than letters, digits,
``_ . -`` become ``-``). Re-importing is idempotent: a network whose source file, settings
and lineage are unchanged is left as it is — same checkpoint bytes, same sha256, so every
cached result keyed on it is reused; a changed file is written anew (new sha256) and
its results are recomputed.

Architectures: the project's (``resnet20``, ``resnet50``, ``resnet50_keras``) and any
torchvision classification model as ``torchvision:<name>``, which evaluation, CKA and
the paper's and Hungarian kernel alignments take. The ``coupled`` alignment and the
transplant (chapter 6) need a channel-permutation spec (``permutations.SPECS``); for an
architecture without one the import says so and the profile it writes leaves
``coupled`` out.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from . import checkpoints, models
from .catalog import (
    catalog_path,
    holds_imported_networks,
    imported_catalog,
    is_imported,
    parents_first,
    sidecars,
    sources,
    was_imported,
    write_catalog,
)
from .files import atomic_path
from .names import plain_name
from .profiles import YAML_SUFFIXES, checkpoint_folder, profile_name

__all__ = ["DATASET_CLASSES", "ImportRefused", "ImportResult", "NORMALISATIONS", "PROFILE_FILE", "WEIGHT_SUFFIXES",
           "holds_imported_networks", "import_population", "imported_catalog", "is_imported", "normalisation_phrase",
           "origin_sentence", "parse_normalisation", "read_lineage", "read_weights"]

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt")
NORMALISATIONS = {"cifar10": (models.CIFAR10_MEAN, models.CIFAR10_STD),
                  "imagenet": (models.IMAGENET_MEAN, models.IMAGENET_STD)}
DATASET_CLASSES = {"cifar10": 10, "imagenet": 1000}  # the classes the chapters' evaluation sets label
PROFILE_FILE = "profile.yaml"
# Where checkpoint dicts keep the network's state_dict, in the order they are tried
STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "weights")
WRAPPERS = ("module.", "_orig_mod.")  # DataParallel / DistributedDataParallel, torch.compile
LINEAGE_COLUMNS = ("net_id", "parent", "label", "file")


class ImportRefused(ValueError):
    """A weight file, lineage or destination that cannot be imported; the message is one sentence."""


def _network_id(value: Any, what: str, why: str) -> str:
    """``value`` when it may be a network's id, which names a checkpoint file (:func:`names.plain_name`,
    with ``what`` and ``why``); else :class:`ImportRefused` in that rule's one sentence."""
    try:
        return plain_name(value, what, why)
    except ValueError as refusal:
        raise ImportRefused(str(refusal)) from None


# ----------------------------------------------------------------------------- reading files

def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """(state_dict as found in the file, its format: "safetensors", "state_dict", "checkpoint dict"
    or "lightning"). Never unpickles anything but tensors and plain containers. Refuses, naming
    the tensor, one that is not a dense tensor in memory or that holds NaN or ±inf."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        try:
            state, kind = load_file(str(path)), "safetensors"
        except (SafetensorError, OSError, ValueError) as error:
            raise ImportRefused(f"{path.name} is not a readable safetensors file ({error}).") from None
    else:
        state, kind = _read_torch(path)
    for name, tensor in state.items():
        if tensor.layout != torch.strided or tensor.is_nested or tensor.is_quantized or tensor.is_meta:
            raise ImportRefused(f"{path.name}: {name} is not a dense tensor in memory ({tensor.layout}, "
                                f"{tensor.dtype}, on {tensor.device}), as a network's parameters are: save the "
                                "state_dict of the network as it was trained.")
    if (name := checkpoints.first_nonfinite(state)) is not None:
        raise ImportRefused(f"{path.name}: {name} holds non-finite values (NaN or ±inf): these weights cannot be "
                            "analysed; re-export them from a network that trained without diverging.")
    return state, kind


def _read_torch(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The state_dict in a PyTorch file (``torch.load(weights_only=True)``) and its format."""
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        lightning = (" (a Lightning checkpoint whose hyper-parameters or callbacks hold Python objects: there, "
                     "torch.save(torch.load(path, weights_only=False)['state_dict'], 'net.pt'))"
                     if path.suffix.lower() == ".ckpt" else "")
        raise ImportRefused(
            f"{path.name} holds pickled Python objects — a whole model saved with torch.save(model)? — which only a "
            f"full unpickle could read, and unpickling runs whatever code a file names, so it is refused: where the "
            f"network was trained, save model.state_dict() instead (torch.save(model.state_dict(), "
            f"'{path.stem}.pt') or safetensors.torch.save_file){lightning}.") from None
    except Exception as error:  # torch raises several types for a torn or foreign file; one sentence
        raise ImportRefused(f"{path.name} is not a readable PyTorch file ({type(error).__name__}: "
                            f"{str(error).splitlines()[0] if str(error) else 'no detail'}).") from None
    return _state_in(content, path)


def _is_state(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                              for k, v in value.items())


def _state_in(content: Any, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The state_dict in what ``torch.load`` returned: itself, or under one of ``STATE_KEYS``."""
    if _is_state(content):
        return dict(content), "state_dict"
    if isinstance(content, Mapping):
        for key in STATE_KEYS:
            if _is_state(content.get(key)):
                lightning = key == "state_dict" and ("pytorch-lightning_version" in content
                                                     or path.suffix.lower() == ".ckpt")
                return dict(content[key]), "lightning" if lightning else "checkpoint dict"
    what = ("an empty dict" if isinstance(content, Mapping) and not content
            else f"a dict with keys {', '.join(map(str, list(content)[:6]))}" if isinstance(content, Mapping)
            else f"a {type(content).__name__}")
    raise ImportRefused(f"{path.name} holds {what}, not a state_dict (parameter names → tensors) nor a dict keeping "
                        f"one under {', '.join(STATE_KEYS)}: save model.state_dict() instead.")


def _unwrap(key: str) -> str:
    while key.startswith(WRAPPERS):
        key = key.removeprefix("module.").removeprefix("_orig_mod.")
    return key


def _candidates(state: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """The file's tensors renamed every way a wrapper may have named them: "" (wrappers'
    prefixes stripped) and, for each one- or two-part leading name P, the tensors under P."""
    plain = {_unwrap(k): v for k, v in state.items()}
    prefixes = sorted({".".join(parts[:depth]) + "." for parts in (k.split(".") for k in plain)
                       for depth in (1, 2) if len(parts) > depth})
    out = {"": plain}
    for prefix in prefixes:
        out[prefix] = {_unwrap(k[len(prefix):]): v for k, v in plain.items() if k.startswith(prefix)}
    return out


def _fit(state: Mapping[str, torch.Tensor], shapes: Mapping[str, tuple[int, ...]], label: str,
         path: Path) -> dict[str, torch.Tensor]:
    """``state`` under the architecture's names (``shapes``: name → shape, in its order),
    checked tensor by tensor; refused in one sentence at the first mismatch.

    A BatchNorm's ``num_batches_tracked`` may be absent (some exporters drop it): it is
    set to 0, which eval mode never reads.
    """
    required = {k for k in shapes if not k.endswith("num_batches_tracked")}
    candidates = _candidates(state)
    complete = [p for p, named in candidates.items() if required <= set(named)]
    if "" in complete:
        chosen = ""
    elif len(complete) == 1:
        chosen = complete[0]
    elif complete:
        raise ImportRefused(f"{path.name} holds more than one {label} (under {' and '.join(complete)}): save the "
                            "state_dict of the one to analyse.")
    else:  # report against the reading that matches best
        chosen = max(candidates, key=lambda p: (len(required & set(candidates[p])), p == ""))
    named = candidates[chosen]
    missing = [k for k in shapes if k in required and k not in named]
    unexpected = [k for k in named if k not in shapes]
    reshaped = [k for k in shapes if k in named and tuple(named[k].shape) != shapes[k]]
    if missing or unexpected or reshaped:
        if missing:
            first = f"it lacks {missing[0]}"
        elif unexpected:
            first = f"it has {unexpected[0]}, which {label} has not"
        else:
            first = f"{reshaped[0]} is {tuple(named[reshaped[0]].shape)} there, {shapes[reshaped[0]]} in {label}"
        counts = [f"{len(missing)} of {label}'s {len(shapes)} tensors missing" if missing else "",
                  f"{len(unexpected)} unexpected" if unexpected else "",
                  f"{len(reshaped)} of another shape" if reshaped else ""]
        where = f" (read under {chosen})" if chosen else ""
        raise ImportRefused(f"{path.name} does not fit {label}{where}: {first} "
                            f"({', '.join(c for c in counts if c)}).")
    fitted = {k: named[k] for k in shapes if k in named}
    for key in shapes:
        fitted.setdefault(key, torch.zeros((), dtype=torch.long))  # num_batches_tracked only, by the check above
    return fitted


# ----------------------------------------------------------------------------- settings

def parse_normalisation(value: str | Mapping[str, Sequence[float]] | Sequence[Sequence[float]] | None,
                        dataset: str) -> dict[str, list[float]] | str:
    """The input normalisation the networks expect, as recorded: ``{"mean": [3], "std": [3]}``
    (RGB, applied as ``(x - mean) / std`` to [0, 1] pixels) or "none".

    ``value``: None (the dataset's usual: CIFAR-10's or ImageNet's statistics, which the
    project's own models carry), "cifar10", "imagenet", "none" (the networks take [0, 1]
    pixels or normalise themselves), "M,M,M/S,S,S", a ``{"mean", "std"}`` mapping or a
    (mean, std) pair.
    """
    if value is None:
        value = dataset
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "none":
            return "none"
        if text in NORMALISATIONS:
            mean, std = NORMALISATIONS[text]
        elif "/" in text:
            try:
                mean, std = ([float(v) for v in part.split(",")] for part in text.split("/"))
            except ValueError:
                raise ImportRefused(f"Normalisation {value!r} is not 'M,M,M/S,S,S' (three means, three stds)."
                                    ) from None
        else:
            raise ImportRefused(f"Unknown normalisation {value!r}; valid: {', '.join(NORMALISATIONS)}, none, "
                                "or M,M,M/S,S,S.")
    elif isinstance(value, Mapping):
        if set(value) != {"mean", "std"}:
            raise ImportRefused(f"A normalisation mapping has exactly the keys mean and std, got {sorted(value)}.")
        mean, std = value["mean"], value["std"]
    else:
        mean, std = value
    mean, std = [float(v) for v in mean], [float(v) for v in std]
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ImportRefused(f"A normalisation needs three means and three positive stds (RGB), got mean {mean}, "
                            f"std {std}.")
    return {"mean": mean, "std": std}


def read_lineage(path: str | os.PathLike) -> pd.DataFrame:
    """The lineage CSV: one row per network with a parent or a label — ``net_id``, ``parent``
    ("" for a base), optional ``label`` (free text, e.g. the augmentation it was fine-tuned
    with) and ``file`` (the weight file's name, when its id is not its stem). Strings, stripped;
    ids and parents are plain names (:func:`names.plain_name`: an id names a checkpoint file)."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ImportRefused(f"The lineage {path} is not a readable CSV ({error}).") from None
    table.columns = [str(c).strip() for c in table.columns]
    if "net_id" not in table.columns or set(table.columns) - set(LINEAGE_COLUMNS):
        raise ImportRefused(f"The lineage {path.name} has columns {', '.join(table.columns)}; it takes net_id and "
                            "parent, optionally label and file.")
    table = table.apply(lambda column: column.str.strip())
    for column in LINEAGE_COLUMNS:
        if column not in table.columns:
            table[column] = ""
    if duplicated := sorted(set(table.loc[table["net_id"].duplicated(), "net_id"])):
        raise ImportRefused(f"The lineage {path.name} lists {', '.join(duplicated)} more than once.")
    for row in table.itertuples():
        for value, what in ((row.net_id, "network id"), (row.parent, "parent")):
            if value or what == "network id":  # a base has no parent
                _network_id(value, f"The lineage {path.name}'s {what}", "a network's id names its checkpoint file, "
                                                                         "<id>.safetensors")
    return table[list(LINEAGE_COLUMNS)]


def _sanitised(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.")


@dataclass
class _Network:
    net_id: str
    source: Path
    parent: str | None = None
    label: str = ""


def _networks(files: list[Path], lineage: pd.DataFrame | None, lineage_name: str) -> list[_Network]:
    """One network per file — its id, parent and label — parents before their offspring
    (otherwise in file order)."""
    lineage = lineage if lineage is not None else pd.DataFrame(columns=list(LINEAGE_COLUMNS))
    by_file = {row.file: row.net_id for row in lineage.itertuples() if row.file}
    names = {f.name for f in files}
    if unknown := sorted(set(by_file) - names):
        raise ImportRefused(f"The lineage {lineage_name} names file {unknown[0]}, which is not in the folder.")
    networks, seen = [], {}
    for path in files:
        net_id = by_file.get(path.name) or _sanitised(path.stem)
        _network_id(net_id, f"The network id that {path.name}'s name gives", "give its id in the lineage CSV's "
                                                                          "file column")
        if net_id in seen:
            raise ImportRefused(f"{seen[net_id].name} and {path.name} would both be network {net_id}: rename one, or "
                                "give each its id in the lineage CSV's file column.")
        seen[net_id] = path
        networks.append(_Network(net_id, path))
    rows = {row.net_id: row for row in lineage.itertuples()}
    if unknown := sorted(set(rows) - set(seen)):
        raise ImportRefused(f"The lineage {lineage_name} names {unknown[0]}, which no file is (the ids: "
                            f"{', '.join(sorted(seen)[:8])}{' …' if len(seen) > 8 else ''}).")
    for network in networks:
        if row := rows.get(network.net_id):
            network.parent, network.label = row.parent or None, row.label
            if network.parent is not None and network.parent not in seen:
                raise ImportRefused(f"The lineage {lineage_name} gives {network.net_id} the parent {network.parent}, "
                                    "which no file is.")
    by_id = {n.net_id: n for n in networks}
    ordered = parents_first({n.net_id: n.parent for n in networks})
    if stuck := sorted(set(by_id) - set(ordered)):
        raise ImportRefused(f"The lineage {lineage_name} has a cycle of parents among {', '.join(stuck)}.")
    return [by_id[n] for n in ordered]


def _reference(arch: str, num_classes: int | None) -> tuple[dict[str, tuple[int, ...]], str]:
    """(the architecture's state_dict names → shapes, in order; its classifier's name),
    built on the meta device (no memory, no initialisation cost)."""
    try:
        with torch.device("meta"):
            model = models.build_for_loading(arch, num_classes)
    except ValueError as error:
        raise ImportRefused(str(error)) from None
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linear:
        raise ImportRefused(f"{arch} has no Linear classifier, which the chapters read (its outputs are the classes, "
                            "its input CKA's pooled features): import a model that ends in one.")
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}, linear[-1]


def _population_name(profile: Any) -> str:
    """``profile`` when it may name an imported population (:func:`profiles.profile_name`, and not
    ending in .yaml, which ``run --profile`` would read as a file); else :class:`ImportRefused`."""
    try:
        profile_name(profile)
    except ValueError as refusal:
        raise ImportRefused(str(refusal)) from None
    if profile.endswith(YAML_SUFFIXES):
        raise ImportRefused(f"The profile name {profile!r} ends in {Path(profile).suffix}, so run --profile would "
                            "read it as a file: name the population without .yaml or .yml.")
    return profile


def _destination(profile: str, checkpoint_dir: str | os.PathLike | None) -> Path:
    """The checkpoint folder (made), refused when it holds networks trained by this project.
    The default is the profile's (``profiles.checkpoint_folder``: ``checkpoints/<profile>``);
    the results folder is left for the chapters to make. ``profile``: checked already
    (:func:`_population_name`)."""
    folder = checkpoint_folder(profile, checkpoint_dir or "")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ImportRefused(f"The checkpoint folder {folder} cannot be created ({error.strerror}).") from None
    for sidecar, meta in sidecars(folder):
        if not was_imported(meta):
            raise ImportRefused(f"{folder} holds networks trained by this project ({sidecar.stem} …): import into a "
                                "folder of its own (another profile name, or checkpoint_dir).")
    return folder


def normalisation_phrase(normalisation: Mapping[str, Sequence[float]] | str) -> str:
    """What a recorded normalisation (:func:`parse_normalisation`) does to the inputs, in words:
    "normalised with CIFAR-10's mean and std", "not normalised ([0, 1] pixels)", or the numbers."""
    if normalisation == "none":
        return "not normalised ([0, 1] pixels)"
    mean, std = (tuple(float(v) for v in normalisation[k]) for k in ("mean", "std"))
    for name, title in (("cifar10", "CIFAR-10"), ("imagenet", "ImageNet")):
        if (mean, std) == tuple(tuple(float(v) for v in values) for values in NORMALISATIONS[name]):
            return f"normalised with {title}'s mean and std"
    return f"normalised with mean {', '.join(f'{v:g}' for v in mean)} and std {', '.join(f'{v:g}' for v in std)}"


def origin_sentence(catalog: pd.DataFrame) -> str:
    """Where the catalog's networks come from, in one sentence (the book's introduction):
    imported from which folder, how many, of which architecture, expecting which input
    normalisation and with which lineage — or trained by chapters 1–2 (a catalog without a
    ``source`` column)."""
    n = len(catalog)
    children = int(sum(isinstance(p, str) and bool(p) for p in catalog["parent"]))
    family = f"{n - children} base network{'s' * (n - children != 1)} and {children} offspring"
    files = sources(catalog)
    if not files:
        return f"The {n} networks analysed here were trained by chapters 1 and 2 of this run ({family})."
    folders = sorted({str(Path(s).parent) for s in files})
    where = folders[0] if len(folders) == 1 else f"{len(folders)} folders ({', '.join(folders)})"
    lineage = (f"{family}, by the lineage given with them" if children else
               f"{'all' if n > 1 else 'it'} base network{'s' * (n != 1)} (no lineage was given)")
    archs = " and ".join(dict.fromkeys(catalog["arch"].astype(str)))
    inputs = " or ".join(dict.fromkeys(normalisation_phrase(json.loads(c)["normalisation"]) for c in catalog["config"]))
    return (f"The {n} {archs} networks analysed here were imported from {where} ({len(files)} weight "
            f"file{'s' * (len(files) != 1)}; {lineage}; inputs {inputs}): they were trained elsewhere, "
            "not by chapters 1 and 2.")


# ----------------------------------------------------------------------------- the import

@dataclass
class ImportResult:
    """What an import did: the catalog written, the profile, which networks were written
    anew and which were left as they were, and notes (one sentence each)."""

    catalog: pd.DataFrame
    checkpoint_dir: Path
    profile: Path
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    command: str = ""

    def __str__(self) -> str:
        lines = [f"{'imported ' if row.net_id in self.written else 'unchanged'} {row.net_id}  ← "
                 f"{Path(row.source).name}" + (f"  (parent {row.parent})" if isinstance(row.parent, str) else "")
                 for row in self.catalog.itertuples()]
        config = json.loads(self.catalog["config"].iloc[0])
        lines.append(f"{len(self.catalog)} networks ({config['arch']}, {config['num_classes']} classes, "
                     f"{config['dataset']}): {catalog_path(self.checkpoint_dir)}")
        lines.append(f"profile: {self.profile}")
        lines += [f"note: {note}" for note in self.notes]
        lines.append(f"next: {self.command}")
        return "\n".join(lines)


def _display(path: Path) -> str:
    """``path`` relative to the working folder when inside it (a command to copy), else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def _write_profile(path: Path, values: dict[str, Any], drop: Sequence[str], source: Path, chapters: str) -> None:
    """``path`` (a profile.yaml) with ``values`` (the keys the import owns) over whatever the user
    added to an earlier one (``drop``: owned keys that no longer apply); unchanged → untouched.
    ``chapters``: the run's ``--from``/``--to`` options, for its header."""
    kept = {}
    if path.exists():
        try:
            kept = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            kept = {}
        kept = kept if isinstance(kept, dict) else {}
    # the file's own order first, so that an unchanged import rewrites nothing
    merged = {k: values.get(k, v) for k, v in kept.items() if k in values or k not in drop}
    merged.update({k: v for k, v in values.items() if k not in merged})
    text = (f"# Written by `python -m paradox_utils import` for the networks of {source}. Analyse them with\n"
            f"#   python -m paradox_utils run --profile {path.resolve()} {chapters}\n"
            "# (from chapter 3: chapters 1–2 train a population, so they refuse one that was imported).\n"
            "# Keys added here (eval_per_class, subset, ...) are kept by a later import.\n"
            + yaml.safe_dump(merged, sort_keys=False, allow_unicode=True))
    if not path.exists() or path.read_text() != text:
        with atomic_path(path) as tmp:
            tmp.write_text(text)


def import_population(folder: str | os.PathLike, arch: str, profile: str, lineage: str | os.PathLike | None = None,
                      *, checkpoint_dir: str | os.PathLike | None = None, results_dir: str | os.PathLike | None = None,
                      normalisation: Any = None, dataset: str | None = None,
                      num_classes: int | None = None) -> ImportResult:
    """Import every weight file directly in ``folder`` as networks of ``arch`` (see the module).

    ``profile``: the population's name; its checkpoints go to ``checkpoint_dir`` (default
    ``checkpoints/<profile>``), its results to ``results_dir`` (default
    ``data/results/<profile>``), and both are written into ``<checkpoint_dir>/profile.yaml``.
    ``lineage``: the CSV of :func:`read_lineage`. ``normalisation``: see
    :func:`parse_normalisation`. ``dataset``: "cifar10" or "imagenet", the set chapters 3–6
    evaluate on (default: by the networks' outputs, 10 or 1000). ``num_classes``: default
    the first network's classifier's outputs.

    Every file is checked before it is written; a refusal (:class:`ImportRefused`) leaves
    the catalog as it was. Returns an :class:`ImportResult`.
    """
    from . import permutations

    profile = _population_name(profile)  # before anything is read or made
    folder = Path(folder)
    if not folder.is_dir():
        raise ImportRefused(f"{folder} is not a folder of weight files.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES)
    if not files:
        raise ImportRefused(f"{folder} holds no {', '.join('*' + s for s in WEIGHT_SUFFIXES)} file.")
    if dataset is not None and dataset not in DATASET_CLASSES:
        raise ImportRefused(f"Unknown dataset {dataset!r}; the chapters evaluate on {' or '.join(DATASET_CLASSES)}.")
    table = read_lineage(lineage) if lineage is not None else None
    networks = _networks(files, table, Path(lineage).name if lineage is not None else "")
    shapes, head = _reference(arch, num_classes)  # refuses an unknown arch before any file is read
    if num_classes is None:
        first = _candidates(read_weights(networks[0].source)[0])
        found = [named[f"{head}.weight"] for named in first.values() if f"{head}.weight" in named]
        num_classes = int(found[0].shape[0]) if found and found[0].ndim == 2 else None
        shapes, head = _reference(arch, num_classes)
    num_classes = shapes[f"{head}.weight"][0]
    if dataset is None:
        dataset = next((d for d, n in DATASET_CLASSES.items() if n == num_classes), None)
        if dataset is None:
            raise ImportRefused(f"These {arch} networks have {num_classes} outputs; the chapters evaluate on cifar10 "
                                "(10 classes) or imagenet (1000), so the networks must classify one of them.")
    elif num_classes != DATASET_CLASSES[dataset]:
        raise ImportRefused(f"These {arch} networks have {num_classes} outputs, but {dataset} has "
                            f"{DATASET_CLASSES[dataset]} classes: they cannot be evaluated on it.")
    normalisation = parse_normalisation(normalisation, dataset)
    destination = _destination(profile, checkpoint_dir)
    config = {"arch": arch, "dataset": dataset, "num_classes": num_classes, "normalisation": normalisation}
    model = None  # built once, at the first file that must be written
    written, unchanged, shas = [], [], {}
    for network in networks:
        target = destination / f"{network.net_id}.safetensors"
        source_sha = checkpoints.sha256_file(network.source)
        wanted = {"net_id": network.net_id, "arch": arch, "num_classes": num_classes, "normalisation": normalisation,
                  "config": {**config, "source_sha256": source_sha}, "kind": "finetune" if network.parent else "base",
                  "parent": network.parent, "parent_sha256": shas.get(network.parent),
                  "labels": {"label": network.label} if network.label else {},
                  "source": str(network.source.resolve()), "source_sha256": source_sha}
        try:
            before = checkpoints.load_metadata(target)
        except checkpoints.CheckpointError:
            before = {}
        if all(before.get(k) == v for k, v in wanted.items()) and checkpoints.verify(target) is None:
            unchanged.append(network.net_id)
            shas[network.net_id] = before["sha256"]
            continue
        state, kind = read_weights(network.source)
        fitted = _fit(state, shapes, arch, network.source)
        if model is None:
            model = models.build_for_loading(arch, num_classes, normalisation)
        try:
            model.load_state_dict(fitted, strict=True)
        except RuntimeError as error:  # a dtype torch cannot copy into the parameters, say
            raise ImportRefused(f"{network.source.name} does not load into {arch} "
                                f"({str(error).splitlines()[0]}).") from None
        if (name := checkpoints.first_nonfinite(model.state_dict())) is not None:  # float64 beyond float32's range
            raise ImportRefused(f"{network.source.name}: {name} holds values beyond float32's range, which become "
                                f"±inf in {arch}: these weights cannot be analysed; re-export them in float32.")
        meta = checkpoints.save(target, model, arch, num_classes, status="done", source_format=kind,
                                **{k: v for k, v in wanted.items() if k not in ("arch", "num_classes")})
        written.append(network.net_id)
        shas[network.net_id] = meta["sha256"]
    ids = [n.net_id for n in networks]
    catalog = imported_catalog(destination, ids)
    old = None
    if catalog_path(destination).exists():
        try:
            old = pd.read_parquet(catalog_path(destination))
        except Exception:  # an unreadable catalog is simply rewritten
            old = None
    if old is None or not old.equals(catalog):
        write_catalog(catalog, destination)
    notes = []
    if left := sorted(set(imported_catalog(destination)["net_id"]) - set(ids)):
        notes.append(f"{', '.join(left)} {'was' if len(left) == 1 else 'were'} imported here before from files no "
                     "longer in the folder: left out of the catalog (their checkpoints stay).")
    values: dict[str, Any] = {"profile": profile, "arch": arch, "dataset": dataset,
                              "checkpoint_dir": str(destination.resolve())}
    if results_dir:
        values["results_dir"] = str(Path(results_dir).resolve())
    drop = ["similarity_methods", "results_dir"]
    coupled = arch in permutations.SPECS
    if not coupled:
        values["similarity_methods"] = ["paper", "hungarian"]
        notes.append(f"The coupled alignment and the transplant (chapter 6) need a channel-permutation spec, which "
                     f"exists for {', '.join(permutations.SPECS)} only: the profile leaves coupled out, and chapter 6 "
                     f"would refuse {arch}.")
    if arch not in models.PAPER_ACCURACY:
        notes.append(f"The paper studied {', '.join(models.PAPER_ACCURACY)} only: the chapters analyse {arch} "
                     "networks as any others, but their regime box says there is no paper accuracy to place them "
                     "against.")
    has_child = any(n.parent for n in networks)
    if coupled and not has_child:
        notes.append("No network has a parent (no lineage was given): the transplant (chapter 6) needs a parent "
                     "and its fine-tuned child, so the chapters to run are 3–5.")
    chapters = "--from 03_evaluate" + ("" if coupled and has_child else " --to 05_paradox")
    path = destination / PROFILE_FILE
    _write_profile(path, values, drop, folder.resolve(), chapters)
    command = f"python -m paradox_utils run --profile {_display(path)} {chapters}"
    return ImportResult(catalog, destination, path, written, unchanged, notes, command)
