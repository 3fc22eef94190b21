"""A small, correct in-memory backend: the kit's reference target and the mutants' base.

``MemoryTool`` plays the role of a VM tool such as tart: VMs exist or not, a VM is
running while a live run process holds it and suspended while a snapshot exists
(state is derived, never stored). Every command is counted, and faults can be
injected per command. ``MemoryInstance`` drives it through ``LifecycleGuard`` the
way a real backend drives its tool.
"""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
import threading
from typing import IO, Any

from vms_core import (
    Action,
    Availability,
    BackendBase,
    BackendCommandError,
    Capabilities,
    CloneInfo,
    ExecResult,
    LifecycleGuard,
    NotRunningError,
    NotSupportedError,
    OperationTimeoutError,
    Properties,
    State,
    StopResult,
    VMDetail,
    VMDiedError,
    VMInfo,
)
from vms_core.errors import CommandNotFoundError
from vms_core.testing import DELAY, DIE, FAIL, HANG, Harness

#: The tool command that carries out each action.
COMMAND_FOR = {
    Action.CLONE: "clone",
    Action.START: "run",
    Action.STOP: "stop",
    Action.SUSPEND: "suspend",
    Action.DELETE: "delete",
}


class RunProcess:
    """The long-lived process that keeps one VM running."""

    _pids = itertools.count(1000)

    def __init__(self, name: str) -> None:
        self.name = name
        self.pid = next(self._pids)
        self.exit_status: int | None = None
        self.reaped = False

    def exit(self, status: int) -> None:
        if self.exit_status is None:
            self.exit_status = status

    def wait(self) -> int | None:
        self.reaped = True
        return self.exit_status


@dataclasses.dataclass
class VMRecord:
    source: str
    snapshot: bool = False
    process: RunProcess | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.exit_status is None


class MemoryTool:
    """The simulated VM tool. Thread-safe; commands raise BackendCommandError on failure."""

    def __init__(self) -> None:
        self.vms: dict[str, VMRecord] = {}
        self.processes: list[RunProcess] = []
        self.commands: list[tuple[str, ...]] = []
        self.failures: dict[tuple[str, str], int] = {}
        self.hangs: set[tuple[str, str]] = set()
        self.clock = 0.0
        self.delays: dict[str, float] = {}
        self._lock = threading.RLock()

    # --- commands -----------------------------------------------------------------------

    def _begin(self, argv: tuple[str, ...], name: str) -> None:
        self.commands.append(argv)
        self.clock += self.delays.pop(name, 0.0)
        key = (argv[0], name)
        if key in self.hangs:
            # A command that never finishes: the caller's timeout is what ends it.
            self.hangs.discard(key)
            raise OperationTimeoutError(f"memory {' '.join(argv)} hung")
        if self.failures.get(key, 0) > 0:
            self.failures[key] -= 1
            raise BackendCommandError(("memory", *argv), 1, f"injected failure of {argv[0]}")

    def _record(self, argv: tuple[str, ...], name: str) -> VMRecord:
        record = self.vms.get(name)
        if record is None:
            raise CommandNotFoundError(("memory", *argv), 1, f'VM "{name}" does not exist')
        return record

    def clone(self, source: str, name: str) -> None:
        with self._lock:
            self._begin(("clone", source, name), name)
            self.vms[name] = VMRecord(source)

    def run(self, name: str) -> RunProcess:
        with self._lock:
            argv = ("run", name)
            self._begin(argv, name)
            record = self._record(argv, name)
            if record.running:
                raise BackendCommandError(("memory", *argv), 2, f'VM "{name}" is already running')
            record.snapshot = False  # resuming consumes the snapshot
            record.process = RunProcess(name)
            self.processes.append(record.process)
            return record.process

    def wait_ready(self, name: str) -> None:
        """Wait for the guest to boot (the command a boot that never ends hangs in)."""
        with self._lock:
            argv = ("ready", name)
            self._begin(argv, name)
            if not self._record(argv, name).running:
                raise BackendCommandError(("memory", *argv), 1, f'VM "{name}" is not running')

    def stop(self, name: str) -> None:
        with self._lock:
            argv = ("stop", name)
            self._begin(argv, name)
            record = self._record(argv, name)
            if not record.running or record.process is None:
                raise BackendCommandError(("memory", *argv), 2, f'VM "{name}" is not running')
            record.process.exit(0)

    def suspend(self, name: str) -> None:
        with self._lock:
            argv = ("suspend", name)
            self._begin(argv, name)
            record = self._record(argv, name)
            if not record.running or record.process is None:
                raise BackendCommandError(("memory", *argv), 2, f'VM "{name}" is not running')
            record.snapshot = True
            record.process.exit(0)

    def delete(self, name: str) -> None:
        with self._lock:
            argv = ("delete", name)
            self._begin(argv, name)
            record = self._record(argv, name)
            if record.running:
                raise BackendCommandError(("memory", *argv), 1, f'VM "{name}" is running')
            del self.vms[name]

    def list_vms(self) -> dict[str, str]:
        """Name -> "running" | "suspended" | "stopped"."""
        with self._lock:
            self.commands.append(("list",))
            return {name: self._word(record) for name, record in self.vms.items()}

    def exec(self, name: str, argv: tuple[str, ...], stdin: str | None) -> ExecResult:
        with self._lock:
            full = ("exec", name, *argv)
            self._begin(full, name)
            if not self._record(full, name).running:
                raise BackendCommandError(("memory", *full), 1, f'VM "{name}" is not running')
        if argv[0] == "echo":  # the common case, without a process per call
            return ExecResult(argv, 0, " ".join(argv[1:]) + "\n", "")
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
        return ExecResult(argv, done.returncode, done.stdout, done.stderr)

    @staticmethod
    def _word(record: VMRecord) -> str:
        if record.running:
            return "running"
        return "suspended" if record.snapshot else "stopped"

    # --- faults -------------------------------------------------------------------------

    def crash(self, name: str) -> None:
        with self._lock:
            record = self.vms.get(name)
            if record is not None and record.process is not None:
                record.process.exit(1)

    def fail_next(self, command: str, name: str) -> None:
        with self._lock:
            self.failures[(command, name)] = self.failures.get((command, name), 0) + 1

    def leftover_processes(self) -> list[str]:
        with self._lock:
            return [
                f"run process {p.pid} of {p.name} "
                + ("alive" if p.exit_status is None else "exited but never reaped")
                for p in self.processes
                if not p.reaped
            ]


STATE_OF_WORD = {"running": State.RUNNING, "suspended": State.SUSPENDED, "stopped": State.STOPPED}


class MemoryInstance:
    """A correct instance over :class:`MemoryTool`."""

    def __init__(self, tool: MemoryTool, name: str, source: str, suspendable: bool) -> None:
        self.tool = tool
        self.name = name
        self.source = source
        self.guard = LifecycleGuard(name)
        self.process: RunProcess | None = None
        self._capabilities = Capabilities(suspend=suspendable)

    @property
    def id(self) -> str:
        return self.name

    @property
    def suspendable(self) -> bool:
        return self._capabilities.suspend

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def state(self) -> State:
        process = self.process
        if (
            self.guard.state is State.RUNNING
            and not self.guard.busy
            and process is not None
            and process.exit_status is not None
        ):
            # The VM exited on its own: reap it and report the truth.
            process.wait()
            self.process = None
            self.guard.set(State.STOPPED)
        return self.guard.state

    def clone(self, *, timeout: float | None = None) -> None:
        with self.guard.operation(Action.CLONE):
            self.tool.clone(self.source, self.name)

    def start(self, *, timeout: float | None = None) -> None:
        with self.guard.operation(Action.START) as op:
            process = self.tool.run(self.name)
            try:
                self.tool.wait_ready(self.name)
            except BaseException:
                # Never leave a half-started VM running behind a reverted state. The run
                # consumed any snapshot, so the VM is now stopped, even if it was suspended.
                process.exit(-9)
                process.wait()
                op.on_failure = State.STOPPED
                raise
            self.process = process

    def stop(self, *, timeout: float | None = None) -> StopResult:
        with self.guard.operation(Action.STOP) as op:
            if op.noop:
                return StopResult(noop=True)
            if self._exited_on_its_own():
                return StopResult(exit_status=self._reap(), exited_on_its_own=True)
            self.tool.stop(self.name)
            return StopResult(exit_status=self._reap())

    def suspend(self, *, timeout: float | None = None) -> None:
        if not self.suspendable:
            raise NotSupportedError(f"{self.name} is not suspendable")
        with self.guard.operation(Action.SUSPEND) as op:
            if op.noop:
                return
            if self._exited_on_its_own():
                status = self._reap()
                op.on_failure = State.STOPPED
                raise VMDiedError(f"{self.name} exited before it could be suspended", status)
            self.tool.suspend(self.name)
            self._reap()

    def _exited_on_its_own(self) -> bool:
        return self.process is not None and self.process.exit_status is not None

    def _reap(self) -> int | None:
        process, self.process = self.process, None
        return process.wait() if process is not None else None

    def delete(self, *, timeout: float | None = None) -> None:
        with self.guard.operation(Action.DELETE):
            self.tool.delete(self.name)

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
        state = self.state()
        if state is not State.RUNNING:
            raise NotRunningError(f"cannot exec in {self.name}: it is {state}")
        result = self.tool.exec(self.name, (command, *args), stdin)
        if stdout is not None:
            stdout.write(result.stdout)
        if stderr is not None:
            stderr.write(result.stderr)
        return result.check() if check else result

    def properties(self) -> Properties:
        ip = "10.0.0.2" if self.guard.state is State.RUNNING else None
        return Properties(CloneInfo(self.source, self.name), ip=ip)


@dataclasses.dataclass(frozen=True)
class MemoryOptions:
    name_prefix: str = "mem-"
    source: str = "memory-image"
    suspendable: bool = True


class MemoryBackend(BackendBase):
    name = "memory"
    Options = MemoryOptions
    instance_type: type[MemoryInstance] = MemoryInstance

    def __init__(self, tool: MemoryTool | None = None, **options: object) -> None:
        super().__init__(**options)
        self.tool = tool or MemoryTool()

    @property
    def default_source(self) -> str:
        return str(self.options.source)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(suspend=self.options.suspendable)

    def availability(self) -> Availability:
        return Availability(True)

    def create_instance(self, name: str | None = None, source: str | None = None) -> MemoryInstance:
        return self.instance_type(
            self.tool, name or self.new_name(), source or self.default_source,
            self.options.suspendable,
        )  # fmt: skip

    def list_vms(self, prefix: str | None = None) -> list[VMInfo]:
        return [
            VMInfo(name, STATE_OF_WORD[word], word, word == "running", self.tool.vms[name].source)
            for name, word in sorted(self.tool.list_vms().items())
            if prefix is None or name.startswith(prefix)
        ]

    def get_vm(self, name: str) -> VMDetail:
        for info in self.list_vms(name):
            if info.name == name:
                return VMDetail(info)
        raise CommandNotFoundError(("memory", "get", name), 1, f'VM "{name}" does not exist')

    def _stop_for_delete(self, name: str, stop_timeout: float | None) -> None:
        self.tool.stop(name)

    def _delete_by_name(self, name: str) -> None:
        self.tool.delete(name)


class MemoryFaults:
    """The kit's fault-injection protocol over :class:`MemoryTool`."""

    kinds = frozenset({DIE, FAIL, HANG, DELAY})

    def __init__(self, tool: MemoryTool) -> None:
        self.tool = tool

    def kill_vm(self, name: str) -> None:
        self.tool.crash(name)

    def fail_next(self, name: str, action: Action) -> None:
        self.tool.fail_next(COMMAND_FOR[action], name)

    def hang_next(self, name: str, action: Action) -> None:
        # A start hangs in the boot (the run itself returns at once).
        command = "ready" if action is Action.START else COMMAND_FOR[action]
        self.tool.hangs.add((command, name))

    def delay(self, name: str, seconds: float) -> None:
        self.tool.delays[name] = self.tool.delays.get(name, 0.0) + seconds

    def clear(self, name: str) -> None:
        for key in [key for key in self.tool.failures if key[1] == name]:
            del self.tool.failures[key]
        self.tool.hangs = {key for key in self.tool.hangs if key[1] != name}
        self.tool.delays.pop(name, None)


def memory_harness(backend_type: type[MemoryBackend] = MemoryBackend, **options: Any) -> Harness:
    """A fresh memory backend with every kit hook wired to its tool."""
    backend = backend_type(None, **options)
    tool = backend.tool
    return Harness(
        backend,
        faults=MemoryFaults(tool),
        commands=lambda: len(tool.commands),
        leftover_processes=tool.leftover_processes,
    )
