"""``make publish``: the built book on a gh-pages branch (ghp-import), pushed to a local bare
repository standing in for GitHub; and the footer naming the profile and commit, which
the build writes without touching the book's tracked ``_config.yml``."""

from __future__ import annotations

import shutil
import subprocess

import nbformat
import pytest
import yaml

from paradox_utils import book_builder, profiles, provenance, publish

BOOK = book_builder.BOOK


def git(*args, cwd=None) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A checkout with one commit whose remote ``origin`` is a bare repository under tmp_path."""
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "paradox tests")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "tests@example.invalid")
    remote, work = tmp_path / "remote.git", tmp_path / "work"
    git("init", "--quiet", "--bare", str(remote))
    git("init", "--quiet", "--initial-branch=main", str(work))
    (work / "README.md").write_text("the project\n")
    git("add", "README.md", cwd=work)
    git("commit", "--quiet", "-m", "start", cwd=work)
    git("remote", "add", "origin", str(remote), cwd=work)
    return work, remote


def _chapters(folder, profile="tiny", commit="0123456789ab"):
    """Executed-chapter stand-ins: a heading each, stamped as ``pipeline.run`` stamps them."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, chapter in enumerate(profiles.CHAPTERS, start=1):
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {n}. {chapter}")])
        notebook.metadata["paradox"] = {"profile": profile, "commit": commit}
        nbformat.write(notebook, folder / f"{chapter}.ipynb")


def _fake_site(folder, footer="<p>Made with the <code>tiny</code> profile at commit <code>0123456789ab</code>.</p>"):
    (folder / "chapters").mkdir(parents=True)
    (folder / "_static").mkdir()
    (folder / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=intro.html" />\n')  # as Jupyter Book
    (folder / "intro.html").write_text(f'<html><body>intro<div class="extra_footer">\n  {footer}\n</div></body></html>')
    for chapter in profiles.CHAPTERS:
        (folder / "chapters" / f"{chapter}.html").write_text(f"<html><body>{chapter}</body></html>")
    (folder / "_static" / "plotly.min.js").write_text("/* plotly */")
    return folder


def test_publish_puts_the_site_on_gh_pages_of_the_remote(checkout, tmp_path):
    work, remote = checkout
    site = _fake_site(tmp_path / "html")
    said = publish.publish(site, remote="origin", repo=work)
    assert said.startswith(f"Published {site} on branch gh-pages of origin")
    files = set(git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", "gh-pages").split())
    assert {"index.html", "intro.html", ".nojekyll", "_static/plotly.min.js",
            *(f"chapters/{c}.html" for c in profiles.CHAPTERS)} == files
    message = git("--git-dir", str(remote), "log", "-1", "--format=%B", "gh-pages")
    assert message.strip() == "Publish the book. Made with the tiny profile at commit 0123456789ab."
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=work).strip() == "main"  # the checkout stays as it was
    assert git("status", "--porcelain", cwd=work) == ""
    (site / "chapters" / "01_train.html").write_text("<html><body>rebuilt</body></html>")
    publish.publish(site, remote="origin", repo=work)  # publishing again replaces the branch's tree
    rebuilt = git("--git-dir", str(remote), "show", "gh-pages:chapters/01_train.html")
    assert rebuilt == "<html><body>rebuilt</body></html>"


def test_publish_refuses_in_one_sentence(checkout, tmp_path):
    work, _ = checkout
    with pytest.raises(ValueError, match=r"No built book in .*: build it first \(make book"):
        publish.publish(tmp_path / "nothing", repo=work)
    site = _fake_site(tmp_path / "html")
    with pytest.raises(ValueError, match=r"Unknown remote 'upstream'; this checkout's remotes: origin \("):
        publish.publish(site, remote="upstream", repo=work)
    (site / "_static" / "plotly.min.js").unlink()
    with pytest.raises(ValueError, match="lacks _static/plotly.min.js"):
        publish.publish(site, repo=work)


def test_footer_names_each_profile_and_commit(tmp_path):
    _chapters(tmp_path / "a")
    paths = [tmp_path / "a" / f"{c}.ipynb" for c in profiles.CHAPTERS]
    assert provenance.book_footer(paths) == (
        "<p>Made with the <code>tiny</code> profile at commit <code>0123456789ab</code>.</p>")
    _chapters(tmp_path / "b", commit="fedcba987654 + uncommitted changes")
    mixed = paths[:2] + [tmp_path / "b" / f"{c}.ipynb" for c in profiles.CHAPTERS[2:]]
    assert provenance.book_footer(mixed) == (
        "<p>Made in parts: 01_train, 02_finetune with the <code>tiny</code> profile at commit <code>0123456789ab"
        "</code>; 03_evaluate, 04_similarity, 05_paradox, 06_transplant with the <code>tiny</code> profile at "
        "commit <code>fedcba987654 + uncommitted changes</code>.</p>")
    old = nbformat.v4.new_notebook(metadata={"papermill": {"parameters": {"profile": "quick"}}})
    nbformat.write(old, tmp_path / "old.ipynb")
    assert provenance.chapter_origin(tmp_path / "old.ipynb") == ("quick", "not recorded")


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
