"""``TartInstance``: one tart VM driven through the :mod:`vms_core` lifecycle.

The VM is alive exactly while our ``tart run <name>`` child is alive (tart has no
daemon), so that child is the source of truth: its exit is noticed by ``state()``,
``stop()`` reports its exit status, and recovery after any failure ends it and then
asks ``tart list`` what is left (stopped, or suspended when a snapshot exists).

Commands on the happy path are kept to the minimum (clone, run, one list, one
readiness exec, the user's exec, stop, delete): a stop whose run process exits as
asked needs no verification, because the lock tart's state comes from died with it.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO

from vms_core.errors import (
    BackendCommandError,
    CommandNotFoundError,
    CommandNotRunningError,
    InvalidNameError,
    NotRunningError,
    NotSupportedError,
    OperationTimeoutError,
    VMError,
)
from vms_core.guard import LifecycleGuard, Operation
from vms_core.instance import Capabilities, CloneInfo, ExecResult, Properties, StopResult
from vms_core.states import Action, State
from vms_core.waiting import Backoff, Deadline, poll_until
from vms_tart.config import TartOptions, whole_seconds
from vms_tart.errors import (
    AGENT_UNREACHABLE,
    ALREADY_GONE,
    NOT_RUNNING,
    STOPPED_DURING_EXEC,
    NoIPAddressError,
    VMExistsError,
    check,
    result_error,
    run_exit_error,
)
from vms_tart.listing import ListEntry, list_all
from vms_tart.names import validate_name, validate_source
from vms_tart.runner import CommandResult, RunProcess, TartRunner, seconds_text

logger = logging.getLogger(__name__)

#: ``tart ip --wait N`` takes up to about N+1 s; the command gets this much extra.
IP_GRACE_SECONDS = 2.0
#: Settling after a failure (ending our run, asking ``tart list``) gets what is left of
#: the caller's timeout, but at least this: enough for a healthy tart to answer, so a
#: timed-out start can still tell Stopped from Suspended. After Ctrl-C it gets only this.
VERIFY_FLOOR_SECONDS = 1.0


class TartInstance:
    """A tart VM. Thread-safe: mutating operations are serialized, and ``state()``,
    ``exec()`` and ``properties()`` may run alongside them."""

    def __init__(
        self, name: str, source: str, runner: TartRunner, options: TartOptions | None = None
    ) -> None:
        self._name = validate_name(name)
        self._source = validate_source(source)
        self._runner = runner
        self._options = options or TartOptions()
        self._guard = LifecycleGuard(name)
        # Held for every mutating operation; state() reconciles a dead run process
        # only when it can take it, so it never races an operation.
        self._op_lock = threading.RLock()
        self._process: RunProcess | None = None
        self._ip: str | None = None
        self._ip_lock = threading.Lock()
        self._last_exit: StopResult | None = None
        # An exit noticed by state() that no stop() has reported yet.
        self._unreported_exit: StopResult | None = None

    def __repr__(self) -> str:
        return f"TartInstance(name={self._name!r}, source={self._source!r})"

    # -- identity and capabilities -------------------------------------------------

    @property
    def id(self) -> str:
        return self._name

    @property
    def source(self) -> str:
        return self._source

    @property
    def suspendable(self) -> bool:
        return self._options.suspendable

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(suspend=self.suspendable, exec=True, ip=True, detects_exit=True)

    @property
    def last_run_exit(self) -> StopResult | None:
        """How the most recent ``tart run`` of this instance ended (None while running)."""
        return self._last_exit

    # -- commands ------------------------------------------------------------------

    def _tart(
        self,
        *args: str,
        timeout: float | None = None,
        stdin: str | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> CommandResult:
        logger.debug("tart %s (vm=%s source=%s)", " ".join(args), self._name, self._source)
        return self._runner.run(args, timeout=timeout, stdin=stdin, stdout=stdout, stderr=stderr)

    def _list_entry(self, timeout: float | None = None) -> ListEntry | None:
        logger.debug("tart list --format json (vm=%s source=%s)", self._name, self._source)
        return list_all(self._runner, timeout=timeout).lookup_source_name("local", self._name)

    def _deadline(self, timeout: float | None) -> Deadline:
        return Deadline(timeout, clock=self._runner.monotonic)

    def _poll(
        self,
        check: Callable[[], bool | None],
        *,
        deadline: Deadline,
        what: str,
        backoff: Backoff,
        process: RunProcess | None = None,
        last_failure: Callable[[], str | None] | None = None,
    ) -> None:
        """poll_until on the runner's clock; sleeping on ``process`` wakes at its exit.

        On timeout, ``last_failure()`` (the last retried failure, if any) becomes a note.
        """
        sleep = self._runner.sleep if process is None else _sleep_watching(process)
        try:
            poll_until(
                check,
                timeout=deadline.remaining(),
                what=what,
                backoff=backoff,
                clock=self._runner.monotonic,
                sleep=sleep,
            )
        except OperationTimeoutError as err:
            note = last_failure() if last_failure is not None else None
            if note:
                err.add_note(note)
            raise

    def _settling_deadline(self, deadline: Deadline | None) -> Deadline:
        """The budget for settling: ``state_timeout``, cut to the caller's ``deadline``
        (what is left of it, at least VERIFY_FLOOR_SECONDS) when there is one."""
        budget = self._options.state_timeout
        remaining = None if deadline is None else deadline.remaining()
        if remaining is not None:
            budget = min(budget, max(remaining, VERIFY_FLOOR_SECONDS))
        return self._deadline(budget)

    def _listed_state(self, deadline: Deadline | None = None) -> State | None:
        """tart's state of this VM (None when tart does not list it).

        A failing ``tart list`` (e.g. malformed output) is retried with the state
        backoff until ``state_timeout`` or the caller's ``deadline`` (see
        :meth:`_settling_deadline`); then the last error is raised.
        """
        errors: list[VMError] = []
        found: list[State | None] = []
        budget = self._settling_deadline(deadline)

        def look() -> bool | None:
            try:
                entry = self._list_entry(timeout=budget.remaining())
            except BackendCommandError as err:
                logger.debug("%s: tart list failed, retrying: %s", self._name, err)
                errors.append(err)
                return None
            found.append(entry.state if entry is not None else None)
            return True

        try:
            self._poll(
                look,
                deadline=budget,
                what=f"tart list to report {self._name}",
                backoff=self._options.state_backoff,
            )
        except OperationTimeoutError:
            if errors:
                raise errors[-1] from None
            raise
        return found[-1]

    def _state_after_exit(self, deadline: Deadline | None = None) -> State:
        """The stable state once our run process is gone, as ``tart list`` tells it."""
        try:
            listed = self._listed_state(deadline)
        except VMError as err:
            logger.warning("%s: could not verify the state: %s", self._name, err)
            return State.ERROR_UNKNOWN
        if listed in (State.STOPPED, State.SUSPENDED):
            return listed
        # Running under another process (tart spec 8.8), missing, or a word we do not know.
        if listed is None:
            logger.warning("%s: tart no longer lists it after our tart run exited", self._name)
        else:
            logger.warning("%s: tart reports %s after our tart run exited", self._name, listed)
        return State.ERROR_UNKNOWN

    def _end_process(
        self, process: RunProcess, deadline: Deadline | None = None
    ) -> tuple[int | None, bool]:
        """Stop our ``tart run`` child: SIGINT (tart's hard stop), then SIGKILL.

        The wait for SIGINT to work is ``force_stop_timeout``, cut to the caller's
        ``deadline`` like any settling. Returns the exit status and whether it was killed.
        """
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            patience = self._settling_deadline(deadline).remaining()
            if deadline is None or patience is None:
                patience = self._options.force_stop_timeout
            if process.wait(min(patience, self._options.force_stop_timeout)) is None:
                logger.warning("%s: tart run ignored SIGINT, killing it", self._name)
                process.kill()
                return process.wait(self._options.force_stop_timeout), True
        return process.poll(), False

    def _record_exit(self, process: RunProcess, *, on_its_own: bool, forced: bool) -> StopResult:
        status = process.poll()
        result = StopResult(
            exit_status=status,
            exited_on_its_own=on_its_own,
            # Only a kill by our own stop is "forced"; an external SIGKILL shows as an
            # exit on its own with status -9 (as in the qemu backend).
            forced=forced and not on_its_own,
            output_tail=process.output_tail(),
        )
        self._last_exit = result
        self._process = None
        self._ip = None
        return result

    # -- state -----------------------------------------------------------------------

    def state(self) -> State:
        """The current state; notices a ``tart run`` that exited on its own.

        While the child is alive this runs no command. Once it has exited (crash,
        guest shutdown, external ``tart stop`` or ``tart suspend``) one ``tart list``
        tells Stopped from Suspended.
        """
        state = self._guard.state
        process = self._process
        if state is not State.RUNNING or process is None or process.poll() is None:
            return state
        if not self._op_lock.acquire(blocking=False):
            return self._guard.state  # an operation is in charge and will settle it
        try:
            if self._guard.state is State.RUNNING and self._process is process:
                exited = self._record_exit(process, on_its_own=True, forced=False)
                self._unreported_exit = exited
                new_state = self._state_after_exit()
                logger.info(
                    "%s: tart run exited on its own (status %s); now %s",
                    self._name,
                    exited.exit_status,
                    new_state,
                )
                self._guard.set(new_state)
            return self._guard.state
        finally:
            self._op_lock.release()

    # -- clone -----------------------------------------------------------------------

    def clone(self, *, timeout: float | None = None) -> None:
        """``tart clone <source> <name>``, then ``tart set`` when resources are configured.

        tart replaces an existing VM of the same name silently; with the option
        ``overwrite = false`` an existing VM is refused instead (VMExistsError).
        """
        deadline = self._deadline(timeout)
        with self._op_lock, self._guard.operation(Action.CLONE) as op:
            if not self._options.overwrite and self._list_entry(deadline.remaining()):
                raise VMExistsError(
                    ("clone", self._source, self._name),
                    None,
                    message=f"a VM named {self._name} exists and overwrite is disabled",
                )
            result = self._tart("clone", self._source, self._name, timeout=deadline.remaining())
            check(result, f"cloning {self._source} into {self._name} failed")
            set_args = self._options.set_args()
            if set_args:
                op.on_failure = State.STOPPED  # the clone exists: leave it deletable
                result = self._tart("set", self._name, *set_args, timeout=deadline.remaining())
                check(result, f"setting the resources of {self._name} failed")

    # -- start -----------------------------------------------------------------------

    def start(self, *, timeout: float | None = None) -> None:
        """Spawn ``tart run``, wait until tart reports it running, then prove readiness.

        ``timeout`` (default ``run_timeout``) bounds this call, not the VM's life.
        Any failure, including KeyboardInterrupt, ends our run process and leaves the
        state tart reports (Stopped, or Suspended when a resume failed before restoring).
        """
        deadline = self._deadline(timeout if timeout is not None else self._options.run_timeout)
        with self._op_lock, self._guard.operation(Action.START) as op:
            args = ("run", self._name, *self._options.effective_run_options)
            logger.debug("tart %s (vm=%s source=%s)", " ".join(args), self._name, self._source)
            process = self._runner.spawn(args)
            try:
                self._wait_until_running(process, deadline)
                ip = (
                    self._lookup_ip(deadline.remaining())
                    if self._options.obtain_ip_at_start
                    else None
                )
                self._wait_until_ready(process, deadline)
            except BaseException as err:
                self._recover_start(process, op, err, deadline)
                raise
            self._process = process
            self._ip = ip
            self._last_exit = None
            self._unreported_exit = None

    def _died_error(self, process: RunProcess, status: int, what: str) -> VMError:
        return run_exit_error(
            process.argv, status, process.output_tail(), f"{what}: tart run exited"
        )

    def _wait_until_running(self, process: RunProcess, deadline: Deadline) -> None:
        list_errors: list[VMError] = []

        def running() -> bool | None:
            status = process.poll()
            if status is not None:
                raise self._died_error(process, status, f"{self._name} did not start")
            if deadline.expired:
                return None
            try:
                entry = self._list_entry(deadline.remaining())
            except BackendCommandError as err:  # e.g. malformed output: look again
                list_errors.append(err)
                return None
            return True if entry is not None and entry.state is State.RUNNING else None

        # tart run takes its lock a moment after it starts (tart spec 7): look first
        # after one backoff delay, spent waiting on the process so an early exit
        # (VM limit, already running, ...) ends the wait at once.
        first_delay = self._options.run_backoff_initial
        remaining = deadline.remaining()
        process.wait(first_delay if remaining is None else min(first_delay, remaining))
        self._poll(
            running,
            deadline=deadline,
            what=f"tart to report {self._name} running",
            backoff=self._options.run_backoff,
            process=process,
            last_failure=lambda: (
                f"last tart list error: {list_errors[-1]}" if list_errors else None
            ),
        )

    def _wait_until_ready(self, process: RunProcess, deadline: Deadline) -> None:
        """Retry ``tart exec <name> echo <nonce>`` until it prints the nonce."""
        nonce = str(time.time_ns())
        failures: list[CommandResult] = []

        def ready() -> bool | None:
            status = process.poll()
            if status is not None:
                raise self._died_error(process, status, f"{self._name} never became ready")
            if deadline.expired:
                return None  # no time left for an attempt: let poll_until report the timeout
            result = self._tart("exec", self._name, "echo", nonce, timeout=deadline.remaining())
            if not result.ok:  # agent not up yet, or the lock not yet taken: retry
                failures.append(result)
                return None
            if result.stdout.strip() != nonce:
                raise BackendCommandError(
                    result.argv,
                    result.exit_code,
                    result.stdout,
                    message=f"readiness check of {self._name} printed "
                    f"{result.stdout.strip()!r} instead of {nonce!r}",
                )
            return True

        self._poll(
            ready,
            deadline=deadline,
            what=f"{self._name} to answer tart exec",
            backoff=self._options.run_backoff,
            process=process,
            last_failure=lambda: (
                f"last attempt: {result_error(failures[-1], 'tart exec failed')}"
                if failures
                else None
            ),
        )

    def _recover_start(
        self, process: RunProcess, op: Operation, err: BaseException, deadline: Deadline
    ) -> None:
        """End the run process and settle on the state tart reports afterwards.

        Bounded by the start's ``deadline`` (plus VERIFY_FLOOR_SECONDS); after Ctrl-C
        by the floor alone: the user asked to get out.
        """
        if isinstance(err, KeyboardInterrupt):
            deadline = self._deadline(0.0)
        try:
            _, forced = self._end_process(process, deadline)
            self._record_exit(process, on_its_own=False, forced=forced)
            op.on_failure = self._state_after_exit(deadline)
        except BaseException as recovery_error:  # a second Ctrl-C: still leave a legal state
            logger.warning(
                "%s: recovery after a failed start failed: %s", self._name, recovery_error
            )
            op.on_failure = State.ERROR_UNKNOWN
            if process.poll() is None:
                process.kill()
        err.add_note(f"{self._name} was stopped after the failed start; state {op.on_failure}")

    # -- stop ------------------------------------------------------------------------

    def stop(self, *, timeout: float | None = None) -> StopResult:
        """Stop the VM; ``timeout`` is the graceful period (``tart stop --timeout``).

        Idempotent from Stopped. If ``tart run`` already exited on its own no
        ``tart stop`` is sent. The run process's exit status is in the result; if it
        does not exit after the request it is killed (``forced``).
        """
        graceful = timeout if timeout is not None else self._options.stop_timeout
        with self._op_lock, self._guard.operation(Action.STOP) as op:
            if op.noop:
                unreported, self._unreported_exit = self._unreported_exit, None
                if unreported is not None:
                    return dataclasses.replace(unreported, noop=True)
                return StopResult(noop=True)
            self._unreported_exit = None
            process = self._process
            if process is None:  # running, but not through us (e.g. after detach)
                self._stop_without_process(graceful)
                return StopResult()
            if process.poll() is not None:
                result = self._record_exit(process, on_its_own=True, forced=False)
                self._settle_exited(op)
                return result
            return self._stop_process(process, graceful, op)

    def _stop_command(self, graceful: float) -> BackendCommandError | OperationTimeoutError | None:
        """Run ``tart stop``; "not running" is success. Returns the failure, if any.

        tart's SIGKILL fallback fails with "No such process" when the VM exited just
        before it (always a risk with ``--timeout 0``): that is success too.
        """
        try:
            result = self._tart(
                "stop",
                self._name,
                "--timeout",
                str(whole_seconds(graceful)),
                timeout=graceful + self._options.force_stop_timeout,
            )
        except OperationTimeoutError as err:
            return err
        if result.ok or NOT_RUNNING.search(result.stderr) or ALREADY_GONE.search(result.stderr):
            return None
        return result_error(result, f"tart stop of {self._name} failed")

    def _stop_process(self, process: RunProcess, graceful: float, op: Operation) -> StopResult:
        stop_error = self._stop_command(graceful)
        status = process.wait(self._options.force_stop_timeout)
        # tart stop's own fallback after the graceful period is SIGKILL: our stop killed it.
        forced = status == -signal.SIGKILL
        if status is None:
            status, forced = self._end_process(process)
        result = self._record_exit(process, on_its_own=False, forced=forced)
        if status is None:
            op.on_failure = State.ERROR_UNKNOWN
            raise BackendCommandError(
                process.argv, None, result.output_tail, message="tart run survived SIGKILL"
            )
        if stop_error is not None or forced:
            # Something went off script: believe only what tart lists now.
            verified = self._state_after_exit()
            if verified is not State.STOPPED:
                op.on_failure = verified
                raise BackendCommandError(
                    ("stop", self._name),
                    None,
                    message=f"{self._name} is {verified} after stopping"
                    + (f": {stop_error}" if stop_error else ""),
                )
        if stop_error is not None:
            # The VM is stopped anyway; the failure is still reported, never dropped.
            op.on_failure = State.STOPPED
            stop_error.add_note(
                f"{self._name} is stopped anyway; tart run exit status {result.exit_status}"
            )
            raise stop_error
        return result

    def _settle_exited(self, op: Operation) -> None:
        """Stop after the run process ended on its own: make sure the VM is Stopped."""
        listed = self._state_after_exit()
        if listed is State.SUSPENDED:
            # Someone suspended it behind our back; stop means stopped, and tart stop
            # of a suspended VM discards the snapshot.
            logger.warning("%s was suspended externally; discarding the snapshot", self._name)
            if self._stop_command(0) is None:
                return
            listed = self._state_after_exit()
        if listed is not State.STOPPED:
            op.on_failure = listed
            raise BackendCommandError(
                ("stop", self._name), None, message=f"{self._name} is {listed}, not stopped"
            )

    def _stop_without_process(self, graceful: float) -> None:
        error = self._stop_command(graceful)
        if error is not None:
            raise error

        def stopped() -> bool | None:
            return True if self._listed_state() is State.STOPPED else None

        self._poll(
            stopped,
            deadline=self._deadline(self._options.state_timeout),
            what=f"{self._name} to stop",
            backoff=self._options.state_backoff,
        )
        self._ip = None

    # -- suspend ---------------------------------------------------------------------

    def suspend(self, *, timeout: float | None = None) -> None:
        """Snapshot the VM (``tart suspend``) and wait until tart reports it suspended.

        Needs ``--suspendable`` in the run options (NotSupportedError otherwise).
        ``timeout`` (default ``state_timeout``) bounds the wait for the snapshot; if
        it runs out the VM keeps going and ``state()`` notices when it is done.
        """
        if not self.suspendable:
            raise NotSupportedError(
                f"{self._name} cannot be suspended: its run options lack --suspendable "
                f"({' '.join(self._options.effective_run_options)})"
            )
        deadline = self._deadline(timeout if timeout is not None else self._options.state_timeout)
        with self._op_lock, self._guard.operation(Action.SUSPEND) as op:
            if op.noop:
                return
            process = self._process
            if process is None:
                raise NotRunningError(f"{self._name} was not started by this instance")
            on_its_own = process.poll() is not None
            if not on_its_own:
                result = self._tart("suspend", self._name, timeout=deadline.remaining())
                if (
                    not result.ok
                    and process.poll() is None
                    and not NOT_RUNNING.search(result.stderr)
                ):
                    raise result_error(result, f"tart suspend of {self._name} failed")
                # tart suspend returns before the snapshot exists: tart run exits after it.
                if process.wait(deadline.remaining()) is None:
                    raise OperationTimeoutError(
                        f"{self._name}: the snapshot was not done within "
                        f"{seconds_text(deadline.timeout or 0.0)}; "
                        "the VM is still running and state() will notice when it finishes"
                    )
            exited = self._record_exit(process, on_its_own=on_its_own, forced=False)
            verified = self._state_after_exit(deadline)
            if verified is State.SUSPENDED:
                if exited.exit_status != 0:
                    logger.warning("%s is suspended, but tart run exited %s", self._name, exited)
                return
            op.on_failure = verified
            if on_its_own:
                what = f"{self._name} had already exited before suspend; it is {verified}"
            else:
                what = f"suspending {self._name} failed; it is {verified}"
            raise run_exit_error(process.argv, exited.exit_status, exited.output_tail, what)

    # -- delete ----------------------------------------------------------------------

    def delete(self, *, timeout: float | None = None) -> None:
        """``tart delete <name>``. From ErrorUnknown our run process is ended first.

        From Initial a missing VM is an error (nothing was cloned); from any other
        state it means the VM is already gone, which is what was asked.
        """
        deadline = self._deadline(timeout)
        with self._op_lock, self._guard.operation(Action.DELETE) as op:
            process = self._process
            if process is not None:
                _, forced = self._end_process(process, deadline if timeout is not None else None)
                self._record_exit(process, on_its_own=False, forced=forced)
            remaining = deadline.remaining()
            result = self._tart(
                "delete",
                self._name,
                timeout=None if remaining is None else max(remaining, VERIFY_FLOOR_SECONDS),
            )
            if result.ok:
                return
            error = result_error(result, f"deleting {self._name} failed")
            if isinstance(error, CommandNotFoundError) and op.previous is not State.INITIAL:
                logger.warning("%s was already deleted outside this instance", self._name)
                return
            raise error

    # -- exec and properties ---------------------------------------------------------

    def exec(
        self,
        command: str,
        *args: str,
        timeout: float | None = None,
        check: bool = False,
        stdin: str | bytes | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> ExecResult:
        """``tart exec <name> <command> <args...>``; a non-zero exit is data unless ``check``.

        ``stdin`` may be text or bytes (passed through unchanged). Raises
        InvalidNameError for a command or argument no process can receive (empty
        command, NUL), SpawnError when the host cannot start it (e.g. the arguments
        exceed the kernel's limit), NotRunningError unless Running,
        AgentUnreachableError when tart cannot reach the guest agent.
        """
        if not command:
            raise InvalidNameError("exec needs a command")
        for position, word in enumerate((command, *args)):
            if not isinstance(word, str):
                raise InvalidNameError(
                    f"exec argument {position} is {type(word).__name__}, not str"
                )
            if "\0" in word:
                raise InvalidNameError(
                    f"exec argument {position} contains NUL, which no process can receive"
                )
        if isinstance(stdin, bytes | bytearray):
            stdin = bytes(stdin).decode("utf-8", "surrogateescape")
        elif stdin is not None and not isinstance(stdin, str):
            raise InvalidNameError(f"exec stdin must be str or bytes, not {type(stdin).__name__}")
        state = self.state()
        if state is not State.RUNNING:
            raise NotRunningError(f"exec needs a running VM; {self._name} is {state}")
        process = self._process
        flags: Sequence[str] = ("-i",) if stdin is not None else ()
        result = self._tart(
            "exec",
            *flags,
            self._name,
            command,
            *args,
            timeout=timeout,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
        )
        if not result.ok and (
            NOT_RUNNING.search(result.stderr) or AGENT_UNREACHABLE.search(result.stderr)
        ):
            raise result_error(result, f"exec in {self._name} failed")
        if not result.ok and (
            STOPPED_DURING_EXEC.search(result.stderr)
            or (process is not None and process.poll() is not None)
        ):
            # The VM ended under the command, which died with it: not the command's answer.
            raise CommandNotRunningError(
                result.argv,
                result.exit_code,
                result.stderr,
                message=f"{self._name} stopped while running {command}",
            )
        outcome = ExecResult(
            argv=(command, *args),
            exit_code=result.exit_code,
            stdout=result.stdout,
            stderr=result.stderr,
        )
        return outcome.check() if check else outcome

    def properties(self) -> Properties:
        """Clone info, and the IP while Running (looked up once with ``tart ip``, cached)."""
        clone_info = CloneInfo(self._source, self._name)
        if self.state() is not State.RUNNING:
            return Properties(clone_info)
        with self._ip_lock:
            if self._ip is None:
                self._ip = self._lookup_ip(self._options.ip_wait)
            return Properties(clone_info, self._ip)

    def _lookup_ip(self, wait: float | None) -> str:
        seconds = whole_seconds(self._options.ip_wait if wait is None else wait)
        args = ["ip", self._name, "--wait", str(seconds)]
        if self._options.ip_resolver:
            args += ["--resolver", self._options.ip_resolver]
        result = check(
            self._tart(*args, timeout=seconds + IP_GRACE_SECONDS),
            f"no IP address for {self._name}",
        )
        ip = result.stdout.strip()
        if not ip:
            raise NoIPAddressError(
                result.argv, 0, message=f"tart ip printed nothing for {self._name}"
            )
        return ip

    def detach(self) -> None:
        """Let the VM outlive this Python process (it is not stopped at exit)."""
        detach = getattr(self._process, "detach", None)
        if callable(detach):
            detach()


def _sleep_watching(process: RunProcess) -> Callable[[float], None]:
    """A sleep that ends early when ``process`` exits: waits are events, not polls."""

    def sleep(seconds: float) -> None:
        process.wait(seconds)

    return sleep
