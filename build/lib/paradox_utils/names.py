"""Names: how a message names things, and which names may become paths.

Every warning, refusal and progress line that names networks (or other ids) goes
through :func:`listed`, so a message about 329 networks stays one readable sentence.
Every name that becomes part of a path — a profile's (its folders ``checkpoints/<name>``
and ``data/results/<name>``), a network's id (``<id>.safetensors``), a manipulation's (in
an offspring's id) — passes :func:`plain_name` where it enters, before any folder is
made: a plain name stays one entry inside the folder it is joined to. Writing elsewhere
is what the explicit folders (``checkpoint_dir``, ``results_dir``) are for.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = ["LISTED", "MANIPULATIONS", "PLAIN", "listed", "plain_name"]

LISTED = 10  # names a message shows before "and K more"

# The study's eight image manipulations (distortions applies them): names a profile's offspring
# take ("all": the eight at once), and part of an offspring's id.
MANIPULATIONS = ("contrast", "illuminant", "blur", "gamma", "salt_pepper", "gaussian", "speckle", "poisson")

PLAIN = "letters, digits, -, _ and ., not starting with ."  # the rule, as a refusal states it
_PLAIN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")  # ASCII: the same file name on every system


def listed(names: Sequence) -> str:
    """The first ``LISTED`` names (ids of any type, shown with str), comma-separated, then
    "and K more" for the rest: a warning or refusal about many networks stays one sentence."""
    more = len(names) - LISTED
    return ", ".join(map(str, names[:LISTED])) + (f" and {more} more" if more > 0 else "")


def plain_name(value: Any, what: str, why: str = "") -> str:
    """``value`` when it is a plain name — a non-empty string of ASCII letters, digits, ``-``,
    ``_`` and ``.``, not starting with ``.`` (so no ``/``, ``..``, absolute path or NUL byte):
    one entry in the folder it is joined to. Otherwise raises ValueError in one sentence:
    "``what`` ``value!r`` should be a plain name (…)", then ``: why`` (what the name becomes,
    what to do instead) when given."""
    if isinstance(value, str) and _PLAIN.fullmatch(value):
        return value
    raise ValueError(f"{what} {value!r} should be a plain name ({PLAIN})" + (f": {why}." if why else "."))
