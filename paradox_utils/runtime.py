"""Explicit process settings: threads, seeds, the device. Nothing here runs at import."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["configure", "pick_device"]


def configure(threads: int | None = None, seed: int | None = None) -> dict:
    """Set torch's CPU threads (default: all cores) and, if given, every RNG's seed."""
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
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
