"""The conformance suite passes a correct backend and names the check a broken one fails."""

from __future__ import annotations

import pytest

from vms_core import Action, State, outcome
from vms_core.testing import ConformanceTests, run_conformance
from vms_core.testing.conformance import conformance_tests, paths_to_stable_states
from vms_core.testing.harness import Harness, KitFailure

from .memory_backend import MemoryBackend, memory_harness
from .mutants import MUTANTS

# exec runs real commands (sh, cat) for the memory backend.
pytestmark = pytest.mark.timeout(120)


class TestMemoryConformance(ConformanceTests):
    def make_harness(self) -> Harness:
        return memory_harness()


TestUnsuspendableMemoryConformance = conformance_tests(
    lambda: memory_harness(suspendable=False), "TestUnsuspendableMemoryConformance"
)

# A bare backend is enough: the observer comes from list_vms, no command counting.
TestBareBackendConformance = conformance_tests(MemoryBackend, "TestBareBackendConformance")


def test_paths_to_stable_states_follow_the_table() -> None:
    paths = paths_to_stable_states()
    assert set(paths) == {
        State.INITIAL, State.STOPPED, State.RUNNING, State.SUSPENDED, State.DELETED,
    }  # fmt: skip
    assert paths[State.SUSPENDED] == (Action.CLONE, Action.START, Action.SUSPEND)
    assert paths[State.DELETED] == (Action.CLONE, Action.DELETE)
    for target, path in paths.items():
        state = State.INITIAL
        for action in path:
            state = outcome(state, action) or state
        assert state is target
    assert State.SUSPENDED not in paths_to_stable_states(suspendable=False)


def test_run_conformance_reports_what_it_skipped() -> None:
    outcomes = run_conformance(lambda: memory_harness(suspendable=False))
    assert outcomes["lifecycle_walk"] == "passed"
    assert outcomes["delete_from_suspended"].startswith("skipped:")
    assert outcomes["cleanup_from_suspended"].startswith("skipped:")


@pytest.mark.parametrize(
    ("mutant", "check", "message"),
    [
        ("leaks_the_run_process", "lifecycle_walk", "processes left behind"),
        ("stop_from_stopped_runs_a_command", "lifecycle_walk", "no-op Stop from Stopped ran 1"),
        ("asks_the_tool_before_checking_the_table", "fresh_instance_refuses", "ran 1 command"),
        ("delete_skips_suspended_vms", "delete_from_suspended", "the tool still lists it"),
        # The walk alone catches it: slow backends run only the walk and the fresh checks.
        ("allows_delete_while_running", "lifecycle_walk", "Delete from Running was not refused"),
    ],
)
def test_run_conformance_names_the_failing_check(mutant: str, check: str, message: str) -> None:
    backend_type = MUTANTS[mutant].backend
    with pytest.raises(KitFailure) as failure:
        run_conformance(lambda: memory_harness(backend_type))
    assert f"- {check}: KitFailure: " in str(failure.value)
    assert message in str(failure.value)


TestOnlySomeChecks = conformance_tests(
    memory_harness, "TestOnlySomeChecks", only=("lifecycle_walk", "cleanup_from_running")
)


def test_only_some_checks_are_collected() -> None:
    tests = sorted(
        name
        for name in dir(TestOnlySomeChecks)
        if callable(getattr(TestOnlySomeChecks, name)) and name.startswith("test_")
    )
    assert tests == ["test_cleanup_from_running", "test_lifecycle_walk"]
    with pytest.raises(ValueError, match="no such conformance check"):
        conformance_tests(memory_harness, "TestTypo", only=("lifecycle",))
