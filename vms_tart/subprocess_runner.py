"""The default :class:`~vms_tart.runner.TartRunner`: executes a tart binary as a subprocess.

Every child runs in its own session (so a terminal's Ctrl-C reaches only us, and we
decide how the VM stops), with stdin from /dev/null unless input is given, and with
its output drained by threads: a backgrounded ``tart run`` must never hold pipes
that its parent could block on (tart spec 8.20). A reaper thread blocks in
``Popen.wait`` for each child, so exits are events (no polling) and no child is
ever left a zombie.

Children spawned with ``kill_on_exit`` (the default) are stopped when the Python
process exits normally (``atexit``): SIGINT first, which makes ``tart run`` stop
the VM and exit 0, then SIGKILL of the process group. A VM must not silently
outlive the program that started it; pass ``kill_on_exit=False`` to keep it.
"""

from __future__ import annotations

import atexit
import codecs
import collections
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO

from vms_core.backend import Availability
from vms_core.errors import BackendUnavailableError, OperationTimeoutError
from vms_tart.errors import SpawnError
from vms_tart.runner import CommandResult, seconds_text

logger = logging.getLogger(__name__)

#: Command output that is not UTF-8 keeps its bytes as lone surrogates (PEP 383):
#: ``text.encode("utf-8", "surrogateescape")`` gives back exactly what the command
#: printed. The in-process simulator decodes the same way. (Only the diagnostic output
#: tail of ``tart run`` uses "replace".)
OUTPUT_ERRORS = "surrogateescape"
#: How much of a spawned process's combined output is kept.
OUTPUT_TAIL_BYTES = 1024
#: After the exit, how long drain threads may take to reach EOF (a grandchild may
#: still hold the pipes; we give up on it rather than block, spec 8.20).
DRAIN_GRACE_SECONDS = 2.0
#: At interpreter exit: how long children get to stop after SIGINT before SIGKILL.
EXIT_GRACE_SECONDS = 3.0


class _Tail:
    """A thread-safe bounded buffer keeping the last bytes written."""

    def __init__(self, limit: int) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._limit = limit
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._chunks.append(data)
            self._size += len(data)
            while self._chunks and self._size - len(self._chunks[0]) >= self._limit:
                self._size -= len(self._chunks.popleft())

    def text(self) -> str:
        with self._lock:
            data = b"".join(self._chunks)
        return data[-self._limit :].decode("utf-8", errors="replace")


def _decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")(errors=OUTPUT_ERRORS)


def decode_output(data: bytes) -> str:
    """A command's output as text: UTF-8, other bytes kept as lone surrogates."""
    return data.decode("utf-8", errors=OUTPUT_ERRORS)


def _copy_live(tee: IO[str], text: str, stream: object) -> None:
    if not text:
        return
    try:
        try:
            tee.write(text)
        except UnicodeEncodeError:
            # A strict stream cannot take the kept bytes: it gets U+FFFD for them.
            tee.write(text.encode("utf-8", OUTPUT_ERRORS).decode("utf-8", "replace"))
        tee.flush()
    except (OSError, ValueError):  # a closed caller stream must not kill the drain
        logger.debug("could not copy output of %s live", stream)


class _Child:
    """A started process whose output is drained and whose exit is an event."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None,
        stdin_text: str | None,
        sinks: Sequence[tuple[list[bytes] | None, _Tail | None, IO[str] | None]],
    ) -> None:
        self.argv = tuple(argv)
        try:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env) if env is not None else None,
                start_new_session=True,
                close_fds=True,
            )
        except FileNotFoundError as err:
            raise BackendUnavailableError(
                f"tart binary {self.argv[0]!r} not found: {err.strerror}"
            ) from err
        except PermissionError as err:
            raise BackendUnavailableError(
                f"tart binary {self.argv[0]!r} is not executable: {err.strerror}"
            ) from err
        except OSError as err:
            raise SpawnError(
                self.argv, None, message=f"could not start {self.argv[0]}: {err.strerror}"
            ) from err
        except ValueError as err:  # an embedded NUL: no exec(2) can pass it
            raise SpawnError(
                self.argv, None, message=f"could not start {self.argv[0]}: {err}"
            ) from err
        self.exited = threading.Event()
        self._drains = [
            threading.Thread(
                target=self._drain,
                args=(stream, *sink),
                name=f"drain-{self.popen.pid}",
                daemon=True,
            )
            for stream, sink in zip((self.popen.stdout, self.popen.stderr), sinks, strict=True)
        ]
        for thread in self._drains:
            thread.start()
        if stdin_text is not None:
            threading.Thread(
                target=self._feed, args=(stdin_text,), name=f"feed-{self.popen.pid}", daemon=True
            ).start()
        threading.Thread(target=self._reap, name=f"reap-{self.popen.pid}", daemon=True).start()

    @staticmethod
    def _drain(
        stream: IO[bytes] | None,
        collected: list[bytes] | None,
        tail: _Tail | None,
        tee: IO[str] | None,
    ) -> None:
        if stream is None:
            return
        # Incremental: a character split between two reads is still decoded whole.
        decoder = _decoder()
        with stream:
            while chunk := os.read(stream.fileno(), 65536):
                if collected is not None:
                    collected.append(chunk)
                if tail is not None:
                    tail.write(chunk)
                if tee is not None:
                    _copy_live(tee, decoder.decode(chunk), stream)
            if tee is not None:
                _copy_live(tee, decoder.decode(b"", final=True), stream)

    def _feed(self, text: str) -> None:
        assert self.popen.stdin is not None
        try:
            with self.popen.stdin:
                # surrogateescape: bytes given as input reach the command unchanged.
                self.popen.stdin.write(text.encode("utf-8", "surrogateescape"))
        except (BrokenPipeError, OSError):  # the child may exit without reading its input
            pass

    def _reap(self) -> None:
        self.popen.wait()  # blocks in waitpid: the exit is an event, and the child is reaped
        # Exited means "and its output is complete": the tail explains the exit.
        self.finish_output()
        self.exited.set()

    def wait(self, timeout: float | None) -> int | None:
        if not self.exited.wait(timeout):
            return None
        return self.popen.returncode

    def finish_output(self) -> None:
        """Let the drain threads reach EOF after the exit.

        A grandchild still holding the pipes (spec 8.20) gets ``DRAIN_GRACE_SECONDS``,
        then its process group is killed: nothing outlives the command it belongs to.
        """
        deadline = time.monotonic() + DRAIN_GRACE_SECONDS
        for thread in self._drains:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self._drains):
            logger.warning("%s exited but left processes holding its output", self.argv[0])
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            for thread in self._drains:
                thread.join()

    def signal_process(self, signum: int) -> None:
        if self.popen.returncode is not None:  # reaped: the pid may belong to another process
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.popen.pid, signum)

    def kill_group(self) -> None:
        """SIGKILL the child's whole process group (it leads its own session)."""
        if self.popen.returncode is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:  # pragma: no cover - the group leader already changed
            self.signal_process(signal.SIGKILL)


class _Registry:
    """Children to stop when the interpreter exits."""

    def __init__(self) -> None:
        self._children: set[_Child] = set()
        self._lock = threading.Lock()
        self._registered = False

    def add(self, child: _Child) -> None:
        with self._lock:
            if not self._registered:
                atexit.register(self.stop_all)
                self._registered = True
            self._children.add(child)

    def discard(self, child: _Child) -> None:
        with self._lock:
            self._children.discard(child)

    def stop_all(self) -> None:
        with self._lock:
            alive = [child for child in self._children if not child.exited.is_set()]
            self._children.clear()
        for child in alive:
            logger.warning("stopping %s at interpreter exit", " ".join(child.argv))
            child.signal_process(signal.SIGINT)
        deadline = time.monotonic() + EXIT_GRACE_SECONDS
        for child in alive:
            if child.wait(max(0.0, deadline - time.monotonic())) is None:
                child.kill_group()
                child.wait(EXIT_GRACE_SECONDS)


_EXIT_REGISTRY = _Registry()


class SubprocessRunProcess:
    """A spawned ``tart run``: event-driven wait, output tail, signals, reaping."""

    def __init__(self, child: _Child, tail: _Tail, *, kill_on_exit: bool) -> None:
        self._child = child
        self._tail = tail
        if kill_on_exit:
            _EXIT_REGISTRY.add(child)
            threading.Thread(
                target=self._forget_when_exited, name=f"forget-{child.popen.pid}", daemon=True
            ).start()

    def _forget_when_exited(self) -> None:
        self._child.exited.wait()
        _EXIT_REGISTRY.discard(self._child)

    @property
    def argv(self) -> tuple[str, ...]:
        return self._child.argv

    @property
    def pid(self) -> int | None:
        return self._child.popen.pid

    def poll(self) -> int | None:
        return self._child.popen.returncode if self._child.exited.is_set() else None

    def wait(self, timeout: float | None = None) -> int | None:
        return self._child.wait(timeout)

    def send_signal(self, signum: int) -> None:
        self._child.signal_process(signum)

    def kill(self) -> None:
        self._child.kill_group()
        self._child.wait(None)

    def output_tail(self) -> str:
        return self._tail.text()

    def detach(self) -> None:
        """Let this VM outlive the Python process (it is no longer stopped at exit)."""
        _EXIT_REGISTRY.discard(self._child)


class SubprocessRunner:
    """Runs a tart binary (``tart``, ``fake-tart`` or a path) with argv lists only.

    ``env`` adds variables to the inherited environment (e.g. ``TART_HOME``).
    """

    def __init__(
        self,
        binary: str = "tart",
        *,
        env: Mapping[str, str] | None = None,
        kill_on_exit: bool = True,
    ) -> None:
        if not binary:
            raise BackendUnavailableError("no tart binary configured")
        self._binary = binary
        self._env = {**os.environ, **env} if env else None
        self.kill_on_exit = kill_on_exit

    @property
    def binary(self) -> str:
        return self._binary

    def run(
        self,
        args: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: str | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> CommandResult:
        argv = (self._binary, *args)
        out: list[bytes] = []
        err: list[bytes] = []
        child = _Child(
            argv, env=self._env, stdin_text=stdin, sinks=((out, None, stdout), (err, None, stderr))
        )
        try:
            exit_code = child.wait(timeout)
        except BaseException:
            # Ctrl-C while waiting: the child is in its own session and would not get it.
            child.kill_group()
            raise
        if exit_code is None and child.popen.returncode is None:
            child.kill_group()
            child.wait(None)
            raise OperationTimeoutError(
                f"{' '.join(argv)} did not finish within {seconds_text(timeout or 0.0)} "
                "and was killed"
            )
        # It exited in time; its output is complete once the drains are done (bounded).
        exit_code = child.wait(None)
        assert exit_code is not None
        return CommandResult(
            argv=argv,
            exit_code=exit_code,
            stdout=decode_output(b"".join(out)),
            stderr=decode_output(b"".join(err)),
        )

    def spawn(self, args: Sequence[str]) -> SubprocessRunProcess:
        tail = _Tail(OUTPUT_TAIL_BYTES)
        child = _Child(
            (self._binary, *args),
            env=self._env,
            stdin_text=None,
            sinks=((None, tail, None), (None, tail, None)),
        )
        return SubprocessRunProcess(child, tail, kill_on_exit=self.kill_on_exit)

    def availability(self) -> Availability:
        if os.sep in self._binary:
            if os.path.isfile(self._binary) and os.access(self._binary, os.X_OK):
                return Availability(True)
            return Availability(False, f"{self._binary} does not exist or is not executable")
        path = self._env.get("PATH") if self._env else None
        if shutil.which(self._binary, path=path):
            return Availability(True)
        return Availability(False, f"{self._binary!r} not found on PATH")

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
