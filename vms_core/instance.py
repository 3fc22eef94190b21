"""The ``Instance`` protocol and the values its methods return."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import IO, Any, Protocol, runtime_checkable

from vms_core.errors import BackendCommandError
from vms_core.states import State


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a backend's instances can do; checked before a call, never half-done."""

    suspend: bool = False
    exec: bool = True
    ip: bool = True
    #: ``state()`` notices a VM whose process exited on its own.
    detects_exit: bool = True


@dataclasses.dataclass(frozen=True)
class CloneInfo:
    """Where an instance was cloned from."""

    source: str
    name: str

    def __str__(self) -> str:
        return f"source={self.source} name={self.name}"


@dataclasses.dataclass(frozen=True)
class Properties:
    """What is known about an instance; ``ip`` is None while unknown."""

    clone_info: CloneInfo
    ip: str | None = None
    extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)


#: The one rule for turning guest output into ``ExecResult`` text, for every backend:
#: UTF-8, with each undecodable byte kept as a lone surrogate, so
#: ``text.encode("utf-8", GUEST_TEXT_ERRORS)`` gives back exactly what the command printed.
GUEST_TEXT_ERRORS = "surrogateescape"


def decode_guest_output(data: bytes) -> str:
    """Guest output bytes as ``ExecResult`` text (lossless; see ``GUEST_TEXT_ERRORS``)."""
    return data.decode("utf-8", GUEST_TEXT_ERRORS)


@dataclasses.dataclass(frozen=True)
class ExecResult:
    """A finished guest command. A non-zero exit is data, not an error (see ``check``)."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def check(self) -> ExecResult:
        """Raise :class:`BackendCommandError` unless the command exited 0."""
        if self.exit_code != 0:
            raise BackendCommandError(
                self.argv, self.exit_code, self.stderr, message="guest command failed"
            )
        return self


@dataclasses.dataclass(frozen=True)
class StopResult:
    """How a stop went, including the VM run process's own exit status.

    ``exit_status`` is None when no VM process was known (e.g. the stop was a no-op
    from Stopped, or the VM was started by another program).
    """

    exit_status: int | None = None
    #: The VM had already exited before the stop was asked for (crash, guest shutdown).
    exited_on_its_own: bool = False
    #: The graceful timeout ran out and the VM was killed.
    forced: bool = False
    #: The tail of the VM process's output, kept for diagnosis.
    output_tail: str = ""
    #: True when nothing had to be done (already Stopped).
    noop: bool = False

    @property
    def clean(self) -> bool:
        """The VM process (if any) exited 0 and was not killed."""
        return not self.forced and self.exit_status in (None, 0)


@runtime_checkable
class Instance(Protocol):
    """One virtual machine driven through the lifecycle of :mod:`vms_core.states`.

    Mutating operations are serialized per instance and guarded by the transition
    table: a forbidden one raises ``TransitionNotAllowedError`` and runs nothing.
    ``state()``, ``exec()`` and ``properties()`` may run alongside them.
    """

    @property
    def id(self) -> str: ...

    @property
    def suspendable(self) -> bool: ...

    @property
    def capabilities(self) -> Capabilities: ...

    def state(self) -> State: ...

    def clone(self, *, timeout: float | None = None) -> None: ...

    def start(self, *, timeout: float | None = None) -> None: ...

    def stop(self, *, timeout: float | None = None) -> StopResult: ...

    def suspend(self, *, timeout: float | None = None) -> None: ...

    def delete(self, *, timeout: float | None = None) -> None: ...

    def exec(
        self,
        command: str,
        *args: str,
        timeout: float | None = None,
        check: bool = False,
        stdin: str | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> ExecResult: ...

    def properties(self) -> Properties: ...
