"""``vms run``: clone, start, exec one command, stop and delete, whatever happens.

Every failure, timeout, Ctrl-C and SIGTERM after the instance exists goes through
:meth:`RunSession._clean_up_after`, which removes the VM and says what it did
before the error propagates to the command's error reporting.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import re
import shlex
import time
from collections.abc import Callable, Sequence
from typing import IO, cast

from vms_core.backend import Backend
from vms_core.cli.exit_status import guest_exit_status
from vms_core.cli.progress import Progress
from vms_core.errors import (
    CleanupError,
    InvalidNameError,
    NotFoundError,
    NotSupportedError,
    OperationTimeoutError,
    VMError,
)
from vms_core.instance import Instance
from vms_core.lifecycle import cleanup
from vms_core.states import State
from vms_core.waiting import Clock, Deadline

logger = logging.getLogger(__name__)

#: tart's answer when a Linux guest is run with macOS-only options.
MACOS_ONLY = re.compile(r"only \w+ macOS VMs")

#: Notes starting with this are added to the error line the command prints.
HINT = "hint: "

#: Bounds each delete during cleanup: a hung tool (``tart delete``) must not hang ``vms``
#: forever after a Ctrl-C; past it, vms names what may be left and how to remove it.
CLEANUP_DELETE_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """What ``vms run`` was asked to do."""

    command: tuple[str, ...]
    image: str | None = None
    name: str | None = None
    keep: bool = False
    #: Bounds clone, start and the command together; cleanup is not counted.
    timeout: float | None = None


def removal_hint(backend_options: Sequence[str], name: str) -> str:
    """The command that deletes ``name`` (``backend_options`` choose the same backend)."""
    # "--" keeps a name that starts with "-" from reading as an option.
    separator = ["--"] if name.startswith("-") else []
    return shlex.join(["vms", "delete", *backend_options, *separator, name])


def why_vm_cannot_outlive_us(backend: Backend, instance: Instance) -> str | None:
    """None when ``instance`` can keep running after ``vms`` exits, else the reason.

    Backends stop the VMs they started when the interpreter exits, so a VM is never
    orphaned by a crash; an instance with a ``detach()`` method can be let go. A
    backend whose VMs live inside the calling process (the in-process ``fake``)
    declares ``vms_outlive_process = False``: detaching cannot save those.
    """
    if not getattr(backend, "vms_outlive_process", True):
        return f"backend {backend.name} runs VMs inside this process, so they cannot outlive it"
    if not callable(getattr(instance, "detach", None)):
        return f"backend {backend.name} stops its VMs when the program that started them exits"
    return None


class ReaderWatch:
    """Our stdout as the backend writes guest output to it, watching for the reader leaving.

    A shell's ``cmd | head -1`` ends ``cmd`` with SIGPIPE; here the guest command's output
    passes through us, so a closed pipe must end the run (status 141) instead of going
    unnoticed. Output is written and flushed in pieces: one large write that the pipe
    takes only in part would not report the reader leaving. A backend that carries on
    past the error is caught out after the command by :attr:`reader_gone`.
    """

    #: Small enough that a reader leaving is noticed while the output lasts.
    PIECE = 65536

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if self.reader_gone:
            raise BrokenPipeError(errno.EPIPE, "stdout's reader went away")
        try:
            for start in range(0, len(text), self.PIECE):
                self._stream.write(text[start : start + self.PIECE])
                self._stream.flush()
        except BrokenPipeError:
            self.reader_gone = True
            raise
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            self._stream.flush()


class RunSession:
    """One ``vms run``: the instance, its progress lines and its cleanup."""

    def __init__(
        self,
        backend: Backend,
        request: RunRequest,
        progress: Progress,
        *,
        backend_options: Sequence[str] = (),
        out: IO[str],
        err: IO[str],
        clock: Clock = time.monotonic,
    ) -> None:
        self.backend = backend
        #: How the user chose the backend (e.g. ``--config vms.toml``), for the hints we print.
        self.backend_options = tuple(backend_options) or ("--backend", backend.name)
        self.request = request
        self.progress = progress
        self.out = ReaderWatch(out)
        self.err = err
        self.deadline = Deadline(request.timeout, clock)
        self.instance: Instance | None = None
        #: What the run is doing, for "interrupted during start" messages.
        self.phase = "setup"
        #: The error raised when --timeout ran out between steps (reported as it is).
        self._timeout_error: OperationTimeoutError | None = None

    def run(self) -> int:
        """The guest command's exit status (shell style), or raise what ended the run."""
        if not self.request.command:
            raise InvalidNameError("vms run needs a command after --, e.g. vms run -- uname -a")
        if not self.backend.capabilities.exec:
            raise NotSupportedError(f"backend {self.backend.name} cannot run commands in its VMs")
        if self.request.name:
            self._refuse_existing(self.request.name)
        instance = self.backend.create_instance(name=self.request.name, source=self.request.image)
        self.instance = instance
        try:
            source = self.request.image or self.backend.default_source
            self._settle(f"Cloning {instance.id} from {source}", "clone", instance.clone)
            try:
                self._settle(f"Starting {instance.id}", "start", instance.start)
            except VMError as error:
                if MACOS_ONLY.search(str(error)):
                    # tart refuses a macOS-only run option (--suspendable) for a Linux guest.
                    error.add_note(f"{HINT}if {source} is a Linux image, add --os linux")
                raise
            exit_code = self._exec(instance)
            if self.request.keep:
                self._keep(instance)
            else:
                self._tear_down(instance)
        except OperationTimeoutError as error:
            self._clean_up_after(error, instance)
            if self.request.timeout is None or error is self._timeout_error:
                raise
            if not self.deadline.expired:
                raise  # the backend's own limit, not --timeout
            raise OperationTimeoutError(
                f"--timeout {self.request.timeout:g}s ran out during {self.phase}"
            ) from error
        except BaseException as error:
            self._clean_up_after(error, instance)
            raise
        return guest_exit_status(exit_code)

    def _refuse_existing(self, name: str) -> None:
        # tart's clone silently replaces an existing VM; deleting it afterwards would lose it.
        if any(info.name == name for info in self.backend.list_vms(prefix=name)):
            raise InvalidNameError(
                f"a VM named {name!r} already exists on backend {self.backend.name}; "
                "choose another --name or leave it out"
            )

    def _remaining(self, what: str) -> float | None:
        remaining = self.deadline.remaining()
        if remaining is not None and remaining <= 0:
            self._timeout_error = OperationTimeoutError(
                f"--timeout {self.request.timeout:g}s ran out before {what}"
            )
            raise self._timeout_error
        return remaining

    def _settle(self, doing: str, what: str, operation: Callable[..., object]) -> None:
        """Run one lifecycle operation as a progress step and report the state it reached."""
        timeout = self._remaining(what)
        self.phase = what
        with self.progress.step(doing) as step:
            operation(timeout=timeout)
        assert self.instance is not None
        self.progress.say(f"{self.instance.state()} after {step.elapsed:.1f}s")

    def _exec(self, instance: Instance) -> int:
        command, *args = self.request.command
        timeout = self._remaining("the command")
        self.phase = "the command"
        self.progress.say(f"exec {shlex.join(self.request.command)}")
        started = self.progress.total_elapsed
        # ReaderWatch has the only two methods backends use on the stream (write, flush).
        stdout = cast(IO[str], self.out)
        result = instance.exec(command, *args, timeout=timeout, stdout=stdout, stderr=self.err)
        self.out.flush()
        if self.out.reader_gone:
            # The backend carried on past the closed pipe (a shell would have ended the
            # command with SIGPIPE): end the run as a shell tool does, after cleanup.
            raise BrokenPipeError(errno.EPIPE, "stdout's reader went away")
        self.progress.say(
            f"command exited with {result.exit_code} after "
            f"{self.progress.total_elapsed - started:.1f}s"
        )
        return result.exit_code

    def _tear_down(self, instance: Instance) -> None:
        """Stop (when running) and delete, one progress step each."""
        self.phase = "cleanup"
        if instance.state() is State.RUNNING:
            with self.progress.step(f"Stopping {instance.id}") as step:
                try:
                    result = instance.stop()
                except VMError as error:
                    # cleanup() below retries from whatever state this left and says if it can't.
                    self.progress.say(f"stop failed: {error}")
                else:
                    if result.exited_on_its_own:
                        self.progress.say(f"the VM had exited on its own ({result.exit_status})")
                    elif result.forced:
                        self.progress.say("the VM did not stop in time and was killed")
            self.progress.say(f"{instance.state()} after {step.elapsed:.1f}s")
        with self.progress.step(f"Deleting {instance.id}") as step:
            cleanup(instance, delete_timeout=CLEANUP_DELETE_TIMEOUT)
        self.progress.say(
            f"{instance.state()} after {step.elapsed:.1f}s "
            f"(total {self.progress.total_elapsed:.1f}s)"
        )

    def _clean_up_after(self, error: BaseException, instance: Instance) -> None:
        """Remove the VM after ``error`` and say what was done; never hides ``error``."""
        if isinstance(error, CleanupError):
            # cleanup() has just tried and said why it failed: one more try would repeat it.
            self._tell_left_behind(instance, "cleanup failed")
            return
        before = instance.state()
        if isinstance(error, KeyboardInterrupt):
            what = "interrupted"
        elif isinstance(error, BrokenPipeError):
            what = "stdout closed"
        elif isinstance(error, OperationTimeoutError):
            what = "timed out"
        else:
            what = "failed"
        self._tell(f"{what} during {self.phase} ({instance.id} is {before}); cleaning up")
        try:
            cleanup(instance, delete_timeout=CLEANUP_DELETE_TIMEOUT)
            if before is State.INITIAL:
                # cleanup() ignores a failed delete from Initial, but an interrupted clone
                # may have left a VM: say "nothing left" only when the backend confirms it.
                self._confirm_absent(instance.id)
        except (VMError, KeyboardInterrupt) as cleanup_error:
            interrupted = isinstance(cleanup_error, KeyboardInterrupt)
            reason = "interrupted" if interrupted else str(cleanup_error)
            self._tell_left_behind(instance, reason)
            error.add_note(f"cleanup of {instance.id} failed: {reason}")
            return
        self._tell(_cleanup_summary(instance.id, before, instance.state()))

    def _confirm_absent(self, name: str) -> None:
        try:
            self.backend.get_vm(name)
        except NotFoundError:
            return
        raise CleanupError(f"{name} exists after an interrupted clone", State.INITIAL)

    def _tell_left_behind(self, instance: Instance, reason: str) -> None:
        self._tell(
            f"could not clean up {instance.id} ({reason}); it may be left behind; "
            f"remove it with: {removal_hint(self.backend_options, instance.id)}"
        )

    def _keep(self, instance: Instance) -> None:
        self.phase = "keep"
        hint = removal_hint(self.backend_options, instance.id)
        reason = why_vm_cannot_outlive_us(self.backend, instance)
        if reason is not None:
            # Saying "kept running" would be a lie: it would die when we exit.
            if instance.state() is State.RUNNING:
                with self.progress.step(f"Stopping {instance.id}"):
                    instance.stop()
            self._tell(f"kept {instance.id} stopped: {reason}; remove it with: {hint}")
            return
        state = instance.state()
        if state is not State.RUNNING:  # the command shut it down, or it crashed
            self._tell(f"kept {instance.id} ({state}); remove it with: {hint}")
            return
        detach = getattr(instance, "detach")  # noqa: B009  # not in the Instance protocol
        detach()
        ip = _ip_or_none(instance)
        where = f" at {ip}" if ip else ""
        self._tell(f"kept {instance.id} running{where}; remove it with: {hint}")

    def _tell(self, message: str) -> None:
        """A line the user must see even with --quiet (what happened to their VM)."""
        try:
            self.err.write(f"vms: {message}\n")
            self.err.flush()
        except (OSError, ValueError):
            # stderr may be gone (SIGHUP: the terminal closed); the cleanup must go on.
            logger.debug("could not tell the user: %s", message)


def _ip_or_none(instance: Instance) -> str | None:
    if not instance.capabilities.ip:
        return None
    try:
        return instance.properties().ip
    except VMError as error:
        logger.debug("no IP for %s: %s", instance.id, error)
        return None


def _cleanup_summary(name: str, before: State, after: State) -> str:
    if before is State.INITIAL:
        return f"nothing left behind: {name} had not been cloned"
    if after is State.DELETED:
        stopped = "stopped and " if before is State.RUNNING else ""
        return f"{stopped}deleted {name}"
    return f"{name} is {after} after cleanup"
