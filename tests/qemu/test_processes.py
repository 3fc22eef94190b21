"""No QEMU outlives its caller: Ctrl-C during start, interpreter exit, cleanup from elsewhere."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vms_core.states import State
from vms_core.waiting import poll_until
from vms_qemu.backend import QemuBackend
from vms_qemu.process import wait_until_ended

from .conftest import qemu_processes_under, requires_qemu

pytestmark = [pytest.mark.qemu, requires_qemu, pytest.mark.timeout(180)]

HOLDER = Path(__file__).with_name("vm_holder.py")


@pytest.fixture
def holder(vm_state_dir: Path, default_guest: object) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(30)


def spawn(holder: list[subprocess.Popen[str]], mode: str, state_dir: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, str(HOLDER), mode, str(state_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    holder.append(process)
    return process


def test_ctrl_c_during_start_kills_qemu_and_cleans_up(
    holder: list[subprocess.Popen[str]], vm_state_dir: Path
) -> None:
    process = spawn(holder, "interrupt", vm_state_dir)
    pidfile = poll_until(
        lambda: next(vm_state_dir.glob("*/qemu.pid"), None),
        timeout=60,
        what="QEMU to start",
        backoff=None,
    )
    qemu_pid = int(
        poll_until(lambda: pidfile.read_text().strip() or None, timeout=10, what="the pidfile")
    )
    process.send_signal(signal.SIGINT)  # the guest is still booting (about 3 s under TCG)
    stdout, stderr = process.communicate(timeout=60)
    assert "BOOTED" not in stdout, "the boot finished before the interrupt; test is moot"
    assert "KeyboardInterrupt" in stderr and process.returncode != 0
    assert qemu_pid not in qemu_processes_under(vm_state_dir)
    assert qemu_processes_under(vm_state_dir) == []
    assert list(vm_state_dir.iterdir()) == []  # running() deleted the VM


def test_a_vm_of_another_process_is_listed_and_deleted_from_here(
    holder: list[subprocess.Popen[str]], vm_state_dir: Path
) -> None:
    process = spawn(holder, "hold", vm_state_dir)
    assert process.stdout is not None and process.stdin is not None
    _, name, pid = process.stdout.readline().split()
    backend = QemuBackend(state_dir=vm_state_dir)
    [info] = backend.list_vms()
    assert (info.name, info.state) == (name, State.RUNNING)
    assert backend.get_vm(name).extras["pid"] == int(pid)
    report = backend.delete_all(stop_timeout=20)
    assert report.ok and report.deleted == [name]
    assert qemu_processes_under(vm_state_dir) == []
    assert list(vm_state_dir.iterdir()) == []
    process.stdin.write("exit\n")
    process.stdin.flush()
    assert process.wait(30) == 0


def test_interpreter_exit_kills_a_vm_left_running(
    holder: list[subprocess.Popen[str]], vm_state_dir: Path
) -> None:
    process = spawn(holder, "hold", vm_state_dir)
    assert process.stdout is not None and process.stdin is not None
    _, name, _pid = process.stdout.readline().split()
    assert qemu_processes_under(vm_state_dir) != []
    _, stderr = process.communicate("exit\n", timeout=60)
    assert process.returncode == 0
    assert "still running at interpreter exit; killing it" in stderr  # not silently
    assert qemu_processes_under(vm_state_dir) == []
    backend = QemuBackend(state_dir=vm_state_dir)
    assert [(i.name, i.state) for i in backend.list_vms()] == [(name, State.STOPPED)]
    assert backend.delete_all().deleted == [name]


def test_a_killed_caller_takes_its_qemu_with_it(
    holder: list[subprocess.Popen[str]], vm_state_dir: Path
) -> None:
    """SIGKILL runs no exit hook; the kernel's parent-death signal ends QEMU instead."""
    process = spawn(holder, "hold", vm_state_dir)
    assert process.stdout is not None
    _, name, pid = process.stdout.readline().split()
    process.kill()
    process.wait(30)
    assert wait_until_ended(int(pid), timeout=30)
    assert qemu_processes_under(vm_state_dir) == []
    backend = QemuBackend(state_dir=vm_state_dir)
    assert [(i.name, i.state) for i in backend.list_vms()] == [(name, State.STOPPED)]
    assert backend.delete_all().deleted == [name]
