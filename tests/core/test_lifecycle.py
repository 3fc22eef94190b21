from __future__ import annotations

import pytest

from vms_core import (
    CleanupError,
    OperationTimeoutError,
    State,
    TransitionNotAllowedError,
    WaitError,
    cleanup,
    running,
    wait_for_state,
)
from vms_core.waiting import Backoff

from .scripted import Script, ScriptedInstance, command_failure


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# --- cleanup -----------------------------------------------------------------------------


def test_cleanup_of_none_does_nothing() -> None:
    cleanup(None)


@pytest.mark.parametrize("state", [State.STOPPED, State.SUSPENDED, State.ERROR_UNKNOWN])
def test_cleanup_deletes_directly(state: State) -> None:
    vm = ScriptedInstance(state)
    cleanup(vm)
    assert vm.calls == ["delete"]
    assert vm.state() is State.DELETED


def test_cleanup_stops_a_running_vm_then_deletes() -> None:
    vm = ScriptedInstance(State.RUNNING)
    cleanup(vm)
    assert vm.calls == ["stop", "delete"]
    assert vm.state() is State.DELETED


def test_cleanup_of_deleted_does_nothing() -> None:
    vm = ScriptedInstance(State.DELETED)
    cleanup(vm)
    assert vm.calls == []


def test_cleanup_from_initial_tries_delete_and_ignores_not_found() -> None:
    vm = ScriptedInstance(State.INITIAL)
    cleanup(vm)
    assert vm.calls == ["delete"]
    assert vm.state() is State.INITIAL


@pytest.mark.parametrize(
    "state", [State.CLONING, State.STARTING, State.STOPPING, State.SUSPENDING, State.DELETING]
)
def test_cleanup_refuses_transient_states(state: State) -> None:
    vm = ScriptedInstance(state)
    with pytest.raises(CleanupError, match=f"unexpected VM state {state}"):
        cleanup(vm)
    assert vm.calls == []


def test_cleanup_reports_a_stop_that_failed() -> None:
    vm = ScriptedInstance(
        State.RUNNING,
        Script(stop_error=command_failure("stuck"), stop_leaves=State.ERROR_UNKNOWN),
    )
    with pytest.raises(CleanupError) as info:
        cleanup(vm)
    assert "expected VM to be stopped after stopping, in state ErrorUnknown" in str(info.value)
    assert "stuck" in str(info.value)
    assert info.value.state is State.ERROR_UNKNOWN
    assert vm.calls == ["stop"]


def test_cleanup_continues_when_stop_failed_but_vm_is_stopped() -> None:
    vm = ScriptedInstance(
        State.RUNNING, Script(stop_error=command_failure(), stop_leaves=State.STOPPED)
    )
    cleanup(vm)
    assert vm.calls == ["stop", "delete"]
    assert vm.state() is State.DELETED


def test_cleanup_reports_a_delete_that_failed() -> None:
    vm = ScriptedInstance(State.STOPPED, Script(delete_error=command_failure("busy")))
    with pytest.raises(CleanupError, match=r"failed to delete VM from state Stopped: .*busy"):
        cleanup(vm)
    assert vm.state() is State.STOPPED


def test_cleanup_reports_a_delete_that_did_not_reach_deleted() -> None:
    vm = ScriptedInstance(
        State.RUNNING, Script(delete_error=command_failure(), delete_leaves=State.ERROR_UNKNOWN)
    )
    with pytest.raises(CleanupError) as info:
        cleanup(vm)
    assert "from state Stopped" in str(info.value)
    assert info.value.state is State.ERROR_UNKNOWN


# --- wait_for_state ----------------------------------------------------------------------


class Sequence:
    """An instance whose state() walks a fixed list, then stays on its last entry."""

    id = "seq"

    def __init__(self, *states: State) -> None:
        self.states = list(states)
        self.reads = 0

    def state(self) -> State:
        self.reads += 1
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


def test_wait_returns_at_once_when_already_there() -> None:
    clock = FakeClock()
    vm = Sequence(State.RUNNING)
    assert wait_for_state(vm, State.RUNNING, clock=clock, sleep=clock.sleep) is State.RUNNING  # type: ignore[arg-type]
    assert clock.sleeps == []


def test_wait_through_allowed_intermediates_with_backoff() -> None:
    clock = FakeClock()
    vm = Sequence(State.STOPPED, State.STARTING, State.STARTING, State.RUNNING)
    reached = wait_for_state(
        vm,  # type: ignore[arg-type]
        State.RUNNING,
        intermediate=[State.STOPPED, State.STARTING],
        backoff=Backoff(initial=0.1, maximum=0.4),
        timeout=10,
        clock=clock,
        sleep=clock.sleep,
    )
    assert reached is State.RUNNING
    assert clock.sleeps == [0.1, 0.2, 0.4]


def test_wait_rejects_a_wrong_intermediate() -> None:
    clock = FakeClock()
    vm = Sequence(State.STARTING, State.STOPPING, State.RUNNING)
    with pytest.raises(WaitError) as info:
        wait_for_state(
            vm, State.RUNNING, intermediate=[State.STARTING], clock=clock, sleep=clock.sleep
        )  # type: ignore[arg-type]
    assert (
        str(info.value)
        == "unexpected intermediate state Stopping, want [Starting] on the way to Running"
    )
    assert info.value.state is State.STOPPING


@pytest.mark.parametrize("terminal", [State.ERROR_UNKNOWN, State.DELETED])
def test_wait_fails_fast_on_terminal_states(terminal: State) -> None:
    clock = FakeClock()
    vm = Sequence(State.STARTING, terminal)
    with pytest.raises(WaitError, match=f"reached {terminal}"):
        wait_for_state(vm, State.RUNNING, timeout=100, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    assert vm.reads == 2


def test_wait_for_a_terminal_state_that_is_the_target() -> None:
    clock = FakeClock()
    vm = Sequence(State.DELETING, State.DELETED)
    assert wait_for_state(vm, State.DELETED, clock=clock, sleep=clock.sleep) is State.DELETED  # type: ignore[arg-type]


def test_wait_times_out_on_the_injected_clock() -> None:
    clock = FakeClock()
    vm = Sequence(State.STARTING)
    with pytest.raises(OperationTimeoutError, match="seq to reach Running"):
        wait_for_state(
            vm,
            State.RUNNING,
            timeout=5,
            backoff=Backoff(1, 2, 2),
            clock=clock,
            sleep=clock.sleep,  # type: ignore[arg-type]
        )
    assert clock.now == pytest.approx(5)
    assert sum(clock.sleeps) == pytest.approx(5)
    assert isinstance(OperationTimeoutError("x"), TimeoutError)


# --- running() ---------------------------------------------------------------------------


def test_running_yields_a_running_vm_and_cleans_up() -> None:
    vm = ScriptedInstance()
    with running(vm) as inside:
        assert inside.state() is State.RUNNING
    assert vm.calls == ["clone", "start", "stop", "delete"]
    assert vm.state() is State.DELETED


def test_running_cleans_up_when_the_body_raises() -> None:
    vm = ScriptedInstance()
    with pytest.raises(ValueError, match="user bug"), running(vm):
        raise ValueError("user bug")
    assert vm.state() is State.DELETED


def test_running_cleans_up_when_start_fails_half_way() -> None:
    vm = ScriptedInstance(script=Script(start_error=command_failure("no boot")))
    with pytest.raises(Exception, match="no boot"), running(vm):
        pytest.fail("body must not run")
    assert vm.calls == ["clone", "start", "delete"]
    assert vm.state() is State.DELETED


def test_running_cleans_up_on_ctrl_c_during_start() -> None:
    vm = ScriptedInstance(
        script=Script(start_error=KeyboardInterrupt(), start_leaves=State.STOPPED)
    )
    with pytest.raises(KeyboardInterrupt), running(vm):
        pass
    assert vm.state() is State.DELETED


def test_running_notes_a_cleanup_failure_on_the_original_error() -> None:
    vm = ScriptedInstance(script=Script(delete_error=command_failure("disk busy")))
    with pytest.raises(ValueError) as info, running(vm):
        raise ValueError("user bug")
    assert any("cleanup also failed" in note for note in info.value.__notes__)


def test_cleanup_bounds_each_delete_with_the_given_timeout() -> None:
    seen: list[float | None] = []

    class Recording(ScriptedInstance):
        def delete(self, *, timeout: float | None = None) -> None:
            seen.append(timeout)
            super().delete(timeout=timeout)

    cleanup(Recording(State.STOPPED), delete_timeout=7.5)
    cleanup(Recording(State.INITIAL), delete_timeout=3.0)
    assert seen == [7.5, 3.0]


def test_running_leaves_alone_an_instance_whose_clone_was_refused() -> None:
    """Regression: a VM that was already Running was stopped and deleted with its data."""
    vm = ScriptedInstance(State.RUNNING)
    with pytest.raises(TransitionNotAllowedError), running(vm):
        pytest.fail("body must not run")
    assert vm.calls == []
    assert vm.state() is State.RUNNING


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"target": "Running"}, "target must be a State"),
        ({"intermediate": "Running"}, "intermediate must be States"),
        ({"timeout": -1.0}, "timeout must be a finite number >= 0"),
        ({"timeout": float("nan")}, "timeout must be a finite number >= 0"),
    ],
)
def test_wait_refuses_arguments_that_could_never_work(
    kwargs: dict[str, object], fragment: str
) -> None:
    """Regression: a string target compared by identity never matched and waited forever."""
    arguments: dict[str, object] = {"target": State.RUNNING, **kwargs}
    target = arguments.pop("target")
    with pytest.raises(ValueError, match=fragment):
        wait_for_state(Sequence(State.RUNNING), target, **arguments)  # type: ignore[arg-type]
