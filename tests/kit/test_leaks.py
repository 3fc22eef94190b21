"""A backend that leaks real processes: the kit reports them, then kills them.

The memory backend's run processes are bookkeeping; this mutant starts a real
``sleep`` per boot and forgets it, as a careless backend forgets its VM process.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from vms_core.testing import ChildCensus, Harness, InstanceStateMachine, KitFailure, run_conformance

from .memory_backend import MemoryBackend, MemoryInstance

pytestmark = pytest.mark.timeout(120)


class LeaksARealProcess(MemoryInstance):
    """Every start spawns a real long-lived process that nothing ever stops."""

    def start(self, *, timeout: float | None = None) -> None:
        super().start(timeout=timeout)
        subprocess.Popen(["sleep", "300"])  # the leak under test


class LeakingBackend(MemoryBackend):
    instance_type = LeaksARealProcess


def leaking_harness() -> Harness:
    """Default process census (this process's new children), as a backend author gets."""
    backend = LeakingBackend(None)
    return Harness(backend, commands=lambda: len(backend.tool.commands))


@pytest.fixture
def no_new_children() -> Iterator[ChildCensus]:
    census = ChildCensus()
    yield census
    assert census() == [], "the kit left the leaked processes running"


def test_conformance_reports_the_leak_and_kills_it(no_new_children: ChildCensus) -> None:
    with pytest.raises(KitFailure) as failure:
        run_conformance(leaking_harness)
    message = str(failure.value)
    assert "- lifecycle_walk: KitFailure: processes left behind by " in message
    assert "(sleep, state " in message
    assert "the kit killed them (this is a test run)" in message


def test_the_state_machine_kills_what_every_program_leaked(
    no_new_children: ChildCensus,
) -> None:
    machine = InstanceStateMachine.configure(leaking_harness, name="Leaks")
    # Shrinking runs many failing programs: each one's leak must be killed too.
    find_and_shrink = settings(
        max_examples=30, deadline=None, database=None, derandomize=True,
        phases=[Phase.generate, Phase.shrink],
    )  # fmt: skip
    with pytest.raises(KitFailure, match=r"the kit killed them \(this is a test run\)"):
        run_state_machine_as_test(machine, settings=find_and_shrink)


def test_a_census_without_a_kill_hook_says_the_processes_still_run() -> None:
    census = ChildCensus()
    backend = LeakingBackend(None)
    harness = Harness(backend, leftover_processes=census)
    with pytest.raises(KitFailure) as failure:
        run_conformance(lambda: harness)
    try:
        assert "still running: the harness has no kill_leftovers hook" in str(failure.value)
    finally:
        assert len(census.kill()) >= 1
    assert census() == []
