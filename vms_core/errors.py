"""One exception hierarchy for every backend, rooted in :class:`VMError`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vms_core.states import Action, State

#: How much of a failing command's stderr an error keeps.
STDERR_TAIL_BYTES = 1024


def tail(text: str, limit: int = STDERR_TAIL_BYTES) -> str:
    """The last ``limit`` characters of ``text``, stripped of surrounding blank space."""
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


class VMError(Exception):
    """Base of every error this library raises."""


class InvalidNameError(VMError, ValueError):
    """A VM name or image source the backend's tool would misread."""


class NotFoundError(VMError):
    """The virtual machine (or image) does not exist."""


class NotRunningError(VMError):
    """The operation needs a running virtual machine."""


class AlreadyRunningError(VMError):
    """The virtual machine is already running (e.g. started by someone else)."""


class TransitionNotAllowedError(VMError):
    """The transition table forbids ``action`` in ``state``; nothing was run."""

    def __init__(self, action: Action, state: State, instance_id: str | None = None) -> None:
        self.action = action
        self.state = state
        self.instance_id = instance_id
        where = f" for {instance_id}" if instance_id else ""
        super().__init__(f"{action} is not allowed in state {state}{where}")


class BackendCommandError(VMError):
    """A backend tool command failed; keeps the argv, exit code and a stderr tail."""

    def __init__(
        self,
        argv: Sequence[str],
        exit_code: int | None,
        stderr: str = "",
        message: str | None = None,
    ) -> None:
        self.argv = tuple(argv)
        self.exit_code = exit_code
        self.stderr_tail = tail(stderr)
        text = message or "command failed"
        detail = f"{' '.join(self.argv)} exited with {exit_code}"
        if self.stderr_tail:
            detail += f": {self.stderr_tail}"
        super().__init__(f"{text} ({detail})")


class CommandNotFoundError(BackendCommandError, NotFoundError):
    """The tool said the VM does not exist."""


class CommandNotRunningError(BackendCommandError, NotRunningError):
    """The tool said the VM is not running."""


class CommandAlreadyRunningError(BackendCommandError, AlreadyRunningError):
    """The tool said the VM is already running."""


class OperationTimeoutError(VMError, TimeoutError):
    """An operation did not finish within the caller's timeout."""


class WaitError(VMError):
    """Waiting for a state failed: a wrong intermediate state or a terminal one."""

    def __init__(self, message: str, state: State) -> None:
        self.state = state
        super().__init__(message)


class NotSupportedError(VMError):
    """The backend does not have this capability (e.g. suspend)."""


class BackendUnavailableError(VMError):
    """The backend is installed but cannot run here (e.g. its binary is missing)."""


class BackendNotInstalledError(VMError):
    """No backend of that name is installed, or it failed to import."""


class ConfigError(VMError, ValueError):
    """Bad backend options or configuration file."""


class VMDiedError(VMError):
    """The VM's own process exited while an operation depended on it."""

    def __init__(self, message: str, exit_status: int | None, output_tail: str = "") -> None:
        self.exit_status = exit_status
        self.output_tail = tail(output_tail)
        text = f"{message} (exit status {exit_status})"
        if self.output_tail:
            text += f": {self.output_tail}"
        super().__init__(text)


class CleanupError(VMError):
    """``cleanup`` could not bring the VM to Deleted."""

    def __init__(self, message: str, state: State) -> None:
        self.state = state
        super().__init__(message)
