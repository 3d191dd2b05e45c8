"""Building the Jupyter Book (``paradox_utils.book_builder``): its configuration written
beside the tracked one, and a real build that carries the footer and is published."""

from __future__ import annotations

import shutil

import pytest
import yaml

from paradox_utils import book_builder, profiles, provenance, publish

from .conftest import git
from .test_provenance import _chapters

BOOK = book_builder.BOOK


def test_book_config_adds_the_footer_to_a_copy(tmp_path):
    before = (BOOK / "_config.yml").read_bytes()
    path = book_builder.book_config(BOOK, "<p>footer</p>", tmp_path)
    config = yaml.safe_load(path.read_text())
    assert path.parent == tmp_path and (BOOK / "_config.yml").read_bytes() == before
    assert config["html"]["extra_footer"] == "<p>footer</p>"
    assert config["sphinx"]["local_extensions"] == {"dedupe_scripts": str((BOOK / "_ext").resolve())}
    assert {k: v for k, v in config.items() if k not in ("html", "sphinx")} == {
        k: v for k, v in yaml.safe_load(before).items() if k not in ("html", "sphinx")}


@pytest.mark.slow  # a Jupyter Book build
def test_a_built_book_carries_its_footer_and_publishes(checkout, tmp_path):
    """The real build (Jupyter Book, the book's own _config.yml and extensions) of stand-in
    chapters, then the real publishing of what it built."""
    book = tmp_path / "book"
    book.mkdir()
    for name in ("_config.yml", "references.bib"):
        shutil.copyfile(BOOK / name, book / name)
    shutil.copytree(BOOK / "_ext", book / "_ext", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(BOOK / "_static", book / "_static", ignore=shutil.ignore_patterns("plotly*.js"))
    (book / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "intro", "chapters": [
        {"file": f"chapters/{c}"} for c in profiles.CHAPTERS]}))
    (book / "intro.md").write_text("# Stand-in\n\nThe chapters below are stand-ins.\n")
    _chapters(book / "chapters", profile="tiny", commit=provenance.source_commit())
    config = (book / "_config.yml").read_bytes()
    index = book_builder.build_book(book)
    assert (book / "_config.yml").read_bytes() == config  # nothing tracked was rewritten
    made = f"Made with the <code>tiny</code> profile at commit <code>{provenance.source_commit()}</code>"
    for page in ("intro.html", "chapters/03_evaluate.html"):  # every page's footer
        assert made in (index.parent / page).read_text(), page
    work, remote = checkout
    publish.publish(index.parent, remote="origin", repo=work)
    message = git("--git-dir", str(remote), "log", "-1", "--format=%B", "gh-pages")
    assert message.strip() == f"Publish the book. Made with the tiny profile at commit {provenance.source_commit()}."
    files = set(git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", "gh-pages").split())
    assert {"index.html", ".nojekyll", "_static/plotly.min.js"} <= files
    assert {f"chapters/{c}.html" for c in profiles.CHAPTERS} <= files
