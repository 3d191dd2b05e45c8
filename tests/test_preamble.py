"""Opening a chapter (``paradox_utils.preamble``) and the cells around it: the parameters
cells papermill reads (a type and help for each, the quick profile's values), the
``open_chapter`` line right after them, a profile's values filled in by
``profile_parameters`` (under papermill too), and the cells that only glue values for the
text (``glue_texts``), hidden from the book."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys

import jupytext
import nbformat
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from paradox_utils import preamble, profiles

ROOT = profiles.ROOT


@pytest.fixture
def kernel_env(monkeypatch):
    """Kernels import this checkout's paradox_utils (not another installed copy)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("PARADOX_BATCH", raising=False)


def _chapter(name: str) -> nbformat.NotebookNode:
    notebook = jupytext.read(profiles.NOTEBOOKS / f"{name}.py")
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def _first_setup_line(notebook: nbformat.NotebookNode) -> str:
    """The first line of the first code cell after the parameters cell."""
    cells = notebook.cells
    start = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    return next(c for c in cells[start + 1:] if c.cell_type == "code").source.splitlines()[0]


def test_help_notebook_shows_a_type_and_help_for_every_parameter(tmp_path):
    for chapter in profiles.CHAPTERS:
        shown = profiles.inspect_chapter(chapter)
        for name, parameter in shown.items():
            assert parameter["inferred_type_name"] != "None", f"{chapter}: {name} has no type papermill reads"
            assert parameter["help"], f"{chapter}: {name} has no help comment"
    path = tmp_path / "01_train.ipynb"
    jupytext.write(_chapter("01_train"), path)
    result = subprocess.run([sys.executable, "-m", "papermill", "--help-notebook", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Unknown type" not in result.stdout
    assert re.search(r"group_size: int \(default 1\)\s+networks trained at once", result.stdout)
    assert re.search(r"base_sample: Optional\[int\] \(default None\)", result.stdout)


def test_every_chapter_opens_with_its_preamble_first_thing_after_its_parameters():
    for chapter in profiles.CHAPTERS:
        line = _first_setup_line(_chapter(chapter))
        assert line.startswith(f'ch = open_chapter("{chapter}", globals()'), chapter


def test_the_parameter_cells_hold_the_quick_profile(declared):
    """A chapter run with its default profile loads nothing: that is only right while the
    parameter cells and quick.yaml agree."""
    defaults = {k: v for params in declared.values() for k, v in params.items()}
    quick = profiles.load_profile("quick", declared)
    assert {k: v for k, v in quick.items() if v != defaults[k]} == {}
    assert {params["profile"] for params in declared.values()} == {"quick"}


def _namespace(chapter: str, declared, **given):
    return {**declared[chapter], **given}


def test_profile_values_fill_what_was_not_passed(declared, tmp_path, monkeypatch):
    take = preamble.profile_parameters
    assert take("05_paradox", _namespace("05_paradox", declared)) == {}  # the default profile: nothing to load
    tiny = take("05_paradox", _namespace("05_paradox", declared, profile="tiny", bootstrap_resamples=20))
    assert tiny == {"profile": "tiny", "mantel_permutations": 99, "power_simulations": 20,
                    "power_permutations": 19}  # bootstrap_resamples was passed: it stays
    with monkeypatch.context() as run_passed_tiny:  # run passed every value of tiny: nothing to load
        run_passed_tiny.setenv(preamble.RESOLVED_PROFILE, "tiny")
        assert take("05_paradox", _namespace("05_paradox", declared, profile="tiny")) == {}
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"profile: mine\nextends: {profiles.profile_path('tiny')}\nmantel_permutations: 7\n")
    assert take("05_paradox", _namespace("05_paradox", declared, profile=str(mine))) == {
        "profile": "mine", "mantel_permutations": 7, "bootstrap_resamples": 50, "power_simulations": 20,
        "power_permutations": 19}
    with pytest.raises(ValueError, match=r"Profile 'quik' not found .*known profiles: imagenet, laptop, paper, "
                                         r"paper-smoke, quick, tiny\."):
        take("05_paradox", _namespace("05_paradox", declared, profile="quik"))
    with pytest.raises(ValueError, match=r"Chapter 05_paradox: mantel_permutations should be an integer, got 9\.5"):
        take("05_paradox", _namespace("05_paradox", declared, mantel_permutations=9.5))


@pytest.mark.slow  # a kernel
def test_papermill_with_a_profile_runs_the_chapter_with_its_values(declared, kernel_env, tmp_path):
    """papermill directly, as a user would: the real chapter's parameters cell and its first
    setup line, then the values the chapter goes on with."""
    chapter = _chapter("05_paradox")
    parameters = next(c for c in chapter.cells if "parameters" in c.metadata.get("tags", []))
    report = ("import json\nprint(json.dumps({k: globals()[k] for k in "
              f"{sorted(declared['05_paradox'])!r}}}))")
    setup = ("try:\n    " + _first_setup_line(chapter) + "\nexcept FileNotFoundError:\n"
             "    pass  # no networks here: the profile's values are set before the catalog is read")
    notebook = nbformat.v4.new_notebook(metadata=chapter.metadata, cells=[
        nbformat.v4.new_code_cell("from paradox_utils.preamble import open_chapter"), parameters,
        nbformat.v4.new_code_cell(setup), nbformat.v4.new_code_cell(report)])
    nbformat.write(notebook, tmp_path / "in.ipynb")
    folders = {"checkpoint_dir": str(tmp_path / "ck"), "results_dir": str(tmp_path / "res")}
    papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                               parameters={"profile": "tiny", "bootstrap_resamples": 20, **folders},
                               cwd=str(tmp_path), progress_bar=False)
    done = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    values = json.loads(done.cells[-1].outputs[0]["text"])
    assert values == {**declared["05_paradox"], "profile": "tiny", "mantel_permutations": 99,
                      "power_simulations": 20, "power_permutations": 19, "bootstrap_resamples": 20, **folders}


@pytest.mark.slow  # a kernel
def test_papermill_names_a_mistyped_profile(kernel_env, tmp_path):
    """The real chapter stops in its first setup cell, saying the profile does not exist and
    which do — not later, with a missing catalog."""
    jupytext.write(_chapter("05_paradox"), tmp_path / "in.ipynb")
    with pytest.raises(PapermillExecutionError) as failure:
        papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                                   parameters={"profile": "quik", "checkpoint_dir": str(tmp_path / "ck"),
                                               "results_dir": str(tmp_path / "res")},
                                   cwd=str(tmp_path), progress_bar=False)
    assert failure.value.ename == "ValueError"
    assert re.match(r"Profile 'quik' not found .*; known profiles: imagenet, laptop, paper, paper-smoke, quick, "
                    r"tiny\.$", failure.value.evalue)
    assert not (tmp_path / "ck").exists()  # it stopped before anything else


GLUES = {"glue", "glue_texts"}


def _glues_only(source: str) -> bool:
    """Whether a code cell only computes values to glue (``glue_texts``): it glues, and shows
    nothing (its last statement is no expression, or a glue call), and draws no figure."""
    tree = ast.parse(source)
    calls = [node.func for node in ast.walk(tree) if isinstance(node, ast.Call)]
    names = {getattr(f, "id", None) or getattr(f, "attr", None) for f in calls}
    last = tree.body[-1] if tree.body else None
    shows = isinstance(last, ast.Expr) and not (isinstance(last.value, ast.Call)
                                                 and getattr(last.value.func, "id", None) in GLUES)
    return bool(names & GLUES) and not shows and not names & {"show", "display"}


@pytest.mark.parametrize("chapter", profiles.CHAPTERS)
def test_cells_that_only_glue_are_removed_from_the_book(chapter):
    """A cell that exists to glue values for the text shows neither code nor an empty
    output in the book: it carries the remove-cell tag (and only such cells, or cells that
    show nothing, carry it)."""
    cells = [c for c in jupytext.read(profiles.NOTEBOOKS / f"{chapter}.py").cells if c.cell_type == "code"]
    glue_only = [c for c in cells if _glues_only(c.source)]
    assert glue_only, chapter  # every chapter glues its summary's numbers
    for cell in glue_only:
        assert "remove-cell" in cell.metadata.get("tags", []), f"{chapter}: {cell.source.splitlines()[0]}"
    for cell in cells:
        if "remove-cell" in cell.metadata.get("tags", []):
            assert cell in glue_only, f"{chapter}: remove-cell hides a cell that does more than glue"
