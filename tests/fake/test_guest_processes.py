"""A simulated VM's guest commands end with the VM, backgrounded ones included."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from vms_core.errors import NotRunningError
from vms_fake.backend import FakeBackend

from .driver import UBUNTU, Tart, wait_until


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie awaiting its reaper counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _background_sleep(tart: Tart, name: str) -> int:
    result = tart("exec", name, "sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!")
    assert result.exit_code == 0, result
    pid = int(result.stdout)
    assert not _gone(pid)
    return pid


@pytest.fixture
def linux(tart: Tart) -> str:
    tart.clone(UBUNTU, "vm")
    return "vm"


@pytest.mark.timeout(60)
def test_background_guest_command_ends_when_the_run_stops(tart: Tart, linux: str) -> None:
    run = tart.spawn("run", linux, "--no-graphics")
    pid = _background_sleep(tart, linux)
    run.signal(signal.SIGINT)
    assert run.wait() == 0
    wait_until(lambda: _gone(pid))


@pytest.mark.timeout(60)
def test_guest_commands_end_when_a_killed_run_is_stopped_or_deleted(tart: Tart, linux: str) -> None:
    run = tart.spawn("run", linux, "--no-graphics")
    first = _background_sleep(tart, linux)
    run.signal(signal.SIGKILL)  # no exit handling in the executable
    run.wait()
    second_run = tart.spawn("run", linux, "--no-graphics")
    wait_until(lambda: _gone(first))  # the next run ends what the killed one left
    second = _background_sleep(tart, linux)
    second_run.signal(signal.SIGKILL)
    second_run.wait()
    assert tart("delete", linux).exit_code == 0
    wait_until(lambda: _gone(second))


@pytest.mark.timeout(60)
def test_exec_fails_when_the_vm_stops_under_it(tart: Tart, linux: str) -> None:
    run = tart.spawn("run", linux, "--no-graphics")
    results = []
    thread = threading.Thread(
        target=lambda: results.append(tart("exec", linux, "sh", "-c", "sleep 30; echo finished"))
    )
    thread.start()
    wait_until(
        lambda: (
            (Path(tart.home) / "vms" / linux / "guest-pgids").is_dir()
            and bool(os.listdir(Path(tart.home) / "vms" / linux / "guest-pgids"))
        )
    )
    run.signal(signal.SIGINT)
    assert run.wait() == 0
    thread.join(30)
    assert not thread.is_alive()
    [result] = results
    assert result.exit_code == 1
    assert "finished" not in result.stdout
    assert 'VM "vm" stopped while the command was running' in result.stderr


@pytest.mark.timeout(60)
def test_backend_exec_raises_when_another_thread_stops_the_vm(tmp_path: Path) -> None:
    backend = FakeBackend(home=str(tmp_path / "home"), os="linux")
    instance = backend.create_instance(source=UBUNTU)
    instance.clone()
    instance.start()
    errors: list[BaseException] = []

    def long_exec() -> None:
        try:
            instance.exec("sh", "-c", "sleep 30; echo finished")
        except BaseException as error:  # recorded for the assertion
            errors.append(error)

    thread = threading.Thread(target=long_exec)
    thread.start()
    pgids = tmp_path / "home" / "vms" / instance.id / "guest-pgids"
    wait_until(lambda: pgids.is_dir() and bool(os.listdir(pgids)))
    instance.stop()
    instance.delete()
    thread.join(30)
    assert not thread.is_alive()
    [error] = errors
    assert isinstance(error, NotRunningError)
    assert f"{instance.id} stopped while running sh" in str(error)
