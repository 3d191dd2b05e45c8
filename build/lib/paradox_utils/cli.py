"""The command line: ``paradox --help`` (the console script ``pyproject.toml`` installs), the
same as ``python -m paradox_utils --help``; each names itself as it was called (:data:`PROG`).

``run`` executes the chapters with a profile (:mod:`pipeline`), ``book`` builds the Jupyter Book
(:mod:`book`), ``population`` lists a profile's networks without training, ``import`` brings
networks trained elsewhere (:mod:`importing`), ``export`` writes a run's tables as CSV and
Parquet (:mod:`export`), ``publish`` puts the book on gh-pages, ``lab`` opens JupyterLab,
``profiles`` lists the profiles.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import yaml

from . import files
from .book_builder import BOOK, ChapterFailed, build_book
from .pipeline import run
from .profiles import profile_path, profile_values, shipped_profiles, yaml_problem
from .publish import PublishFailed, publish

__all__ = ["PROG", "describe_population", "main", "parameter_values"]

# The name the help and usage lines give the command: the console script's (``main()`` with no
# arguments, as its wrapper calls it); ``__main__`` passes ``python -m paradox_utils``.
PROG = "paradox"


def describe_population(profile: str, parameters: dict[str, Any] | None = None, csv: str | None = None) -> str:
    """The text ``paradox population`` prints (and the ``csv`` it writes):
    the varying settings per network, the shared ones, and :func:`population.summary`."""
    import pandas as pd

    from .population import from_parameters, listing, summary

    specs = from_parameters(profile_values(profile, parameters))
    table = listing(specs)
    if csv:
        with files.atomic_path(csv) as tmp:
            table.to_csv(tmp, index=False)
    settings = [c for c in table.columns if c not in ("net_id", "parent", "kind")]
    # dropna=False: a setting given to some networks only (None elsewhere, NaN in the table) varies
    varying = [c for c in settings if table[c].astype(str).nunique(dropna=False) > 1]
    shared = ", ".join(f"{c}={table[c].iloc[0]}" for c in settings if c not in varying)
    with pd.option_context("display.max_rows", None, "display.width", 200):
        text = table[["net_id", "parent", "kind", *varying]].to_string(index=False)
    lines = [text, f"Shared by every network: {shared}.", summary(specs)]
    if csv:
        lines.append(f"Every field of every network: {csv}")
    return "\n".join(lines)


def parameter_values(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``-p NAME VALUE`` pairs → name → value, each VALUE read as YAML (``3``, ``0.1``, ``[a, b]``);
    ValueError in one sentence for a VALUE that is not YAML."""
    values = {}
    for name, text in pairs:
        try:
            values[name] = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"-p {name} {text!r} is not a YAML value ({yaml_problem(error)}); quote a string "
                             "that YAML reads otherwise.") from None
    return values


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the command; 0 on success, 1 with one
    line on stderr for a failure the user can fix. ``prog``: the command's name in the help."""
    parser = argparse.ArgumentParser(prog=prog,
                                     description="Run the paradox analysis book's chapters and build the book.")
    commands = parser.add_subparsers(dest="command", required=True)
    profile_help = f"{', '.join(shipped_profiles())}, or a YAML path (default quick)"
    run_parser = commands.add_parser("run", help="execute the six chapters with a profile (papermill)",
                                     description="Execute the chapters in order with a profile's parameters.")
    run_parser.add_argument("--profile", default="quick",
                            help=profile_help)
    run_parser.add_argument("--from", dest="start", default=None,
                            help="start at this chapter (e.g. 03_evaluate or evaluate)")
    run_parser.add_argument("--to", dest="until", default=None,
                            help="stop after this chapter (e.g. 02_finetune)")
    run_parser.add_argument("--scheduler", default=None,
                            help="serial, local (Dask LocalCluster), slurm, or a Dask scheduler address tcp://host:8786")
    run_parser.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                            help="a setting of the SLURM jobs for --scheduler slurm (dask-jobqueue's SLURMCluster): "
                                 "cores=4, memory=16GB (both needed, here or in ~/.config/dask/jobqueue.yaml), "
                                 "queue=PARTITION, walltime=02:00:00, account=NAME, interface=ib0, "
                                 "job_extra_directives=\"['--gres=gpu:1']\"; repeatable. The profile's workers "
                                 "(-p workers N) is the number of SLURM jobs kept running (default 1)")
    run_parser.add_argument("--output-dir", default=None, metavar="DIR",
                            help="write the executed chapters here (default book/chapters)")
    run_parser.add_argument("--retrain", action="append", default=[], metavar="ID|stale",
                            help="train this network again from scratch although its checkpoint is finished (its "
                                 "offspring too); repeatable. stale: every network whose checkpoint does not match "
                                 "the profile (safe to repeat: after a kill, the rerun resumes)")
    run_parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                            help="override one chapter parameter (VALUE is YAML: 3, 0.1, [a, b], {epochs: 2}); "
                                 "repeatable, validated like a profile")
    run_parser.add_argument("--no-progress", action="store_true",
                            help="print no progress lines (only each chapter's start and end)")
    book_parser = commands.add_parser("book", help="build the Jupyter Book from the executed chapters",
                                      description="Render book/chapters into book/_build/html "
                                                  "(offline, warnings as errors): the six chapters, or for networks "
                                                  "imported with `import` the chapters that ran on them (3–6), "
                                                  "never 1–2.")
    book_parser.add_argument("--dir", default=str(BOOK), help="the book folder (default book/)")
    commands.add_parser("profiles", help="list the profiles and their parameters")
    population_parser = commands.add_parser(
        "population", help="list a profile's networks without training anything (a dry run)",
        description="One row per network of the profile's population: id, parent, kind and the settings that "
                    "vary; then the settings every network shares and a one-line summary (networks, epochs, "
                    "training images). Nothing is trained or written, except the --csv file.")
    population_parser.add_argument("--profile", default="quick",
                                   help=profile_help)
    population_parser.add_argument("--csv", metavar="FILE", help="write every network's every TrainConfig field here")
    population_parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                                   metavar=("NAME", "VALUE"), help="override one chapter parameter (as for run)")
    publish_parser = commands.add_parser(
        "publish", help="put the built book on the gh-pages branch of a remote (ghp-import)",
        description="Commit book/_build/html as the gh-pages branch (with .nojekyll) and force-push it to the "
                    "remote, as Jupyter Book's documentation recommends (ghp-import -n -p -f). Build it first.")
    publish_parser.add_argument("--remote", default="origin", help="the git remote to push to (default origin)")
    publish_parser.add_argument("--branch", default="gh-pages", help="the branch (default gh-pages)")
    publish_parser.add_argument("--dir", default=str(BOOK / "_build" / "html"),
                                help="the built HTML (default book/_build/html)")
    commands.add_parser(
        "lab", help="JupyterLab on notebooks/ (what make lab runs)",
        description="JupyterLab serving notebooks/: chapters open as notebooks, jupytext pairs each .py with an "
                    ".ipynb (git-ignored) that keeps the outputs. Further arguments go to jupyter lab "
                    "(e.g. --port 8890).")
    import_parser = commands.add_parser(
        "import", help="import networks trained elsewhere, for chapters 3–6",
        description="Read every *.safetensors, *.pt/*.pth (state_dicts only: never a full unpickle) and Lightning "
                    "*.ckpt in DIR, check each against the architecture, and write project checkpoints, the catalog "
                    "and a profile.yaml into the checkpoint folder (default checkpoints/NAME). Then run chapters "
                    "3–6 with the command it prints. Re-importing the same files changes nothing.")
    import_parser.add_argument("folder", metavar="DIR", help="the folder holding the weight files")
    import_parser.add_argument("--arch", required=True,
                               help="resnet20, resnet50, resnet50_keras, or torchvision:<name> (torchvision:vgg11)")
    import_parser.add_argument("--profile", required=True, metavar="NAME", help="a name for the imported population")
    import_parser.add_argument("--lineage", metavar="CSV",
                               help="net_id,parent[,label][,file] per network with a parent (default: all bases; "
                                    "ids are the files' stems)")
    import_parser.add_argument("--normalise", metavar="SPEC",
                               help="the input normalisation the networks expect: cifar10, imagenet, none, or "
                                    "M,M,M/S,S,S (default: the dataset's)")
    import_parser.add_argument("--dataset", choices=["cifar10", "imagenet"],
                               help="what chapters 3–6 evaluate on (default: by the networks' outputs, 10 or 1000)")
    import_parser.add_argument("--num-classes", type=int, help="default: the first file's classifier's outputs")
    import_parser.add_argument("--checkpoint-dir", metavar="DIR", help="default checkpoints/NAME")
    import_parser.add_argument("--results-dir", metavar="DIR", help="default data/results/NAME")
    export_parser = commands.add_parser(
        "export", help="write a run's matrices, pair table and networks as tidy CSV and Parquet",
        description="Write into DIR, as NAME.csv and NAME.parquet: networks (one row per network: id, parent, "
                    "family, every training setting), matrices (measure, condition, a, b, value: every N × N "
                    "matrix of the run, similarity, CKA, compatibility, relative compatibility, κ) and pairs "
                    "(chapter 5's pair table with each side's settings that vary). Tables are read as the "
                    "chapters read them: one made from other weights is refused; one not written yet is left out.")
    export_parser.add_argument("folder", metavar="DIR", help="where to write the tables (made if missing)")
    export_parser.add_argument("--profile", default="quick", help=profile_help)
    export_parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                               metavar=("NAME", "VALUE"), help="override one parameter (as for run: results_dir, "
                                                               "checkpoint_dir)")
    args, extra = parser.parse_known_args(argv)  # lab passes what it does not know on to jupyter lab
    if extra and args.command != "lab":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "run":
            overrides = parameter_values(args.parameter)
            if args.slurm:  # the chapters' kernels build the SLURM cluster; they inherit these (Dask's settings)
                from .cluster import slurm_environment

                os.environ.update(slurm_environment(args.slurm))
            for path in run(args.profile, args.start, args.scheduler, output_dir=args.output_dir,
                            progress=not args.no_progress, parameters=overrides, retrain=args.retrain,
                            until=args.until):
                print(f"executed {path}")
        elif args.command == "book":
            print(f"built {build_book(args.dir)}")
        elif args.command == "import":
            from .importing import import_population

            print(import_population(args.folder, args.arch, args.profile, args.lineage,
                                    checkpoint_dir=args.checkpoint_dir, results_dir=args.results_dir,
                                    normalisation=args.normalise, dataset=args.dataset, num_classes=args.num_classes))
        elif args.command == "export":
            from .export import export_profile

            print(export_profile(args.profile, args.folder, parameter_values(args.parameter)).summary())
        elif args.command == "population":
            overrides = parameter_values(args.parameter)
            print(describe_population(args.profile, overrides, args.csv))
        elif args.command == "publish":
            print(publish(args.dir, args.remote, args.branch))
        elif args.command == "lab":
            from . import lab

            lab.main(extra)
        else:
            for name in shipped_profiles():
                print(f"{name}:\n  " + "\n  ".join(profile_path(name).read_text().strip().splitlines()))
    except (ChapterFailed, PublishFailed, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
