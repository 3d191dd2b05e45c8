"""The book's layout rules (tests/browser.py's ``layout_problems``) on small pages made
here: each rule finds the page that breaks it, and the figures whose layout the rules
guard read at a desktop's and at a phone's width. The book itself is checked against the
same rules in test_pipeline's browser test."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import plotly
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from paradox_utils import plots, sentences
from paradox_utils.distortions import MANIPULATIONS, PAPER_GRID

from .browser import PHONE_SCROLLING_TABLES, Browser, layout_problems
from .test_plots import sweep_table

# The book's content column: ~680 px on a 1280 px window, the whole width less margins on a phone.
COLUMN = {1280: 680, 400: 370}


# The book's own style sheet (Jupyter Book adds every .css file of book/_static to each page).
BOOK_CSS = Path(__file__).resolve().parents[1] / "book" / "_static" / "layout.css"


def page(folder: Path, parts: list[str], column: int) -> str:
    """A page holding ``parts`` (HTML) in an ``article.bd-article`` column ``column`` px wide
    (the book theme's content column), with plotly.js and the book's style sheet beside it;
    its file:// address."""
    shutil.copyfile(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", folder / "plotly.min.js")
    shutil.copyfile(BOOK_CSS, folder / "layout.css")
    body = "\n".join(parts)
    path = folder / "page.html"
    path.write_text(f"""<!doctype html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><script src="plotly.min.js"></script>
<link rel="stylesheet" href="layout.css"></head>
<body style="margin:0;font-family:sans-serif">
<article class="bd-article" style="width:{column}px;max-width:100%;margin:0 auto">
{body}</article></body></html>""")
    return path.as_uri()


def figure(fig: go.Figure) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False)


@pytest.fixture(scope="module")
def browser(chromium_executable):
    opened = Browser()
    yield opened
    opened.close()


def output_table(frame: pd.DataFrame) -> str:
    """A DataFrame as the book shows a cell's output: in a box that scrolls sideways (the
    book theme's rule for outputs), with pandas' own HTML."""
    return f'<div class="cell_output"><div class="output" style="overflow-x:auto">{frame._repr_html_()}</div></div>'


def problems_at(browser: Browser, url: str, width: int, scrolling_tables_from: int | None = None) -> list[str]:
    browser.resize(width, 1200, mobile=width < 600)
    browser.visit(url, settle=1.0)
    browser.resize(width, 1200, mobile=width < 600)  # plotly redraws to the width it is given
    return layout_problems(browser.layout(), scrolling_tables_from=scrolling_tables_from)


def accuracy_table(ids=("b000", "b001")) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame([{"net_id": net, "manipulation": name, "level": level, "accuracy": rng.uniform(0.1, 0.9)}
                         for net in ids for name, level in PAPER_GRID])


@pytest.mark.slow  # a browser
def test_each_rule_finds_the_page_that_breaks_it(browser, tmp_path):
    eight = make_subplots(rows=1, cols=8, subplot_titles=list(MANIPULATIONS))  # the old accuracy profiles
    for col in range(1, 9):
        eight.add_scatter(x=[0, 1], y=[0, 1], row=1, col=col)
    crowded = go.Figure(go.Scatter(x=[0.5, 0.5001, 1.0], y=[0, 0, 0], mode="markers+text",
                                   text=["layer1.0.conv1", "layer1.0.conv2", "layer3.2.conv2"],
                                   textposition=["top center", "top center", "middle right"]))
    crowded.update_layout(title="crowded labels", xaxis_range=[0, 1])
    matrix = pd.DataFrame(np.eye(3), index=list("abc"), columns=list("abc"))
    parts = [figure(eight), figure(crowded), figure(go.Figure(layout={"title": "fixed width", "width": 900})),
             figure(plots.heatmap(matrix, "similarity from 0.3", kind="similarity", zmin=0.3)),
             figure(plots.heatmap(matrix, "similarity from chance", kind="similarity", zmin=0.136, chance=0.136)),
             figure(go.Figure(go.Heatmap(z=np.eye(3), colorscale="Viridis"), layout={"title": "viridis"})),
             '<div class="cell_input"><pre style="overflow-x:auto">x = "' + "a" * 200 + '"</pre></div>',
             '<div class="cell_input" style="width:900px"><pre>wide = 1</pre></div>',
             output_table(pd.DataFrame([[0.5] * 12], columns=[f"unbreakable_header_{i}" for i in range(12)])),
             figure(go.Figure(layout={"title": "A title of many words " * 8})),
             figure(go.Figure(layout={"title": "stacked notes", "annotations": [
                 {"x": 0.5, "y": 0.5, "text": "chance 0.136", "showarrow": False},
                 {"x": 0.5, "y": 0.5, "text": "null p99 0.141", "showarrow": False}]}))]
    found = problems_at(browser, page(tmp_path, parts, 680), 800)
    text = "\n".join(found)
    assert "'contrast' and 'illuminant' overlap" in text and "'salt_pepper' and 'gaussian' overlap" in text
    assert "point labels 'layer1.0.conv1' and 'layer1.0.conv2' overlap" in text
    assert "point label 'layer3.2.conv2' reaches out of the plotting area" in text
    assert "'fixed width': the figure reaches" in text
    assert "'similarity from 0.3': a measure on [0, 1] drawn over [0.3, 1]" in text
    assert "similarity from chance" not in text  # [chance, 1], chance marked: allowed
    assert "'viridis': a heat map in colours of no plots.MATRIX_KINDS kind" in text
    assert "code cell 'x = \"aaaa" in text and "its code is cut" in text
    assert "code cell 'wide = 1': reaches" in text
    assert "the page is" in text and "px window" in text
    assert "table 'unbreakable_header_0 | unbreakable_header_1" in text and "13 columns scroll sideways" in text
    assert "A title of many words ': the title is cut at the figure's edge" in text
    assert "'stacked notes': annotations 'chance 0.136' and 'null p99 0.141' overlap" in text


@pytest.mark.slow  # a browser
@pytest.mark.parametrize("width", [1280, 400])
def test_accuracy_profiles_and_transplant_sweep_read_at_desktop_and_phone_widths(browser, tmp_path, width):
    parts = [figure(plots.accuracy_profiles(accuracy_table(), ["b000", "b001"])),
             figure(plots.transplant_sweep_figure(sweep_table(), chance=0.136))]
    assert problems_at(browser, page(tmp_path, parts, COLUMN[width]), width) == []


def chapter_tables() -> list[pd.DataFrame]:
    """The tables chapters 3, 5 and 6 show, at a quick run's size, with the longest names
    the profiles give: 12 networks (offspring ids like "b002-ft-salt_pepper"), the six
    transplant variants, two similarity measures × two behaviours."""
    rng = np.random.default_rng(2)
    ids = [f"b00{b}-ft-{m}" for b in range(3) for m in ("none", "all", "salt_pepper", "gaussian")]
    networks = pd.DataFrame(rng.uniform(0.1, 0.9, (12, 8)), index=pd.Index(ids, name="net_id"),
                            columns=list(MANIPULATIONS)).assign(clean=0.6, vi=rng.uniform(0.3, 0.5, 12),
                                                                  vi_low=0.25, vi_high=0.55, test_images=2000)
    one = "parent + child's layer3.2.conv2"
    variants = ["parent", "child", one, "parent + all child convs", f"{one} (BN re-estimated)",
                "parent + all child convs (BN re-estimated)"]
    summary = pd.DataFrame(rng.uniform(0.1, 0.9, (6, 8)), index=pd.Index(variants, name="variant"),
                           columns=list(MANIPULATIONS)).assign(vi=0.4, test_images=2000, delta_vi=-0.012,
                                                               delta_low=-0.031, delta_high=0.004,
                                                               verdict="not distinguishable from no change")
    index = pd.MultiIndex.from_product([["paper", "hungarian"], ["compatibility", "kappa"]],
                                       names=["method", "behaviour"])
    statistics = pd.DataFrame({"mantel_r": -0.123, "mantel_p": 0.034, "ci_low": -0.301, "ci_high": 0.052,
                               "family_p": 0.412, "holm_p": 1.0, "partial_r": -0.051, "partial_p": 0.734,
                               "similar_yet_different": 12, "different_yet_similar": 1043, "pairs": 53956,
                               "similar_threshold": 0.141, "similar_threshold_kind": "null p99",
                               "behaviour_threshold": 0.568, "behaviour_threshold_kind": "null p99"}, index=index)
    counts = pd.DataFrame({"similar_yet_different": 3, "different_yet_similar": 0, "pairs": 53956, "defined": True,
                           "reason": ""}, index=index)
    by_vi = sentences.vi_table(networks)
    return [by_vi, sentences.manipulation_table(networks, by_vi.index), sentences.transplant_table(summary),
            sentences.manipulation_table(summary), sentences.association_table(statistics),
            sentences.count_table(counts, statistics)]


@pytest.mark.slow  # a browser
@pytest.mark.parametrize("width", [1280, 400])
def test_chapter_tables_fit_the_column(browser, tmp_path, width):
    """At 1280 px every table the chapters show fits the content column; on a phone so does
    every table of fewer than ``PHONE_SCROLLING_TABLES`` columns (index included) — the
    wider ones scroll, in their own box. (The book theme's own rules, which widen a table to its widest cells unless
    layout.css caps it, are in play only in the built book: test_pipeline's browser test.)"""
    url = page(tmp_path, [output_table(t) for t in chapter_tables()], COLUMN[width])
    assert problems_at(browser, url, width, scrolling_tables_from=None if width > 600 else PHONE_SCROLLING_TABLES) == []


def pair_table(n: int = 60) -> pd.DataFrame:
    """Pairs of an under-trained population: similarity near its chance level 0.136."""
    rng = np.random.default_rng(3)
    return pd.DataFrame({"a": [f"b{i:03d}" for i in range(n)], "b": [f"b{i + 1:03d}-ft-salt_pepper" for i in range(n)],
                         "relation": rng.choice(["parent-child", "siblings", "unrelated"], n),
                         "similarity_paper": rng.normal(0.136, 0.003, n), "compatibility": rng.uniform(0.2, 1.0, n)})


@pytest.mark.slow  # a browser
@pytest.mark.parametrize("width", [1280, 400])
def test_paradox_scatter_and_long_titles_read_at_desktop_and_phone_widths(browser, tmp_path, width):
    """The similarity threshold (null p99 0.141) a hair from the chance level (0.136): their
    labels stay apart; and the book's longest titles stay whole on a phone."""
    rng = np.random.default_rng(4)
    scatter = plots.paradox_scatter(pair_table(), "paper", similarity_null=rng.normal(0.136, 0.002, 500),
                                    behaviour_null=rng.normal(0.5, 0.03, 500), chance=0.136)
    relative = pair_table().assign(**{"relative compatibility": np.linspace(-0.8, 1.0, 60)})
    midway = plots.paradox_scatter(relative, "paper", behaviour="relative compatibility",
                                   similarity_null=rng.normal(0.136, 0.002, 500),
                                   behaviour_null=rng.normal(0.0, 0.03, 500), chance=0.136)  # a threshold mid-plot
    layer = pd.DataFrame({"layer": ["conv1", "layer1.0.conv1"], "mean": [0.99, 0.98], "std": [0.01, 0.01]})
    parts = [figure(plots.titled_for_any_width(fig)) for fig in
             (scatter, midway, plots.layer_profile_figure({"b000-ft-all": layer}, chance=0.136),
              plots.vi_bars(accuracy_table().assign(n_images=2000)))]
    assert problems_at(browser, page(tmp_path, parts, COLUMN[width]), width) == []
