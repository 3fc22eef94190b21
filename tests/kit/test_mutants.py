"""Every deliberately broken backend is caught by the state machine, by the right check."""

from __future__ import annotations

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from vms_core.testing import InstanceStateMachine

from .memory_backend import memory_harness
from .mutants import MUTANTS

# Finding is what is tested here: no shrinking, and the same programs on every run.
FIND = settings(
    max_examples=500,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_caught(name: str) -> None:
    mutant = MUTANTS[name]
    machine = InstanceStateMachine.configure(lambda: memory_harness(mutant.backend), name=name)
    with pytest.raises(AssertionError) as caught:
        run_state_machine_as_test(machine, settings=FIND)
    assert mutant.caught_by in str(caught.value)


def test_a_failure_prints_a_program_that_replays_it() -> None:
    mutant = MUTANTS["reverts_failed_clone_to_initial"]
    machine = InstanceStateMachine.configure(
        lambda: memory_harness(mutant.backend), name="RevertsToInitial"
    )
    shrink = settings(FIND, phases=[Phase.generate, Phase.shrink])
    with pytest.raises(AssertionError) as caught:
        run_state_machine_as_test(machine, settings=shrink)
    program = [line for line in caught.value.__notes__ if line.startswith("state")]
    # The shortest program that shows the bug: clone, delete, a clone that fails.
    assert program == [
        "state = RevertsToInitial()",
        "state.clone()",
        "state.delete()",
        "state.clone_fails()",
        "state.teardown()",
    ]
    # Pasted as Python, it fails the same way.
    with pytest.raises(AssertionError) as replayed:
        exec("\n".join(program), {"RevertsToInitial": machine})
    assert str(replayed.value) == str(caught.value)
