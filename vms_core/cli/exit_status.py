"""The ``vms`` command's exit statuses, and which error leads to which."""

from __future__ import annotations

import enum

from vms_core.errors import (
    BackendNotInstalledError,
    BackendUnavailableError,
    CleanupError,
    ConfigError,
    InvalidNameError,
    OperationTimeoutError,
    VMError,
)


class ExitStatus(enum.IntEnum):
    """Statuses of ``vms`` itself; ``vms run`` otherwise exits with the guest command's."""

    OK = 0
    #: A bug in vms or a backend: an exception outside the VMError hierarchy.
    INTERNAL_ERROR = 1
    #: Bad command line (argparse uses 2 as well), including a bad VM name or image name.
    USAGE = 2
    BACKEND_UNAVAILABLE = 3
    CONFIG = 4
    VM_OPERATION_FAILED = 5
    #: The VM could not be removed: something may be left behind.
    CLEANUP_FAILED = 6
    #: As timeout(1) does.
    TIMEOUT = 124
    #: 128 + SIGINT, as shells report a Ctrl-C.
    INTERRUPTED = 130
    #: 128 + SIGPIPE: stdout's reader went away (``vms list | head -1``).
    BROKEN_PIPE = 141


def exit_status_for(error: BaseException) -> ExitStatus:
    """The status ``vms`` exits with when ``error`` ends a command."""
    if isinstance(error, KeyboardInterrupt):
        return ExitStatus.INTERRUPTED
    if isinstance(error, BackendNotInstalledError | BackendUnavailableError):
        return ExitStatus.BACKEND_UNAVAILABLE
    # InvalidNameError before ConfigError and VMError: it is the user's argument.
    if isinstance(error, InvalidNameError):
        return ExitStatus.USAGE
    if isinstance(error, ConfigError):
        return ExitStatus.CONFIG
    if isinstance(error, CleanupError):
        return ExitStatus.CLEANUP_FAILED
    if isinstance(error, OperationTimeoutError):
        return ExitStatus.TIMEOUT
    # OSError: the host refused an operation (a full disk, a name too long for its
    # filesystem); the message says what, and it is not a bug to report as one.
    if isinstance(error, VMError | OSError):
        return ExitStatus.VM_OPERATION_FAILED
    return ExitStatus.INTERNAL_ERROR


def guest_exit_status(exit_code: int) -> int:
    """A guest command's exit code as a process status: ``-N`` (killed by signal N)
    becomes 128 + N as shells report it; anything else is kept within 0..255."""
    if exit_code < 0:
        return min(128 - exit_code, 255)
    return min(exit_code, 255)
