"""Run a population's training jobs: serially, or on Dask (local, remote or SLURM).

``scheduler``:

* ``"serial"`` — in this process, one network after another;
* ``"local"`` — a ``distributed.LocalCluster`` on 127.0.0.1, one single-threaded worker
  per core this process may use (its CPU affinity), the default for more than one network;
* ``"slurm"`` — a ``dask_jobqueue.SLURMCluster`` (:func:`slurm_cluster`): ``workers``
  SLURM jobs, each one single-threaded Dask worker per core it asks for;
* any other string — the address of a running scheduler (``tcp://host:8786``).

Fine-tunes depend on their parents' futures, so they wait. A worker that dies
mid-job (a killed process, a pre-empted SLURM job) makes the scheduler rerun the
job elsewhere; the job resumes from its last epoch checkpoint, so nothing finished
is lost. A job that raises is recorded as failed, with its error, in the catalog
while the others go on; at the end a warning counts the failed networks and gives the
first one's cause in full, and a run in which every network failed raises
:class:`PopulationFailed`. The data source is checked once before any job starts
(:func:`~paradox_utils.data.check_source`), so a bad one stops the run instead of failing
every job. The catalog is rewritten as each job finishes, so a driver
killed mid-run loses no record of a finished network, and its rerun trains only
what is missing. A network is trained by one process at a time (a lock file beside
its checkpoint), so a job still running from a killed driver's run and its rerun's
copy never write the same checkpoint at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .catalog import check_catalog, write_catalog
from .checkpoints import CheckpointWriteError
from .data import check_source
from .files import lock_handle
from .names import listed
from .population import RETRAIN_STALE, NetworkSpec, descendants, named_ids, scan_catalog
from .progress import Makespan, elapsed, tqdm
from .runtime import available_cores, tune_allocator
from .training import GROUP_FREE, TrainConfig, train_group

__all__ = ["SCHEDULER_WORDS", "PopulationFailed", "check_scheduler", "group_jobs", "make_client", "run_population",
           "slurm_cluster", "slurm_environment", "train_job"]


class PopulationFailed(RuntimeError):
    """Every network a :func:`run_population` call trained failed: the chapters after it would
    have none of them to work on."""


def train_job(net_ids: list[str], configs: list[dict[str, Any]], checkpoint_dir: str, parents: list[str | None],
              device: str = "cpu", threads: int | None = None, _parents_done: Any = None) -> list[dict[str, Any]]:
    """Train a group of networks (a Dask task; also run directly): one network alone, or
    several stacked (:func:`training.train_group`). Returns a short summary per network.

    The networks' locks (:func:`_training_locks`) are held throughout: a copy of this
    job still running elsewhere finishes first, and this one then finds its work done
    or resumes from the copy's last epoch."""
    if threads:
        torch.set_num_threads(threads)
    tune_allocator()
    folder = Path(checkpoint_dir)
    with _training_locks(folder, net_ids):
        metas = train_group([TrainConfig.from_dict(c) for c in configs],
                            [folder / f"{n}.safetensors" for n in net_ids], device=device,
                            parents=[None if p is None else folder / f"{p}.safetensors" for p in parents],
                            progress=False, net_ids=list(net_ids))
    return [{"net_id": m["net_id"], "status": m["status"], "val_accuracy": m["metrics"]["val_accuracy"]}
            for m in metas]


@contextlib.contextmanager
def _training_locks(folder: Path, net_ids: Sequence[str]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``.<id>.lock`` in ``folder`` for each network, taken
    in sorted order (two jobs sharing networks cannot deadlock). Dask cannot stop a
    running task: when a driver dies, its jobs run on to the end on an existing cluster's
    workers, and the rerun may hand the same network to another worker; both would
    write one checkpoint, and a resume could read a tensor file newer than its sidecar.
    The kernel drops a lock when its holder dies, so a killed job leaves none behind.
    On a file system without locks (some Lustre mounts) the job trains unguarded."""
    with contextlib.ExitStack() as held:
        for net_id in sorted(set(net_ids)):
            handle = held.enter_context(lock_handle(folder / f".{net_id}.lock"))
            try:
                fcntl.flock(handle, fcntl.LOCK_EX)
            except OSError as error:
                warnings.warn(f"{folder} does not support file locks ({error.strerror}): two copies of a job "
                              "could train the same network at once.", RuntimeWarning, stacklevel=3)
                break
        yield


def group_jobs(specs: list[NetworkSpec], group_size: int = 1) -> list[list[NetworkSpec]]:
    """``specs`` cut into training groups of at most ``group_size`` networks, in order.

    A group holds networks of one kind whose configs differ only in
    ``training.GROUP_FREE`` settings; a network never shares a group with its parent
    or with anything trained before its parent, so groups run in list order.
    """
    if group_size < 1:
        raise ValueError(f"group_size must be ≥ 1, got {group_size}.")
    groups: list[list[NetworkSpec]] = []
    group_of: dict[str, int] = {}
    open_groups: dict[str, int] = {}  # shared-settings key -> index of the group still filling
    for spec in specs:
        shared = {k: v for k, v in spec.config.to_dict().items() if k not in GROUP_FREE}
        key = json.dumps([spec.kind, shared], sort_keys=True, default=str)
        index = open_groups.get(key)
        after_parent = spec.parent is None or index is None or group_of.get(spec.parent, -1) < index
        if index is None or len(groups[index]) >= group_size or not after_parent:
            groups.append([])
            index = open_groups[key] = len(groups) - 1
        groups[index].append(spec)
        group_of[spec.net_id] = index
    return groups


SCHEDULER_WORDS = ("auto", "serial", "local", "slurm")


def check_scheduler(scheduler: str | None) -> str | None:
    """``scheduler`` if it is one of ``SCHEDULER_WORDS`` or a scheduler address with a port
    (``tcp://host:8786``); one sentence otherwise. "auto" and "" become None (decide by size)."""
    if scheduler in (None, "", "auto"):
        return None
    if scheduler in SCHEDULER_WORDS:
        return scheduler
    match = re.fullmatch(r"(tcp|tls|ucx|inproc)://([^:/\s]+|\[[0-9a-fA-F:]+\]):(\d{1,5})", str(scheduler))
    if match is None or not 0 < int(match.group(3)) < 65536:
        raise ValueError(f"Unknown scheduler {scheduler!r}: use {', '.join(SCHEDULER_WORDS)}, or the address of a "
                         "running Dask scheduler with its port (tcp://host:8786).")
    return scheduler


def make_client(scheduler: str, workers: int | None = None, cluster_options: dict | None = None):
    """A ``distributed.Client`` for ``scheduler`` ("local", "slurm" or an address).
    ``workers``: worker processes for "local" (default :func:`~paradox_utils.runtime.available_cores`),
    SLURM jobs for "slurm" (default 1)."""
    from distributed import Client, LocalCluster

    if scheduler == "local":
        n = workers or available_cores()
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, host="127.0.0.1",
                               dashboard_address=None, processes=True, **(cluster_options or {}))
        return Client(cluster)
    if scheduler == "slurm":
        return Client(slurm_cluster(workers or 1, cluster_options))
    return Client(scheduler)


_JOBQUEUE_MISSING = "needs dask-jobqueue: pip install -e '.[slurm]'"


def _jobqueue_defaults() -> dict[str, Any]:
    """dask-jobqueue's ``jobqueue.slurm`` settings as Dask's configuration holds them now
    (its defaults, ``~/.config/dask/jobqueue.yaml``, ``DASK_JOBQUEUE__SLURM__*``)."""
    import dask.config

    try:
        import dask_jobqueue  # noqa: F401 (importing it registers its defaults)
    except ImportError as error:
        raise ImportError(f"scheduler='slurm' {_JOBQUEUE_MISSING}.") from error
    return {key.replace("_", "-"): value for key, value in dask.config.get("jobqueue.slurm").items()}


def slurm_cluster(jobs: int = 1, options: dict[str, Any] | None = None):
    """A ``dask_jobqueue.SLURMCluster`` that keeps ``jobs`` SLURM jobs running.

    Settings come from Dask's configuration (``jobqueue.slurm`` in
    ``~/.config/dask/jobqueue.yaml``, or ``DASK_JOBQUEUE__SLURM__*`` variables, which
    ``--slurm KEY=VALUE`` on the command line sets), overridden by ``options``. Each
    job asks for ``cores`` CPUs and ``memory`` (e.g. "8GB") and runs one single-threaded
    worker per core unless ``processes`` says otherwise (the training jobs use one
    thread each). A job that ends early (pre-empted, out of walltime, cancelled) is
    replaced within seconds: the cluster is adaptive with ``jobs`` as its least and its
    most, where a fixed ``scale(jobs)`` submits no new job and would leave the lost
    job's networks waiting for a worker that never comes.
    """
    config = _jobqueue_defaults()
    from dask_jobqueue import SLURMCluster

    options = dict(options or {})
    settings = {**config, **{key.replace("_", "-"): value for key, value in options.items()}}
    if not settings.get("cores") or not settings.get("memory"):
        raise ValueError("scheduler='slurm' needs the cores and memory of one SLURM job: --slurm cores=4 "
                         "--slurm memory=16GB, or jobqueue: slurm: in ~/.config/dask/jobqueue.yaml.")
    if not settings.get("processes"):
        options["processes"] = int(settings["cores"])
    cluster = SLURMCluster(**options)
    cluster.adapt(minimum_jobs=jobs, maximum_jobs=jobs)
    return cluster


def slurm_environment(settings: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` settings for the SLURM cluster (``queue=gpu``, ``walltime=02:00:00``,
    ``job_extra_directives=['--gres=gpu:1']``) as the environment variables Dask reads its
    configuration from (``DASK_JOBQUEUE__SLURM__QUEUE``, …): the command line sets them,
    and the chapters' kernels, which build the cluster, inherit them. Values are read as
    Python literals where they are one (``4``, ``[...]``, ``{...}``), else as text.
    Raises ValueError, one sentence, for a malformed setting or an unknown key."""
    pairs = []
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--slurm takes KEY=VALUE (e.g. cores=4), got {setting!r}.")
        pairs.append((key.strip().replace("_", "-"), value.strip()))
    if not pairs:
        return {}
    try:
        known = _jobqueue_defaults()
    except ImportError:
        raise ValueError(f"--slurm {_JOBQUEUE_MISSING}.") from None
    if unknown := [k for k, _ in pairs if k not in known]:
        raise ValueError(f"--slurm: unknown setting {', '.join(unknown)}; dask-jobqueue's SLURMCluster takes "
                         f"{', '.join(sorted(k.replace('-', '_') for k in known))}.")
    return {f"DASK_JOBQUEUE__SLURM__{key.replace('-', '_').upper()}": value for key, value in pairs}


def run_population(specs: list[NetworkSpec], checkpoint_dir: str | os.PathLike, scheduler: str | None = None,
                   workers: int | None = None, device: str = "cpu", client=None,
                   cluster_options: dict | None = None, progress: bool = True, group_size: int = 1,
                   retrain: Sequence[str] = ()) -> pd.DataFrame:
    """Train every unfinished network of ``specs`` into ``checkpoint_dir``; return the catalog.

    Finished checkpoints are skipped; unfinished ones resume; corrupt ones are trained
    again (with a warning). A finished checkpoint made with other settings than its
    spec (or from a parent retrained since) is refused before any work, unless its id
    is in ``retrain`` (or ``retrain`` holds the word ``stale``: every such checkpoint):
    those networks and their offspring are trained again from scratch — named ids on
    every call, so a rerun with the same ids starts them over; ``stale`` only while they
    do not match, so a rerun after a kill resumes. ``client``: an existing
    ``distributed.Client`` (then ``scheduler`` is ignored). ``group_size``: train up to
    that many compatible networks at once, stacked into one wide network
    (:func:`group_jobs`) — for accelerators; on a CPU one at a time is fastest. A
    checkpoint that cannot be written stops the run
    (:class:`~paradox_utils.checkpoints.CheckpointWriteError`), and so does a data source
    that cannot be read (ValueError, before any job). Networks that failed are counted in a
    warning naming the first one's cause; when every network it trained failed, the catalog
    is written and :class:`PopulationFailed` raised (one sentence, that cause in full).
    """
    scheduler = check_scheduler(scheduler)
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    ids = {s.net_id for s in specs}
    for spec in specs:
        if spec.parent is not None and spec.parent not in ids:
            raise ValueError(f"Network {spec.net_id} names parent {spec.parent}, which is not in the population.")
    if unknown := [r for r in named_ids(retrain) if r not in ids]:
        raise ValueError(f"--retrain names {listed(unknown)}, not in this population "
                         f"(its networks: {listed(sorted(ids))}).")
    catalog = _prepare(specs, checkpoint_dir, retrain)
    todo = [s for s, status in zip(specs, catalog["status"], strict=True) if status != "done"]
    groups = group_jobs(todo, group_size)
    if scheduler is None:
        scheduler = "local" if len(groups) > 1 else "serial"
    errors: dict[str, str] = {}
    if groups and scheduler == "serial" and client is None:
        bar = tqdm(total=len(todo), desc="networks", disable=not progress, mininterval=0, own_eta=True)
        clock = Makespan(len(groups), slots=1)
        for group in groups:
            if failed := [s.parent for s in group if s.parent in errors]:
                errors.update({s.net_id: f"parent {failed[0]} failed" for s in group})
            else:
                try:
                    train_job(*_job_arguments(group), str(checkpoint_dir), [s.parent for s in group], device)
                except CheckpointWriteError:
                    raise  # a full disk or a read-only folder is not one network's failure
                except Exception as error:  # recorded in the catalog; the rest go on
                    errors.update({s.net_id: f"{type(error).__name__}: {error}" for s in group})
            _finished(bar, write_catalog_of(specs, checkpoint_dir, errors), group, clock.finished(slots=1))
        bar.close()
    elif groups:
        errors = _run_dask(groups, specs, checkpoint_dir, scheduler, workers, device, client, cluster_options,
                           progress)
    catalog = scan_catalog(specs, checkpoint_dir, errors)
    write_catalog(catalog, checkpoint_dir)
    _report_failures(catalog[catalog["net_id"].isin({s.net_id for s in todo})])
    return catalog


def _report_failures(trained: pd.DataFrame) -> None:
    """Of the catalog's rows of the networks this run ``trained``: raise
    :class:`PopulationFailed` when every one failed, else warn when some did — the count, their
    ids and the first one's cause in full, on one line (the progress line cuts it short)."""
    failed = trained[trained["status"] == "failed"]
    if failed.empty:
        return
    first, n = failed.iloc[0], len(failed)
    cause = (f"the first, {first.net_id}, " if n > 1 else "it ") + \
        f"failed with {' '.join(str(first.error).split()).rstrip('.')}."
    if n == len(trained):
        whole = f"All {n} networks ({listed(list(failed['net_id']))})" if n > 1 else f"The one network, {first.net_id},"
        raise PopulationFailed(f"{whole} failed in training, so the run stops here; {cause}")
    warnings.warn(f"{n} of {len(trained)} networks failed in training ({listed(list(failed['net_id']))}) and "
                  f"{'are' if n > 1 else 'is'} left out of the chapters that follow; {cause}", RuntimeWarning,
                  stacklevel=3)


def write_catalog_of(specs: list[NetworkSpec], checkpoint_dir: Path, errors: dict[str, str]) -> pd.DataFrame:
    """The catalog as the checkpoints say it is now, written (after every finished job)."""
    catalog = scan_catalog(specs, checkpoint_dir, errors)
    write_catalog(catalog, checkpoint_dir)
    return catalog


def _slots(client) -> int:
    """How many jobs the cluster runs at once now: its workers' threads."""
    return sum(client.nthreads().values())


def _finished(bar, catalog: pd.DataFrame, group: list[NetworkSpec], left: float) -> None:
    """One bar update per network of a finished job, showing what it reached and the time the
    chapter has ``left`` (seconds, :class:`~paradox_utils.progress.Makespan`): in a batch run
    each becomes a line "networks: 3/12 (25 %) [elapsed, b002: 4 epochs, val acc 0.512, 145 s;
    about 12 min 3 s left]"."""
    rows = catalog.set_index("net_id")
    eta = f"; about {elapsed(left)} left" if left > 0 else ""
    for spec in group:
        row = rows.loc[spec.net_id]
        if row.status == "done":
            epochs = f"{row.epochs_done} epoch{'s' if row.epochs_done != 1 else ''}"
            bar.set_postfix_str(f"{spec.net_id}: {epochs}, val acc {row.val_accuracy:.3f}, "
                                f"{row.train_seconds:.0f} s{eta}", refresh=False)
        else:
            bar.set_postfix_str(f"{spec.net_id}: {row.status} {row.error}"[:80] + eta, refresh=False)
        bar.update(1)


def _prepare(specs: list[NetworkSpec], checkpoint_dir: Path, retrain: Sequence[str]) -> pd.DataFrame:
    """The catalog before any work: refuses stale checkpoints not named in ``retrain``
    (ids, or the word ``stale`` for all of them), checks the data source of the networks
    it leaves to train (:func:`~paradox_utils.data.check_source`), removes the checkpoints of
    the named networks, their offspring and corrupt ones, so they are trained anew. Warns
    when the catalog there is unreadable: it is written anew from the checkpoints."""
    check_catalog(checkpoint_dir)
    catalog = scan_catalog(specs, checkpoint_dir)
    is_stale = catalog["status"] == "stale"
    every_stale = list(catalog.loc[is_stale, "net_id"]) if RETRAIN_STALE in retrain else []
    retrain = descendants(specs, [*named_ids(retrain), *every_stale])
    stale = catalog[is_stale & ~catalog["net_id"].isin(retrain)]
    if len(stale):
        first = stale.iloc[0]
        more = f" (also stale: {listed(list(stale['net_id'][1:]))})" if len(stale) > 1 else ""
        raise ValueError(f"The checkpoint of {first.net_id} in {checkpoint_dir} was {first.error}{more}, so it does "
                         f"not match this profile; use a new profile name (a new checkpoint folder), or train it "
                         f"again with --retrain {first.net_id} (its offspring are retrained too)"
                         f"{'; --retrain stale retrains every network that does not match' if len(stale) > 1 else ''}.")
    to_train = catalog["net_id"].isin(retrain) | (catalog["status"] != "done")
    for dataset in sorted({s.config.dataset for s, train in zip(specs, to_train, strict=True) if train}):
        check_source(dataset)  # once here, not in every job: a bad source would fail them all
    corrupt = catalog[catalog["status"] == "corrupt"]
    for row in corrupt.itertuples():
        warnings.warn(f"{row.error} {row.net_id} is trained again.", RuntimeWarning, stacklevel=3)
    for net_id in [*retrain, *corrupt["net_id"]]:
        for suffix in (".safetensors", ".json"):
            (checkpoint_dir / f"{net_id}{suffix}").unlink(missing_ok=True)
    return scan_catalog(specs, checkpoint_dir) if retrain or len(corrupt) else catalog


def _job_arguments(group: list[NetworkSpec]) -> tuple[list[str], list[dict[str, Any]]]:
    return [s.net_id for s in group], [s.config.to_dict() for s in group]


def _run_dask(groups, specs, checkpoint_dir, scheduler, workers, device, client, cluster_options,
              progress) -> dict[str, str]:
    from distributed import as_completed

    own = client is None
    client = client or make_client(scheduler, workers, cluster_options)
    try:
        futures, future_of = [], {}
        for group in groups:  # group_jobs orders groups after their parents', so those futures exist
            parents = [s.parent for s in group]
            waits = list({id(f): f for p in parents if (f := future_of.get(p)) is not None}.values())
            future = client.submit(train_job, *_job_arguments(group), str(checkpoint_dir), parents, device, 1,
                                   waits, key=f"train-{checkpoint_dir.name}-{group[0].net_id}-{len(group)}",
                                   pure=False)
            futures.append((future, group))
            future_of.update({s.net_id: future for s in group})
        errors = {}
        members = {f.key: g for f, g in futures}
        bar = tqdm(total=sum(len(g) for g in groups), desc="networks", disable=not progress, mininterval=0,
                   own_eta=True)
        clock = Makespan(len(groups), _slots(client))
        for future in as_completed([f for f, _ in futures]):
            if future.status == "error":
                error = future.exception()
                if isinstance(error, CheckpointWriteError):
                    raise error  # not one network's failure: stop (the finally closes the cluster)
                errors.update({s.net_id: f"{type(error).__name__}: {error}" for s in members[future.key]})
            # the catalog follows the jobs, so a killed driver loses no record of finished networks
            _finished(bar, write_catalog_of(specs, checkpoint_dir, errors), members[future.key],
                      clock.finished(_slots(client)))
        bar.close()
        return errors
    finally:
        if own:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()
