"""Progress bars that stay quiet in logs.

On a terminal a bar redraws itself in place. When standard error is a file or a pipe (a
``nohup`` log, CI, a job scheduler) every redraw would be one more carriage-return line, so
there the bar is redrawn at most every :data:`LOG_INTERVAL_S` seconds, plus once when it
closes: a long job leaves a few lines per stage instead of thousands.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm

#: Seconds between two redraws of a bar whose output is not a terminal.
LOG_INTERVAL_S = 60.0


def writes_to_terminal(stream: Any = None) -> bool:
    """Whether ``stream`` (default: standard error, where bars go) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def progress(iterable: Any = None, *, enabled: bool = True, **options: Any) -> tqdm:
    """A tqdm bar over ``iterable`` (``total=`` alone for a manual bar); ``enabled`` False
    draws nothing. When its output (``file=``, default standard error) is not a terminal it
    redraws at most every :data:`LOG_INTERVAL_S` seconds.

    >>> sum(progress(range(3), enabled=False))
    3
    """
    if not writes_to_terminal(options.get("file")):
        options = {"mininterval": LOG_INTERVAL_S, "maxinterval": LOG_INTERVAL_S, **options}
    return tqdm(iterable, disable=not enabled, **options)


__all__ = ["LOG_INTERVAL_S", "progress", "writes_to_terminal"]
