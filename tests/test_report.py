"""Reading and writing the chapters' tables (``paradox_utils.report``): similarity matrices
keyed by the weights they were computed from, layer tables, nulls."""

import os
import stat

import numpy as np
import pandas as pd
import pytest

from paradox_utils import files, report, sentences


def test_matrices_and_layer_table_round_trip(tmp_path):
    ids = ["b", "a", "c"]  # not sorted: the stored order is kept
    matrix = pd.DataFrame(np.arange(9.0).reshape(3, 3), index=ids, columns=ids)
    catalog = pd.DataFrame({"net_id": ids, "sha256": ["s-b", "s-a", "s-c"]})
    report.save_matrices(tmp_path / "m.parquet", {"paper": matrix, "cka": matrix * 2}, report.weight_hashes(catalog))
    assert stat.S_IMODE(os.stat(tmp_path / "m.parquet").st_mode) == 0o666 & ~_umask()
    loaded = report.load_matrices(tmp_path / "m.parquet", catalog)
    assert list(loaded) == ["paper", "cka"]
    pd.testing.assert_frame_equal(loaded["cka"], matrix * 2, check_names=False)
    with pytest.raises(files.ResultError, match="run chapter 4"):
        report.load_matrices(tmp_path / "missing.parquet", catalog)
    retrained = catalog.assign(sha256=["s-b", "s-a2", "s-c"])  # a retrained since the matrices were made
    with pytest.raises(files.ResultError, match="other weights of a than the catalog lists.*run chapter 4"):
        report.load_matrices(tmp_path / "m.parquet", retrained)
    grown = pd.concat([catalog, pd.DataFrame({"net_id": ["d"], "sha256": ["s-d"]})])
    with pytest.raises(files.ResultError, match="has no results for d"):
        report.load_matrices(tmp_path / "m.parquet", grown)
    subset = report.load_matrices(tmp_path / "m.parquet", catalog.iloc[:2])  # networks not in the catalog drop
    assert list(subset["paper"].index) == ["b", "a"]
    layers = np.arange(18.0).reshape(3, 3, 2)
    table = report.layer_table(ids, layers, ["conv1", "conv2"])
    assert list(zip(table["a"], table["b"], table["layer"], strict=True))[:3] == [  # (b, a) is stored as (a, b)
        ("a", "b", "conv1"), ("a", "b", "conv2"), ("b", "c", "conv1")]
    assert table.set_index(["a", "b", "layer"]).loc[("a", "b", "conv2"), "value"] == layers[0, 1, 1]
    assert table.set_index(["a", "b", "layer"]).loc[("a", "c", "conv2"), "value"] == layers[1, 2, 1]
    assert len(table) == 3 * 2


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_share_above_and_null_round_trip(tmp_path):
    pairs = pd.DataFrame({"relation": ["unrelated", "unrelated", "siblings"], "similarity_paper": [0.1, 0.3, 0.9]})
    assert sentences.share_above(pairs, "similarity_paper", 0.2, "unrelated") == (
        "1 of 2 unrelated pairs (50%) lie above 0.200")
    assert "no parent-child pairs" in sentences.share_above(pairs, "similarity_paper", 0.2, "parent-child")
    nulls = {"paper": np.linspace(0, 1, 101), "cka": np.full(120, 0.5)}
    report.save_nulls(tmp_path / "n.parquet", nulls)
    loaded = report.load_nulls(tmp_path / "n.parquet")
    assert list(loaded) == ["paper", "cka"] and np.array_equal(loaded["paper"], nulls["paper"])
    summary = report.null_summary(loaded)
    assert summary.loc["paper", "p99"] == pytest.approx(0.99) and summary.loc["cka", "pairs"] == 120


def test_the_chapters_after_training_name_the_networks_they_leave_out(tmp_path):
    cause = "RuntimeError: the whole cause, " + "word " * 30 + "end"
    rows = [("b000", "done", ""), ("b001", "failed", cause), ("b002", "done", ""), ("b003", "failed", "parent x")]
    files.write_table(pd.DataFrame([{"net_id": n, "parent": None, "status": s, "checkpoint": f"{n}.safetensors",
                                     "sha256": "", "error": e} for n, s, e in rows]), tmp_path / "catalog.parquet")
    with pytest.warns(RuntimeWarning) as warned:
        done = report.done_networks(tmp_path)
    assert done["net_id"].tolist() == ["b000", "b002"]
    assert [str(w.message) for w in warned] == [
        f"Left out: 2 networks that failed in training (b001, b003); the first, b001, failed with {cause}."]
