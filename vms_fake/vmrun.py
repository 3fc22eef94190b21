"""The life of one ``tart run``: start-up, signals, guest events, and how it ends.

One implementation serves both modes. The ``fake-tart run`` executable feeds it real
signals from a blocking loop (:func:`serve`); in-process, :class:`VMRun` is driven
directly (a signal becomes a method call, handled synchronously by the caller).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vms_fake import guest_processes
from vms_fake.faults import FaultPlan, Timing, VMFaults
from vms_fake.grammar import CommandSpec, PrefixedFailure, TartFailure, UsageFailure
from vms_fake.images import Guest
from vms_fake.locks import PidLock, home_lock, lock_holder
from vms_fake.world import (
    CONFIG,
    CONTROL_SOCKET,
    GUEST_EVENT,
    RUN_INFO,
    SNAPSHOT,
    SUSPENDED,
    TartHome,
    VMIncomplete,
    VMMissing,
    local_run,
    random_mac,
    register_local_run,
    unregister_local_run,
    write_file,
)

logger = logging.getLogger(__name__)

#: The real-time signal that tells a ``fake-tart run`` process to read its guest event.
GUEST_DOORBELL = signal.SIGRTMIN + 3
#: Signals a run handles itself; anything else kills it (e.g. SIGTERM, SIGHUP).
HANDLED_SIGNALS = frozenset({signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2})
_IGNORED_SIGNALS = frozenset({signal.SIGCHLD, signal.SIGWINCH, signal.SIGCONT, signal.SIGURG})

Emit = Callable[[str, str], None]  # (stream "stdout"|"stderr", text)


def read_run_info(directory: Path) -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = json.loads((directory / RUN_INFO).read_text())
    except (OSError, ValueError):
        return None
    return info


def send_signal(directory: Path, pid: int, signum: int) -> None:
    """Signal the ``run`` holding ``directory``: in-process, or a real process by PID.

    Raises ProcessLookupError when there is nobody to signal. A PID below 1 (an OFD
    lock of another process's in-process run) is never passed to kill(2), where it
    would mean a whole process group.
    """
    run = local_run(directory / CONFIG)
    if run is not None:
        run.deliver(signum)
    elif pid > 0:
        os.kill(pid, signum)
    else:
        raise ProcessLookupError(3, "No such process")


def deliver_guest_event(home: Path, name: str, event: dict[str, str]) -> bool:
    """Hand ``event`` to the run of VM ``name``; False if it is not running."""
    directory = Path(home) / "vms" / name
    run = local_run(directory / CONFIG)
    if run is not None:
        run.guest_event(event)
        return True
    pid = lock_holder(directory / CONFIG)
    if pid is None or pid <= 0:
        return False
    (directory / GUEST_EVENT).write_text(json.dumps(event))
    os.kill(pid, GUEST_DOORBELL)
    return True


class VMRun:
    """``tart run <name>`` from validation to exit; thread-safe."""

    def __init__(
        self,
        home: TartHome,
        name: str,
        *,
        suspendable: bool,
        plan: FaultPlan,
        base_timing: Timing,
        emit: Emit,
        in_process: bool,
    ) -> None:
        self.home = home
        self.name = name
        self.suspendable = suspendable
        self.plan = plan
        self.emit = emit
        self.in_process = in_process
        self.timing = plan.timing(base_timing, name)
        self.faults: VMFaults = plan.for_vm(name)
        # Provisional: validate() replaces it by open_vm(), which refuses unusable names.
        self.directory = home.vms_dir / name
        self.token = uuid.uuid4().hex
        #: None while alive; the exit code, or ``-signum`` when killed by a signal.
        self.exit_status: int | None = None
        self.guest: Guest | None = None
        self.os_name = "darwin"  # from config.json, known once validated
        self._lock: PidLock | None = None
        self._started = False
        self._crash_at: float | None = None
        self._shutdown_at: float | None = None
        self._mutex = threading.RLock()
        self.changed = threading.Condition(self._mutex)

    # -- start-up ----------------------------------------------------------------------

    def validate(self, spec: CommandSpec) -> None:
        """Run.validate(): open the VM; a suspended VM forces ``--suspendable``."""
        try:
            self.directory = self.home.open_vm(self.name)
        except (VMMissing, VMIncomplete) as error:
            raise PrefixedFailure(str(error)) from None
        config = self.home.read_config(self.directory)
        self.os_name = str(config.get("os", "darwin"))
        if self.home.state(self.directory) == SUSPENDED:
            self.suspendable = True
        if self.suspendable and self.os_name == "linux":
            raise UsageFailure("You can only suspend macOS VMs", spec)

    def start(self) -> None:
        """Take the lock and boot; raises TartFailure when tart would exit early."""
        with home_lock(self.home.path):
            self._reset_colliding_mac()
            lock = None
            if not self.faults.already_running:
                lock = PidLock.try_acquire(self.directory / CONFIG, per_descriptor=self.in_process)
            if lock is None:
                raise TartFailure(f'VM "{self.name}" is already running!', 2)
            with self._mutex:
                self._lock = lock
                if self.in_process:
                    register_local_run(self.directory / CONFIG, self)
                    _IN_PROCESS_VMS.add(self.directory)
            # Guest commands of an earlier run that was killed outright (no exit handling).
            guest_processes.end_all(self.directory)
        try:
            self._boot()
        except TartFailure as failure:
            self._end(failure.exit_code, stderr=failure.message)
            return
        logger.debug("fake VM %s running (token %s)", self.name, self.token)

    def _reset_colliding_mac(self) -> None:
        config = self.home.read_config(self.directory)
        mac = config.get("macAddress")
        for other, other_mac in self.home.macs_in_use(exclude=self.name).items():
            if other_mac != mac or self.home.holder(self.home.vm_dir(other)) is None:
                continue
            self.emit(
                "stdout",
                "There is already a running VM with the same MAC address!\n"
                "Resetting VM to assign a new MAC address...\n",
            )
            config["macAddress"] = random_mac()
            self.home.write_config(self.directory, config)
            with contextlib.suppress(FileNotFoundError):
                (self.directory / SNAPSHOT).unlink()
            return

    def _boot(self) -> None:
        # Only the held descriptor may touch config.json from now on: closing any other
        # descriptor of it would drop a classic lock.
        assert self._lock is not None
        config = json.loads(os.pread(self._lock.fileno(), 1 << 20, 0))
        self.guest = self.home.guest(self.directory)
        os_name = config.get("os", "darwin")
        self._check_vm_limit(os_name)
        now = self.home.clock.now()
        boot_ready_at = now + self.timing.boot_delay
        if (self.directory / SNAPSHOT).exists():
            self.emit("stdout", "restoring VM state from a snapshot...\n")
            if self.faults.restore_failure is not None:
                raise TartFailure(self.faults.restore_failure)
            (self.directory / SNAPSHOT).unlink()
            self.emit("stdout", "resuming VM...\n")
            boot_ready_at = now
        info = {
            "token": self.token,
            "pid": os.getpid(),
            "started_at": now,
            "boot_ready_at": boot_ready_at,
            "os": os_name,
        }
        write_file(self.directory / RUN_INFO, json.dumps(info))
        if self.guest is not None and not self.faults.no_ip:
            self.home.grant_lease(
                str(config.get("macAddress")),
                boot_ready_at + self.timing.ip_delay,
                self.timing.lease_seconds,
            )
        socket = self.directory / CONTROL_SOCKET
        if not (self.faults.stale_control_socket and socket.exists()):
            write_file(socket, json.dumps({"token": self.token}))
        if self.faults.crash_after is not None:
            self._crash_at = now + self.faults.crash_after
        with self._mutex:
            self._started = True

    def _check_vm_limit(self, os_name: str) -> None:
        others = []
        if self.faults.vm_limit or (os_name == "darwin" and self.plan.macos_vm_limit is not None):
            for other in self.home.local_names():
                directory = self.home.vm_dir(other)
                if other == self.name or self.home.holder(directory) is None:
                    continue
                info = read_run_info(directory)
                if info is not None and info.get("os", "darwin") == "darwin":
                    others.append(other)
        limit = self.plan.macos_vm_limit
        if self.faults.vm_limit or (limit is not None and len(others) >= limit):
            message = "The number of VMs exceeds the system limit"
            if others:
                message += f" (other running VMs: {', '.join(others)})"
            raise TartFailure(message)

    # -- while running -------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.exit_status is None

    def next_deadline(self) -> float | None:
        with self._mutex:
            times = [t for t in (self._crash_at, self._shutdown_at) if t is not None]
            return min(times) if times and self.alive else None

    def tick(self) -> None:
        """Act on timed events that are due (a crash, a guest finishing its shutdown)."""
        with self._mutex:
            if not self.alive:
                return
            now = self.home.clock.now()
            if self._crash_at is not None and now >= self._crash_at:
                self._end(1, stderr=self.faults.crash_message)
            elif self._shutdown_at is not None and now >= self._shutdown_at:
                self._end(0, stdout="guest has stopped the virtual machine")

    def deliver(self, signum: int) -> None:
        """What ``tart run`` does on receiving ``signum``."""
        with self._mutex:
            if not self.alive or signum in _IGNORED_SIGNALS:
                return
            if signum == signal.SIGINT:
                if self.faults.stuck_on_stop and self._started:
                    self.emit("stdout", "Stopping VM...\n")  # ... and nothing more
                    return
                self._end(0, stdout="Stopping VM..." if self._started else None)
            elif signum == signal.SIGUSR1:
                self._snapshot()
            elif signum == signal.SIGUSR2:
                self._request_guest_stop()
            elif signum == GUEST_DOORBELL:
                self._read_event_file()
            else:
                self._die(signum)

    def guest_event(self, event: dict[str, str]) -> None:
        with self._mutex:
            if not self.alive:
                return
            kind = event.get("kind")
            if kind == "crash":
                self._end(1, stderr=event.get("message") or self.faults.crash_message)
            elif kind == "shutdown":
                self._end(0, stdout="guest has stopped the virtual machine")
            elif kind == "error":
                error = event.get("message", "")
                self._end(0, stdout=f"guest has stopped the virtual machine due to error: {error}")

    def _read_event_file(self) -> None:
        path = self.directory / GUEST_EVENT
        try:
            event = json.loads(path.read_text())
            path.unlink()
        except (OSError, ValueError):
            return
        self.guest_event(event)

    def _snapshot(self) -> None:
        reason = self.faults.snapshot_failure
        if reason is None and not self.suspendable:
            reason = (
                "Invalid virtual machine configuration. "
                "Unsupported console device in configuration."
            )
        if reason is not None:
            self._end(1, stdout=f"Failed to suspend the VM: {reason}")
            return
        self.emit("stdout", "pausing VM to take a snapshot...\ncreating a snapshot...\n")
        write_file(self.directory / SNAPSHOT, json.dumps({"token": self.token}))
        self._end(0, stdout="snapshot created successfully! shutting down the VM...")

    def _request_guest_stop(self) -> None:
        self.emit("stdout", "Requesting guest OS to stop...\n")
        if self.guest is None or self.faults.ignore_shutdown_request or not self._started:
            return  # nothing inside listens (no OS installed) or the guest declines
        self._shutdown_at = self.home.clock.now() + self.timing.shutdown_delay
        self.tick()

    # -- the end --------------------------------------------------------------------------

    def _end(self, exit_code: int, *, stdout: str | None = None, stderr: str | None = None) -> None:
        if stdout is not None:
            self.emit("stdout", stdout + "\n")
        if stderr is not None:
            self.emit("stderr", stderr + "\n")
        with contextlib.suppress(FileNotFoundError):
            (self.directory / RUN_INFO).unlink()
        self._release(exit_code)

    def _die(self, signum: int) -> None:
        """Killed by a signal: no output, lock released, control.sock left behind."""
        self._release(-signum)

    def _release(self, status: int) -> None:
        with self._mutex:
            if self.exit_status is not None:
                return
            self.exit_status = status
            if self.in_process:
                unregister_local_run(self.directory / CONFIG, self)
            if self._lock is not None:
                self._lock.release()
            # After the release: an exec whose command this kills sees the VM gone.
            guest_processes.end_all(self.directory)
            _IN_PROCESS_VMS.discard(self.directory)
            self.changed.notify_all()
        logger.debug("fake VM %s exited with status %s", self.name, status)


#: Directories of in-process runs still alive: their guest commands end with Python.
_IN_PROCESS_VMS: set[Path] = set()


@atexit.register
def _end_in_process_guests() -> None:
    for directory in list(_IN_PROCESS_VMS):
        guest_processes.end_all(directory)


def serve(run: VMRun) -> int:
    """Drive ``run`` with real signals until it ends (the executable's main loop).

    The handled signals are blocked before the lock is taken, so from the moment another
    process can see the VM running, its signals are queued for us rather than lost.
    """
    watched = set(HANDLED_SIGNALS) | {GUEST_DOORBELL}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    run.start()
    while run.alive:
        deadline = run.next_deadline()
        if deadline is None:
            received = signal.sigwaitinfo(watched).si_signo
        else:
            timeout = max(0.0, deadline - run.home.clock.now())
            info = signal.sigtimedwait(watched, timeout)
            received = info.si_signo if info is not None else 0
        if received:
            run.deliver(received)
        run.tick()
    assert run.exit_status is not None
    return run.exit_status
