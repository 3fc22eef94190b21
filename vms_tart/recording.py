"""A runner that records every tart command another runner executes.

Useful to see (or assert) exactly what the backend asked of tart, to count
commands in benchmarks, and to find the ``tart run`` processes it spawned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import IO

from vms_core.backend import Availability
from vms_tart.runner import CommandResult, RunProcess, TartRunner


class RecordingRunner:
    """A :class:`~vms_tart.runner.TartRunner` passing everything on to ``inner``.

    ``calls`` holds the args (without the binary) of every ``run`` and ``spawn`` in
    order; ``spawned`` the processes ``spawn`` returned. Thread-safe.
    """

    def __init__(
        self,
        inner: TartRunner,
        *,
        before: Callable[[tuple[str, ...]], None] | None = None,
    ) -> None:
        self.inner = inner
        self.calls: list[tuple[str, ...]] = []
        self.spawned: list[RunProcess] = []
        #: Called with each command's args before it runs (e.g. to inject a fault).
        self.before = before
        self._lock = threading.Lock()

    @property
    def binary(self) -> str:
        return self.inner.binary

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.calls)

    def subcommands(self) -> list[str]:
        """The tart subcommand of every call, in order (``["clone", "run", ...]``)."""
        with self._lock:
            return [call[0] for call in self.calls if call]

    def latest_run(self, name: str) -> RunProcess | None:
        """The last ``tart run`` spawned for VM ``name``."""
        with self._lock:
            for process in reversed(self.spawned):
                if name in process.argv[2:3]:
                    return process
        return None

    def _record(self, args: Sequence[str]) -> None:
        call = tuple(args)
        with self._lock:
            self.calls.append(call)
        if self.before is not None:
            self.before(call)

    def run(
        self,
        args: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: str | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> CommandResult:
        self._record(args)
        return self.inner.run(args, timeout=timeout, stdin=stdin, stdout=stdout, stderr=stderr)

    def spawn(self, args: Sequence[str]) -> RunProcess:
        self._record(args)
        process = self.inner.spawn(args)
        with self._lock:
            self.spawned.append(process)
        return process

    def availability(self) -> Availability:
        return self.inner.availability()

    def monotonic(self) -> float:
        return self.inner.monotonic()

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)
