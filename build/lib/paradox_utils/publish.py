"""Publishing the built book on a ``gh-pages`` branch (``make publish``), the way Jupyter
Book's documentation recommends: ``ghp-import -n -p -f book/_build/html``.

ghp-import commits the HTML folder as the whole tree of the branch (with ``.nojekyll``,
so GitHub Pages serves ``_static/`` as it is) and force-pushes it to the remote; the
checkout's own branches and working tree are left as they are.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

from .provenance import ROOT

__all__ = ["PublishFailed", "made_with", "publish"]

HTML = ROOT / "book" / "_build" / "html"


class PublishFailed(RuntimeError):
    """ghp-import could not commit or push; the message holds the end of its output."""


def publish(html_dir: str | Path = HTML, remote: str = "origin", branch: str = "gh-pages",
            repo: str | Path = ROOT) -> str:
    """Put ``html_dir`` on ``branch`` of ``repo`` and push it to ``remote``; return a sentence
    saying where. The commit message carries the book's provenance footer. Raises ValueError
    (one sentence) for a book not built (or built without its local plotly.js) or a remote
    ``repo`` does not know; :class:`PublishFailed` when ghp-import cannot commit or push."""
    html_dir = Path(html_dir)
    if not (html_dir / "index.html").is_file():
        raise ValueError(f"No built book in {html_dir}: build it first (make book, or python -m paradox_utils book).")
    if not (html_dir / "_static" / "plotly.min.js").is_file():  # the figures would be blank pages offline
        raise ValueError(f"{html_dir} lacks _static/plotly.min.js: build it again with python -m paradox_utils book.")
    known = subprocess.run(["git", "-C", str(repo), "remote"], capture_output=True, text=True)
    if known.returncode != 0:
        raise ValueError(f"{repo} is not a git checkout: publishing needs one with a remote.")
    if remote not in known.stdout.split():
        names = ", ".join(known.stdout.split()) or "none"
        raise ValueError(f"Unknown remote {remote!r}; this checkout's remotes: {names} (add one with git remote add).")
    message = f"Publish the book. {made_with(html_dir)}".strip()
    command = [sys.executable, "-m", "ghp_import", "--no-jekyll", "--push", "--force", "--remote", remote,
               "--branch", branch, "--message", message, str(html_dir.resolve())]
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
        raise PublishFailed(f"ghp-import could not publish to {remote} ({branch}):\n{tail}")
    url = subprocess.run(["git", "-C", str(repo), "remote", "get-url", remote], capture_output=True, text=True)
    return f"Published {html_dir} on branch {branch} of {remote} ({url.stdout.strip()})."


def made_with(html_dir: str | Path) -> str:
    """The provenance sentence of the built book's footer (``book_builder.build_book``), as text,
    read from its first page (Jupyter Book's ``index.html`` only redirects to it); "" for a
    book built without one."""
    page = (Path(html_dir) / "index.html").read_text(errors="replace")
    redirect = re.search(r'http-equiv="Refresh" content="0; url=([^"#?]+)"', page, re.I)
    if redirect and (Path(html_dir) / redirect.group(1)).is_file():
        page = (Path(html_dir) / redirect.group(1)).read_text(errors="replace")
    match = re.search(r'class="extra_footer">(.*?)</div>', page, re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", match.group(1))).split()) if match else ""
