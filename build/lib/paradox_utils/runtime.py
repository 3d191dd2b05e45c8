"""Explicit process settings: threads, seeds, the device. Nothing here runs at import."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import random

import numpy as np
import torch

__all__ = ["available_cores", "configure", "default_threads", "pick_device", "tune_allocator"]

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def tune_allocator() -> bool:
    """Keep freed tensor memory in the process (glibc only; a no-op elsewhere).

    By default glibc serves every allocation above its mmap threshold with a fresh
    mmap and trims freed heap back to the OS, so each training step page-faults its
    activations in again: a quick-profile run spent a third of its CPU time in the
    kernel (463 M minor faults). Raising both thresholds made ResNet20 training ~15 %
    faster here (benchmarks/bench_training.py, MALLOC_* variables vs none).
    """
    name = ctypes.util.find_library("c")
    if not name or os.uname().sysname != "Linux":
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20) and libc.mallopt(M_TRIM_THRESHOLD, 2**30)
    except (OSError, AttributeError):
        return False
    return bool(ok)


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS reports one (a
    ``taskset``, a SLURM job's allocation), else every core of the machine."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def default_threads() -> int:
    """Torch's CPU threads unless told otherwise: ``OMP_NUM_THREADS`` when the user set it
    (a positive integer; of a nested list "4,2" the outer level), else :func:`available_cores`."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(value) if value.isdigit() and int(value) > 0 else available_cores()


def configure(threads: int | None = None, seed: int | None = None) -> dict:
    """Set torch's CPU threads (default: :func:`default_threads`), tune the allocator and,
    if given, seed every RNG."""
    threads = threads or default_threads()
    torch.set_num_threads(threads)
    tune_allocator()
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
    return {"threads": threads, "seed": seed, "device": str(pick_device())}


def pick_device(preferred: str = "auto") -> torch.device:
    """``"auto"``: CUDA when present, else CPU; otherwise the device named."""
    if preferred == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preferred)
