"""A run's headline numbers beside the paper's, as the Markdown rows of benchmarks/README.md's
"Results" table — computed from the run's result tables, never typed by hand.

    .venv/bin/python benchmarks/results.py --profile laptop [--checkpoint-dir DIR] [--results-dir DIR]
        [--log run.log] [--no-full-test]

Reads what chapters 1–6 wrote (the catalog, accuracy, pairs, chance, nulls, layer similarity,
statistics, transplant tables). Chapter 3 evaluates a stratified part of the test set; the
base networks' clean accuracy is also measured here on every test image (the paper's figure),
unless ``--no-full-test``. ``--log`` (the terminal output of ``make book``) adds each
chapter's wall time. Every similarity is shown against its chance level (the untrained-network
null's mean and 99th percentile), every number of a population as mean ± standard deviation (n).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from paradox_utils import evaluation, files, profiles, report
from paradox_utils.catalog import parents_of
from paradox_utils.paradox import relation as relation_of

# What the paper reports for its ResNet20 on CIFAR-10 (Akbarinia & Gegenfurtner 2019).
PAPER = {"clean": "0.88–0.92", "vi": "0.59–0.85", "parent-child": "≈ 0.99–1.00", "unrelated": "≈ 0.15–0.31"}


def _spread(values) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.3f} ± {values.std():.3f} (n = {len(values)})" if len(values) else "n/a"


def full_test_accuracy(catalog, dataset: str) -> tuple[str, str]:
    """(quantity, mean ± sd) of the base networks' clean accuracy on every test image."""
    images = report.evaluation_set(dataset, None)
    bases = catalog[catalog["kind"] == "base"]
    table = evaluation.evaluate(report.load_networks(bases), images, grid=[("contrast", 1.0)], progress=False,
                                weights=report.weight_hashes(bases)).table
    return (f"base clean accuracy (all {len(images):,} test images, float32)",
            _spread(evaluation.clean_accuracy(table)))


def rows(checkpoints: Path, results: Path, full_test: str | None = None) -> list[tuple[str, str, str]]:
    """(quantity, this run, the paper) for each headline number; ``full_test``: a dataset name
    ("cifar10", "imagenet") to also measure the bases' clean accuracy on its whole test set."""
    paths = profiles.chapter_paths("", str(checkpoints), str(results))
    catalog = report.done_networks(paths["checkpoints"])
    bases = set(catalog.loc[catalog["kind"] == "base", "net_id"])
    accuracy = report.read_result(paths["accuracy"], catalog, "The accuracy table", "chapter 3")
    images = int(accuracy["n_images"].max())  # several evaluation sets: the largest, as chapter 3's profile asks
    accuracy = accuracy[accuracy["n_images"] == images]
    clean, vi = evaluation.clean_accuracy(accuracy), evaluation.visual_intelligence(accuracy)
    precision = "/".join(sorted(set(evaluation.with_precision(accuracy)["precision"])))
    on = f" ({images:,} test images per cell, {precision})"
    out = [("base clean accuracy" + on, _spread(clean[clean.index.isin(bases)]), PAPER["clean"])]
    if full_test:
        out.append((*full_test_accuracy(catalog, full_test), PAPER["clean"]))
    out += [("offspring clean accuracy", _spread(clean[~clean.index.isin(bases)]), "—"),
           ("VI, all networks", _spread(vi), PAPER["vi"])]
    pairs = files.read_table(paths["pairs"], "The pair table", "run chapter 5 first")
    chance = files.read_table(paths["chance"], "The chance table", "run chapter 4 first").set_index("method")
    nulls = report.null_summary(report.load_nulls(paths["nulls"]))
    for column in [c for c in pairs.columns if c.startswith("similarity_")]:
        method = column.removeprefix("similarity_")
        null = chance.loc[method] if method in chance.index else nulls.loc[method] if method in nulls.index else None
        against = f"; chance {null['mean']:.3f}, p99 {null['p99']:.3f}" if null is not None else ""
        for relation in ("parent-child", "unrelated"):
            part = pairs.loc[pairs["relation"] == relation, column]
            above = (f", {int((part > null['p99']).sum())} of {len(part)} above p99"
                     if null is not None and relation == "unrelated" else "")
            out.append((f"{relation} similarity ({method})", _spread(part) + above + against,
                        PAPER[relation] if method == "paper" else "—"))
    layers = files.read_table(paths["layers"], "The per-layer similarity", "run chapter 4 first")
    parents = parents_of(catalog)
    unrelated = layers[[relation_of(a, b, parents) == "unrelated" for a, b in zip(layers["a"], layers["b"],
                                                                                  strict=True)]]
    order = list(dict.fromkeys(layers["layer"]))
    for layer in (order[0], order[-1]) if order else ():
        out.append((f"unrelated similarity of {layer} (paper)", _spread(unrelated.loc[unrelated["layer"] == layer,
                                                                                      "value"]), "—"))
    statistics = files.read_table(paths["statistics"], "The paradox statistics", "run chapter 5 first")
    for row in statistics[statistics["method"] == "paper"].itertuples():
        out.append((f"Mantel r, paper similarity × {row.behaviour}",
                    f"{row.mantel_r:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}], p = {row.mantel_p:.3g}; "
                    f"quadrants {row.similar_yet_different} similar-yet-different / {row.different_yet_similar} "
                    f"different-yet-similar of {row.pairs}", "—"))
    transplant = files.read_table(paths["transplant"], "The transplant table", "run chapter 6 first")
    for row in transplant.iloc[1:].itertuples():
        out.append((f"transplant ΔVI: {row.variant}", f"{row.delta_vi:+.3f} [{row.delta_low:+.3f}, "
                                                      f"{row.delta_high:+.3f}] ({row.verdict})", "—"))
    return out


def wall_times(log: Path) -> list[tuple[str, str, str]]:
    """Each chapter's "done in …" line of a batch run's terminal output."""
    text = log.read_text(errors="replace")
    done = re.findall(r"== (\d\d_\w+) done in ([^\n]+)", text)
    return [(f"wall time {chapter}", took.strip(), "—") for chapter, took in done]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True)
    parser.add_argument("--checkpoint-dir", default="")
    parser.add_argument("--results-dir", default="")
    parser.add_argument("--log", type=Path, help="the terminal output of the run (adds chapter wall times)")
    parser.add_argument("--no-full-test", action="store_true",
                        help="skip measuring the base networks' clean accuracy on every test image")
    args = parser.parse_args(argv)
    paths = profiles.chapter_paths(args.profile, args.checkpoint_dir, args.results_dir)
    dataset = None if args.no_full_test else profiles.profile_values(args.profile).get("dataset", "cifar10")
    table = rows(paths["checkpoints"], paths["results"], dataset) + (wall_times(args.log) if args.log else [])
    print(f"| {args.profile}: quantity | this run | the paper |\n|---|---|---|")
    for quantity, mine, theirs in table:
        print(f"| {quantity} | {mine} | {theirs} |")


if __name__ == "__main__":
    main()
