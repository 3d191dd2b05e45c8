"""Every file the package writes: atomic, ordinary permissions, readable provenance."""

import os
import stat

import numpy as np
import pandas as pd
import pytest
import torch

from paradox_utils import (
    checkpoints,
    cli,
    cluster,
    data,
    evaluation,
    files,
    importing,
    models,
    population,
    report,
    similarity,
)


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        files.write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet")
        files.write_json(tmp_path / "m.json", {"x": 1})
    finally:
        os.umask(previous)
    for name in ("t.parquet", "m.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "t.parquet"]  # no temporary left


def test_a_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "t.parquet"
    files.write_table(pd.DataFrame({"a": [1]}), target)
    with pytest.raises(RuntimeError), files.atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert pd.read_parquet(target)["a"].tolist() == [1] and len(list(tmp_path.iterdir())) == 1


def test_provenance_round_trip_and_clear_errors(tmp_path):
    target = tmp_path / "t.parquet"
    files.write_table(pd.DataFrame({"a": [1, 2]}), target, provenance={"weights": {"b000": "abc"}})
    assert files.read_provenance(target) == {"weights": {"b000": "abc"}}
    assert files.read_table(target)["a"].tolist() == [1, 2]
    with pytest.raises(files.ResultError, match="The pairs .*missing.parquet does not exist: run chapter 5 first"):
        files.read_table(tmp_path / "missing.parquet", "The pairs", "run chapter 5 first")
    target.write_bytes(b"garbage")
    with pytest.raises(files.ResultError, match="is unreadable"):
        files.read_table(target)
    with pytest.warns(RuntimeWarning, match="cache .* unreadable"):
        assert files.read_cache_table(target, ["a"]).empty


def _synthetic_cifar(folder):
    """A CIFAR-10 image-folder tree with one 32 × 32 PNG per class in test/."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in data.CIFAR10_CLASSES:
        (folder / "test" / name).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / "test" / name / "0.png")
    return folder


def test_every_writer_leaves_one_mode_even_when_the_umask_moved(tmp_path, monkeypatch):
    """The package's real writers — checkpoint and sidecar, lock file, catalog, decoded-data
    cache, accuracy table and correctness bits, similarity cache and matrices, nulls, JSON,
    an import's checkpoints, catalog and profile.yaml, the population CSV — run under a
    umask other than the one ``files.FILE_MODE`` was read with. A file that bypassed the
    files module would take the new umask's mode (0600 under 077, as some result files
    once had); every file must come out with FILE_MODE (0644 under the usual umask 022)."""
    inputs, written = tmp_path / "inputs", tmp_path / "written"
    source = _synthetic_cifar(inputs / "cifar")
    torch.manual_seed(0)
    nets = {"b000": models.build("resnet20").eval(), "b001": models.build("resnet20").eval()}
    (inputs / "export").mkdir()
    torch.save(nets["b001"].state_dict(), inputs / "export" / "x.pt")
    monkeypatch.setenv("PARADOX_DATA_DIR", str(written / "data"))
    checkpoint_dir, results = written / "checkpoints", written / "results"
    probe = 0o077 if files.FILE_MODE != 0o600 else 0o022  # any umask that gives a plain open() another mode
    previous = os.umask(probe)
    try:
        images = data.load_cifar10("test", source=source)  # decodes and writes the cache
        meta = checkpoints.save(checkpoint_dir / "b000", nets["b000"], "resnet20", 10, status="done")
        population.write_catalog(pd.DataFrame({"net_id": ["b000"], "sha256": [meta["sha256"]]}), checkpoint_dir)
        with cluster._training_locks(checkpoint_dir, ["b000"]):
            pass
        evaluation.evaluate_cached(nets, images, grid=[("contrast", 1.0)], out=results / "accuracy.parquet",
                                   progress=False)
        similarity.pairwise_similarity_cached(list(nets.values()), cache=results / "similarity_cache.parquet",
                                              progress=False)
        ids = list(nets)
        report.save_matrices(results / "similarity.parquet",
                             {"paper": pd.DataFrame(np.eye(2), index=ids, columns=ids)}, {n: "sha" for n in ids})
        report.save_nulls(results / "similarity_nulls.parquet", {"paper": np.zeros(3)})
        files.write_json(results / "m.json", {"x": 1})
        importing.import_population(inputs / "export", "resnet20", "mine", checkpoint_dir=written / "imported",
                                    results_dir=written / "imported-results")
        cli.describe_population("tiny", csv=str(written / "population.csv"))
    finally:
        os.umask(previous)
    modes = {str(p.relative_to(written)): stat.S_IMODE(p.stat().st_mode) for p in written.rglob("*") if p.is_file()}
    expected = {"checkpoints/b000.safetensors", "checkpoints/b000.json", "checkpoints/.b000.lock",
                "checkpoints/catalog.parquet", "results/accuracy.parquet", "results/accuracy.correct.parquet",
                "results/similarity_cache.parquet", "imported/profile.yaml", "population.csv"}
    assert expected <= set(modes), sorted(expected - set(modes))  # the writers wrote what the test inspects
    assert any(name.startswith("data/") for name in modes), "the decoded-data cache was written"
    others = {name: oct(mode) for name, mode in modes.items() if mode != files.FILE_MODE}
    assert not others, f"not {oct(files.FILE_MODE)} (files.FILE_MODE): {others}"
