"""The explorer (``paradox_utils.explorer``): its helpers find a pair's layers and cells in
either order, and in a live kernel a user picks another network in a dropdown, and the
Output widget's table and figure follow.

The kernel is driven by tests/kernel_frontend.py in a process of its own with a hard
timeout (the nbclient version of this test hung in CI for over 12 minutes with an idle
kernel, its 300 s cell timeout never firing): past the timeout the frontend and its kernel
are killed and the test fails, saying where it stopped."""

import ast

import numpy as np
import pandas as pd
import pytest

from paradox_utils import explorer, files, report

from .kernel_frontend import drive

TIMEOUT_S = 240  # a hang guard: the whole run takes ~30 s on a quiet 2-core machine
# Three networks on synthetic tables (no checkpoint, no data): the catalog order is not alphabetical,
# and the pair (n0, n2) is stored as such while the catalog lists n2 first.
SETUP = '''
import numpy as np
import pandas as pd
from paradox_utils import distortions, explorer, report

ids = ["n2", "n0", "n1"]
acc = pd.DataFrame([{"net_id": n, "manipulation": m, "level": float(lv), "accuracy": 0.2 + 0.3 * k - 0.01 * c}
                    for k, n in enumerate(ids) for c, (m, lv) in enumerate(distortions.PAPER_GRID)])
matrix = pd.DataFrame([[1.0, 0.12, 0.13], [0.12, 1.0, 0.23], [0.13, 0.23, 1.0]], index=ids, columns=ids)
layers = np.stack([matrix.to_numpy() * s for s in (1.0, 2.0)], axis=-1)
box = explorer.explorer(acc, {"compatibility": matrix}, report.layer_table(ids, layers, ["conv1", "conv2"]))
first, second = box.children[0].children
'''
PLAN = {"setup": SETUP, "probe": "first.value, second.value", "step_timeout": 90,
        "choices": [["network B", "n2"], ["network A", "n2"]]}


def _shown(step: dict) -> tuple[str, list[str]]:
    """The one Output widget's text (tables as text/plain, printed lines) and the network
    names of its one figure's traces."""
    assert len(step["outputs"]) == 1, f"expected one Output widget after {step['after']}: {list(step['outputs'])}"
    outputs = next(iter(step["outputs"].values()))
    text = "\n".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in outputs)
    figures = [o["data"]["application/vnd.plotly.v1+json"] for o in outputs
               if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == 1, f"after {step['after']} the widget shows {len(figures)} figures:\n{text}"
    return text, sorted({trace["name"] for trace in figures[0]["data"]})


@pytest.mark.slow  # a kernel
def test_choosing_another_network_updates_the_table_and_figure(tmp_path):
    setup, chose_b, chose_a = drive(PLAN, tmp_path, TIMEOUT_S)["steps"]
    assert ast.literal_eval(setup["probe"]) == ("n0", "n1")
    text, names = _shown(setup)
    assert names == ["n0", "n1"]
    assert "n0 vs n1" in text and "0.23" in text and "0.46" in text  # the cell of each matrix, both layers

    assert ast.literal_eval(chose_b["probe"]) == ("n0", "n2"), "the kernel's dropdown took the page's choice"
    text, names = _shown(chose_b)
    assert names == ["n0", "n2"], "the figure follows the new choice"
    assert "n0 vs n2" in text and "n0 vs n1" not in text  # the table too, found for a pair stored as (n0, n2)
    assert "0.12" in text and "0.24" in text and "No per-layer similarity" not in text

    assert ast.literal_eval(chose_a["probe"]) == ("n2", "n2")
    text, names = _shown(chose_a)
    assert names == ["n2"] and "The same network twice" in text  # a sentence, not an empty space


def test_explorer_finds_every_pair_of_a_population_the_writer_stored(tmp_path):
    """Catalog order is not alphabetical (b010 before b002, offspring after all bases): the
    explorer finds the layer table of every pair, in either order, through the Parquet file
    chapter 4 writes and chapter 5 reads."""
    ids = ["b010", "b002", "b001", "b010-ft-all", "b002-ft-none", "b001-ft-contrast", "a-first"]
    names = ["conv1", "layer1.0.conv1", "layer3.2.conv2"]
    rng = np.random.default_rng(0)
    upper = np.triu(rng.uniform(size=(len(ids), len(ids))), 1)
    layers = np.stack([upper + upper.T + np.eye(len(ids)) * (k + 1) for k in range(len(names))], axis=-1)
    files.write_table(report.layer_table(ids, layers, names), tmp_path / "layers.parquet")
    stored = files.read_table(tmp_path / "layers.parquet")
    assert all(report.pair_key(a, b) == (a, b) for a, b in zip(stored["a"], stored["b"], strict=True))
    found = 0
    for i, a in enumerate(ids):
        for j, b in enumerate(ids):
            if i == j:
                continue
            row = explorer.pair_layers(stored, a, b)
            assert list(row.columns) == names and row.index.tolist() == [f"{a} vs {b}"], (a, b)
            np.testing.assert_allclose(row.to_numpy()[0], layers[i, j])
            found += 1
    assert found == len(ids) * (len(ids) - 1)
    assert explorer.pair_layers(stored, "b001", "nobody").empty


def test_explorer_helpers_find_a_pair_in_either_order(monkeypatch):
    scores = pd.DataFrame({"a": ["a", "a"], "b": ["b", "b"], "layer": ["conv1", "conv2"], "value": [0.5, 0.7]})
    for a, b in (("a", "b"), ("b", "a")):
        assert explorer.pair_layers(scores, a, b).iloc[0].to_dict() == {"conv1": 0.5, "conv2": 0.7}
    assert explorer.pair_layers(scores, "a", "c").empty
    ids = ["a", "b"]
    cells = explorer.pair_cells({"m": pd.DataFrame([[1, 0.3], [0.3, 1]], index=ids, columns=ids),
                                 "other": pd.DataFrame([[1.0]], index=["c"], columns=["c"])}, "a", "b")
    assert cells.to_dict("records") == [{"m": 0.3}]
    monkeypatch.setenv("PARADOX_BATCH", "1")
    notice = explorer.explorer(pd.DataFrame({"net_id": ids}), {}, scores)
    assert notice is explorer.NOTICE and "JupyterLab" in str(notice)
    html = notice._repr_html_()  # the book's note admonition, not a quoted Python string
    assert html.startswith('<div class="admonition note"><p class="admonition-title">') and "'" not in html
