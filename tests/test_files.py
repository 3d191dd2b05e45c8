"""Every file the package writes: atomic, ordinary permissions, readable provenance."""

import os
import stat
import time

import numpy as np
import pandas as pd
import pytest
import torch

from paradox_utils import (
    checkpoints,
    cluster,
    data,
    evaluation,
    files,
    importing,
    models,
    pipeline,
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


def test_batch_bars_become_lines_a_follower_prints(tmp_path, monkeypatch):
    """In a batch run a bar writes plain lines to PARADOX_PROGRESS (one per update when asked,
    carriage returns included), and the driver's Follower hands each line over once, as it comes."""
    from paradox_utils import progress

    log = tmp_path / "progress.log"
    monkeypatch.setenv("PARADOX_BATCH", "1")
    monkeypatch.setenv("PARADOX_PROGRESS", str(log))
    seen: list[str] = []
    with progress.Follower(log, seen.append, interval=0.05):
        bar = progress.tqdm(total=3, desc="networks", mininterval=0)
        for k, net in enumerate(("b000", "b001", "b002"), 1):
            bar.set_postfix_str(f"{net}: 1 epoch", refresh=False)
            bar.update(1)
            waited = time.monotonic()  # each line shows now, not when the next update comes
            while not any(f"networks: {k}/3" in line for line in seen) and time.monotonic() - waited < 5:
                time.sleep(0.01)
            assert any(f"networks: {k}/3" in line for line in seen), seen
        bar.close()
        quiet = progress.tqdm(range(5), desc="cells", disable=True)  # a caller's disable wins
        list(quiet)
    assert [line.split(" [")[0] for line in seen] == ["networks: 0/3 (0 %)", "networks: 1/3 (33 %)",
                                                       "networks: 2/3 (67 %)", "networks: 3/3 (100 %)"]
    assert seen[-1].endswith(", b002: 1 epoch]")  # and no line of the disabled bar
    monkeypatch.delenv("PARADOX_PROGRESS")
    assert progress.tqdm(total=1).disable  # batch without a follower: silent
    assert progress.elapsed(48) == "48 s" and progress.elapsed(723) == "12 min 3 s" and progress.elapsed(7500) == \
        "2 h 05 min"


def test_the_chapter_eta_counts_jobs_running_side_by_side(tmp_path, monkeypatch):
    """Six 30-s jobs on two slots have 60 s left when the first ends, where tqdm's
    elapsed × left ÷ done says 150 s; one slot is a serial queue's plain estimate; a slot
    that joins is used; the last job's line gives no estimate, and the bar leaves tqdm's out."""
    from paradox_utils import progress

    two = progress.Makespan(6, slots=2, now=0.0)
    assert [two.finished(2, now=t) for t in (30.0, 30.0, 60.0, 60.0, 90.0, 90.0)] == \
        pytest.approx([60.0, 60.0, 30.0, 30.0, 0.0, 0.0])
    one = progress.Makespan(3, slots=1, now=0.0)
    assert [one.finished(1, now=t) for t in (10.0, 25.0, 40.0)] == pytest.approx([20.0, 12.5, 0.0])  # the mean so far
    joined = progress.Makespan(4, slots=1, now=0.0)
    assert joined.finished(2, now=10.0) == pytest.approx(20.0)  # three left on two slots, not thirty on one
    log = tmp_path / "progress.log"
    monkeypatch.setenv("PARADOX_BATCH", "1")
    monkeypatch.setenv("PARADOX_PROGRESS", str(log))
    bar = progress.tqdm(total=2, desc="networks", mininterval=0, own_eta=True)
    bar.set_postfix_str("b000: 1 epoch, 30 s; about 1 min 0 s left", refresh=False)
    bar.update(1)
    bar.close()
    assert log.read_text().splitlines()[-1] == "networks: 1/2 (50 %) [00:00, b000: 1 epoch, 30 s; about 1 min 0 s left]"


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
        pipeline.describe_population("tiny", csv=str(written / "population.csv"))
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
