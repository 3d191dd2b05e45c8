"""plotly figures for the book, and ``show`` that renders them offline everywhere.

Colour semantics follow the paper: in every matrix, 0 is green (agreement), −1
yellow ("similar yet different") and +1 red ("different yet similar").
``show(fig)`` emits both plotly's own mime bundle (interactive in JupyterLab) and an
HTML div that expects plotly.js from the page (the book ships it in ``_static``),
so nothing is fetched from a CDN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .distortions import MANIPULATIONS, PAPER_GRID
from .evaluation import per_manipulation, visual_intelligence
from .paradox import NULL_QUANTILE, QUADRANT_NAMES, quadrant_counts, threshold

__all__ = [
    "PARADOX_COLORSCALE", "SIMILARITY_COLORSCALE", "accuracy_profiles", "heatmap", "layer_profile_figure",
    "lineage_order",
    "paradox_scatter", "set_theme", "show", "training_curves", "transplant_sweep_figure", "vi_bars",
]

PARADOX_COLORSCALE = [[0.0, "#f2d600"], [0.5, "#1a9850"], [1.0, "#d73027"]]  # −1 yellow, 0 green, +1 red
# The paper's similarity and compatibility figures (its Figures 6, 7, 9, 10): red = no
# correlation, green = high.
SIMILARITY_COLORSCALE = [[0.0, "#d73027"], [0.5, "#fee08b"], [1.0, "#1a9850"]]
MANIPULATION_COLOURS = dict(zip(MANIPULATIONS, ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756",
                                                "#72b7b2", "#eeca3b", "#9d755d"], strict=True))
RELATION_COLOURS = {"parent-child": "#d62728", "siblings": "#ff7f0e", "unrelated": "#1f77b4"}


def set_theme() -> None:
    """Use a clean white template for every later figure (an explicit call, not an import effect)."""
    import plotly.io as pio

    pio.templates.default = "plotly_white"


def show(fig: go.Figure) -> None:
    """Display ``fig``: interactive in JupyterLab, an offline HTML div in the book."""
    from IPython.display import display

    html = fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})
    display({"application/vnd.plotly.v1+json": fig.to_plotly_json(), "text/html": html}, raw=True)


def vi_bars(acc_table: pd.DataFrame, metric: str = "accuracy", title: str | None = None) -> go.Figure:
    """The paper's Figures 1/4: one stacked bar per network, one segment per manipulation
    (its mean accuracy / 8, so the bar's height is the VI), sorted by VI."""
    means = per_manipulation(acc_table, metric)
    vi = visual_intelligence(acc_table, metric).sort_values()
    fig = go.Figure()
    for name in means.columns:
        column = means.loc[vi.index, name]
        fig.add_bar(x=list(vi.index), y=column / len(means.columns), name=name,
                    marker_color=MANIPULATION_COLOURS.get(name), customdata=np.stack([column, vi], axis=1),
                    hovertemplate=f"%{{x}}<br>{name}: %{{customdata[0]:.3f}}<br>"
                                  "VI: %{customdata[1]:.3f}<extra></extra>")
    fig.update_layout(barmode="stack", title=title or "Visual intelligence per network (sorted)",
                      xaxis_title="network", yaxis_title="VI (stacked: manipulation mean / 8)",
                      legend_title="manipulation")
    return fig


def lineage_order(ids: Sequence[str], parents: Mapping[str, str | None]) -> list[str]:
    """Each base network followed by its offspring (depth first), others after."""
    children: dict[str | None, list[str]] = {}
    for net in ids:
        children.setdefault(parents.get(net) if parents.get(net) in ids else None, []).append(net)
    order: list[str] = []

    def visit(net: str) -> None:
        order.append(net)
        for child in children.get(net, []):
            visit(child)

    for root in children.get(None, []):
        visit(root)
    return order + [n for n in ids if n not in order]


def cluster_order(matrix: pd.DataFrame) -> list[str]:
    """Leaves of average-linkage clustering on 1 − matrix."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    distance = 1 - np.nan_to_num(matrix.to_numpy(dtype=float), nan=0.0)
    distance = (distance + distance.T) / 2
    np.fill_diagonal(distance, 0)
    order = leaves_list(linkage(squareform(np.clip(distance, 0, None), checks=False), "average"))
    return [matrix.index[i] for i in order]


def heatmap(matrix: pd.DataFrame, title: str, parents: Mapping[str, str | None] | None = None,
            order: str | Sequence[str] = "lineage", zlabel: str = "value", kind: str = "paradox",
            zmin: float = 0.0) -> go.Figure:
    """An N × N matrix in the paper's colours, hover with ids, lineage and value.

    ``kind="paradox"``: a difference on [−1, 1] (−1 yellow, 0 green, +1 red);
    ``kind="similarity"``: a similarity-like measure on [``zmin``, 1] (red = ``zmin``, e.g.
    0 or the measure's chance level; green = 1), as the paper draws similarity and
    compatibility. ``order``: "lineage", "cluster" or an explicit id list."""
    if kind not in ("paradox", "similarity"):
        raise ValueError(f"Unknown heat-map kind {kind!r}; valid: paradox, similarity.")
    parents = parents or {}
    ids = list(matrix.index)
    if order == "lineage":
        ids = lineage_order(ids, parents)
    elif order == "cluster" and len(ids) > 2:
        ids = cluster_order(matrix)
    elif not isinstance(order, str):
        ids = list(order)
    values = matrix.loc[ids, ids]
    lineage = [[f"{parents.get(a) or 'base'} → {parents.get(b) or 'base'}" for b in ids] for a in ids]
    low = -1.0 if kind == "paradox" else zmin
    fig = go.Figure(go.Heatmap(z=values.to_numpy(dtype=float), x=ids, y=ids, zmin=low, zmax=1,
                               colorscale=PARADOX_COLORSCALE if kind == "paradox" else SIMILARITY_COLORSCALE,
                               customdata=lineage, colorbar_title=zlabel,
                               hovertemplate="%{y} vs %{x}<br>parents: %{customdata}<br>"
                                             f"{zlabel}: %{{z:.3f}}<extra></extra>"))
    fig.update_layout(title=title, yaxis_autorange="reversed", width=None, height=max(420, 18 * len(ids) + 160))
    return fig


def paradox_scatter(pairs: pd.DataFrame, method: str, similar: float = 0.5, compatible: float = 0.5,
                    behaviour: str = "compatibility", *, similarity_null=None, behaviour_null=None,
                    quantile: float = NULL_QUANTILE) -> go.Figure:
    """Every pair: similarity (x) vs a behavioural agreement (y: ``behaviour``, a column of
    ``pairs`` — "compatibility", or one added by ``paradox.with_behaviour`` such as
    "kappa"), coloured by relation, with the two paradox quadrants shaded and counted by
    ``paradox.quadrant_counts`` (the one rule).

    Thresholds by ``paradox.threshold`` (as ``paradox.statistics_table`` sets them): a
    null's ``quantile`` where ``similarity_null`` / ``behaviour_null`` values are given,
    else the fixed ``similar`` / ``compatible``. Both are drawn as dashed lines labelled
    with what they are (e.g. "similarity null p99 = 0.141",
    "compatibility threshold (fixed) = 0.500").
    """
    similar, similar_kind = threshold(similar, similarity_null, quantile)
    compatible, compatible_kind = threshold(compatible, behaviour_null, quantile)
    similar_kind, compatible_kind = (kind if kind != "fixed" else "threshold (fixed)"  # "null p99" reads as is
                                     for kind in (similar_kind, compatible_kind))
    counts = quadrant_counts(pairs, method, similar, compatible, behaviour)
    sim, comp = pairs[f"similarity_{method}"], pairs[behaviour]
    fig = go.Figure()
    for relation, colour in RELATION_COLOURS.items():
        part = pairs[pairs["relation"] == relation]
        if len(part):
            fig.add_scatter(x=part[f"similarity_{method}"], y=part[behaviour], mode="markers", name=relation,
                            marker={"color": colour, "size": 7, "opacity": 0.75}, text=part["a"] + " vs " + part["b"],
                            hovertemplate=f"%{{text}}<br>similarity %{{x:.3f}}<br>{behaviour} %{{y:.3f}}"
                                          "<extra></extra>")
    # the axes reach below the lowest point and the thresholds, so every region and line shows
    lo_x, hi_x = min(-0.05, float(sim.min()) - 0.05, similar - 0.05), max(1.05, similar + 0.05)
    lo_y, hi_y = min(-0.05, float(comp.min()) - 0.05, compatible - 0.05), max(1.05, compatible + 0.05)
    # the shaded corners are quadrant_of's regions: x ≥ similar, y < compatible and x < similar, y ≥ compatible
    corners = {"similar_yet_different": ((similar, hi_x, lo_y, compatible), PARADOX_COLORSCALE[0][1], 0.15,
                                         {"x": hi_x, "y": lo_y, "xanchor": "right", "yanchor": "bottom"}),
               "different_yet_similar": ((lo_x, similar, compatible, hi_y), PARADOX_COLORSCALE[2][1], 0.12,
                                         {"x": lo_x, "y": hi_y, "xanchor": "left", "yanchor": "top"})}
    for quadrant, ((x0, x1, y0, y1), colour, opacity, place) in corners.items():
        fig.add_shape(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, fillcolor=colour, opacity=opacity, line_width=0,
                      name=quadrant)
        fig.add_annotation(**place, showarrow=False, name=quadrant,
                           text=f"{QUADRANT_NAMES[quadrant]}: {counts[quadrant]}")
    lines = {"similar_threshold": ({"x0": similar, "x1": similar, "y0": lo_y, "y1": hi_y},
                                   f"similarity {similar_kind} = {similar:.3f}",
                                   {"x": similar, "y": (lo_y + hi_y) / 2, "textangle": -90, "xanchor": "right"}),
             "behaviour_threshold": ({"x0": lo_x, "x1": hi_x, "y0": compatible, "y1": compatible},
                                     f"{behaviour} {compatible_kind} = {compatible:.3f}",
                                     {"x": (lo_x + hi_x) / 2, "y": compatible, "yanchor": "bottom"})}
    for name, (ends, label, place) in lines.items():
        fig.add_shape(type="line", **ends, line={"color": "#555", "dash": "dash", "width": 1}, name=name)
        fig.add_annotation(**place, text=label, showarrow=False, name=name, font={"size": 11, "color": "#555"})
    y_title = "compatibility (Pearson r of accuracies)" if behaviour == "compatibility" else behaviour
    fig.update_layout(title=f"Intrinsic similarity ({method}) vs {behaviour}, all pairs",
                      xaxis_title=f"similarity ({method})", yaxis_title=y_title,
                      xaxis_range=[lo_x, hi_x], yaxis_range=[lo_y, hi_y])
    return fig


def layer_profile_figure(profiles: Mapping[str, pd.DataFrame]) -> go.Figure:
    """The paper's Figure 5: per conv layer, mean ± 1 std of parent–child kernel correlations."""
    fig = go.Figure()
    for label, profile in profiles.items():
        fig.add_scatter(x=profile["layer"], y=profile["mean"], name=label, mode="lines+markers",
                        error_y={"type": "data", "array": profile["std"], "visible": True},
                        hovertemplate="%{x}<br>mean r %{y:.4f}<extra>" + label + "</extra>")
    fig.update_layout(title="Parent–child kernel correlation per conv layer (mean ± 1 std)",
                      xaxis_title="conv layer", yaxis_title="aligned kernel correlation")
    return fig


def accuracy_profiles(acc_table: pd.DataFrame, ids: Sequence[str], metric: str = "accuracy") -> go.Figure:
    """Accuracy over every (manipulation, level) cell, one line per network, side by side."""
    cells = [(n, float(lv)) for n, lv in PAPER_GRID]
    fig = make_subplots(rows=1, cols=len(MANIPULATIONS), shared_yaxes=True, subplot_titles=list(MANIPULATIONS))
    for k, net in enumerate(ids):
        part = acc_table[acc_table["net_id"] == net].set_index(["manipulation", "level"])[metric]
        for col, name in enumerate(MANIPULATIONS, start=1):
            levels = [lv for n, lv in cells if n == name and (n, lv) in part.index]
            fig.add_scatter(x=levels, y=[part[(name, lv)] for lv in levels], mode="lines+markers", name=net,
                            legendgroup=net, showlegend=col == 1, row=1, col=col,
                            line={"color": f"hsl({(k * 67) % 360}, 65%, 45%)"},
                            hovertemplate=f"{net}<br>{name}=%{{x}}<br>{metric} %{{y:.3f}}<extra></extra>")
    fig.update_layout(title="Accuracy profiles under the eight manipulations", yaxis_title=metric, height=380)
    return fig


def training_curves(histories: Mapping[str, Sequence[Mapping]]) -> go.Figure:
    """Validation accuracy per epoch, one line per network."""
    fig = go.Figure()
    for net, history in histories.items():
        fig.add_scatter(x=[h["epoch"] for h in history], y=[h["val_accuracy"] for h in history],
                        mode="lines+markers", name=net)
    fig.update_layout(title="Validation accuracy per epoch", xaxis_title="epoch", yaxis_title="accuracy")
    return fig


def transplant_sweep_figure(sweep: pd.DataFrame) -> go.Figure:
    """ΔVI of single-layer transplants against that layer's parent–child correlation."""
    fig = go.Figure(go.Scatter(x=sweep["layer_correlation"], y=sweep["delta_vi"], mode="markers+text",
                               text=sweep["layer"], textposition="top center", marker={"size": 9},
                               hovertemplate="%{text}<br>parent–child r %{x:.4f}<br>ΔVI %{y:+.4f}<extra></extra>"))
    fig.add_hline(y=0, line_dash="dot")
    fig.update_layout(title="Transplanting one layer from child into parent",
                      xaxis_title="parent–child kernel correlation of the layer", yaxis_title="ΔVI of the parent")
    return fig
