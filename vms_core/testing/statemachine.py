"""``InstanceStateMachine``: hypothesis drives one instance through random programs.

The model is :data:`vms_core.states.TRANSITIONS` and nothing else: one rule per
operation (every operation, allowed or not, is tried in every state), and the
expected outcome of each comes from the table, so changing the table changes the
test. With a :class:`~vms_core.testing.harness.FaultInjector`, environment events
join in: the VM dies on its own, an operation's command fails or hangs (the
operation is then given a short timeout), commands slow down.

Checked after every step:

- an operation that returns leaves a stable state, the model's own unless a fault
  was injected, and even then a legal one (the previous state, the outcome, Stopped
  when the VM went down, or ErrorUnknown);
- a refused operation raises ``TransitionNotAllowedError`` (``NotSupportedError``
  for suspend without the capability), changes nothing and runs no command;
- Stop from Stopped and Suspend from Suspended are no-ops that run no command;
- after every step that may change the VM, the tool's own view of it (the harness's
  observer) agrees with ``state()``;
- teardown cleans up from whatever state the program reached, and then no VM and
  no process may be left behind.

Use it through :meth:`InstanceStateMachine.configure`::

    TestMyBackend = InstanceStateMachine.configure(make_harness, name="MyBackend").TestCase

A failing program is printed as replayable Python (``state = MyBackend()``,
``state.start()``, ...).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, ClassVar

from vms_core.errors import (
    NotFoundError,
    NotRunningError,
    NotSupportedError,
    TransitionNotAllowedError,
    VMError,
)
from vms_core.instance import StopResult
from vms_core.lifecycle import cleanup
from vms_core.states import Action, State, is_allowed, is_noop, outcome
from vms_core.testing.conformance import OPERATIONS, paths_to_stable_states
from vms_core.testing.harness import (
    DELAY,
    DIE,
    FAIL,
    HANG,
    HangInjector,
    Harness,
    HarnessFactory,
    KitFailure,
    as_harness,
    check_nothing_left,
    check_observed,
    expect,
    missing_testing_extra,
    perform,
)

try:
    from hypothesis import settings as Settings
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
except ModuleNotFoundError as _err:
    raise missing_testing_extra(__name__, _err) from _err

logger = logging.getLogger(__name__)

#: What a failed operation may leave besides the previous state and the outcome.
ALWAYS_LEGAL_AFTER_FAILURE = frozenset({State.ERROR_UNKNOWN})
#: A VM that was up may be down after a failure (e.g. a snapshot that failed).
WAS_UP = frozenset({State.RUNNING, State.SUSPENDED})


def legal_after_failure(before: State, action: Action) -> frozenset[State]:
    """The states a failed ``action`` from ``before`` may honestly leave."""
    legal = {before, *ALWAYS_LEGAL_AFTER_FAILURE}
    target = outcome(before, action)
    if target is not None:
        legal.add(target)
    if before in WAS_UP:
        legal.add(State.STOPPED)
    return frozenset(legal)


class InstanceStateMachine(RuleBasedStateMachine):
    """Random programs against one instance of the backend a harness factory makes."""

    #: Set by :meth:`configure`: called once per program.
    harness_factory: ClassVar[HarnessFactory | None] = None

    @classmethod
    def configure(
        cls,
        factory: HarnessFactory,
        *,
        name: str = "InstanceMachine",
        start_from: State = State.INITIAL,
        settings: Settings | None = None,
        **setting_values: Any,
    ) -> type[InstanceStateMachine]:
        """A subclass named ``name`` driving what ``factory`` makes.

        ``start_from`` makes every program begin by walking the table's shortest path
        to that stable state (a step ``reach_<state>()``): with a slow backend, a
        handful of programs then still exercise a running VM.

        Its ``TestCase`` (for pytest or unittest) uses ``settings`` or, by default,
        the current hypothesis profile with ``deadline=None`` (VM operations take
        as long as they take) updated with ``setting_values``.
        """
        namespace: dict[str, Any] = {"harness_factory": staticmethod(factory)}
        if start_from is not State.INITIAL:
            namespace[f"reach_{start_from.name.lower()}"] = _reach_rule(start_from)
        machine: type[InstanceStateMachine] = type(name, (cls,), namespace)
        machine.TestCase.settings = settings or Settings(**{"deadline": None, **setting_values})
        return machine

    def __init__(self) -> None:
        super().__init__()
        factory = type(self).harness_factory
        if factory is None:
            raise TypeError(
                "use InstanceStateMachine.configure(factory) to make a runnable machine"
            )
        self.harness: Harness = as_harness(factory())
        try:
            self.instance = self.harness.new_instance()
        except BaseException:
            self.harness.close()
            raise
        self.capabilities = self.instance.capabilities
        self.fault_kinds = self.harness.fault_kinds()
        #: The table's prediction of the instance's state.
        self.model = State.INITIAL
        #: A VM died and the backend cannot notice (``detects_exit`` is False).
        self.death_unnoticed = False
        self.execs = 0

    # --- operations ------------------------------------------------------------------------

    def refuses(self, action: Action) -> bool:
        """True when ``action`` must be refused in the model's state."""
        unsupported = action is Action.SUSPEND and not self.capabilities.suspend
        return unsupported or not is_allowed(self.model, action)

    def operate(self, action: Action, *, fault: str | None = None) -> None:
        """Perform ``action`` (its command made to ``fault``: FAIL or HANG) and check it."""
        self._operate(action, fault)
        self.check_after_step(ask_tool=True)

    def _operate(self, action: Action, fault: str | None) -> None:
        """The checks of one operation; updates the model to what the table predicts."""
        vm, harness, before = self.instance, self.harness, self.model
        timeout = harness.timeout
        if fault is not None:
            assert harness.faults is not None
            if fault == HANG:
                assert isinstance(harness.faults, HangInjector)
                harness.faults.hang_next(vm.id, action)
                timeout = harness.hang_timeout
            else:
                harness.faults.fail_next(vm.id, action)
        commands = harness.commands_issued()
        result: object = None
        error: VMError | None = None
        try:
            result = perform(vm, action, timeout)
        except VMError as err:
            error = err
        finally:
            if fault is not None:
                assert harness.faults is not None
                harness.faults.clear(vm.id)
        after = vm.state()
        ran = None if commands is None else (harness.commands_issued() or 0) - commands
        what = f"{action} from {before}"
        expect(after.is_stable, f"{what} returned but left the transient state {after}")

        if self.refuses(action):
            unsupported = action is Action.SUSPEND and not self.capabilities.suspend
            if not isinstance(error, TransitionNotAllowedError) and not (
                unsupported and isinstance(error, NotSupportedError)
            ):
                raise KitFailure(f"{what} must be refused, got {_describe(result, error)}")
            if isinstance(error, TransitionNotAllowedError):
                expect(
                    (error.action, error.state) == (action, before),
                    f"the refusal of {what} names {error.action} in {error.state}",
                )
            expect(after is before, f"refused {what} changed the state to {after}")
            expect(not ran, f"refused {what} ran {ran} command(s)")
            return
        if is_noop(before, action):
            expect(error is None, f"{what} is a no-op but raised {_describe(result, error)}")
            expect(after is before, f"no-op {what} changed the state to {after}")
            expect(not ran, f"no-op {what} ran {ran} command(s)")
            if action is Action.STOP:
                expect(
                    isinstance(result, StopResult) and result.noop,
                    f"{what} must report a no-op, got {result!r}",
                )
            return
        if before is State.INITIAL and action is Action.DELETE:
            # Nothing was cloned (the observer agrees), so there is nothing to delete.
            expect(
                isinstance(error, NotFoundError),
                f"{what} with nothing cloned must raise NotFoundError, "
                f"got {_describe(result, error)}",
            )
            expect(after is State.INITIAL, f"{what} that found nothing left {after}")
            return

        expected = outcome(before, action)
        if fault is not None:
            if error is None:
                expect(after is expected, f"{what} succeeded despite a fault but left {after}")
            else:
                legal = legal_after_failure(before, action)
                expect(
                    after in legal,
                    f"{what} failed ({type(error).__name__}) and left {after}, "
                    f"want one of {', '.join(sorted(str(s) for s in legal))}",
                )
            self.model = after
            return
        if error is not None:
            raise KitFailure(f"{what} failed: {type(error).__name__}: {error}") from error
        expect(after is expected, f"{what} left {after}, want {expected}")
        if action is Action.STOP:
            expect(
                isinstance(result, StopResult) and not result.noop,
                f"{what} stopped a running VM but reported {result!r}",
            )
        self.model = after
        self.death_unnoticed = False

    @precondition(lambda self: self.capabilities.exec)
    @rule()
    def exec_echo(self) -> None:
        """Exec gives exact output while Running and is refused otherwise."""
        self.execs += 1
        token = f"step-{self.execs}"
        before = self.model
        try:
            result = self.instance.exec("echo", token, timeout=self.harness.timeout)
        except (NotRunningError, TransitionNotAllowedError) as err:
            expect(
                before is not State.RUNNING or self.death_unnoticed,
                f"exec in a Running VM raised {type(err).__name__}: {err}",
            )
        else:
            expect(before is State.RUNNING, f"exec in state {before} did not raise")
            expect(
                (result.exit_code, result.stdout) == (0, f"{token}\n"),
                f"echo {token} gave {result}",
            )
        expect(self.instance.state() is before, f"exec changed the state from {before}")
        self.check_after_step()

    # --- environment events -----------------------------------------------------------------

    @precondition(lambda self: DIE in self.fault_kinds and self.model is State.RUNNING)
    @rule()
    def vm_dies(self) -> None:
        """The VM's own process exits (crash, guest shutdown) without being asked."""
        assert self.harness.faults is not None
        self.harness.faults.kill_vm(self.instance.id)
        after = self.instance.state()
        if self.capabilities.detects_exit:
            expect(
                after in (State.STOPPED, State.ERROR_UNKNOWN),
                f"the VM died on its own but the backend reports {after}",
            )
        else:
            expect(after.is_stable, f"the VM died and the backend reports {after}")
            self.death_unnoticed = after is State.RUNNING
        self.model = after
        self.check_after_step(ask_tool=True)

    @precondition(lambda self: DELAY in self.fault_kinds)
    @rule(seconds=st.sampled_from([0.5, 3.0, 30.0]))
    def commands_slow_down(self, seconds: float) -> None:
        """The tool becomes slow; operations must still succeed (on the backend's clock)."""
        assert self.harness.faults is not None
        self.harness.faults.delay(self.instance.id, seconds)
        self.check_after_step()

    # --- what holds after every step, and teardown -------------------------------------------

    def check_after_step(self, *, ask_tool: bool = False) -> None:
        """``state()`` is the model's; with ``ask_tool`` the tool's own view agrees too.

        Steps that may change the VM ask the tool (it costs a command). Checked inside
        the steps rather than as hypothesis invariants, so that a failing program
        prints as its steps alone.
        """
        state = self.instance.state()
        expect(state is self.model, f"state() is {state}, the model says {self.model}")
        if ask_tool and not self.death_unnoticed:
            check_observed(self.harness, self.instance, state)

    def teardown(self) -> None:
        """Clean up from wherever the program got to; nothing may be left behind."""
        failing = sys.exception() is not None
        try:
            if failing:  # report the step's failure, not a consequence of it
                try:
                    cleanup(self.instance, stop_timeout=self.harness.timeout)
                except VMError as err:
                    logger.debug("cleanup after a failed program: %s", err)
                self.harness.kill_leftover_processes()
                return
            state = self.instance.state()
            try:
                cleanup(self.instance, stop_timeout=self.harness.timeout)
            except VMError as err:
                raise KitFailure(f"cleanup from {state} failed: {err}") from err
            check_nothing_left(self.harness, self.instance)
        finally:
            self.harness.close()


def _describe(result: object, error: BaseException | None) -> str:
    if error is None:
        return f"success ({result!r})"
    return f"{type(error).__name__}: {error}"


def _reach_rule(target: State) -> Callable[[InstanceStateMachine], None]:
    def reach(self: InstanceStateMachine) -> None:
        path = paths_to_stable_states(self.capabilities.suspend).get(target)
        if path is None:
            raise KitFailure(f"{target} cannot be reached by {self.instance.id}")
        for action in path:
            self.operate(action)

    reach.__name__ = reach.__qualname__ = f"reach_{target.name.lower()}"
    reach.__doc__ = f"Walk the table's shortest path from Initial to {target}."
    return initialize()(reach)


def _operation_rule(action: Action) -> Callable[[InstanceStateMachine], None]:
    def operation(self: InstanceStateMachine) -> None:
        self.operate(action)

    operation.__name__ = operation.__qualname__ = action.name.lower()
    operation.__doc__ = f"Ask for {action}, whatever the state (refusals are checked too)."
    return rule()(operation)


#: Rule name suffix for each kind of command fault.
FAULT_SUFFIX = {FAIL: "fails", HANG: "hangs"}


def _faulty_rule(action: Action, fault: str) -> Callable[[InstanceStateMachine], None]:
    def faulty_operation(self: InstanceStateMachine) -> None:
        self.operate(action, fault=fault)

    name = f"{action.name.lower()}_{FAULT_SUFFIX[fault]}"
    faulty_operation.__name__ = faulty_operation.__qualname__ = name
    faulty_operation.__doc__ = (
        f"{action} whose tool command {FAULT_SUFFIX[fault]} (only where it would run)."
    )

    def applies(self: InstanceStateMachine) -> bool:
        return (
            fault in self.fault_kinds
            and (fault != HANG or isinstance(self.harness.faults, HangInjector))
            and not self.refuses(action)
            and not is_noop(self.model, action)
            and not (self.model is State.INITIAL and action is Action.DELETE)
        )

    return precondition(applies)(rule()(faulty_operation))


# One rule per operation of the table, plus variants whose command fails or hangs.
for _action in OPERATIONS:
    setattr(InstanceStateMachine, _action.name.lower(), _operation_rule(_action))
    for _fault, _suffix in FAULT_SUFFIX.items():
        setattr(
            InstanceStateMachine,
            f"{_action.name.lower()}_{_suffix}",
            _faulty_rule(_action, _fault),
        )
