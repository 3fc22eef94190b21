"""Progress lines: the same transcript on a pipe and a terminal, a spinner only on a terminal."""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Callable

import pytest

from vms_core.cli.progress import DEFAULT_WIDTH, ERASE_LINE, Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def ticking_clock(step: float = 0.5) -> Callable[[], float]:
    """Each reading is ``step`` seconds after the previous one."""
    ticks = itertools.count()
    return lambda: next(ticks) * step


def test_plain_lines_with_the_step_duration() -> None:
    stream = io.StringIO()
    progress = Progress(stream, clock=ticking_clock())
    assert not progress.live
    with progress.step("Starting vm-1") as step:
        pass
    progress.say(f"Running after {step.elapsed:.1f}s")  # one tick after the step began
    assert stream.getvalue() == "vms: Starting vm-1\nvms: Running after 0.5s\n"


def test_quiet_writes_nothing() -> None:
    stream = io.StringIO()
    progress = Progress(stream, quiet=True)
    with progress.step("Starting vm-1"):
        progress.say("Running")
    assert stream.getvalue() == ""


def test_a_terminal_gets_a_spinner_that_is_erased_for_the_plain_line() -> None:
    stream = Terminal()
    progress = Progress(stream, interval=60, delay=0)
    assert progress.live
    with progress.step("Starting vm-1"):
        pass
    text = stream.getvalue()
    # At least the first frame was drawn (with the running time), then replaced by the line.
    assert text.startswith(f"{ERASE_LINE}| Starting vm-1 ")
    assert text.endswith(f"{ERASE_LINE}vms: Starting vm-1\n")


def test_the_spinner_stops_when_the_step_fails() -> None:
    stream = Terminal()
    progress = Progress(stream, interval=60, delay=0)
    with pytest.raises(RuntimeError), progress.step("Cloning vm-1"):
        raise RuntimeError("clone failed")
    assert stream.getvalue().endswith("vms: Cloning vm-1\n")


def test_a_broken_stderr_does_not_fail_the_work() -> None:
    stream = io.StringIO()
    stream.close()
    Progress(stream).say("Running")  # no exception


def test_a_quick_step_draws_no_spinner() -> None:
    stream = Terminal()
    progress = Progress(stream, delay=60)
    with progress.step("Deleting vm-1"):
        pass
    assert stream.getvalue() == f"{ERASE_LINE}vms: Deleting vm-1\n"


def test_the_spinner_fits_the_terminal_width() -> None:
    stream = Terminal()
    progress = Progress(stream, interval=60, delay=0)
    with progress.step("Cloning vm-1 from " + "x" * 200):
        pass
    spinner_frame = stream.getvalue().split(ERASE_LINE)[1]
    assert len(spinner_frame) < DEFAULT_WIDTH
    assert spinner_frame.endswith("s")  # the running time is kept, the label is cut


def test_a_terminal_without_a_size_still_shows_the_label(monkeypatch: pytest.MonkeyPatch) -> None:
    # A pty whose size was never set (`stty size` says 0 0), as in many containers.
    class SizelessTerminal(Terminal):
        def fileno(self) -> int:
            return 2

    monkeypatch.setattr(os, "get_terminal_size", lambda fd: os.terminal_size((0, 0)))
    stream = SizelessTerminal()
    progress = Progress(stream, interval=60, delay=0)
    with progress.step("Starting vm-1"):
        pass
    spinner_frame = stream.getvalue().split(ERASE_LINE)[1]
    assert spinner_frame.startswith("| Starting vm-1 ")
