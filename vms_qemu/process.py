"""QEMU processes: spawning one per VM, shutting it down in stages, and never leaking it.

A QEMU started by this interpreter is killed when the interpreter exits (a VM must
not outlive a crashed caller silently). A QEMU started by another process is found
through its pidfile and signalled only after ``/proc/<pid>/cmdline`` proves it is
still that VM's QEMU.
"""

from __future__ import annotations

import atexit
import ctypes
import dataclasses
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence

from vms_core.errors import OperationTimeoutError, VMDiedError, VMError, tail
from vms_core.waiting import Backoff, poll_until
from vms_qemu.qmp import QMPClient
from vms_qemu.vmdir import VMDirectory

logger = logging.getLogger(__name__)

#: After ``quit`` (or a kill) QEMU is given this long to exit.
QUIT_TIMEOUT = 10.0
_POLL = Backoff(initial=0.01, factor=1.5, maximum=0.2)

_live_lock = threading.Lock()
_live: dict[int, QemuProcess] = {}


@dataclasses.dataclass(frozen=True)
class ShutdownOutcome:
    exit_status: int | None
    #: The graceful period ran out: QEMU had to be quit or killed.
    forced: bool


class QemuProcess:
    """A QEMU child of this interpreter, with its exit status."""

    def __init__(self, popen: subprocess.Popen[bytes], vmdir: VMDirectory) -> None:
        self._popen = popen
        self.vmdir = vmdir

    @classmethod
    def spawn(
        cls, argv: Sequence[str], vmdir: VMDirectory, *, pass_fds: Sequence[int] = ()
    ) -> QemuProcess:
        with open(vmdir.qemu_log, "ab") as log:
            # A new session: Ctrl-C reaches Python (which cleans up), not QEMU directly.
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=tuple(pass_fds),
                # The hook takes no locks: it calls a pre-resolved C function and os calls.
                preexec_fn=_die_with_parent_hook(),  # noqa: PLW1509
            )
        process = cls(popen, vmdir)
        with _live_lock:
            _live[popen.pid] = process
        logger.debug("%s: QEMU pid %d", vmdir.name, popen.pid)
        return process

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll(self) -> int | None:
        """QEMU's exit status once it has exited, else None."""
        status = self._popen.poll()
        if status is not None:
            with _live_lock:
                _live.pop(self._popen.pid, None)
        return status

    @property
    def alive(self) -> bool:
        return self.poll() is None

    def wait(self, timeout: float | None) -> int | None:
        """Wait up to ``timeout`` seconds; the exit status, or None if still running."""
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.poll()

    def kill(self) -> int:
        """SIGKILL and reap; the exit status (negative signal number when killed)."""
        if self.poll() is None:
            self._popen.kill()
        status = self._popen.wait()
        self.poll()
        return status

    def output_tail(self) -> str:
        try:
            return tail(self.vmdir.qemu_log.read_text(errors="replace"))
        except OSError:
            return ""


_PR_SET_PDEATHSIG = 1


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A child-side hook making the kernel SIGKILL QEMU when this interpreter dies.

    It covers what the exit hook cannot (SIGKILL, SIGTERM, a crash). The kernel ties
    the signal to the spawning *thread*, so it is armed only from the main thread,
    which lives as long as the process; elsewhere the exit hook is the only guard.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not after fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm


def shut_down(process: QemuProcess, *, graceful_timeout: float) -> ShutdownOutcome:
    """ACPI power button, then QMP ``quit`` after ``graceful_timeout``, then SIGKILL."""
    if not process.alive:
        return ShutdownOutcome(process.poll(), forced=False)
    if _monitor_command(process.vmdir, "system_powerdown"):
        status = process.wait(graceful_timeout)
        if status is not None:
            return ShutdownOutcome(status, forced=False)
        logger.info(
            "%s: guest ignored the power button for %gs; quitting QEMU",
            process.vmdir.name,
            graceful_timeout,
        )
    if _monitor_command(process.vmdir, "quit"):
        status = process.wait(QUIT_TIMEOUT)
        if status is not None:
            return ShutdownOutcome(status, forced=True)
    if process.alive:
        logger.warning("%s: killing QEMU pid %d", process.vmdir.name, process.pid)
    return ShutdownOutcome(process.kill(), forced=True)


def shut_down_foreign(vmdir: VMDirectory, *, graceful_timeout: float) -> bool:
    """Stop a QEMU this interpreter did not start (found by pidfile). True if it had to be
    quit or killed. Its exit status is unknowable here: only its parent can reap it."""
    pid = vmdir.running_pid()
    if pid is None:
        return False
    if _monitor_command(vmdir, "system_powerdown") and wait_until_ended(
        pid, timeout=graceful_timeout
    ):
        return False
    if _monitor_command(vmdir, "quit") and wait_until_ended(pid, timeout=QUIT_TIMEOUT):
        return True
    kill_foreign(vmdir)
    return True


def kill_foreign(vmdir: VMDirectory) -> None:
    """SIGKILL the VM's QEMU if one runs (verified by command line) and wait for it."""
    pid = vmdir.running_pid()
    if pid is not None:
        logger.warning("%s: killing QEMU pid %d", vmdir.name, pid)
        os.kill(pid, signal.SIGKILL)
        if not wait_until_ended(pid, timeout=QUIT_TIMEOUT):
            raise VMError(f"QEMU pid {pid} of {vmdir.name} survived SIGKILL")


def wait_until_ended(pid: int, *, timeout: float) -> bool:
    """Wait for ``pid`` to exit (gone or a zombie); False after ``timeout`` seconds."""
    try:
        poll_until(
            lambda: True if VMDirectory.process_ended(pid) else None,
            timeout=timeout,
            what=f"QEMU pid {pid} to exit",
            backoff=_POLL,
        )
    except OperationTimeoutError:
        return False
    return True


def _monitor_command(vmdir: VMDirectory, command: str) -> bool:
    """Send one QMP command; False when the monitor cannot be reached (QEMU gone or hung)."""
    try:
        with QMPClient.connect(str(vmdir.qmp_socket), timeout=5.0) as monitor:
            monitor.command(command)
    except (OSError, VMError) as err:
        logger.debug("%s: QMP %s failed: %s", vmdir.name, command, err)
        return False
    return True


def live_processes() -> list[QemuProcess]:
    """QEMU children of this interpreter that have not been seen to exit."""
    with _live_lock:
        candidates = list(_live.values())
    return [process for process in candidates if process.alive]


@atexit.register
def _kill_leftovers() -> None:
    for process in live_processes():
        logger.warning(
            "%s: QEMU pid %d still running at interpreter exit; killing it",
            process.vmdir.name,
            process.pid,
        )
        process.kill()
        process.vmdir.clear_runtime_files()


def died(process: QemuProcess, message: str) -> VMDiedError:
    return VMDiedError(f"{process.vmdir.name}: {message}", process.poll(), process.output_tail())
