"""Every file the package writes: atomic, ordinary permissions, readable provenance."""

import os
import stat

import pandas as pd
import pytest

from paradox_utils import files


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
    carriage returns included), and the driver's Follower hands each line over once."""
    from paradox_utils import progress

    log = tmp_path / "progress.log"
    monkeypatch.setenv("PARADOX_BATCH", "1")
    monkeypatch.setenv("PARADOX_PROGRESS", str(log))
    seen: list[str] = []
    with progress.Follower(log, seen.append, interval=0.05):
        bar = progress.tqdm(total=3, desc="networks", mininterval=0)
        for net in ("b000", "b001", "b002"):
            bar.set_postfix_str(f"{net}: 1 epochs", refresh=False)
            bar.update(1)
        bar.close()
        quiet = progress.tqdm(range(5), desc="cells", disable=True)  # a caller's disable wins
        list(quiet)
    assert [line.split(" [")[0] for line in seen] == ["networks: 0/3 (0 %)", "networks: 1/3 (33 %)",
                                                       "networks: 2/3 (67 %)", "networks: 3/3 (100 %)"]
    assert seen[-1].endswith(", b002: 1 epochs]")  # and no line of the disabled bar
    monkeypatch.delenv("PARADOX_PROGRESS")
    assert progress.tqdm(total=1).disable  # batch without a follower: silent
    assert progress.elapsed(48) == "48 s" and progress.elapsed(723) == "12 min 3 s" and progress.elapsed(7500) == \
        "2 h 05 min"
