"""The whole chain: all six chapters on the tiny profile through papermill, the book
built from them, and every page opened in headless Chromium."""

import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading

import pytest
import yaml

from paradox_utils import pipeline

from .browser import Browser, chromium

ROOT = pipeline.ROOT


def test_cli_help():
    for args in ([], ["run"], ["book"]):
        result = subprocess.run([sys.executable, "-m", "paradox_utils", *args, "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and "usage:" in result.stdout


def test_profiles_validate(imagenet_root):
    declared = pipeline.chapter_parameters()
    for name in ("tiny", "quick", "paper", "imagenet"):
        assert pipeline.load_profile(name, declared)["profile"] == name


@pytest.mark.parametrize("text,message", [("epochs_total: 3", "unknown keys \\['epochs_total'\\]"),
                                          ("eval_per_class: many", "eval_per_class should be a int"),
                                          ("base_grid: [1, 2]", "base_grid should be a dict"),
                                          ("[1, 2", "not valid YAML")])
def test_bad_profiles_fail_before_running(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        pipeline.run(str(path))


def test_missing_data_path_fails_before_running(monkeypatch):
    monkeypatch.setenv("PARADOX_CIFAR10", "/nonexistent/cifar.zip")
    with pytest.raises(ValueError, match="PARADOX_CIFAR10 points at /nonexistent/cifar.zip, which does not exist"):
        pipeline.run("tiny")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def tiny_book():
    for leftover in (ROOT / "checkpoints" / "tiny", ROOT / "data" / "results" / "tiny", ROOT / "book" / "_build"):
        shutil.rmtree(leftover, ignore_errors=True)
    executed = pipeline.run("tiny", progress=False)
    return executed, pipeline.build_book()


@pytest.mark.slow
def test_all_chapters_run_and_rerun_reuses_artifacts(tiny_book):
    executed, _ = tiny_book
    assert [p.stem for p in executed] == list(pipeline.CHAPTERS)
    assert all(not pipeline.notebook_errors(p) for p in executed)
    checkpoint = ROOT / "checkpoints" / "tiny" / "b000.safetensors"
    stamp = checkpoint.stat().st_mtime_ns
    pipeline.run("tiny", start="02", progress=False)
    assert checkpoint.stat().st_mtime_ns == stamp  # nothing retrained


@pytest.mark.slow
def test_failing_chapter_is_named_and_kept(tiny_book, tmp_path):
    profile = yaml.safe_load((ROOT / "notebooks" / "profiles" / "tiny.yaml").read_text())
    profile["transplant_child"] = "no-such-network"
    path = tmp_path / "tiny-broken.yaml"
    path.write_text(yaml.safe_dump({**profile, "profile": "tiny"}))
    out = tmp_path / "chapters"
    with pytest.raises(pipeline.ChapterFailed, match="Chapter 06_transplant failed in cell .*ValueError: Transplant child"):
        pipeline.run(str(path), start="06_transplant", output_dir=out, progress=False)
    assert pipeline.notebook_errors(out / "06_transplant.ipynb")  # the partial notebook is kept


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="Debian's chromium is not installed (make test installs it as root)")
def test_book_pages_load_and_plotly_draws(tiny_book):
    _, index = tiny_book
    site = index.parent
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    shots = site.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    browser = Browser()
    try:
        for page in ["intro", *[f"chapters/{c}" for c in pipeline.CHAPTERS]]:
            result = browser.visit(f"http://127.0.0.1:{server.server_port}/{page}.html")
            (shots / f"{page.replace('/', '_')}.png").write_bytes(result["png"])
            assert result["errors"] == [], (page, result["errors"])
            if page != "intro":
                cells = json.loads((ROOT / "book" / f"{page}.ipynb").read_text())["cells"]
                figures = sum("application/vnd.plotly.v1+json" in o.get("data", {})
                              for c in cells for o in c.get("outputs", []))
                assert figures > 0 and result["svgs"] >= 2 * figures, (page, figures, result["svgs"])
    finally:
        browser.close()
        server.shutdown()
