"""Polling with backoff against an injectable clock, so tests take no wall time."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from vms_core.errors import OperationTimeoutError

T = TypeVar("T")

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Exponential delays: ``initial``, ``initial*factor``, ... capped at ``maximum``."""

    initial: float = 0.05
    factor: float = 2.0
    maximum: float = 1.0

    def __post_init__(self) -> None:
        finite = all(math.isfinite(v) for v in (self.initial, self.factor, self.maximum))
        if not finite or self.initial <= 0 or self.factor < 1 or self.maximum < self.initial:
            raise ValueError(f"invalid backoff {self}")

    def delays(self) -> Iterator[float]:
        delay = self.initial
        while True:
            yield delay
            delay = min(delay * self.factor, self.maximum)


@dataclasses.dataclass(frozen=True)
class Deadline:
    """A point in time on ``clock``; None-timeout means never."""

    timeout: float | None
    clock: Clock = time.monotonic
    start: float = dataclasses.field(default=-1.0)

    def __post_init__(self) -> None:
        if self.start < 0:
            object.__setattr__(self, "start", self.clock())

    def remaining(self) -> float | None:
        if self.timeout is None:
            return None
        return max(0.0, self.start + self.timeout - self.clock())

    @property
    def expired(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0


def check_timeout(timeout: float | None) -> None:
    """Refuse a timeout no wait could honour (negative, NaN, infinite: use None)."""
    if timeout is not None and not (math.isfinite(timeout) and timeout >= 0):
        raise ValueError(f"timeout must be a finite number >= 0 or None, got {timeout!r}")


def poll_until(
    check: Callable[[], T | None],
    *,
    timeout: float | None,
    what: str,
    backoff: Backoff | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> T:
    """Call ``check`` now and after each backoff delay until it returns non-None.

    ``check`` may raise to abort. Raises :class:`OperationTimeoutError` naming
    ``what`` when ``timeout`` seconds pass first; the last check runs at the deadline.
    """
    check_timeout(timeout)
    deadline = Deadline(timeout, clock)
    for delay in (backoff or Backoff()).delays():
        result = check()
        if result is not None:
            return result
        remaining = deadline.remaining()
        if remaining is not None and remaining <= 0:
            raise OperationTimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        sleep(delay if remaining is None else min(delay, remaining))
    raise AssertionError("unreachable: Backoff.delays is infinite")  # pragma: no cover
