"""A conformance suite any backend can run: the walks every user of an ``Instance`` relies on.

Two ways in:

- :func:`run_conformance` runs every check against a harness factory and raises
  :class:`~vms_core.testing.harness.KitFailure` naming each broken check;
- :class:`ConformanceTests` is a base class whose ``test_*`` methods pytest (or
  unittest) collects: subclass it as ``TestMyBackend`` and implement
  ``make_harness``; or let :func:`conformance_tests` build that class.

Each check gets a fresh harness from the factory and closes it; each instance it
makes is cleaned up afterwards, and on success the cleanup must leave no VM and no
process behind. Checks that do not apply (suspend on a backend that cannot) raise
:class:`unittest.SkipTest`.
"""

from __future__ import annotations

import io
import logging
import unittest
from collections import deque
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress

from vms_core.backend import Backend
from vms_core.errors import (
    BackendCommandError,
    NotFoundError,
    NotRunningError,
    NotSupportedError,
    TransitionNotAllowedError,
    VMError,
)
from vms_core.instance import Instance, StopResult
from vms_core.lifecycle import cleanup
from vms_core.states import Action, State, is_allowed, is_noop, outcome
from vms_core.testing.harness import (
    Harness,
    HarnessFactory,
    KitFailure,
    as_harness,
    check_nothing_left,
    check_observed,
    expect,
    perform,
)

logger = logging.getLogger(__name__)

#: The operations of the lifecycle, in declaration order (everything but the no-op).
OPERATIONS = tuple(action for action in Action if action is not Action.NONE)

Check = Callable[[Harness], None]


def paths_to_stable_states(suspendable: bool = True) -> dict[State, tuple[Action, ...]]:
    """The shortest action path from Initial to every stable state the table reaches.

    Derived from the transition table, so a new reachable state gets checked too.
    Delete from Initial is left out: it only cleans up after a clone that failed
    part way, and with nothing cloned it finds nothing to delete.
    """
    paths: dict[State, tuple[Action, ...]] = {State.INITIAL: ()}
    queue = deque([State.INITIAL])
    while queue:
        state = queue.popleft()
        for action in OPERATIONS:
            if (action is Action.SUSPEND and not suspendable) or (
                state is State.INITIAL and action is Action.DELETE
            ):
                continue
            target = outcome(state, action)
            if target is not None and target not in paths:
                paths[target] = (*paths[state], action)
                queue.append(target)
    return paths


@contextmanager
def fresh_instance(harness: Harness) -> Iterator[Instance]:
    """A new instance, cleaned up afterwards; on success nothing may be left behind."""
    instance = harness.new_instance()
    try:
        yield instance
    except BaseException:
        with suppress(VMError):  # the check's own failure is the one to report
            cleanup(instance, stop_timeout=harness.timeout)
        harness.kill_leftover_processes()
        raise
    cleanup(instance, stop_timeout=harness.timeout)
    check_nothing_left(harness, instance)


def step(harness: Harness, instance: Instance, action: Action, want: State) -> object:
    """Perform ``action``; the instance and the tool must then both say ``want``.

    A no-op (Stop from Stopped, Suspend from Suspended) must run no command.
    """
    before = instance.state()
    commands = harness.commands_issued()
    try:
        result = perform(instance, action, harness.timeout)
    except VMError as err:
        raise KitFailure(f"{action} from {before} failed: {type(err).__name__}: {err}") from err
    state = instance.state()
    expect(state is want, f"{action} left {instance.id} {state}, want {want}")
    if commands is not None and is_noop(before, action):
        ran = (harness.commands_issued() or 0) - commands
        expect(ran == 0, f"no-op {action} from {before} ran {ran} command(s)")
    check_observed(harness, instance, state)
    return result


def _require_suspend(instance: Instance) -> None:
    if not instance.capabilities.suspend:
        raise unittest.SkipTest(f"{instance.id} is not suspendable")


def check_lifecycle_walk(harness: Harness) -> None:
    """Clone, start, refusals while Running, properties, stop twice, start, suspend twice
    and resume, stop, delete."""
    with fresh_instance(harness) as vm:
        step(harness, vm, Action.CLONE, State.STOPPED)
        step(harness, vm, Action.START, State.RUNNING)
        _expect_table_refusals(harness, vm, State.RUNNING)
        properties = vm.properties()
        expect(
            properties.clone_info.name == vm.id,
            f"properties().clone_info.name is {properties.clone_info.name!r}, want {vm.id!r}",
        )
        if vm.capabilities.ip:
            expect(bool(properties.ip), f"a running {vm.id} reports no IP: {properties}")
        first = step(harness, vm, Action.STOP, State.STOPPED)
        if not isinstance(first, StopResult):
            raise KitFailure(f"stop() returned {first!r}, want a StopResult")
        expect(not first.noop, f"stopping a running VM was reported as a no-op: {first}")
        again = step(harness, vm, Action.STOP, State.STOPPED)
        expect(
            isinstance(again, StopResult) and again.noop,
            f"a second stop must be a no-op, got {again!r}",
        )
        step(harness, vm, Action.START, State.RUNNING)
        if vm.capabilities.suspend:
            step(harness, vm, Action.SUSPEND, State.SUSPENDED)
            step(harness, vm, Action.SUSPEND, State.SUSPENDED)
            step(harness, vm, Action.START, State.RUNNING)
        else:
            _expect_refused(harness, vm, Action.SUSPEND, NotSupportedError)
        step(harness, vm, Action.STOP, State.STOPPED)
        step(harness, vm, Action.DELETE, State.DELETED)


def check_exec(harness: Harness) -> None:
    """Exact output, exit codes as data, stderr, stdin, streaming, ``check=True``."""
    with fresh_instance(harness) as vm:
        if not vm.capabilities.exec:
            raise unittest.SkipTest(f"{vm.id} cannot exec")
        step(harness, vm, Action.CLONE, State.STOPPED)
        step(harness, vm, Action.START, State.RUNNING)
        streamed = io.StringIO()
        hello = vm.exec("echo", "hello", timeout=harness.timeout, stdout=streamed)
        expect(
            (hello.exit_code, hello.stdout, hello.stderr) == (0, "hello\n", ""),
            f"echo hello gave {hello}",
        )
        expect(streamed.getvalue() == "hello\n", f"streamed stdout was {streamed.getvalue()!r}")
        failing = vm.exec("sh", "-c", "exit 3", timeout=harness.timeout)
        expect(failing.exit_code == 3 and not failing.ok, f"exit 3 gave {failing}")
        try:
            vm.exec("sh", "-c", "exit 3", timeout=harness.timeout, check=True)
        except BackendCommandError as err:
            expect(err.exit_code == 3, f"check=True raised with exit code {err.exit_code}")
        else:
            raise KitFailure("exec(check=True) of a failing command did not raise")
        oops = vm.exec("sh", "-c", "echo oops >&2", timeout=harness.timeout)
        expect((oops.stdout, oops.stderr) == ("", "oops\n"), f"stderr was lost: {oops}")
        piped = vm.exec("cat", stdin="piped\n", timeout=harness.timeout)
        expect(piped.stdout == "piped\n", f"stdin did not reach the command: {piped}")
        expect(vm.state() is State.RUNNING, f"exec changed the state to {vm.state()}")


def check_delete_from_suspended(harness: Harness) -> None:
    """A suspended VM is deleted directly, without being resumed or stopped first."""
    with fresh_instance(harness) as vm:
        _require_suspend(vm)
        step(harness, vm, Action.CLONE, State.STOPPED)
        step(harness, vm, Action.START, State.RUNNING)
        step(harness, vm, Action.SUSPEND, State.SUSPENDED)
        step(harness, vm, Action.DELETE, State.DELETED)


def _expect_refused(
    harness: Harness,
    vm: Instance,
    action: Action,
    *errors: type[VMError],
) -> VMError:
    """``action`` raises one of ``errors``, changes nothing and runs no command."""
    before = vm.state()
    commands = harness.commands_issued()
    try:
        perform(vm, action, harness.timeout)
    except errors as err:
        refusal: VMError = err
    except VMError as err:
        wanted = " or ".join(error.__name__ for error in errors)
        raise KitFailure(
            f"{action} from {before} raised {type(err).__name__}, want {wanted}"
        ) from err
    else:
        raise KitFailure(f"{action} from {before} was not refused")
    after = vm.state()
    expect(after is before, f"refused {action} changed the state from {before} to {after}")
    if commands is not None:
        ran = (harness.commands_issued() or 0) - commands
        expect(ran == 0, f"refused {action} from {before} ran {ran} command(s)")
    return refusal


def _expect_table_refusals(harness: Harness, vm: Instance, state: State) -> None:
    """Every operation the table forbids from ``state`` is refused with
    TransitionNotAllowedError naming it, changing nothing and running no command.

    Done inside a walk that is already in ``state``, so it costs no extra boot.
    """
    for action in OPERATIONS:
        if is_allowed(state, action):
            continue
        err = _expect_refused(harness, vm, action, TransitionNotAllowedError)
        assert isinstance(err, TransitionNotAllowedError)
        expect(
            (err.action, err.state) == (action, state),
            f"the refusal names {err.action} in {err.state}, want {action} in {state}",
        )


def check_fresh_instance(harness: Harness) -> None:
    """A fresh instance refuses every action the table forbids, running nothing.

    Delete (allowed, to clean up after a failed clone) finds nothing to delete, and
    exec needs a running VM. After all that the instance can still be cloned.
    """
    with fresh_instance(harness) as vm:
        for action in OPERATIONS:
            if is_allowed(State.INITIAL, action):
                continue
            refusals: tuple[type[VMError], ...] = (TransitionNotAllowedError,)
            if action is Action.SUSPEND and not vm.capabilities.suspend:
                refusals = (TransitionNotAllowedError, NotSupportedError)
            err = _expect_refused(harness, vm, action, *refusals)
            if isinstance(err, TransitionNotAllowedError):
                expect(
                    (err.action, err.state) == (action, State.INITIAL),
                    f"the refusal names {err.action} in {err.state}, "
                    f"want {action} in {State.INITIAL}",
                )
        before = vm.state()
        try:
            vm.exec("echo", "hello", timeout=harness.timeout)
        except (NotRunningError, TransitionNotAllowedError):
            pass
        else:
            raise KitFailure("exec on a fresh instance did not raise NotRunningError")
        expect(vm.state() is before, f"a refused exec changed the state to {vm.state()}")
        try:
            vm.delete(timeout=harness.timeout)
        except NotFoundError:
            pass
        else:
            raise KitFailure("deleting a never-cloned instance did not raise NotFoundError")
        expect(
            vm.state() is State.INITIAL,
            f"a delete that found nothing left the state {vm.state()}, want Initial",
        )
        step(harness, vm, Action.CLONE, State.STOPPED)


def check_cleanup_from(harness: Harness, target: State) -> None:
    """``cleanup`` from ``target`` (reached through the table) leaves nothing behind."""
    with fresh_instance(harness) as vm:
        paths = paths_to_stable_states(vm.capabilities.suspend)
        if target not in paths:
            raise unittest.SkipTest(f"{target} is not reachable for {vm.id}")
        state = State.INITIAL
        for action in paths[target]:
            state = outcome(state, action) or state
            step(harness, vm, action, state)
        try:
            cleanup(vm, stop_timeout=harness.timeout)
        except VMError as err:
            raise KitFailure(f"cleanup from {target} failed: {err}") from err
        # fresh_instance's exit checks that no VM and no process are left.


def _cleanup_check(target: State) -> Check:
    def check(harness: Harness) -> None:
        check_cleanup_from(harness, target)

    check.__name__ = f"check_cleanup_from_{target.name.lower()}"
    check.__doc__ = f"cleanup from {target} leaves no VM and no process behind."
    return check


#: Every check by name; cleanup gets one per stable state the table can reach.
CHECKS: dict[str, Check] = {
    "lifecycle_walk": check_lifecycle_walk,
    "exec": check_exec,
    "delete_from_suspended": check_delete_from_suspended,
    "fresh_instance_refuses": check_fresh_instance,
    **{
        f"cleanup_from_{state.name.lower()}": _cleanup_check(state)
        for state in paths_to_stable_states(suspendable=True)
    },
}


def run_check(factory: HarnessFactory, check: Check) -> None:
    """Run one check against a fresh harness, closing it afterwards."""
    harness = as_harness(factory())
    try:
        check(harness)
    finally:
        harness.close()


def run_conformance(factory: HarnessFactory) -> dict[str, str]:
    """Run every check; returns name -> ``"passed"`` or ``"skipped: why"``.

    Raises :class:`KitFailure` listing every check that failed.
    """
    outcomes: dict[str, str] = {}
    failures: dict[str, BaseException] = {}
    for name, check in CHECKS.items():
        try:
            run_check(factory, check)
        except unittest.SkipTest as skip:
            outcomes[name] = f"skipped: {skip}"
        except (AssertionError, VMError) as err:
            failures[name] = err
            outcomes[name] = f"failed: {err}"
        else:
            outcomes[name] = "passed"
    if failures:
        lines = "\n".join(
            f"- {name}: {type(err).__name__}: {err}" for name, err in failures.items()
        )
        raise KitFailure(f"{len(failures)} conformance check(s) failed:\n{lines}")
    return outcomes


class ConformanceTests:
    """Base class of a conformance test class: subclass as ``Test...``, implement
    :meth:`make_harness`; one ``test_<check>`` method per entry of :data:`CHECKS`."""

    def make_harness(self) -> Harness | Backend:
        raise NotImplementedError("implement make_harness() to return a Harness or a Backend")

    def run_check(self, check: Check) -> None:
        run_check(self.make_harness, check)


def _test_method(check: Check) -> Callable[[ConformanceTests], None]:
    def test(self: ConformanceTests) -> None:
        self.run_check(check)

    test.__doc__ = check.__doc__
    return test


for _name, _check in CHECKS.items():
    setattr(ConformanceTests, f"test_{_name}", _test_method(_check))


def conformance_tests(
    factory: HarnessFactory,
    name: str = "TestConformance",
    only: Collection[str] | None = None,
) -> type:
    """A ``ConformanceTests`` subclass named ``name`` whose harness comes from ``factory``.

    Assign it to a module-level name starting with ``Test`` for pytest to collect.
    ``only`` keeps just those checks (names of :data:`CHECKS`), for slow backends.
    """
    if only is not None and not set(only) <= set(CHECKS):
        unknown = ", ".join(sorted(set(only) - set(CHECKS)))
        raise ValueError(f"no such conformance check(s): {unknown}; known: {', '.join(CHECKS)}")

    def make_harness(self: ConformanceTests) -> Harness | Backend:
        return factory()

    namespace: dict[str, object] = {"make_harness": make_harness}
    if only is not None:
        for check_name in set(CHECKS) - set(only):
            namespace[f"test_{check_name}"] = None  # hides the inherited test
    return type(name, (ConformanceTests,), namespace)
