"""Timing and fault injection for the simulator, per VM and per command.

A :class:`FaultPlan` is plain data. In-process, the runner consults the object directly;
for the ``fake-tart`` executable the plan is saved as JSON to a file that every
``fake-tart`` process reads: the file named by ``$FAKE_TART_FAULTS``, else
``<TART_HOME>/fake-tart/faults.json``. One-shot faults (``times=N``) are counted down in
that file under a lock, so they fire N times across all processes.

Live guest events (a VM crashing or shutting down *now*) are not part of the plan; see
:meth:`FaultPlan.crash_vm` and friends, which reach the running VM directly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FAULTS_ENV = "FAKE_TART_FAULTS"


class FaultPlanError(ValueError):
    """The fault plan file cannot be read as a plan (its text names the file)."""


DEFAULT_CRASH_MESSAGE = (
    'Error Domain=VZErrorDomain Code=1 "The virtual machine stopped unexpectedly."'
)
DEFAULT_SNAPSHOT_FAILURE = (
    "Invalid virtual machine configuration. Unsupported console device in configuration."
)
DEFAULT_RESTORE_FAILURE = (
    'Error Domain=VZErrorDomain Code=12 "The virtual machine failed to restore with error '
    '\u201cinvalid argument\u201d."'
)


@dataclasses.dataclass
class Timing:
    """How long simulated things take, in seconds of the simulator's clock."""

    #: From ``run`` taking the lock until the guest has booted (agent reachable).
    boot_delay: float = 0.0
    #: From boot until the guest's DHCP lease exists (``ip`` answers).
    ip_delay: float = 0.0
    #: tart's pause between ``ip`` attempts (1 s for real).
    ip_poll_interval: float = 1.0
    #: tart's ``stop`` lock polling interval (100 ms for real).
    stop_poll_interval: float = 0.1
    #: From SIGUSR2 (guest shutdown request) until the guest has powered off.
    shutdown_delay: float = 0.0
    #: How long ``exec`` tries before reporting that the agent is unreachable.
    agent_connect_delay: float = 0.0
    #: DHCP lease duration: how long ``ip`` keeps answering after the VM stopped.
    lease_seconds: float = 86400.0


#: Defaults for the executable: a boot and a DHCP lease that take a moment, as for real.
EXECUTABLE_TIMING = Timing(boot_delay=0.2, ip_delay=0.3)
#: Defaults in-process: nothing takes time unless a plan says so.
IN_PROCESS_TIMING = Timing()


@dataclasses.dataclass
class VMFaults:
    """Everything that can go wrong with, or be slow for, one VM."""

    boot_delay: float | None = None
    ip_delay: float | None = None
    #: The guest never gets a DHCP lease (e.g. a DUID client identifier, tart#912).
    no_ip: bool = False
    #: A stale or wrong lease: ``ip`` answers this address, running or not (tart#172).
    stale_ip: str | None = None
    #: Override whether the guest agent runs (None: as the disk's image says).
    agent: bool | None = None
    #: ``exec`` fails to reach the agent this many more times.
    exec_failures: int = 0
    #: ``suspend`` fails inside ``run`` with this reason (VM killed, exit 1).
    snapshot_failure: str | None = None
    #: Resuming from a snapshot fails with this error (snapshot kept, exit 1).
    restore_failure: str | None = None
    #: The ``run`` process dies on its own this many seconds after starting.
    crash_after: float | None = None
    crash_message: str = DEFAULT_CRASH_MESSAGE
    #: A leftover ``control.sock`` is not replaced by ``run``; exec fails until removed.
    stale_control_socket: bool = False
    #: ``run`` claims the VM is already running (tart#967).
    already_running: bool = False
    #: ``run`` fails with the host VM limit (tart#1217).
    vm_limit: bool = False
    #: The guest ignores SIGUSR2's shutdown request (e.g. a dialog nobody answers).
    ignore_shutdown_request: bool = False
    #: The hard stop on SIGINT never completes, so ``stop`` must fall back to SIGKILL.
    stuck_on_stop: bool = False

    def is_default(self) -> bool:
        return self == VMFaults()


@dataclasses.dataclass
class CommandFault:
    """A rule that changes what one ``fake-tart <command>`` invocation does.

    ``kind`` is ``"fail"`` (exit with ``exit_code``/``stdout``/``stderr`` without doing
    anything), ``"hang"`` (sleep ``seconds`` first, forever if infinite, then proceed) or
    ``"malformed_json"`` (proceed, but cut ``--format json`` output short).
    """

    command: str
    kind: str = "fail"
    vm: str | None = None
    exit_code: int = 1
    stdout: str = ""
    stderr: str = ""
    seconds: float = math.inf
    #: How many more invocations this rule applies to; None: every one.
    times: int | None = 1

    def matches(self, command: str, vm_names: tuple[str, ...]) -> bool:
        return self.command == command and (self.vm is None or self.vm in vm_names)


class FaultPlan:
    """Timing overrides and faults; optionally saved to ``path`` for the executable."""

    def __init__(self, path: Path | str | None = None, home: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        #: The TART_HOME whose running VMs the live events (:meth:`crash_vm`, ...) reach.
        self.home = Path(home) if home is not None else None
        self.timing_overrides: dict[str, float] = {}
        self.vms: dict[str, VMFaults] = {}
        self.commands: list[CommandFault] = []
        #: The host refuses to run more than this many macOS VMs at once (None: no limit).
        self.macos_vm_limit: int | None = None
        self._lock = threading.RLock()
        #: Which version of the file the plan holds (see :meth:`refresh`).
        self._loaded_version: tuple[int, ...] | None = None
        if self.path is not None and self.path.exists():
            self._load()

    # -- construction and persistence -------------------------------------------------

    @staticmethod
    def default_path(home: Path | str) -> Path:
        return Path(home) / "fake-tart" / "faults.json"

    @classmethod
    def for_home(cls, home: Path | str) -> FaultPlan:
        """The plan every ``fake-tart`` using ``home`` reads (unless $FAKE_TART_FAULTS)."""
        return cls(cls.default_path(home), home=home)

    @classmethod
    def from_environment(cls, home: Path, environ: dict[str, str] | None = None) -> FaultPlan:
        """The plan the executable obeys."""
        env = os.environ if environ is None else environ
        path = env.get(FAULTS_ENV) or cls.default_path(home)
        return cls(path, home=home)

    def to_json(self) -> dict[str, Any]:
        return {
            "timing": dict(self.timing_overrides),
            "vms": {
                name: dataclasses.asdict(f) for name, f in self.vms.items() if not f.is_default()
            },
            "commands": [_command_to_json(c) for c in self.commands],
            "macos_vm_limit": self.macos_vm_limit,
        }

    def _apply_json(self, data: dict[str, Any]) -> None:
        known_timing = {f.name for f in dataclasses.fields(Timing)}
        self.timing_overrides = {
            k: float(v) for k, v in data.get("timing", {}).items() if k in known_timing
        }
        self.vms = {name: VMFaults(**fields) for name, fields in data.get("vms", {}).items()}
        self.commands = [_command_from_json(c) for c in data.get("commands", [])]
        limit = data.get("macos_vm_limit")
        self.macos_vm_limit = int(limit) if limit is not None else None

    def _file_version(self) -> tuple[int, ...] | None:
        assert self.path is not None
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise FaultPlanError(f"cannot read the fault plan {self.path}: {error}") from error
        return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)

    def _load(self) -> None:
        assert self.path is not None
        version = self._file_version()
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as error:
            raise FaultPlanError(f"cannot read the fault plan {self.path}: {error}") from error
        try:
            data = json.loads(text) if text.strip() else {}
            if not isinstance(data, dict):
                raise TypeError(f"expected a JSON object, not {type(data).__name__}")
            self._apply_json(data)
        except (ValueError, TypeError, AttributeError) as error:
            raise FaultPlanError(f"the fault plan {self.path} is not valid: {error}") from error
        self._loaded_version = version

    def refresh(self) -> None:
        """Re-read the file if it changed since this plan last read or wrote it.

        Costs one stat(2): the in-process runner calls it before every command, so a
        plan written by another object or process applies from the next command on,
        as it does for the executable (which reads the file on every command).
        """
        if self.path is None:
            return
        with self._lock:
            version = self._file_version()
            if version == self._loaded_version:
                return
            if version is None:  # removed: the executable would now see no plan
                self._apply_json({})
                self._loaded_version = None
                return
            self._load()

    def _save(self) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(self.to_json(), indent=2))
        temporary.replace(self.path)
        self._loaded_version = self._file_version()

    @contextlib.contextmanager
    def _mutation(self) -> Iterator[None]:
        """Change the plan; with a file, re-read it under a lock first and save after."""
        with self._lock:
            if self.path is None:
                yield
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path.with_name(self.path.name + ".lock"), "a") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                self._load()
                yield
                self._save()

    # -- timing -------------------------------------------------------------------------

    def set_timing(self, **seconds: float) -> FaultPlan:
        """Override :class:`Timing` fields for every VM, e.g. ``set_timing(boot_delay=2)``."""
        known = {f.name for f in dataclasses.fields(Timing)}
        unknown = sorted(set(seconds) - known)
        if unknown:
            raise ValueError(f"unknown timing {unknown}; known: {sorted(known)}")
        with self._mutation():
            self.timing_overrides.update({k: float(v) for k, v in seconds.items()})
        return self

    def timing(self, base: Timing, vm: str | None = None) -> Timing:
        """``base`` with this plan's overrides (and ``vm``'s own delays) applied."""
        with self._lock:
            timing = dataclasses.replace(base, **self.timing_overrides)
            faults = self.vms.get(vm) if vm is not None else None
        if faults is not None and faults.boot_delay is not None:
            timing.boot_delay = faults.boot_delay
        if faults is not None and faults.ip_delay is not None:
            timing.ip_delay = faults.ip_delay
        return timing

    # -- per-VM faults -------------------------------------------------------------------

    def for_vm(self, name: str) -> VMFaults:
        """A copy of ``name``'s faults (defaults when none were set)."""
        with self._lock:
            return dataclasses.replace(self.vms.get(name, VMFaults()))

    def set_vm(self, name: str, **fields: Any) -> FaultPlan:
        """Set any :class:`VMFaults` fields for ``name``."""
        with self._mutation():
            self.vms[name] = dataclasses.replace(self.vms.get(name, VMFaults()), **fields)
        return self

    def boot_delay(self, name: str, seconds: float) -> FaultPlan:
        return self.set_vm(name, boot_delay=seconds)

    def ip_delay(self, name: str, seconds: float) -> FaultPlan:
        return self.set_vm(name, ip_delay=seconds)

    def no_ip(self, name: str) -> FaultPlan:
        return self.set_vm(name, no_ip=True)

    def stale_ip(self, name: str, ip: str) -> FaultPlan:
        return self.set_vm(name, stale_ip=ip)

    def agent_absent(self, name: str) -> FaultPlan:
        return self.set_vm(name, agent=False)

    def fail_exec(self, name: str, times: int = 1) -> FaultPlan:
        return self.set_vm(name, exec_failures=times)

    def fail_snapshot(self, name: str, reason: str = DEFAULT_SNAPSHOT_FAILURE) -> FaultPlan:
        return self.set_vm(name, snapshot_failure=reason)

    def fail_restore(self, name: str, error: str = DEFAULT_RESTORE_FAILURE) -> FaultPlan:
        return self.set_vm(name, restore_failure=error)

    def crash_after(
        self, name: str, seconds: float, message: str = DEFAULT_CRASH_MESSAGE
    ) -> FaultPlan:
        return self.set_vm(name, crash_after=seconds, crash_message=message)

    def stale_control_socket(self, name: str) -> FaultPlan:
        return self.set_vm(name, stale_control_socket=True)

    def already_running(self, name: str) -> FaultPlan:
        return self.set_vm(name, already_running=True)

    def vm_limit_reached(self, name: str) -> FaultPlan:
        return self.set_vm(name, vm_limit=True)

    def ignore_shutdown_request(self, name: str) -> FaultPlan:
        return self.set_vm(name, ignore_shutdown_request=True)

    def stuck_on_stop(self, name: str) -> FaultPlan:
        return self.set_vm(name, stuck_on_stop=True)

    def limit_macos_vms(self, limit: int | None) -> FaultPlan:
        """Enforce the host's macOS VM limit (Apple allows 2) for every ``run``."""
        with self._mutation():
            self.macos_vm_limit = limit
        return self

    def clear(self, name: str | None = None) -> FaultPlan:
        """Forget ``name``'s faults, or the whole plan."""
        with self._mutation():
            if name is None:
                self.timing_overrides.clear()
                self.vms.clear()
                self.commands.clear()
                self.macos_vm_limit = None
            else:
                self.vms.pop(name, None)
                self.commands = [c for c in self.commands if c.vm != name]
        return self

    def take_exec_failure(self, name: str) -> bool:
        """Whether this ``exec`` on ``name`` must fail (and count it)."""
        with self._lock:  # the common case, no failures planned, touches no file
            if self.vms.get(name, VMFaults()).exec_failures <= 0:
                return False
        with self._mutation():
            faults = self.vms.get(name)
            if faults is None or faults.exec_failures <= 0:
                return False
            faults.exec_failures -= 1
            return True

    # -- per-command faults ----------------------------------------------------------------

    def fail_command(
        self,
        command: str,
        *,
        exit_code: int = 1,
        stderr: str = "",
        stdout: str = "",
        vm: str | None = None,
        times: int | None = 1,
    ) -> FaultPlan:
        """Make ``command`` (e.g. ``"stop"``) exit with ``exit_code`` and these texts."""
        return self._add(CommandFault(command, "fail", vm, exit_code, stdout, stderr, times=times))

    def hang_command(
        self,
        command: str,
        *,
        seconds: float = math.inf,
        vm: str | None = None,
        times: int | None = 1,
    ) -> FaultPlan:
        """Make ``command`` sleep ``seconds`` (forever by default) before doing its job."""
        return self._add(CommandFault(command, "hang", vm, seconds=seconds, times=times))

    def malformed_json(
        self, command: str, *, vm: str | None = None, times: int | None = 1
    ) -> FaultPlan:
        """Make ``command --format json`` (``list``/``get``) print truncated JSON."""
        return self._add(CommandFault(command, "malformed_json", vm, times=times))

    def _add(self, fault: CommandFault) -> FaultPlan:
        with self._mutation():
            self.commands.append(fault)
        return self

    def take_command_faults(self, command: str, vm_names: tuple[str, ...]) -> list[CommandFault]:
        """The rules that apply to this invocation, counting down one-shot ones."""
        with self._lock:
            if not any(c.matches(command, vm_names) for c in self.commands):
                return []
        with self._mutation():
            taken: list[CommandFault] = []
            remaining: list[CommandFault] = []
            for fault in self.commands:
                if fault.matches(command, vm_names) and fault.times != 0:
                    taken.append(dataclasses.replace(fault))
                    if fault.times is not None:
                        fault.times -= 1
                if fault.times != 0:
                    remaining.append(fault)
            self.commands = remaining
            return taken

    # -- live guest events -----------------------------------------------------------------

    def crash_vm(self, name: str, message: str = DEFAULT_CRASH_MESSAGE) -> bool:
        """Make ``name``'s ``run`` die now: ``message`` on stderr, exit 1."""
        return self._guest_event(name, {"kind": "crash", "message": message})

    def shutdown_guest(self, name: str) -> bool:
        """The guest powers itself off now (``guest has stopped the virtual machine``, exit 0)."""
        return self._guest_event(name, {"kind": "shutdown"})

    def guest_error(self, name: str, error: str) -> bool:
        """The framework stops the VM with ``error`` (printed on stdout, exit 0)."""
        return self._guest_event(name, {"kind": "error", "message": error})

    def _guest_event(self, name: str, event: dict[str, str]) -> bool:
        if self.home is None:
            raise ValueError("live guest events need a plan bound to a home (FaultPlan.for_home)")
        from vms_fake.vmrun import deliver_guest_event

        return deliver_guest_event(self.home, name, event)


def _command_to_json(fault: CommandFault) -> dict[str, Any]:
    data = dataclasses.asdict(fault)
    if math.isinf(fault.seconds):
        data["seconds"] = None
    return data


def _command_from_json(data: dict[str, Any]) -> CommandFault:
    data = dict(data)
    if data.get("seconds") is None:
        data["seconds"] = math.inf
    return CommandFault(**data)
