"""``make publish`` (``paradox_utils.publish``): the built book on a gh-pages branch
(ghp-import), pushed to a local bare repository standing in for GitHub, and what it refuses
in one sentence. The real build published is in test_book_builder.py."""

from __future__ import annotations

import pytest

from paradox_utils import profiles, publish

from .conftest import git


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
