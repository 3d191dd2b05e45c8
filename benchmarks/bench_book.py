"""What a built book weighs in a reader's browser: per page, the HTML's size and how long
headless Chromium takes to load it and draw every plotly figure (issue: the paper's scale).

A page counts as loaded when the load event has fired and every plotly figure on it has
drawn (its ``.main-svg`` exists); the time runs from the navigation's start to that moment,
measured in the page (``performance.now()``), so the tool's own round trips do not count.
Each page is loaded ``--repeats`` times in one browser (the first pays the cold cache of
plotly.js, the rest show a warm reload); the table gives the first and the median of the rest.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_book.py book/_build/html [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from tests.browser import Browser, chromium

# Polled in the page after navigation: ms since the navigation started once the page is
# complete and every figure has drawn, else null.
READY_JS = """(() => {
    if (document.readyState !== "complete") return null;
    const plots = [...document.querySelectorAll(".js-plotly-plot")];
    if (!plots.every(p => p.querySelector(".main-svg"))) return null;
    return {ms: performance.now(), figures: plots.length,
            heap_mb: performance.memory ? performance.memory.usedJSHeapSize / 2 ** 20 : null};
})()"""


def load(browser: Browser, url: str, timeout: float = 300.0) -> dict:
    """Navigate to ``url`` and wait until it is drawn: {"ms", "figures", "heap_mb"}."""
    browser.call("Page.navigate", url=url)
    deadline = time.monotonic() + timeout
    time.sleep(0.05)  # the old document may still answer "complete" for an instant
    while time.monotonic() < deadline:
        ready = browser.evaluate(READY_JS)
        if ready and browser.evaluate("location.href") == url:
            return ready
        time.sleep(0.05)
    raise TimeoutError(f"{url} was not drawn within {timeout:.0f} s.")


def pages(html: Path) -> list[Path]:
    """The book's chapter pages (the executed notebooks), then the others, each once; not a
    page that only redirects (Jupyter Book's index.html sends the reader to the root page)."""
    chapters = sorted((html / "chapters").glob("*.html"))
    others = sorted(p for p in html.glob("*.html") if p.name not in {"search.html", "genindex.html"})
    return [p for p in chapters + others if not _redirect(p)]


def _redirect(page: Path) -> bool:
    with page.open(encoding="utf-8", errors="replace") as f:
        return 'http-equiv="refresh"' in f.read(512).lower()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html", type=Path, nargs="?", default=Path("book/_build/html"),
                        help="the built book's html folder (default: book/_build/html)")
    parser.add_argument("--repeats", type=int, default=3, help="loads per page (the first is cold)")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args(argv)
    if not (args.html / "index.html").exists():
        parser.error(f"{args.html} holds no index.html: build the book first (make book).")
    if chromium() is None:
        parser.error("Chromium is not installed: `make browser` installs Debian's (root + apt).")
    browser, rows = Browser(), []
    try:
        for page in pages(args.html):
            loads = [load(browser, page.resolve().as_uri()) for _ in range(max(args.repeats, 1))]
            warm = statistics.median(x["ms"] for x in loads[1:]) if len(loads) > 1 else float("nan")
            rows.append({"page": str(page.relative_to(args.html)), "html_mb": page.stat().st_size / 2 ** 20,
                         "figures": loads[0]["figures"], "first_s": loads[0]["ms"] / 1000, "warm_s": warm / 1000,
                         "heap_mb": loads[-1]["heap_mb"]})
    finally:
        browser.close()
    print(f"{'page':40s} {'HTML MB':>8s} {'figures':>8s} {'first s':>8s} {'warm s':>8s} {'JS heap MB':>10s}")
    for row in rows:
        heap = f"{row['heap_mb']:10.0f}" if row["heap_mb"] is not None else f"{'n/a':>10s}"
        print(f"{row['page']:40s} {row['html_mb']:8.2f} {row['figures']:8d} {row['first_s']:8.2f} "
              f"{row['warm_s']:8.2f} {heap}")
    total = sum(r["html_mb"] for r in rows)
    print(f"{len(rows)} pages, {total:.1f} MB of HTML; plotly.js is loaded once from _static/ "
          f"({(args.html / '_static' / 'plotly.min.js').stat().st_size / 2 ** 20:.1f} MB)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
