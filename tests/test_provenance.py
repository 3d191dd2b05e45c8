"""Where a built book comes from (``paradox_utils.provenance``): the footer naming each
chapter's profile and commit."""

import nbformat

from paradox_utils import profiles, provenance


def _chapters(folder, profile="tiny", commit="0123456789ab"):
    """Executed-chapter stand-ins: a heading each, stamped as ``pipeline.run`` stamps them."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, chapter in enumerate(profiles.CHAPTERS, start=1):
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {n}. {chapter}")])
        notebook.metadata["paradox"] = {"profile": profile, "commit": commit}
        nbformat.write(notebook, folder / f"{chapter}.ipynb")


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
