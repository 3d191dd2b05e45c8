import os
import signal
import threading
import time

import pytest

from paradox_utils import checkpoints
from paradox_utils.cluster import group_jobs, make_client, run_population
from paradox_utils.population import build_population, read_catalog

COMMON = {"epochs": 1, "train_per_class": 20, "val_per_class": 5, "batch_size": 32}


def test_profile_builds_lineage():
    specs = build_population({"base": {"common": COMMON, "grid": {"lr": [1e-3, 5e-3], "batch_size": [32, 64]}},
                              "finetune": {"parents": 2, "manipulations": [None, "all", "blur"]}})
    assert [s.net_id for s in specs[:4]] == ["b000", "b001", "b002", "b003"]
    assert len(specs) == 4 + 6 and specs[4].parent == "b000" and specs[4].net_id == "b000-ft-none"
    assert specs[5].config.manipulation == "all"
    with pytest.raises(ValueError, match="exceeds"):
        build_population({"base": {"grid": {"lr": [1e-3]}, "sample": 3}})
    with pytest.raises(ValueError, match="Unknown population keys"):
        build_population({"bases": {}})


def test_serial_run_skips_finished_work(tmp_path):
    specs = build_population({"base": {"common": COMMON, "grid": {"lr": [1e-3]}},
                              "finetune": {"parents": 1, "manipulations": ["gamma"], "common": {"lr": 1e-4}}})
    catalog = run_population(specs, tmp_path, scheduler="serial", progress=False)
    assert list(catalog["status"]) == ["done", "done"] and catalog["parent"].fillna("").tolist() == ["", "b000"]
    assert read_catalog(tmp_path)["net_id"].tolist() == ["b000", "b000-ft-gamma"]
    stamp = (tmp_path / "b000.safetensors").stat().st_mtime_ns
    run_population(specs, tmp_path, scheduler="serial", progress=False)
    assert (tmp_path / "b000.safetensors").stat().st_mtime_ns == stamp


def test_grouped_population_trains_compatible_networks_together(tmp_path):
    """Networks differing only in init/seed/augmentation share a stacked group; lr splits
    groups; fine-tunes come in groups after their parents' groups."""
    specs = build_population({"base": {"common": COMMON, "grid": {"lr": [1e-3, 5e-3], "init": ["he_normal",
                                                                                          "glorot_uniform"]}},
                              "finetune": {"parents": 2, "manipulations": [None, "gamma"], "common": {"lr": 1e-4}}})
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
    specs = build_population({"base": {"common": {**COMMON, "epochs": 4, "train_per_class": 60},
                                       "grid": {"lr": [1e-3, 2e-3]}},
                              "finetune": {"parents": 1, "manipulations": ["all"], "common": {"epochs": 1}}})
    bad = build_population({"base": {"common": {**COMMON, "train_per_class": 6000}, "grid": {"lr": [1e-3]}},
                            "finetune": {"parents": 1, "manipulations": [None]}})
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


def test_fine_tune_groups_and_the_imagenet_profile():
    import yaml

    from paradox_utils import pipeline, report

    profile = yaml.safe_load((pipeline.NOTEBOOKS / "profiles" / "imagenet.yaml").read_text())
    spec = report.population_spec(profile["base_common"], profile["base_grid"], None, profile["finetune_parents"],
                                  profile["finetune_manipulations"], profile["finetune_common"],
                                  profile["finetune_groups"])
    specs = build_population(spec, arch="resnet50", dataset="imagenet")
    offspring = [s for s in specs if s.kind == "finetune"]
    assert len([s for s in specs if s.kind == "base"]) == 10 and len(offspring) == 10
    assert {s.parent for s in offspring} == {"b000"}
    assert {s.config.epochs for s in offspring if s.config.manipulation == "all"} == {5, 10}
    assert all(s.config.batch_size == 32 and s.config.arch == "resnet50" for s in specs)
    with pytest.raises(ValueError, match="distinct 'suffix'"):
        build_population({"base": {"grid": {"lr": [1e-3]}},
                          "finetune": [{"parents": 1, "manipulations": ["all"]}, {"parents": 1, "manipulations": ["all"]}]})
