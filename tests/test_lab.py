"""``make lab``: a real JupyterLab server, started the way ``make lab`` starts it, on a
temporary copy of ``notebooks/``; chapters are saved through its contents API as
JupyterLab saves them, and the pairing and the default viewer are checked."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from paradox_utils import lab, profiles

ROOT = profiles.ROOT


class Server:
    """A running server's contents and settings API (token auth)."""

    def __init__(self, url: str, token: str, root: Path):
        self.url, self.token, self.root = url, token, root

    def request(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Authorization": f"token {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``lab.command`` and ``lab.environment`` (what ``make lab`` runs) on a copy of the
    chapters, profiles and jupytext.toml; the user's own Jupyter config, runtime and
    settings folders are replaced by temporary ones. Stopped by its PID at the end."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "notebooks"
    shutil.copytree(profiles.NOTEBOOKS, root, ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
    isolated = {name: str(tmp / folder) for name, folder in [
        ("JUPYTER_CONFIG_DIR", "home-config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTERLAB_SETTINGS_DIR", "user-settings"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces")]}
    env = lab.environment({**os.environ, **isolated})
    port, token = _free_port(), uuid.uuid4().hex
    command = lab.command(root, ["--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
                                 f"--IdentityProvider.token={token}"])
    log = tmp / "server.log"
    with log.open("w") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        api = Server(f"http://127.0.0.1:{port}", token, root)
        deadline = time.monotonic() + 300  # a loaded 2-core machine takes a while
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited ({process.returncode}):\n{log.read_text()[-3000:]}")
            try:
                api.request("GET", "/api/status")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer within 300 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield api
    finally:
        process.terminate()  # SIGTERM to its PID: the server shuts down cleanly
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _as_jupyterlab_saves(notebook: dict, kernelspec: dict) -> None:
    """What a JupyterLab session adds before saving: the kernel's spec and language, widget
    state, execution counts, outputs and timings, a collapsed heading, a hidden output."""
    notebook["metadata"]["kernelspec"] = kernelspec
    notebook["metadata"]["language_info"] = {"name": "python", "version": "3.11.7", "mimetype": "text/x-python",
                                             "file_extension": ".py", "pygments_lexer": "ipython3",
                                             "codemirror_mode": {"name": "ipython", "version": 3},
                                             "nbconvert_exporter": "python"}
    notebook["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                                      "version_minor": 0}}
    for k, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code":
            cell["execution_count"] = k
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": f"output of cell {k}\n"}]
            cell["metadata"]["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00.000Z",
                                             "shell.execute_reply": "2026-01-01T00:00:01.000Z"}
            cell["metadata"]["jupyter"] = {"outputs_hidden": k % 2 == 0}
        else:
            cell["metadata"]["jp-MarkdownHeadingCollapsed"] = True


@pytest.mark.slow  # a JupyterLab server
@pytest.mark.parametrize("chapter", profiles.CHAPTERS)
def test_saving_a_chapter_pairs_it_and_changes_only_the_edited_cell(server, chapter):
    source = server.root / f"{chapter}.py"
    before = source.read_text()
    specs = server.request("GET", "/api/kernelspecs")
    spec = specs["kernelspecs"][specs["default"]]["spec"]
    model = server.request("GET", f"/api/contents/{chapter}.py?type=notebook&content=1")
    notebook = model["content"]
    _as_jupyterlab_saves(notebook, {"display_name": spec["display_name"], "language": spec["language"],
                                    "name": specs["default"]})
    parameters = next(c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
    assert 'profile: str = "quick"' in parameters["source"]
    parameters["source"] = parameters["source"].replace('profile: str = "quick"', 'profile: str = "tiny"')
    server.request("PUT", f"/api/contents/{chapter}.py", {"type": "notebook", "format": "json", "content": notebook})

    assert source.read_text() == before.replace('profile: str = "quick"', 'profile: str = "tiny"', 1), (
        "the .py changed beyond the edited cell (its header or cell metadata)")
    saved = [c["outputs"] for c in notebook["cells"] if c["cell_type"] == "code"]
    paired = json.loads((server.root / f"{chapter}.ipynb").read_text())
    assert ["".join(c["outputs"][0]["text"]) for c in paired["cells"] if c["cell_type"] == "code"] == [
        o[0]["text"] for o in saved]  # the outputs live in the paired notebook
    reopened = server.request("GET", f"/api/contents/{chapter}.py?type=notebook&content=1")["content"]
    assert [c["outputs"] for c in reopened["cells"] if c["cell_type"] == "code"] == saved  # and come back
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", f"notebooks/{chapter}.ipynb"])
    assert ignored.returncode == 0, "the paired .ipynb must be git-ignored"


@pytest.mark.slow  # a JupyterLab server
def test_chapters_open_as_notebooks_by_default(server):
    settings = server.request("GET", "/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
    assert settings["schema"]["properties"]["defaultViewers"]["default"] == {"python": "Jupytext Notebook"}
    from jupyter_core.paths import jupyter_path

    scripts = [p for folder in jupyter_path("labextensions")
               for p in (Path(folder) / "jupyterlab-jupytext" / "static").glob("*.js")]
    assert any('"Jupytext Notebook"' in p.read_text(errors="ignore") for p in scripts), (
        "jupytext's JupyterLab extension no longer names its viewer 'Jupytext Notebook'")


def test_lab_command_allows_root_only_as_root(monkeypatch):
    for uid, expected in ((0, True), (1000, False)):
        monkeypatch.setattr(os, "geteuid", lambda uid=uid: uid)
        assert ("--allow-root" in lab.command()) is expected
    assert f"--ServerApp.root_dir={profiles.NOTEBOOKS}" in lab.command()
    assert lab.environment({"JUPYTER_CONFIG_PATH": "/mine"})["JUPYTER_CONFIG_PATH"] == f"{lab.CONFIG}{os.pathsep}/mine"
    assert (lab.CONFIG / "labconfig" / "default_setting_overrides.json").is_file()
    recipe = re.search(r"^lab:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe and "-m paradox_utils lab" in recipe.group(1)  # make lab runs exactly this command
