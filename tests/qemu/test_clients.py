"""The QMP and guest-agent clients against a scripted socket peer (no QEMU)."""

from __future__ import annotations

import base64
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vms_core.errors import BackendCommandError, OperationTimeoutError
from vms_qemu.channel import ChannelClosedError, JsonChannel
from vms_qemu.qga import AgentCommandError, GuestAgentClient, GuestArgumentError
from vms_qemu.qmp import QMPClient, QMPCommandError

from .fakesocket import FakeServer, Peer

GREETING = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2}}, "capabilities": []}}


@pytest.fixture
def socket_path() -> Iterator[Path]:
    # A short directory: unix socket paths are limited to 108 bytes.
    with tempfile.TemporaryDirectory(prefix="vq-") as directory:
        yield Path(directory) / "s.sock"


def qmp_handshake(peer: Peer) -> None:
    peer.send(GREETING)
    assert peer.receive() == {"execute": "qmp_capabilities"}
    peer.send({"return": {}})


def test_qmp_negotiates_then_returns_the_command_result_skipping_events(socket_path: Path) -> None:
    def handler(peer: Peer) -> None:
        qmp_handshake(peer)
        assert peer.receive() == {"execute": "query-status"}
        peer.send({"event": "STOP", "timestamp": {}})
        peer.send({"return": {"status": "paused", "running": False}})

    with FakeServer(socket_path, handler), QMPClient.connect(str(socket_path)) as client:
        assert client.status() == "paused"
        assert [event["event"] for event in client.events] == ["STOP"]


def test_qmp_error_reply_raises_a_typed_error_naming_the_command(socket_path: Path) -> None:
    def handler(peer: Peer) -> None:
        qmp_handshake(peer)
        assert peer.receive() == {"execute": "cont", "arguments": {"x": 1}}
        peer.send({"error": {"class": "GenericError", "desc": "no can do"}})

    with (
        FakeServer(socket_path, handler),
        QMPClient.connect(str(socket_path)) as client,
        pytest.raises(QMPCommandError) as caught,
    ):
        client.command("cont", {"x": 1})
    assert caught.value.error_class == "GenericError"
    assert isinstance(caught.value, BackendCommandError)
    assert "no can do" in str(caught.value) and "cont" in str(caught.value)


def test_qmp_passes_file_descriptors_with_getfd(socket_path: Path, tmp_path: Path) -> None:
    received: list[bytes] = []

    def handler(peer: Peer) -> None:
        qmp_handshake(peer)
        assert peer.receive() == {"execute": "getfd", "arguments": {"fdname": "f"}}
        for fd in peer.received_fds:
            received.append(os.pread(fd, 100, 0))
        peer.send({"return": {}})

    target = tmp_path / "file"
    target.write_bytes(b"via SCM_RIGHTS")
    fd = os.open(target, os.O_RDONLY)
    try:
        with FakeServer(socket_path, handler), QMPClient.connect(str(socket_path)) as client:
            client.command("getfd", {"fdname": "f"}, fds=[fd])
    finally:
        os.close(fd)
    assert received == [b"via SCM_RIGHTS"]


def test_qmp_reports_a_closed_connection(socket_path: Path) -> None:
    def handler(peer: Peer) -> None:
        qmp_handshake(peer)
        peer.receive()  # then hang up, as QEMU does when it exits

    with (
        FakeServer(socket_path, handler),
        QMPClient.connect(str(socket_path)) as client,
        pytest.raises(ChannelClosedError),
    ):
        client.command("quit")


def test_agent_sync_discards_stale_replies_until_its_own_id(socket_path: Path) -> None:
    def handler(peer: Peer) -> None:
        request = peer.receive()
        assert request["execute"] == "guest-sync-delimited"
        sync_id = request["arguments"]["id"]
        # Replies to requests sent before the agent was up, then garbage, then ours.
        peer.send({"return": sync_id - 2}, prefix=b"\xff")
        peer.send_raw(b"partial garbage")
        peer.send({"return": sync_id - 1}, prefix=b"\xff")
        peer.send({"return": sync_id}, prefix=b"\xff")
        assert peer.receive() == {"execute": "guest-ping"}
        peer.send({"return": {}})

    with FakeServer(socket_path, handler):
        client = GuestAgentClient.connect(str(socket_path))
        try:
            client.sync(timeout=5)
            client.ping()
        finally:
            client.close()


def test_agent_sync_retries_while_the_agent_is_silent(
    socket_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("vms_qemu.qga.SYNC_ATTEMPT_TIMEOUT", 0.05)
    attempts = []

    def handler(peer: Peer) -> None:
        first = peer.receive()  # the agent is "not started": no reply
        attempts.append(first)
        second = peer.receive()
        attempts.append(second)
        peer.send({"return": first["arguments"]["id"]}, prefix=b"\xff")  # the late reply
        peer.send({"return": second["arguments"]["id"]}, prefix=b"\xff")

    with FakeServer(socket_path, handler):
        client = GuestAgentClient.connect(str(socket_path))
        try:
            client.sync(timeout=10)
        finally:
            client.close()
    assert len(attempts) == 2
    assert attempts[0]["arguments"]["id"] != attempts[1]["arguments"]["id"]


def test_agent_sync_gives_up_at_its_timeout(
    socket_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("vms_qemu.qga.SYNC_ATTEMPT_TIMEOUT", 0.02)
    done = threading.Event()

    def handler(peer: Peer) -> None:
        done.wait(10)

    with FakeServer(socket_path, handler):
        client = GuestAgentClient.connect(str(socket_path))
        try:
            with pytest.raises(OperationTimeoutError, match="guest agent"):
                client.sync(timeout=0.1)
        finally:
            done.set()
            client.close()


def exec_handler(
    status: dict[str, object], expect_input: bytes | None = None
) -> Callable[[Peer], None]:
    def handler(peer: Peer) -> None:
        request = peer.receive()
        assert request["execute"] == "guest-exec"
        assert request["arguments"]["path"] == "sh"
        assert request["arguments"]["arg"] == ["-c", "x"]
        assert request["arguments"]["capture-output"] is True
        if expect_input is not None:
            assert base64.b64decode(request["arguments"]["input-data"]) == expect_input
        peer.send({"return": {"pid": 77}})
        assert peer.receive() == {"execute": "guest-exec-status", "arguments": {"pid": 77}}
        peer.send({"return": {"exited": False}})
        assert peer.receive() == {"execute": "guest-exec-status", "arguments": {"pid": 77}}
        peer.send({"return": status})

    return handler


def test_agent_run_polls_until_exit_and_decodes_output(socket_path: Path) -> None:
    status = {
        "exited": True,
        "exitcode": 3,
        "out-data": base64.b64encode(b"out\n").decode(),
        "err-data": base64.b64encode("é\n".encode()).decode(),
    }
    with FakeServer(socket_path, exec_handler(status, expect_input=b"in")):
        client = GuestAgentClient.connect(str(socket_path))
        try:
            result = client.run("sh", ["-c", "x"], stdin=b"in", sleep=lambda _: None)
        finally:
            client.close()
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"out\n", "é\n".encode())


def test_agent_run_reports_a_signal_as_negative_exit_code(socket_path: Path) -> None:
    with FakeServer(socket_path, exec_handler({"exited": True, "signal": 9})):
        client = GuestAgentClient.connect(str(socket_path))
        try:
            result = client.run("sh", ["-c", "x"], sleep=lambda _: None)
        finally:
            client.close()
    assert (result.exit_code, result.signal, result.stdout) == (-9, 9, b"")


def test_agent_error_reply_is_typed(socket_path: Path) -> None:
    def handler(peer: Peer) -> None:
        peer.receive()
        peer.send({"error": {"class": "GenericError", "desc": "Failed to execute child process"}})

    with FakeServer(socket_path, handler):
        client = GuestAgentClient.connect(str(socket_path))
        try:
            with pytest.raises(AgentCommandError) as caught:
                client.start_process("nosuch", [])
        finally:
            client.close()
    assert caught.value.command == "guest-exec"
    assert "Failed to execute" in caught.value.description


def test_agent_resyncs_after_an_abandoned_reply(socket_path: Path) -> None:
    """A reply that arrives after its command timed out must not answer the next command."""
    release = threading.Event()

    def handler(peer: Peer) -> None:
        assert peer.receive() == {"execute": "guest-info"}
        release.wait(10)  # too late for the client
        sync = peer.receive()
        assert sync["execute"] == "guest-sync-delimited"
        peer.send({"return": {"version": "late"}})
        peer.send({"return": sync["arguments"]["id"]}, prefix=b"\xff")
        assert peer.receive() == {"execute": "guest-ping"}
        peer.send({"return": {"pong": True}})

    with FakeServer(socket_path, handler):
        client = GuestAgentClient.connect(str(socket_path), timeout=0.1)
        try:
            with pytest.raises(OperationTimeoutError):
                client.command("guest-info")
            release.set()
            client.timeout = 5
            assert client.command("guest-ping") == {"pong": True}
        finally:
            client.close()


def test_agent_run_kills_the_guest_command_tree_when_it_times_out(socket_path: Path) -> None:
    """The timed-out command and its children must not keep running in the guest."""
    killer_requests: list[dict[str, object]] = []

    def handler(peer: Peer) -> None:
        assert peer.receive()["execute"] == "guest-exec"
        peer.send({"return": {"pid": 77}})
        while True:
            request = peer.receive()
            if request["execute"] == "guest-exec":
                break
            peer.send({"return": {"exited": False}})
        killer_requests.append(request["arguments"])
        peer.send({"return": {"pid": 78}})
        assert peer.receive() == {"execute": "guest-exec-status", "arguments": {"pid": 78}}
        peer.send({"return": {"exited": True, "exitcode": 0}})
        assert peer.receive() == {"execute": "guest-exec-status", "arguments": {"pid": 77}}
        peer.send({"return": {"exited": True, "signal": 9}})

    with FakeServer(socket_path, handler):
        client = GuestAgentClient.connect(str(socket_path))
        try:
            with pytest.raises(OperationTimeoutError, match=r"killed it \(guest pid 77\)"):
                client.run("sleep", ["600"], timeout=0.05, sleep=lambda _: None)
        finally:
            client.close()
    [killer] = killer_requests
    assert killer["path"] == "sh" and killer["capture-output"] is False
    args = killer["arg"]
    assert isinstance(args, list) and args[-1] == "77" and "children" in args[1]


def test_agent_run_reports_output_cut_at_the_agents_limit(socket_path: Path) -> None:
    status = {
        "exited": True,
        "exitcode": 0,
        "out-data": base64.b64encode(b"x").decode(),
        "out-truncated": True,
    }
    with FakeServer(socket_path, exec_handler(status)):
        client = GuestAgentClient.connect(str(socket_path))
        try:
            result = client.run("sh", ["-c", "x"], sleep=lambda _: None)
        finally:
            client.close()
    assert (result.stdout_truncated, result.stderr_truncated) == (True, False)


def test_agent_refuses_nul_in_arguments_before_sending(socket_path: Path) -> None:
    def handler(peer: Peer) -> None:
        peer.receive()  # nothing may arrive

    with FakeServer(socket_path, handler):
        client = GuestAgentClient.connect(str(socket_path))
        try:
            with pytest.raises(GuestArgumentError, match="NUL"):
                client.start_process("echo", ["a\0b"])
        finally:
            client.close()


def test_a_send_the_peer_never_reads_times_out_as_a_typed_error() -> None:
    """A guest that never opens the agent port fills the socket buffer; the send must not
    hang, nor raise a raw socket TimeoutError."""
    ours, theirs = socket.socketpair()
    try:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        channel = JsonChannel(ours, what="guest agent", send_timeout=0.05)
        with pytest.raises(OperationTimeoutError, match="guest agent"):
            for _ in range(10_000):
                channel.send({"execute": "guest-sync-delimited", "arguments": {"id": 1}})
    finally:
        ours.close()
        theirs.close()
