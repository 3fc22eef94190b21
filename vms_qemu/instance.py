"""One QEMU virtual machine driven through the vms lifecycle."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from vms_core.errors import (
    AlreadyRunningError,
    BackendCommandError,
    NotFoundError,
    NotRunningError,
    OperationTimeoutError,
    VMError,
)
from vms_core.guard import LifecycleGuard
from vms_core.instance import (
    Capabilities,
    CloneInfo,
    ExecResult,
    Properties,
    StopResult,
    decode_guest_output,
)
from vms_core.states import Action, State
from vms_core.waiting import Backoff, Deadline, poll_until
from vms_qemu.channel import ChannelClosedError
from vms_qemu.cmdline import GUEST_ADDRESS, qemu_argv
from vms_qemu.guest import KERNEL_COMMAND_LINE, ensure_guest
from vms_qemu.options import BUILTIN_SOURCE, PortForward, QemuOptions
from vms_qemu.process import (
    QUIT_TIMEOUT,
    QemuProcess,
    died,
    kill_foreign,
    shut_down,
)
from vms_qemu.qga import OUTPUT_LIMIT, AgentCommandError, GuestAgentClient
from vms_qemu.qmp import QMPClient
from vms_qemu.vmdir import VMDirectory, VMMetadata, now_iso

if TYPE_CHECKING:
    from vms_qemu.backend import QemuBackend

logger = logging.getLogger(__name__)
T = TypeVar("T")

CAPABILITIES = Capabilities(suspend=True, exec=True, ip=True, detects_exit=True)
#: One guest-agent handshake attempt during boot; repeated until the boot timeout.
_AGENT_ATTEMPT = 2.0
_MONITOR_TIMEOUT = 10.0
_POLL = Backoff(initial=0.02, factor=1.5, maximum=0.25)
_USERNET_FORWARD = re.compile(r"(TCP|UDP)\[HOST_FORWARD\]\s+\d+\s+(\S+)\s+(\d+)\s+(\S+)\s+(\d+)")


class QemuInstance:
    """A VM in its own directory under the backend's state directory.

    Only the process that started QEMU drives it (stop, suspend, exec); other
    processes see it through :meth:`QemuBackend.list_vms` and can delete it.
    """

    def __init__(self, backend: QemuBackend, name: str, source: str) -> None:
        self._backend = backend
        self._options: QemuOptions = backend.options
        self._vmdir = VMDirectory(self._options.state_path, name)
        self._source = source
        self._guard = LifecycleGuard(name)
        self._process: QemuProcess | None = None
        self._agent: GuestAgentClient | None = None
        self._forwards: list[dict[str, Any]] = []
        self._accelerator: str | None = None
        #: Exit status of a QEMU that ended on its own, until a stop reports it.
        self._unreported_exit: int | None = None
        #: This instance made the directory, so a delete from Initial may remove it.
        self._owns_directory = False
        self._exit_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"QemuInstance({self.id!r}, state={self._guard.state})"

    @property
    def id(self) -> str:
        return self._vmdir.name

    @property
    def suspendable(self) -> bool:
        return True

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    @property
    def directory(self) -> Path:
        return self._vmdir.path

    @property
    def pid(self) -> int | None:
        """QEMU's pid while it runs."""
        process = self._process
        return process.pid if process is not None and process.alive else None

    def state(self) -> State:
        """The lifecycle state; a QEMU that exited on its own makes a Running VM Stopped."""
        if self._guard.state is State.RUNNING and not self._guard.busy:
            self._notice_exit()
        return self._guard.state

    def _notice_exit(self) -> None:
        with self._exit_lock:
            process = self._process
            if process is None or process.alive or self._guard.busy:
                return
            status = process.poll()
            logger.info("%s: QEMU exited on its own with status %s", self.id, status)
            self._unreported_exit = status
            self._forget_run()
            self._guard.set(State.STOPPED)

    # -- clone ---------------------------------------------------------------------------

    def clone(self, *, timeout: float | None = None) -> None:
        """Create the VM's directory with a qcow2 overlay of the source disk."""
        with self._guard.operation(Action.CLONE):
            metadata = self._plan_clone()
            self._vmdir.create()
            self._owns_directory = True
            try:
                # vm.json first: it marks the directory as a VM of ours, so a clone cut
                # short is still listed (as incomplete, no disk yet) and delete_all removes it.
                self._vmdir.write_metadata(metadata)
                backing_format = self._image_format(metadata.backing, timeout)
                if metadata.kernel is None:
                    self._check_boot_sector(metadata.backing, backing_format, timeout)
                staging = self._vmdir.disk.with_suffix(".qcow2.partial")
                self._run_image_tool(
                    [
                        "create",
                        "-q",
                        "-f",
                        "qcow2",
                        "-b",
                        metadata.backing,
                        "-F",
                        backing_format,
                        str(staging),
                    ],
                    timeout,
                )
                staging.replace(self._vmdir.disk)
            except BaseException:
                self._vmdir.remove()
                self._owns_directory = False
                raise

    def _plan_clone(self) -> VMMetadata:
        options = self._options
        kernel: str | None
        initrd: str | None
        kernel_args: str | None
        if self._source == BUILTIN_SOURCE:
            # Built once per user and cache; not counted against the clone timeout.
            guest = ensure_guest(options.cache_path, qemu_img=options.qemu_img)
            backing = str(guest.base_disk)
            kernel = str(options.kernel) if options.kernel else str(guest.kernel)
            if options.kernel:
                initrd = str(options.initrd) if options.initrd else None
            else:
                initrd = str(guest.initrd)
            kernel_args = options.kernel_args or KERNEL_COMMAND_LINE
        else:
            image = Path(self._source).expanduser()
            if image.is_dir():
                raise SourceImageError(
                    f"source {self._source!r} is a directory, not a disk image file"
                )
            if not image.is_file():
                raise NotFoundError(f"source disk image {self._source!r} does not exist")
            backing = str(image.resolve())
            kernel = str(Path(options.kernel).resolve()) if options.kernel else None
            initrd = str(Path(options.initrd).resolve()) if options.initrd else None
            kernel_args = options.kernel_args or (KERNEL_COMMAND_LINE if kernel else None)
        for path in (kernel, initrd):
            if path and not Path(path).is_file():
                raise NotFoundError(f"{path} does not exist")
        return VMMetadata(
            name=self.id,
            source=self._source,
            disk=str(self._vmdir.disk.resolve()),
            backing=backing,
            kernel=kernel,
            initrd=initrd,
            kernel_args=kernel_args,
            memory=options.memory,
            cpus=options.cpus,
            forwards=options.forwards,
            created=now_iso(),
        )

    def _image_format(self, image: str, timeout: float | None) -> str:
        info = json.loads(self._run_image_tool(["info", "--output=json", image], timeout))
        return str(info.get("format", "qcow2"))

    def _check_boot_sector(self, image: str, image_format: str, timeout: float | None) -> None:
        """Refuse a disk the BIOS cannot boot (no 55 AA signature in its first sector).

        Any file is a valid raw image to qemu-img, so without this a text file or a blank
        disk boots to "No bootable device" and only the boot timeout ends the wait.
        """
        first_sector = self._vmdir.path / "first-sector.tmp"
        try:
            self._run_image_tool(
                [
                    "dd",
                    "-f",
                    image_format,
                    "-O",
                    "raw",
                    "bs=512",
                    "count=1",
                    f"if={image}",
                    f"of={first_sector}",
                ],
                timeout,
            )
            sector = first_sector.read_bytes()
        finally:
            first_sector.unlink(missing_ok=True)
        if sector[510:512] != b"\x55\xaa":
            raise SourceImageError(
                f"source {self._source!r} ({image_format}) has no boot sector, so it cannot "
                "boot without a kernel: give a bootable disk image, or set qemu.kernel "
                "(and qemu.initrd) to boot it as a data disk"
            )

    def _run_image_tool(self, args: list[str], timeout: float | None) -> str:
        argv = [self._options.qemu_img, *args]
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=False
            )
        except FileNotFoundError as err:
            raise BackendCommandError(
                argv, None, str(err), message="qemu-img not found (Debian package qemu-utils)"
            ) from err
        except subprocess.TimeoutExpired as err:
            raise OperationTimeoutError(f"{' '.join(argv)} took over {timeout:g}s") from err
        if result.returncode != 0:
            raise BackendCommandError(argv, result.returncode, result.stderr)
        return result.stdout

    # -- start -----------------------------------------------------------------------

    def start(self, *, timeout: float | None = None) -> None:
        """Boot (or, from Suspended, restore) the VM; returns when its guest agent answers."""
        with self._guard.operation(Action.START) as op:
            metadata = self._vmdir.read_metadata()
            other = self._vmdir.running_pid()
            if other is not None:
                raise AlreadyRunningError(f"{self.id} is already running as QEMU pid {other}")
            resume = op.previous is State.SUSPENDED
            deadline = Deadline(self._options.boot_timeout if timeout is None else timeout)
            self._vmdir.clear_runtime_files()
            self._vmdir.prepare_sockets()
            self._accelerator = accelerator = self._backend.accelerator()
            state_fd = os.open(self._vmdir.suspend_state, os.O_RDONLY) if resume else None
            try:
                argv = qemu_argv(
                    qemu=self._options.qemu,
                    accelerator=accelerator,
                    metadata=metadata,
                    vmdir=self._vmdir,
                    forwards=[PortForward.parse(text) for text in metadata.forwards],
                    incoming_fd=state_fd,
                )
                logger.debug("%s: %s", self.id, argv)
                process = QemuProcess.spawn(
                    argv, self._vmdir, pass_fds=() if state_fd is None else (state_fd,)
                )
            finally:
                if state_fd is not None:
                    os.close(state_fd)
            self._process = process
            try:
                self._boot(process, deadline, resume=resume)
                if resume:
                    self._vmdir.suspend_state.unlink()
            except BaseException:
                # Includes KeyboardInterrupt: no QEMU may outlive a failed start.
                self._abort_start(process)
                raise

    def _boot(self, process: QemuProcess, deadline: Deadline, *, resume: bool) -> None:
        monitor = _connect_when_listening(self._monitor, self._vmdir.qmp_socket, process, deadline)
        with monitor:
            if resume:
                self._finish_incoming(monitor, process, deadline)
            self._forwards = _read_forwards(monitor)
        agent = _connect_when_listening(
            lambda: GuestAgentClient.connect(str(self._vmdir.agent_socket)),
            self._vmdir.agent_socket,
            process,
            deadline,
        )
        self._agent = agent
        while True:
            if not process.alive:
                raise died(process, "QEMU exited during boot")
            remaining = _remaining(deadline)
            if remaining <= 0:
                raise OperationTimeoutError(
                    f"{self.id}: guest agent did not answer within the boot timeout "
                    f"{deadline.timeout:g}s (serial log: {self._vmdir.serial_log})"
                )
            try:
                agent.sync(timeout=min(_AGENT_ATTEMPT, remaining))
                return
            except OperationTimeoutError:
                continue
            except ChannelClosedError as err:
                raise died(process, "QEMU closed the guest agent channel during boot") from err

    def _finish_incoming(
        self, monitor: QMPClient, process: QemuProcess, deadline: Deadline
    ) -> None:
        def loaded() -> str | None:
            if not process.alive:
                raise died(process, "QEMU exited while restoring the suspended state")
            status = monitor.status()
            return None if status == "inmigrate" else status

        status = poll_until(
            loaded,
            timeout=_remaining(deadline),
            what=f"{self.id} to restore its state",
            backoff=_POLL,
        )
        if status != "paused":
            raise VMError(f"{self.id}: restoring the suspended state ended in status {status}")
        monitor.command("cont")

    def _abort_start(self, process: QemuProcess) -> None:
        logger.info("%s: start failed; killing QEMU pid %d", self.id, process.pid)
        process.kill()
        self._forget_run()

    # -- stop ------------------------------------------------------------------------

    def stop(self, *, timeout: float | None = None) -> StopResult:
        """ACPI power-down; after ``timeout`` (the graceful period) quit, then kill QEMU."""
        with self._guard.operation(Action.STOP) as op:
            if op.noop:
                status, self._unreported_exit = self._unreported_exit, None
                return StopResult(
                    exit_status=status, exited_on_its_own=status is not None, noop=True
                )
            process = self._require_process()
            exited_on_its_own = not process.alive
            self._close_agent()
            graceful = self._options.stop_timeout if timeout is None else timeout
            outcome = shut_down(process, graceful_timeout=graceful)
            output = process.output_tail()
            self._forget_run()
            self._unreported_exit = None
            return StopResult(
                exit_status=outcome.exit_status,
                exited_on_its_own=exited_on_its_own,
                forced=outcome.forced,
                output_tail=output,
            )

    # -- suspend ---------------------------------------------------------------------

    def suspend(self, *, timeout: float | None = None) -> None:
        """Pause, save the VM's state to ``suspend.state``, then end QEMU."""
        with self._guard.operation(Action.SUSPEND) as op:
            if op.noop:
                return
            process = self._require_process()
            deadline = Deadline(self._options.suspend_timeout if timeout is None else timeout)
            partial = self._vmdir.partial_suspend_state
            try:
                with self._monitor() as monitor:
                    self._save_state(monitor, partial, deadline)
                    # Complete on disk before QEMU goes: a crash now still leaves Suspended.
                    partial.replace(self._vmdir.suspend_state)
                    monitor.command("quit")
            except BaseException:
                partial.unlink(missing_ok=True)
                op.on_failure = self._recover_after_failed_suspend(process)
                raise
            self._close_agent()
            if process.wait(QUIT_TIMEOUT) is None:
                process.kill()
            self._forget_run()

    def _save_state(self, monitor: QMPClient, partial: Path, deadline: Deadline) -> None:
        monitor.command("stop")
        # QEMU 7.2 has no file: migration URI; hand it an open file instead of a shell.
        state_fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            monitor.command("getfd", {"fdname": "suspend"}, fds=[state_fd])
        finally:
            os.close(state_fd)
        monitor.command("migrate", {"uri": "fd:suspend"})

        def finished() -> bool | None:
            info = monitor.command("query-migrate")
            status = info.get("status")
            if status == "completed":
                return True
            if status in ("failed", "cancelled"):
                raise VMError(
                    f"{self.id}: saving the state failed: {info.get('error-desc', status)}"
                )
            return None

        try:
            poll_until(
                finished,
                timeout=_remaining(deadline),
                what=f"{self.id} to save its state",
                backoff=_POLL,
            )
        except OperationTimeoutError:
            monitor.command("migrate_cancel")
            raise
        with open(partial, "rb") as saved:
            os.fsync(saved.fileno())

    def _recover_after_failed_suspend(self, process: QemuProcess) -> State:
        """Resume the guest if QEMU is still there; the state to report."""
        if process.alive:
            try:
                with self._monitor() as monitor:
                    monitor.command("cont")
                return State.RUNNING
            except (OSError, VMError) as err:
                logger.warning("%s: could not resume after failed suspend: %s", self.id, err)
                process.kill()
        self._unreported_exit = process.poll()
        self._forget_run()
        return State.STOPPED

    # -- delete ----------------------------------------------------------------------

    def delete(self, *, timeout: float | None = None) -> None:
        """Remove every file of the VM (killing its QEMU first from ErrorUnknown)."""
        with self._guard.operation(Action.DELETE) as op:
            if op.previous is State.INITIAL and not self._owns_directory:
                # Never cloned by this instance: a directory of that name is someone else's.
                raise NotFoundError(f"{self.id} was never cloned; nothing to delete")
            self._close_agent()
            if self._process is not None:
                self._process.kill()
            other = self._vmdir.running_pid()
            if other is not None and op.previous is not State.ERROR_UNKNOWN:
                raise AlreadyRunningError(
                    f"{self.id} is running as QEMU pid {other} (started elsewhere); stop it first"
                )
            kill_foreign(self._vmdir)
            self._forget_run()
            self._vmdir.remove()
            self._owns_directory = False
            self._unreported_exit = None

    # -- exec and properties ---------------------------------------------------------

    def exec(
        self,
        command: str,
        *args: str,
        timeout: float | None = None,
        check: bool = False,
        stdin: str | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> ExecResult:
        """Run ``command`` in the guest through the guest agent; output is captured whole.

        A command the guest cannot start (not found) gives exit code 127, like a shell.
        """
        argv = (command, *args)
        agent, process = self._agent, self._process
        state = self.state()
        if state is not State.RUNNING or agent is None:
            raise NotRunningError(f"{self.id} is {state}, not Running")
        try:
            finished = agent.run(
                command,
                list(args),
                stdin=None if stdin is None else stdin.encode(),
                timeout=timeout,
            )
            result = ExecResult(
                argv,
                finished.exit_code,
                decode_guest_output(finished.stdout),
                decode_guest_output(finished.stderr),
            )
            truncated = [
                name
                for name, cut in (
                    ("stdout", finished.stdout_truncated),
                    ("stderr", finished.stderr_truncated),
                )
                if cut
            ]
        except AgentCommandError as err:
            if err.command != "guest-exec":
                raise
            result, truncated = ExecResult(argv, 127, "", err.description + "\n"), []
        except OperationTimeoutError:
            raise  # the guest command timed out (and was killed); QEMU is fine
        except (ChannelClosedError, OSError) as err:
            if process is not None:
                process.wait(QUIT_TIMEOUT)  # the channel closes just before QEMU exits
            if self.state() is not State.RUNNING:
                raise NotRunningError(f"{self.id} stopped while running {command}") from err
            raise
        if truncated:
            raise OutputTruncatedError(result, truncated)
        if stdout is not None and result.stdout:
            stdout.write(result.stdout)
        if stderr is not None and result.stderr:
            stderr.write(result.stderr)
        return result.check() if check else result

    def properties(self) -> Properties:
        """Clone info; while running, the host side of user-mode networking and forwards."""
        clone_info = CloneInfo(source=self._source, name=self.id)
        extras: dict[str, Any] = {
            "directory": str(self._vmdir.path),
            "serial_log": str(self._vmdir.serial_log),
        }
        if self.state() is not State.RUNNING:
            return Properties(clone_info=clone_info, extras=extras)
        forwards = list(self._forwards)
        extras.update(
            accelerator=self._accelerator,
            pid=self.pid,
            guest_ip=GUEST_ADDRESS,
            forwards=forwards,
            ports={f["guest_port"]: f["host_port"] for f in forwards},
        )
        ip = forwards[0]["host_address"] if forwards else "127.0.0.1"
        return Properties(clone_info=clone_info, ip=ip, extras=extras)

    # -- helpers ---------------------------------------------------------------------

    def _monitor(self) -> QMPClient:
        return QMPClient.connect(str(self._vmdir.qmp_socket), timeout=_MONITOR_TIMEOUT)

    def _require_process(self) -> QemuProcess:
        if self._process is None:
            raise NotRunningError(f"{self.id} has no QEMU process in this interpreter")
        return self._process

    def _close_agent(self) -> None:
        agent, self._agent = self._agent, None
        if agent is not None:
            agent.close()

    def _forget_run(self) -> None:
        self._close_agent()
        self._process = None
        self._forwards = []
        self._vmdir.clear_runtime_files()


class SourceImageError(VMError):
    """The clone source is not a disk image this backend can boot."""


class OutputTruncatedError(VMError):
    """The guest command wrote more than qemu-ga keeps (OUTPUT_LIMIT bytes per stream).

    ``result`` holds the exit code and the output as far as it was kept.
    """

    def __init__(self, result: ExecResult, streams: list[str]) -> None:
        self.result = result
        self.streams = streams
        super().__init__(
            f"guest command {' '.join(result.argv)} wrote more than {OUTPUT_LIMIT // 2**20} MiB "
            f"to {' and '.join(streams)} (exit code {result.exit_code}); qemu-ga keeps only "
            "that much, so the output is incomplete. Write large output to a file in the guest"
        )


def _connect_when_listening(
    connect: Callable[[], T], path: Path, process: QemuProcess, deadline: Deadline
) -> T:
    """Connect to a socket QEMU creates at startup (it may exist a moment before it listens)."""

    def attempt() -> T | None:
        if not process.alive:
            raise died(process, f"QEMU exited before listening on {path.name}")
        try:
            return connect()
        except (FileNotFoundError, ConnectionRefusedError):
            return None

    return poll_until(
        attempt, timeout=_remaining(deadline), what=f"QEMU to listen on {path.name}", backoff=_POLL
    )


def _remaining(deadline: Deadline) -> float:
    remaining = deadline.remaining()
    return float("inf") if remaining is None else remaining


def _read_forwards(monitor: QMPClient) -> list[dict[str, Any]]:
    """The forwards as QEMU set them up (a requested host port 0 shows the port it picked)."""
    text = monitor.command("human-monitor-command", {"command-line": "info usernet"})
    return [
        {
            "protocol": proto.lower(),
            "host_address": host,
            "host_port": int(host_port),
            "guest_address": guest,
            "guest_port": int(guest_port),
        }
        for proto, host, host_port, guest, guest_port in _USERNET_FORWARD.findall(str(text))
    ]
