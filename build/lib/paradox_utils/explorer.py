"""The interactive two-network explorer of chapter 5 (ipywidgets, JupyterLab only).

In a batch run (``progress.batch_mode``) there is no live frontend, so ``explorer``
returns a note instead of widgets (``NOTICE``: the book shows it as a note admonition).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from . import plots
from .admonition import Admonition
from .progress import batch_mode
from .report import pair_key

__all__ = ["NOTICE", "explorer", "pair_cells", "pair_layers"]

NOTICE = Admonition("note", "An interactive explorer",
                    "The explorer needs a live kernel to drive its widgets: open this chapter in JupyterLab "
                    "(make lab) to pick two networks and compare them.")


def pair_cells(matrices: Mapping[str, pd.DataFrame], a: str, b: str) -> pd.DataFrame:
    """One row: the (a, b) cell of every matrix that knows both networks."""
    cells = {name: float(m.loc[a, b]) for name, m in matrices.items() if a in m.index and b in m.index}
    return pd.Series(cells, name=f"{a} vs {b}", dtype=float).to_frame().T


def pair_layers(layer_scores: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """The per-layer similarity of a and b (a ``report.layer_table``, whose pairs are stored
    under ``report.pair_key``) as one row, one column per layer; empty when the pair is absent."""
    first, second = pair_key(a, b)
    part = layer_scores[(layer_scores["a"] == first) & (layer_scores["b"] == second)]
    return part.set_index("layer")[["value"]].T.rename(index={"value": f"{a} vs {b}"})


def explorer(acc_table: pd.DataFrame, matrices: Mapping[str, pd.DataFrame], layer_scores: pd.DataFrame):
    """An ipywidgets explorer (JupyterLab): pick two networks → their accuracy profiles
    side by side, their per-layer similarity and their cell in each matrix."""
    if batch_mode():  # widgets need a live frontend, and can block nbclient (jupyter/nbclient#312)
        return NOTICE

    import ipywidgets as widgets
    from IPython.display import display

    ids = sorted(acc_table["net_id"].unique())
    first = widgets.Dropdown(options=ids, value=ids[0], description="network A")
    second = widgets.Dropdown(options=ids, value=ids[min(1, len(ids) - 1)], description="network B")
    out = widgets.Output()

    def update(*_):
        out.clear_output(wait=True)
        a, b = first.value, second.value
        with out:
            display(pair_cells(matrices, a, b).round(4))
            plots.show(plots.accuracy_profiles(acc_table, [a, b]))
            layers = pair_layers(layer_scores, a, b)
            if a == b:
                print("The same network twice: pick another to compare layer by layer.")
            elif layers.empty:  # say so: an empty space would read as "no difference"
                print(f"No per-layer similarity stored for {a} and {b}: run chapter 4 (04_similarity) again.")
            else:
                display(layers.round(3))

    first.observe(update, "value")
    second.observe(update, "value")
    update()
    return widgets.VBox([widgets.HBox([first, second]), out])
