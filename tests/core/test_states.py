"""The transition table is the contract: every (state, action) pair is pinned here."""

from __future__ import annotations

import itertools

import pytest

from vms_core import TRANSITIONS, Action, State, is_allowed, is_noop, next_state, outcome
from vms_core.states import SETTLES_TO, valid_actions

S, A = State, Action

# Written out from the contract (go-vms-contract.md 1.2), independently of the code.
EXPECTED = {
    (S.INITIAL, A.CLONE): S.CLONING,
    (S.INITIAL, A.DELETE): S.DELETING,
    (S.CLONING, A.NONE): S.CLONING,
    (S.STARTING, A.NONE): S.STARTING,
    (S.RUNNING, A.STOP): S.STOPPING,
    (S.RUNNING, A.SUSPEND): S.SUSPENDING,
    (S.STOPPING, A.NONE): S.STOPPING,
    (S.STOPPED, A.START): S.STARTING,
    (S.STOPPED, A.STOP): S.STOPPED,
    (S.STOPPED, A.DELETE): S.DELETING,
    (S.SUSPENDING, A.NONE): S.SUSPENDING,
    (S.SUSPENDED, A.START): S.STARTING,
    (S.SUSPENDED, A.SUSPEND): S.SUSPENDED,
    (S.SUSPENDED, A.DELETE): S.DELETING,
    (S.DELETING, A.NONE): S.DELETING,
    (S.DELETED, A.CLONE): S.CLONING,
    (S.ERROR_UNKNOWN, A.DELETE): S.DELETING,
}


@pytest.mark.parametrize(("state", "action"), list(itertools.product(State, Action)))
def test_every_pair_matches_the_contract(state: State, action: Action) -> None:
    expected = EXPECTED.get((state, action))
    assert next_state(state, action) is expected
    assert is_allowed(state, action) is (expected is not None)


def test_table_has_exactly_the_contract_pairs() -> None:
    assert dict(TRANSITIONS) == EXPECTED


def test_enum_order_and_names_are_the_contracts() -> None:
    assert [str(s) for s in State] == [
        "Initial", "Cloning", "Starting", "Running", "Stopping", "Stopped",
        "Suspending", "Suspended", "Deleting", "Deleted", "ErrorUnknown",
    ]  # fmt: skip
    assert [str(a) for a in Action] == ["None", "Clone", "Start", "Stop", "Suspend", "Delete"]
    assert State.ERROR_UNKNOWN.name == "ERROR_UNKNOWN"


def test_valid_actions_are_deterministic_and_ordered() -> None:
    assert valid_actions(S.STOPPED) == [A.START, A.STOP, A.DELETE]
    assert valid_actions(S.SUSPENDED) == [A.START, A.SUSPEND, A.DELETE]
    assert valid_actions(S.ERROR_UNKNOWN) == [A.DELETE]
    assert valid_actions(S.CLONING) == [A.NONE]


def test_notable_refusals() -> None:
    assert not is_allowed(S.RUNNING, A.DELETE)
    assert not is_allowed(S.STOPPED, A.SUSPEND)
    assert not is_allowed(S.SUSPENDED, A.STOP)
    assert not is_allowed(S.DELETED, A.DELETE)
    assert not is_allowed(S.ERROR_UNKNOWN, A.STOP)


def test_outcomes_and_noops() -> None:
    assert outcome(S.INITIAL, A.CLONE) is S.STOPPED
    assert outcome(S.STOPPED, A.START) is S.RUNNING
    assert outcome(S.SUSPENDED, A.START) is S.RUNNING
    assert outcome(S.RUNNING, A.SUSPEND) is S.SUSPENDED
    assert outcome(S.STOPPED, A.STOP) is S.STOPPED
    assert outcome(S.ERROR_UNKNOWN, A.DELETE) is S.DELETED
    assert outcome(S.RUNNING, A.DELETE) is None
    assert outcome(S.CLONING, A.NONE) is None
    noops = {(s, a) for s, a in itertools.product(State, Action) if is_noop(s, a)}
    assert noops == {(S.STOPPED, A.STOP), (S.SUSPENDED, A.SUSPEND)}


def test_transient_states_are_exactly_those_with_only_waiting() -> None:
    transient = {s for s in State if valid_actions(s) == [A.NONE]}
    assert transient == set(SETTLES_TO)
    assert all(s.is_transient for s in transient)
    assert S.RUNNING.is_stable


def test_every_stable_state_can_reach_deleted_or_initial() -> None:
    for start in State:
        if start.is_transient:
            continue
        seen, frontier = {start}, [start]
        while frontier:
            state = frontier.pop()
            for action in valid_actions(state):
                target = outcome(state, action)
                if target is not None and target not in seen:
                    seen.add(target)
                    frontier.append(target)
        assert S.DELETED in seen or start is S.INITIAL, start
