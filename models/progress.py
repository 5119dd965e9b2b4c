"""Progress bars for a terminal, a plain line every few seconds anywhere else.

tqdm redraws its bar with carriage returns; written to a file or a pipe (CI logs, ``> out.txt``,
``docker logs``) every redraw becomes text, hundreds of lines per bar. :func:`progress` is the one
way this project shows progress: a normal tqdm bar when ``stderr`` is a terminal, otherwise one
self-contained line (``desc: 40% 400/1000 [00:04<00:06, 98.1it/s]``) at most every
``every`` seconds and a last line when the loop ends.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

#: seconds between two progress lines when stderr is not a terminal
LINE_EVERY_SECONDS = 10.0

_LINE_FORMAT = ("{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, "
                "{rate_fmt}{postfix}]")
_LINE_FORMAT_NO_TOTAL = "{desc}: {n_fmt} [{elapsed}, {rate_fmt}{postfix}]"


class LineProgress(tqdm):
    """tqdm that prints whole lines (never ``\\r``), throttled to one per ``mininterval``."""

    _printed_n: float | None = None
    _closed_quietly = False

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if self._closed_quietly or self.n == 0:
            return False  # no "0%" line: the first line already says how fast it goes
        self.fp.write((msg if msg else self.__str__()) + "\n")
        self.fp.flush()
        self._printed_n = self.n
        return True

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh=False, **kwargs)  # shown on the next line

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        super().set_description(desc, refresh=False)

    def clear(self, nolock: bool = False) -> None:
        """Nothing to erase: lines are never redrawn."""

    def close(self) -> None:
        if self.disable:
            return
        if self.n != self._printed_n and self.n:
            self._ema_dt = lambda: None  # the summary line shows the overall rate
            self.display()
        self._closed_quietly, self.leave = True, False
        super().close()


def is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def progress(iterable: Iterable[Any] | None = None, *, every: float = LINE_EVERY_SECONDS,
             **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)`` on a terminal; :class:`LineProgress` lines otherwise.

    ``disable=True`` still turns it off entirely (library callers' ``progress=False``).
    """
    if is_terminal() or kwargs.get("disable"):
        return tqdm(iterable, **kwargs)
    total = kwargs.get("total")
    if total is None and iterable is not None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    kwargs.setdefault("bar_format", _LINE_FORMAT if total else _LINE_FORMAT_NO_TOTAL)
    kwargs.update(mininterval=every, maxinterval=every, miniters=1, dynamic_ncols=False)
    kwargs.setdefault("file", sys.stderr)
    return LineProgress(iterable, **kwargs)


def quiet_library_bars() -> None:
    """Off a terminal, also silence the bars libraries draw themselves (transformers'
    "Loading weights"): they would write carriage-return redraws into the log."""
    if not is_terminal():
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
