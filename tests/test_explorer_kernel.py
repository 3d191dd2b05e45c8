"""The widget explorer in a live kernel: nbclient executes a notebook that builds it on
synthetic tables and picks another network, acting as the frontend of its Output widget
(nbclient keeps that widget's outputs as JupyterLab would)."""

import ast
import copy
import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]  # the kernel imports this checkout's paradox_utils
BUILD = '''
import numpy as np
import pandas as pd
from paradox_utils import distortions, explorer, report

ids = ["n2", "n0", "n1"]  # catalog order, not alphabetical
acc = pd.DataFrame([{"net_id": n, "manipulation": m, "level": float(lv), "accuracy": 0.2 + 0.3 * k - 0.01 * c}
                    for k, n in enumerate(ids) for c, (m, lv) in enumerate(distortions.PAPER_GRID)])
matrix = pd.DataFrame([[1.0, 0.12, 0.13], [0.12, 1.0, 0.23], [0.13, 0.23, 1.0]], index=ids, columns=ids)
layers = np.stack([matrix.to_numpy() * s for s in (1.0, 2.0)], axis=-1)
box = explorer.explorer(acc, {"compatibility": matrix}, report.layer_table(ids, layers, ["conv1", "conv2"]))
first, second = box.children[0].children
first.value, second.value
'''


def _output_widget(client: NotebookClient) -> list[dict]:
    """The outputs the explorer's Output widget shows now (nbclient's copy of its state)."""
    states = [s for s in client.widget_state.values() if s.get("_model_name") == "OutputModel"]
    assert len(states) == 1, [s.get("_model_name") for s in client.widget_state.values()]
    return copy.deepcopy(states[0]["outputs"])


def _shown(outputs: list[dict]) -> tuple[str, list[str]]:
    """The Output widget's text (tables as text/plain) and the figure's network names."""
    text = "\n".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in outputs)
    figures = [o["data"]["application/vnd.plotly.v1+json"] for o in outputs
               if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == 1, text
    return text, sorted({trace["name"] for trace in figures[0]["data"]})


def test_choosing_another_network_updates_the_table_and_figure(monkeypatch, tmp_path):
    monkeypatch.delenv("PARADOX_BATCH", raising=False)  # a live frontend: the widgets, not the batch sentence
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    cells = [nbformat.v4.new_code_cell(source) for source in (BUILD, 'second.value = "n2"', 'first.value = "n2"')]
    notebook = nbformat.v4.new_notebook(cells=cells)
    client = NotebookClient(notebook, kernel_name="python3", timeout=300,  # a hang guard, not the expected time
                            resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        client.execute_cell(notebook.cells[0], 0)
        assert ast.literal_eval(notebook.cells[0].outputs[0]["data"]["text/plain"]) == ("n0", "n1")
        before = _output_widget(client)
        client.execute_cell(notebook.cells[1], 1)
        after = _output_widget(client)
        client.execute_cell(notebook.cells[2], 2)
        same = _output_widget(client)
    text, names = _shown(before)
    assert names == ["n0", "n1"]
    assert "n0 vs n1" in text and "0.23" in text and "0.46" in text  # the cell of each matrix, both layers
    text, names = _shown(after)
    assert names == ["n0", "n2"], "the figure follows the new choice"
    assert "n0 vs n2" in text and "n0 vs n1" not in text  # the table too, found for a pair stored as (n0, n2)
    assert "0.12" in text and "0.24" in text and "No per-layer similarity" not in text
    text, names = _shown(same)
    assert names == ["n2"] and "The same network twice" in text  # a sentence, not an empty space
