"""A scripted TartRunner for unit tests: a tiny tart world on a virtual clock.

It records every argv, answers like tart for the commands the backend uses, and lets
a test replace any subcommand's answer (``runner.script["exec"] = [...]``) or decide
how the run process reacts to signals.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Sequence
from typing import IO

from vms_core.backend import Availability
from vms_tart.runner import CommandResult

NOT_RUNNING = 'VM "{}" is not running'
MISSING = 'the specified VM "{}" does not exist'


class ScriptedProcess:
    def __init__(self, runner: ScriptedRunner, argv: tuple[str, ...]) -> None:
        self.runner = runner
        self.argv = argv
        self.pid = 4242
        self.exit_status: int | None = None
        self.signals: list[int] = []
        self.tail = ""
        #: Signals the process ignores (it then has to be killed).
        self.ignore: set[int] = set()
        self._event = threading.Event()

    def exit(self, status: int, tail: str = "") -> None:
        if self.exit_status is None:
            self.exit_status = status
            self.tail += tail
            self._event.set()

    def poll(self) -> int | None:
        return self.exit_status

    def wait(self, timeout: float | None = None) -> int | None:
        if self.exit_status is None and timeout is not None:
            self.runner.now += timeout  # virtual time passes while we wait
        return self.exit_status

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)
        if signum in self.ignore or self.exit_status is not None:
            return
        name = self.argv[2]
        if signum == signal.SIGINT:
            self.exit(0, "Stopping VM...\n")
        elif signum == signal.SIGUSR1:
            if "--suspendable" in self.argv:
                self.runner.vms[name]["snapshot"] = True
                self.exit(0)
            else:
                self.exit(1, "Failed to suspend the VM: Unsupported console device\n")

    def kill(self) -> None:
        self.signals.append(signal.SIGKILL)
        self.exit(-signal.SIGKILL)

    def output_tail(self) -> str:
        return self.tail


Handler = Callable[[Sequence[str]], CommandResult | None]


class ScriptedRunner:
    binary = "tart"

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.vms: dict[str, dict[str, bool]] = {}
        self.processes: list[ScriptedProcess] = []
        self.now = 1000.0
        #: Per subcommand, answers used once each before the default behaviour.
        self.script: dict[str, list[CommandResult | Handler]] = {}
        #: Called with each new run process (e.g. to make it exit at once).
        self.on_spawn: Callable[[ScriptedProcess], None] | None = None
        self.spawn_error: Exception | None = None

    # -- helpers for tests --
    def subcommands(self) -> list[str]:
        return [call[0] for call in self.calls]

    def add_vm(self, name: str) -> None:
        self.vms[name] = {"snapshot": False}

    def live(self, name: str) -> ScriptedProcess | None:
        for process in self.processes:
            if process.argv[2] == name and process.exit_status is None:
                return process
        return None

    def tart_state(self, name: str) -> str:
        if self.live(name):
            return "running"
        return "suspended" if self.vms[name]["snapshot"] else "stopped"

    @staticmethod
    def result(args: Sequence[str], code: int = 0, out: str = "", err: str = "") -> CommandResult:
        return CommandResult(("tart", *args), code, out, err)

    # -- TartRunner --
    def run(
        self,
        args: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: str | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> CommandResult:
        args = tuple(args)
        self.calls.append(args)
        queued = self.script.get(args[0])
        if queued:
            answer = queued.pop(0)
            result = answer(args) if callable(answer) else answer
            if result is not None:
                return result
        handler: Callable[[Sequence[str]], CommandResult] = getattr(self, "_" + args[0])
        return handler(args)

    def spawn(self, args: Sequence[str]) -> ScriptedProcess:
        args = tuple(args)
        self.calls.append(args)
        if self.spawn_error is not None:
            raise self.spawn_error
        process = ScriptedProcess(self, ("tart", *args))
        self.processes.append(process)
        name = args[1]
        if name not in self.vms:
            process.exit(1, f"Error: {MISSING.format(name)}\n")
        elif any(
            p is not process and p.argv[2] == name and p.exit_status is None for p in self.processes
        ):
            process.exit(2, f'VM "{name}" is already running!\n')
        else:
            self.vms[name]["snapshot"] = False  # restored (or fresh boot)
        if self.on_spawn is not None:
            self.on_spawn(process)
        return process

    def availability(self) -> Availability:
        return Availability(True)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    # -- default behaviours --
    def _missing(self, args: Sequence[str], name: str) -> CommandResult:
        return self.result(args, 2, err=MISSING.format(name) + "\n")

    def _clone(self, args: Sequence[str]) -> CommandResult:
        self.add_vm(args[2])
        return self.result(args)

    def _set(self, args: Sequence[str]) -> CommandResult:
        return self.result(args) if args[1] in self.vms else self._missing(args, args[1])

    def _list(self, args: Sequence[str]) -> CommandResult:
        rows = [
            {
                "Source": "local",
                "Name": name,
                "Disk": 50,
                "Size": 20,
                "Running": False,
                "Accessed": "2026-08-18T09:12:44Z",
                "State": self.tart_state(name),
            }
            for name in sorted(self.vms)
        ]
        for row in rows:
            row["Running"] = row["State"] == "running"
        return self.result(args, out=json.dumps(rows))

    def _get(self, args: Sequence[str]) -> CommandResult:
        name = args[1]
        if name not in self.vms:
            return self._missing(args, name)
        state = self.tart_state(name)
        return self.result(
            args,
            out=json.dumps(
                {
                    "OS": "darwin",
                    "CPU": 4,
                    "Memory": 8192,
                    "Disk": 50,
                    "DiskFormat": "raw",
                    "Size": "20.000",
                    "Display": "1024x768",
                    "Running": state == "running",
                    "State": state,
                }
            ),
        )

    def _exec(self, args: Sequence[str]) -> CommandResult:
        rest = [a for a in args[1:] if a not in ("-i", "-t")]
        name, command = rest[0], rest[1:]
        if name not in self.vms:
            return self._missing(args, name)
        if not self.live(name):
            return self.result(args, 2, err=NOT_RUNNING.format(name) + "\n")
        if command[0] == "echo":
            return self.result(args, out=" ".join(command[1:]) + "\n")
        if command[0] == "false":
            return self.result(args, 1)
        return self.result(args, out="ran " + " ".join(command) + "\n")

    def _ip(self, args: Sequence[str]) -> CommandResult:
        return self.result(args, out="192.168.64.7\n")

    def _stop(self, args: Sequence[str]) -> CommandResult:
        name = args[1]
        if name not in self.vms:
            return self._missing(args, name)
        process = self.live(name)
        if process is None:
            if self.vms[name]["snapshot"]:
                self.vms[name]["snapshot"] = False
                return self.result(args)
            return self.result(args, 2, err=NOT_RUNNING.format(name) + "\n")
        process.send_signal(signal.SIGINT)
        if process.exit_status is None:
            process.kill()
        return self.result(args)

    def _suspend(self, args: Sequence[str]) -> CommandResult:
        name = args[1]
        process = self.live(name)
        if process is None:
            return self.result(args, 2, err=f'VM "{NOT_RUNNING.format(name)}" is not running\n')
        process.send_signal(signal.SIGUSR1)
        return self.result(args)

    def _delete(self, args: Sequence[str]) -> CommandResult:
        name = args[1]
        if name not in self.vms:
            return self._missing(args, name)
        if self.live(name):
            return self.result(args, 1, err=f'VM "{name}" is running\n')
        del self.vms[name]
        return self.result(args)
