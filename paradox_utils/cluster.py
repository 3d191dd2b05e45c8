"""Run a population's training jobs: serially, or on Dask (local, remote or SLURM).

``scheduler``:

* ``"serial"`` — in this process, one network after another;
* ``"local"`` — a ``distributed.LocalCluster`` on 127.0.0.1 sized to the machine
  (one single-threaded worker per core), the default for more than one network;
* ``"slurm"`` — a ``dask_jobqueue.SLURMCluster`` (``cluster_options`` go to it);
* any other string — the address of a running scheduler (``tcp://host:8786``).

Fine-tunes depend on their parents' futures, so they wait. A worker that dies
mid-job makes the scheduler rerun the job elsewhere; the job resumes from its
last epoch checkpoint, so nothing finished is lost. A job that raises is recorded
as failed, with its error, in the catalog while the others go on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .population import NetworkSpec, scan_catalog, write_catalog
from .progress import tqdm
from .runtime import tune_allocator
from .training import TrainConfig, train

__all__ = ["make_client", "run_population", "train_job"]


def train_job(net_id: str, config: dict[str, Any], checkpoint_dir: str, parent: str | None,
              device: str = "cpu", threads: int | None = None, _parent_done: Any = None) -> dict[str, Any]:
    """Train one network (a Dask task; also run directly). Returns a short summary."""
    if threads:
        torch.set_num_threads(threads)
    tune_allocator()
    parent_path = None if parent is None else str(Path(checkpoint_dir) / f"{parent}.safetensors")
    meta = train(TrainConfig.from_dict(config), Path(checkpoint_dir) / f"{net_id}.safetensors",
                 device=device, parent=parent_path, progress=False, net_id=net_id)
    return {"net_id": net_id, "status": meta["status"], "val_accuracy": meta["metrics"]["val_accuracy"]}


def make_client(scheduler: str, workers: int | None = None, cluster_options: dict | None = None):
    """A ``distributed.Client`` for ``scheduler`` ("local", "slurm" or an address)."""
    from distributed import Client, LocalCluster

    if scheduler == "local":
        n = workers or max(1, os.cpu_count() or 1)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, host="127.0.0.1",
                               dashboard_address=None, processes=True, **(cluster_options or {}))
        return Client(cluster)
    if scheduler == "slurm":
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError as error:
            raise ImportError("scheduler='slurm' needs dask-jobqueue: pip install -e '.[slurm]'.") from error
        cluster = SLURMCluster(**(cluster_options or {}))
        cluster.scale(jobs=workers or 1)
        return Client(cluster)
    return Client(scheduler)


def run_population(specs: list[NetworkSpec], checkpoint_dir: str | os.PathLike, scheduler: str | None = None,
                   workers: int | None = None, device: str = "cpu", client=None,
                   cluster_options: dict | None = None, progress: bool = True) -> pd.DataFrame:
    """Train every unfinished network of ``specs`` into ``checkpoint_dir``; return the catalog.

    Finished checkpoints are skipped; unfinished ones resume. ``client``: an
    existing ``distributed.Client`` (then ``scheduler`` is ignored).
    """
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    ids = {s.net_id for s in specs}
    for spec in specs:
        if spec.parent is not None and spec.parent not in ids:
            raise ValueError(f"Network {spec.net_id} names parent {spec.parent}, which is not in the population.")
    catalog = scan_catalog(specs, checkpoint_dir)
    todo = [s for s, status in zip(specs, catalog["status"], strict=True) if status != "done"]
    if scheduler is None:
        scheduler = "local" if len(todo) > 1 else "serial"
    errors: dict[str, str] = {}
    if todo and scheduler == "serial" and client is None:
        for spec in tqdm(todo, desc="networks", disable=not progress):
            if spec.parent in errors:
                errors[spec.net_id] = f"parent {spec.parent} failed"
                continue
            try:
                train_job(spec.net_id, spec.config.to_dict(), str(checkpoint_dir), spec.parent, device)
            except Exception as error:  # recorded in the catalog; the rest go on
                errors[spec.net_id] = f"{type(error).__name__}: {error}"
            write_catalog(scan_catalog(specs, checkpoint_dir, errors), checkpoint_dir)
    elif todo:
        errors = _run_dask(todo, checkpoint_dir, scheduler, workers, device, client, cluster_options, progress)
    catalog = scan_catalog(specs, checkpoint_dir, errors)
    write_catalog(catalog, checkpoint_dir)
    return catalog


def _run_dask(todo, checkpoint_dir, scheduler, workers, device, client, cluster_options, progress) -> dict[str, str]:
    from distributed import as_completed

    own = client is None
    client = client or make_client(scheduler, workers, cluster_options)
    try:
        futures = {}
        for spec in todo:  # parents come first in a population, so their futures exist
            parent_future = futures.get(spec.parent)
            futures[spec.net_id] = client.submit(
                train_job, spec.net_id, spec.config.to_dict(), str(checkpoint_dir), spec.parent, device,
                1, parent_future, key=f"train-{checkpoint_dir.name}-{spec.net_id}", pure=False)
        errors = {}
        names = {f.key: k for k, f in futures.items()}
        bar = tqdm(total=len(futures), desc="networks", disable=not progress)
        for future in as_completed(list(futures.values())):
            if future.status == "error":
                error = future.exception()
                errors[names[future.key]] = f"{type(error).__name__}: {error}"
            bar.update()
        bar.close()
        return errors
    finally:
        if own:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()
