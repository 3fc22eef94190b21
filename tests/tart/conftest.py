"""Worlds for the tart backend: the simulator in-process and as the ``fake-tart`` executable."""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import pytest

from vms_core.backend import Availability
from vms_core.testing.harness import child_processes
from vms_fake.faults import FaultPlan
from vms_fake.inprocess import InProcessRunner
from vms_tart.backend import TartBackend
from vms_tart.runner import CommandResult, RunProcess, TartRunner

FAKE_TART = str(Path(sys.executable).with_name("fake-tart"))


class RecordingRunner:
    """Passes everything to ``inner``, recording each argv (spawns included).

    ``before`` may raise for chosen commands (e.g. KeyboardInterrupt at a moment).
    """

    def __init__(self, inner: TartRunner) -> None:
        self.inner = inner
        self.calls: list[tuple[str, ...]] = []
        self.spawned: list[RunProcess] = []
        self.before: Callable[[tuple[str, ...]], None] | None = None
        self._lock = threading.Lock()

    @property
    def binary(self) -> str:
        return self.inner.binary

    def _record(self, args: Sequence[str]) -> None:
        with self._lock:
            self.calls.append(tuple(args))
        if self.before is not None:
            self.before(tuple(args))

    def run(
        self,
        args: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: str | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> CommandResult:
        self._record(args)
        return self.inner.run(args, timeout=timeout, stdin=stdin, stdout=stdout, stderr=stderr)

    def spawn(self, args: Sequence[str]) -> RunProcess:
        self._record(args)
        process = self.inner.spawn(args)
        self.spawned.append(process)
        return process

    def availability(self) -> Availability:
        return self.inner.availability()

    def monotonic(self) -> float:
        return self.inner.monotonic()

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)

    def subcommands(self) -> list[str]:
        return [call[0] for call in self.calls]


@dataclasses.dataclass
class World:
    """A simulated tart: its home, fault plan, and a factory for backends over it."""

    mode: str
    home: Path
    plan: FaultPlan
    make_runner: Callable[[dict[str, Any]], TartRunner]
    runners: list[RecordingRunner] = dataclasses.field(default_factory=list)

    def backend(self, **options: Any) -> tuple[TartBackend, RecordingRunner]:
        runner = RecordingRunner(self.make_runner(options))
        self.runners.append(runner)
        return TartBackend(runner=runner, **options), runner

    def tart_state(self, name: str) -> str | None:
        """What ``tart list`` says about ``name`` (None: not listed)."""
        import json

        # A plan of its own: reading the state must not consume injected faults.
        observer = InProcessRunner(self.home, plan=FaultPlan(home=self.home))
        result = observer.run(("list", "--format", "json"))
        for entry in json.loads(result.stdout):
            if entry["Name"] == name and entry["Source"] == "local":
                return str(entry["State"])
        return None

    def runs_alive(self) -> list[str]:
        alive = [" ".join(p.argv) for r in self.runners for p in r.spawned if p.poll() is None]
        return alive + child_processes()


def _in_process_world(home: Path) -> World:
    plan = FaultPlan(home=home)
    return World("in-process", home, plan, lambda _: InProcessRunner(home, plan=plan))


def _executable_world(home: Path) -> World:
    plan = FaultPlan.for_home(home)
    # No boot or DHCP delay, so the happy path needs exactly one readiness exec.
    plan.set_timing(boot_delay=0, ip_delay=0)

    def make(options: dict[str, Any]) -> TartRunner:
        return TartBackend(binary=FAKE_TART, home=str(home), **options).runner

    return World("executable", home, plan, make)


@pytest.fixture(params=["in-process", "executable"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    home = tmp_path / "tart-home"
    made = _in_process_world(home) if request.param == "in-process" else _executable_world(home)
    yield made
    assert made.runs_alive() == [], "a tart run was left behind"


@pytest.fixture
def in_process(tmp_path: Path) -> Iterator[World]:
    made = _in_process_world(tmp_path / "tart-home")
    yield made
    assert made.runs_alive() == [], "a tart run was left behind"
