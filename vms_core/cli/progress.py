"""Progress on stderr: one line per step with its duration, a live indicator on a terminal.

The transcript is the same whether or not stderr is a terminal; on a terminal a
spinner with the running time is drawn (and erased) while a step waits.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from vms_core.waiting import Clock

PREFIX = "vms: "
SPINNER_FRAMES = "|/-\\"
#: ANSI: carriage return, then erase to the end of the line.
ERASE_LINE = "\r\x1b[K"
#: When the terminal's width cannot be read, or reads 0 (unset).
DEFAULT_WIDTH = 80


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


class Step:
    """A step in progress; ``elapsed`` is read from the progress clock."""

    def __init__(self, doing: str, clock: Clock) -> None:
        self.doing = doing
        self._clock = clock
        self._start = clock()

    @property
    def elapsed(self) -> float:
        return self._clock() - self._start


class Progress:
    """Writes ``vms: ...`` lines to ``stream`` unless ``quiet``.

    ``live`` (default: whether ``stream`` is a terminal) draws a spinner during
    :meth:`step` once it has lasted ``delay`` seconds (quick steps do not flicker),
    redrawn every ``interval`` seconds and cut to the terminal's width (a wrapped
    line could not be erased).
    """

    def __init__(
        self,
        stream: IO[str],
        *,
        quiet: bool = False,
        live: bool | None = None,
        clock: Clock = time.monotonic,
        interval: float = 0.1,
        delay: float = 0.3,
    ) -> None:
        self._stream = stream
        self.quiet = quiet
        self.live = is_terminal(stream) if live is None else live
        self._clock = clock
        self._interval = interval
        self._delay = delay
        self._start = clock()
        self._write_lock = threading.Lock()

    @property
    def total_elapsed(self) -> float:
        return self._clock() - self._start

    def say(self, message: str) -> None:
        if self.quiet:
            return
        self._write(f"{PREFIX}{message}\n")

    @contextmanager
    def step(self, doing: str) -> Iterator[Step]:
        """Announce ``doing``; the caller reports the outcome with ``step.elapsed``."""
        step = Step(doing, self._clock)
        if self.quiet:
            yield step
            return
        if not self.live:
            self.say(doing)
            yield step
            return
        stop = threading.Event()
        spinner = threading.Thread(
            target=self._spin, args=(step, stop), name="vms-progress", daemon=True
        )
        spinner.start()
        try:
            yield step
        finally:
            stop.set()
            spinner.join()
            # Replace the spinner with the plain line, so the transcript matches a pipe's.
            self._write(f"{ERASE_LINE}{PREFIX}{doing}\n")

    def _spin(self, step: Step, stop: threading.Event) -> None:
        if stop.wait(self._delay):
            return
        width = self._width()
        frame = 0
        while True:
            glyph = SPINNER_FRAMES[frame % len(SPINNER_FRAMES)]
            elapsed = f" {step.elapsed:.1f}s"
            text = f"{glyph} {step.doing}"[: max(width - len(elapsed) - 1, 0)]
            self._write(f"{ERASE_LINE}{text}{elapsed}")
            frame += 1
            if stop.wait(self._interval):
                return

    def _width(self) -> int:
        try:
            columns = os.get_terminal_size(self._stream.fileno()).columns
        except (AttributeError, OSError, ValueError):  # not a real terminal (e.g. a test double)
            return DEFAULT_WIDTH
        # 0: a pty whose size was never set (`stty size` says 0 0); it does not mean "no room".
        return columns if columns > 0 else DEFAULT_WIDTH

    def _write(self, text: str) -> None:
        with self._write_lock:
            try:
                self._stream.write(text)
                self._stream.flush()
            except (OSError, ValueError):
                # Progress is a courtesy: a closed or broken stderr must not fail the VM work.
                pass
