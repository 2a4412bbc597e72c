"""Progress bars: a log file gets a few lines per bar, a terminal gets the live bar."""

from __future__ import annotations

import io

from noisyarl.utils.progress import progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def redraws(stream: io.StringIO) -> int:
    return stream.getvalue().count("\r")


def test_a_bar_written_to_a_log_redraws_only_at_start_and_end():
    log = io.StringIO()
    for _ in progress(range(2000), file=log, desc="work"):
        pass
    assert "2000/2000" in log.getvalue()
    assert redraws(log) <= 3


def test_a_bar_on_a_terminal_keeps_redrawing():
    terminal = FakeTerminal()
    for _ in progress(range(2000), file=terminal, desc="work", mininterval=0, miniters=1):
        pass
    assert redraws(terminal) > 100


def test_a_disabled_bar_writes_nothing():
    log = io.StringIO()
    assert list(progress(range(5), enabled=False, file=log)) == list(range(5))
    assert log.getvalue() == ""
