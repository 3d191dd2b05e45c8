"""Training a population: serial and Dask runs, training groups, resuming, and refusing
stale, corrupt or unwritable checkpoints before or as they happen."""

import os
import signal
import threading
import time

import pandas as pd
import pytest

from paradox_utils import checkpoints
from paradox_utils.cluster import check_scheduler, group_jobs, make_client, run_population
from paradox_utils.population import read_catalog, scan_catalog

from .test_population import COMMON, population

pytestmark = pytest.mark.usefixtures("cifar_source")  # training reads CIFAR-10 from PARADOX_CIFAR10


def test_serial_run_skips_finished_work(tmp_path):
    specs = population(COMMON, {"lr": [1e-3]}, parents=1, manipulations=["gamma"], finetune_common={"lr": 1e-4})
    catalog = run_population(specs, tmp_path, scheduler="serial", progress=False)
    assert list(catalog["status"]) == ["done", "done"] and catalog["parent"].fillna("").tolist() == ["", "b000"]
    assert read_catalog(tmp_path)["net_id"].tolist() == ["b000", "b000-ft-gamma"]
    stamp = (tmp_path / "b000.safetensors").stat().st_mtime_ns
    run_population(specs, tmp_path, scheduler="serial", progress=False)
    assert (tmp_path / "b000.safetensors").stat().st_mtime_ns == stamp


def test_grouped_population_trains_compatible_networks_together(tmp_path):
    """Networks differing only in init/seed/augmentation share a stacked group; lr splits
    groups; fine-tunes come in groups after their parents' groups."""
    specs = population(COMMON, {"lr": [1e-3, 5e-3], "init": ["he_normal", "glorot_uniform"]}, parents=2,
                       manipulations=[None, "gamma"], finetune_common={"lr": 1e-4})
    groups = group_jobs(specs, group_size=4)
    assert [[s.net_id for s in g] for g in groups] == [
        ["b000", "b002"], ["b001", "b003"], ["b000-ft-none", "b000-ft-gamma", "b001-ft-none", "b001-ft-gamma"]]
    assert [len(g) for g in group_jobs(specs, 1)] == [1] * 8
    with pytest.raises(ValueError, match="group_size"):
        group_jobs(specs, 0)
    catalog = run_population(specs[:2] + specs[4:6], tmp_path, scheduler="serial", progress=False, group_size=2)
    assert list(catalog["status"]) == ["done"] * 4
    sizes = [checkpoints.load_metadata(tmp_path / n)["history"][0]["group_size"] for n in catalog["net_id"]]
    assert sizes == [1, 1, 2, 2]  # b000 and b001 differ in lr: alone; b000's two offspring together


@pytest.mark.slow
def test_local_cluster_survives_a_killed_worker_and_a_failing_job(tmp_path):
    specs = population({**COMMON, "epochs": 4, "train_per_class": 60}, {"lr": [1e-3, 2e-3]}, parents=1,
                       manipulations=["all"], finetune_common={"epochs": 1})
    bad = population({**COMMON, "train_per_class": 6000}, {"lr": [1e-3]}, parents=1, manipulations=[None])
    bad[0].net_id, bad[1].net_id, bad[1].parent = "bad", "bad-ft-none", "bad"
    client = make_client("local", workers=2)
    try:
        result = {}
        runner = threading.Thread(target=lambda: result.setdefault(
            "catalog", run_population(specs + bad, tmp_path, client=client, progress=False)))
        runner.start()
        killed = None
        deadline = time.time() + 120
        while killed is None and time.time() < deadline:  # kill a worker mid-job, after an epoch was saved
            for sidecar in tmp_path.glob("b00*.json"):
                meta = checkpoints.load_metadata(sidecar)
                if meta.get("status") == "running":
                    processing = {w: ks for w, ks in client.processing().items() if ks}
                    pids = client.run(os.getpid, workers=list(processing))
                    for worker, keys in processing.items():
                        if any(meta["net_id"] in str(k) for k in keys):
                            os.kill(pids[worker], signal.SIGKILL)
                            killed = meta["net_id"]
                    break
            time.sleep(0.05)
        runner.join(timeout=300)
    finally:
        client.close()
        client.cluster.close()
    assert killed is not None, "no job was caught mid-training"
    catalog = result["catalog"].set_index("net_id")
    assert (catalog.loc[[s.net_id for s in specs], "status"] == "done").all()
    assert catalog.loc["bad", "status"] == "failed" and "fewer than" in catalog.loc["bad", "error"]
    assert catalog.loc["bad-ft-none", "status"] == "failed"
    history = checkpoints.load_metadata(tmp_path / f"{killed}.json")["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]  # resumed, not restarted from scratch


# ----------------------------------------------------------------------------- nothing stale

def _tiny(lr=1e-3, **common):
    return population({**COMMON, "lr": lr, **common}, {"init": ["he_normal"]}, parents=1, manipulations=["all"],
                      finetune_common={"lr": 1e-4})


def test_edited_settings_are_refused_before_any_work_then_retrained_on_request(tmp_path):
    run_population(_tiny(), tmp_path, scheduler="serial", progress=False)
    first = {n: checkpoints.load_metadata(tmp_path / n)["sha256"] for n in ("b000", "b000-ft-all")}
    edited = _tiny(lr=1e-2, epochs=2)
    with pytest.raises(ValueError, match=r"b000 .* other settings \(epochs, lr\).*new profile name.*--retrain b000"):
        run_population(edited, tmp_path, scheduler="serial", progress=False)
    assert {n: checkpoints.load_metadata(tmp_path / n)["sha256"] for n in first} == first  # nothing touched
    catalog = run_population(edited, tmp_path, scheduler="serial", progress=False, retrain=["b000"])
    assert list(catalog["status"]) == ["done", "done"] and list(catalog["epochs_done"]) == [2, 2]
    meta = checkpoints.load_metadata(tmp_path / "b000-ft-all")
    assert meta["sha256"] != first["b000-ft-all"]  # the offspring was retrained from the new parent
    assert meta["parent_sha256"] == checkpoints.load_metadata(tmp_path / "b000")["sha256"]
    with pytest.raises(ValueError, match="--retrain names b999"):
        run_population(edited, tmp_path, scheduler="serial", progress=False, retrain=["b999"])
    before = {n: checkpoints.load_metadata(tmp_path / n)["sha256"] for n in first}
    catalog = run_population(_tiny(lr=1e-3, epochs=2), tmp_path, scheduler="serial", progress=False,
                             retrain=["stale"])
    assert list(catalog["status"]) == ["done", "done"]
    after = {n: checkpoints.load_metadata(tmp_path / n)["sha256"] for n in first}
    assert all(after[n] != before[n] for n in first)  # both trained again
    again = run_population(_tiny(lr=1e-3, epochs=2), tmp_path, scheduler="serial", progress=False,
                           retrain=["stale"])  # repeated: nothing differs now, nothing is trained
    assert list(again["status"]) == ["done", "done"]
    assert {n: checkpoints.load_metadata(tmp_path / n)["sha256"] for n in first} == after


@pytest.mark.parametrize("n_stale", [1, 2])
def test_refusing_several_stale_checkpoints_offers_retrain_stale(tmp_path, monkeypatch, n_stale):
    import paradox_utils.cluster as cluster

    specs = _tiny()
    stale = pd.DataFrame({"net_id": [s.net_id for s in specs], "status": ["stale", "stale" if n_stale > 1 else "done"],
                          "error": ["trained with other settings (lr)", "its parent b000 has been retrained since"]})
    monkeypatch.setattr(cluster, "scan_catalog", lambda specs, folder: stale)
    with pytest.raises(ValueError, match=r"b000 .*--retrain b000 ") as refused:
        run_population(specs, tmp_path, scheduler="serial", progress=False)
    offers = "(also stale: b000-ft-all)" in str(refused.value) and "--retrain stale retrains every network that " \
        "does not match." in str(refused.value)
    assert offers == (n_stale > 1)  # one stale network: its own id is the whole answer


def test_speed_switches_are_not_part_of_a_networks_identity(tmp_path):
    run_population(_tiny(channels_last=True), tmp_path, scheduler="serial", progress=False)
    stamp = (tmp_path / "b000.safetensors").stat().st_mtime_ns
    catalog = run_population(_tiny(channels_last=False), tmp_path, scheduler="serial", progress=False)
    assert list(catalog["status"]) == ["done", "done"]
    assert (tmp_path / "b000.safetensors").stat().st_mtime_ns == stamp


def test_offspring_of_a_parent_retrained_elsewhere_is_stale(tmp_path):
    specs = _tiny()
    run_population(specs, tmp_path, scheduler="serial", progress=False)
    weights, _, meta = checkpoints.load_state(tmp_path / "b000")
    weights["fc.bias"] += 0.01  # the parent's weights change (same settings): its offspring no longer follows
    meta.pop("sha256")
    checkpoints.save(tmp_path / "b000", weights, **meta)
    catalog = scan_catalog(specs, tmp_path)
    assert list(catalog["status"]) == ["done", "stale"]
    assert "its parent b000 has been retrained" in catalog["error"].iloc[1]
    with pytest.raises(ValueError, match="b000-ft-all .* parent b000 has been retrained"):
        run_population(specs, tmp_path, scheduler="serial", progress=False)


def test_corrupt_checkpoint_is_not_done_and_is_retrained_identically(tmp_path):
    specs = _tiny()
    run_population(specs, tmp_path, scheduler="serial", progress=False)
    good = (tmp_path / "b000.safetensors").read_bytes()
    (tmp_path / "b000.safetensors").write_bytes(good[: len(good) // 2])  # truncated
    assert scan_catalog(specs, tmp_path)["status"].tolist() == ["corrupt", "done"]
    with pytest.warns(RuntimeWarning, match="b000.safetensors is corrupt.*trained again"):
        catalog = run_population(specs, tmp_path, scheduler="serial", progress=False)
    assert list(catalog["status"]) == ["done", "done"]
    assert (tmp_path / "b000.safetensors").read_bytes() == good  # bit-identical to the uncorrupted run


def test_a_save_error_stops_the_run(tmp_path, monkeypatch):
    import paradox_utils.files as files

    def read_only(*args):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(files.os, "replace", read_only)
    with pytest.raises(checkpoints.CheckpointWriteError, match="b000.safetensors could not be written"):
        run_population(_tiny(), tmp_path, scheduler="serial", progress=False)


def test_bad_scheduler_is_one_sentence(tmp_path):
    for bad in ("tcp://host", "slurn", "tcp://host:99999"):
        with pytest.raises(ValueError, match="Unknown scheduler"):
            run_population(_tiny(), tmp_path, scheduler=bad, progress=False)
    assert check_scheduler("tcp://127.0.0.1:8786") == "tcp://127.0.0.1:8786" and check_scheduler("auto") is None
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------- failing networks

CAUSE = ("the whole cause of the failure, longer than the progress line's eighty characters, "
         "down to its last word")


def test_a_bad_data_source_stops_the_run_before_any_job(tmp_path, monkeypatch):
    import paradox_utils.cluster as cluster

    empty = tmp_path / "empty.zip"
    empty.write_bytes(b"")
    monkeypatch.setenv("PARADOX_CIFAR10", str(empty))
    monkeypatch.setattr(cluster, "train_job", lambda *args: pytest.fail("a job was sent to a worker"))
    with pytest.raises(ValueError, match="empty.zip is not a readable zip file.*; point PARADOX_CIFAR10 at"):
        run_population(_tiny(), tmp_path / "ck", scheduler="serial", progress=False)
    assert not list((tmp_path / "ck").iterdir())


def test_a_population_whose_every_network_failed_fails_with_the_first_cause(tmp_path, monkeypatch):
    import paradox_utils.cluster as cluster

    def failing(*args):
        raise RuntimeError(CAUSE)

    monkeypatch.setattr(cluster, "train_job", failing)
    with pytest.raises(cluster.PopulationFailed) as failed:
        run_population(_tiny(), tmp_path, scheduler="serial", progress=False)
    assert str(failed.value) == ("All 2 networks (b000, b000-ft-all) failed in training, so the run stops here; "
                                 f"the first, b000, failed with RuntimeError: {CAUSE}.")
    assert read_catalog(tmp_path)["status"].tolist() == ["failed", "failed"]  # the catalog records them
    with pytest.raises(cluster.PopulationFailed, match=r"^The one network, b000, failed in training, so the run "
                                                       r"stops here; it failed with RuntimeError: .* last word\.$"):
        run_population(_tiny()[:1], tmp_path / "one", scheduler="serial", progress=False)


def test_networks_that_failed_are_counted_with_the_first_cause_in_full(tmp_path, monkeypatch):
    import paradox_utils.cluster as cluster

    train = cluster.train_job

    def offspring_fails(net_ids, *args):
        if net_ids == ["b000-ft-all"]:
            raise RuntimeError(CAUSE)
        return train(net_ids, *args)

    monkeypatch.setattr(cluster, "train_job", offspring_fails)
    with pytest.warns(RuntimeWarning) as warned:
        catalog = run_population(_tiny(), tmp_path, scheduler="serial", progress=False)
    assert list(catalog["status"]) == ["done", "failed"]
    assert [str(w.message) for w in warned] == [
        "1 of 2 networks failed in training (b000-ft-all) and is left out of the chapters that follow; it failed with "
        f"RuntimeError: {CAUSE}."]
