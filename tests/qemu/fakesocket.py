"""A scripted unix-socket peer for testing the QMP and guest-agent clients without QEMU."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[["Peer"], None]


class Peer:
    """The server side of one accepted connection, as the handler sees it."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buffer = b""
        self.received_fds: list[int] = []

    def send(self, message: dict[str, Any], *, prefix: bytes = b"") -> None:
        self.conn.sendall(prefix + json.dumps(message).encode() + b"\n")

    def send_raw(self, data: bytes) -> None:
        self.conn.sendall(data)

    def receive(self) -> dict[str, Any]:
        """The next request (a leading 0xFF sync delimiter is dropped)."""
        while b"\n" not in self.buffer:
            data, fds, _flags, _addr = socket.recv_fds(self.conn, 65536, 4)
            self.received_fds.extend(fds)
            if not data:
                raise EOFError("client closed")
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return dict(json.loads(line.lstrip(b"\xff")))


class FakeServer:
    """Accepts one connection on ``path`` and runs ``handler`` on it in a thread."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self.error: BaseException | None = None
        self.peer: Peer | None = None
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(1)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._listener.close()
        self._thread.join(timeout=10)
        if self.peer is not None:
            for fd in self.peer.received_fds:
                import os

                os.close(fd)
        if self.error is not None:
            raise self.error

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        with conn:
            self.peer = Peer(conn)
            try:
                self.handler(self.peer)
            except EOFError:
                pass
            except BaseException as err:  # surfaced in __exit__
                self.error = err
