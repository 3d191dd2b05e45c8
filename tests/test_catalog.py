"""The catalog: its file, the checkpoints' sidecars, imported networks, the parents-first order,
and an unreadable catalog rebuilt from the sidecars."""

import pandas as pd
import pytest
import torch

from paradox_utils import catalog, checkpoints, models
from paradox_utils.cluster import run_population
from paradox_utils.population import catalog_path, read_catalog

from .test_population import COMMON, population


def test_parents_first_places_every_network_after_its_parent():
    """In rounds, in the mapping's order: bases and networks whose parent is elsewhere first,
    then their offspring; a cycle of parents is left out."""
    parents = {"c": "b", "b": "a", "a": None, "d": None, "e": "elsewhere"}
    assert catalog.parents_first(parents) == ["a", "d", "e", "b", "c"]
    assert catalog.parents_first({"x": "y", "y": "x", "z": None}) == ["z"]
    assert catalog.parents_first({}) == []


def imported_checkpoint(folder, net_id, parent=None, seed=0):
    """A checkpoint as an import writes it: its sidecar names the source file and that file's sha256."""
    torch.manual_seed(seed)
    return checkpoints.save(folder / net_id, models.build("resnet20"), "resnet20", 10, status="done",
                            net_id=net_id, kind="finetune" if parent else "base", parent=parent,
                            config={"arch": "resnet20", "dataset": "cifar10"}, labels={},
                            source=f"/elsewhere/{net_id}.pt", source_sha256=f"sha-{net_id}")


def test_imported_networks_are_catalogued_from_their_sidecars_and_an_unreadable_catalog_rebuilt(tmp_path):
    imported_checkpoint(tmp_path, "a-child", parent="b-parent")  # by name, the child comes first
    imported_checkpoint(tmp_path, "b-parent", seed=1)
    (tmp_path / "notes.json").write_text("{}")  # not a checkpoint's sidecar: skipped
    assert [s.name for s, _ in catalog.sidecars(tmp_path)] == ["a-child.json", "b-parent.json"]
    assert catalog.holds_imported_networks(tmp_path)
    table = catalog.imported_catalog(tmp_path)
    assert table["net_id"].tolist() == ["b-parent", "a-child"] and set(table["status"]) == {"done"}
    assert catalog.imported_catalog(tmp_path, ["a-child"])["net_id"].tolist() == ["a-child"]
    assert catalog.is_imported(table) and catalog.sources(table) == ["/elsewhere/b-parent.pt", "/elsewhere/a-child.pt"]
    assert not catalog.is_imported(table.drop(columns="source"))
    catalog.write_catalog(table, tmp_path)
    assert catalog.read_catalog(tmp_path).equals(table)
    catalog.catalog_path(tmp_path).write_bytes(b"PAR1 not really parquet")
    with pytest.warns(RuntimeWarning, match="catalog .* unreadable.*rebuilt"):
        assert catalog.read_catalog(tmp_path).equals(table)  # no TrainConfig needed
    assert pd.read_parquet(catalog.catalog_path(tmp_path)).equals(table)  # and written back


def test_a_folder_without_a_catalog_or_imported_networks(tmp_path):
    with pytest.raises(FileNotFoundError, match="No catalog at .*run the training chapter"):
        catalog.read_catalog(tmp_path)
    assert catalog.imported_catalog(tmp_path) is None and not catalog.holds_imported_networks(tmp_path)
    checkpoints.save(tmp_path / "b000", models.build("resnet20"), "resnet20", 10, status="done")  # trained here
    assert not catalog.holds_imported_networks(tmp_path) and catalog.imported_catalog(tmp_path) is None
    catalog.catalog_path(tmp_path).write_bytes(b"PAR1 not really parquet")
    with pytest.raises(Exception, match="(?i)parquet"):  # trained networks' rows need population.read_catalog
        catalog.read_catalog(tmp_path)


@pytest.mark.usefixtures("cifar_source")  # training reads CIFAR-10 from PARADOX_CIFAR10
@pytest.mark.slow
def test_unreadable_catalog_is_rebuilt_from_the_sidecars_with_a_warning(tmp_path, monkeypatch):
    """Read by a chapter or written anew by a training run, an unreadable catalog, or a table
    lacking the catalog's columns, is rebuilt from the sidecars with a warning, never silently."""
    specs = population({**COMMON, "lr": 1e-3}, {"init": ["he_normal"]}, parents=1, manipulations=["all"],
                       finetune_common={"lr": 1e-4})
    expected = run_population(specs, tmp_path, scheduler="serial", progress=False)
    catalog_path(tmp_path).write_bytes(b"PAR1 not really parquet")
    with pytest.warns(RuntimeWarning, match="catalog .* unreadable.*rebuilt"):
        rebuilt = read_catalog(tmp_path)
    assert rebuilt["net_id"].tolist() == expected["net_id"].tolist()
    assert rebuilt["sha256"].tolist() == expected["sha256"].tolist()
    assert rebuilt["parent"].fillna("").tolist() == ["", "b000"]
    assert read_catalog(tmp_path)["status"].tolist() == ["done", "done"]  # and written back
    unreadable = f"catalog {catalog_path(tmp_path)} is unreadable .*; it is rebuilt from the checkpoints' sidecars"
    pd.DataFrame({"net_id": ["b000"]}).to_parquet(catalog_path(tmp_path))
    with pytest.warns(RuntimeWarning, match=unreadable):
        assert read_catalog(tmp_path)["status"].tolist() == ["done", "done"]
    import paradox_utils.cluster as cluster

    monkeypatch.setattr(cluster, "train_job", lambda *args: pytest.fail("every network is finished"))
    catalog_path(tmp_path).write_bytes(b"PAR1 not really parquet")
    with pytest.warns(RuntimeWarning, match=unreadable):
        run_population(specs, tmp_path, scheduler="serial", progress=False)
    assert read_catalog(tmp_path)["sha256"].tolist() == expected["sha256"].tolist()


def test_families_are_root_ancestors():
    parents = {"b0": None, "b1": None, "c0": "b0", "g0": "c0", "x": "elsewhere", "p": "q", "q": "p"}
    assert catalog.families(parents) == {"b0": "b0", "b1": "b1", "c0": "b0", "g0": "b0", "x": "x", "p": "p", "q": "p"}
