"""The whole chain: all six chapters on the tiny profile through papermill, the book
built from them, and every page opened in headless Chromium."""

import contextlib
import functools
import http.server
import io
import json
import re
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from paradox_utils import book_builder, files, pipeline, profiles

from .browser import PHONE_SCROLLING_TABLES, Browser, layout_problems

ROOT = profiles.ROOT


def test_cli_help():
    for args in ([], ["run"], ["book"], ["population"]):
        result = subprocess.run([sys.executable, "-m", "paradox_utils", *args, "--help"],
                                capture_output=True, text=True)
        assert result.returncode == 0 and "usage:" in result.stdout
        if args in (["run"], ["population"]):  # --profile names every shipped profile (laptop was missing)
            assert all(name in " ".join(result.stdout.split()) for name in profiles.shipped_profiles())


def test_profiles_validate(imagenet_root, tmp_path):
    """Every shipped profile loads, and its whole population passes the pre-run checks."""
    declared = profiles.chapter_parameters()
    defaults = {k: v for params in declared.values() for k, v in params.items()}
    names = profiles.shipped_profiles()
    assert {"tiny", "quick", "laptop", "paper", "paper-smoke", "imagenet"} <= set(names)
    for name in names:
        values = profiles.load_profile(name, declared)
        assert values["profile"] == name
        folders = {"checkpoint_dir": str(tmp_path / name / "ck"), "results_dir": str(tmp_path / name / "res")}
        pipeline.check_run({**values, **folders}, defaults, ("01_train", "02_finetune"))
        pipeline.check_run({**values, **folders, "retrain": ["stale"]}, defaults, ("01_train",))  # a word, not an id
        with pytest.raises(ValueError, match="--retrain names b999,"):
            pipeline.check_run({**values, **folders, "retrain": ["stale", "b999"]}, defaults, ("01_train",))


@pytest.mark.parametrize("text,message", [("epochs_total: 3", "unknown keys \\['epochs_total'\\]"),
                                          ("eval_per_class: many", "eval_per_class should be an integer"),
                                          ("base_grid: [1, 2]", "base_grid should be a mapping"),
                                          ("[1, 2", "not valid YAML")])
def test_bad_profiles_fail_before_running(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        pipeline.run(str(path))


@pytest.mark.parametrize("text,message", [
    ("base_common: {epochs: 2.0}", "b000: Invalid training config: epochs should be an integer, got 2.0"),
    ("base_common: {epochs: 1, l2: fast}", "l2 should be a number, got 'fast'"),
    ("base_common: {epochs: 1, momentum: 1.5}", "momentum must be in"),
    ("finetune_common: {schedule: weekly}", "Fine-tune b000-ft-none: .*schedule 'weekly'"),
    ("base_common: {epochs: 1, optimizer: adam}", "Unknown training config keys: \\['optimizer'\\]"),
    ("eval_per_class: 100.0", "eval_per_class should be an integer, got 100.0"),
    ("scheduler: tcp://somewhere", "Unknown scheduler 'tcp://somewhere'"),
    ("scheduler: slurn", "Unknown scheduler 'slurn'"),
    ("thresholds: nul", "thresholds must be null or fixed, got 'nul'"),
    ("similarity_methods: [hungarian]", "similarity_methods must include paper"),
])
def test_nested_and_typed_values_fail_before_running(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text("profile: bad\n" + text + f"\ncheckpoint_dir: {tmp_path / 'ck'}\nresults_dir: {tmp_path / 'res'}\n")
    with pytest.raises(ValueError, match=message):
        pipeline.run(str(path), output_dir=tmp_path / "chapters")
    assert not (tmp_path / "chapters").exists()  # refused before the first chapter


def test_unwritable_output_folder_and_bad_overrides_fail_before_running(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="output folder .*a-file/results cannot be created"):
        pipeline.run("tiny", output_dir=tmp_path / "chapters", parameters={
            "results_dir": str(blocker / "results"), "checkpoint_dir": str(tmp_path / "ck")})
    with pytest.raises(ValueError, match="Unknown parameter epochs"):
        pipeline.run("tiny", output_dir=tmp_path / "chapters", parameters={"epochs": 3})
    with pytest.raises(ValueError, match="Parameter override: eval_per_class should be an integer"):
        pipeline.run("tiny", output_dir=tmp_path / "chapters", parameters={"eval_per_class": "all"})
    with pytest.raises(ValueError, match="--retrain names b042"):
        pipeline.run("tiny", output_dir=tmp_path / "chapters", retrain=["b042"],
                     parameters={"checkpoint_dir": str(tmp_path / "ck"), "results_dir": str(tmp_path / "res")})
    assert not (tmp_path / "chapters").exists()


def test_missing_data_path_fails_before_running(monkeypatch):
    monkeypatch.setenv("PARADOX_CIFAR10", "/nonexistent/cifar.zip")
    with pytest.raises(ValueError, match="PARADOX_CIFAR10 points at /nonexistent/cifar.zip, which does not exist"):
        pipeline.run("tiny")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _tree_state(*folders):
    """(path, size, mtime) of every file under ``folders``: what a test must leave alone."""
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns)
                  for folder in folders if folder.exists() for p in folder.rglob("*") if p.is_file())


USER_WORK = (ROOT / "book", ROOT / "checkpoints", ROOT / "data" / "results")


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory):
    """The tiny profile through all six chapters and the book, entirely under a temporary
    folder: a copy of the book's sources, its own checkpoint and result folders."""
    before = _tree_state(*USER_WORK)
    root = tmp_path_factory.mktemp("tiny-run")
    book = root / "book"
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build", "chapters"))
    folders = {"checkpoint_dir": str(root / "checkpoints"), "results_dir": str(root / "results")}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # what a batch run shows in the terminal
        executed = pipeline.run("tiny", output_dir=book / "chapters", parameters=folders)
    index = book_builder.build_book(book)
    assert _tree_state(*USER_WORK) == before  # the user's book, checkpoints and results untouched
    return executed, index, folders, printed.getvalue()


@pytest.mark.slow
def test_all_chapters_run_and_rerun_reuses_artifacts(tiny_book, tmp_path):
    executed, _, folders, _ = tiny_book
    assert [p.stem for p in executed] == list(profiles.CHAPTERS)
    assert all(not book_builder.notebook_errors(p) for p in executed)
    checkpoint = Path(folders["checkpoint_dir"]) / "b000.safetensors"
    stamp = checkpoint.stat().st_mtime_ns
    again = pipeline.run("tiny", start="02", until="finetune", output_dir=tmp_path / "chapters", progress=False,
                         parameters=folders)
    assert [p.stem for p in again] == ["02_finetune"] and checkpoint.stat().st_mtime_ns == stamp  # nothing retrained
    with pytest.raises(ValueError, match="first comes after the last"):
        pipeline.run("tiny", start="03", until="02", output_dir=tmp_path / "chapters", parameters=folders)


@pytest.mark.slow
def test_batch_run_shows_progress_lines(tiny_book):
    """A batch run is never silent for long: a line per chapter start and end (with its wall
    time), one per finished network (k of N, epochs, validation accuracy, seconds), and the
    evaluation's and similarity's bars as lines — none of it in the notebooks."""
    executed, _, _, printed = tiny_book
    for chapter in profiles.CHAPTERS:
        assert re.search(rf"^== {chapter} \(tiny profile\) started \d\d:\d\d:\d\d$", printed, re.M), chapter
        assert re.search(rf"^== {chapter} done in \d+ (s|min)", printed, re.M), chapter
    assert re.search(r"networks: 2/2 \(100 %\) \[.*b00[01]: 1 epoch, val acc 0\.\d{3}, \d+ s\]", printed)
    assert re.search(r"networks: 1/1 \(100 %\) \[.*b000-ft-all: 1 epoch, val acc", printed)
    assert re.search(r"cells: 37/37 \(100 %\)", printed)
    outputs = [json.dumps(c.get("outputs", [])) for p in executed for c in json.loads(p.read_text())["cells"]]
    assert not any(re.search(r"(networks|cells): \d+/\d+ \(", o) for o in outputs)  # none in the notebooks


@pytest.mark.slow
def test_intro_and_chapters_open_with_the_runs_regime(tiny_book):
    """The tiny run is far from the paper's networks: the intro and chapters 3–6 say so in a
    warning admonition, with the numbers of this run."""
    _, index, _, _ = tiny_book
    site = index.parent
    for page in [site / "intro.html", *(site / "chapters" / f"{c}.html" for c in profiles.CHAPTERS[2:])]:
        text = page.read_text()
        assert 'class="admonition warning"' in text and "outside the paper&#x27;s regime" in text, page.name
        assert "0.88–0.92" in text, page.name
        if page.parent.name == "chapters":  # it opens the chapter, before the section that computes it
            assert text.index("admonition warning") < text.index('id="where-this-run-stands"'), page.name


@pytest.mark.slow
def test_results_table_is_computed_from_the_run(tiny_book):
    """benchmarks/results.py (the README's Results table) reads a finished run's tables: the
    base accuracy it prints is the catalog's networks' own (on chapter 3's images, and measured
    anew on all 10,000 test images), every similarity comes with its chance level, and the
    chapter wall times come from the batch output."""
    import runpy

    _, _, folders, printed = tiny_book
    results = runpy.run_path(str(ROOT / "benchmarks" / "results.py"))
    rows = {quantity: mine for quantity, mine, _ in results["rows"](Path(folders["checkpoint_dir"]),
                                                                    Path(folders["results_dir"]), "cifar10")}
    spread = r"0\.\d{3} ± 0\.\d{3} \(n = 2\)"
    assert re.fullmatch(spread, rows["base clean accuracy (100 test images per cell, float32)"])
    assert re.fullmatch(spread, rows["base clean accuracy (all 10,000 test images, float32)"])
    unrelated = rows["unrelated similarity (paper)"]
    assert "chance" in unrelated and re.search(r"\d+ of \d+ above p99", unrelated)
    assert any(q.startswith("Mantel r, paper similarity × kappa") for q in rows)
    assert any(q.startswith("transplant ΔVI") for q in rows)
    log = Path(folders["results_dir"]).parent / "run.log"
    log.write_text(printed)
    assert [q for q, _, _ in results["wall_times"](log)] == [f"wall time {c}" for c in profiles.CHAPTERS]


@pytest.mark.slow
def test_every_file_the_run_wrote_has_one_mode(tiny_book, _data_dir):
    """Checkpoints, sidecars, lock files, catalog, result tables, correctness bits, caches,
    decoded data, the executed chapters and the book's plotly.js: one mode, the files
    module's (0644 under the usual umask 022) — some result files were once 0600."""
    _, index, folders, _ = tiny_book
    book = index.parents[2]  # book/_build/html/index.html
    written = [*Path(folders["checkpoint_dir"]).rglob("*"), *Path(folders["results_dir"]).rglob("*"),
               *(book / "chapters").rglob("*"), book / "_static" / "plotly.min.js", *_data_dir.rglob("*")]
    modes = {str(p): stat.S_IMODE(p.stat().st_mode) for p in written if p.is_file()}
    assert any(p.endswith(".lock") for p in modes) and any(p.endswith("b000.safetensors") for p in modes)
    assert any(p.endswith("correct.parquet") for p in modes) and any(p.endswith("06_transplant.ipynb") for p in modes)
    others = {p: oct(mode) for p, mode in modes.items() if mode != files.FILE_MODE}
    assert not others, f"not {oct(files.FILE_MODE)} (files.FILE_MODE): {others}"


def plotly_titles(executed: list[Path], chapter: str) -> list[str]:
    """The titles of a chapter's plotly figures, as read: lines a long title was broken
    into (``plots.titled_for_any_width``) joined by spaces."""
    cells = json.loads(next(p for p in executed if p.stem == chapter).read_text())["cells"]
    layouts = [o["data"]["application/vnd.plotly.v1+json"]["layout"] for c in cells for o in c.get("outputs", [])
               if "application/vnd.plotly.v1+json" in o.get("data", {})]
    return [(layout.get("title", {}).get("text") or "").replace("<br>", " ") for layout in layouts]


@pytest.mark.slow
def test_vis_name_their_test_images_and_chapter_6_says_why_they_differ_from_chapter_3(tiny_book):
    """The tiny profile evaluates on 10 images a class in chapter 3 and 4 in chapter 6: each
    VI is quoted with its set, and chapter 6 explains the difference in a sentence."""
    executed, index, _, _ = tiny_book
    chapters = index.parent / "chapters"
    evaluate, transplant = (re.sub(r"<[^>]+>", "", (chapters / f"{c}.html").read_text())  # glued values sit in spans
                            for c in ("03_evaluate", "06_transplant"))
    assert "on 100 test images" in evaluate
    titles = plotly_titles(executed, "03_evaluate")
    assert any("Visual intelligence per network on 100 test images" in title for title in titles)
    assert "On 40 test images, parent" in transplant
    assert re.search(r"Chapter 3 measured b000 and b000-ft-all on 100 test images \(VI 0\.\d{3} and 0\.\d{3}\), "
                     r"this chapter on 40 \(0\.\d{3} and 0\.\d{3}\): a VI is estimated from a finite sample",
                     transplant), "chapter 6 says why its VIs differ from chapter 3's"
    cells = json.loads(next(p for p in executed if p.stem == "06_transplant").read_text())["cells"]
    axes = [o["data"]["application/vnd.plotly.v1+json"]["layout"].get("yaxis", {}).get("title", {}).get("text")
            for c in cells for o in c.get("outputs", []) if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert "ΔVI of the parent on 40 test images" in axes


@pytest.mark.slow
def test_single_epoch_training_is_drawn_as_bars_not_a_column_of_dots(tiny_book):
    executed, _, _, _ = tiny_book
    for chapter in ("01_train", "02_finetune"):  # the tiny profile trains and fine-tunes one epoch
        cells = json.loads(next(p for p in executed if p.stem == chapter).read_text())["cells"]
        figures = [o["data"]["application/vnd.plotly.v1+json"] for c in cells for o in c.get("outputs", [])
                   if "application/vnd.plotly.v1+json" in o.get("data", {})]
        assert [[t["type"] for t in f["data"]] for f in figures] == [["bar"]], chapter


@pytest.mark.slow
def test_failing_chapter_is_named_and_kept(tiny_book, tmp_path):
    profile = yaml.safe_load((ROOT / "notebooks" / "profiles" / "tiny.yaml").read_text())
    profile["transplant_child"] = "no-such-network"
    path = tmp_path / "tiny-broken.yaml"
    path.write_text(yaml.safe_dump({**profile, "profile": "tiny", **tiny_book[2]}))
    out = tmp_path / "chapters"
    with pytest.raises(pipeline.ChapterFailed,
                       match="Chapter 06_transplant failed in cell .*ValueError: Transplant child"):
        pipeline.run(str(path), start="06_transplant", output_dir=out, progress=False)
    assert book_builder.notebook_errors(out / "06_transplant.ipynb")  # the partial notebook is kept


@pytest.mark.slow
def test_book_pages_load_and_plotly_draws(chromium_executable, tiny_book):
    """Every page loads without console errors and draws its figures; and at 1280 px and
    at a phone's 400 px it keeps the book's layout rules (tests/browser.py's
    ``layout_problems``): no subplot titles or point labels that overlap, no figure, table
    or code cell past the content column and no code or table behind a sideways scroll (on
    the phone, a table of six or more columns scrolls in its own box), heat maps of a
    measure on [0, 1] over [0, 1] or [chance, 1]."""
    _, index, _, _ = tiny_book
    site = index.parent
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    shots = site.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    pages = ["intro", *[f"chapters/{c}" for c in profiles.CHAPTERS]]
    problems = {}
    browser = Browser()
    try:
        for page in pages:
            result = browser.visit(f"http://127.0.0.1:{server.server_port}/{page}.html")
            (shots / f"{page.replace('/', '_')}.png").write_bytes(result["png"])
            assert result["errors"] == [], (page, result["errors"])
            if page != "intro":
                cells = json.loads((site.parents[1] / f"{page}.ipynb").read_text())["cells"]
                figures = sum("application/vnd.plotly.v1+json" in o.get("data", {})
                              for c in cells for o in c.get("outputs", []))
                assert figures > 0 and result["svgs"] >= 2 * figures, (page, figures, result["svgs"])
            problems[page, 1280] = layout_problems(browser.layout())
        browser.resize(400, 1600, mobile=True)  # a phone
        for page in pages:
            browser.visit(f"http://127.0.0.1:{server.server_port}/{page}.html")
            browser.resize(400, 1600, mobile=True)  # lets plotly's responsive figures redraw to fit
            problems[page, 400] = layout_problems(browser.layout(), scrolling_tables_from=PHONE_SCROLLING_TABLES)
        assert {key: found for key, found in problems.items() if found} == {}
    finally:
        browser.close()
        server.shutdown()


def test_run_prints_where_checkpoints_and_results_go(monkeypatch, tmp_path, capsys):
    """The folders a run writes to, resolved (a relative checkpoint_dir is the working folder's),
    printed before the first chapter."""
    import nbformat
    import papermill

    from paradox_utils import cli

    monkeypatch.setattr(papermill, "execute_notebook", lambda source, target, **_: nbformat.write(
        nbformat.v4.new_notebook(), target))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "--profile", "tiny", "--to", "01", "--no-progress", "--output-dir", "chapters",
                     "-p", "checkpoint_dir", "ck", "-p", "results_dir", "res"]) == 0
    out = capsys.readouterr().out.splitlines()
    where = tmp_path.resolve()
    assert out[0] == f"checkpoints: {where / 'ck'}; results: {where / 'res'}" and out[1].startswith("== 01_train")


@pytest.mark.parametrize("value,sentence", [
    ("[1", r"-p eval_per_class '\[1' is not a YAML value \(.+ at line 1, column 3\); quote a string that YAML reads "
           r"otherwise\."),
    ("a\0b", r"-p eval_per_class 'a\\x00b' is not a YAML value \(.+\); quote a string that YAML reads otherwise\."),
    ("0", r"Parameter override: eval_per_class should be at least 1, got 0\."),  # the issue's: chapter 3 failed on it
])
def test_a_bad_parameter_value_is_one_sentence(value, sentence, tmp_path, capsys):
    from paradox_utils import cli

    assert cli.main(["run", "--profile", "tiny", "-p", "eval_per_class", value, "--output-dir",
                     str(tmp_path / "chapters")]) == 1
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(f"error: {sentence}", err), err
    assert not (tmp_path / "chapters").exists()
