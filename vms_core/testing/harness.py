"""What the kit needs to know about a backend under test, beyond the ``Backend`` protocol.

A :class:`Harness` bundles a loaded backend with optional hooks the kit uses when
they exist: fault injection (environment events), a command counter (to prove a
refused operation runs nothing), an observer (the underlying tool's own view of a
VM) and a process census (to prove nothing is left behind). A plain ``Backend``
is enough: :func:`as_harness` fills in what can be derived from it.

This module imports neither hypothesis nor pytest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from vms_core.backend import Backend
from vms_core.instance import Instance
from vms_core.states import Action, State

logger = logging.getLogger(__name__)
#: Environment events a :class:`FaultInjector` may support (its ``kinds``).
DIE = "die"
FAIL = "fail"
DELAY = "delay"
#: Needs a :class:`HangInjector` too.
HANG = "hang"


@runtime_checkable
class FaultInjector(Protocol):
    """Makes things go wrong for one VM, the way they do in the field.

    ``kinds`` says which of :data:`DIE`, :data:`FAIL`, :data:`DELAY` (and, with a
    :class:`HangInjector`, :data:`HANG`) work; the kit only calls the methods for those.
    A method for a kind not listed may raise ``NotImplementedError``.
    """

    @property
    def kinds(self) -> frozenset[str]: ...

    def kill_vm(self, name: str) -> None:
        """Make the VM's own process exit as if it crashed; return once it has exited."""
        ...

    def fail_next(self, name: str, action: Action) -> None:
        """Make the next tool command that carries out ``action`` for ``name`` fail."""
        ...

    def delay(self, name: str, seconds: float) -> None:
        """Make ``name``'s next commands slower by ``seconds`` (on the backend's clock)."""
        ...

    def clear(self, name: str) -> None:
        """Disarm whatever is still pending for ``name``."""
        ...


@runtime_checkable
class HangInjector(Protocol):
    """Optional addition to a :class:`FaultInjector` whose ``kinds`` include :data:`HANG`."""

    def hang_next(self, name: str, action: Action) -> None:
        """Make the next tool command that carries out ``action`` for ``name`` never finish.

        The operation is then asked with ``timeout=Harness.hang_timeout`` and must give
        up, leaving a legal state and nothing running that it started.
        """
        ...


#: The number of tool commands the backend has issued so far (monotonic).
CommandCounter = Callable[[], int]

#: The tool's own view of the VM ``name``: its state, or None when no such VM exists.
Observer = Callable[[str], State | None]

#: Descriptions of processes the backend left behind (empty when clean).
ProcessCensus = Callable[[], list[str]]

#: Kills what the census finds; returns descriptions of the processes it killed.
ProcessKiller = Callable[[], list[str]]


@dataclasses.dataclass
class Harness:
    """A backend under test plus the optional hooks the kit's checks use."""

    backend: Backend
    faults: FaultInjector | None = None
    commands: CommandCounter | None = None
    #: Defaults to the backend's own ``list_vms`` (for tart: ``tart list``).
    observe: Observer | None = None
    #: Defaults to a :class:`ChildCensus` (this process's new children, Linux only).
    leftover_processes: ProcessCensus | None = None
    #: Kills leftover processes once they are reported (a test run must not leave
    #: them behind). Defaults to the default census's :meth:`ChildCensus.kill`.
    kill_leftovers: ProcessKiller | None = None
    #: Passed as ``timeout=`` to every operation (None: the backend's defaults).
    timeout: float | None = None
    #: Passed as ``timeout=`` to an operation whose command was made to hang.
    hang_timeout: float = 5.0
    #: Releases what the factory set up (temporary homes, ...).
    close: Callable[[], None] = lambda: None

    def __post_init__(self) -> None:
        expect_protocol(self.backend, Backend, "the backend")
        if self.observe is None:
            self.observe = observe_by_listing(self.backend)
        if self.leftover_processes is None:
            census = ChildCensus()
            self.leftover_processes = census
            if self.kill_leftovers is None:
                self.kill_leftovers = census.kill

    def fault_kinds(self) -> frozenset[str]:
        return self.faults.kinds if self.faults is not None else frozenset()

    def commands_issued(self) -> int | None:
        """The command count, or None when this backend cannot count commands."""
        return self.commands() if self.commands is not None else None

    def kill_leftover_processes(self) -> list[str]:
        """Kill what the census finds, if this harness can; returns what was killed."""
        if self.kill_leftovers is None:
            return []
        killed = self.kill_leftovers()
        if killed:
            logger.warning("killed processes left behind: %s", ", ".join(killed))
        return killed

    def new_instance(self) -> Instance:
        """A new instance from the backend; it must satisfy ``Instance`` and be Initial."""
        instance = self.backend.create_instance()
        expect_protocol(instance, Instance, "the instance from create_instance()")
        state = instance.state()
        expect(state is State.INITIAL, f"a new instance is {state}, want Initial")
        return instance


#: What the kit is given: anything that makes a fresh backend or harness per call.
HarnessFactory = Callable[[], "Harness | Backend"]


def as_harness(made: Harness | Backend) -> Harness:
    """Wrap a bare backend in a :class:`Harness` with the derived hooks."""
    return made if isinstance(made, Harness) else Harness(made)


def observe_by_listing(backend: Backend) -> Observer:
    """An observer that asks the backend to list its VMs (the tool's view)."""

    def observe(name: str) -> State | None:
        for info in backend.list_vms(name):
            if info.name == name:
                return info.state
        return None

    return observe


def _children(pid: int) -> dict[int, str]:
    """Pid -> description of the live or unreaped children of ``pid`` (empty without /proc)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    found = {}
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as stat_file:
                stat = stat_file.read()
        except OSError:
            continue  # exited meanwhile
        # "pid (comm) state ppid ...": comm may contain spaces and parentheses.
        comm_end = stat.rfind(")")
        fields = stat[comm_end + 2 :].split()
        if len(fields) >= 2 and fields[1] == str(pid):
            comm = stat[stat.find("(") + 1 : comm_end]
            found[int(entry)] = f"pid {entry} ({comm}, state {fields[0]})"
    return found


def child_processes(pid: int | None = None) -> list[str]:
    """Live or unreaped (zombie) children of ``pid`` (default: this process).

    Reads ``/proc``; returns an empty list where there is no ``/proc``.
    """
    return list(_children(os.getpid() if pid is None else pid).values())


class ChildCensus:
    """This process's children that were not there when the census was made.

    The default process census of a :class:`Harness`: children that other code
    (another test's fixture, a test runner) already had are not the backend's.
    """

    def __init__(self) -> None:
        self.baseline = frozenset(_children(os.getpid()))

    def new_children(self) -> dict[int, str]:
        return {
            pid: description
            for pid, description in _children(os.getpid()).items()
            if pid not in self.baseline
        }

    def __call__(self) -> list[str]:
        return list(self.new_children().values())

    def kill(self) -> list[str]:
        """SIGKILL the new children (and the process group each one leads), then reap them.

        Returns their descriptions. For test runs only: whatever they were doing is lost.
        """
        found = self.new_children()
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(pid) == pid:  # its own group: take its children too
                    os.killpg(pid, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)
        for pid in found:
            with contextlib.suppress(ChildProcessError):  # someone else reaped it
                os.waitpid(pid, 0)
        return list(found.values())


class KitFailure(AssertionError):
    """A backend broke the contract the kit checks."""


#: How to get what the hypothesis-based parts of the kit need.
TESTING_EXTRA = "pip install 'vms-lifecycle[testing]'"


def missing_testing_extra(module: str, err: ModuleNotFoundError) -> ModuleNotFoundError:
    """The error to raise (``from err``) when ``module`` cannot import the extra's ``err.name``."""
    return ModuleNotFoundError(
        f"{module} needs {err.name}, which comes with the testing extra: {TESTING_EXTRA}",
        name=err.name,
    )


def protocol_members(protocol: type) -> list[str]:
    """The public attributes and methods ``protocol`` declares (its own and its bases')."""
    members: set[str] = set()
    for cls in protocol.__mro__:
        if cls is object or not getattr(cls, "_is_protocol", False):
            continue
        declared = [*vars(cls), *getattr(cls, "__annotations__", {})]
        members.update(name for name in declared if not name.startswith("_"))
    return sorted(members)


def expect_protocol(value: object, protocol: type, what: str) -> None:
    """Raise :class:`KitFailure` naming the missing members unless ``value`` satisfies
    the runtime-checkable ``protocol`` (code typed against it would break otherwise)."""
    if isinstance(value, protocol):
        return
    missing = [name for name in protocol_members(protocol) if not hasattr(value, name)]
    raise KitFailure(
        f"{what} ({type(value).__qualname__}) does not satisfy "
        f"vms_core.{protocol.__name__}: missing {', '.join(missing) or 'members'}"
    )


def expect(condition: bool, message: str) -> None:
    """Raise :class:`KitFailure` with ``message`` unless ``condition`` (survives ``-O``)."""
    if not condition:
        raise KitFailure(message)


def perform(instance: Instance, action: Action, timeout: float | None) -> object:
    """Ask ``instance`` for ``action`` through its method of the same name."""
    if action is Action.NONE:
        raise ValueError("Action.NONE is the waiting no-op, not an operation")
    method: Callable[..., object] = getattr(instance, action.name.lower())
    return method(timeout=timeout)


def absent_in(state: State) -> bool:
    """True for the states in which the tool must not know the VM at all."""
    return state in (State.INITIAL, State.DELETED)


def check_observed(harness: Harness, instance: Instance, reported: State) -> None:
    """The tool's own view of ``instance`` agrees with the ``reported`` stable state."""
    if harness.observe is None or reported is State.ERROR_UNKNOWN or reported.is_transient:
        return  # ErrorUnknown means "the backend does not know": nothing to agree with
    observed = harness.observe(instance.id)
    if absent_in(reported):
        expect(
            observed is None,
            f"{instance.id} is {reported} but the tool still lists it as {observed}",
        )
    else:
        expect(
            observed is reported,
            f"{instance.id} is reported {reported} but the tool says "
            f"{'it does not exist' if observed is None else observed}",
        )


def check_nothing_left(harness: Harness, instance: Instance) -> None:
    """After cleanup: the instance is gone (or was never cloned), no VM, no process.

    Leftover processes are reported, then killed (see :attr:`Harness.kill_leftovers`).
    """
    try:
        state = instance.state()
        expect(absent_in(state), f"{instance.id} is {state} after cleanup, want Deleted or Initial")
        check_observed(harness, instance, state)
    except BaseException:
        harness.kill_leftover_processes()
        raise
    leftovers = harness.leftover_processes() if harness.leftover_processes else []
    if not leftovers:
        return
    if harness.kill_leftover_processes():
        fate = "the kit killed them (this is a test run)"
    else:
        fate = "they are still running: the harness has no kill_leftovers hook"
    raise KitFailure(f"processes left behind by {instance.id}: {', '.join(leftovers)}; {fate}")
