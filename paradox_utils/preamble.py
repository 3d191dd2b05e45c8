"""The chapter preamble: one call opens a chapter, one helper glues its texts for the book.

``ch = open_chapter("05_paradox", globals(), reads=("accuracy", "nulls"))`` sets the
profile's values in the chapter's namespace, makes its folders, configures threads, seeds and
the plot theme, picks the device, and loads the finished networks with their lineage and the
tables of earlier chapters the chapter reads. The book's pages paste what chapters glue
(``{glue:text}``); :func:`glue_texts` and :func:`glue_regime` are the chapters' only glue calls.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from . import plots, regime, report, runtime
from .catalog import holds_imported_networks, parents_of
from .profiles import (
    TRAINING_CHAPTERS,
    chapter_defaults,
    chapter_parameters,
    chapter_paths,
    check_values,
    checkpoint_folder,
    load_profile,
)

__all__ = ["RESOLVED_PROFILE", "TABLES", "Chapter", "check_training_applies", "glue_regime", "glue_texts",
           "open_chapter", "profile_parameters"]

# Set by ``pipeline.run`` for the kernels it starts, to the profile whose every resolved value it
# passes as the chapter's parameters: a chapter whose ``profile`` equals it loads nothing itself.
RESOLVED_PROFILE = "PARADOX_RESOLVED_PROFILE"

# The tables a chapter may read from earlier ones: name → its reader (folders, finished networks → table).
TABLES: dict[str, Callable[[dict[str, Path], pd.DataFrame], Any]] = {
    "accuracy": lambda paths, catalog: report.read_result(paths["accuracy"], catalog, "The accuracy table",
                                                          "chapter 3 (03_evaluate)"),
    "correctness": lambda paths, catalog: report.read_correctness(paths["accuracy"], catalog),
    "similarities": lambda paths, catalog: report.load_matrices(paths["similarity"], catalog),
    "layers": lambda paths, catalog: report.read_result(paths["layers"], catalog, "The per-layer similarity",
                                                        "chapter 4 (04_similarity)"),
    "nulls": lambda paths, catalog: report.load_nulls(paths["nulls"]),
    "cka_distorted": lambda paths, catalog: report.load_matrices(paths["cka_distorted"], catalog),
    "cka_layers": lambda paths, catalog: report.load_matrices(paths["cka_layers"], catalog),
    "pairs": lambda paths, catalog: report.read_result(paths["pairs"], catalog, "The pair table",
                                                       "chapter 5 (05_paradox)"),
}


@dataclass(frozen=True)
class Chapter:
    """What a chapter works with once opened.

    ``paths``: :func:`profiles.chapter_paths`' folders and files; ``settings``: the runtime's
    (threads, seeds); ``device``: the torch device its ``device`` parameter picks (None when it
    has none); ``catalog``: the finished networks, one row each, parents first (None in chapters
    1–2, which make them); ``parents``: net_id → parent id or None; ``shown``: the networks the
    overview figures draw (its ``subset`` parameter; None without one); ``tables``: the tables
    ``reads`` named, in that order.
    """

    name: str
    paths: dict[str, Path]
    settings: dict[str, Any]
    device: torch.device | None = None
    catalog: pd.DataFrame | None = None
    parents: dict[str, str | None] | None = None
    shown: list[str] | None = None
    tables: tuple = field(default=())


def open_chapter(chapter: str, namespace: MutableMapping[str, Any], reads: Sequence[str] = ()) -> Chapter:
    """Open ``chapter``: its profile's values go into ``namespace`` (the chapter's
    ``globals()``, see :func:`profile_parameters`), then its folders, runtime, plot theme,
    device, finished networks and the earlier chapters' ``reads`` (names of :data:`TABLES`).
    Raises ValueError (one sentence) for a bad profile or value, chapters 1–2 on an imported
    population, or a table that is missing or was made from other networks."""
    if unknown := [name for name in reads if name not in TABLES]:
        raise ValueError(f"Unknown table {', '.join(unknown)}; chapters read: {', '.join(TABLES)}.")
    namespace.update(profile_parameters(chapter, namespace))
    paths = chapter_paths(namespace["profile"], namespace.get("checkpoint_dir", ""), namespace.get("results_dir", ""))
    settings = runtime.configure()
    plots.set_theme()
    device = runtime.pick_device(namespace["device"]) if "device" in namespace else None
    if chapter in TRAINING_CHAPTERS:
        return Chapter(chapter, paths, settings, device)
    catalog = report.done_networks(paths["checkpoints"])
    parents = parents_of(catalog)
    shown = plots.representative_subset(parents, namespace["subset"]) if "subset" in namespace else None
    tables = tuple(TABLES[name](paths, catalog) for name in reads)
    return Chapter(chapter, paths, settings, device, catalog, parents, shown, tables)


def profile_parameters(chapter: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The values a chapter takes from its profile (:func:`open_chapter` sets them).

    Run by ``python -m paradox_utils run`` (:data:`RESOLVED_PROFILE` names the chapter's
    ``profile``), every value was passed already: nothing. Otherwise (``papermill chapter.ipynb
    out.ipynb -p profile tiny``, or JupyterLab with ``profile`` edited) a ``profile`` other than
    the chapter's default is loaded, and each parameter whose value still equals the chapter's
    default takes the profile's value; a value that differs from the default (``-p
    eval_per_class 7``) wins. So a ``-p`` value equal to the chapter's default loses to the
    profile (``run -p`` does not). Every value is checked against its default's type first.
    Raises ValueError (one sentence) for an unknown profile, a profile name that is not plain
    (``../x``: :func:`profiles.profile_name`), a key it does not know, a value of the wrong type or
    out of its range (:func:`profiles.check_values`), or chapter 1 or 2 on an imported population
    (:func:`check_training_applies`).
    """
    if os.environ.get(RESOLVED_PROFILE) == namespace.get("profile"):
        return {}
    defaults = chapter_defaults(chapter)  # this chapter alone: the common case loads nothing more
    current = {k: namespace[k] for k in defaults}
    check_values(current, defaults, f"Chapter {chapter}")
    values = {}
    if current["profile"] != defaults["profile"]:  # else the parameters cell holds that profile's values
        profile = load_profile(current["profile"], chapter_parameters())  # a name (plain) or a YAML path
        values = {k: profile[k] for k in defaults if k in profile and _same_value(current[k], defaults[k])}
        values["profile"] = profile["profile"]  # a YAML path becomes the profile's name (its folders)
    check_training_applies((chapter,), {**current, **values}, str(current["profile"]))
    return values


def _same_value(value: Any, default: Any) -> bool:
    return type(value) is type(default) and value == default


def check_training_applies(chapters: tuple[str, ...], values: Mapping[str, Any], given: str) -> None:
    """Refuse, in one sentence and before any work, chapters 1–2 (training) for a population that
    was imported (``python -m paradox_utils import``): it was trained elsewhere, and training here
    would write a population of the profile's own into its checkpoint folder. ``values``: the
    resolved ``profile`` and ``checkpoint_dir``; ``given``: the profile as the user named it (for
    the command to run instead). ``run`` and a chapter's setup (:func:`profile_parameters`) ask."""
    training = [c for c in chapters if c in TRAINING_CHAPTERS]
    folder = checkpoint_folder(str(values["profile"]), str(values.get("checkpoint_dir") or ""))
    if training and holds_imported_networks(folder):
        raise ValueError(f"The networks in {folder} were imported (python -m paradox_utils import), so chapters 1–2 "
                         f"(training) do not apply to them: run chapters 3–6 with `python -m paradox_utils run "
                         f"--profile {given} --from 03_evaluate`.")


def glue_texts(texts: Mapping[str, Any]) -> None:
    """Glue each value under its name for the book's ``{glue:text}`` (nothing is displayed)."""
    from myst_nb import glue

    for name, text in texts.items():
        glue(name, text, display=False)


def glue_regime(catalog: pd.DataFrame, accuracy: pd.DataFrame, pairs: pd.DataFrame | None = None,
                chance: pd.DataFrame | None = None) -> regime.Regime:
    """The "Where this run stands" box (:func:`regime.regime_of`), glued as ``regime`` for the
    chapter's overview and returned for display where it is computed."""
    box = regime.regime_of(catalog, accuracy, pairs, chance)
    glue_texts({"regime": box})
    return box
