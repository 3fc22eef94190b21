"""The whole lifecycle against one real TCG guest booted once for this module."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from vms_core.errors import (
    BackendCommandError,
    NotRunningError,
    OperationTimeoutError,
    TransitionNotAllowedError,
)
from vms_core.states import State
from vms_qemu.backend import QemuBackend
from vms_qemu.instance import OutputTruncatedError, QemuInstance
from vms_qemu.process import QemuProcess
from vms_qemu.qga import OUTPUT_LIMIT, GuestArgumentError

from .conftest import qemu_processes_under, requires_qemu

pytestmark = [pytest.mark.qemu, requires_qemu, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def backend(vm_state_dir: Path, default_guest: object) -> QemuBackend:
    return QemuBackend(state_dir=vm_state_dir, forwards=["tcp:127.0.0.1:0-:8080"])


@pytest.fixture(scope="module")
def vm(backend: QemuBackend) -> Iterator[QemuInstance]:
    instance = backend.create_instance()
    instance.clone()
    instance.start()
    yield instance
    from vms_core.lifecycle import cleanup

    cleanup(instance, stop_timeout=10)


def test_clone_is_an_overlay_and_start_reaches_running(vm: QemuInstance) -> None:
    assert vm.state() is State.RUNNING
    assert (vm.directory / "disk.qcow2").is_file()
    assert vm.pid is not None and qemu_processes_under(vm.directory) == [vm.pid]


def test_exec_returns_output_and_exit_code(vm: QemuInstance) -> None:
    assert vm.exec("uname", "-s").stdout == "Linux\n"
    failed = vm.exec("sh", "-c", "echo out; echo err >&2; exit 3")
    assert (failed.exit_code, failed.stdout, failed.stderr) == (3, "out\n", "err\n")
    with pytest.raises(BackendCommandError, match="guest command failed"):
        vm.exec("false", check=True)


def test_exec_feeds_stdin_and_copies_output_to_writers(vm: QemuInstance) -> None:
    out, err = io.StringIO(), io.StringIO()
    result = vm.exec(
        "sh", "-c", "tr a-z A-Z; echo done >&2", stdin="hello\n", stdout=out, stderr=err
    )
    assert result.stdout == "HELLO\n" == out.getvalue()
    assert err.getvalue() == "done\n"


def test_exec_of_a_missing_command_is_exit_127(vm: QemuInstance) -> None:
    result = vm.exec("no-such-command")
    assert result.exit_code == 127 and "no-such-command" in result.stderr


def test_exec_timeout_raises_without_waiting_on_qemu_and_kills_the_command(
    vm: QemuInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A timeout was taken for a closing channel: exec waited QUIT_TIMEOUT (10 s) for QEMU.
    waits: list[float | None] = []
    monkeypatch.setattr(QemuProcess, "wait", lambda self, timeout: waits.append(timeout))
    with pytest.raises(OperationTimeoutError, match="killed it"):
        vm.exec("sh", "-c", "sleep 600 & sleep 601; echo never", timeout=0.5)
    assert waits == []
    monkeypatch.undo()
    assert "sleep 60" not in vm.exec("ps").stdout  # the command and its child are gone


def test_exec_output_beyond_the_agents_limit_raises_instead_of_truncating(
    vm: QemuInstance,
) -> None:
    with pytest.raises(OutputTruncatedError, match="stdout") as caught:
        vm.exec("head", "-c", str(OUTPUT_LIMIT + 1), "/dev/zero")
    assert caught.value.result.exit_code == 0
    assert len(caught.value.result.stdout) == OUTPUT_LIMIT
    assert vm.exec("true").ok  # the agent is still in step


def test_non_utf8_output_keeps_every_byte(vm: QemuInstance) -> None:
    result = vm.exec("printf", "\\377\\376abc\\n")
    assert result.stdout.encode("utf-8", "surrogateescape") == b"\xff\xfeabc\n"
    with pytest.raises(GuestArgumentError):
        vm.exec("echo", "a\0b")


def test_properties_report_the_host_side_forward(vm: QemuInstance) -> None:
    props = vm.properties()
    assert props.clone_info.name == vm.id and props.clone_info.source == "builtin"
    assert props.ip == "127.0.0.1"
    [forward] = props.extras["forwards"]
    assert forward["guest_port"] == 8080 and forward["host_port"] > 0  # port 0 was resolved
    assert props.extras["accelerator"] == "tcg"  # this machine kind: PVM host, see accel.py
    # The forward really reaches the guest: serve a page with busybox httpd.
    vm.exec("sh", "-c", "mkdir -p /www && echo from-guest > /www/index.html").check()
    vm.exec("httpd", "-p", "8080", "-h", "/www").check()
    with socket.create_connection(("127.0.0.1", forward["host_port"]), timeout=10) as conn:
        conn.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := conn.recv(4096):
            reply += chunk
    assert reply.endswith(b"from-guest\n")


def test_forbidden_transitions_run_nothing(vm: QemuInstance) -> None:
    pid = vm.pid
    with pytest.raises(TransitionNotAllowedError):
        vm.start()
    with pytest.raises(TransitionNotAllowedError):
        vm.clone()
    with pytest.raises(TransitionNotAllowedError):
        vm.delete()
    assert vm.state() is State.RUNNING and vm.pid == pid


def test_another_backend_object_sees_the_running_vm(vm: QemuInstance, vm_state_dir: Path) -> None:
    other = QemuBackend(state_dir=vm_state_dir)
    [info] = other.list_vms()
    assert (info.name, info.state, info.running, info.source) == (
        vm.id,
        State.RUNNING,
        True,
        "builtin",
    )
    detail = other.get_vm(vm.id)
    assert detail.extras["pid"] == vm.pid and detail.memory_mib == 256


def test_suspend_then_resume_keeps_guest_memory(vm: QemuInstance, backend: QemuBackend) -> None:
    vm.exec("sh", "-c", "echo 4242 > /dev/shm/marker; echo tmp-too > /tmp/marker").check()
    pid_before = vm.pid
    vm.suspend()
    assert vm.state() is State.SUSPENDED
    assert qemu_processes_under(vm.directory) == []
    assert [i.state for i in backend.list_vms()] == [State.SUSPENDED]
    with pytest.raises(NotRunningError):
        vm.exec("true")
    vm.suspend()  # idempotent from Suspended
    vm.start()
    assert vm.state() is State.RUNNING and vm.pid != pid_before
    assert vm.exec("cat", "/dev/shm/marker", "/tmp/marker").stdout == "4242\ntmp-too\n"
    assert not (vm.directory / "suspend.state").exists()


def test_stop_powers_off_and_reports_qemus_exit_status(vm: QemuInstance) -> None:
    result = vm.stop(timeout=20)
    assert (result.exit_status, result.forced, result.exited_on_its_own) == (0, False, False)
    assert result.clean and vm.state() is State.STOPPED
    assert qemu_processes_under(vm.directory) == []
    assert vm.stop().noop


def test_delete_removes_every_file(vm: QemuInstance, vm_state_dir: Path) -> None:
    directory = vm.directory
    vm.delete()
    assert vm.state() is State.DELETED
    assert not directory.exists() and list(vm_state_dir.iterdir()) == []
