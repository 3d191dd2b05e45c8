"""Headless Chromium over the DevTools protocol: load a page, collect console errors,
count drawn plotly figures, take a screenshot, and measure the page's layout against the
book's rules (:func:`layout_problems`). A test helper, not part of the package."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import websocket  # websocket-client

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--remote-debugging-port=0", "--window-size=1280,1600"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> str:
    """The chromium executable; skip the calling test when there is none, fail under CI=true
    (where ``make test`` must have installed it: the browser test runs or fails, never skips)."""
    found = chromium()
    if found is None:
        reason = "Debian's chromium is not installed (make test installs it as root)"
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(f"{reason}; CI=true: the browser test must run", pytrace=False)
        pytest.skip(reason)
    return found


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="paradox-chromium-")
        self.process = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.time() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.time() > deadline:
                raise RuntimeError("Chromium did not open its DevTools port within 30 s.")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        target = json.loads(urllib.request.urlopen(request, timeout=10).read())
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.next_id = 0
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable")

    def call(self, method: str, events: list | None = None, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                return message.get("result", {})
            if events is not None and "method" in message:
                events.append(message)

    def visit(self, url: str, settle: float = 2.0) -> dict:
        """Load ``url``; return console errors, the number of plotly SVGs and a PNG."""
        events: list[dict] = []
        self.call("Page.navigate", events, url=url)
        deadline = time.time() + 30
        while not any(e["method"] == "Page.loadEventFired" for e in events) and time.time() < deadline:
            events.append(json.loads(self.ws.recv()))
        end = time.time() + settle
        self.ws.settimeout(0.2)
        while time.time() < end:
            try:
                events.append(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException:
                pass
        self.ws.settimeout(30)
        count = self.call("Runtime.evaluate", events, expression="document.querySelectorAll('.main-svg').length")
        png = base64.b64decode(self.call("Page.captureScreenshot", events, format="png")["data"])
        return {"errors": _errors(events), "svgs": count["result"]["value"], "png": png}

    def resize(self, width: int, height: int = 1600, mobile: bool = False) -> None:
        """Lay the page out in a ``width`` × ``height`` px window (``mobile``: as a phone,
        whose viewport meta tag applies), then wait a second: plotly's responsive figures
        redraw to the new width on the resize event."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=mobile)
        self.evaluate("window.dispatchEvent(new Event('resize'))")
        time.sleep(1.0)

    def evaluate(self, expression: str):
        """The value of a JavaScript ``expression`` in the page (JSON-like values only)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def element_png(self, selector: str, index: int = 0, margin: int = 8) -> bytes:
        """A PNG of the ``index``-th element matching ``selector``, with ``margin`` px around
        it: scrolled to the window's top and cut from the window (so no taller than it)."""
        box = self.evaluate(f"""(() => {{
            const el = document.querySelectorAll({json.dumps(selector)})[{index}];
            el.scrollIntoView({{block: "start"}});
            const r = el.getBoundingClientRect();
            return {{x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height}};
        }})()""")
        time.sleep(0.3)  # let a sticky header settle after the scroll
        clip = {"x": max(box["x"] - margin, 0), "y": max(box["y"] - margin, 0),
                "width": box["width"] + 2 * margin, "height": box["height"] + 2 * margin, "scale": 1}
        return base64.b64decode(self.call("Page.captureScreenshot", format="png", clip=clip)["data"])

    def layout(self) -> dict:
        """What :func:`layout_problems` judges, measured in the page as laid out now (see ``LAYOUT_JS``)."""
        return self.evaluate(LAYOUT_JS)

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.process.terminate()
            self.process.wait(timeout=10)
            shutil.rmtree(self.profile, ignore_errors=True)


def _errors(events: list[dict]) -> list[str]:
    out = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            out.append("exception: " + details.get("exception", {}).get("description", details.get("text", "")))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
    return out


# Measures the book's layout rules can be judged on, from the page as drawn: the content
# column's right edge; per plotly figure its box and right edge, its title's drawn box, its
# subplot titles' drawn boxes and its other annotations' (threshold and chance labels),
# its heat maps' colour ranges, its point labels' boxes and its plotting areas (the drag
# rectangle plotly lays over each subplot's axes); per output table its header, its number
# of columns (index included), its right edge and whether its scroll box scrolls sideways; per code
# cell its right edge and whether its code is cut (scrolls sideways); and whether the page
# itself is wider than the window.
# Subplot titles are the annotations make_subplots writes: in paper coordinates on both
# axes, no arrow, centred above a subplot. Each drawn annotation's <g> carries the index
# of its layout entry (data-index), so a title's box is that of its .annotation-text.
LAYOUT_JS = """(() => {
  const box = r => ({left: r.left, right: r.right, top: r.top, bottom: r.bottom});
  const column = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const figures = [...document.querySelectorAll('.js-plotly-plot')].map(el => {
    const layout = el.layout || {};
    const titles = [], notes = [];
    (layout.annotations || []).forEach((a, k) => {
      const text = el.querySelector(`g.annotation[data-index="${k}"] .annotation-text`);
      if (!text || !a.text) return;
      const title = a.xref === 'paper' && a.yref === 'paper' && a.showarrow === false && a.xanchor === 'center'
                    && a.yanchor === 'bottom';
      (title ? titles : notes).push({text: a.text, box: box(text.getBoundingClientRect())});
    });
    const heading = el.querySelector('.g-gtitle text');
    const heatmaps = (el.data || []).filter(t => t.type === 'heatmap').map(t => ({
      zmin: t.zmin ?? null, zmax: t.zmax ?? null, colorscale: t.colorscale ?? null,
      tickvals: (t.colorbar || {}).tickvals ?? null, ticktext: (t.colorbar || {}).ticktext ?? null}));
    const labels = [...el.querySelectorAll('g.textpoint text')].filter(t => t.textContent)
      .map(t => ({text: t.textContent, box: box(t.getBoundingClientRect())}));
    const areas = [...el.querySelectorAll('.draglayer .nsewdrag')].map(r => box(r.getBoundingClientRect()));
    return {title: ((layout.title || {}).text) || '(untitled figure)', right: el.getBoundingClientRect().right,
            box: box(el.getBoundingClientRect()), heading: heading ? box(heading.getBoundingClientRect()) : null,
            titles, notes, heatmaps, labels, areas};
  });
  const tables = [...document.querySelectorAll('div.cell_output table')].map(t => {
    let scroller = t.parentElement;  // the table's own scroll box: its nearest ancestor that may scroll sideways
    while (scroller && scroller !== column && !['auto', 'scroll'].includes(getComputedStyle(scroller).overflowX)) {
      scroller = scroller.parentElement;
    }
    const scrolls = !!scroller && scroller !== column && scroller.scrollWidth > scroller.clientWidth + 1;
    const head = [...(t.rows[0] || {cells: []}).cells].map(c => c.innerText.trim()).filter(Boolean);
    return {head: head.join(' | ').slice(0, 60), columns: Math.max(0, ...[...t.rows].map(r => r.cells.length)),
            right: t.getBoundingClientRect().right, scrolls};
  });
  const cells = [...document.querySelectorAll('div.cell_input')].map(el => {
    const code = el.querySelector('pre') || el;
    return {code: code.innerText.split('\\n')[0].slice(0, 60), right: el.getBoundingClientRect().right,
            cut: code.scrollWidth > code.clientWidth + 1};
  });
  return {column: box(column.getBoundingClientRect()), figures, tables, cells,
          page: {scroll_width: document.documentElement.scrollWidth, width: document.documentElement.clientWidth}};
})()"""


def _overlap(a: dict, b: dict, gap: float = 2.0) -> bool:
    """Whether two boxes (left/right/top/bottom, px) overlap or come closer than ``gap`` px
    (titles that touch read as one word: "contrastilluminant")."""
    return (min(a["right"], b["right"]) - max(a["left"], b["left"]) > -gap
            and min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > -gap)


def _inside(inner: dict, outer: dict, slack: float) -> bool:
    """Whether box ``inner`` lies within box ``outer``, give or take ``slack`` px."""
    return (inner["left"] >= outer["left"] - slack and inner["right"] <= outer["right"] + slack
            and inner["top"] >= outer["top"] - slack and inner["bottom"] <= outer["bottom"] + slack)


def _unit_kinds() -> list[list]:
    """The colour scales of the heat-map kinds on [0, 1] (similarity, CKA, compatibility, κ)."""
    from paradox_utils.plots import MATRIX_KINDS

    return [[list(stop) for stop in kind.colorscale] for kind in MATRIX_KINDS.values()
            if (kind.zmin, kind.zmax) == (0.0, 1.0)]


def _chance_ticks(heatmap: dict) -> list[float]:
    """The colour-bar values labelled "chance …" (where ``plots.heatmap`` marks a chance level)."""
    pairs = zip(heatmap.get("tickvals") or [], heatmap.get("ticktext") or [], strict=False)
    return [float(value) for value, text in pairs if str(text).startswith("chance")]


# A phone's ~370 px column holds five table columns of numbers (index included) with the
# headers wrapped; a table of this many columns or more may scroll sideways in its own box.
PHONE_SCROLLING_TABLES = 6


def layout_problems(measures: dict, slack: float = 1.0, scrolling_tables_from: int | None = None) -> list[str]:
    """The book's layout rules broken in a page's ``measures`` (:meth:`Browser.layout`), one
    sentence each; empty when none is:

    - no two subplot titles of one figure overlap (or touch), nor any two of its other
      annotations (threshold, chance and count labels), nor one of those a subplot title; no
      two point labels overlap, and each lies inside its figure's plotting area;
    - a figure's title lies within the figure (plotly does not wrap a title: a long one is
      cut at a phone's edge);
    - no plotly figure and no code cell reaches past the content column's right edge (by
      more than ``slack`` px), no code cell hides code behind a sideways scroll, and the page
      is no wider than the window;
    - no output table reaches past the column or hides columns behind a sideways scroll —
      except, where ``scrolling_tables_from`` is given, a table of at least that many
      columns (on a phone, ``PHONE_SCROLLING_TABLES``: a phone shows at most five columns of
      numbers side by side; a wider table scrolls in its own box);
    - every heat map of a measure on [0, 1] (``plots.MATRIX_KINDS``' similarity-like kinds,
      known by their colour scale) spans [0, 1], or [chance, 1] with chance marked on its
      colour bar; a heat map in no kind's colours is reported too, since no rule can be read
      for it."""
    from paradox_utils.plots import MATRIX_KINDS

    problems = []
    edge = measures["column"]["right"] + slack
    known = [[list(stop) for stop in kind.colorscale] for kind in MATRIX_KINDS.values()]
    unit = _unit_kinds()
    for figure in measures["figures"]:
        name = figure["title"]
        titles = figure["titles"]
        for i, first in enumerate(titles):
            for second in titles[i + 1:]:
                if _overlap(first["box"], second["box"]):
                    problems.append(f"{name!r}: subplot titles {first['text']!r} and {second['text']!r} overlap "
                                    "or touch")
        notes = figure.get("notes", [])
        for i, first in enumerate(notes):
            for second in notes[i + 1:] + titles:
                if _overlap(first["box"], second["box"], gap=0.0):
                    problems.append(f"{name!r}: annotations {first['text']!r} and {second['text']!r} overlap")
        heading = figure.get("heading")
        if heading and not _inside(heading, figure["box"], slack):
            problems.append(f"{name!r}: the title is cut at the figure's edge")
        labels = figure["labels"]
        for i, first in enumerate(labels):
            if not any(_inside(first["box"], area, slack) for area in figure["areas"]):
                problems.append(f"{name!r}: point label {first['text']!r} reaches out of the plotting area")
            for second in labels[i + 1:]:
                if _overlap(first["box"], second["box"], gap=0.0):
                    problems.append(f"{name!r}: point labels {first['text']!r} and {second['text']!r} overlap")
        if figure["right"] > edge:
            problems.append(f"{name!r}: the figure reaches {figure['right'] - edge + slack:.0f} px past the column")
        for heat in figure["heatmaps"]:
            scale = [list(stop) for stop in heat["colorscale"] or []]
            if scale not in known:
                problems.append(f"{name!r}: a heat map in colours of no plots.MATRIX_KINDS kind ({scale})")
            elif scale in unit and (heat["zmax"] != 1 or heat["zmin"] not in [0, *_chance_ticks(heat)]):
                problems.append(f"{name!r}: a measure on [0, 1] drawn over [{heat['zmin']}, {heat['zmax']}], "
                                "not [0, 1] or [chance, 1]")
    for table in measures.get("tables", []):
        if scrolling_tables_from is not None and table["columns"] >= scrolling_tables_from:
            continue
        if table["scrolls"]:
            problems.append(f"table {table['head']!r}: its {table['columns']} columns scroll sideways")
        elif table["right"] > edge:
            problems.append(f"table {table['head']!r}: reaches {table['right'] - edge + slack:.0f} px past the column")
    for cell in measures["cells"]:
        if cell["right"] > edge:
            problems.append(f"code cell {cell['code']!r}: reaches {cell['right'] - edge + slack:.0f} px past "
                            "the column")
        if cell["cut"]:
            problems.append(f"code cell {cell['code']!r}: its code is cut, behind a sideways scroll")
    page = measures["page"]
    if page["scroll_width"] > page["width"] + slack:
        problems.append(f"the page is {page['scroll_width']} px wide in a {page['width']} px window")
    return problems
