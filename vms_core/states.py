"""The VM lifecycle as data: states, actions and the one transition table.

Everything that needs to know what is legal (backends' guards, the renderings,
the hypothesis state machine) derives it from ``TRANSITIONS`` and nothing else.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType


class State(enum.Enum):
    """Where a VM is in its lifecycle. Declaration order is the canonical order."""

    INITIAL = "Initial"
    CLONING = "Cloning"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    SUSPENDING = "Suspending"
    SUSPENDED = "Suspended"
    DELETING = "Deleting"
    DELETED = "Deleted"
    ERROR_UNKNOWN = "ErrorUnknown"

    def __str__(self) -> str:
        return self.value

    @property
    def is_transient(self) -> bool:
        """True for the states an operation passes through (Cloning, Starting, ...)."""
        return self in SETTLES_TO

    @property
    def is_stable(self) -> bool:
        return not self.is_transient


class Action(enum.Enum):
    """What can be asked of a VM. ``NONE`` is the "waiting" no-op of transient states."""

    NONE = "None"
    CLONE = "Clone"
    START = "Start"
    STOP = "Stop"
    SUSPEND = "Suspend"
    DELETE = "Delete"

    def __str__(self) -> str:
        return self.value


_S = State
_A = Action

#: The only source of legality: (state, action) -> next state.
TRANSITIONS: Mapping[tuple[State, Action], State] = MappingProxyType(
    {
        (_S.INITIAL, _A.CLONE): _S.CLONING,
        # Delete from Initial cleans up after a clone that failed part way.
        (_S.INITIAL, _A.DELETE): _S.DELETING,
        (_S.CLONING, _A.NONE): _S.CLONING,
        (_S.STARTING, _A.NONE): _S.STARTING,
        (_S.RUNNING, _A.STOP): _S.STOPPING,
        (_S.RUNNING, _A.SUSPEND): _S.SUSPENDING,
        (_S.STOPPING, _A.NONE): _S.STOPPING,
        (_S.STOPPED, _A.START): _S.STARTING,
        (_S.STOPPED, _A.STOP): _S.STOPPED,  # idempotent
        (_S.STOPPED, _A.DELETE): _S.DELETING,
        (_S.SUSPENDING, _A.NONE): _S.SUSPENDING,
        (_S.SUSPENDED, _A.START): _S.STARTING,  # resume
        (_S.SUSPENDED, _A.SUSPEND): _S.SUSPENDED,  # idempotent
        (_S.SUSPENDED, _A.DELETE): _S.DELETING,
        (_S.DELETING, _A.NONE): _S.DELETING,
        (_S.DELETED, _A.CLONE): _S.CLONING,  # an instance can be cloned again
        (_S.ERROR_UNKNOWN, _A.DELETE): _S.DELETING,
    }
)

#: Where each transient state lands when its operation succeeds.
SETTLES_TO: Mapping[State, State] = MappingProxyType(
    {
        _S.CLONING: _S.STOPPED,
        _S.STARTING: _S.RUNNING,
        _S.STOPPING: _S.STOPPED,
        _S.SUSPENDING: _S.SUSPENDED,
        _S.DELETING: _S.DELETED,
    }
)


def next_state(state: State, action: Action) -> State | None:
    """The state ``action`` leads to from ``state``, or None when it is not allowed."""
    return TRANSITIONS.get((state, action))


def is_allowed(state: State, action: Action) -> bool:
    return (state, action) in TRANSITIONS


def valid_actions(state: State) -> list[Action]:
    """The actions allowed from ``state``, in declaration order (deterministic)."""
    return [action for action in Action if (state, action) in TRANSITIONS]


def outcome(state: State, action: Action) -> State | None:
    """The stable state a successful ``action`` from ``state`` ends in (None if not allowed).

    For idempotent pairs (Stop from Stopped, Suspend from Suspended) this is the
    state itself.
    """
    target = next_state(state, action)
    if target is None or action is Action.NONE:
        return None
    return SETTLES_TO.get(target, target)


def is_noop(state: State, action: Action) -> bool:
    """True for the idempotent pairs that must not touch the backend's tool."""
    return action is not Action.NONE and next_state(state, action) is state
