"""Profiles: where a profile's files live (the lead's full module replaces this stub at merge)."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def checkpoint_folder(profile: str, checkpoint_dir: str = "") -> Path:
    """A profile's checkpoint folder (not made): ``checkpoint_dir``, else ``checkpoints/<profile>``."""
    return Path(checkpoint_dir) if checkpoint_dir else ROOT / "checkpoints" / profile


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list",
               dict: "a mapping"}


def _is_type(expected: Any) -> bool:
    """Whether ``expected`` is a type (``int``, ``int | None``, ``dict[str, Any]``), not a default value."""
    return isinstance(expected, type) or typing.get_origin(expected) is not None


def _optional(expected: Any) -> bool:
    """Whether the type ``expected`` is ``X | None``."""
    return (typing.get_origin(expected) in (types.UnionType, typing.Union)
            and type(None) in typing.get_args(expected))


def _plain(expected: Any) -> type:
    """The class a type asks for: ``X`` of ``X | None``, ``dict`` of ``dict[str, Any]``."""
    if typing.get_origin(expected) in (types.UnionType, typing.Union):
        (expected,) = [a for a in typing.get_args(expected) if a is not type(None)]
    return typing.get_origin(expected) or expected


def same_kind(expected: Any, value: Any) -> bool:
    """Whether ``value`` may stand where ``expected`` is wanted: an int takes no float (``2.0``
    is refused: it hides a typo, which YAML and papermill pass through) and no bool, a float
    takes ints, a bool only a bool, anything else an instance of its class.

    ``expected``: a type (a ``TrainConfig`` annotation: ``int``, ``int | None``,
    ``dict[str, Any]``; None stands only for ``X | None``) or a default value (a chapter
    parameter's: its class is wanted, None stands beside any, and a default None takes anything).
    """
    if not _is_type(expected):
        if expected is None or value is None:
            return True
        expected = type(expected)
    elif value is None:
        return _optional(expected)
    kind = _plain(expected)
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def kind_name(expected: Any) -> str:
    """What ``expected`` (as in :func:`same_kind`) asks for, in words: "an integer", "a string or
    null" (``str | None``), …; another class by its name."""
    kind = _plain(expected) if _is_type(expected) else type(expected)
    name = _KIND_NAMES.get(kind, kind.__name__)
    return f"{name} or null" if _is_type(expected) and _optional(expected) else name
