"""Profiles: a profile's YAML → every chapter parameter, validated; where its files live.

A profile (``notebooks/profiles/NAME.yaml``, a YAML path, or the ``profile.yaml`` an import
wrote) sets chapter parameters; ``extends: <profile>`` inherits another's, found beside the
extending file or among the shipped profiles. Every value is checked against the type of the
chapter parameter it sets and, for numbers, against its range (:data:`RANGES`), in one sentence
naming the parameter, before anything runs (:func:`check_values`: a profile's values, ``-p``
overrides and a chapter's own parameters alike). A profile's name is a plain name
(:func:`profile_name`): :func:`chapter_paths` joins it to ``checkpoints/`` and ``data/results/``,
where a profile's checkpoints and result tables live, the chapters' only channel to each other.
"""

from __future__ import annotations

import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from .names import MANIPULATIONS, plain_name

__all__ = ["CHAPTERS", "RANGES", "ROOT", "TRAINING_CHAPTERS", "YAML_SUFFIXES", "chapter_defaults",
           "chapter_parameters", "chapter_paths", "check_values", "checkpoint_folder", "inspect_chapter", "kind_name",
           "load_profile", "merged_defaults", "profile_name", "profile_path", "profile_values", "same_kind",
           "shipped_profiles", "yaml_problem"]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PROFILES = NOTEBOOKS / "profiles"  # the shipped profiles, one YAML each
CHAPTERS = ("01_train", "02_finetune", "03_evaluate", "04_similarity", "05_paradox", "06_transplant")
TRAINING_CHAPTERS = CHAPTERS[:2]  # they make the population; an imported one has its own
YAML_SUFFIXES = (".yaml", ".yml")  # a --profile, or an extends:, ending so is a file, else a profile's name

# The range of every integer and number parameter of the chapters, checked with its type (check_values) before
# any work: parameter → (least, most), None where unbounded. A count's least is 1 unless its help comment gives 0
# a meaning (then 0, or the 0 stands apart: ZERO_MEANS).
RANGES: dict[str, tuple[float | None, float | None]] = {
    "workers": (0, None),  # 0: one per available core
    "group_size": (1, None),
    "base_sample": (1, None),
    "base_replicates": (1, None),
    "finetune_parents": (0, None),  # 0: no offspring
    "finetune_per_parent": (0, None),  # 0: every augmentation
    "finetune_total": (0, None),  # 0: finetune_per_parent for each parent
    "finetune_seed": (0, None),
    "eval_per_class": (1, None),
    "eval_batch_size": (1, None),
    "noise_seed": (0, None),
    "image_resamples": (1, None),
    "statistics_seed": (0, None),  # numpy's generators take no negative seed
    "subset": (0, None),  # 0: every network
    "cka_probe_images": (2, None),  # CKA centres the images' features: one image leaves nothing
    "chance_networks": (15, None),  # 15 networks make 105 pairs, the fewest for a 99th percentile (nulls)
    "null_permutations": (1, None),
    "mantel_permutations": (1, None),
    "bootstrap_resamples": (1, None),
    "transplant_eval_per_class": (1, None),
    "bn_recalibration_images": (0, None),  # 0: none
    "similar_threshold": (0.0, 1.0),  # float bounds: the parameter takes a number, integer bounds an integer
    "compatible_threshold": (0.0, 1.0),
}
ZERO_MEANS = {"chance_networks": "the measure's default"}  # a 0 that stands apart from its parameter's range
# Parameters of RANGES that take null, and what it means there (elsewhere a count given null is refused).
NULL_MEANS = {"base_sample": "every combination", "eval_per_class": "every test image",
              "transplant_eval_per_class": "every test image"}
AUGMENTATIONS = (*MANIPULATIONS, "all", None)  # what an offspring may be fine-tuned with (None: no augmentation)
# Parameters that name networks, whose ids name checkpoint files: parameter → the ids in its value.
NETWORK_IDS = {"base_overrides": lambda value: list(value), "retrain": lambda value: [r for r in value if r != "stale"],
               "transplant_parent": lambda value: [value] if value else [],
               "transplant_child": lambda value: [value] if value else []}


def shipped_profiles() -> list[str]:
    """The names of the profiles that come with the project (``notebooks/profiles/*.yaml``), sorted."""
    return sorted(p.stem for p in PROFILES.glob("*.yaml"))


def profile_name(name: Any, why: str = "") -> str:
    """``name`` when it may name a profile's folders, ``checkpoints/<name>`` and ``data/results/<name>``:
    a plain name (:func:`names.plain_name`). Else ValueError in one sentence, ending with ``why``
    when given (where the name came from, what to do)."""
    return plain_name(name, "The profile name", why or "it names the profile's folders checkpoints/<name> and "
                      "data/results/<name> (to write elsewhere, set checkpoint_dir and results_dir)")


def profile_path(profile: str) -> Path:
    """A profile's YAML: a path as given (ending in .yaml or .yml), else for a profile's name
    (:func:`profile_name`; ValueError for one that is not plain) ``notebooks/profiles/NAME.yaml``,
    else the ``profile.yaml`` an import wrote into ``checkpoints/NAME/``."""
    if isinstance(profile, str) and profile.endswith(YAML_SUFFIXES) and "\0" not in profile:
        return Path(profile)
    profile = profile_name(profile, "it names one of the shipped profiles, or an imported population's folder "
                                    "checkpoints/<name>; give a profile kept elsewhere as a path ending in .yaml")
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


def yaml_problem(error: yaml.YAMLError) -> str:
    """What a YAML parser found wrong, on one line (its own message spans several): the problem
    and where it is, line and column counted from 1."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or " ".join(str(error).split())
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def _profile_values(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A profile file's mapping, with ``extends: <profile>`` resolved (:func:`_extended`): the
    named profile's values (its ``profile`` name aside), then this file's on top, key by key."""
    if not path.is_file():
        raise ValueError(f"Profile {path.stem!r} not found ({_shown(path)}); known profiles: "
                         f"{', '.join(shipped_profiles())}.")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"Profile {_shown(path)} is not valid YAML ({yaml_problem(error)}).") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"Profile {_shown(path)} cannot be read ({error}).") from None
    if not isinstance(values, dict):
        raise ValueError(f"Profile {_shown(path)} must be a mapping of parameter names to values.")
    if (base := values.pop("extends", None)) is None:
        return values
    base_path = _extended(base, path)
    if base_path.resolve() in seen or base_path.resolve() == path.resolve():
        raise ValueError(f"Profile {path.name} extends itself (through {base_path.name}).")
    inherited = _profile_values(base_path, (*seen, path.resolve()))
    inherited.pop("profile", None)
    return {**inherited, **values}


def _extended(base: Any, path: Path) -> Path:
    """The file of the profile ``base`` that the profile file ``path`` extends: a YAML path or a
    profile's name (``NAME.yaml``), looked for beside ``path`` first, then among the shipped profiles.
    Raises ValueError (one sentence, saying where it looked) when it is in neither."""
    if isinstance(base, str) and base.endswith(YAML_SUFFIXES) and "\0" not in base:
        file = base
    else:
        file = plain_name(base, f"Profile {path.name}'s extends", "it takes a profile's name or a YAML path") + ".yaml"
    looked = list(dict.fromkeys([path.parent / file, PROFILES / file]))  # an absolute path is both
    if found := next((candidate for candidate in looked if candidate.is_file()), None):
        return found
    raise ValueError(f"Profile {Path(file).stem!r} (extended by {_shown(path)}) not found: looked for "
                     f"{' and '.join(map(_shown, looked))}.")


def _shown(path: Path) -> str:
    """``path`` as a message shows it: relative to the repository when inside it (notebooks/profiles/…),
    quoted (repr) when it holds a character a line cannot show (a newline)."""
    path = path.absolute()
    text = str(path.relative_to(NOTEBOOKS.parent)) if NOTEBOOKS.parent in path.parents else str(path)
    return text if text.isprintable() else repr(text)


def load_profile(profile: str, declared: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The profile's parameters, validated against the chapters' parameters cells.

    Raises ValueError (one sentence) for a missing file, a profile name that is not plain
    (:func:`profile_name`), unknown keys, wrong types, values out of range (:func:`check_values`)
    or a data path that does not exist — before anything runs.
    """
    path = profile_path(profile)
    values = _profile_values(path)
    declared = declared or chapter_parameters()
    defaults = merged_defaults(declared)
    unknown = sorted(set(values) - set(defaults), key=str)
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
    if "profile" in values:
        profile_name(values["profile"])
    else:
        values["profile"] = profile_name(path.stem, f"{path.name} sets no profile: its file's name names the "
                                                    "profile's folders checkpoints/<name> and data/results/<name>, "
                                                    "so rename the file or set profile: <name> in it")
    return values


def profile_values(profile: str, parameters: dict[str, Any] | None = None,
                   declared: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every chapter parameter for ``profile``: the chapters' defaults, then the profile's
    values, then ``parameters`` (overrides), each validated against its default's type and
    range (:func:`check_values`); a ``profile`` among them must be a plain name (:func:`profile_name`)."""
    declared = declared or chapter_parameters()
    defaults = merged_defaults(declared)
    values = load_profile(profile, declared)
    overrides = dict(parameters or {})
    if unknown := sorted(str(k) if str(k).isprintable() else repr(k) for k in set(overrides) - set(defaults)):
        raise ValueError(f"Unknown parameter {', '.join(unknown)}; the chapters take: {', '.join(sorted(defaults))}.")
    check_values(overrides, defaults, "Parameter override")
    if "profile" in overrides:
        profile_name(overrides["profile"])
    return {**defaults, **values, **overrides}


def check_values(values: dict[str, Any], defaults: dict[str, Any], source: str) -> None:
    """One sentence (``source`` names where the values came from) for a value whose type is not its
    parameter's, a number out of its range (:data:`RANGES`), an augmentation that is no manipulation
    (``finetune_manipulations``), or a network id that is not a plain name (:data:`NETWORK_IDS`). A
    number may be null only where null means something (:data:`NULL_MEANS`)."""
    for key, value in values.items():
        if not same_kind(defaults[key], value):
            raise ValueError(f"{source}: {key} should be {kind_name(defaults[key])}, "
                             f"got {value!r} ({type(value).__name__}).")
        if key in RANGES and not (value is None and key in NULL_MEANS):
            if problem := _out_of_range(key, value):
                raise ValueError(f"{source}: {problem}")
        if key == "finetune_manipulations" and value is not None:
            if unknown := [m for m in value if not (m is None or isinstance(m, str)) or m not in AUGMENTATIONS]:
                raise ValueError(f"{source}: finetune_manipulations holds {unknown[0]!r}, which is not a manipulation "
                                 f"({', '.join(MANIPULATIONS)}, all, or null for none).")
        if key in NETWORK_IDS and value is not None:
            owner = f"{key}'" if key.endswith("s") else f"{key}'s"
            for net_id in NETWORK_IDS[key](value):
                plain_name(net_id, f"{source}: {owner} network id",
                           "a network's id names its checkpoint file, <id>.safetensors")


def _out_of_range(key: str, value: Any) -> str:
    """What is wrong with ``value`` for parameter ``key`` of :data:`RANGES` ("" when nothing)."""
    least, most = RANGES[key]
    kind = float if isinstance(least, float) or isinstance(most, float) else int
    if value is not None and not same_kind(kind, value):  # base_sample: its default, None, says no type
        return f"{key} should be {kind_name(kind)}, got {value!r} ({type(value).__name__})."
    if value is not None and (least is None or value >= least) and (most is None or value <= most):
        return ""
    if key in ZERO_MEANS and value == 0:
        return ""
    if most is None:
        zero = f"0 ({ZERO_MEANS[key]}) or " if key in ZERO_MEANS else ""
        return f"{key} should be {zero}at least {least:g}, got {value!r}."
    return f"{key} should be between {least:g} and {most:g}, got {value!r}."


def checkpoint_folder(profile: str, checkpoint_dir: str = "") -> Path:
    """A profile's checkpoint folder (not made): ``checkpoint_dir``, else ``checkpoints/<profile>``
    (ValueError, one sentence, for a profile name that is not plain: :func:`profile_name`)."""
    return Path(checkpoint_dir) if checkpoint_dir else ROOT / "checkpoints" / profile_name(profile)


def chapter_paths(profile: str, checkpoint_dir: str = "", results_dir: str = "") -> dict[str, Path]:
    """Where a profile's artifacts live (the chapters' only channel to each other), the two folders
    made: ``checkpoint_dir`` and ``results_dir`` when given, else ``checkpoints/<profile>`` and
    ``data/results/<profile>`` (ValueError, one sentence, for a profile name that is not plain)."""
    checkpoints = checkpoint_folder(profile, checkpoint_dir)
    results = Path(results_dir) if results_dir else ROOT / "data" / "results" / profile_name(profile)
    for folder in (checkpoints, results):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (OSError, ValueError) as error:  # ValueError: a NUL byte in a given folder
            raise ValueError(f"The output folder {folder} cannot be created "
                             f"({getattr(error, 'strerror', None) or error}).") from None
    return {
        "checkpoints": checkpoints, "results": results, "catalog": checkpoints / "catalog.parquet",
        "accuracy": results / "accuracy.parquet", "similarity_cache": results / "similarity_cache.parquet",
        "similarity": results / "similarity.parquet", "layers": results / "layer_similarity.parquet",
        "profiles": results / "layer_profiles.parquet", "chance": results / "chance.parquet",
        "pairs": results / "pairs.parquet", "statistics": results / "paradox_statistics.parquet",
        "references": results / "references.parquet", "counts": results / "paradox_counts.parquet",
        "grounding": results / "grounding.parquet", "cka_distorted": results / "cka_distorted.parquet",
        "cka_layers": results / "cka_layers.parquet",
        "kappa": results / "kappa.parquet", "nulls": results / "similarity_nulls.parquet",
        "transplant": results / "transplant.parquet", "sweep": results / "transplant_sweep.parquet",
    }
