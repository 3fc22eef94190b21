"""A small synchronous QMP (QEMU Machine Protocol) client over the VM's control socket."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from vms_core.errors import BackendCommandError
from vms_qemu.channel import JsonChannel

logger = logging.getLogger(__name__)


class QMPCommandError(BackendCommandError):
    """QEMU answered a QMP command with an error."""

    def __init__(self, command: str, error_class: str, description: str) -> None:
        self.command = command
        self.error_class = error_class
        super().__init__(
            ("qmp", command), None, f"{error_class}: {description}", message="QMP command failed"
        )


class QMPClient:
    """One QMP session: greeting, capabilities negotiation, then commands.

    Asynchronous events arriving between replies are kept in ``events`` (QEMU
    sends e.g. ``STOP``, ``RESUME``, ``POWERDOWN``) so callers can inspect them.
    QEMU accepts one QMP client per socket at a time.
    """

    def __init__(self, channel: JsonChannel, *, timeout: float) -> None:
        self._channel = channel
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self.greeting: dict[str, Any] = {}

    @classmethod
    def connect(cls, path: str, *, timeout: float = 10.0) -> QMPClient:
        channel = JsonChannel.connect(path, timeout=timeout, what=f"QMP {path}")
        client = cls(channel, timeout=timeout)
        try:
            client._handshake()
        except BaseException:
            channel.close()
            raise
        return client

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> QMPClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _handshake(self) -> None:
        self.greeting = self._channel.receive(timeout=self.timeout)
        if "QMP" not in self.greeting:
            raise QMPCommandError("greeting", "ProtocolError", f"unexpected {self.greeting}")
        self.command("qmp_capabilities")

    def command(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        *,
        fds: Sequence[int] = (),
        timeout: float | None = None,
    ) -> Any:
        """Run ``name`` and return its ``return`` value; an error reply raises QMPCommandError."""
        message: dict[str, Any] = {"execute": name}
        if arguments:
            message["arguments"] = arguments
        logger.debug("QMP -> %s", message)
        self._channel.send(message, fds=fds)
        while True:
            reply = self._channel.receive(timeout=self.timeout if timeout is None else timeout)
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                error = reply["error"]
                raise QMPCommandError(
                    name, str(error.get("class", "?")), str(error.get("desc", error))
                )
            if "return" in reply:
                return reply["return"]
            logger.debug("QMP: ignoring unexpected message %s", reply)

    def status(self) -> str:
        """The run state QEMU reports (``running``, ``paused``, ``inmigrate``, ...)."""
        return str(self.command("query-status")["status"])
