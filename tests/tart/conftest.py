"""Worlds for the tart backend: the simulator in-process and as the ``fake-tart`` executable."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vms_core.testing.harness import child_processes
from vms_fake.faults import FaultPlan
from vms_fake.inprocess import InProcessRunner
from vms_tart.backend import TartBackend
from vms_tart.recording import RecordingRunner
from vms_tart.runner import TartRunner

FAKE_TART = str(Path(sys.executable).with_name("fake-tart"))


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
