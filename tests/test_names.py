"""Names: one readable sentence for many ids, and one rule for names that become paths, held at
every door a name comes in by (a profile's YAML, ``-p``, the command line, a chapter's
parameters under papermill, an import, its lineage) before any folder is made."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from paradox_utils import cli, names, preamble, profiles

REPO = profiles.ROOT  # the real repository (the doors' test moves profiles.ROOT)
USER_WORK = (REPO / "checkpoints", REPO / "data", REPO / "book")
PLAIN = re.escape("should be a plain name (letters, digits, -, _ and ., not starting with .)")


def test_listed_names_ten_then_counts_the_rest():
    assert names.listed(["a", "b"]) == "a, b"
    assert names.listed([f"n{i}" for i in range(13)]) == ", ".join(f"n{i}" for i in range(10)) + " and 3 more"


@pytest.mark.parametrize("name", ["tiny", "paper-smoke", "b000-ft-salt_pepper", "mine.v2", "_x", "A1"])
def test_a_plain_name_passes_as_it_is(name):
    assert names.plain_name(name, "The name") == name


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "", "a\0", ".hidden", "..", "a\\b", "a b", "é", "x\n", None,
                                  3, ["a"]])
def test_anything_else_is_refused_in_one_sentence(name):
    with pytest.raises(ValueError) as refusal:
        names.plain_name(name, "The profile name", "it names the profile's folders")
    message = str(refusal.value)
    assert re.fullmatch(rf"The profile name .+ {PLAIN}: it names the profile's folders\.", message), message
    assert len(message.splitlines()) == 1


BAD_NAMES = {"parent": "../x", "absolute": "ABS", "nested": "a/b", "empty": "", "nul": "a\0b"}


def _snapshot(*folders: Path) -> list[str]:
    """Every file and folder under ``folders`` (a test must leave them as they were)."""
    return sorted(str(p) for folder in folders if folder.exists() for p in [folder, *folder.rglob("*")])


@pytest.fixture
def doors(monkeypatch, tmp_path):
    """The repository as the doors see it, moved under ``tmp_path`` (so a name that got through
    would write there, not into the real repository), chapters never executed, and a folder
    holding one weight file for the imports."""
    monkeypatch.setattr(profiles, "ROOT", tmp_path / "repo")
    monkeypatch.setattr(papermill, "execute_notebook", lambda source, target, **_: nbformat.write(
        nbformat.v4.new_notebook(), target))
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "a.safetensors").write_bytes(b"")
    return weights


def _enter(door: str, name: str, tmp_path: Path, weights: Path, declared) -> str:
    """Give ``name`` to the program through ``door``; return the one sentence it refuses with."""
    out = ["--output-dir", str(tmp_path / "chapters"), "--to", "01_train", "--no-progress"]
    profile = tmp_path / "mine.yaml"
    if door == "yaml profile key":
        profile.write_text(yaml.safe_dump({"profile": name}))
        return _cli(["run", "--profile", str(profile), *out])
    if door == "-p profile":
        return _cli(["run", "--profile", "tiny", "-p", "profile", json.dumps(name), *out])
    if door == "run --profile":
        return _cli(["run", "--profile", name, *out])
    if door in ("profile_parameters", "open_chapter"):  # papermill -p profile NAME, or JupyterLab
        call = preamble.profile_parameters if door == "profile_parameters" else preamble.open_chapter
        with pytest.raises(ValueError) as refusal:
            call("05_paradox", {**declared["05_paradox"], "profile": name})
        return str(refusal.value)
    if door == "population --profile":
        return _cli(["population", "--profile", name])
    if door == "import --profile":
        return _cli(["import", str(weights), "--arch", "resnet20", "--profile", name])
    if door == "base_overrides":
        profile.write_text(yaml.safe_dump({"profile": "mine", "extends": "tiny", "base_overrides": {name: {}}}))
        return _cli(["run", "--profile", str(profile), *out])
    if door == "lineage":
        (tmp_path / "lineage.csv").write_text(f"net_id,parent,file\n{name},,a.safetensors\n")
        return _cli(["import", str(weights), "--arch", "resnet20", "--profile", "mine", "--lineage",
                     str(tmp_path / "lineage.csv")])
    raise AssertionError(door)


def _cli(argv: list[str]) -> str:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(argv)
    assert code == 1, f"{argv} was accepted"
    return err.getvalue().strip().removeprefix("error: ")


@pytest.mark.parametrize("door", ["yaml profile key", "-p profile", "run --profile", "profile_parameters",
                                  "open_chapter", "population --profile", "import --profile", "base_overrides",
                                  "lineage"])
@pytest.mark.parametrize("kind", list(BAD_NAMES))
def test_every_door_refuses_a_name_that_is_a_path_before_making_a_folder(door, kind, doors, tmp_path, declared):
    """A profile name, a network id or a lineage id that is a path (``../x``, an absolute path,
    ``a/b``), empty or holding a NUL byte is refused in the one rule's sentence, and nothing is
    written: not in the repository, not beside it, not where the path points."""
    name = BAD_NAMES[kind].replace("ABS", str(tmp_path / "abs"))
    real = _snapshot(*USER_WORK)
    given = {str(tmp_path / "mine.yaml"), str(tmp_path / "lineage.csv")}  # what _enter writes: the input
    before = _snapshot(tmp_path)
    message = _enter(door, name, tmp_path, doors, declared)
    assert re.search(PLAIN, message) and len(message.splitlines()) == 1, message
    assert [p for p in _snapshot(tmp_path) if p not in given] == before
    assert _snapshot(*USER_WORK) == real
