"""The papermill driver and the command line: ``python -m paradox_utils --help``.

``run`` executes the six chapters in order with a profile's parameters (jupytext
py:percent → ipynb → papermill), writing executed notebooks into ``book/chapters``.
It validates the profile before running anything, stops at the first failing
chapter naming it and the failing cell's error, and keeps the partial notebook.
Chapters skip finished work themselves (checkpoints, evaluation cells, similarity
cache), so rerunning is cheap. A chapter run by papermill directly loads its profile
itself (:func:`profile_parameters`). Chapters 1–2 (training) are refused for a population
imported with ``python -m paradox_utils import`` (:func:`check_training_applies`).
``build_book`` renders the executed chapters with Jupyter Book (execution off, warnings as
errors, a footer naming the profile and commit; an imported population's book is chapters
3–6) and fails on any error output.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import yaml

from . import files, provenance
from .progress import Follower, clock, elapsed
from .publish import PublishFailed, publish

__all__ = ["CHAPTERS", "IMPORTED_GLUE", "PROFILE_APPLIED", "TRAINING_CHAPTERS", "ChapterFailed", "book_chapters",
           "book_config", "book_toc", "build_book", "chapter_paths", "check_run", "check_training_applies",
           "check_values", "checkpoint_folder", "inspect_chapter", "load_profile", "main", "profile_parameters",
           "profile_values", "run", "shipped_profiles"]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PROFILES = NOTEBOOKS / "profiles"  # the shipped profiles, one YAML each
BOOK = ROOT / "book"
CHAPTERS = ("01_train", "02_finetune", "03_evaluate", "04_similarity", "05_paradox", "06_transplant")
TRAINING_CHAPTERS = CHAPTERS[:2]  # they make the population; an imported one has its own (check_training_applies)
# Chapter 3 glues it: true when its networks were imported (importing.is_imported), so the book has no
# chapters 1–2 (book_chapters).
IMPORTED_GLUE = "networks_imported"
# Every chapter declares it (false); ``run`` passes it true with every value it resolved, so the
# chapter loads no profile itself. Not a parameter a profile or -p may set.
PROFILE_APPLIED = "profile_applied"


class ChapterFailed(RuntimeError):
    """A chapter raised; the message names it, the cell and the error."""


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
    """Each chapter's declared parameters (name → default), read from its parameters cell
    (``profile_applied`` aside: it is ``run``'s, not the user's)."""
    return {chapter: _chapter_defaults(chapter) for chapter in CHAPTERS}


def inspect_chapter(chapter: str) -> dict[str, dict[str, str]]:
    """papermill's view of a chapter's parameters cell, as ``papermill --help-notebook``
    shows it: name → {name, inferred_type_name, default, help} (all text)."""
    import jupytext
    import papermill

    with tempfile.TemporaryDirectory() as scratch:  # nothing is written into the repository
        tmp = Path(scratch) / f"{chapter}.ipynb"
        jupytext.write(jupytext.read(NOTEBOOKS / f"{chapter}.py"), tmp)
        return papermill.inspect_notebook(str(tmp))


def _chapter_defaults(chapter: str) -> dict[str, Any]:
    return {k: _literal(v["default"]) for k, v in inspect_chapter(chapter).items() if k != PROFILE_APPLIED}


def _literal(text: str) -> Any:
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _same_kind(default: Any, value: Any) -> bool:
    """``value`` may replace ``default``: same type, ints for floats, never floats for ints
    (``eval_per_class: 100.0`` is refused: it is a typo papermill would pass through)."""
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def _kind_name(value: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


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


def profile_parameters(chapter: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The values a chapter takes from its profile, set by its first setup cell:
    ``globals().update(pipeline.profile_parameters("03_evaluate", globals()))``.

    Under ``python -m paradox_utils run`` (``profile_applied`` true) every value was passed
    already: nothing. Otherwise (``papermill chapter.ipynb out.ipynb -p profile tiny``, or
    JupyterLab with ``profile`` edited) a ``profile`` other than the chapter's default is
    loaded, and each parameter whose value still equals the chapter's default takes the
    profile's value; a value that differs from the default (``-p eval_per_class 7``) wins.
    So a ``-p`` value equal to the chapter's default loses to the profile (``run -p`` does
    not). Every value is checked against its default's type first. Raises ValueError (one
    sentence) for an unknown profile, a key it does not know, a wrongly typed value, or
    chapter 1 or 2 on an imported population (:func:`check_training_applies`).
    """
    if namespace.get(PROFILE_APPLIED):
        return {}
    defaults = _chapter_defaults(chapter)  # this chapter alone: the common case loads nothing more
    current = {k: namespace[k] for k in defaults}
    check_values(current, defaults, f"Chapter {chapter}")
    values = {}
    if current["profile"] != defaults["profile"]:  # else the parameters cell holds that profile's values
        profile = load_profile(str(current["profile"]), chapter_parameters())
        values = {k: profile[k] for k in defaults if k in profile and _same_value(current[k], defaults[k])}
        values["profile"] = profile["profile"]  # a YAML path becomes the profile's name (its folders)
    check_training_applies((chapter,), {**current, **values}, str(current["profile"]))
    return values


def _same_value(value: Any, default: Any) -> bool:
    return type(value) is type(default) and value == default


def check_values(values: dict[str, Any], defaults: dict[str, Any], source: str) -> None:
    """One sentence for a value whose type is not its parameter's (``source`` names where it came from)."""
    for key, value in values.items():
        if not _same_kind(defaults[key], value):
            raise ValueError(f"{source}: {key} should be {_kind_name(defaults[key])}, "
                             f"got {value!r} ({type(value).__name__}).")


def check_run(values: dict[str, Any], defaults: dict[str, Any], chapters: tuple[str, ...] = CHAPTERS) -> None:
    """Everything that can be checked before the first network trains: the scheduler,
    every network's training config (nested settings through ``TrainConfig``'s own
    validation), the ``retrain`` ids, and that the output folders are writable."""
    from .cluster import check_scheduler
    from .population import from_parameters, named_ids

    merged = {**defaults, **values}
    check_scheduler(merged.get("scheduler"))
    if merged.get("thresholds", "null") not in ("null", "fixed"):
        raise ValueError(f"thresholds must be null or fixed, got {merged['thresholds']!r}.")
    if "paper" not in merged.get("similarity_methods", ["paper"]):
        raise ValueError("similarity_methods must include paper: chapters 4 and 5 read the paper's measure first.")
    env = "PARADOX_IMAGENET" if merged.get("dataset") == "imagenet" else "PARADOX_CIFAR10"
    if merged.get("dataset") == "imagenet" and not os.environ.get(env):
        raise ValueError("The imagenet dataset needs PARADOX_IMAGENET: a folder holding train/ and val/ class folders.")
    specs = []
    if "01_train" in chapters or "02_finetune" in chapters:
        specs = from_parameters(merged)
        ids = {s.net_id for s in specs}
        if unknown := [r for r in named_ids(merged.get("retrain", [])) if r not in ids]:
            raise ValueError(f"--retrain names {', '.join(unknown)}, not in this profile's population.")
    paths = chapter_paths(merged["profile"], merged.get("checkpoint_dir", ""), merged.get("results_dir", ""))
    for folder in {paths["checkpoints"], paths["results"]}:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            raise ValueError(f"The output folder {folder} is not writable ({error.strerror}).") from None


def check_training_applies(chapters: tuple[str, ...], values: Mapping[str, Any], given: str) -> None:
    """Refuse, in one sentence and before any work, chapters 1–2 (training) for a population that
    was imported (``python -m paradox_utils import``): it was trained elsewhere, and training here
    would write a population of the profile's own into its checkpoint folder. ``values``: the
    resolved ``profile`` and ``checkpoint_dir``; ``given``: the profile as the user named it (for
    the command to run instead). ``run`` and a chapter's setup (:func:`profile_parameters`) ask."""
    from .importing import holds_imported_networks

    training = [c for c in chapters if c in TRAINING_CHAPTERS]
    folder = checkpoint_folder(str(values["profile"]), str(values.get("checkpoint_dir") or ""))
    if training and holds_imported_networks(folder):
        raise ValueError(f"The networks in {folder} were imported (python -m paradox_utils import), so chapters 1–2 "
                         f"(training) do not apply to them: run chapters 3–6 with `python -m paradox_utils run "
                         f"--profile {given} --from 03_evaluate`.")


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


def run(profile: str = "quick", start: str | None = None, scheduler: str | None = None,
        output_dir: str | os.PathLike | None = None, progress: bool = True,
        parameters: dict[str, Any] | None = None, retrain: list[str] | None = None,
        until: str | None = None) -> list[Path]:
    """Execute the chapters from ``start`` (default the first) through ``until`` (default
    the last) with ``profile``; return the executed notebooks. ``parameters`` override the
    profile's values (validated alike); ``retrain``: network ids whose finished checkpoints
    are trained again. Everything :func:`check_run` checks is checked before the first
    chapter starts, and chapters 1–2 are refused for an imported population
    (:func:`check_training_applies`). Raises
    :class:`ChapterFailed` at the first failing chapter."""
    declared = chapter_parameters()
    defaults = merged_defaults(declared)
    values = profile_values(profile, parameters, declared)
    if scheduler:
        values["scheduler"] = scheduler
    if retrain:
        values["retrain"] = list(retrain)
    first = CHAPTERS.index(_chapter(start)) if start else 0
    last = CHAPTERS.index(_chapter(until)) if until else len(CHAPTERS) - 1
    chapters = CHAPTERS[first:last + 1]
    if not chapters:
        raise ValueError(f"No chapter runs from {start} through {until}: the first comes after the last.")
    check_training_applies(chapters, values, profile)  # first: nothing else matters when training does not apply
    check_run(values, defaults, chapters)
    out_dir = Path(output_dir) if output_dir else BOOK / "chapters"
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in ("PARADOX_BATCH", "PARADOX_PROGRESS")}
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "progress.log"
        # the kernels inherit both: no widgets; their bars write lines to the log, printed here
        os.environ.update(PARADOX_BATCH="1", PARADOX_PROGRESS=str(log))
        try:
            with Follower(log, lambda line: print(f"   {line}", flush=True)) if progress else nullcontext():
                return [_execute(chapter, values, declared[chapter], out_dir) for chapter in chapters]
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def describe_population(profile: str, parameters: dict[str, Any] | None = None, csv: str | None = None) -> str:
    """The text ``python -m paradox_utils population`` prints (and the ``csv`` it writes):
    the varying settings per network, the shared ones, and :func:`population.summary`."""
    import pandas as pd

    from .population import from_parameters, listing, summary

    specs = from_parameters(profile_values(profile, parameters))
    table = listing(specs)
    if csv:
        with files.atomic_path(csv) as tmp:
            table.to_csv(tmp, index=False)
    settings = [c for c in table.columns if c not in ("net_id", "parent", "kind")]
    # dropna=False: a setting given to some networks only (None elsewhere, NaN in the table) varies
    varying = [c for c in settings if table[c].astype(str).nunique(dropna=False) > 1]
    shared = ", ".join(f"{c}={table[c].iloc[0]}" for c in settings if c not in varying)
    with pd.option_context("display.max_rows", None, "display.width", 200):
        text = table[["net_id", "parent", "kind", *varying]].to_string(index=False)
    lines = [text, f"Shared by every network: {shared}.", summary(specs)]
    if csv:
        lines.append(f"Every field of every network: {csv}")
    return "\n".join(lines)


def _chapter(name: str) -> str:
    """A chapter's full name from itself, its number or its word (``03``, ``evaluate``)."""
    if name in CHAPTERS:
        return name
    matches = [c for c in CHAPTERS if c.startswith(name) or c.split("_", 1)[1] == name]
    if len(matches) != 1:
        raise ValueError(f"Unknown chapter {name!r}; valid: {', '.join(CHAPTERS)}.")
    return matches[0]


def _execute(chapter: str, values: dict[str, Any], declared: dict[str, Any], out_dir: Path) -> Path:
    """Run one chapter with papermill into ``out_dir``; raise ChapterFailed on error.
    Prints a line when it starts and one when it ends, with its wall time.

    papermill writes the notebook as it runs into a hidden file beside it, which is then
    put in place by ``files.place`` (the package's one file mode) — on failure too, so a
    partial notebook is kept; a reader never sees a half-written one."""
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = out_dir / f".{chapter}.source.ipynb"
    target = out_dir / f"{chapter}.ipynb"
    running = out_dir / f".{chapter}.running.ipynb"
    notebook = jupytext.read(NOTEBOOKS / f"{chapter}.py")
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    provenance.stamp(notebook, values["profile"])  # the book's footer names them
    jupytext.write(notebook, source)
    parameters = {**{k: v for k, v in values.items() if k in declared}, PROFILE_APPLIED: True}
    print(f"== {chapter} ({values['profile']} profile) started {clock()}", flush=True)
    started = time.perf_counter()
    try:
        papermill.execute_notebook(str(source), str(running), parameters=parameters, cwd=str(NOTEBOOKS),
                                   kernel_name="python3", progress_bar=False, log_output=False,
                                   # the kernel app's own notices ("running over TCP without encryption" on
                                   # every start) would drown the progress lines; the code's warnings stay
                                   # in the notebook
                                   extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except PapermillExecutionError as error:
        print(f"== {chapter} failed after {elapsed(time.perf_counter() - started)}", flush=True)
        raise ChapterFailed(f"Chapter {chapter} failed in cell {error.exec_count}: {error.ename}: "
                            f"{error.evalue} (partial notebook kept at {target}).") from None
    finally:
        source.unlink(missing_ok=True)
        if running.exists():
            files.place(running, target)
    print(f"== {chapter} done in {elapsed(time.perf_counter() - started)}", flush=True)
    return target


def notebook_errors(path: Path) -> list[str]:
    """Error outputs in an executed notebook ("cell N: Ename: value")."""
    cells = json.loads(path.read_text())["cells"]
    return [f"{path.name} cell {i}: {o.get('ename')}: {o.get('evalue')}"
            for i, cell in enumerate(cells) for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def build_book(book_dir: str | os.PathLike = BOOK) -> Path:
    """Render the executed chapters into ``book/_build/html`` (offline plotly, -W), every
    page's footer naming the profile and commit the chapters ran with. Which chapters make
    the book is :func:`book_chapters`' rule (an imported population's: 3–6, never 1–2); the
    table of contents is the book's ``_toc.yml`` less the others (:func:`book_toc`), and the
    introduction lists what it lists. Nothing tracked is touched: the build reads a copy of
    ``_config.yml`` with the footer, made in a temporary folder, and the table of contents
    from ``_build/``."""
    import plotly

    book_dir = Path(book_dir)
    chapters = book_chapters(book_dir / "chapters")
    executed = [book_dir / "chapters" / f"{c}.ipynb" for c in chapters]
    errors = [e for path in executed for e in notebook_errors(path)]
    if errors:
        raise ChapterFailed("Executed chapters hold errors: " + "; ".join(errors))
    static = book_dir / "_static"
    static.mkdir(exist_ok=True)
    with files.atomic_path(static / "plotly.min.js") as tmp:
        shutil.copyfile(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", tmp)
    footer = provenance.book_footer(executed)
    # A page of a chapter left out, from an earlier build, must not linger in the site that is published
    # (Sphinx only adds pages); the parsed pages in _build/.doctrees stay, so only the HTML is written again.
    shutil.rmtree(book_dir / "_build" / "html", ignore_errors=True)
    toc = book_toc(book_dir, chapters, book_dir / "_build")  # a fixed path: a new one would make Sphinx reread all
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-m", "jupyter_book", "build", str(book_dir), "--warningiserror", "--nitpick",
                   "--keep-going", "--config", str(book_config(book_dir, footer, Path(scratch))),
                   "--toc", str(toc.resolve())]  # absolute: Jupyter Book reads a relative one from book_dir
        jb = Path(sys.executable).parent / "jupyter-book"
        if jb.exists():
            command = [str(jb), *command[3:]]
        result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise ChapterFailed(f"jupyter-book build failed (exit {result.returncode}):\n{tail}")
    return book_dir / "_build" / "html" / "index.html"


def book_chapters(folder: str | os.PathLike) -> tuple[str, ...]:
    """The executed chapters in ``folder`` (``book/chapters``) that make the book.

    Networks trained here: all six (one may come from an earlier run; the footer names each
    one's profile and commit). An imported population — chapter 3 glues
    :data:`IMPORTED_GLUE` true — has no chapters 1–2: they do not apply to it, so any in the
    folder were left by another profile's run. Its book is chapters 3–5, and 6 where it ran
    (the transplant needs a parent and its child), each one run with chapter 3's profile.
    Raises ValueError naming the chapters still to run.
    """
    folder = Path(folder)

    def executed(chapter: str) -> Path:
        return folder / f"{chapter}.ipynb"

    evaluate = executed("03_evaluate")
    if evaluate.exists() and provenance.glued_text(evaluate, IMPORTED_GLUE) == "True":
        profile = provenance.chapter_origin(evaluate)[0]
        ran = tuple(c for c in CHAPTERS[2:]
                    if executed(c).exists() and provenance.chapter_origin(executed(c))[0] == profile)
        if missing := [c for c in CHAPTERS[2:5] if c not in ran]:  # the introduction pastes values from 3, 4 and 5
            raise ValueError(f"Chapters not executed yet for the imported population {profile}: {', '.join(missing)} "
                             f"(run `python -m paradox_utils run --profile {profile} --from 03_evaluate` first).")
        return ran
    if missing := [c for c in CHAPTERS if not executed(c).exists()]:
        raise ValueError(f"Chapters not executed yet: {', '.join(missing)} (run `python -m paradox_utils run` first).")
    return CHAPTERS


def book_toc(book_dir: Path, chapters: tuple[str, ...], folder: Path) -> Path:
    """``book_dir/_toc.yml`` without the executed chapters that are not in ``chapters``,
    written to ``folder/_toc.yml`` (rewritten only when it changes); its path."""
    left_out = {f"chapters/{c}" for c in CHAPTERS if c not in chapters}

    def kept(entries: list[dict]) -> list[dict]:
        return [{k: kept(v) if k in ("parts", "chapters", "sections") else v for k, v in entry.items()}
                for entry in entries if entry.get("file") not in left_out]

    toc = yaml.safe_load((book_dir / "_toc.yml").read_text())
    text = yaml.safe_dump(kept([toc])[0], sort_keys=False, allow_unicode=True)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "_toc.yml"
    if not target.exists() or target.read_text() != text:
        with files.atomic_path(target) as tmp:
            tmp.write_text(text)
    return target


def book_config(book_dir: Path, footer: str, folder: Path) -> Path:
    """A copy of ``book_dir/_config.yml`` in ``folder`` with ``footer`` as every page's
    ``html.extra_footer`` (appended to one the book has); local Sphinx extensions, which
    Jupyter Book finds relative to the config file, are pointed back at ``book_dir``."""
    config = yaml.safe_load((book_dir / "_config.yml").read_text()) or {}
    html = config.setdefault("html", {})
    html["extra_footer"] = (html.get("extra_footer") or "") + footer
    extensions = config.get("sphinx", {}).get("local_extensions") or {}
    for name, path in extensions.items():
        extensions[name] = str((book_dir / path).resolve())
    target = folder / "_config.yml"
    target.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paradox_utils",
                                     description="Run the paradox analysis book's chapters and build the book.")
    commands = parser.add_subparsers(dest="command", required=True)
    profile_help = f"{', '.join(shipped_profiles())}, or a YAML path (default quick)"
    run_parser = commands.add_parser("run", help="execute the six chapters with a profile (papermill)",
                                     description="Execute the chapters in order with a profile's parameters.")
    run_parser.add_argument("--profile", default="quick",
                            help=profile_help)
    run_parser.add_argument("--from", dest="start", default=None,
                            help="start at this chapter (e.g. 03_evaluate or evaluate)")
    run_parser.add_argument("--to", dest="until", default=None,
                            help="stop after this chapter (e.g. 02_finetune)")
    run_parser.add_argument("--scheduler", default=None,
                            help="serial, local (Dask LocalCluster), slurm, or a Dask scheduler address tcp://host:8786")
    run_parser.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                            help="a setting of the SLURM jobs for --scheduler slurm (dask-jobqueue's SLURMCluster): "
                                 "cores=4, memory=16GB (both needed, here or in ~/.config/dask/jobqueue.yaml), "
                                 "queue=PARTITION, walltime=02:00:00, account=NAME, interface=ib0, "
                                 "job_extra_directives=\"['--gres=gpu:1']\"; repeatable. The profile's workers "
                                 "(-p workers N) is the number of SLURM jobs kept running (default 1)")
    run_parser.add_argument("--output-dir", default=None, metavar="DIR",
                            help="write the executed chapters here (default book/chapters)")
    run_parser.add_argument("--retrain", action="append", default=[], metavar="ID|stale",
                            help="train this network again from scratch although its checkpoint is finished (its "
                                 "offspring too); repeatable. stale: every network whose checkpoint does not match "
                                 "the profile (safe to repeat: after a kill, the rerun resumes)")
    run_parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                            help="override one chapter parameter (VALUE is YAML: 3, 0.1, [a, b], {epochs: 2}); "
                                 "repeatable, validated like a profile")
    run_parser.add_argument("--no-progress", action="store_true",
                            help="print no progress lines (only each chapter's start and end)")
    book_parser = commands.add_parser("book", help="build the Jupyter Book from the executed chapters",
                                      description="Render book/chapters into book/_build/html "
                                                  "(offline, warnings as errors): the six chapters, or for networks "
                                                  "imported with `import` the chapters that ran on them (3–6), "
                                                  "never 1–2.")
    book_parser.add_argument("--dir", default=str(BOOK), help="the book folder (default book/)")
    commands.add_parser("profiles", help="list the profiles and their parameters")
    population_parser = commands.add_parser(
        "population", help="list a profile's networks without training anything (a dry run)",
        description="One row per network of the profile's population: id, parent, kind and the settings that "
                    "vary; then the settings every network shares and a one-line summary (networks, epochs, "
                    "training images). Nothing is trained or written, except the --csv file.")
    population_parser.add_argument("--profile", default="quick",
                                   help=profile_help)
    population_parser.add_argument("--csv", metavar="FILE", help="write every network's every TrainConfig field here")
    population_parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                                   metavar=("NAME", "VALUE"), help="override one chapter parameter (as for run)")
    publish_parser = commands.add_parser(
        "publish", help="put the built book on the gh-pages branch of a remote (ghp-import)",
        description="Commit book/_build/html as the gh-pages branch (with .nojekyll) and force-push it to the "
                    "remote, as Jupyter Book's documentation recommends (ghp-import -n -p -f). Build it first.")
    publish_parser.add_argument("--remote", default="origin", help="the git remote to push to (default origin)")
    publish_parser.add_argument("--branch", default="gh-pages", help="the branch (default gh-pages)")
    publish_parser.add_argument("--dir", default=str(BOOK / "_build" / "html"),
                                help="the built HTML (default book/_build/html)")
    commands.add_parser(
        "lab", help="JupyterLab on notebooks/ (what make lab runs)",
        description="JupyterLab serving notebooks/: chapters open as notebooks, jupytext pairs each .py with an "
                    ".ipynb (git-ignored) that keeps the outputs. Further arguments go to jupyter lab "
                    "(e.g. --port 8890).")
    import_parser = commands.add_parser(
        "import", help="import networks trained elsewhere, for chapters 3–6",
        description="Read every *.safetensors, *.pt/*.pth (state_dicts only: never a full unpickle) and Lightning "
                    "*.ckpt in DIR, check each against the architecture, and write project checkpoints, the catalog "
                    "and a profile.yaml into the checkpoint folder (default checkpoints/NAME). Then run chapters "
                    "3–6 with the command it prints. Re-importing the same files changes nothing.")
    import_parser.add_argument("folder", metavar="DIR", help="the folder holding the weight files")
    import_parser.add_argument("--arch", required=True,
                               help="resnet20, resnet50, resnet50_keras, or torchvision:<name> (torchvision:vgg11)")
    import_parser.add_argument("--profile", required=True, metavar="NAME", help="a name for the imported population")
    import_parser.add_argument("--lineage", metavar="CSV",
                               help="net_id,parent[,label][,file] per network with a parent (default: all bases; "
                                    "ids are the files' stems)")
    import_parser.add_argument("--normalise", metavar="SPEC",
                               help="the input normalisation the networks expect: cifar10, imagenet, none, or "
                                    "M,M,M/S,S,S (default: the dataset's)")
    import_parser.add_argument("--dataset", choices=["cifar10", "imagenet"],
                               help="what chapters 3–6 evaluate on (default: by the networks' outputs, 10 or 1000)")
    import_parser.add_argument("--num-classes", type=int, help="default: the first file's classifier's outputs")
    import_parser.add_argument("--checkpoint-dir", metavar="DIR", help="default checkpoints/NAME")
    import_parser.add_argument("--results-dir", metavar="DIR", help="default data/results/NAME")
    args, extra = parser.parse_known_args(argv)  # lab passes what it does not know on to jupyter lab
    if extra and args.command != "lab":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "run":
            overrides = {name: yaml.safe_load(value) for name, value in args.parameter}
            if args.slurm:  # the chapters' kernels build the SLURM cluster; they inherit these (Dask's settings)
                from .cluster import slurm_environment

                os.environ.update(slurm_environment(args.slurm))
            for path in run(args.profile, args.start, args.scheduler, output_dir=args.output_dir,
                            progress=not args.no_progress, parameters=overrides, retrain=args.retrain,
                            until=args.until):
                print(f"executed {path}")
        elif args.command == "book":
            print(f"built {build_book(args.dir)}")
        elif args.command == "import":
            from .importing import import_population

            print(import_population(args.folder, args.arch, args.profile, args.lineage,
                                    checkpoint_dir=args.checkpoint_dir, results_dir=args.results_dir,
                                    normalisation=args.normalise, dataset=args.dataset, num_classes=args.num_classes))
        elif args.command == "population":
            overrides = {name: yaml.safe_load(value) for name, value in args.parameter}
            print(describe_population(args.profile, overrides, args.csv))
        elif args.command == "publish":
            print(publish(args.dir, args.remote, args.branch))
        elif args.command == "lab":
            from . import lab

            lab.main(extra)
        else:
            for name in shipped_profiles():
                print(f"{name}:\n  " + "\n  ".join(profile_path(name).read_text().strip().splitlines()))
    except (ChapterFailed, PublishFailed, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
