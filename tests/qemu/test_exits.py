"""QEMU that exits on its own (guest poweroff, crash) is noticed by state()."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from vms_core.errors import NotRunningError, OperationTimeoutError, VMDiedError
from vms_core.lifecycle import wait_for_state
from vms_core.states import State
from vms_qemu.backend import QemuBackend
from vms_qemu.testing import QemuFaults

from .conftest import qemu_processes_under, requires_qemu

pytestmark = [pytest.mark.qemu, requires_qemu, pytest.mark.timeout(180)]


def test_guest_poweroff_then_crash_are_noticed(vm_state_dir: Path, default_guest: object) -> None:
    backend = QemuBackend(state_dir=vm_state_dir)
    vm = backend.create_instance()
    vm.clone()
    try:
        vm.start()
        # The guest powers itself off shortly after the agent has answered.
        vm.exec("sh", "-c", "(sleep 0.3; poweroff -f) >/dev/null 2>&1 &").check()
        wait_for_state(vm, State.STOPPED, intermediate=[State.RUNNING], timeout=60)
        with pytest.raises(NotRunningError):
            vm.exec("true")
        assert qemu_processes_under(vm.directory) == []
        result = vm.stop()
        assert (result.noop, result.exited_on_its_own, result.exit_status) == (True, True, 0)
        assert vm.stop().exit_status is None  # reported once

        vm.start()  # a VM that stopped on its own starts again
        assert vm.exec("true").ok
        # A crash. kill_vm returns once QEMU is reapable (all its threads gone, not only
        # its main thread a zombie), so state() must see it at once.
        QemuFaults(backend).kill_vm(vm.id)
        assert vm.state() is State.STOPPED
        assert backend.list_vms()[0].state is State.STOPPED
        result = vm.stop()
        # Not forced: the kill was not ours (the same on every backend, finding 24).
        assert (result.exited_on_its_own, result.exit_status, result.forced) == (
            True,
            -signal.SIGKILL,
            False,
        )

        # The same when stop() itself is the first to find QEMU gone.
        vm.start()
        QemuFaults(backend).kill_vm(vm.id)
        result = vm.stop()
        assert (result.noop, result.exited_on_its_own, result.forced) == (False, True, False)
        assert result.exit_status == -signal.SIGKILL and vm.state() is State.STOPPED
    finally:
        from vms_core.lifecycle import cleanup

        cleanup(vm, stop_timeout=10)


def test_qemu_failing_at_startup_raises_vm_died_with_its_output(
    vm_state_dir: Path, default_guest: object
) -> None:
    vm = QemuBackend(state_dir=vm_state_dir).create_instance()
    vm.clone()
    try:
        (vm.directory / "disk.qcow2").write_bytes(b"not a qcow2 image")
        with pytest.raises(VMDiedError) as caught:
            vm.start()
        assert caught.value.exit_status == 1
        assert "qcow2" in caught.value.output_tail.lower()  # QEMU's own complaint
        assert vm.state() is State.STOPPED
        assert qemu_processes_under(vm.directory) == []
    finally:
        vm.delete()


def test_boot_timeout_kills_qemu_and_leaves_the_vm_stopped(
    vm_state_dir: Path, default_guest: object
) -> None:
    vm = QemuBackend(state_dir=vm_state_dir).create_instance()
    vm.clone()
    try:
        with pytest.raises(OperationTimeoutError):
            vm.start(timeout=0.5)  # the guest needs seconds to boot
        assert vm.state() is State.STOPPED
        assert qemu_processes_under(vm.directory) == []
        assert not (vm.directory / "qemu.pid").exists()
    finally:
        vm.delete()
