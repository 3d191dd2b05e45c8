"""plotly figures for the book, and ``show`` that renders them offline everywhere.

Colours follow the paper, by what a matrix holds (``MATRIX_KINDS``, the one place
they are chosen): similarity-like matrices — kernel similarity, CKA, compatibility,
error consistency κ (its Figures 6, 7, 9, 10) — run from red (0, no correlation) to
green (1); paradox matrices, compatibility − similarity (its Figures 2, 3, 8, 11), from
yellow (−1, "similar yet different") through green (0, agreement) to red (+1,
"different yet similar"). Figures of similarity-like measures mark the measure's chance
level where they are given it (a colour-bar tick, or a line on a similarity axis).
Overview figures may draw a representative subset of whole families
(:func:`representative_subset`), as the paper's Figures 1 and 2 draw 20 of 329 networks.
``show(fig)`` emits both plotly's own mime bundle (interactive in JupyterLab) and an
HTML div that expects plotly.js from the page (the book ships it in ``_static``),
so nothing is fetched from a CDN.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .distortions import MANIPULATIONS, PAPER_GRID
from .evaluation import images_per_cell, per_manipulation, visual_intelligence
from .grounding import PAIRS
from .nulls import NULL_QUANTILE, threshold
from .paradox import QUADRANT_NAMES, quadrant_counts
from .sentences import images_text

__all__ = [
    "MATRIX_KINDS", "PAIR_STYLES", "PARADOX_COLORSCALE", "SIMILARITY_COLORSCALE", "MatrixKind", "accuracy_profiles",
    "families", "grounding_figure", "heatmap", "layer_profile_figure", "lineage_order", "paradox_scatter",
    "representative_subset", "set_theme", "show", "single_epoch_bars", "titled_for_any_width", "training_curves",
    "training_figure", "transplant_sweep_figure", "vi_bars",
]

PARADOX_COLORSCALE = [[0.0, "#f2d600"], [0.5, "#1a9850"], [1.0, "#d73027"]]  # −1 yellow, 0 green, +1 red
# The paper's similarity and compatibility figures (its Figures 6, 7, 9, 10): red = no
# correlation, green = high.
SIMILARITY_COLORSCALE = [[0.0, "#d73027"], [0.5, "#fee08b"], [1.0, "#1a9850"]]


class MatrixKind(NamedTuple):
    """How a kind of N × N matrix is drawn: its colour scale over [zmin, zmax] (values
    outside take the end colours) and the colour bar's default label."""

    colorscale: list
    zmin: float
    zmax: float
    label: str


# What a matrix holds → how it is drawn. Similarity-like measures share the paper's
# similarity colours on [0, 1]: red is "no correlation" (0; a negative value draws red
# too, the hover gives it), green 1. κ reads alike: 0 is agreement expected by chance.
MATRIX_KINDS = {
    "paradox": MatrixKind(PARADOX_COLORSCALE, -1.0, 1.0, "compatibility − similarity"),
    "similarity": MatrixKind(SIMILARITY_COLORSCALE, 0.0, 1.0, "similarity"),
    "compatibility": MatrixKind(SIMILARITY_COLORSCALE, 0.0, 1.0, "compatibility"),
    "kappa": MatrixKind(SIMILARITY_COLORSCALE, 0.0, 1.0, "κ"),
}
CHANCE_LINE = {"color": "#555", "dash": "dot", "width": 1.5}
MANIPULATION_COLOURS = dict(zip(MANIPULATIONS, ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756",
                                                "#72b7b2", "#eeca3b", "#9d755d"], strict=True))
WEBGL_POINTS = 1000  # above this many points a trace draws with WebGL (plotly express's rule): 54k SVG markers crawl
RELATION_COLOURS = {"parent-child": "#d62728", "siblings": "#ff7f0e", "unrelated": "#1f77b4"}
# the grounding figure's pair sets: within families in the related pairs' red, between in the unrelated blue
PAIR_STYLES = dict(zip(PAIRS, [("#333333", "circle"), (RELATION_COLOURS["parent-child"], "diamond"),
                               (RELATION_COLOURS["unrelated"], "square")], strict=True))


def set_theme() -> None:
    """Use a clean white template for every later figure (an explicit call, not an import effect)."""
    import plotly.io as pio

    pio.templates.default = "plotly_white"


# plotly never wraps a figure's title: on a phone (a ~370 px figure, ~40 characters of its
# 17 px title type) a longer one is cut at the edge. Broken between words into lines of at
# most this many characters it stays whole at any width; the top margin holds two.
TITLE_CHARACTERS = 40


def titled_for_any_width(fig: go.Figure) -> go.Figure:
    """``fig`` — a copy, when its title changes — with a title of more than
    ``TITLE_CHARACTERS`` characters broken between words into lines (``<br>``) of at most
    that many. A title already broken by hand is left as it is."""
    text = fig.layout.title.text
    if not text or "<br>" in text or len(text) <= TITLE_CHARACTERS:
        return fig
    return go.Figure(fig).update_layout(title_text="<br>".join(textwrap.wrap(text, TITLE_CHARACTERS)))


def show(fig: go.Figure) -> None:
    """Display ``fig``: interactive in JupyterLab, an offline HTML div in the book; a long
    title broken into lines (:func:`titled_for_any_width`)."""
    from IPython.display import display

    fig = titled_for_any_width(fig)
    html = fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})
    display({"application/vnd.plotly.v1+json": fig.to_plotly_json(), "text/html": html}, raw=True)


def vi_bars(acc_table: pd.DataFrame, metric: str = "accuracy", title: str | None = None,
            networks: Sequence[str] | None = None) -> go.Figure:
    """The paper's Figures 1/4: one stacked bar per network, one segment per manipulation
    (its mean accuracy / 8, so the bar's height is the VI), sorted by VI.

    ``networks``: the ids to draw (default all, e.g. :func:`representative_subset`); when
    fewer than the table holds, the title says "k of N networks". The default title and
    the axis name the evaluation set ("on 1,000 test images") when the table has
    ``evaluate``'s n_images column: another set gives the same network another VI."""
    where = f" on {images_text(images_per_cell(acc_table))}" if "n_images" in acc_table else ""
    means = per_manipulation(acc_table, metric)
    shown = _shown(list(means.index), networks)
    vi = visual_intelligence(acc_table, metric).loc[shown].sort_values()
    fig = go.Figure()
    for name in means.columns:
        column = means.loc[vi.index, name]
        fig.add_bar(x=list(vi.index), y=column / len(means.columns), name=name,
                    marker_color=MANIPULATION_COLOURS.get(name), customdata=np.stack([column, vi], axis=1),
                    hovertemplate=f"%{{x}}<br>{name}: %{{customdata[0]:.3f}}<br>"
                                  "VI: %{customdata[1]:.3f}<extra></extra>")
    title = _of(title or f"Visual intelligence per network{where} (sorted)", shown, means.index)
    fig.update_layout(barmode="stack", title=title, xaxis_title="network",
                      yaxis_title=f"VI{where} (stacked: manipulation mean / 8)", legend_title="manipulation")
    return fig


def _shown(ids: Sequence[str], networks: Sequence[str] | None) -> list[str]:
    """The ``ids`` that are in ``networks`` (all when None), in the order of ``ids`` — so a
    subset is ordered as the whole figure would be; a name that is not an id is refused."""
    if networks is None:
        return list(ids)
    known, wanted = set(ids), set(networks)
    if unknown := [n for n in networks if n not in known]:
        raise ValueError(f"The figure has no network {', '.join(map(str, unknown))} to draw.")
    return [n for n in ids if n in wanted]


def _of(title: str, shown: Sequence[str], ids: Sequence[str]) -> str:
    """``title``, followed by "(k of N networks)" when only k of the N are drawn."""
    return title if len(shown) == len(ids) else f"{title} ({len(shown)} of {len(ids)} networks)"


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


def families(parents: Mapping[str, str | None]) -> list[list[str]]:
    """The population split into families: each base network (no parent among ``parents``'
    keys) with all its descendants, in :func:`lineage_order`; families in that order too."""
    groups: list[list[str]] = []
    for net in lineage_order(list(parents), parents):
        if not groups or parents.get(net) not in parents:
            groups.append([])
        groups[-1].append(net)
    return groups


def representative_subset(parents: Mapping[str, str | None], n: int, seed: int = 0) -> list[str]:
    """``n`` of the networks of ``parents`` (net_id → parent or None, every network a key),
    families kept together, in lineage order: the overview figures' "representative subset
    of 20 of 329 networks", as the paper draws its Figures 1 and 2.

    Whole families (:func:`families`) are taken in a seeded random order, each that still
    fits in what is left of ``n``; if none fits exactly, the first family that did not fit is
    cut to the remainder — its parent first, then its offspring in lineage order — so the
    answer has exactly ``n`` networks and a drawn offspring always comes with its parent.
    ``n`` ≤ 0 or ≥ the population: every network. The same ``parents`` and ``seed`` give the
    same networks, so chapters drawing the same population draw the same subset."""
    everyone = lineage_order(list(parents), parents)
    if n <= 0 or n >= len(everyone):
        return everyone
    groups = families(parents)
    chosen: list[str] = []
    left, too_big = n, None
    for k in np.random.default_rng(seed).permutation(len(groups)):
        if len(groups[k]) <= left:
            chosen += groups[k]
            left -= len(groups[k])
        elif too_big is None:
            too_big = groups[k]
        if left == 0:
            break
    if left:  # some family did not fit (else all N < n would have been taken)
        chosen += too_big[:left]
    keep = set(chosen)
    return [net for net in everyone if net in keep]


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
            order: str | Sequence[str] = "lineage", zlabel: str | None = None, *, kind: str,
            zmin: float | None = None, chance: float | None = None,
            networks: Sequence[str] | None = None) -> go.Figure:
    """An N × N matrix (a DataFrame indexed by net_id both ways) in the paper's colours for
    what it holds, hover with ids, lineage and value.

    ``kind`` (:data:`MATRIX_KINDS`): "paradox" — a difference, compatibility − similarity, on
    [−1, 1] (−1 yellow, 0 green, +1 red); "similarity" (kernel similarity, CKA),
    "compatibility" or "kappa" — a similarity-like measure on [0, 1] (red = 0, no correlation;
    green = 1). ``zmin``: another lower end for the scale (e.g. the measure's chance level);
    ``zlabel``: the colour bar's label (default the kind's).

    ``chance``: the measure's chance level (e.g. the mean over pairs of untrained networks,
    or 0 for κ), marked as a tick "chance 0.136" on the colour bar — or named in its title
    where it lies off the scale. Refused for a paradox matrix: a difference has no chance
    level of its own.

    ``order``: "lineage", "cluster" or an explicit id list. ``networks``: the ids to draw
    (default all, e.g. :func:`representative_subset`); when fewer than the matrix holds,
    the title says "k of N networks"."""
    if kind not in MATRIX_KINDS:
        raise ValueError(f"Unknown heat-map kind {kind!r}; valid: {', '.join(MATRIX_KINDS)}.")
    if chance is not None and kind == "paradox":
        raise ValueError("A paradox matrix (compatibility − similarity) has no chance level to mark; "
                         "mark chance on the similarity and compatibility figures.")
    style = MATRIX_KINDS[kind]
    low, high = style.zmin if zmin is None else zmin, style.zmax
    zlabel = zlabel or style.label
    parents = parents or {}
    shown = _shown(list(matrix.index), networks)
    part = matrix.loc[shown, shown]
    ids = shown
    if order == "lineage":
        ids = lineage_order(ids, parents)
    elif order == "cluster" and len(ids) > 2:
        ids = cluster_order(part)
    elif not isinstance(order, str):
        ids = list(order)
    values = part.loc[ids, ids]
    lineage = [[f"{parents.get(a) or 'base'} → {parents.get(b) or 'base'}" for b in ids] for a in ids]
    colorbar = {"title": {"text": zlabel}}
    if chance is not None:
        colorbar = _chance_colorbar(zlabel, low, high, chance)
    # float32: the hover shows 3 decimals, and a 329 × 329 matrix weighs 0.6 MB less in the page
    fig = go.Figure(go.Heatmap(z=values.to_numpy(dtype=np.float32), x=ids, y=ids, zmin=low, zmax=high,
                               colorscale=style.colorscale, customdata=lineage, colorbar=colorbar,
                               hovertemplate="%{y} vs %{x}<br>parents: %{customdata}<br>"
                                             f"{zlabel}: %{{z:.3f}}<extra></extra>"))
    fig.update_layout(title=_of(title, shown, matrix.index), yaxis_autorange="reversed", width=None,
                      height=max(420, 18 * len(ids) + 160))
    return fig


def _chance_colorbar(label: str, low: float, high: float, chance: float) -> dict:
    """A colour bar with ticks every 0.2 (0.5 on a wider scale) and one more at ``chance``
    labelled "chance 0.136"; ticks too close to it are left out so the labels do not overlap.
    A chance level off the scale is named in the title instead."""
    step = 0.2 if high - low <= 1 else 0.5
    # + 0.0: ceil(−1e-9) is −0.0, which would be labelled "-0"
    ticks = [round(float(t), 6) + 0.0 for t in np.arange(np.ceil(low / step - 1e-9) * step, high + 1e-9, step)]
    if not low <= chance <= high:
        return {"title": {"text": f"{label}<br>(chance {chance:.3f}, off the scale)"}, "tickmode": "array",
                "tickvals": ticks, "ticktext": [f"{t:g}" for t in ticks]}
    ticks = [t for t in ticks if abs(t - chance) > 0.06 * (high - low)]
    values = sorted([*ticks, float(chance)])
    return {"title": {"text": label}, "tickmode": "array", "tickvals": values,
            "ticktext": [f"chance {v:.3f}" if v == chance else f"{v:g}" for v in values]}


def _mark_chance(fig: go.Figure, value: float, axis: str, low: float, high: float, what: str = "chance",
                 side: str = "right") -> None:
    """Mark a similarity axis' chance level: a dotted line at ``value`` across the plot
    (``axis`` "x": vertical, "y": horizontal) labelled "chance 0.136" — or, where ``value``
    lies outside [``low``, ``high``], the range the axis shows, a note at the axis' nearer
    edge ("chance 0.136 below this axis"): stretching the axis to reach it would flatten
    the data the figure is for. A vertical line's label runs down from its top on its
    right (``side``), or up from its foot on its left."""
    label = f"{what} {value:.3f}"
    if low <= value <= high:
        ends = ({"x0": value, "x1": value, "y0": 0, "y1": 1, "yref": "paper"} if axis == "x" else
                {"x0": 0, "x1": 1, "xref": "paper", "y0": value, "y1": value})
        fig.add_shape(type="line", **ends, line=CHANCE_LINE, name="chance")
        top = side == "right"
        place = ({"x": value, "y": 1 if top else 0, "yref": "paper", "textangle": -90,
                  "xanchor": "left" if top else "right", "yanchor": "top" if top else "bottom"}
                 if axis == "x" else {"x": 0, "xref": "paper", "y": value, "xanchor": "left", "yanchor": "bottom"})
    else:
        where = ("left of" if axis == "x" else "below") if value < low else ("right of" if axis == "x" else "above")
        label = f"{label} {where} this axis"
        edge = low if value < low else high
        place = ({"x": edge, "y": 0, "yref": "paper", "xanchor": "left" if value < low else "right",
                  "yanchor": "bottom"} if axis == "x" else
                 {"x": 1, "xref": "paper", "y": edge, "xanchor": "right",
                  "yanchor": "bottom" if value < low else "top"})
    fig.add_annotation(**place, text=label, showarrow=False, name="chance", font={"size": 11, "color": "#555"})


def _padded(values: Sequence[float], least: float = 0.005) -> tuple[float, float]:
    """The range of the finite ``values``, padded by 5 % of its span (at least ``least``) each side."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    pad = max(0.05 * (high - low), least)
    return low - pad, high + pad


def paradox_scatter(pairs: pd.DataFrame, method: str, similar: float = 0.5, compatible: float = 0.5,
                    behaviour: str = "compatibility", *, similarity_null=None, behaviour_null=None,
                    quantile: float = NULL_QUANTILE, chance: float | None = None) -> go.Figure:
    """Every pair: similarity (x) vs a behavioural agreement (y: ``behaviour``, a column of
    ``pairs`` — "compatibility", or one added by ``paradox.with_behaviour`` such as
    "kappa"), coloured by relation, with the two paradox quadrants shaded and counted by
    ``paradox.quadrant_counts`` (the one rule).

    Thresholds by ``nulls.threshold`` (as ``paradox.statistics_table`` sets them): a
    null's ``quantile`` where ``similarity_null`` / ``behaviour_null`` values are given,
    else the fixed ``similar`` / ``compatible``. Both are drawn as dashed lines labelled
    with what they are (e.g. "similarity null p99 = 0.141",
    "compatibility threshold (fixed) = 0.500"). ``chance``: the similarity's chance level
    (e.g. the null's mean over untrained pairs), a dotted line labelled "similarity chance
    0.136" beside the threshold.
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
            trace = go.Scattergl if len(part) > WEBGL_POINTS else go.Scatter
            # float32: the hover shows 3 decimals, and the paper's 53,956 pairs weigh 0.4 MB less per figure
            fig.add_trace(trace(x=part[f"similarity_{method}"].to_numpy(np.float32),
                                y=part[behaviour].to_numpy(np.float32), mode="markers", name=relation,
                                marker={"color": colour, "size": 7, "opacity": 0.75},
                                text=part["a"] + " vs " + part["b"],
                                hovertemplate=f"%{{text}}<br>similarity %{{x:.3f}}<br>{behaviour} %{{y:.3f}}"
                                              "<extra></extra>"))
    # the axes reach below the lowest point and the thresholds, so every region and line shows
    marks = [similar] if chance is None else [similar, chance]
    lo_x, hi_x = min(-0.05, float(sim.min()) - 0.05, *(m - 0.05 for m in marks)), max(1.05, *(m + 0.05 for m in marks))
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
    # The similarity threshold (a null's p99) often lies a hair from the chance level (the
    # null's mean): each line's label goes on its outer side, so the two never meet — the
    # chance label at the foot of its line, clear of the count in the upper-left corner;
    # the behaviour threshold's label at the right end of its line, clear of both.
    # The vertical label sits mid-way along the longer of the two stretches the behaviour
    # threshold cuts its line into, clear of that threshold's own label.
    chance_first = chance is not None and chance <= similar
    middle = (compatible + hi_y) / 2 if hi_y - compatible >= compatible - lo_y else (lo_y + compatible) / 2
    lines = {"similar_threshold": ({"x0": similar, "x1": similar, "y0": lo_y, "y1": hi_y},
                                   f"similarity {similar_kind} = {similar:.3f}",
                                   {"x": similar, "y": middle, "textangle": -90,
                                    "xanchor": "left" if chance_first else "right"}),
             "behaviour_threshold": ({"x0": lo_x, "x1": hi_x, "y0": compatible, "y1": compatible},
                                     f"{behaviour} {compatible_kind} = {compatible:.3f}",
                                     {"x": hi_x, "y": compatible, "xanchor": "right", "yanchor": "bottom"})}
    for name, (ends, label, place) in lines.items():
        fig.add_shape(type="line", **ends, line={"color": "#555", "dash": "dash", "width": 1}, name=name)
        fig.add_annotation(**place, text=label, showarrow=False, name=name, font={"size": 11, "color": "#555"})
    if chance is not None:
        _mark_chance(fig, chance, "x", lo_x, hi_x, "similarity chance", side="left" if chance_first else "right")
    y_title = "compatibility (Pearson r of accuracies)" if behaviour == "compatibility" else behaviour
    fig.update_layout(title=f"Intrinsic similarity ({method}) vs {behaviour}, all pairs",
                      xaxis_title=f"similarity ({method})", yaxis_title=y_title,
                      xaxis_range=[lo_x, hi_x], yaxis_range=[lo_y, hi_y],
                      # the three relations' legend below the plot, which keeps the full width on a phone
                      legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.2, "yanchor": "top"},
                      height=560)  # the plot keeps ~320 px of height on a phone, below a two-line title
    return fig


def layer_profile_figure(profiles: Mapping[str, pd.DataFrame], chance: float | None = None) -> go.Figure:
    """The paper's Figure 5: per conv layer, mean ± 1 std of parent–child kernel correlations
    (``profiles``: label → ``similarity.layer_profile`` table with layer, mean, std).

    ``chance``: the kernel similarity's chance level (e.g. the paper's measure between
    untrained networks, averaged over layers): a dotted line where it lies within the
    profiles' range, else a note at the axis' edge — the axis stays on the profiles, whose
    differences between layers are what the figure shows."""
    fig = go.Figure()
    for label, profile in profiles.items():
        fig.add_scatter(x=profile["layer"], y=profile["mean"], name=label, mode="lines+markers",
                        error_y={"type": "data", "array": profile["std"], "visible": True},
                        hovertemplate="%{x}<br>mean r %{y:.4f}<extra>" + label + "</extra>")
    fig.update_layout(title="Parent–child kernel correlation per conv layer (mean ± 1 std)",
                      xaxis_title="conv layer", yaxis_title="aligned kernel correlation")
    if chance is not None and profiles:
        low, high = _padded([v for p in profiles.values() for v in (*(p["mean"] - p["std"]), *(p["mean"] + p["std"]))])
        fig.update_yaxes(range=[low, high])
        _mark_chance(fig, chance, "y", low, high)
    return fig


def grounding_figure(table: pd.DataFrame, scope: str = "all") -> go.Figure:
    """Which similarity measure tracks behaviour: ``grounding.grounding_table``'s Spearman r of
    each similarity measure (a row) with each behavioural measure (a panel, stacked so a phone
    keeps the width), over all pairs, within and between families (a marker and colour each,
    side by side in a row), with the family intervals as error bars and a line at r = 0.

    ``scope``: the table's scope to draw ("all": pooled over the grid, or a manipulation).
    A row without a finite r draws no marker (hover names n_pairs and n_families).
    """
    part = table[table["scope"] == scope]
    if part.empty:
        raise ValueError(f"The grounding table has no scope {scope!r}; it holds "
                         f"{', '.join(map(str, table['scope'].unique()))}.")
    measures = list(dict.fromkeys(part["behaviour"]))
    names = list(dict.fromkeys(part["similarity"]))
    fig = make_subplots(rows=len(measures), cols=1, shared_xaxes=True, subplot_titles=measures,
                        vertical_spacing=min(0.12, 0.5 / len(measures)))
    step = 0.22  # the three pair sets of a similarity measure, a little apart within its row
    for k, measure in enumerate(measures):
        rows = part[part["behaviour"] == measure]
        for offset, (label, (colour, symbol)) in zip((-step, 0.0, step), PAIR_STYLES.items(), strict=True):
            sub = rows[rows["pairs"] == label].set_index("similarity").reindex(names)
            r, low, high = (sub[c].to_numpy(dtype=float) for c in ("r", "low", "high"))
            fig.add_scatter(x=r, y=np.arange(len(names)) + offset, mode="markers", name=label, legendgroup=label,
                            showlegend=k == 0, marker={"color": colour, "symbol": symbol, "size": 9},
                            error_x={"type": "data", "symmetric": False, "array": high - r, "arrayminus": r - low,
                                     "visible": True, "color": colour, "thickness": 1.5},
                            customdata=np.stack([names, low, high, sub["n_pairs"], sub["n_families"]], axis=1),
                            hovertemplate=(f"%{{customdata[0]}} vs {measure}, {label}<br>r %{{x:.3f}} "
                                           "[%{customdata[1]:.3f}, %{customdata[2]:.3f}]<br>"
                                           "%{customdata[3]} pairs, %{customdata[4]} families<extra></extra>"),
                            row=k + 1, col=1)
        fig.update_yaxes(tickmode="array", tickvals=list(range(len(names))), ticktext=names,
                         range=[len(names) - 0.5, -0.5], row=k + 1, col=1)
    fig.add_vline(x=0, line={"color": "#555", "dash": "dash", "width": 1}, name="zero")
    level = table.attrs.get("level", part["level"].iloc[0] if "level" in part else 0.95)
    where = "over the whole grid" if scope == "all" else f"under {scope}"
    fig.update_xaxes(range=[-1.05, 1.05])
    fig.update_xaxes(title_text="Spearman r across pairs", row=len(measures), col=1)
    fig.update_layout(title=f"Similarity vs behaviour, {where} ({level * 100:g} % family intervals)",
                      height=160 + len(measures) * (60 + 55 * len(names)),
                      legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.08, "yanchor": "top"})
    fig.update_annotations(font_size=13)
    return fig


def accuracy_profiles(acc_table: pd.DataFrame, ids: Sequence[str], metric: str = "accuracy",
                      columns: int = 4) -> go.Figure:
    """Accuracy over every (manipulation, level) cell, one line per network: one subplot
    per manipulation, ``columns`` to a row, all on one accuracy axis.

    Laid out to read at any width (the figure is responsive: a 1280 px page gives it the
    content column's ~680 px, a phone ~370 px): eight subplots in one row left ~50 px per
    subplot on a phone, and their titles ran into each other ("contrastilluminant"); two
    rows of four leave ~80 px between title centres there, for titles of 13 px type up to
    "salt_pepper" (~70 px). The legend lies below the plots, where it takes height rather
    than the width the subplots need."""
    cells = [(n, float(lv)) for n, lv in PAPER_GRID]
    rows = -(-len(MANIPULATIONS) // columns)
    fig = make_subplots(rows=rows, cols=columns, shared_yaxes="all", subplot_titles=list(MANIPULATIONS),
                        horizontal_spacing=0.06, vertical_spacing=0.22)
    for k, net in enumerate(ids):
        part = acc_table[acc_table["net_id"] == net].set_index(["manipulation", "level"])[metric]
        for i, name in enumerate(MANIPULATIONS):
            levels = [lv for n, lv in cells if n == name and (n, lv) in part.index]
            fig.add_scatter(x=levels, y=[part[(name, lv)] for lv in levels], mode="lines+markers", name=net,
                            legendgroup=net, showlegend=i == 0, row=i // columns + 1, col=i % columns + 1,
                            line={"color": f"hsl({(k * 67) % 360}, 65%, 45%)"},
                            hovertemplate=f"{net}<br>{name}=%{{x}}<br>{metric} %{{y:.3f}}<extra></extra>")
    fig.update_annotations(font_size=13)  # the subplot titles: make_subplots' 16 px would crowd a phone
    fig.update_xaxes(nticks=4, tickfont_size=10)
    fig.update_yaxes(title_text=metric, col=1)
    # a plotly title does not wrap: a phone cut "… under the eight manipulations" at "manipulation"
    fig.update_layout(title="Accuracy profiles per manipulation", height=200 + 170 * rows,
                      margin={"l": 60, "r": 10, "t": 90, "b": 40},
                      legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.12, "yanchor": "top"})
    return fig


def training_figure(histories: Mapping[str, Sequence[Mapping]]) -> go.Figure:
    """Validation accuracy over training (``histories``: net_id → its checkpoint's history,
    one mapping per epoch with epoch and val_accuracy, a fraction): :func:`training_curves`
    when some network trained two epochs or more, else :func:`single_epoch_bars` — a
    curve of one point per network would be a column of dots at epoch 1."""
    if max((len(history) for history in histories.values()), default=0) >= 2:
        return training_curves(histories)
    return single_epoch_bars(histories)


def training_curves(histories: Mapping[str, Sequence[Mapping]]) -> go.Figure:
    """Validation accuracy per epoch, one line per network."""
    fig = go.Figure()
    for net, history in histories.items():
        fig.add_scatter(x=[h["epoch"] for h in history], y=[h["val_accuracy"] for h in history],
                        mode="lines+markers", name=net)
    fig.update_layout(title="Validation accuracy per epoch", xaxis_title="epoch", yaxis_title="accuracy")
    return fig


def single_epoch_bars(histories: Mapping[str, Sequence[Mapping]]) -> go.Figure:
    """Validation accuracy after the one epoch each network trained: one bar per network
    (in the order of ``histories``; a network without a recorded epoch is left out)."""
    trained = {net: history[-1]["val_accuracy"] for net, history in histories.items() if history}
    fig = go.Figure(go.Bar(x=list(trained), y=list(trained.values()), text=[f"{v:.3f}" for v in trained.values()],
                           textposition="outside", hovertemplate="%{x}<br>validation accuracy %{y:.3f}<extra></extra>"))
    fig.update_layout(title="Validation accuracy after the single epoch each network trained",
                      xaxis_title="network", yaxis_title="accuracy")
    return fig


# The sweep figure's frame, in px: its height and margins are fixed, its width follows the
# page — the book's content column is ~370 px wide on a phone and ~680 px on a 1280 px page.
SWEEP_HEIGHT, SWEEP_MARGIN = 450, {"l": 70, "r": 20, "t": 60, "b": 60}
SWEEP_WIDTHS = (370, 680)
LABEL_FONT = 11  # px; a name is ~0.6 em per character wide and ~1.3 em tall


def transplant_sweep_figure(sweep: pd.DataFrame, chance: float | None = None, labels: int = 5) -> go.Figure:
    """ΔVI of single-layer transplants against that layer's parent–child correlation
    (``sweep``: columns layer, layer_correlation, delta_vi; one row per conv layer).
    ``chance``: the kernel similarity's chance level, marked on the correlation axis as in
    :func:`layer_profile_figure`.

    Every point names its layer on hover; beside it, only the ``labels`` layers of largest
    |ΔVI| — those the sweep is read for — and of those only the ones whose name fits
    (:func:`_place_labels`): inside the plotting area, clear of the names already placed.
    (A ResNet20 has 21 conv layers, many at nearly the same correlation: a name on each
    overlapped its neighbours' and ran off the plot's edge.) The ΔVI axis leaves a line of
    text beyond the outermost points, so their names fit above or below them."""
    where = f" on {images_text(int(sweep['test_images'].iloc[0]))}" if "test_images" in sweep and len(sweep) else ""
    # the layers' correlations after a short fine-tune differ in the fourth decimal: a pad
    # of 0.005 would squeeze them into a sliver of the axis
    x_low, x_high = _padded(sweep["layer_correlation"], least=1e-5) if len(sweep) else (0.0, 1.0)
    y_low, y_high = _padded([*sweep["delta_vi"], 0.0], least=1e-4)  # 0 stays in view: the no-change line
    room = 0.25 * (y_high - y_low)  # a name is ~15 px on a plotting area ~330 px tall: a quarter of the span clears it
    y_low, y_high = y_low - room, y_high + room
    magnitude = sweep["delta_vi"].abs().fillna(-1.0).to_numpy()
    wanted = list(np.argsort(-magnitude, kind="stable")[:max(labels, 0)])
    places = _place_labels(sweep["layer_correlation"].to_numpy(float), sweep["delta_vi"].to_numpy(float),
                           list(sweep["layer"]), wanted, (x_low, x_high), (y_low, y_high))
    fig = go.Figure(go.Scatter(x=sweep["layer_correlation"], y=sweep["delta_vi"], mode="markers+text",
                               text=[layer if k in places else "" for k, layer in enumerate(sweep["layer"])],
                               textposition=[places.get(k, "top center") for k in range(len(sweep))],
                               textfont={"size": LABEL_FONT}, customdata=sweep["layer"], marker={"size": 9},
                               name="layer", hovertemplate="%{customdata}<br>parent–child r %{x:.4f}<br>"
                                                           "ΔVI %{y:+.4f}<extra></extra>"))
    fig.add_hline(y=0, line_dash="dot")
    fig.update_layout(title="Transplanting one layer from child into parent", height=SWEEP_HEIGHT,
                      margin=SWEEP_MARGIN, xaxis_title="parent–child kernel correlation of the layer",
                      yaxis_title=f"ΔVI of the parent{where}", xaxis_range=[x_low, x_high], yaxis_range=[y_low, y_high])
    if chance is not None and len(sweep):
        _mark_chance(fig, chance, "x", x_low, x_high)
    return fig


def _place_labels(x: np.ndarray, y: np.ndarray, texts: Sequence[str], wanted: Sequence[int],
                  x_range: tuple[float, float], y_range: tuple[float, float]) -> dict[int, str]:
    """Where to name the points ``wanted`` (indices into ``x``, ``y``, ``texts``, in order
    of importance): index → a plotly ``textposition``, for those that fit.

    Each name tries, in turn: beside its point on the side away from the no-change line
    (above a gain, below a loss), towards the middle of the x axis, then the other
    positions around the point. A position fits where the name's estimated box (px, from
    its length at ``LABEL_FONT``) lies inside the plotting area, clear of every name already
    placed and of every other point (a name on a point reads as that point's), at both of
    ``SWEEP_WIDTHS``: a gap between two boxes changes linearly with the width, so one
    found at the narrowest and at the widest column holds at every width between. A name
    that fits nowhere is left to the hover."""
    height = SWEEP_HEIGHT - SWEEP_MARGIN["t"] - SWEEP_MARGIN["b"]
    (x0, x1), (y0, y1) = x_range, y_range
    gap = 5.0  # px from the point's centre to its name: the marker's radius and a little air
    widths = [w - SWEEP_MARGIN["l"] - SWEEP_MARGIN["r"] for w in SWEEP_WIDTHS]  # of the plotting area
    placed: dict[int, str] = {}
    boxes: list[list[tuple[float, float, float, float]]] = []  # per placed name: its box at each width

    def pixel(k: int, width: float) -> tuple[float, float]:
        """Point k's centre in px from the plotting area's top left, at that area's ``width``."""
        return (x[k] - x0) / (x1 - x0) * width, (y1 - y[k]) / (y1 - y0) * height

    def box(k: int, place: str, width: float) -> tuple[float, float, float, float]:
        px, py = pixel(k, width)
        w, h = 0.6 * LABEL_FONT * len(texts[k]) + 2, 1.3 * LABEL_FONT
        vertical, horizontal = place.split()
        left = {"left": px - gap - w, "center": px - w / 2, "right": px + gap}[horizontal]
        top = {"top": py - gap - h, "middle": py - h / 2, "bottom": py + gap}[vertical]
        return left, top, left + w, top + h

    def marker(k: int, width: float) -> tuple[float, float, float, float]:
        px, py = pixel(k, width)
        return px - gap, py - gap, px + gap, py + gap

    shown = [k for k in range(len(x)) if np.isfinite(x[k]) and np.isfinite(y[k])]
    for k in wanted:
        if k not in shown:
            continue
        points = [[marker(j, w) for w in widths] for j in shown if j != k]
        inward = "left" if x[k] > (x0 + x1) / 2 else "right"
        outward = "right" if inward == "left" else "left"
        away, toward = ("bottom", "top") if y[k] < 0 else ("top", "bottom")
        for place in (f"{away} {inward}", f"{away} center", f"middle {inward}", f"{away} {outward}",
                      f"{toward} {inward}", f"{toward} center", f"middle {outward}", f"{toward} {outward}"):
            mine = [box(k, place, w) for w in widths]
            inside = all(b[0] >= 0 and b[1] >= 0 and b[2] <= w and b[3] <= height
                         for b, w in zip(mine, widths, strict=True))
            clear = all(a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
                        for other in boxes + points for a, b in zip(mine, other, strict=True))
            if inside and clear:
                placed[k] = place
                boxes.append(mine)
                break
    return placed
