"""The chapters' parameters outside ``python -m paradox_utils run``: what ``papermill
--help-notebook`` shows, a profile loaded by the chapter itself under papermill, and the
one-sentence refusals of the command line's ``-p``."""

from __future__ import annotations

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

from paradox_utils import cli, pipeline, preamble, profiles

ROOT = profiles.ROOT


@pytest.fixture(scope="module")
def declared():
    return profiles.chapter_parameters()


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
    assert tiny == {"profile": "tiny", "mantel_permutations": 99}  # bootstrap_resamples was passed: it stays
    with monkeypatch.context() as run_passed_tiny:  # run passed every value of tiny: nothing to load
        run_passed_tiny.setenv(preamble.RESOLVED_PROFILE, "tiny")
        assert take("05_paradox", _namespace("05_paradox", declared, profile="tiny")) == {}
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"profile: mine\nextends: {profiles.profile_path('tiny')}\nmantel_permutations: 7\n")
    assert take("05_paradox", _namespace("05_paradox", declared, profile=str(mine))) == {
        "profile": "mine", "mantel_permutations": 7, "bootstrap_resamples": 50}
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
                      "bootstrap_resamples": 20, **folders}


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


@pytest.mark.parametrize("name,value,sentence", [
    ("epochs", "3", r"^error: Unknown parameter epochs; the chapters take: .*\.$"),
    ("eval_per_class", "all", r"^error: Parameter override: eval_per_class should be an integer, got 'all' \(str\)\.$"),
    ("profile_applied", "true", r"^error: Unknown parameter profile_applied; "),
])
def test_run_refuses_a_bad_override_in_one_sentence(name, value, sentence, tmp_path, capsys):
    code = cli.main(["run", "--profile", "tiny", "-p", name, value, "-p", "checkpoint_dir", str(tmp_path / "ck"),
                          "-p", "results_dir", str(tmp_path / "res")])
    err = capsys.readouterr().err
    assert code == 1 and re.match(sentence, err.strip()) and len(err.strip().splitlines()) == 1, err


def test_run_marks_every_chapter_as_given_its_values(monkeypatch, tmp_path):
    """``run`` passes every resolved value, names the profile in the kernels' environment (so the
    chapter loads nothing itself) and stamps the profile and commit the book's footer names."""
    seen = []

    def execute(source, target, parameters, **_):
        seen.append((nbformat.read(source, as_version=4).metadata["paradox"], parameters,
                     os.environ.get(preamble.RESOLVED_PROFILE)))
        nbformat.write(nbformat.v4.new_notebook(), target)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    folders = {"checkpoint_dir": str(tmp_path / "ck"), "results_dir": str(tmp_path / "res")}
    pipeline.run("tiny", until="01", output_dir=tmp_path / "chapters", progress=False, parameters=folders)
    (stamp, parameters, resolved), = seen
    assert resolved == "tiny" and parameters["base_common"]["epochs"] == 1 and "profile_applied" not in parameters
    assert preamble.RESOLVED_PROFILE not in os.environ and stamp["imported"] is False
    assert stamp["profile"] == "tiny" and re.match(r"[0-9a-f]{12}( \+ uncommitted changes)?$", stamp["commit"])
