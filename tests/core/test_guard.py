from __future__ import annotations

import threading

import pytest

from vms_core import Action, LifecycleGuard, State, TransitionNotAllowedError


def test_refused_operation_changes_nothing_and_runs_nothing() -> None:
    guard = LifecycleGuard("vm", State.RUNNING)
    ran = []
    refused = pytest.raises(
        TransitionNotAllowedError, match="Delete is not allowed in state Running"
    )
    with refused, guard.operation(Action.DELETE):
        ran.append(True)
    assert ran == []
    assert guard.state is State.RUNNING


def test_transient_state_is_visible_while_working_then_settles() -> None:
    guard = LifecycleGuard("vm", State.STOPPED)
    with guard.operation(Action.START) as op:
        assert guard.state is State.STARTING
        assert op.previous is State.STOPPED and not op.noop
    assert guard.state is State.RUNNING


def test_failure_reverts_to_previous_unless_told_otherwise() -> None:
    guard = LifecycleGuard("vm", State.SUSPENDED)
    with pytest.raises(RuntimeError), guard.operation(Action.START):
        raise RuntimeError("launch failed")
    assert guard.state is State.SUSPENDED

    with pytest.raises(RuntimeError), guard.operation(Action.START) as op:
        op.on_failure = State.STOPPED  # the truth: the snapshot was lost
        raise RuntimeError("resume failed")
    assert guard.state is State.STOPPED


def test_keyboard_interrupt_settles_the_state_too() -> None:
    guard = LifecycleGuard("vm", State.STOPPED)
    with pytest.raises(KeyboardInterrupt), guard.operation(Action.START) as op:
        op.on_failure = State.STOPPED
        raise KeyboardInterrupt
    assert guard.state is State.STOPPED


def test_noop_pairs_do_not_change_state() -> None:
    guard = LifecycleGuard("vm", State.STOPPED)
    with guard.operation(Action.STOP) as op:
        assert op.noop
        assert guard.state is State.STOPPED
    assert guard.state is State.STOPPED


def test_success_override() -> None:
    guard = LifecycleGuard("vm", State.RUNNING)
    with guard.operation(Action.SUSPEND) as op:
        op.on_success = State.ERROR_UNKNOWN
    assert guard.state is State.ERROR_UNKNOWN


def test_waiting_action_is_never_an_operation() -> None:
    guard = LifecycleGuard("vm", State.CLONING)
    with pytest.raises(TransitionNotAllowedError), guard.operation(Action.NONE):
        pass


def test_operations_are_serialized_and_revalidated() -> None:
    guard = LifecycleGuard("vm", State.STOPPED)
    entered = threading.Event()
    release = threading.Event()
    results: list[str] = []

    def first() -> None:
        with guard.operation(Action.DELETE):
            entered.set()
            release.wait(5)

    def second() -> None:
        try:
            with guard.operation(Action.DELETE):
                results.append("ran")
        except TransitionNotAllowedError:
            results.append("refused")

    t1 = threading.Thread(target=first)
    t1.start()
    assert entered.wait(5)
    assert guard.busy
    t2 = threading.Thread(target=second)
    t2.start()
    release.set()
    t1.join(5)
    t2.join(5)
    # The second delete waited for the first, then saw Deleted and was refused.
    assert results == ["refused"]
    assert guard.state is State.DELETED
