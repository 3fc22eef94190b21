"""A small synchronous client of qemu-guest-agent over its virtio-serial channel.

The channel has no session: requests written before the agent started, or whose
replies were abandoned, can still be answered later. ``sync`` therefore sends
``guest-sync-delimited`` with a fresh id and discards every reply until the 0xFF
delimiter followed by that id, which leaves the stream aligned for the next command.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from vms_core.errors import BackendCommandError, OperationTimeoutError, VMError
from vms_core.waiting import Backoff, Deadline
from vms_qemu.channel import DELIMITER, ChannelClosedError, JsonChannel

logger = logging.getLogger(__name__)

#: How long one sync attempt waits before it is repeated with a new id.
SYNC_ATTEMPT_TIMEOUT = 1.0
#: qemu-ga keeps at most this much of each output stream of a guest-exec process
#: (GUEST_EXEC_MAX_OUTPUT in QEMU's qga/commands.c) and drops the rest.
OUTPUT_LIMIT = 16 * 1024 * 1024
#: How long killing a timed-out guest command may take before we give up on it.
KILL_TIMEOUT = 5.0
#: Run by the guest's sh with the timed-out pid as $1: stops, then kills, the process
#: and all its descendants (qemu-ga's children share its process group, so no group kill).
_KILL_TREE = (
    'kill_tree() { kill -STOP "$1" 2>/dev/null; '
    'for child in $(cat /proc/"$1"/task/*/children 2>/dev/null); do kill_tree "$child"; done; '
    'kill -KILL "$1" 2>/dev/null; }; kill_tree "$1"'
)
_EXEC_POLL = Backoff(initial=0.01, factor=1.5, maximum=0.25)
_ids = itertools.count(int.from_bytes(os.urandom(3), "big"))


class AgentCommandError(BackendCommandError):
    """The guest agent answered a command with an error."""

    def __init__(self, command: str, error_class: str, description: str) -> None:
        self.command = command
        self.error_class = error_class
        self.description = description
        super().__init__(
            ("qemu-ga", command),
            None,
            f"{error_class}: {description}",
            message="guest agent command failed",
        )


class GuestArgumentError(VMError, ValueError):
    """A guest command argument the guest agent cannot pass through unchanged."""


@dataclasses.dataclass(frozen=True)
class GuestProcessStatus:
    """A finished ``guest-exec`` process."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    #: Set when a signal ended the process (exit_code is then -signal).
    signal: int | None = None
    #: qemu-ga kept only the first OUTPUT_LIMIT bytes of that stream.
    stdout_truncated: bool = False
    stderr_truncated: bool = False


class GuestAgentClient:
    """Thread-safe: one request/reply exchange at a time over one connection."""

    def __init__(self, channel: JsonChannel, *, timeout: float = 10.0) -> None:
        self._channel = channel
        self._lock = threading.Lock()
        self.timeout = timeout
        #: Set when a reply was abandoned (timeout): the stream must be realigned first.
        self._needs_sync = False

    @classmethod
    def connect(cls, path: str, *, timeout: float = 10.0) -> GuestAgentClient:
        return cls(
            JsonChannel.connect(path, timeout=timeout, what=f"guest agent {path}"), timeout=timeout
        )

    def close(self) -> None:
        self._channel.close()

    def sync(self, *, timeout: float | None) -> None:
        """Wait until the agent answers (it may still be starting), aligning the stream."""
        deadline = Deadline(timeout)
        with self._lock:
            while True:
                remaining = deadline.remaining()
                if remaining is not None and remaining <= 0:
                    raise OperationTimeoutError(f"guest agent did not answer within {timeout:g}s")
                attempt = (
                    SYNC_ATTEMPT_TIMEOUT
                    if remaining is None
                    else min(SYNC_ATTEMPT_TIMEOUT, remaining)
                )
                if self._sync_once(next(_ids), attempt):
                    self._needs_sync = False
                    return

    def _sync_once(self, sync_id: int, timeout: float) -> bool:
        # The leading 0xFF makes the agent drop any partial request it has buffered.
        self._channel.send(
            {"execute": "guest-sync-delimited", "arguments": {"id": sync_id}}, prefix=DELIMITER
        )
        attempt = Deadline(timeout)
        try:
            while True:
                self._channel.skip_past_delimiter(timeout=attempt.remaining())
                reply = self._channel.receive(timeout=attempt.remaining())
                if reply.get("return") == sync_id:
                    return True
                logger.debug("guest agent: discarding stale reply %s", reply)
        except OperationTimeoutError:
            return False

    def command(
        self, name: str, arguments: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Run ``name`` and return its ``return`` value; an error reply raises."""
        message: dict[str, Any] = {"execute": name}
        if arguments:
            message["arguments"] = arguments
        limit = self.timeout if timeout is None else timeout
        with self._lock:
            if self._needs_sync and not self._sync_once(next(_ids), limit):
                raise OperationTimeoutError(f"guest agent did not answer within {limit:g}s")
            self._channel.send(message)
            try:
                reply = self._channel.receive(timeout=limit)
            except OperationTimeoutError:
                self._needs_sync = True  # a late reply would otherwise answer the next command
                raise
        if "error" in reply:
            error = reply["error"]
            raise AgentCommandError(name, str(error.get("class", "?")), str(error.get("desc")))
        if "return" not in reply:
            raise AgentCommandError(name, "ProtocolError", f"unexpected reply {reply}")
        return reply["return"]

    def ping(self) -> None:
        self.command("guest-ping")

    def start_process(
        self,
        path: str,
        args: list[str],
        stdin: bytes | None = None,
        *,
        capture: bool = True,
        timeout: float | None = None,
    ) -> int:
        """Start a guest process (output captured unless ``capture`` is false); its guest pid."""
        for argument in (path, *args):
            if "\0" in argument:
                # QEMU's JSON parser turns \u0000 into the bytes C0 80: the guest would get
                # a different argument than the one asked for.
                raise GuestArgumentError(
                    f"guest command arguments cannot contain NUL: {argument!r}"
                )
        arguments: dict[str, Any] = {"path": path, "arg": args, "capture-output": capture}
        if stdin is not None:
            arguments["input-data"] = base64.b64encode(stdin).decode()
        return int(self.command("guest-exec", arguments, timeout=timeout)["pid"])

    def process_status(
        self, pid: int, *, timeout: float | None = None
    ) -> GuestProcessStatus | None:
        """The result once the guest process exited, else None."""
        status = self.command("guest-exec-status", {"pid": pid}, timeout=timeout)
        if not status.get("exited"):
            return None
        signal = status.get("signal")
        code = int(status["exitcode"]) if "exitcode" in status else -int(signal or 0)
        return GuestProcessStatus(
            exit_code=code,
            stdout=base64.b64decode(status.get("out-data", "")),
            stderr=base64.b64decode(status.get("err-data", "")),
            signal=int(signal) if signal is not None else None,
            stdout_truncated=bool(status.get("out-truncated")),
            stderr_truncated=bool(status.get("err-truncated")),
        )

    def kill_process(self, pid: int, *, sleep: Callable[[float], None] | None = None) -> bool:
        """SIGKILL guest process ``pid`` and its descendants; True once it is seen gone.

        Best effort within KILL_TIMEOUT: the caller is already handling a timeout, so a
        failure here is logged rather than raised over it.
        """
        pause = sleep or time.sleep
        deadline = Deadline(KILL_TIMEOUT)
        try:
            killer = self.start_process(
                "sh", ["-c", _KILL_TREE, "sh", str(pid)], capture=False, timeout=KILL_TIMEOUT
            )
            for target in (killer, pid):  # reaping both also frees qemu-ga's records of them
                for delay in _EXEC_POLL.delays():
                    remaining = deadline.remaining()
                    if remaining is None or remaining <= 0:
                        raise OperationTimeoutError(f"guest pid {target} still running")
                    if self.process_status(target, timeout=remaining) is not None:
                        break
                    pause(min(delay, remaining))
        except (BackendCommandError, OperationTimeoutError, ChannelClosedError, OSError) as err:
            logger.warning("could not kill guest process %d: %s", pid, err)
            return False
        return True

    def run(
        self,
        path: str,
        args: list[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> GuestProcessStatus:
        """Run a guest process to completion; OperationTimeoutError after ``timeout`` s."""
        pause = sleep or time.sleep
        pid = self.start_process(path, args, stdin)
        deadline = Deadline(timeout)
        for delay in _EXEC_POLL.delays():
            result = self.process_status(pid)
            if result is not None:
                return result
            remaining = deadline.remaining()
            if remaining is not None and remaining <= 0:
                killed = self.kill_process(pid, sleep=pause)
                raise OperationTimeoutError(
                    f"guest command {path} still running after {timeout:g}s; "
                    + (
                        f"killed it (guest pid {pid})"
                        if killed
                        else f"could not kill it (guest pid {pid})"
                    )
                )
            pause(delay if remaining is None else min(delay, remaining))
        raise AssertionError("unreachable")  # pragma: no cover
