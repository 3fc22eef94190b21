"""The testing kit's hooks for the simulator: harnesses over the in-process fake and ``fake-tart``.

:func:`in_process_harness` (the ``fake`` backend) and :func:`executable_harness` (the
``tart`` backend driving ``fake-tart``) give ``vms_core.testing`` the tart backend
over the simulator, with every optional hook wired: fault
injection through :class:`~vms_fake.faults.FaultPlan` (the VM crashes, a command
fails or hangs, boots slow down), a command counter, ``tart list`` read directly (not
through the backend's own parser) as the tool's view, and a census of ``tart run``
processes left behind. ``vms_core`` never imports this module.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vms_core.states import Action, State
from vms_core.testing.harness import (
    DELAY,
    DIE,
    FAIL,
    HANG,
    ChildCensus,
    Harness,
    KitFailure,
    Observer,
)
from vms_fake.backend import FakeBackend
from vms_fake.faults import FaultPlan
from vms_fake.inprocess import InProcessRunner
from vms_tart.backend import TartBackend
from vms_tart.recording import RecordingRunner
from vms_tart.runner import TartRunner

#: The tart command that carries out each action.
COMMAND_FOR = {
    Action.CLONE: "clone",
    Action.START: "run",
    Action.STOP: "stop",
    Action.SUSPEND: "suspend",
    Action.DELETE: "delete",
}
INJECTED_STDERR = "injected by the vms testing kit"
#: How long a crashed VM's ``tart run`` gets to exit (a real process in executable mode).
EXIT_WAIT_SECONDS = 10.0


def in_process_runs_alive(runner: RecordingRunner) -> list[str]:
    """Simulated ``tart run``s still holding a VM (``poll`` has no real child to reap)."""
    return [f"{' '.join(p.argv)} still running" for p in runner.spawned if p.poll() is None]


#: ``tart list``'s state words.
STATE_OF_TART_WORD = {
    "running": State.RUNNING,
    "stopped": State.STOPPED,
    "suspended": State.SUSPENDED,
}


def tart_list_observer(runner: TartRunner) -> Observer:
    """The tool's own view, read with ``tart list`` independently of the backend's parser."""

    def observe(name: str) -> State | None:
        result = runner.run(("list", "--source", "local", "--format", "json"))
        if not result.ok:
            raise KitFailure(f"tart list failed with {result.exit_code}: {result.stderr}")
        for entry in json.loads(result.stdout):
            if entry["Name"] == name:
                return STATE_OF_TART_WORD[entry["State"]]
        return None

    return observe


class PlanFaults:
    """The kit's :class:`~vms_core.testing.harness.FaultInjector` over a ``FaultPlan``."""

    def __init__(self, plan: FaultPlan, runner: RecordingRunner, kinds: frozenset[str]) -> None:
        self.plan = plan
        self.runner = runner
        self.kinds = kinds

    def kill_vm(self, name: str) -> None:
        self.plan.crash_vm(name)
        process = self.runner.latest_run(name)
        if process is not None:
            process.wait(EXIT_WAIT_SECONDS)

    def fail_next(self, name: str, action: Action) -> None:
        if action is Action.START:
            # The run process fails at launch, as when the host's VM limit is reached.
            self.plan.vm_limit_reached(name)
        else:
            self.plan.fail_command(COMMAND_FOR[action], vm=name, stderr=INJECTED_STDERR)

    def hang_next(self, name: str, action: Action) -> None:
        if action is Action.START:
            # The guest never boots: readiness can only time out.
            self.plan.boot_delay(name, math.inf)
        else:
            self.plan.hang_command(COMMAND_FOR[action], vm=name)

    def delay(self, name: str, seconds: float) -> None:
        self.plan.boot_delay(name, seconds)

    def clear(self, name: str) -> None:
        self.plan.clear(name)


def _home_for(home: Path | str | None) -> tuple[Path, bool]:
    """The TART_HOME to use, and whether it is a temporary one to remove on close."""
    if home is not None:
        return Path(home), False
    return Path(tempfile.mkdtemp(prefix="vms-kit-tart-")), True


def in_process_harness(home: Path | str | None = None, **options: Any) -> Harness:
    """The ``fake`` backend (tart over the in-process simulator), every hook wired.

    Without ``home`` a temporary TART_HOME is made and removed on ``close``.
    ``options`` are :class:`~vms_fake.backend.FakeOptions` (virtual time by default).
    """
    path, temporary = _home_for(home)
    backend = FakeBackend(home=str(path), **options)
    simulator = backend.runner
    assert isinstance(simulator, InProcessRunner)
    # An in-memory plan: nothing else reads it, and it costs no file I/O per command.
    plan = simulator.plan = FaultPlan(home=path)
    runner = RecordingRunner(simulator)
    backend.runner = runner

    new_children = ChildCensus()

    def leftovers() -> list[str]:
        return in_process_runs_alive(runner) + new_children()

    return Harness(
        backend,
        faults=PlanFaults(plan, runner, frozenset({DIE, FAIL, HANG, DELAY})),
        commands=lambda: runner.count,
        observe=tart_list_observer(runner.inner),
        leftover_processes=leftovers,
        kill_leftovers=new_children.kill,
        close=(lambda: shutil.rmtree(path, ignore_errors=True)) if temporary else (lambda: None),
    )


def executable_harness(
    binary: str = "fake-tart", home: Path | str | None = None, **options: Any
) -> Harness:
    """The tart backend driving the ``fake-tart`` executable, every hook wired.

    Boot delays and hangs would cost wall time here, so only crashes and failing
    commands are injected. ``fake-tart`` finds the plan in ``<home>/fake-tart/faults.json``.
    """
    path, temporary = _home_for(home)
    plan = FaultPlan.for_home(path)
    backend = TartBackend(binary=binary, home=str(path), **options)
    runner = RecordingRunner(backend.runner)  # the SubprocessRunner the options made
    backend.runner = runner
    return Harness(
        backend,
        faults=PlanFaults(plan, runner, frozenset({DIE, FAIL})),
        commands=lambda: runner.count,
        observe=tart_list_observer(runner.inner),
        close=(lambda: shutil.rmtree(path, ignore_errors=True)) if temporary else (lambda: None),
    )
