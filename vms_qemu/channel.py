"""A JSON-message connection over a unix socket, shared by the QMP and guest-agent clients.

Both QEMU protocols send one JSON object per line; the guest agent may also emit a
0xFF delimiter byte before a sync reply. This module knows bytes and lines only.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Sequence
from typing import Any

from vms_core.errors import OperationTimeoutError, VMError
from vms_core.waiting import Deadline

logger = logging.getLogger(__name__)

#: The guest agent writes this byte before the reply to ``guest-sync-delimited``.
DELIMITER = b"\xff"


class ChannelClosedError(VMError):
    """The other end closed the socket (usually: QEMU exited)."""


class ChannelProtocolError(VMError):
    """The other end sent something that is not a JSON object."""


class JsonChannel:
    """One connected unix socket exchanging JSON objects separated by newlines."""

    def __init__(
        self, sock: socket.socket, *, what: str, send_timeout: float | None = None
    ) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self.what = what
        #: A peer that stops reading (a guest that never opened the agent port) fills
        #: the socket buffer; a send then waits at most this long.
        self.send_timeout = send_timeout

    @classmethod
    def connect(cls, path: str, *, timeout: float, what: str) -> JsonChannel:
        """Connect to ``path``; raises OSError (e.g. FileNotFoundError) when nobody listens."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        return cls(sock, what=what, send_timeout=timeout)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> JsonChannel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(
        self, message: dict[str, Any], *, fds: Sequence[int] = (), prefix: bytes = b""
    ) -> None:
        """Send one message; ``fds`` travel with it as SCM_RIGHTS (QMP ``getfd``)."""
        data = prefix + json.dumps(message).encode() + b"\n"
        self._sock.settimeout(self.send_timeout)  # a receive may have left another one
        try:
            if fds:
                sent = socket.send_fds(self._sock, [data], list(fds))
                if sent < len(data):
                    self._sock.sendall(data[sent:])
            else:
                self._sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as err:
            raise ChannelClosedError(f"{self.what}: connection closed while sending") from err
        except TimeoutError:
            raise OperationTimeoutError(
                f"{self.what}: the other end read nothing for {self.send_timeout:g}s"
            ) from None

    def receive(self, *, timeout: float | None) -> dict[str, Any]:
        """The next JSON object; blank lines and a stray delimiter are skipped."""
        while True:
            line = self._read_until(b"\n", timeout=timeout).strip().lstrip(DELIMITER).strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except ValueError as err:
                raise ChannelProtocolError(f"{self.what}: not JSON: {line[:200]!r}") from err
            if not isinstance(message, dict):
                raise ChannelProtocolError(f"{self.what}: not a JSON object: {line[:200]!r}")
            return message

    def skip_past_delimiter(self, *, timeout: float | None) -> None:
        """Discard input up to and including the next 0xFF byte."""
        self._read_until(DELIMITER, timeout=timeout)

    def _read_until(self, terminator: bytes, *, timeout: float | None) -> bytes:
        deadline = Deadline(timeout)
        while True:
            index = self._buffer.find(terminator)
            if index >= 0:
                chunk = bytes(self._buffer[: index + 1])
                del self._buffer[: index + 1]
                return chunk
            remaining = deadline.remaining()
            if remaining is not None and remaining <= 0:
                raise OperationTimeoutError(f"{self.what}: no reply within {timeout:g}s")
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                raise OperationTimeoutError(
                    f"{self.what}: no reply within {timeout:g}s"
                    if timeout is not None
                    else f"{self.what}: no reply"
                ) from None
            except ConnectionResetError as err:
                raise ChannelClosedError(f"{self.what}: connection reset") from err
            if not data:
                raise ChannelClosedError(f"{self.what}: connection closed")
            self._buffer.extend(data)
