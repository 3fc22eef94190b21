"""The simulator's notion of time: the real clock, or a virtual one that sleeps for free.

Both report seconds since the epoch, because timestamps (DHCP leases, boot times) are
written to disk and read back by other processes; a virtual clock starts at the real
time so such files stay meaningful.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch on this clock."""
        ...

    def sleep(self, seconds: float) -> None: ...


class RealClock:
    """Wall-clock time; ``sleep`` really sleeps."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """Time that only moves when someone sleeps on it (thread-safe).

    Every sleeper advances the one shared time, so with many threads time runs faster
    than any single thread's sleeps suggest; waits only ever end sooner, never later.
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (negative values are ignored)."""
        with self._lock:
            self._now += max(0.0, seconds)

    def advance_to(self, when: float) -> None:
        """Move time forward to ``when`` unless it is already later."""
        with self._lock:
            self._now = max(self._now, when)
