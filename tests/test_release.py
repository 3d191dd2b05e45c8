"""What a release carries besides the package: the licence, the citation, the changelog and the
version, written once (``paradox_utils.__version__``) and read by everything else."""

import datetime
import re
import tomllib
from pathlib import Path

import yaml
from setuptools.config.pyprojecttoml import read_configuration

import paradox_utils

ROOT = Path(paradox_utils.__file__).parents[1]


def test_the_version_is_written_once_and_setuptools_reads_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert paradox_utils.__version__ not in (ROOT / "pyproject.toml").read_text()
    assert read_configuration(ROOT / "pyproject.toml")["project"]["version"] == paradox_utils.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", paradox_utils.__version__)


def test_the_licence_is_mit_by_its_spdx_name():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Copyright (c) 2026 the paradox authors" in text


def test_citation_cff_names_this_version_and_the_paper():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["type"] == "software"
    assert {"message", "title", "authors", "version", "date-released", "license", "references"} <= set(citation)
    assert citation["version"] == paradox_utils.__version__
    assert citation["authors"] == [{"name": "The paradox authors"}] and citation["license"] == "MIT"
    datetime.date.fromisoformat(citation["date-released"])  # a date, as CFF requires (YYYY-MM-DD)
    (paper,) = citation["references"]
    assert paper["title"] == "Paradox in Deep Neural Networks: Similar yet Different while Different yet Similar"
    assert [a["family-names"] for a in paper["authors"]] == ["Akbarinia", "Gegenfurtner"] and paper["year"] == 2019
    assert paper["identifiers"][0]["value"] == "arXiv:1903.04772"
    # the changelog's entry for this version carries the citation's release date
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert f"## [{paradox_utils.__version__}] - {citation['date-released']}" in changelog


def test_the_introduction_says_how_to_cite_with_a_key_the_bibliography_has():
    intro = (ROOT / "book" / "intro.md").read_text()
    how = intro.split("**How to cite.**", 1)[1].split("\n\n", 1)[0]
    assert "CITATION.cff" in how
    keys = re.findall(r"\{cite\}`([^`]+)`", how)
    assert keys == ["akbarinia2019paradox"]
    assert "@article{akbarinia2019paradox," in (ROOT / "book" / "references.bib").read_text()
    assert "arXiv:1903.04772" in (ROOT / "book" / "references.bib").read_text()
