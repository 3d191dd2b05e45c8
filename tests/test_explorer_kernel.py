"""The widget explorer in a live kernel: a user picks another network in a dropdown, and the
Output widget's table and figure follow.

The kernel is driven by tests/kernel_frontend.py in a process of its own with a hard
timeout (the nbclient version of this test hung in CI for over 12 minutes with an idle
kernel, its 300 s cell timeout never firing): past the timeout the frontend and its kernel
are killed and the test fails, saying where it stopped."""

import ast

import pytest

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
