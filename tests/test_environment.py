"""pyproject.toml and environment.yml list the same dependencies."""

import pathlib
import re
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _norm(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_norm(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_norm(r) for r in pip if not r.startswith("-e")}
    assert listed == wanted, f"only in pyproject: {wanted - listed}; only in environment.yml: {listed - wanted}"


def test_pins():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for pin in ("torch==2.14.1", "torchvision==0.29.1", "jupyter-book<2"):
        assert pin in deps


def test_no_tracked_file_cites_a_document_outside_the_repository():
    """A reader of the published book cannot open the team's notes: cite the paper or the
    book's methods appendix instead. (.ci/run alone names the shared data folder.)"""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    outside = ["PAPER" + "_SPEC", "DESIGN" + ".md", "../" + "shared"]
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    offenders = [f"{name}: {word}" for name in tracked if name != ".ci/run" and (root / name).is_file()
                 for word in outside if word in (root / name).read_text(errors="ignore")]
    assert offenders == []
