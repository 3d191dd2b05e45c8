"""The book builder: executed chapters → a Jupyter Book in ``book/_build/html``.

:func:`build_book` renders the executed chapters (execution off, warnings as errors, offline
plotly, a footer naming the profile and commit each chapter ran with) and fails on any error
output. Which chapters make the book is :func:`book_chapters`' rule: all six for networks
trained here; chapters 3–6 for an imported population, whose chapters 1–2 do not apply.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from . import files, provenance
from .profiles import CHAPTERS, ROOT

__all__ = ["BOOK", "ChapterFailed", "book_chapters", "book_config", "book_toc", "build_book", "notebook_errors"]

BOOK = ROOT / "book"


class ChapterFailed(RuntimeError):
    """A chapter raised; the message names it, the cell and the error."""


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
    one's profile and commit). An imported population — ``pipeline.run`` stamps chapter 3
    so (:func:`provenance.ran_on_imported`) — has no chapters 1–2: they do not apply to it, so any in the
    folder were left by another profile's run. Its book is chapters 3–5, and 6 where it ran
    (the transplant needs a parent and its child), each one run with chapter 3's profile.
    Raises ValueError naming the chapters still to run.
    """
    folder = Path(folder)

    def executed(chapter: str) -> Path:
        return folder / f"{chapter}.ipynb"

    evaluate = executed("03_evaluate")
    if evaluate.exists() and provenance.ran_on_imported(evaluate):
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
