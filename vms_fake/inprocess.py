"""The simulator behind the ``TartRunner`` interface, without processes.

The same command implementation as the ``fake-tart`` executable, called directly. A
``run`` is a :class:`VMRun` object holding a real (OFD) lock on ``config.json``, so
``fake-tart`` processes see it running too; signals are method calls, handled at once.

By default time is virtual: boot and IP delays are zero, and waits (``ip``'s 1 s
retry, ``stop``'s polling, :meth:`InProcessRunner.sleep`) cost no wall time.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from vms_core.backend import Availability
from vms_core.errors import ConfigError, OperationTimeoutError
from vms_fake.clock import Clock, RealClock, VirtualClock
from vms_fake.commands import (
    CommandTimedOut,
    Session,
    apply_command_faults,
    execute,
    prepare_run,
)
from vms_fake.faults import IN_PROCESS_TIMING, FaultPlan, FaultPlanError, Timing
from vms_fake.grammar import Outcome, TartFailure
from vms_fake.vmrun import VMRun
from vms_fake.world import TartHome, default_home
from vms_tart.runner import CommandResult, seconds_text

OUTPUT_TAIL_CHARS = 1024
#: Signals whose default action does not end a process.
_HARMLESS_SIGNALS = frozenset({signal.SIGCHLD, signal.SIGWINCH, signal.SIGCONT, signal.SIGURG})


class InProcessRun:
    """A spawned ``run`` living in this process (the ``RunProcess`` interface)."""

    def __init__(self, argv: tuple[str, ...], clock: Clock) -> None:
        self._argv = argv
        self._clock = clock
        self._run: VMRun | None = None
        self._early_exit: int | None = None
        self._hung = False
        self._output: list[str] = []
        self._streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._output_lock = threading.Lock()

    # -- wiring ------------------------------------------------------------------------

    def emit(self, stream: str, text: str) -> None:
        with self._output_lock:
            self._streams[stream].append(text)
            self._output.append(text)
            if sum(len(t) for t in self._output) > 4 * OUTPUT_TAIL_CHARS:
                self._output = ["".join(self._output)[-OUTPUT_TAIL_CHARS:]]

    def attach(self, run: VMRun) -> None:
        self._run = run

    def finish_early(self, outcome: Outcome) -> None:
        """The command ended before a VM ran (bad arguments, already running, ...)."""
        self._run = None
        self.emit("stdout", outcome.stdout)
        self.emit("stderr", outcome.stderr)
        self._early_exit = outcome.exit_code

    def hang(self) -> None:
        """An injected hang: never takes the lock, never exits, until a signal kills it."""
        self._run = None
        self._hung = True

    # -- RunProcess --------------------------------------------------------------------

    @property
    def argv(self) -> tuple[str, ...]:
        return self._argv

    @property
    def pid(self) -> int | None:
        return None

    @property
    def run(self) -> VMRun | None:
        """The simulated VM process, or None if it failed before starting."""
        return self._run

    def poll(self) -> int | None:
        if self._run is None:
            return self._early_exit
        self._run.tick()
        return self._run.exit_status

    def wait(self, timeout: float | None = None) -> int | None:
        if self._run is None:
            if self._hung and self._early_exit is None:
                if timeout is None:
                    raise OperationTimeoutError(f"{' '.join(self._argv)} hangs forever")
                self._clock.sleep(timeout)
            return self._early_exit
        run, clock = self._run, self._clock
        end = None if timeout is None else clock.now() + timeout
        with run.changed:
            while True:
                run.tick()
                if not run.alive:
                    return run.exit_status
                upcoming = run.next_deadline()
                now = clock.now()
                if isinstance(clock, VirtualClock):
                    if upcoming is not None and (end is None or upcoming <= end):
                        clock.advance_to(upcoming)
                        continue
                    if end is not None:
                        clock.advance_to(end)
                        run.tick()
                        return run.exit_status
                    run.changed.wait()  # only another thread can end it now
                    continue
                if end is not None and now >= end:
                    return None
                wakes = [t for t in (upcoming, end) if t is not None]
                run.changed.wait(max(0.0, min(wakes) - now) if wakes else None)

    def send_signal(self, signum: int) -> None:
        if self._run is not None:
            self._run.deliver(signum)
        elif self._hung and self._early_exit is None and signum not in _HARMLESS_SIGNALS:
            self._early_exit = -signum

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    @property
    def stdout(self) -> str:
        """Everything the run printed on stdout (a run prints a few lines at most)."""
        with self._output_lock:
            return "".join(self._streams["stdout"])

    @property
    def stderr(self) -> str:
        with self._output_lock:
            return "".join(self._streams["stderr"])

    def output_tail(self) -> str:
        with self._output_lock:
            return "".join(self._output)[-OUTPUT_TAIL_CHARS:]


class InProcessRunner:
    """A ``TartRunner`` that simulates tart inside this process; thread-safe.

    ``home`` defaults like the executable's (``$TART_HOME``, else a per-user cache
    directory). ``plan`` is consulted live (mutate it any time); ``timing`` replaces the
    zero-delay defaults; ``virtual_time=False`` makes delays and waits real.
    """

    def __init__(
        self,
        home: Path | str | None = None,
        *,
        plan: FaultPlan | None = None,
        timing: Timing | None = None,
        virtual_time: bool = True,
        clock: Clock | None = None,
        emulate_echo: bool = True,
        environ: dict[str, str] | None = None,
        binary: str = "fake-tart",
    ) -> None:
        self.clock: Clock = clock or (VirtualClock() if virtual_time else RealClock())
        self.home = TartHome(home if home is not None else default_home(os.environ), self.clock)
        self.plan = plan if plan is not None else FaultPlan(home=self.home.path)
        if self.plan.home is None:
            self.plan.home = self.home.path
        self.timing = timing or IN_PROCESS_TIMING
        self.emulate_echo = emulate_echo
        self.environ = dict(environ or {})
        self._binary = binary

    @property
    def binary(self) -> str:
        return self._binary

    def _session(self, *, stdin: str | None = None, timeout: float | None = None) -> Session:
        return Session(
            home=self.home,
            plan=self.plan,
            base_timing=self.timing,
            in_process=True,
            stdin=stdin,
            environ=self.environ,
            deadline=None if timeout is None else self.clock.now() + timeout,
            emulate_echo=self.emulate_echo,
        )

    def run(
        self,
        args: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: str | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> CommandResult:
        argv = (self._binary, *args)
        targets = {"stdout": stdout, "stderr": stderr}
        copied = {"stdout": 0, "stderr": 0}

        def copy_live(stream: str, text: str) -> None:
            # Only a run-to-completion prints while it lasts; the rest is copied at the end.
            target = targets[stream]
            if target is not None:
                target.write(text)
                copied[stream] += len(text)

        self._refresh_plan()
        session = self._session(stdin=stdin, timeout=timeout)
        session.emit = copy_live
        try:
            outcome = execute(list(args), session)
        except CommandTimedOut:
            command = " ".join(argv)
            raise OperationTimeoutError(
                f"{command} hangs, and no timeout was given"
                if timeout is None
                else f"{command} did not finish within {seconds_text(timeout)}"
            ) from None
        for stream, text in (("stdout", outcome.stdout), ("stderr", outcome.stderr)):
            copy_live(stream, text[copied[stream] :])
        return CommandResult(argv, outcome.exit_code, outcome.stdout, outcome.stderr)

    def spawn(self, args: Sequence[str]) -> InProcessRun:
        """Start ``run <name> ...``: returns once the VM holds its lock (or has failed)."""
        argv = (self._binary, *args)
        process = InProcessRun(argv, self.clock)
        if list(args[:1]) != ["run"]:
            result = self.run(args)
            process.finish_early(Outcome(result.exit_code, result.stdout, result.stderr))
            return process
        self._refresh_plan()
        session = self._session()
        try:
            _, failed = apply_command_faults("run", args[1:], session)
        except CommandTimedOut:
            process.hang()
            return process
        if failed is not None:
            process.finish_early(failed)
            return process
        try:
            run = prepare_run(list(args[1:]), session, process.emit)
            process.attach(run)
            run.start()
        except TartFailure as failure:
            process.finish_early(failure.outcome())
        return process

    def _refresh_plan(self) -> None:
        """Obey plan changes written since the last command, as the executable does."""
        try:
            self.plan.refresh()
        except FaultPlanError as error:
            raise ConfigError(str(error)) from error

    def availability(self) -> Availability:
        return Availability(True)

    def monotonic(self) -> float:
        return self.clock.now()

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)
