"""Where a built book comes from: the profile and source commit each chapter ran with.

``pipeline.run`` stamps every executed notebook's metadata (``paradox``: profile, commit, imported)
when it runs the chapter, since the book may be built later, from another checkout; the
book's footer (:func:`book_footer`, set by ``book_builder.build_book``) names them.
"""

from __future__ import annotations

import html
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["book_footer", "chapter_origin", "glued_text", "ran_on_imported", "source_commit", "stamp"]


def source_commit(root: str | Path = ROOT) -> str:
    """The checkout's HEAD commit (12 hex digits), with "+ uncommitted changes" when a
    tracked file differs from it; "unknown" outside a git checkout (an installed copy)."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)

    try:
        head = git("rev-parse", "--short=12", "HEAD")
    except OSError:  # no git at all
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return head.stdout.strip() + (" + uncommitted changes" if dirty else "")


def stamp(notebook, profile: str, imported: bool = False, root: str | Path = ROOT) -> None:
    """Record in ``notebook``'s metadata the profile it runs with, the source commit, and
    whether its networks were imported (then the book has no chapters 1–2)."""
    notebook.metadata["paradox"] = {"profile": profile, "commit": source_commit(root), "imported": imported}


def chapter_origin(path: str | Path) -> tuple[str, str]:
    """(profile, commit) an executed chapter records; a notebook executed before stamps
    existed gives the profile papermill recorded and "not recorded"."""
    metadata = json.loads(Path(path).read_text())["metadata"]
    origin = metadata.get("paradox") or {}
    profile = origin.get("profile") or metadata.get("papermill", {}).get("parameters", {}).get("profile", "unknown")
    return str(profile), str(origin.get("commit") or "not recorded")


def ran_on_imported(path: str | Path) -> bool:
    """Whether an executed chapter ran on imported networks, as its stamp records."""
    return bool((json.loads(Path(path).read_text())["metadata"].get("paradox") or {}).get("imported"))


def glued_text(path: str | Path, name: str) -> str | None:
    """The text an executed chapter glued under ``name`` (``myst_nb.glue``: what
    ``{glue:text}`` pastes into the book), or None when it glued none."""
    for cell in json.loads(Path(path).read_text())["cells"]:
        for output in cell.get("outputs", []):
            if output.get("metadata", {}).get("scrapbook", {}).get("name") == name:
                return output.get("data", {}).get("application/papermill.record/text/plain")
    return None


def book_footer(chapters: Sequence[str | Path]) -> str:
    """The book's footer (HTML): "Made with the tiny profile at commit 1a2b3c4d5e6f.";
    chapters that ran with different profiles or commits are each named with theirs."""
    groups: dict[tuple[str, str], list[str]] = {}
    for path in chapters:
        groups.setdefault(chapter_origin(path), []).append(Path(path).stem)

    def origin(profile: str, commit: str) -> str:
        return f"the <code>{html.escape(profile)}</code> profile at commit <code>{html.escape(commit)}</code>"

    if len(groups) == 1:
        return f"<p>Made with {origin(*next(iter(groups)))}.</p>"
    parts = [f"{', '.join(names)} with {origin(*key)}" for key, names in groups.items()]
    return "<p>Made in parts: " + "; ".join(parts) + ".</p>"
