"""The command line (``paradox_utils.cli``: ``paradox``, ``python -m paradox_utils``): its help under
the name it was called by, the ``population`` listing, and a bad ``-p`` refused in one sentence."""

import re
import runpy
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from paradox_utils import cli, profiles
from paradox_utils.population import listing, summary

from .test_profiles import _population


@pytest.mark.slow
def test_cli_help():
    for args in ([], ["run"], ["book"], ["population"]):
        result = subprocess.run([sys.executable, "-m", "paradox_utils", *args, "--help"],
                                capture_output=True, text=True)
        assert result.returncode == 0 and "usage:" in result.stdout
        if args in (["run"], ["population"]):  # --profile names every shipped profile (laptop was missing)
            assert all(name in " ".join(result.stdout.split()) for name in profiles.shipped_profiles())


def test_help_names_the_command_as_it_was_called(capsys, monkeypatch):
    """The console script calls ``main()``: its help says ``paradox``; ``python -m paradox_utils``
    (the package's ``__main__``) says that."""
    for argv in (["--help"], ["export", "--help"]):
        with pytest.raises(SystemExit) as exited:
            cli.main(argv)
        assert exited.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: paradox {'export ' if 'export' in argv else ''}[-h]")
    monkeypatch.setattr(sys, "argv", [str(Path(cli.__file__).with_name("__main__.py")), "run", "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("paradox_utils", run_name="__main__")
    assert exited.value.code == 0 and capsys.readouterr().out.startswith("usage: python -m paradox_utils run [-h]")


def test_the_installed_command_is_paradox():
    scripts = tomllib.loads((Path(cli.__file__).parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"paradox": "paradox_utils.cli:main"} and cli.PROG == "paradox"


def test_population_command_lists_without_training(declared, tmp_path, capsys):
    """`python -m paradox_utils population` prints the varying settings and a summary, and
    writes every TrainConfig field with --csv; nothing is trained."""
    csv = tmp_path / "tiny.csv"
    assert cli.main(["population", "--profile", "tiny", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "b000-ft-all" in out and "Shared by every network: arch=resnet20" in out
    assert "3 networks (2 base, 1 fine-tuned); 3 network-epochs, 600 training images." in out
    table = pd.read_csv(csv, keep_default_na=False)
    assert list(table.columns[:3]) == ["net_id", "parent", "kind"] and {"lr", "schedule", "seed"} <= set(table)
    assert table["manipulation"].tolist() == ["", "", "all"] and table["parent"].tolist() == ["", "", "b000"]
    specs = _population("tiny", declared)
    assert listing(specs)["net_id"].tolist() == table["net_id"].tolist()
    assert summary(specs).startswith("3 networks")
    assert not list(tmp_path.glob("*.safetensors"))
    # a setting only the offspring set (quick: train_per_class) is listed per network, not as shared
    assert cli.main(["population", "--profile", "quick"]) == 0
    out = capsys.readouterr().out
    assert "train_per_class" in out.splitlines()[0] and "train_per_class=" not in out


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
