"""paradox_utils: the helper package behind the paradox analysis book.

The modules follow the study's flow, profile → population → training → checkpoints →
evaluation → similarity → paradox → transplant → book, in seven rooms. A room is a floor:
a module imports only from its own room and the rooms above it in this list (tests/test_package.py
holds every import to it, lazy ones too, and finds no circle).

- foundation — what every room uses: ``profiles`` (a profile's YAML → every chapter parameter,
  validated; where its files live), ``files`` (atomic writes, tables, locks), ``progress`` (bars,
  batch lines, ETA), ``runtime`` (threads, seeds, device), ``names`` (naming many ids in one
  message; the rule for names that become paths), ``provenance`` (profile and commit of a built
  book), ``admonition`` (the book's boxes).
- networks — ``models`` (ResNets, torchvision), ``stacking`` (networks trained side by side),
  ``checkpoints`` (safetensors + JSON sidecar), ``catalog`` (the population's table, imported
  networks), ``importing`` (weights trained elsewhere), ``kernels`` and ``permutations``
  (conv kernels, channel alignment).
- data — ``data`` (CIFAR-10, ImageNet), ``distortions`` (the eight manipulations).
- population — ``training`` (one network, or a stack of them), ``population`` (a profile's
  networks and their status), ``cluster`` (training them, serially or over Dask or SLURM).
- measures — ``correctness`` (per-image outcomes), ``evaluation`` (accuracy under the 37 cells),
  ``similarity`` and ``cka`` (weights, representations), ``behaviour`` (compatibility, κ),
  ``nulls`` (chance levels and thresholds), ``bootstrap`` (intervals), ``inference`` (tests with
  the family as the unit: Mantel, partial Mantel, Holm, power), ``grounding`` (each similarity measure
  against behaviour), ``references`` (the run's own
  pairs that define alike and unlike), ``paradox`` (pairs,
  quadrants, Mantel), ``transplant`` (moving layers between networks).
- book — ``preamble`` (opening a chapter), ``report`` (reading and writing the chapters'
  tables), ``sentences`` (the prose the chapters glue), ``plots``, ``regime``, ``explorer``,
  ``book_builder`` (Jupyter Book), ``publish`` (gh-pages), ``export`` (the run's tables as CSV and
  Parquet for other tools).
- run — ``pipeline`` (papermill runs the chapters), ``cli`` (the ``paradox`` command,
  ``python -m paradox_utils``), ``lab`` (JupyterLab).

The package is flat rather than nested in subpackages: every ``paradox_utils.X`` that a
chapter, a test, an issue or a user's notebook names keeps working, and the rooms are held by
:data:`ROOMS` and its test instead of by folders.

Importing it does nothing but define names: seeds, threads and plot themes are set by explicit
calls (``paradox_utils.runtime``), and no module downloads at import.
"""

__version__ = "0.1.0"
__all__ = ["ROOMS", "__version__"]

# room → its modules, in the flow's order; a module imports only from its room and the ones before it.
ROOMS = {
    "foundation": ("profiles", "files", "progress", "runtime", "names", "provenance", "admonition"),
    "networks": ("models", "stacking", "checkpoints", "catalog", "importing", "kernels", "permutations"),
    "data": ("data", "distortions"),
    "population": ("training", "population", "cluster"),
    "measures": ("correctness", "evaluation", "similarity", "cka", "behaviour", "nulls", "bootstrap", "inference",
                 "grounding", "references", "paradox", "transplant"),
    "book": ("preamble", "report", "sentences", "plots", "regime", "explorer", "book_builder", "publish",
             "export"),
    "run": ("pipeline", "cli", "lab", "__main__"),
}
