"""Mapping of tart's exit codes and messages to the :mod:`vms_core.errors` hierarchy.

tart prints its errors on stderr (``tart run`` also on stdout) and exits 2 for
"does not exist", "is not running" and "already running", 1 for everything else
(tart spec 1.4 and 6). The texts are what tell the cases apart; the exit code is
kept on every error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from vms_core.errors import (
    BackendCommandError,
    CommandAlreadyRunningError,
    CommandNotFoundError,
    CommandNotRunningError,
    VMDiedError,
    VMError,
)
from vms_tart.runner import CommandResult


class VMRunningError(CommandAlreadyRunningError):
    """tart refused because the VM is running (e.g. ``tart delete`` of a running VM)."""


class NoIPAddressError(BackendCommandError):
    """``tart ip`` found no address (the guest has no DHCP lease yet, or never will)."""


class AgentUnreachableError(BackendCommandError):
    """``tart exec`` could not reach the Tart Guest Agent through the control socket."""


class VMLimitError(VMDiedError):
    """``tart run`` was refused by the host's VM limit (Apple allows 2 macOS guests)."""


class SpawnError(BackendCommandError):
    """The host could not start a tart command at all (an OSError from exec(2), e.g.
    E2BIG: an argument list longer than the kernel passes)."""


class VMExistsError(BackendCommandError):
    """Cloning would overwrite an existing VM, and the ``overwrite`` option forbids it."""


NOT_FOUND = re.compile(r'the specified VM "[^"]*" does not exist')
# Also matches suspend's doubled text: VM "VM "<name>" is not running" is not running.
NOT_RUNNING = re.compile(r'VM ".*" is not running')
ALREADY_RUNNING = re.compile(r'VM "[^"]*" is already running')
IS_RUNNING = re.compile(r'VM "[^"]*" is running')
NO_IP = re.compile(r"no IP address found")
AGENT_UNREACHABLE = re.compile(r"Failed to connect to the VM using its control socket")
#: ``tart stop``'s SIGKILL fallback found the process already gone.
ALREADY_GONE = re.compile(r"failed to forcefully terminate the VM .*No such process")
VM_LIMIT = re.compile(r"The number of VMs exceeds the system limit")
#: The simulator's ``exec`` when the VM ended under the command.
STOPPED_DURING_EXEC = re.compile(r'VM ".*" stopped while the command was running')

_CLASSIFIERS: tuple[tuple[re.Pattern[str], type[BackendCommandError], str], ...] = (
    (NOT_FOUND, CommandNotFoundError, "VM does not exist"),
    (NOT_RUNNING, CommandNotRunningError, "VM is not running"),
    (ALREADY_RUNNING, CommandAlreadyRunningError, "VM is already running"),
    (IS_RUNNING, VMRunningError, "VM is running"),
    (NO_IP, NoIPAddressError, "no IP address found"),
    (AGENT_UNREACHABLE, AgentUnreachableError, "guest agent unreachable"),
)


def command_error(
    argv: Sequence[str], exit_code: int | None, output: str, what: str = "tart command failed"
) -> BackendCommandError:
    """The typed error for a failed tart command, keeping argv, exit code and output tail."""
    for pattern, error_type, meaning in _CLASSIFIERS:
        if pattern.search(output):
            return error_type(argv, exit_code, output, message=f"{what}: {meaning}")
    return BackendCommandError(argv, exit_code, output, message=what)


def result_error(result: CommandResult, what: str = "tart command failed") -> BackendCommandError:
    return command_error(result.argv, result.exit_code, result.stderr or result.stdout, what)


def check(result: CommandResult, what: str = "tart command failed") -> CommandResult:
    """Return ``result`` if it exited 0, else raise its typed error."""
    if not result.ok:
        raise result_error(result, what)
    return result


def run_exit_error(
    argv: Sequence[str], exit_status: int | None, output_tail: str, what: str
) -> VMError:
    """The error for a ``tart run`` that exited while we depended on it.

    Refusals tart reports before the VM starts (missing, already running) keep their
    specific types; the VM limit and everything else are :class:`VMDiedError`.
    """
    if NOT_FOUND.search(output_tail) or ALREADY_RUNNING.search(output_tail):
        return command_error(argv, exit_status, output_tail, what)
    if VM_LIMIT.search(output_tail):
        return VMLimitError(f"{what}: the host's VM limit was reached", exit_status, output_tail)
    return VMDiedError(what, exit_status, output_tail)
