"""Progress you can see: tqdm bars in JupyterLab, plain lines in batch runs.

``pipeline.run`` sets ``PARADOX_BATCH=1`` for the kernels papermill starts, and
``PARADOX_PROGRESS`` to a file it follows and prints from. There, notebook widgets
would only add comm traffic (nbclient can block on widget messages: jupyter/nbclient#312)
and noise in the book, so a bar instead writes plain text lines to that file — never to
the notebook — at most one every ``BATCH_INTERVAL`` seconds unless its caller asks for
every update (``mininterval=0``: the training bar, one line per finished network).
"""

from __future__ import annotations

import heapq
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm as _plain_tqdm
from tqdm.auto import tqdm as _tqdm

__all__ = ["BATCH_FORMAT", "BATCH_INTERVAL", "Follower", "Makespan", "batch_mode", "clock", "elapsed", "tqdm"]

BATCH_INTERVAL = 30.0  # seconds between two lines of one bar in a batch run
# "cells: 120/370 (32 %) [05:01<10:40]": elapsed<remaining
BATCH_FORMAT = "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f} %) [{elapsed}<{remaining}{postfix}]"
# the same without tqdm's estimate, for bars whose caller puts its own in the postfix (Makespan)
_OWN_ETA = {"batch": BATCH_FORMAT.replace("<{remaining}", ""),
            "live": "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"}


def batch_mode() -> bool:
    """True inside a chapter executed by ``pipeline.run`` (no live frontend)."""
    return os.environ.get("PARADOX_BATCH") == "1"


def tqdm(*args, own_eta: bool = False, **kwargs):
    """``tqdm.auto.tqdm``; in batch mode a plain bar writing lines to ``PARADOX_PROGRESS``
    (disabled when that is unset, or when the caller disables it). ``own_eta``: leave out
    tqdm's time left — the caller writes its own into the postfix (see :class:`Makespan`)."""
    if own_eta:
        kwargs.setdefault("bar_format", _OWN_ETA["batch" if batch_mode() else "live"])
    if not batch_mode():
        return _tqdm(*args, **kwargs)
    target = os.environ.get("PARADOX_PROGRESS")
    if kwargs.get("disable") or not target:
        kwargs["disable"] = True
        return _tqdm(*args, **kwargs)
    kwargs.setdefault("mininterval", BATCH_INTERVAL)
    kwargs.pop("leave", None)  # every line stays: it is a log
    kwargs.setdefault("bar_format", BATCH_FORMAT)
    return _plain_tqdm(*args, file=_stream(target), leave=True, **kwargs)


class _Lines:
    """A bar's file in a batch run. tqdm writes each state as "\r" + state, ending the previous
    line, not its own: a follower splitting on line ends would print every state only when the
    next arrives (a finished network's line half an hour late). Here each state is a whole line."""

    encoding = "utf-8"

    def __init__(self, handle) -> None:
        self.handle = handle

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()  # tqdm pads a shorter state with spaces
        if line:
            self.handle.write(line + "\n")

    def flush(self) -> None:
        self.handle.flush()


_STREAMS: dict[str, _Lines] = {}


def _stream(path: str) -> _Lines:
    """One line-buffered append handle per progress file, for the kernel's lifetime."""
    if path not in _STREAMS:
        _STREAMS[path] = _Lines(open(path, "a", buffering=1, encoding="utf-8"))  # noqa: SIM115 (kept open on purpose)
    return _STREAMS[path]


class Follower:
    """Follow a progress file from another thread and hand each new line to ``emit``.

    tqdm ends its updates with carriage returns, not newlines: both end a line here.
    Used as a context manager around the chapters' execution (the last lines are read
    on exit).
    """

    def __init__(self, path: str | os.PathLike, emit: Callable[[str], None], interval: float = 1.0):
        self.path, self.emit, self.interval = Path(path), emit, interval
        self._offset, self._rest, self._last, self._stop = 0, "", "", threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> Follower:
        self.path.touch()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._read()
        if self._rest.strip() and self._rest.strip() != self._last:
            self.emit(self._rest.strip())

    def _follow(self) -> None:
        while not self._stop.wait(self.interval):
            self._read()

    def _read(self) -> None:
        with open(self.path, encoding="utf-8", errors="replace") as stream:
            stream.seek(self._offset)
            text = stream.read()
            self._offset = stream.tell()
        *lines, self._rest = re.split(r"[\r\n]+", self._rest + text)
        for line in map(str.strip, lines):
            if line and line != self._last:  # a bar's close repeats its last state
                self._last = line
                self.emit(line)


class Makespan:
    """The time a queue of similar jobs has left when ``slots`` run at once: the chapter's
    ETA on each "networks" line.

    tqdm's own estimate, elapsed × left ÷ done, assumes one job at a time: with two workers it
    says 4 h 18 min when the first of six 51-minute trainings ends, where about 1 h is left.
    Here the first ``slots`` jobs start together and each later one when a job ends (one that
    waits for its parent is taken to start then too); every job takes the mean duration of
    those finished; the estimate is when the last would end. Times in seconds
    (``time.monotonic`` unless given)."""

    def __init__(self, jobs: int, slots: int, now: float | None = None):
        self.queued, self.running, self.durations = jobs, [], []
        self._fill(max(slots, 1), time.monotonic() if now is None else now)

    def _fill(self, slots: int, now: float) -> None:
        while self.queued and len(self.running) < slots:
            self.running.append(now)
            self.queued -= 1

    def finished(self, slots: int, now: float | None = None) -> float:
        """One job ended — taken to be the one running longest, as alike jobs end in the order
        they started; returns the seconds left for the rest with ``slots`` at once (a
        cluster's workers may have come or gone; none counts as one)."""
        now, slots = time.monotonic() if now is None else now, max(slots, 1)
        self.durations.append(now - self.running.pop(0))
        self._fill(slots, now)
        if not self.running:
            return 0.0
        mean = sum(self.durations) / len(self.durations)
        ends = [max(start + mean, now) for start in self.running]  # a late job ends "now", not in the past
        ends += [now] * (slots - len(ends))
        heapq.heapify(ends)
        for _ in range(self.queued):  # each queued job takes the first slot to come free
            heapq.heapreplace(ends, ends[0] + mean)
        return max(ends) - now


def elapsed(seconds: float) -> str:
    """``seconds`` as people read a wall time: "48 s", "12 min 3 s", "2 h 05 min"."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def clock() -> str:
    return time.strftime("%H:%M:%S")
