"""The export (``paradox_utils.export``, ``paradox export``): a synthetic run's tables, written as the
chapters write them, come out as tidy CSV and Parquet with lineage and every factor; stale tables
are refused and missing ones named."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from paradox_utils import behaviour, cli, export, files, paradox, references, report
from paradox_utils.distortions import PAPER_GRID
from paradox_utils.profiles import chapter_paths
from paradox_utils.training import TrainConfig

IDS = ["b000", "b001", "b000-ft-all", "b001-ft-all"]
PARENTS = {"b000": None, "b001": None, "b000-ft-all": "b000", "b001-ft-all": "b001"}


def _config(net_id: str) -> dict:
    base = net_id[:4]
    config = TrainConfig(lr=0.001 if base == "b000" else 0.01, seed=int(base[-1]), epochs=1 if "ft" in net_id else 2,
                         manipulation="all" if "ft" in net_id else None,
                         extra={"note": 3 if base == "b000" else "three"})  # a label of two types
    return config.to_dict()


def _matrix(rng, low=0.0) -> pd.DataFrame:
    m = rng.uniform(low, 1, (len(IDS), len(IDS)))
    m = (m + m.T) / 2
    np.fill_diagonal(m, 1.0)
    return pd.DataFrame(m, index=pd.Index(IDS, name="net_id"), columns=pd.Index(IDS, name="net_id"))


@pytest.fixture
def run(tmp_path):
    """A run's folders holding a catalog and every table chapters 3–5 write, written as they write
    them (:func:`report.save_matrices`, :func:`files.write_table` with the weights' provenance)."""
    paths = chapter_paths("synthetic", str(tmp_path / "ck"), str(tmp_path / "res"))
    catalog = pd.DataFrame([{"net_id": n, "arch": "resnet20", "kind": "finetune" if p else "base", "parent": p,
                             "config": json.dumps(_config(n), sort_keys=True), "labels": "{}", "status": "done",
                             "checkpoint": str(paths["checkpoints"] / f"{n}.safetensors"), "sha256": f"sha-{n}",
                             "val_accuracy": 0.5 + i / 10, "epochs_done": 1, "train_seconds": 1.0, "error": ""}
                            for i, (n, p) in enumerate(PARENTS.items())])
    files.write_table(catalog, paths["catalog"])
    weights = report.weight_hashes(catalog)
    rng = np.random.default_rng(0)
    accuracy = pd.DataFrame([(n, m, float(lv), a, weights[n]) for n in IDS
                             for (m, lv), a in zip(PAPER_GRID, rng.uniform(0.1, 0.9, len(PAPER_GRID)), strict=True)],
                            columns=["net_id", "manipulation", "level", "accuracy", "weights_sha256"])
    files.write_table(accuracy, paths["accuracy"])
    similarities = {"paper": _matrix(rng, 0.3), "hungarian": _matrix(rng, 0.4), "cka": _matrix(rng)}
    report.save_matrices(paths["similarity"], similarities, weights)
    report.save_matrices(paths["cka_layers"], {"stage1": _matrix(rng), "pool": _matrix(rng)}, weights)
    report.save_matrices(paths["cka_distorted"], {"gaussian": _matrix(rng)}, weights)
    kappa = _matrix(rng, -0.2)
    files.write_table(kappa.reset_index(), paths["kappa"], provenance={"weights": weights})
    compat = behaviour.compatibility(accuracy)
    behaviours = {"compatibility": compat, "relative compatibility": behaviour.compatibility(accuracy, relative=True),
                  "kappa": kappa}
    pairs = references.roles(paradox.with_behaviour(paradox.pair_table(similarities, PARENTS, compat=compat),
                                                    behaviours), catalog)
    files.write_table(pairs, paths["pairs"], provenance={"weights": weights})
    return paths, catalog, accuracy, similarities, kappa, pairs


def _square(matrices: pd.DataFrame, measure: str, condition: str = export.OVERALL) -> pd.DataFrame:
    part = matrices[(matrices["measure"] == measure) & (matrices["condition"] == condition)]
    return part.pivot(index="a", columns="b", values="value").loc[IDS, IDS]


def test_export_writes_every_matrix_the_pairs_and_the_networks_with_their_factors(run, tmp_path):
    paths, catalog, accuracy, similarities, kappa, pairs = run
    done = export.export_results(paths, tmp_path / "out", "synthetic")
    assert {p.name for p in done.files} == {f"{t}.{x}" for t in ("networks", "matrices", "pairs")
                                            for x in ("csv", "parquet")} and done.left_out == []

    networks = pd.read_parquet(tmp_path / "out" / "networks.parquet")
    assert networks["net_id"].tolist() == IDS
    assert networks["parent"].tolist() == ["", "", "b000", "b001"]
    assert networks["family"].tolist() == ["b000", "b001", "b000", "b001"]
    assert {"lr", "init", "seed", "manipulation", "epochs", "precision", "batch_size", "extra.note"} <= set(networks)
    assert networks["lr"].tolist() == [0.001, 0.01, 0.001, 0.01] and networks["seed"].tolist() == [0, 1, 0, 1]
    assert networks["manipulation"].fillna("(clean)").tolist() == ["(clean)", "(clean)", "all", "all"]
    assert networks["extra.note"].tolist() == ["3", "three", "3", "three"]  # two types: stored as text

    matrices = pd.read_parquet(tmp_path / "out" / "matrices.parquet")
    assert list(matrices.columns) == ["measure", "condition", "a", "b", "value"]
    for method, m in similarities.items():
        assert np.array_equal(_square(matrices, f"similarity_{method}").to_numpy(), m.to_numpy())
    assert np.array_equal(_square(matrices, "kappa").to_numpy(), kappa.to_numpy())
    assert sorted(matrices.loc[matrices["measure"] == "cka_layer", "condition"].unique()) == ["pool", "stage1"]
    assert matrices.loc[matrices["measure"] == "cka_distorted", "condition"].unique().tolist() == ["gaussian"]
    # compatibility, literally: Pearson r of two networks' accuracies over the 37 cells
    vectors = {n: part.set_index(["manipulation", "level"]).loc[[(m, float(lv)) for m, lv in PAPER_GRID], "accuracy"]
               for n, part in accuracy.groupby("net_id")}
    compat = _square(matrices, "compatibility")
    assert compat.loc["b000", "b001-ft-all"] == pytest.approx(
        np.corrcoef(vectors["b000"], vectors["b001-ft-all"])[0, 1])
    mean = np.mean([vectors[n].to_numpy() for n in IDS], axis=0)
    relative = _square(matrices, "relative compatibility")
    assert relative.loc["b001", "b000-ft-all"] == pytest.approx(
        np.corrcoef(vectors["b001"] - mean, vectors["b000-ft-all"] - mean)[0, 1])
    # the pair table's measures are the matrices' entries
    exported = pd.read_parquet(tmp_path / "out" / "pairs.parquet")
    assert exported[pairs.columns].equals(pairs)
    for row in exported.itertuples():
        assert row.compatibility == pytest.approx(compat.loc[row.a, row.b])
    assert exported["lr_a"].tolist() == [networks.set_index("net_id").loc[a, "lr"] for a in exported["a"]]
    assert exported["parent_b"].tolist() == [PARENTS[b] or "" for b in exported["b"]]
    assert "precision_a" not in exported  # the same for every network: in networks, not repeated per pair

    # the CSV holds what the Parquet holds; the Parquet records the weights
    for name, table in (("networks", networks), ("matrices", matrices), ("pairs", exported)):
        csv = pd.read_csv(tmp_path / "out" / f"{name}.csv")
        assert list(csv.columns) == list(table.columns) and len(csv) == len(table)
    assert np.allclose(pd.read_csv(tmp_path / "out" / "matrices.csv")["value"], matrices["value"], equal_nan=True)
    assert files.read_provenance(tmp_path / "out" / "pairs.parquet") == {
        "profile": "synthetic", "weights": report.weight_hashes(catalog)}


def test_export_refuses_tables_made_from_other_weights_and_writes_nothing(run, tmp_path):
    paths, catalog, *_ = run
    files.write_table(catalog.assign(sha256=catalog["sha256"].where(catalog["net_id"] != "b001", "sha-new")),
                      paths["catalog"])  # b001 retrained since the results were made
    with pytest.raises(files.ResultError, match="other weights of b001 than the catalog lists.*run chapter"):
        export.export_results(paths, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_names_the_tables_not_written_yet(run, tmp_path):
    paths = run[0]
    paths["pairs"].unlink()
    paths["kappa"].unlink()
    done = export.export_results(paths, tmp_path / "out")
    assert done.left_out == ["left out: kappa.parquet does not exist yet (written by chapter 3 (03_evaluate))",
                             "left out: pairs.parquet does not exist yet (written by chapter 5 (05_paradox))"]
    assert not (tmp_path / "out" / "pairs.csv").exists()
    assert "kappa" not in set(pd.read_parquet(tmp_path / "out" / "matrices.parquet")["measure"])
    for name in ("similarity", "accuracy", "cka_layers", "cka_distorted"):
        paths[name].unlink()
    with pytest.raises(ValueError, match=r"has no result tables to export yet: run chapters 3–5"):
        export.export_results(paths, tmp_path / "none")


def test_export_command(run, tmp_path, capsys):
    paths = run[0]
    code = cli.main(["export", "--profile", "tiny", "-p", "checkpoint_dir", str(paths["checkpoints"]),
                     "-p", "results_dir", str(paths["results"]), str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0 and f"wrote {tmp_path / 'out' / 'matrices.csv'}" in out
    assert files.read_provenance(tmp_path / "out" / "networks.parquet")["profile"] == "tiny"
    paths["catalog"].unlink()
    assert cli.main(["export", "--profile", "tiny", "-p", "checkpoint_dir", str(paths["checkpoints"]),
                     "-p", "results_dir", str(paths["results"]), str(tmp_path / "again")]) == 1
    assert capsys.readouterr().err.startswith("error: No catalog at ")


def _readme_blocks() -> list[str]:
    """The Python blocks of the README's section on the export, in order."""
    readme = (Path(export.__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Results for other tools", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readmes_pandas_lines_read_the_export(run, tmp_path, monkeypatch):
    paths, _, _, similarities, kappa, _ = run
    export.export_results(paths, tmp_path / "results")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(_readme_blocks()[0], namespace)
    assert namespace["ids"] == IDS
    assert np.array_equal(namespace["square"]("similarity_paper"), similarities["paper"].to_numpy())
    assert np.allclose(namespace["square"]("kappa"), kappa.to_numpy())
    assert namespace["square"]("cka_layer", "pool").shape == (len(IDS), len(IDS))


def test_the_readmes_rsatoolbox_lines(run, tmp_path, monkeypatch, capsys):
    """Where rsatoolbox is installed (it is no dependency of the project): its RDMs compare the
    exported matrices as Spearman's r over the pairs does."""
    pytest.importorskip("rsatoolbox")
    paths = run[0]
    export.export_results(paths, tmp_path / "results")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in _readme_blocks():
        exec(block, namespace)
    pairs = pd.read_csv(tmp_path / "results" / "pairs.csv")
    printed = capsys.readouterr().out
    assert f"{spearmanr(pairs['similarity_paper'], pairs['compatibility'])[0]:.6f}"[:6] in printed
