"""The papermill runner: ``run`` executes the chapters in order with a profile's values.

Each chapter (jupytext py:percent → ipynb) runs under papermill with every resolved parameter,
written into ``book/chapters``. Everything that can be checked before the first network
trains is checked first (:func:`check_run`); the run stops at the first failing chapter naming
it and the failing cell's error, and keeps the partial notebook. Every warning a chapter raised
is printed on stderr, once, with the chapter's name. Chapters skip finished work
themselves (checkpoints, evaluation cells, similarity cache), so rerunning is cheap.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from . import files, provenance
from .book_builder import BOOK, ChapterFailed, book_chapters, book_toc
from .catalog import holds_imported_networks
from .preamble import RESOLVED_PROFILE, check_training_applies, profile_parameters
from .profiles import (
    CHAPTERS,
    NOTEBOOKS,
    chapter_parameters,
    chapter_paths,
    checkpoint_folder,
    merged_defaults,
    profile_path,
    profile_values,
    shipped_profiles,
)
from .progress import Follower, clock, elapsed

# chapter_warnings, check_run and run are this module's; the rest were named by issues as pipeline.X and live
# where their job is.
__all__ = ["ChapterFailed", "book_chapters", "book_toc", "chapter_warnings", "check_run", "check_training_applies",
           "profile_parameters", "profile_path", "run", "shipped_profiles"]


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
    imported = holds_imported_networks(checkpoint_folder(values["profile"], values.get("checkpoint_dir") or ""))
    saved = {k: os.environ.get(k) for k in ("PARADOX_BATCH", "PARADOX_PROGRESS", RESOLVED_PROFILE)}
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "progress.log"
        # the kernels inherit these: no widgets, their bars write lines to the log printed here, and
        # the chapters load no profile themselves (every value is passed)
        os.environ.update(PARADOX_BATCH="1", PARADOX_PROGRESS=str(log), **{RESOLVED_PROFILE: str(values["profile"])})
        try:
            with Follower(log, lambda line: print(f"   {line}", flush=True)) if progress else nullcontext():
                return [_execute(chapter, values, declared[chapter], out_dir, imported) for chapter in chapters]
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def check_run(values: dict[str, Any], defaults: dict[str, Any], chapters: tuple[str, ...] = CHAPTERS) -> None:
    """Everything that can be checked before the first network trains: the scheduler,
    every network's training config (nested settings through ``TrainConfig``'s own
    validation), the ``retrain`` ids, and that the output folders are writable. Then prints
    where the checkpoints and results go, resolved ("checkpoints: /abs/path; results: /abs/path"):
    the profile's folders, or the ``checkpoint_dir`` and ``results_dir`` given."""
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
    print(f"checkpoints: {paths['checkpoints'].resolve()}; results: {paths['results'].resolve()}", flush=True)


def _chapter(name: str) -> str:
    """A chapter's full name from itself, its number or its word (``03``, ``evaluate``)."""
    if name in CHAPTERS:
        return name
    matches = [c for c in CHAPTERS if c.startswith(name) or c.split("_", 1)[1] == name]
    if len(matches) != 1:
        raise ValueError(f"Unknown chapter {name!r}; valid: {', '.join(CHAPTERS)}.")
    return matches[0]


def _execute(chapter: str, values: dict[str, Any], declared: dict[str, Any], out_dir: Path, imported: bool) -> Path:
    """Run one chapter with papermill into ``out_dir``; raise ChapterFailed on error.
    Prints a line when it starts and one when it ends, with its wall time; before the end
    line, every warning the chapter raised, once each, on stderr (:func:`chapter_warnings`).

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
    provenance.stamp(notebook, values["profile"], imported)  # the book's footer and chapters read them
    jupytext.write(notebook, source)
    parameters = {k: v for k, v in values.items() if k in declared}
    print(f"== {chapter} ({values['profile']} profile) started {clock()}", flush=True)
    started = time.perf_counter()
    failure, executed = None, False
    try:
        papermill.execute_notebook(str(source), str(running), parameters=parameters, cwd=str(NOTEBOOKS),
                                   kernel_name="python3", progress_bar=False, log_output=False,
                                   # the kernel app's own notices ("running over TCP without encryption" on
                                   # every start) would drown the progress lines; the code's warnings are
                                   # read from the executed notebook
                                   extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except PapermillExecutionError as error:
        failure = error
    finally:
        source.unlink(missing_ok=True)
        if running.exists():
            files.place(running, target)
            executed = True
    if executed:
        for warning in chapter_warnings(target):
            print(f"warning ({chapter}): {warning}", file=sys.stderr, flush=True)
    if failure is not None:
        print(f"== {chapter} failed after {elapsed(time.perf_counter() - started)}", flush=True)
        raise ChapterFailed(f"Chapter {chapter} failed in cell {failure.exec_count}: {failure.ename}: "
                            f"{failure.evalue.rstrip('.')} (partial notebook kept at {target}).")
    print(f"== {chapter} done in {elapsed(time.perf_counter() - started)}", flush=True)
    return target


# "<file>:<line>: <category>: <message>": a warning as Python's warnings.showwarning prints it on stderr
_WARNING_LINE = re.compile(r"^\S.*?:\d+: (?:[A-Za-z_][\w.]*)?Warning: (?P<message>.+)$")


def chapter_warnings(notebook: str | os.PathLike) -> list[str]:
    """The warnings an executed chapter raised, in order, each once: the messages of the
    warning lines of its cells' stderr outputs (the source line Python prints under each is
    left out; of a message over several lines, its first). ``run`` prints them, as the kernel's
    stderr reaches only the notebook."""
    import nbformat

    seen: dict[str, None] = {}
    for cell in nbformat.read(str(notebook), as_version=4).cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                for line in output.get("text", "").splitlines():
                    if match := _WARNING_LINE.match(line):
                        seen.setdefault(match["message"].strip())
    return list(seen)
