"""The runner interface: how the tart backend reaches a tart CLI.

Lifecycle code never calls ``subprocess``; it talks to a :class:`TartRunner`.
The default implementation executes a real binary (``tart`` or ``fake-tart``);
``vms_fake`` provides an in-process implementation of the same interface, so the
very same backend code runs against real tart, the simulator executable, and the
simulator in-process.

Exit statuses follow ``subprocess``: a negative value ``-N`` means the process was
killed by signal ``N``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import IO, Protocol, runtime_checkable

from vms_core.backend import Availability


def seconds_text(seconds: float) -> str:
    """A duration for messages: ``102.3s``, ``1.75s``, ``0.986s`` (never 17 digits or e+03)."""
    if seconds < 10:
        return f"{seconds:.3g}s"
    return f"{seconds:.1f}".rstrip("0").rstrip(".") + "s"


@dataclasses.dataclass(frozen=True)
class CommandResult:
    """A finished tart command. ``argv`` includes the binary."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@runtime_checkable
class RunProcess(Protocol):
    """A spawned, long-lived ``tart run <name> ...``."""

    @property
    def argv(self) -> tuple[str, ...]: ...

    @property
    def pid(self) -> int | None: ...

    def poll(self) -> int | None:
        """The exit status if the process has exited (and is reaped), else None."""
        ...

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for exit; the exit status, or None if still alive after ``timeout``."""
        ...

    def send_signal(self, signum: int) -> None:
        """Deliver ``signum``; a process that already exited is not an error."""
        ...

    def kill(self) -> None:
        """SIGKILL and reap."""
        ...

    def output_tail(self) -> str:
        """The last KiB of the process's combined stdout and stderr."""
        ...


@runtime_checkable
class TartRunner(Protocol):
    """Runs tart commands. ``args`` never include the binary."""

    @property
    def binary(self) -> str: ...

    def run(
        self,
        args: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: str | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> CommandResult:
        """Run to completion and capture output (also copied live to ``stdout``/``stderr``).

        A missing binary raises ``BackendUnavailableError``; running past ``timeout``
        kills the command and raises ``OperationTimeoutError``.
        """
        ...

    def spawn(self, args: Sequence[str]) -> RunProcess:
        """Start a long-lived command (``run <name> ...``) detached from our stdin."""
        ...

    def availability(self) -> Availability: ...

    def monotonic(self) -> float:
        """The clock the backend's waits use (virtual in fast in-process simulation)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Sleep on the same clock as :meth:`monotonic`."""
        ...
