"""A progress bar for a terminal that never glues itself to the lines printed under it.

The bar lives on the terminal's last line. Anything printed while it shows (results on
stdout, error lines on stderr) is printed inside :meth:`ProgressBar.above`, which wipes the
bar first and draws it again after, as tqdm's ``write`` does; the lines themselves are
never touched. Only ``\\r`` and "erase to end of line" (``ESC [ K``, which every terminal
but ``TERM=dumb`` knows) are written, and the bar is never wider than the terminal, so it
never wraps onto a second line that ``\\r`` could not reach.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from typing import Iterator, TextIO

__all__ = ["ProgressBar", "bar_wanted"]

#: Seconds between two redraws of the bar for progress alone (printing above it redraws at once).
REDRAW_S = 0.1
_ERASE = "\r\x1b[K"


def bar_wanted(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal that can redraw a line (not ``TERM=dumb``)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.environ.get("TERM", "") != "dumb"


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class ProgressBar:
    """``label  done/total [####----]  pct  m:ss left`` on ``stream``, or nothing when disabled.

    Parameters
    ----------
    total : int
        Number of steps (files).
    stream : TextIO
        Where the bar is drawn (standard error).
    enabled : bool
        ``False``: every method does nothing but run the code inside :meth:`above`.
    label : str
        Text before the counts.
    """

    def __init__(self, total: int, stream: TextIO, *, enabled: bool = True, label: str = "classifying") -> None:
        self.total, self.stream, self.enabled, self.label = total, stream, enabled, label
        self.done = 0
        self._start = time.monotonic()
        self._drawn_at = float("-inf")
        self._shown = False

    def line(self, columns: int) -> str:
        """The bar's text for a terminal ``columns`` wide (always shorter than that)."""
        frac = self.done / self.total if self.total else 1.0
        counts = f"{self.done}/{self.total}"
        elapsed = time.monotonic() - self._start
        tail = f"{frac:4.0%}"
        if 0 < self.done < self.total:
            tail += f"  {_clock(elapsed / self.done * (self.total - self.done))} left"
        fixed = len(self.label) + len(counts) + len(tail) + 8  # spaces and the brackets
        width = min(40, columns - 1 - fixed)
        if width >= 10:
            filled = int(frac * width)
            return f"{self.label}  {counts} [{'#' * filled}{'-' * (width - filled)}]  {tail}"
        return f"{self.label} {counts}"[: max(columns - 1, 0)]

    def _draw(self) -> None:
        columns = shutil.get_terminal_size(fallback=(80, 24)).columns
        self.stream.write(_ERASE + self.line(columns))
        self.stream.flush()
        self._drawn_at, self._shown = time.monotonic(), True

    def _wipe(self) -> None:
        if self._shown:
            self.stream.write(_ERASE)
            self.stream.flush()
            self._shown = False

    def update(self, n: int = 1) -> None:
        """Count ``n`` more steps done and draw the bar: at once when it is not on screen (or
        the last step is done), else at most every :data:`REDRAW_S`."""
        self.done += n
        if self.enabled and (not self._shown or self.done >= self.total
                             or time.monotonic() - self._drawn_at >= REDRAW_S):
            self._draw()

    @contextlib.contextmanager
    def above(self) -> Iterator[None]:
        """Print inside this block: the bar is wiped first, and the next :meth:`update` draws
        it again under what was printed."""
        if not self.enabled:
            yield
            return
        self._wipe()
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # stdout may be a closed pipe; the bar is secondary
                sys.stdout.flush()

    def close(self) -> None:
        """Wipe the bar, leaving the line empty for whatever is printed next."""
        if self.enabled:
            self._wipe()
