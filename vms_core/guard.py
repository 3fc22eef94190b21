"""The per-instance state holder every backend uses to obey the transition table.

A backend wraps each mutating operation in :meth:`LifecycleGuard.operation`: the
table is consulted before anything runs, the transient state is visible to other
threads while the operation works, and the outcome (or a revert) is applied when
it finishes.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from vms_core.errors import TransitionNotAllowedError
from vms_core.states import SETTLES_TO, Action, State, is_noop, next_state

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Operation:
    """One guarded operation in progress."""

    action: Action
    previous: State
    transient: State
    #: True for the idempotent pairs (Stop from Stopped, Suspend from Suspended).
    noop: bool
    #: Where the state goes if the body raises; defaults to ``previous``.
    on_failure: State | None = None
    #: Where the state goes if the body returns; defaults to the table's outcome.
    on_success: State | None = None


class LifecycleGuard:
    """Thread-safe state of one instance plus the lock that serializes its operations."""

    def __init__(self, instance_id: str, initial: State = State.INITIAL) -> None:
        self.instance_id = instance_id
        self._state = initial
        self._state_lock = threading.Lock()
        self._operation_lock = threading.Lock()

    @property
    def state(self) -> State:
        with self._state_lock:
            return self._state

    def set(self, state: State) -> None:
        with self._state_lock:
            if state is not self._state:
                logger.debug("%s: %s -> %s", self.instance_id, self._state, state)
            self._state = state

    def check(self, action: Action) -> State:
        """Raise ``TransitionNotAllowedError`` unless ``action`` is allowed now."""
        state = self.state
        if next_state(state, action) is None:
            raise TransitionNotAllowedError(action, state, self.instance_id)
        return state

    @property
    def busy(self) -> bool:
        """True while a mutating operation holds the instance."""
        return self._operation_lock.locked()

    @contextmanager
    def operation(self, action: Action) -> Iterator[Operation]:
        """Serialize, validate, expose the transient state, then settle or revert.

        The body may set ``op.on_success``/``op.on_failure`` to report the truth
        (e.g. ErrorUnknown after a failed recovery). Any exception, including
        KeyboardInterrupt, settles the state before it propagates.
        """
        with self._operation_lock:
            previous = self.state
            transient = next_state(previous, action)
            if transient is None or action is Action.NONE:
                raise TransitionNotAllowedError(action, previous, self.instance_id)
            op = Operation(action, previous, transient, noop=is_noop(previous, action))
            if op.noop:
                yield op
                return
            self.set(transient)
            try:
                yield op
            except BaseException:
                self.set(op.on_failure if op.on_failure is not None else previous)
                raise
            self.set(op.on_success if op.on_success is not None else SETTLES_TO[transient])
