"""How a message names things: one rule for many names in one sentence.

Every warning, refusal and progress line that names networks (or other ids) goes
through :func:`listed`, so a message about 329 networks stays one readable sentence.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["LISTED", "listed"]

LISTED = 10  # names a message shows before "and K more"


def listed(names: Sequence) -> str:
    """The first ``LISTED`` names (ids of any type, shown with str), comma-separated, then
    "and K more" for the rest: a warning or refusal about many networks stays one sentence."""
    more = len(names) - LISTED
    return ", ".join(map(str, names[:LISTED])) + (f" and {more} more" if more > 0 else "")
