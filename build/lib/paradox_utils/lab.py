"""JupyterLab on the chapters (``make lab``, ``python -m paradox_utils lab``).

It serves ``notebooks/``, where ``jupytext.toml`` pairs each chapter's ``.py`` with an
``.ipynb`` (git-ignored; it keeps the outputs) and keeps the ``.py`` header stable on save.
The project's Jupyter configuration folder, ``.jupyter/`` at the repository root, is put
first on ``JUPYTER_CONFIG_PATH`` for this server only: its
``labconfig/default_setting_overrides.json`` makes a double-click open a chapter as a
notebook (jupytext's "Jupytext Notebook" viewer) rather than as text. Nothing is written
into the user's home.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from .provenance import ROOT

__all__ = ["CONFIG", "command", "environment", "main"]

NOTEBOOKS = ROOT / "notebooks"
CONFIG = ROOT / ".jupyter"


def command(root_dir: str | Path = NOTEBOOKS, extra: Sequence[str] = ()) -> list[str]:
    """The ``jupyter lab`` command line serving ``root_dir``; ``--allow-root`` as root (in a
    container), where JupyterLab would otherwise refuse to start."""
    args = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={Path(root_dir).resolve()}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")
    return [*args, *extra]


def environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) with the project's ``.jupyter/`` first on
    ``JUPYTER_CONFIG_PATH`` (a user's own entries stay, after it)."""
    env = dict(os.environ if base is None else base)
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(p for p in (str(CONFIG), env.get("JUPYTER_CONFIG_PATH")) if p)
    return env


def main(extra: Sequence[str] = ()) -> None:
    """Become JupyterLab (exec, so Ctrl-C and its shutdown prompt reach the server itself)."""
    args = command(extra=extra)
    os.execve(args[0], args, environment())
