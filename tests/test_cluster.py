"""Training a population (``paradox_utils.cluster``): serial and Dask runs, training groups,
resuming, and refusing stale, corrupt or unwritable checkpoints before or as they happen; a
local cluster's size, ``--slurm`` settings, and the lock that lets one process at a time train
a network.

Scale-out with real processes, driven through the command line users run
(``python -m paradox_utils run --scheduler ...``): a Dask scheduler and two workers
started as ``dask scheduler`` / ``dask worker`` processes, and a one-node SLURM
cluster from Debian's packages (tests/services.py). Workers and SLURM jobs are
killed mid-job, the driver after its first finished network; the population still
completes, killed jobs resume from their last epoch, and every checkpoint is
bit-identical to a serial run of the same population."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime

import dask.config
import pandas as pd
import pytest
import torch

from paradox_utils import checkpoints, cli, profiles
from paradox_utils.cluster import (
    _training_locks,
    check_scheduler,
    group_jobs,
    make_client,
    run_population,
    slurm_cluster,
    slurm_environment,
)
from paradox_utils.population import catalog_path, from_parameters, read_catalog, scan_catalog

from .services import ROOT, DaskCluster, LocalSlurm, Processes, require_slurm, wait_until
from .test_population import COMMON, population

needs_cifar = pytest.mark.usefixtures("cifar_source")  # training reads CIFAR-10 from PARADOX_CIFAR10


@pytest.mark.slow
@needs_cifar
def test_serial_run_skips_finished_work(tmp_path):
    specs = population(COMMON, {"lr": [1e-3]}, parents=1, manipulations=["gamma"], finetune_common={"lr": 1e-4})
    catalog = run_population(specs, tmp_path, scheduler="serial", progress=False)
    assert list(catalog["status"]) == ["done", "done"] and catalog["parent"].fillna("").tolist() == ["", "b000"]
    assert read_catalog(tmp_path)["net_id"].tolist() == ["b000", "b000-ft-gamma"]
    stamp = (tmp_path / "b000.safetensors").stat().st_mtime_ns
    run_population(specs, tmp_path, scheduler="serial", progress=False)
    assert (tmp_path / "b000.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.slow
@needs_cifar
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


def test_a_local_cluster_has_one_worker_per_available_core(monkeypatch):
    import distributed

    from paradox_utils import cluster

    made = {}
    monkeypatch.setattr(cluster, "available_cores", lambda: 3)
    monkeypatch.setattr(distributed, "LocalCluster", lambda **kwargs: made.update(kwargs) or "cluster")
    monkeypatch.setattr(distributed, "Client", lambda c: c)
    assert cluster.make_client("local") == "cluster"
    assert made["n_workers"] == 3 and made["threads_per_worker"] == 1


@needs_cifar
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


@pytest.mark.slow
@needs_cifar
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


@needs_cifar
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


@pytest.mark.slow
@needs_cifar
def test_speed_switches_are_not_part_of_a_networks_identity(tmp_path):
    run_population(_tiny(channels_last=True), tmp_path, scheduler="serial", progress=False)
    stamp = (tmp_path / "b000.safetensors").stat().st_mtime_ns
    catalog = run_population(_tiny(channels_last=False), tmp_path, scheduler="serial", progress=False)
    assert list(catalog["status"]) == ["done", "done"]
    assert (tmp_path / "b000.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.slow
@needs_cifar
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


@pytest.mark.slow
@needs_cifar
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


@pytest.mark.slow
@needs_cifar
def test_a_save_error_stops_the_run(tmp_path, monkeypatch):
    import paradox_utils.files as files

    def read_only(*args):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(files.os, "replace", read_only)
    with pytest.raises(checkpoints.CheckpointWriteError, match="b000.safetensors could not be written"):
        run_population(_tiny(), tmp_path, scheduler="serial", progress=False)


@needs_cifar
def test_bad_scheduler_is_one_sentence(tmp_path):
    for bad in ("tcp://host", "slurn", "tcp://host:99999"):
        with pytest.raises(ValueError, match="Unknown scheduler"):
            run_population(_tiny(), tmp_path, scheduler=bad, progress=False)
    assert check_scheduler("tcp://127.0.0.1:8786") == "tcp://127.0.0.1:8786" and check_scheduler("auto") is None
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------- scale-out: real processes

# The tiny profile with one network a job: b000 trains 1 epoch, b001 3 (so one finishes
# while the other is mid-run, and b001 has a "mid" to be killed in), b000-ft-all 1 from
# b000. 200 training images: a few seconds an epoch on one CPU thread.
OVERRIDES = {"base_common": {"train_per_class": 20, "val_per_class": 5, "batch_size": 32},
             "base_grid": {"epochs": [1, 3]}, "group_size": 1}
LONG = "b001"
RUN_TIMEOUT = 600  # seconds for one command-line run (about a minute on two idle cores)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cifar_source) -> dict[str, str]:
    """net id -> sha256 of a serial run of the population, in this process. With one
    torch thread, as on every Dask worker: the thread count changes the order of
    floating-point sums, so runs at different counts differ in the last bits."""
    specs = from_parameters(profiles.profile_values("tiny", OVERRIDES))
    assert [(s.net_id, s.config.epochs) for s in specs] == [("b000", 1), (LONG, 3), ("b000-ft-all", 1)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        catalog = run_population(specs, tmp_path_factory.mktemp("serial"), scheduler="serial", progress=False)
    finally:
        torch.set_num_threads(threads)
    assert (catalog["status"] == "done").all()
    return dict(zip(catalog["net_id"], catalog["sha256"], strict=True))


@pytest.fixture
def processes(tmp_path):
    """Processes the test starts; all stopped at the end, also when it fails."""
    started = Processes(tmp_path / "logs")
    yield started
    started.stop()


@pytest.fixture
def dask_cluster(processes):
    cluster = DaskCluster(processes, workers=2)
    yield cluster
    cluster.close()


def start_run(processes: Processes, name: str, folder, *options: str, env=None) -> subprocess.Popen:
    """``python -m paradox_utils run`` of the tiny profile with ``OVERRIDES`` through chapter 2,
    everything written under ``folder``."""
    overrides = [word for key, value in OVERRIDES.items() for word in ("-p", key, json.dumps(value))]
    command = [sys.executable, "-m", "paradox_utils", "run", "--profile", "tiny", "--to", "02_finetune",
               "--no-progress", "--output-dir", str(folder / "chapters"), *overrides,
               "-p", "checkpoint_dir", str(folder / "checkpoints"), "-p", "results_dir", str(folder / "results"),
               *options]
    return processes.start(name, command, env=env, cwd=ROOT)


def finish(processes: Processes, name: str) -> None:
    """Wait for the run ``name``; fail with its output's tail unless it exits 0."""
    try:
        code = processes.started[name].wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} ran past {RUN_TIMEOUT} s:\n{processes.tail(name)}")
    assert code == 0, f"{name} exited {code}:\n{processes.tail(name)}"


def sidecar(folder, net_id: str) -> dict:
    """A checkpoint's metadata, or {} while it has none (written atomically: never torn)."""
    try:
        return checkpoints.load_metadata(folder / f"{net_id}.json")
    except checkpoints.CheckpointError:
        return {}


def assert_complete_and_identical(folder, reference: dict[str, str], killed: dict) -> None:
    """Every network done, bit-identical to the serial run; ``killed`` (the metadata a
    killed job left) resumed: its saved epochs are kept as they were, where a restart
    from scratch would have rewritten them (their timings would differ)."""
    catalog = read_catalog(folder)
    assert dict(zip(catalog["net_id"], catalog["status"], strict=True)) == dict.fromkeys(reference, "done")
    assert dict(zip(catalog["net_id"], catalog["sha256"], strict=True)) == reference
    history = checkpoints.load_metadata(folder / f"{killed['net_id']}.json")["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[:len(killed["history"])] == killed["history"]


@pytest.mark.slow
def test_existing_dask_cluster_survives_a_killed_worker(tmp_path, processes, dask_cluster, reference):
    folder = tmp_path / "checkpoints"
    start_run(processes, "driver", tmp_path, "--scheduler", dask_cluster.address)

    def mid_job():  # b001 saved an epoch and is still training on a worker
        return sidecar(folder, LONG).get("status") == "running" and dask_cluster.name_running(LONG)

    victim = wait_until(mid_job, RUN_TIMEOUT, f"{LONG}'s first epoch on a worker")
    processes.kill(victim)
    killed = sidecar(folder, LONG)  # final for that run: its process is gone
    assert killed["status"] == "running", f"{victim} finished {LONG} before it was killed"
    finish(processes, "driver")
    survivors = [w["name"] for w in dask_cluster.client.scheduler_info()["workers"].values()]
    assert survivors == [w for w in dask_cluster.workers if w != victim]  # the rest ran on the other worker
    assert_complete_and_identical(folder, reference, killed)


@pytest.mark.slow
def test_a_killed_driver_loses_no_finished_network(tmp_path, processes, dask_cluster, reference):
    folder = tmp_path / "checkpoints"
    start_run(processes, "driver", tmp_path, "--scheduler", dask_cluster.address)

    def first_recorded():  # the catalog on disk, once it lists b000 as done
        try:
            catalog = pd.read_parquet(catalog_path(folder))
        except (OSError, ValueError):  # not written yet (it is replaced atomically, never torn)
            return None
        status = dict(zip(catalog["net_id"], catalog["status"], strict=True))
        return status if status.get("b000") == "done" else None

    recorded = wait_until(first_recorded, RUN_TIMEOUT, "b000 in the catalog")
    processes.kill("driver")  # the driver and its papermill kernel, which holds the Dask client
    assert recorded[LONG] != "done"  # recorded as b000's job finished, not at the end of the run
    killed = sidecar(folder, LONG)
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.glob("b000.*")}
    # b001's job runs on: Dask cannot stop a running task; the rerun waits for its lock
    start_run(processes, "rerun", tmp_path, "--scheduler", dask_cluster.address)
    finish(processes, "rerun")
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("b000.*")} == stamps  # not trained again
    if killed:  # b001 had saved an epoch when the driver died: it went on from there
        assert_complete_and_identical(folder, reference, killed)
    else:
        assert_complete_and_identical(folder, reference, {"net_id": LONG, "history": []})


# ----------------------------------------------------------------------------- SLURM

@pytest.fixture(scope="module")
def slurm_installed():
    """Module-scoped so that it comes before ``reference``: a skip costs no training."""
    require_slurm()


@pytest.fixture
def slurm(slurm_installed, processes):
    cluster = LocalSlurm(processes)
    yield cluster
    cluster.stop()


@pytest.mark.slow
def test_slurm_cluster_runs_the_population_and_replaces_a_preempted_job(slurm_installed, tmp_path, processes,
                                                                        slurm, reference):
    """Two SLURM jobs of one core each, as ``--slurm`` settings; once b001 has saved an
    epoch every running job is cancelled (a pre-emption); the cluster submits new jobs,
    b001 resumes in one of them."""
    folder = tmp_path / "checkpoints"
    settings = ["cores=1", "memory=2GB", "walltime=00:15:00", f"queue={slurm.PARTITION}", "interface=lo",
                f"log_directory={tmp_path / 'slurm-jobs'}", f"local_directory={tmp_path / 'dask'}"]
    start_run(processes, "driver", tmp_path, "--scheduler", "slurm", *[f"--slurm={s}" for s in settings],
              "-p", "workers", "2", env=slurm.env)
    first = wait_until(lambda: len(slurm.queue()) == 2 and slurm.queue(), RUN_TIMEOUT, "two SLURM jobs")
    assert {name for name, _ in first.values()} == {"dask-worker"}
    wait_until(lambda: sidecar(folder, LONG).get("status") == "running", RUN_TIMEOUT, f"{LONG}'s first epoch")
    running = [job for job, (_, state) in slurm.queue().items() if state == "RUNNING"]
    slurm.run("scancel", *map(str, running))
    wait_until(lambda: not set(running) & set(slurm.queue()), 60, "the cancelled jobs' end", 0.5)
    killed = sidecar(folder, LONG)
    assert killed["status"] == "running", f"{LONG} finished before its job was cancelled"
    finish(processes, "driver")
    assert_complete_and_identical(folder, reference, killed)
    wait_until(lambda: not slurm.queue(), 60, "the end of the run's jobs", 0.5)  # the driver cancels them
    ended = slurm.finished()
    assert {ended[job]["JobState"] for job in running} == {"CANCELLED"}
    assert {fields["Name"] for fields in ended.values()} == {"dask-worker"}
    # chapter 1's cluster replaced the cancelled jobs (chapter 2's own jobs come later)
    chapter_1_end = (tmp_path / "chapters" / "01_train.ipynb").stat().st_mtime
    replacements = [job for job, fields in ended.items()
                    if job > max(running) and _seconds(fields["SubmitTime"]) <= chapter_1_end]
    assert replacements, f"no SLURM job replaced the cancelled ones: {ended}"
    worker_logs = [p.read_text() for p in (tmp_path / "slurm-jobs").glob("dask-worker-*.err")]
    assert len(worker_logs) == len(ended) and all("Starting Worker" in log for log in worker_logs)


def _seconds(stamp: str) -> float:
    """A SLURM time stamp (local time, whole seconds) as seconds since the epoch."""
    return datetime.fromisoformat(stamp).timestamp()


def test_slurm_settings_become_dask_configuration(capsys):
    assert slurm_environment(["cores=4", "job_extra_directives=['--gres=gpu:1']", "walltime = 02:00:00"]) == {
        "DASK_JOBQUEUE__SLURM__CORES": "4", "DASK_JOBQUEUE__SLURM__JOB_EXTRA_DIRECTIVES": "['--gres=gpu:1']",
        "DASK_JOBQUEUE__SLURM__WALLTIME": "02:00:00"}
    with pytest.raises(ValueError, match="unknown setting partition; .* takes .*queue"):
        slurm_environment(["partition=debug"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        slurm_environment(["cores"])
    assert cli.main(["run", "--profile", "tiny", "--slurm", "partition=debug"]) == 1  # before any chapter
    assert "unknown setting partition" in capsys.readouterr().err
    with dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}):
        with pytest.raises(ValueError, match="cores and memory of one SLURM job: --slurm cores=4"):
            slurm_cluster(1, {"memory": "1GB"})


def test_a_network_is_trained_by_one_process_at_a_time(tmp_path):
    def free(net_id):  # can another open file description take the lock now?
        with open(tmp_path / f".{net_id}.lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(handle, fcntl.LOCK_UN)
            return True

    with _training_locks(tmp_path, ["b001", "b000", "b001"]):
        assert not free("b000") and not free("b001") and free("b002")
    assert free("b000") and free("b001")


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
