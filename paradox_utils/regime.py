"""Where a run stands against the paper: one computed sentence, shown as an admonition.

The paper's networks were fully trained (ResNet20 on CIFAR-10: clean accuracy
0.88–0.92; ResNet50 on ImageNet: top-1 0.69–0.73), and independently trained ResNet20
pairs had intrinsic similarity ≈ 0.15–0.31, above the ≈ 0.135 of untrained networks.
A run on a laptop budget is usually far from that, and every statistic it reports
describes networks early in training. The chapters open with :func:`regime` so that no
reader mistakes one for the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .admonition import Admonition
from .catalog import configs
from .models import PAPER_ACCURACY
from .references import SEED_FIELDS

__all__ = ["PAPER_ACCURACY", "REGIME_ACCURACY", "Regime", "design_text", "regime", "regime_of"]

# The mean clean accuracy from which a run counts as in the paper's regime (a little below
# the paper's lowest network, models.PAPER_ACCURACY: a population's mean sits inside its
# range, not at its top).
REGIME_ACCURACY = {"resnet20": 0.85, "resnet50": 0.65, "resnet50_keras": 0.65}
PAPER_NAMES = {"resnet20": "ResNet20", "resnet50": "ResNet50", "resnet50_keras": "ResNet50"}  # as the paper writes them


@dataclass(frozen=True)
class Regime:
    """The verdict (``inside``: in the paper's regime) and the sentence that says why.
    Displays as a Jupyter Book admonition: "note" inside the regime, "warning" outside."""

    inside: bool
    text: str

    @property
    def kind(self) -> str:
        return "note" if self.inside else "warning"

    def _repr_html_(self) -> str:
        title = "In the paper's regime" if self.inside else "Outside the paper's regime"
        return Admonition(self.kind, title, self.text)._repr_html_()

    def __str__(self) -> str:
        return self.text


def regime(arch: str, clean_accuracy: pd.Series | np.ndarray, unrelated: pd.Series | np.ndarray | None = None,
           chance: float | None = None, chance_p99: float | None = None, design: str = "") -> Regime:
    """Place a run against the paper.

    ``clean_accuracy``: the base networks' clean accuracy (fractions); ``unrelated``:
    the intrinsic similarity (paper's measure) of the unrelated pairs; ``chance`` and
    ``chance_p99``: the mean and 99th percentile of that measure over untrained pairs;
    ``design``: a sentence on what differs from the paper beyond accuracy
    (:func:`design_text`). A run at the paper's accuracy whose unrelated kernels are no
    more alike than random ones is not said to describe networks as the paper's did.
    """
    accuracy = np.asarray(clean_accuracy, dtype=float)
    accuracy = accuracy[np.isfinite(accuracy)]
    if accuracy.size == 0:
        raise ValueError("regime needs the clean accuracy of at least one network.")
    if arch not in PAPER_ACCURACY:  # e.g. an imported torchvision network: nothing to place it against
        return Regime(False, f"The {accuracy.size} base network(s) of this run ({arch}) reach a clean accuracy of "
                             f"{accuracy.mean():.3f} on average; the paper studied no {arch}, so this run is "
                             "outside the paper's regime by construction: compare its statistics with the "
                             "paper's only as a different study.")
    low, high = PAPER_ACCURACY[arch]
    inside = bool(accuracy.mean() >= REGIME_ACCURACY[arch])
    spread = f" ({accuracy.min():.3f}–{accuracy.max():.3f})" if accuracy.size > 1 else ""
    sentences = [f"The {accuracy.size} base network{'s' if accuracy.size > 1 else ''} of this run reach a clean "
                 f"accuracy of {accuracy.mean():.3f} on average{spread}; the paper's {PAPER_NAMES[arch]} reached "
                 f"{low:.2f}–{high:.2f}."]
    similar = None if unrelated is None else np.asarray(unrelated, dtype=float)
    at_chance = False
    if similar is not None and similar.size and chance is not None:
        level = f"{chance:.3f}" + (f", 99th percentile {chance_p99:.3f}" if chance_p99 is not None else "")
        at_chance = chance_p99 is not None and float(np.nanmean(similar)) <= chance_p99
        sentences.append(f"Unrelated networks have intrinsic similarity {np.nanmean(similar):.3f} on average, "
                         f"against {level} for untrained networks"
                         + (": their kernels are still no more alike than random ones." if at_chance else "."))
    if design:
        sentences.append(design)
    if inside and at_chance:
        sentences.append(f"The run reaches the paper's accuracy (mean clean accuracy ≥ {REGIME_ACCURACY[arch]:.2f}), "
                         "but unlike the paper's its unrelated networks' kernels are no more alike than random "
                         "ones: read its kernel statistics as those of a different regime.")
    elif inside:
        sentences.append(f"The run is in the paper's regime by accuracy (mean clean accuracy ≥ "
                         f"{REGIME_ACCURACY[arch]:.2f}): the statistics below describe trained networks, as the "
                         "paper's did, within the design differences named here.")
    else:
        sentences.append(f"The run is outside the paper's regime (mean clean accuracy below "
                         f"{REGIME_ACCURACY[arch]:.2f}): these networks are under-trained, and the statistics below "
                         "describe networks early in training, not the paper's.")
    return Regime(inside, " ".join(sentences))


def design_text(catalog: pd.DataFrame) -> str:
    """What differs from the paper's design beyond accuracy, from the catalog's recorded
    configs: the bases' optimiser, schedule and epochs, the offspring per parent, and
    whether the run has seed replicates — against the paper's 104 bases trained with Adam
    for about 200 epochs, each a parent of 2 or 3 offspring. "" without configs."""
    recorded = configs(catalog)
    bases = [recorded[n] for n in catalog.loc[catalog["kind"] == "base", "net_id"] if recorded.get(n)]
    if not bases:
        return ""

    def values(field: str) -> str:
        return " or ".join(str(v) for v in dict.fromkeys(b.get(field) for b in bases))

    parents = catalog["parent"].dropna()
    parents = parents[parents.astype(str) != ""]
    per_parent = parents.value_counts()
    offspring = (f"{len(parents)} offspring of {len(per_parent)} parents ({per_parent.min()}–{per_parent.max()} "
                 "each)" if len(parents) else "no offspring")
    recipes = pd.Series([json.dumps({k: v for k, v in b.items() if k not in SEED_FIELDS}, sort_keys=True)
                         for b in bases]).value_counts()
    repeated = int((recipes > 1).sum())
    replicates = (f"seed replicates of {repeated} recipe{'s' if repeated > 1 else ''}" if repeated
                  else "no seed replicates")
    return (f"Beyond accuracy, its design differs from the paper's: {len(bases)} bases trained {values('epochs')} "
            f"epochs with {values('optimiser')} ({values('schedule')} schedule), against 104 trained about 200 "
            f"epochs with Adam; {offspring}, against 225 of 104 parents; {replicates}.")


def regime_of(catalog: pd.DataFrame, accuracy: pd.DataFrame, pairs: pd.DataFrame | None = None,
              chance: pd.DataFrame | None = None) -> Regime:
    """:func:`regime` from a run's tables: the catalog (its base networks and their
    architecture), the accuracy table (chapter 3), and where the chapter has them the pair
    table (``relation``, ``similarity_paper``) and the similarity nulls' summary
    (``report.null_summary``: rows by measure, columns ``mean`` and ``p99``)."""
    from .evaluation import clean_accuracy

    bases = catalog.loc[catalog["kind"] == "base", "net_id"]
    clean = clean_accuracy(accuracy).reindex(bases).dropna()
    unrelated = None if pairs is None else pairs.loc[pairs["relation"] == "unrelated", "similarity_paper"]
    has_chance = chance is not None and "paper" in chance.index
    return regime(str(catalog["arch"].iloc[0]), clean, unrelated,
                  float(chance.loc["paper", "mean"]) if has_chance else None,
                  float(chance.loc["paper", "p99"]) if has_chance and "p99" in chance else None,
                  design_text(catalog))
