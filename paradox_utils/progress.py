"""Progress bars: tqdm's, switched off in batch runs of the chapters.

``pipeline.run`` sets ``PARADOX_BATCH=1`` for the kernels papermill starts. There,
notebook progress widgets would only add comm traffic (nbclient can block on widget
messages: jupyter/nbclient#312) and stderr noise in the book, so bars are disabled.
"""

from __future__ import annotations

import os

from tqdm.auto import tqdm as _tqdm

__all__ = ["batch_mode", "tqdm"]


def batch_mode() -> bool:
    """True inside a chapter executed by ``pipeline.run`` (no live frontend)."""
    return os.environ.get("PARADOX_BATCH") == "1"


def tqdm(*args, **kwargs):
    """``tqdm.auto.tqdm``, disabled in batch mode."""
    if batch_mode():
        kwargs["disable"] = True
    return _tqdm(*args, **kwargs)
