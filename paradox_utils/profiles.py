"""Profiles: a profile's YAML → every chapter parameter, validated; where its files live.

A profile (``notebooks/profiles/NAME.yaml``, a YAML path, or the ``profile.yaml`` an import
wrote) sets chapter parameters; ``extends: <profile>`` inherits another's. Every value is
checked against the type of the chapter parameter it sets, in one sentence, before anything
runs. :func:`chapter_paths` is where a profile's checkpoints and result tables live: the
chapters' only channel to each other.
"""

from __future__ import annotations

import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Any

import yaml

__all__ = ["CHAPTERS", "ROOT", "TRAINING_CHAPTERS", "chapter_defaults", "chapter_parameters", "chapter_paths",
           "check_values", "checkpoint_folder", "inspect_chapter", "kind_name", "load_profile", "merged_defaults",
           "profile_path", "profile_values", "same_kind", "shipped_profiles"]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PROFILES = NOTEBOOKS / "profiles"  # the shipped profiles, one YAML each
CHAPTERS = ("01_train", "02_finetune", "03_evaluate", "04_similarity", "05_paradox", "06_transplant")
TRAINING_CHAPTERS = CHAPTERS[:2]  # they make the population; an imported one has its own


def shipped_profiles() -> list[str]:
    """The names of the profiles that come with the project (``notebooks/profiles/*.yaml``), sorted."""
    return sorted(p.stem for p in PROFILES.glob("*.yaml"))


def profile_path(profile: str) -> Path:
    """A profile's YAML: a path as given, else ``notebooks/profiles/NAME.yaml``, else the
    ``profile.yaml`` an import wrote into ``checkpoints/NAME/``."""
    path = Path(profile)
    if path.suffix in {".yaml", ".yml"}:
        return path
    shipped = PROFILES / f"{profile}.yaml"
    imported = checkpoint_folder(profile) / "profile.yaml"  # where an import writes it
    return imported if not shipped.exists() and imported.exists() else shipped


def merged_defaults(declared: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every chapter parameter's default in one mapping (a name declared by several chapters
    has one default: the chapters agree, a test checks it)."""
    return {k: v for params in declared.values() for k, v in params.items()}


def chapter_parameters() -> dict[str, dict[str, Any]]:
    """Each chapter's declared parameters (name → default), read from its parameters cell."""
    return {chapter: chapter_defaults(chapter) for chapter in CHAPTERS}


def inspect_chapter(chapter: str) -> dict[str, dict[str, str]]:
    """papermill's view of a chapter's parameters cell, as ``papermill --help-notebook``
    shows it: name → {name, inferred_type_name, default, help} (all text)."""
    import jupytext
    import papermill

    with tempfile.TemporaryDirectory() as scratch:  # nothing is written into the repository
        tmp = Path(scratch) / f"{chapter}.ipynb"
        jupytext.write(jupytext.read(NOTEBOOKS / f"{chapter}.py"), tmp)
        return papermill.inspect_notebook(str(tmp))


def chapter_defaults(chapter: str) -> dict[str, Any]:
    """One chapter's parameters (name → default value) as its parameters cell declares them."""
    return {k: _literal(v["default"]) for k, v in inspect_chapter(chapter).items()}


def _literal(text: str) -> Any:
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list",
               dict: "a mapping"}


def _is_type(expected: Any) -> bool:
    """Whether ``expected`` is a type (``int``, ``int | None``, ``dict[str, Any]``), not a default value."""
    return isinstance(expected, type) or typing.get_origin(expected) is not None


def _optional(expected: Any) -> bool:
    """Whether the type ``expected`` is ``X | None``."""
    return (typing.get_origin(expected) in (types.UnionType, typing.Union)
            and type(None) in typing.get_args(expected))


def _plain(expected: Any) -> type:
    """The class a type asks for: ``X`` of ``X | None``, ``dict`` of ``dict[str, Any]``."""
    if typing.get_origin(expected) in (types.UnionType, typing.Union):
        (expected,) = [a for a in typing.get_args(expected) if a is not type(None)]
    return typing.get_origin(expected) or expected


def same_kind(expected: Any, value: Any) -> bool:
    """Whether ``value`` may stand where ``expected`` is wanted: an int takes no float (``2.0``
    is refused: it hides a typo, which YAML and papermill pass through) and no bool, a float
    takes ints, a bool only a bool, anything else an instance of its class.

    ``expected``: a type (a ``TrainConfig`` annotation: ``int``, ``int | None``,
    ``dict[str, Any]``; None stands only for ``X | None``) or a default value (a chapter
    parameter's: its class is wanted, None stands beside any, and a default None takes anything).
    """
    if not _is_type(expected):
        if expected is None or value is None:
            return True
        expected = type(expected)
    elif value is None:
        return _optional(expected)
    kind = _plain(expected)
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def kind_name(expected: Any) -> str:
    """What ``expected`` (as in :func:`same_kind`) asks for, in words: "an integer", "a string or
    null" (``str | None``), …; another class by its name."""
    kind = _plain(expected) if _is_type(expected) else type(expected)
    name = _KIND_NAMES.get(kind, kind.__name__)
    return f"{name} or null" if _is_type(expected) and _optional(expected) else name


def _profile_values(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A profile file's mapping, with ``extends: <profile>`` resolved: the named profile's
    values (its ``profile`` name aside), then this file's on top, key by key."""
    if not path.exists():
        raise ValueError(f"Profile {path.stem!r} not found ({path}); known profiles: "
                         f"{', '.join(shipped_profiles())}.")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"Profile {path} is not valid YAML ({error}).") from error
    if not isinstance(values, dict):
        raise ValueError(f"Profile {path} must be a mapping of parameter names to values.")
    if (base := values.pop("extends", None)) is None:
        return values
    base_path = profile_path(str(base)) if Path(str(base)).suffix else path.parent / f"{base}.yaml"
    if base_path.resolve() in seen or base_path.resolve() == path.resolve():
        raise ValueError(f"Profile {path.name} extends itself (through {base_path.name}).")
    inherited = _profile_values(base_path, (*seen, path.resolve()))
    inherited.pop("profile", None)
    return {**inherited, **values}


def load_profile(profile: str, declared: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The profile's parameters, validated against the chapters' parameters cells.

    Raises ValueError (one sentence) for a missing file, unknown keys, wrong types or
    a data path that does not exist — before anything runs.
    """
    path = profile_path(profile)
    values = _profile_values(path)
    declared = declared or chapter_parameters()
    defaults = merged_defaults(declared)
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise ValueError(f"Profile {path.name} has unknown keys {unknown}; "
                         f"the chapters take: {', '.join(sorted(defaults))}.")
    check_values(values, defaults, f"Profile {path.name}")
    dataset = values.get("dataset", defaults.get("dataset"))
    env = "PARADOX_IMAGENET" if dataset == "imagenet" else "PARADOX_CIFAR10"
    if os.environ.get(env) and not Path(os.environ[env]).exists():
        raise ValueError(f"{env} points at {os.environ[env]}, which does not exist.")
    if dataset == "imagenet" and not os.environ.get(env):
        raise ValueError("The imagenet profile needs PARADOX_IMAGENET: a folder holding train/ and val/ class folders.")
    values.setdefault("profile", path.stem)
    return values


def profile_values(profile: str, parameters: dict[str, Any] | None = None,
                   declared: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every chapter parameter for ``profile``: the chapters' defaults, then the profile's
    values, then ``parameters`` (overrides), each validated against its default's type."""
    declared = declared or chapter_parameters()
    defaults = merged_defaults(declared)
    values = load_profile(profile, declared)
    overrides = dict(parameters or {})
    if unknown := sorted(set(overrides) - set(defaults)):
        raise ValueError(f"Unknown parameter {', '.join(unknown)}; the chapters take: {', '.join(sorted(defaults))}.")
    check_values(overrides, defaults, "Parameter override")
    return {**defaults, **values, **overrides}


def check_values(values: dict[str, Any], defaults: dict[str, Any], source: str) -> None:
    """One sentence for a value whose type is not its parameter's (``source`` names where it came from)."""
    for key, value in values.items():
        if not same_kind(defaults[key], value):
            raise ValueError(f"{source}: {key} should be {kind_name(defaults[key])}, "
                             f"got {value!r} ({type(value).__name__}).")


def checkpoint_folder(profile: str, checkpoint_dir: str = "") -> Path:
    """A profile's checkpoint folder (not made): ``checkpoint_dir``, else ``checkpoints/<profile>``."""
    return Path(checkpoint_dir) if checkpoint_dir else ROOT / "checkpoints" / profile


def chapter_paths(profile: str, checkpoint_dir: str = "", results_dir: str = "") -> dict[str, Path]:
    """Where a profile's artifacts live (the chapters' only channel to each other)."""
    checkpoints = checkpoint_folder(profile, checkpoint_dir)
    results = Path(results_dir) if results_dir else ROOT / "data" / "results" / profile
    for folder in (checkpoints, results):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"The output folder {folder} cannot be created ({error.strerror}).") from None
    return {
        "checkpoints": checkpoints, "results": results, "catalog": checkpoints / "catalog.parquet",
        "accuracy": results / "accuracy.parquet", "similarity_cache": results / "similarity_cache.parquet",
        "similarity": results / "similarity.parquet", "layers": results / "layer_similarity.parquet",
        "profiles": results / "layer_profiles.parquet", "chance": results / "chance.parquet",
        "pairs": results / "pairs.parquet", "statistics": results / "paradox_statistics.parquet",
        "kappa": results / "kappa.parquet", "nulls": results / "similarity_nulls.parquet",
        "transplant": results / "transplant.parquet", "sweep": results / "transplant_sweep.parquet",
    }
