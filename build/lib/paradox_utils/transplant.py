"""Weight transplant: copy conv layers (and the BatchNorms around them) from a donor
into a recipient of the same architecture (as in the paper), BN re-estimation, and the
transplant chapter's experiments (``transplant_experiments``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from . import bootstrap, distortions, evaluation, similarity
from .models import conv_layers
from .permutations import permutation_graph

__all__ = ["CONV_ONLY", "TransplantResults", "bn_neighbours", "recalibrate_batchnorm", "transplant",
           "transplant_experiments", "vi_in_both_chapters"]


CONV_ONLY = "(conv only)"  # a transplant variant whose BatchNorms stay the parent's


def bn_neighbours(model: nn.Module, layer: str) -> list[str]:
    """The BatchNorms on either side of conv ``layer``: the one after it, and the one
    after the conv that feeds it (when exactly one conv does) — as the authors copied
    ``bn3c_branch2b`` and ``bn3c_branch2c`` with ``res3c_branch2c``."""
    convs, _ = permutation_graph(model)
    by_name = {name: (out, inp, bn) for name, out, inp, bn in convs}
    _, inp, bn = by_name[layer]
    feeders = [b for name, (out, _, b) in by_name.items() if out == inp]
    before = feeders if len(feeders) == 1 and feeders[0] is not None else []
    return [*before, *([bn] if bn else [])]


def transplant(recipient: nn.Module, donor: nn.Module, layers: str | Sequence[str],
               include_bn: bool = True) -> nn.Module:
    """A copy of ``recipient`` with the donor's named conv layers (kernel + bias).

    ``include_bn``: also copy the BatchNorms on either side (parameters and running
    statistics). ``layers="all"``: every conv (and, with ``include_bn``, every
    BatchNorm), keeping the recipient's classifier. Raises ValueError for networks of
    different architectures or an unknown layer name.
    """
    shapes_r = {k: tuple(v.shape) for k, v in recipient.state_dict().items()}
    shapes_d = {k: tuple(v.shape) for k, v in donor.state_dict().items()}
    if shapes_r != shapes_d:
        raise ValueError("Recipient and donor are not of the same architecture (their state_dicts differ in "
                         "names or shapes); transplant needs one architecture.")
    conv_names = [name for name, _ in conv_layers(recipient)]
    if layers == "all":
        chosen = conv_names
        norms = [n for n, m in recipient.named_modules() if isinstance(m, nn.BatchNorm2d)] if include_bn else []
    else:
        chosen = [layers] if isinstance(layers, str) else list(layers)
        unknown = [name for name in chosen if name not in conv_names]
        if unknown:
            raise ValueError(f"Unknown conv layers {unknown}; valid: {', '.join(conv_names)}.")
        norms = sorted({bn for name in chosen for bn in bn_neighbours(recipient, name)}) if include_bn else []
    child = copy.deepcopy(recipient)
    source = dict(donor.named_modules())
    with torch.no_grad():
        for name in [*chosen, *norms]:
            target_state = child.get_submodule(name).state_dict()
            for key, value in source[name].state_dict().items():
                target_state[key].copy_(value)
    return child


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, images: torch.Tensor, batch_size: int = 250) -> nn.Module:
    """A copy of ``model`` whose BatchNorm running statistics are re-estimated on clean
    float ``images`` (n, 3, H, W) in [0, 1] (cumulative average over the batches)."""
    model = copy.deepcopy(model)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average: every batch counts equally
    model.train()
    for start in range(0, len(images), batch_size):
        model(images[start:start + batch_size])
    return model.eval()


@dataclass(frozen=True)
class TransplantResults:
    """The transplant chapter's results (:func:`transplant_experiments`).

    ``accuracy``: the tidy accuracy table of every variant (``evaluation.evaluate``'s, its
    net_id the variant's name). ``summary``: per variant — its index, named "variant" — the
    mean accuracy per manipulation, vi, test_images (the number of images every VI and ΔVI
    was measured on), delta_vi and its paired bootstrap interval over the evaluation images,
    delta_low and delta_high, and a verdict ("not distinguishable from no change" when the
    interval spans 0). ``sweep``: per layer transplanted alone: layer, layer_correlation
    (parent–child), vi, test_images, delta_vi, delta_low, delta_high, verdict (no rows
    without the sweep). ``profile``: the pair's per-layer correlations
    (``similarity.layer_profile``). ``deviated``: the name of the most-moved layer.
    ``one_layer``: the summary's name of the parent with that one child layer.
    """

    accuracy: pd.DataFrame
    summary: pd.DataFrame
    sweep: pd.DataFrame
    profile: pd.DataFrame
    deviated: str
    one_layer: str


def transplant_experiments(parent: nn.Module, child: nn.Module, images, grid=distortions.PAPER_GRID,
                           sweep: bool = True, recalibration_images: torch.Tensor | None = None,
                           seed: int = 0, progress: bool = True,
                           resamples: int = 1000, device: str | torch.device = "cpu",
                           precision: str = "float32") -> TransplantResults:
    """The four experiments of the transplant chapter, evaluated in one engine pass.

    ``images``: the evaluation set (anything ``evaluation.evaluate`` takes); ``grid``,
    ``seed`` (the shared noise), ``device``, ``precision`` (the forward passes' arithmetic)
    and ``progress`` (its "cells" bar) as ``evaluation.evaluate`` takes them;
    ``recalibration_images``: float (n, 3, H, W) in [0, 1] — when given, each
    transplanted variant is also evaluated with its BatchNorm statistics re-estimated;
    ``sweep``: also the parent with each single child layer; ``resamples``: the bootstrap's
    draws (``bootstrap.delta_vi``, seeded with ``seed``).
    """
    profile = similarity.layer_profile(parent, child)
    deviated = profile.loc[profile["mean"].idxmin(), "layer"]
    one_layer = f"parent + child's {deviated}"
    variants = {"parent": parent, "child": child, one_layer: transplant(parent, child, deviated),
                "parent + all child convs": transplant(parent, child, "all"),
                # the paper's text counts the conv alone: the same transplants without the BatchNorms around them
                f"{one_layer} {CONV_ONLY}": transplant(parent, child, deviated, include_bn=False),
                f"parent + all child convs {CONV_ONLY}": transplant(parent, child, "all", include_bn=False)}
    if recalibration_images is not None:
        for name in list(variants)[2:4]:
            variants[f"{name} (BN re-estimated)"] = recalibrate_batchnorm(variants[name], recalibration_images)
    if sweep:
        for layer in profile["layer"]:
            variants[f"sweep:{layer}"] = transplant(parent, child, layer)
    measured = evaluation.evaluate(variants, images, grid=grid, seed=seed, progress=progress, device=device,
                                   precision=precision)
    table, correct = measured.table, measured.correctness
    vi = evaluation.visual_intelligence(table)
    n_images = evaluation.images_per_cell(table)
    changes = bootstrap.delta_vi(correct, "parent", [v for v in variants if v != "parent"], resamples, seed)
    changes.loc["parent"] = {"parent": "parent", "delta": 0.0, "low": 0.0, "high": 0.0, "verdict": "—"}
    summary = evaluation.per_manipulation(table).assign(vi=vi, test_images=n_images)
    summary = summary.loc[[v for v in variants if not v.startswith("sweep:")]]
    summary["delta_vi"] = summary["vi"] - vi["parent"]
    summary = summary.join(changes[["low", "high", "verdict"]].rename(columns={"low": "delta_low",
                                                                                "high": "delta_high"}))
    summary.index.name = "variant"
    rows = [{"layer": layer, "layer_correlation": r, "vi": vi[f"sweep:{layer}"], "test_images": n_images,
             "delta_vi": vi[f"sweep:{layer}"] - vi["parent"], "delta_low": changes.loc[f"sweep:{layer}", "low"],
             "delta_high": changes.loc[f"sweep:{layer}", "high"], "verdict": changes.loc[f"sweep:{layer}", "verdict"]}
            for layer, r in zip(profile["layer"], profile["mean"], strict=True) if f"sweep:{layer}" in vi]
    return TransplantResults(accuracy=table, summary=summary, sweep=pd.DataFrame(rows), profile=profile,
                             deviated=deviated, one_layer=one_layer)


def vi_in_both_chapters(accuracy: pd.DataFrame, chapter3_accuracy: pd.DataFrame, parent_id: str,
                        child_id: str) -> pd.DataFrame:
    """The transplant pair's VI here and in chapter 3, which measures every network on its
    own evaluation set: one row per network (index net_id: ``parent_id``, then ``child_id``).

    ``accuracy``: :class:`TransplantResults`' accuracy table (it holds the variants "parent"
    and "child"); ``chapter3_accuracy``: chapter 3's accuracy table (``evaluation.evaluate``).
    Columns: vi, test_images, noise_seed (this chapter's evaluation), vi_chapter3,
    test_images_chapter3, noise_seed_chapter3, difference (vi − vi_chapter3),
    same_images (both evaluation sets have one fingerprint: the same images), precision and
    precision_chapter3 (the forward passes' arithmetic). With the same images, noise seed
    and precision the two VIs are one measurement made twice."""
    here = accuracy.replace({"net_id": {"parent": parent_id, "child": child_id}})
    chapter3_accuracy = evaluation.with_precision(chapter3_accuracy)
    rows = []
    for net_id in (parent_id, child_id):
        mine = here[here["net_id"] == net_id]
        theirs = chapter3_accuracy[chapter3_accuracy["net_id"] == net_id]
        if theirs.empty:
            raise ValueError(f"Chapter 3's accuracy table has no rows for {net_id}: run chapter 3 (03_evaluate) "
                             "again.")
        rows.append({"net_id": net_id, "vi": float(evaluation.visual_intelligence(mine).iloc[0]),
                     "test_images": evaluation.images_per_cell(mine), "noise_seed": int(mine["noise_seed"].iloc[0]),
                     "vi_chapter3": float(evaluation.visual_intelligence(theirs).iloc[0]),
                     "test_images_chapter3": evaluation.images_per_cell(theirs),
                     "noise_seed_chapter3": int(theirs["noise_seed"].iloc[0]),
                     "same_images": set(mine["eval_set"]) == set(theirs["eval_set"]),
                     "precision": str(mine["precision"].iloc[0]),
                     "precision_chapter3": str(theirs["precision"].iloc[0])})
    table = pd.DataFrame(rows).set_index("net_id")
    table.insert(6, "difference", table["vi"] - table["vi_chapter3"])
    return table
