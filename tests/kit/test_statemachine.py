"""The state machine passes a correct backend, follows the table, and prints replayable programs."""

from __future__ import annotations

from types import MappingProxyType

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

import vms_core.states
from vms_core import Action, State
from vms_core.testing import Harness, InstanceStateMachine
from vms_core.testing.profiles import examples
from vms_core.testing.statemachine import legal_after_failure

from .memory_backend import MemoryBackend, memory_harness

# The reference backend: the fake (tests/kit/test_fake.py) gets the full profile.
TestMemoryMachine = InstanceStateMachine.configure(
    memory_harness, name="MemoryMachine", max_examples=examples(0.3)
).TestCase

TestUnsuspendableMemoryMachine = InstanceStateMachine.configure(
    lambda: memory_harness(suspendable=False),
    name="UnsuspendableMemoryMachine",
    max_examples=examples(0.2),
).TestCase

# Without any hook the machine still checks the table, the tool's view and cleanup.
TestBareBackendMachine = InstanceStateMachine.configure(
    MemoryBackend, name="BareBackendMachine", max_examples=examples(0.2)
).TestCase


def test_an_unconfigured_machine_says_how_to_configure_it() -> None:
    with pytest.raises(TypeError, match="configure"):
        InstanceStateMachine()


def test_changing_the_table_changes_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    # Allow Delete from Running: the model now expects it to work, the tool refuses.
    table = dict(vms_core.states.TRANSITIONS)
    table[(State.RUNNING, Action.DELETE)] = State.DELETING
    monkeypatch.setattr(vms_core.states, "TRANSITIONS", MappingProxyType(table))
    machine = InstanceStateMachine.configure(memory_harness, name="EditedTable")
    quick = settings(
        max_examples=200,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
    )
    with pytest.raises(AssertionError, match="Delete from Running failed"):
        run_state_machine_as_test(machine, settings=quick)


def test_legal_states_after_a_failure() -> None:
    assert legal_after_failure(State.DELETED, Action.CLONE) == {
        State.DELETED, State.STOPPED, State.ERROR_UNKNOWN,
    }  # fmt: skip
    assert legal_after_failure(State.SUSPENDED, Action.START) == {
        State.SUSPENDED, State.RUNNING, State.STOPPED, State.ERROR_UNKNOWN,
    }  # fmt: skip
    assert State.INITIAL not in legal_after_failure(State.DELETED, Action.CLONE)


def test_programs_can_start_from_a_running_vm() -> None:
    harnesses: list[Harness] = []

    def factory() -> Harness:
        harnesses.append(memory_harness())
        return harnesses[-1]

    machine = InstanceStateMachine.configure(factory, name="FromRunning", start_from=State.RUNNING)
    run_state_machine_as_test(
        machine, settings=settings(max_examples=5, deadline=None, database=None)
    )
    assert harnesses
    for harness in harnesses:
        assert isinstance(harness.backend, MemoryBackend)
        commands = [argv[0] for argv in harness.backend.tool.commands if argv[0] != "list"]
        assert commands[:2] == ["clone", "run"]
