"""The run's references: which pairs of its own networks define "alike" and "unlike" on each axis.

The paper calls two networks "similar" when their kernels are as alike as a parent's and
its child's, and "different" in behaviour when their accuracy profiles disagree. Read
against a fixed 0.5, or against untrained networks (``nulls``), every trained pair can
land on one side by construction; so here each axis is read against pairs measured in
the same run (methods: References measured in the run):

* weights — alike: a parent and its child fine-tuned without manipulation (the same
  network trained a little longer); unlike: networks of different families.
* behaviour — alike: seed replicates, networks of one recipe and one parent (or none)
  that differ only in their seeds (the behavioural noise floor of a recipe); unlike:
  networks of different families and different recipes.

A pair's value on an axis is "alike" at or above the alike reference's
``REFERENCE_QUANTILE`` (its floor), "unlike" at or below the unlike reference's
1 − ``REFERENCE_QUANTILE`` (its ceiling), "between" otherwise. Where an axis lacks a
reference, or its two references overlap (floor ≤ ceiling: the measure cannot tell the
alike from the unlike), that axis is undefined and so are the paradoxes that need it.
"Similar yet different": weights alike, behaviour unlike; "different yet similar":
weights unlike, behaviour alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .catalog import configs, families, parents_of
from .nulls import NULL_QUANTILE

__all__ = ["REFERENCES", "REFERENCE_QUANTILE", "STATES", "axis_state", "covariates", "paradox_counts",
           "reference_thresholds", "roles"]

REFERENCE_QUANTILE = 0.05  # a reference's floor (alike) and ceiling (unlike, 1 − this) hold 95 % of its pairs
# seeds change nothing in a recipe but the draws: a base's init and data order, an offspring's augmentation stream
SEED_FIELDS = ("seed", "data_seed")
STATES = ("alike", "between", "unlike")

# (axis, side) → (the pairs' column set by :func:`roles`, how the book names the reference)
REFERENCES = {
    ("weights", "alike"): ("reference_weights_alike", "a parent and its child fine-tuned without manipulation"),
    ("weights", "unlike"): ("reference_weights_unlike", "networks of different families"),
    ("behaviour", "alike"): ("reference_behaviour_alike", "seed replicates (one recipe, different seeds)"),
    ("behaviour", "unlike"): ("reference_behaviour_unlike", "networks of different families and recipes"),
}


def _lineage(catalog: pd.DataFrame) -> tuple[dict, dict, dict]:
    """(net_id → parent, net_id → family, net_id → training config without the seeds; {}
    where the catalog records none, e.g. imported)."""
    parents = parents_of(catalog)
    recipes = {net: {k: v for k, v in c.items() if k not in SEED_FIELDS} for net, c in configs(catalog).items()}
    return parents, families(parents), recipes


def _training_data(config: Mapping) -> str:
    """What a network was trained on: its augmentation's name, "none" for clean images."""
    return "none" if config.get("manipulation") in (None, "", "none") else str(config["manipulation"])


def roles(pairs: pd.DataFrame, catalog: pd.DataFrame) -> pd.DataFrame:
    """A copy of a pair table (``paradox.pair_table``: columns a, b) with what each pair is:
    ``family_a``, ``family_b`` (``catalog.families``), ``same_family`` and
    ``same_training_data`` (both trained on the same manipulation, "none" for clean; False
    where a config is unknown), and one bool column per reference of :data:`REFERENCES`.

    Seed replicates need known configs that are equal but for :data:`SEED_FIELDS` and
    the same parent (or both none); imported networks without a config are never
    replicates and never of "different recipes".
    """
    parents, family, recipes = _lineage(catalog)
    out = pairs.copy()
    a, b = out["a"].astype(str), out["b"].astype(str)
    unknown = sorted((set(a) | set(b)) - set(family))
    if unknown:
        raise ValueError(f"The catalog has no row for networks of the pair table: {', '.join(unknown[:5])}.")
    out["family_a"], out["family_b"] = a.map(family), b.map(family)
    out["same_family"] = out["family_a"] == out["family_b"]
    known = [bool(recipes[x]) and bool(recipes[y]) for x, y in zip(a, b, strict=True)]
    out["same_training_data"] = [k and _training_data(recipes[x]) == _training_data(recipes[y])
                                 for k, x, y in zip(known, a, b, strict=True)]
    same_recipe = [k and recipes[x] == recipes[y] for k, x, y in zip(known, a, b, strict=True)]
    same_parent = [parents[x] == parents[y] for x, y in zip(a, b, strict=True)]
    unmanipulated_child = [(parents[y] == x and _training_data(recipes[y]) == "none" and bool(recipes[y]))
                           or (parents[x] == y and _training_data(recipes[x]) == "none" and bool(recipes[x]))
                           for x, y in zip(a, b, strict=True)]
    out[REFERENCES["weights", "alike"][0]] = unmanipulated_child
    out[REFERENCES["weights", "unlike"][0]] = ~out["same_family"]
    out[REFERENCES["behaviour", "alike"][0]] = [s and p for s, p in zip(same_recipe, same_parent, strict=True)]
    out[REFERENCES["behaviour", "unlike"][0]] = [(not s) and k and not f for s, k, f in
                                                 zip(same_recipe, known, out["same_family"], strict=True)]
    return out


def covariates(catalog: pd.DataFrame, ids: Sequence[str]) -> dict[str, pd.DataFrame]:
    """The pair covariates a partial association holds fixed, as (N × N) 0/1 matrices over
    ``ids`` (indexed both ways): "same family" (``catalog.families``) and "same training
    data" (both trained on the same manipulation, "none" for clean images; 0 where either
    config is unknown). The diagonal is 1."""
    _, family, recipes = _lineage(catalog)
    if missing := [str(i) for i in ids if i not in family]:
        raise ValueError(f"The catalog has no row for {', '.join(missing[:5])}.")
    labels = pd.Series([family[i] for i in ids], index=list(ids))
    data = pd.Series([_training_data(recipes[i]) if recipes[i] else f"unknown:{i}" for i in ids],
                     index=list(ids))
    return {name: pd.DataFrame(np.equal.outer(v.to_numpy(), v.to_numpy()).astype(float), index=list(ids),
                               columns=list(ids))
            for name, v in (("same family", labels), ("same training data", data))}


def reference_thresholds(pairs: pd.DataFrame, methods: Sequence[str], behaviours: Sequence[str],
                         nulls: Mapping[str, np.ndarray] | None = None,
                         quantile: float = REFERENCE_QUANTILE) -> pd.DataFrame:
    """One row per (axis, measure): each reference's pairs and value — ``alike_floor``, the
    alike reference's ``quantile``, and ``unlike_ceiling``, the unlike reference's
    1 − ``quantile`` — ``separates`` (both references present and floor > ceiling),
    ``reason`` (why not, in words; "" when it separates) and ``chance`` (the measure's
    untrained or shuffled null at ``nulls.NULL_QUANTILE``, NaN without one).

    ``pairs``: a pair table with :func:`roles` and the columns ``similarity_<method>`` and
    one per behaviour. Rows are indexed by ("axis", "measure"); measures are the methods
    on the weights axis (including representational ones such as "cka") and the
    behaviours on the behaviour axis. NaN values are left out of a reference.
    """
    nulls = nulls or {}
    rows = []
    for axis, measures in (("weights", methods), ("behaviour", behaviours)):
        for measure in measures:
            column = f"similarity_{measure}" if axis == "weights" else measure
            values = pairs[column].to_numpy(dtype=float)
            row = {"axis": axis, "measure": measure}
            for side in ("alike", "unlike"):
                chosen = values[pairs[REFERENCES[axis, side][0]].to_numpy(dtype=bool)]
                chosen = chosen[np.isfinite(chosen)]
                row[f"{side}_pairs"] = len(chosen)
                level = quantile if side == "alike" else 1 - quantile
                row["alike_floor" if side == "alike" else "unlike_ceiling"] = (
                    float(np.quantile(chosen, level)) if len(chosen) else np.nan)
            row["reason"] = _reason(axis, row)
            row["separates"] = not row["reason"]
            null = nulls.get(measure)
            row["chance"] = float(np.quantile(null, NULL_QUANTILE)) if null is not None and len(null) else np.nan
            rows.append(row)
    return pd.DataFrame(rows).set_index(["axis", "measure"])


def _reason(axis: str, row: Mapping) -> str:
    """Why an axis's references cannot define alike and unlike ("" when they can)."""
    missing = [REFERENCES[axis, side][1] for side in ("alike", "unlike") if not row[f"{side}_pairs"]]
    if missing:
        return f"the run has no pair of {' and no pair of '.join(missing)}"
    if row["alike_floor"] <= row["unlike_ceiling"]:
        return (f"its references overlap: the alike pairs reach down to {row['alike_floor']:.3f}, the unlike "
                f"pairs up to {row['unlike_ceiling']:.3f}")
    return ""


def axis_state(values, floor: float, ceiling: float) -> np.ndarray:
    """The one rule that reads a value against an axis's references: "alike" at or above
    ``floor``, "unlike" at or below ``ceiling``, "between" in the gap, "undefined" for NaN
    (only meaningful where floor > ceiling, :func:`reference_thresholds`' ``separates``)."""
    v = np.asarray(values, dtype=float)
    state = np.where(v >= floor, "alike", np.where(v <= ceiling, "unlike", "between")).astype(object)
    state[np.isnan(v)] = "undefined"
    return state


def paradox_counts(pairs: pd.DataFrame, thresholds: pd.DataFrame, methods: Sequence[str],
                   behaviours: Sequence[str]) -> pd.DataFrame:
    """One row per (method, behaviour): how many pairs are "similar yet different" (weights
    alike, behaviour unlike) and "different yet similar" (weights unlike, behaviour alike)
    by the references of :func:`reference_thresholds`; ``defined`` False and both counts
    NaN where either axis does not separate, ``reason`` saying which axis and why."""
    rows = []
    for method in methods:
        for behaviour in behaviours:
            weights, acts = thresholds.loc[("weights", method)], thresholds.loc[("behaviour", behaviour)]
            row = {"method": method, "behaviour": behaviour, "pairs": len(pairs)}
            problems = [f"{what} ({name}): {t['reason']}" for what, name, t in
                        (("weights", method, weights), ("behaviour", behaviour, acts)) if not t["separates"]]
            if problems:
                rows.append({**row, "similar_yet_different": np.nan, "different_yet_similar": np.nan,
                             "defined": False, "reason": "; ".join(problems)})
                continue
            w = axis_state(pairs[f"similarity_{method}"], weights["alike_floor"], weights["unlike_ceiling"])
            v = axis_state(pairs[behaviour], acts["alike_floor"], acts["unlike_ceiling"])
            rows.append({**row, "similar_yet_different": int(((w == "alike") & (v == "unlike")).sum()),
                         "different_yet_similar": int(((w == "unlike") & (v == "alike")).sum()),
                         "defined": True, "reason": ""})
    return pd.DataFrame(rows).set_index(["method", "behaviour"])
