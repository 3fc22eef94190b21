"""The real-world problems of tart spec section 8, reproduced with the simulator's faults.

Each ends in a legal state (the one tart itself reports) with a clear typed error.
Problems that need a long real wait, or involve no process, run in-process only
(virtual time); those about the run process run against `fake-tart` too.
"""

from __future__ import annotations

import pytest

from vms_core import (
    BackendCommandError,
    NotFoundError,
    NotSupportedError,
    OperationTimeoutError,
    State,
    VMDiedError,
)
from vms_core.errors import AlreadyRunningError
from vms_tart.errors import NoIPAddressError, VMExistsError
from vms_tart.instance import TartInstance

from .conftest import World

pytestmark = pytest.mark.timeout(120)


def cloned(world: World, name: str = "vm1", **options: object) -> TartInstance:
    backend, _ = world.backend(**options)
    vm = backend.create_instance(name)
    vm.clone()
    return vm


def running(world: World, name: str = "vm1", **options: object) -> TartInstance:
    vm = cloned(world, name, **options)
    vm.start()
    return vm


def settles(world: World, vm: TartInstance, state: State, tart_word: str | None) -> None:
    assert vm.state() is state
    assert world.tart_state(vm.id) == tart_word
    if state is not State.DELETED:
        vm.delete()
        assert world.tart_state(vm.id) is None


# 8.1 `tart ip --wait` right after spawning `tart run`; 7: the IP comes after boot.
def test_ip_at_start_waits_for_the_lease(in_process: World) -> None:
    vm = cloned(in_process, obtain_ip_at_start=True)
    in_process.plan.ip_delay("vm1", 20)
    vm.start()
    assert vm.properties().ip
    vm.stop()
    settles(in_process, vm, State.STOPPED, "stopped")


# 8.3 stale leases answer for a stopped VM: we never ask tart for a stopped VM's IP.
def test_a_stopped_vm_has_no_ip_even_with_a_stale_lease(in_process: World) -> None:
    vm = cloned(in_process)
    in_process.plan.stale_ip("vm1", "192.168.64.99")
    assert vm.properties().ip is None
    settles(in_process, vm, State.STOPPED, "stopped")


# 8.4 guests invisible to the DHCP resolver: no IP, ever.
def test_no_ip_is_a_typed_error_and_the_vm_keeps_running(in_process: World) -> None:
    vm = cloned(in_process)
    in_process.plan.no_ip("vm1")
    vm.start()
    with pytest.raises(NoIPAddressError, match="no IP address found"):
        vm.properties()
    assert vm.state() is State.RUNNING
    vm.stop()
    settles(in_process, vm, State.STOPPED, "stopped")


def test_no_ip_at_start_fails_the_start_and_stops_the_vm(in_process: World) -> None:
    vm = cloned(in_process, obtain_ip_at_start=True)
    in_process.plan.no_ip("vm1")
    with pytest.raises(NoIPAddressError):
        vm.start(timeout=30)
    settles(in_process, vm, State.STOPPED, "stopped")


# 8.6 suspending a VM not run with --suspendable kills it: we refuse instead.
def test_suspend_without_suspendable_is_refused_before_any_command(in_process: World) -> None:
    backend, runner = in_process.backend(run_options=("--no-graphics",))
    vm = backend.create_instance("vm1")
    vm.clone()
    vm.start()
    before = len(runner.calls)
    with pytest.raises(NotSupportedError, match="--suspendable"):
        vm.suspend()
    assert len(runner.calls) == before
    assert vm.state() is State.RUNNING
    vm.stop()
    settles(in_process, vm, State.STOPPED, "stopped")


# 8.6 the snapshot fails inside tart run (even with --suspendable, tart#147).
def test_failed_snapshot_reports_the_vm_stopped(world: World) -> None:
    vm = cloned(world)
    world.plan.fail_snapshot("vm1")  # the run reads its VM's faults when it starts
    vm.start()
    with pytest.raises(VMDiedError, match="Failed to suspend the VM") as caught:
        vm.suspend()
    assert caught.value.exit_status == 1
    settles(world, vm, State.STOPPED, "stopped")


# 8.7 Linux VMs cannot be resumed: the restore fails and tart keeps the snapshot.
def test_failed_resume_reports_the_vm_still_suspended(world: World) -> None:
    vm = running(world)
    vm.suspend()
    world.plan.fail_restore("vm1")
    with pytest.raises(VMDiedError, match="failed to restore"):
        vm.start()
    settles(world, vm, State.SUSPENDED, "suspended")


# 8.7 since then tart refuses --suspendable for Linux guests.
def test_suspendable_linux_guest_is_refused_by_tart_run(world: World) -> None:
    backend, _ = world.backend(os="linux", run_options=("--no-graphics", "--suspendable"))
    vm = backend.create_instance("vm1", "ghcr.io/cirruslabs/ubuntu:latest")
    vm.clone()
    with pytest.raises(VMDiedError, match="You can only suspend macOS VMs") as caught:
        vm.start()
    assert caught.value.exit_status == 64
    settles(world, vm, State.STOPPED, "stopped")


# 8.8 tart's lock and the truth disagree: tart run says the VM is already running.
def test_already_running_is_a_typed_error_and_a_legal_state(world: World) -> None:
    vm = cloned(world)
    world.plan.already_running("vm1")
    with pytest.raises(AlreadyRunningError) as caught:
        vm.start()
    assert caught.value.exit_code == 2  # type: ignore[attr-defined]
    world.plan.clear("vm1")
    settles(world, vm, State.STOPPED, "stopped")


# 8.9 the host's VM limit (a second VM while another one runs).
def test_vm_limit_with_another_vm_running(world: World) -> None:
    world.plan.limit_macos_vms(1)
    first = running(world, "first")
    second = cloned(world, "second")
    with pytest.raises(VMDiedError, match=r"other running VMs: first"):
        second.start()
    settles(world, second, State.STOPPED, "stopped")
    first.stop()
    settles(world, first, State.STOPPED, "stopped")


# 8.11 tart clone silently overwrites: refused with overwrite=false.
def test_clone_over_an_existing_vm(in_process: World) -> None:
    vm = cloned(in_process)
    backend, runner = in_process.backend(overwrite=False)
    with pytest.raises(VMExistsError):
        backend.create_instance("vm1").clone()
    assert "clone" not in runner.subcommands()
    backend, _ = in_process.backend()  # the default follows tart: replace it
    backend.create_instance("vm1").clone()
    settles(in_process, vm, State.STOPPED, "stopped")


# 8.12 a stale control socket after a restart: exec cannot reach the agent.
def test_stale_control_socket_fails_readiness_and_stops_the_vm(in_process: World) -> None:
    vm = running(in_process)
    in_process.plan.crash_vm("vm1")  # leaves control.sock behind
    assert vm.state() is State.STOPPED
    in_process.plan.stale_control_socket("vm1")
    with pytest.raises(OperationTimeoutError) as caught:
        vm.start(timeout=20)
    assert "Failed to connect to the VM using its control socket" in "".join(caught.value.__notes__)
    settles(in_process, vm, State.STOPPED, "stopped")


def test_an_image_without_the_agent_never_becomes_ready(in_process: World) -> None:
    backend, _ = in_process.backend()
    vm = backend.create_instance("vm1", "ghcr.io/cirruslabs/macos-sequoia-vanilla:latest")
    vm.clone()
    with pytest.raises(OperationTimeoutError, match="answer tart exec"):
        vm.start(timeout=15)
    settles(in_process, vm, State.STOPPED, "stopped")


def test_agent_slow_to_come_up_is_retried(in_process: World) -> None:
    vm = cloned(in_process)
    in_process.plan.fail_exec("vm1", 2)
    vm.start()
    assert vm.exec("echo", "ok").stdout == "ok\n"
    vm.stop()
    settles(in_process, vm, State.STOPPED, "stopped")


def test_slow_boot_is_waited_for(in_process: World) -> None:
    vm = cloned(in_process)
    in_process.plan.boot_delay("vm1", 30)
    vm.start(timeout=60)
    vm.stop()
    settles(in_process, vm, State.STOPPED, "stopped")


# 8.13/8.14 output formats: malformed JSON from tart list is looked at again.
def test_malformed_list_output_during_start_is_retried(in_process: World) -> None:
    vm = cloned(in_process)
    in_process.plan.malformed_json("list", times=2)
    vm.start()
    vm.stop()
    settles(in_process, vm, State.STOPPED, "stopped")


# 8.15 delete of a missing VM.
def test_delete_of_a_never_cloned_vm_is_not_found(in_process: World) -> None:
    backend, _ = in_process.backend()
    vm = backend.create_instance("ghost")
    with pytest.raises(NotFoundError, match="does not exist"):
        vm.delete()
    assert vm.state() is State.INITIAL


# 8.17 registry or keychain failures during clone.
def test_clone_failure_from_the_registry_reverts_to_initial(in_process: World) -> None:
    backend, _ = in_process.backend()
    vm = backend.create_instance("vm1")
    in_process.plan.fail_command(
        "clone", stderr='Error: Failed(message: "Keychain returned unsuccessful status -25308")'
    )
    with pytest.raises(BackendCommandError, match="Keychain") as caught:
        vm.clone()
    assert caught.value.exit_code == 1
    assert vm.state() is State.INITIAL and in_process.tart_state("vm1") is None


# 8.18/8.19 tart run fails at start (locked keychain, softnet without root).
@pytest.mark.parametrize(
    "stderr",
    [
        'Error Domain=VZErrorDomain Code=1 "The virtual machine failed to start."',
        'RuntimeFailed(why: "Softnet process terminated prematurely")',
    ],
)
def test_run_failing_at_launch_reports_its_output(world: World, stderr: str) -> None:
    vm = cloned(world)
    world.plan.fail_command("run", vm="vm1", stderr=stderr)
    with pytest.raises(VMDiedError) as caught:
        vm.start()
    assert caught.value.exit_status == 1 and stderr in caught.value.output_tail
    settles(world, vm, State.STOPPED, "stopped")


# 8.10 the guest shuts itself down: noticed, exit status kept.
def test_guest_shutdown_is_noticed(world: World) -> None:
    backend, runner = world.backend()
    vm = backend.create_instance("vm1")
    vm.clone()
    vm.start()
    world.plan.shutdown_guest("vm1")
    runner.spawned[0].wait(30)
    result = vm.stop()
    assert result.exited_on_its_own and result.exit_status == 0
    assert "stop" not in runner.subcommands()
    settles(world, vm, State.STOPPED, "stopped")


def test_failing_tart_stop_still_stops_the_vm_and_reports_the_error(in_process: World) -> None:
    vm = running(in_process)
    in_process.plan.fail_command("stop", stderr='failed to forcefully terminate the VM "vm1"')
    with pytest.raises(BackendCommandError, match="forcefully") as caught:
        vm.stop()
    assert "stopped anyway" in "".join(caught.value.__notes__)
    settles(in_process, vm, State.STOPPED, "stopped")


def test_hanging_tart_stop_is_bounded_and_the_vm_still_stops(in_process: World) -> None:
    vm = running(in_process)
    in_process.plan.hang_command("stop")
    with pytest.raises(OperationTimeoutError):
        vm.stop(timeout=5)
    settles(in_process, vm, State.STOPPED, "stopped")


def test_failing_tart_suspend_leaves_the_vm_running(in_process: World) -> None:
    vm = running(in_process)
    in_process.plan.fail_command(
        "suspend",
        stderr='Failed to suspend the VM: failed to send SIGUSR1 signal to the "tart run" '
        'process running VM "vm1"',
    )
    with pytest.raises(BackendCommandError, match="SIGUSR1"):
        vm.suspend()
    assert vm.state() is State.RUNNING and in_process.tart_state("vm1") == "running"
    vm.stop()
    settles(in_process, vm, State.STOPPED, "stopped")


def test_failing_delete_keeps_the_state(in_process: World) -> None:
    vm = cloned(in_process)
    in_process.plan.fail_command("delete", stderr="disk busy")
    with pytest.raises(BackendCommandError, match="disk busy"):
        vm.delete()
    settles(in_process, vm, State.STOPPED, "stopped")


def test_a_start_timed_out_on_malformed_list_output_says_so(in_process: World) -> None:
    vm = cloned(in_process)
    in_process.plan.malformed_json("list", times=None)
    with pytest.raises(OperationTimeoutError, match="report vm1 running") as caught:
        vm.start(timeout=10)
    assert "last tart list error" in "".join(caught.value.__notes__)
    in_process.plan.clear()
    assert vm.state() in (State.STOPPED, State.ERROR_UNKNOWN)
