"""Lifecycle helpers built only on the ``Instance`` protocol: cleanup, waiting, a context."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from vms_core.errors import CleanupError, TransitionNotAllowedError, VMError, WaitError
from vms_core.instance import Instance
from vms_core.states import State
from vms_core.waiting import Backoff, Clock, Sleep, check_timeout, poll_until

logger = logging.getLogger(__name__)

#: States that end a wait early unless they are its target.
TERMINAL_STATES = frozenset({State.ERROR_UNKNOWN, State.DELETED})


def cleanup(
    instance: Instance | None,
    *,
    stop_timeout: float | None = None,
    delete_timeout: float | None = None,
) -> None:
    """Bring ``instance`` to Deleted (or leave it Initial when nothing was cloned).

    Reads the state once and dispatches: Deleted does nothing; Initial tries a
    best-effort delete (an interrupted clone may have left a VM) and ignores its
    error; Running is stopped (``stop_timeout`` is the graceful period) and must
    then be Stopped; Stopped, Suspended and ErrorUnknown are deleted and must then
    be Deleted. A transient state is an error: another operation owns the VM.
    ``delete_timeout`` bounds each delete (a hung tool must not hang the caller).
    Failures raise :class:`CleanupError` carrying the state reached.
    """
    if instance is None:
        return
    state = instance.state()
    if state is State.DELETED:
        return
    if state is State.INITIAL:
        try:
            instance.delete(timeout=delete_timeout)
        except VMError as err:
            logger.debug("cleanup of %s from Initial: %s", instance.id, err)
        return
    if state is State.RUNNING:
        stop_error: VMError | None = None
        try:
            result = instance.stop(timeout=stop_timeout)
            if not result.clean:
                logger.info("cleanup: %s run process ended with %s", instance.id, result)
        except VMError as err:
            stop_error = err
        state = instance.state()
        if state is not State.STOPPED:
            detail = f", stop error: {stop_error}" if stop_error else ""
            raise CleanupError(
                f"cleanup: expected VM to be stopped after stopping, in state {state}{detail}",
                state,
            ) from stop_error
    if state in (State.STOPPED, State.SUSPENDED, State.ERROR_UNKNOWN):
        try:
            instance.delete(timeout=delete_timeout)
        except VMError as err:
            after = instance.state()
            raise CleanupError(
                f"cleanup: failed to delete VM from state {state}: {err}", after
            ) from err
        after = instance.state()
        if after is not State.DELETED:
            raise CleanupError(
                f"cleanup: expected VM to be deleted after delete, in state {after}", after
            )
        return
    raise CleanupError(f"cleanup: unexpected VM state {state}", state)


def wait_for_state(
    instance: Instance,
    target: State,
    *,
    intermediate: Collection[State] = (),
    timeout: float | None = None,
    backoff: Backoff | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> State:
    """Poll ``instance.state()`` until it is ``target``.

    With a non-empty ``intermediate``, any other state on the way is an error.
    ErrorUnknown and Deleted end the wait at once unless they are the target.
    Raises :class:`WaitError` or :class:`~vms_core.errors.OperationTimeoutError`.
    """
    if not isinstance(target, State):
        raise ValueError(f"target must be a State, got {target!r}")
    if isinstance(intermediate, str) or not all(isinstance(s, State) for s in intermediate):
        raise ValueError(f"intermediate must be States, got {intermediate!r}")
    check_timeout(timeout)
    allowed = frozenset(intermediate)

    def check() -> State | None:
        state = instance.state()
        if state is target:
            return state
        if allowed and state not in allowed:
            wanted = ", ".join(str(s) for s in sorted(allowed, key=list(State).index))
            raise WaitError(
                f"unexpected intermediate state {state}, want [{wanted}] on the way to {target}",
                state,
            )
        if state in TERMINAL_STATES:
            raise WaitError(f"{instance.id} reached {state} while waiting for {target}", state)
        return None

    return poll_until(
        check,
        timeout=timeout,
        what=f"{instance.id} to reach {target}",
        backoff=backoff,
        clock=clock,
        sleep=sleep,
    )


@contextmanager
def running(
    instance: Instance,
    *,
    clone_timeout: float | None = None,
    start_timeout: float | None = None,
    stop_timeout: float | None = None,
) -> Iterator[Instance]:
    """Clone and start ``instance``, yield it running, and always clean up.

    Cleanup runs whatever happens, including a start that fails half way and
    KeyboardInterrupt; a cleanup failure is chained onto the original error. An
    instance whose clone the table refuses (it already exists, maybe running) is
    not ours: the error propagates and the instance is left untouched.
    """
    try:
        instance.clone(timeout=clone_timeout)
    except TransitionNotAllowedError:
        raise
    except BaseException as primary:
        _cleanup_after(instance, primary, stop_timeout)
        raise
    try:
        instance.start(timeout=start_timeout)
        yield instance
    except BaseException as primary:
        _cleanup_after(instance, primary, stop_timeout)
        raise
    else:
        cleanup(instance, stop_timeout=stop_timeout)


def _cleanup_after(instance: Instance, primary: BaseException, stop_timeout: float | None) -> None:
    """Clean up after ``primary``; a cleanup failure becomes a note on it."""
    try:
        cleanup(instance, stop_timeout=stop_timeout)
    except VMError as cleanup_error:
        logger.warning("cleanup after failure of %s failed: %s", instance.id, cleanup_error)
        primary.add_note(f"cleanup also failed: {cleanup_error}")
