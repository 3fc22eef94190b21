"""Fault injection and timing, in both modes (vms_fake.faults.FaultPlan)."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from vms_core.errors import OperationTimeoutError
from vms_fake.faults import DEFAULT_CRASH_MESSAGE, FaultPlan

from .driver import MACOS, UBUNTU, Result, RunHandle, Tart, wait_until

pytestmark = pytest.mark.timeout(60)

AGENT_UNREACHABLE = (
    "Failed to connect to the VM using its control socket: The operation couldn\u2019t be "
    "completed. (GRPC.GRPCConnectionPoolError error 1.), is the Tart Guest Agent running?\n"
)


def stop(tart: Tart, name: str, *runs: RunHandle) -> None:
    assert tart("stop", name).exit_code == 0
    for run in runs:
        run.wait()


def test_failing_command_fires_the_given_number_of_times(tart: Tart, macos: str) -> None:
    tart.plan.fail_command("get", exit_code=3, stderr="boom\n", stdout="partial\n", times=2)
    assert tart("get", macos) == Result(3, "partial\n", "boom\n")
    assert tart("get", macos) == Result(3, "partial\n", "boom\n")
    assert tart("get", macos).exit_code == 0


def test_command_fault_can_target_one_vm(tart: Tart, macos: str) -> None:
    tart.clone(MACOS, "other")
    tart.plan.fail_command("stop", vm="other", exit_code=1, stderr="nope\n", times=None)
    assert tart("stop", macos).exit_code == 2  # untouched: the real "not running"
    assert tart("stop", "other") == Result(1, "", "nope\n")
    assert tart("stop", "other") == Result(1, "", "nope\n")


def test_malformed_json(tart: Tart, macos: str) -> None:
    tart.plan.malformed_json("list")
    with pytest.raises(json.JSONDecodeError):
        json.loads(tart("list", "--format", "json").stdout)
    assert json.loads(tart("list", "--format", "json").stdout)[0]["Name"] == macos


def test_hanging_command_times_out(tart: Tart, macos: str) -> None:
    tart.plan.hang_command("list")
    if tart.executable:
        with pytest.raises(subprocess.TimeoutExpired):
            tart("list", timeout=0.5)
    else:
        with pytest.raises(OperationTimeoutError):
            tart("list", timeout=5)
    assert tart("list", "-q", "--source", "local") == Result(0, "vm\n", "")


def test_hang_for_a_while_then_proceed(tart: Tart, macos: str) -> None:
    tart.plan.hang_command("get", seconds=0.2)
    assert tart("get", macos).exit_code == 0


def test_run_crashes_after_some_time(tart: Tart, macos: str) -> None:
    tart.plan.crash_after(macos, 0.2, message="kaboom")
    run = tart.spawn("run", macos)
    assert run.wait() == 1
    assert (run.stdout, run.stderr) == ("", "kaboom\n")
    assert tart.state(macos) == "stopped"


def test_live_crash_and_guest_shutdown(tart: Tart, macos: str) -> None:
    assert tart.plan.crash_vm(macos) is False  # not running: nothing to crash
    run = tart.spawn("run", macos)
    assert tart.plan.crash_vm(macos) is True
    assert run.wait() == 1
    assert run.stderr == DEFAULT_CRASH_MESSAGE + "\n"
    run = tart.spawn("run", macos)
    tart.plan.shutdown_guest(macos)
    assert run.wait() == 0
    assert run.stdout == "guest has stopped the virtual machine\n"
    run = tart.spawn("run", macos)
    tart.plan.guest_error(macos, "Internal Virtualization error.")
    assert run.wait() == 0
    assert run.stdout == (
        "guest has stopped the virtual machine due to error: Internal Virtualization error.\n"
    )


def test_exec_fails_the_first_n_times(tart: Tart, macos: str) -> None:
    tart.plan.fail_exec(macos, times=2)
    run = tart.spawn("run", macos)
    assert tart("exec", macos, "true") == Result(1, "", AGENT_UNREACHABLE)
    assert tart("exec", macos, "true") == Result(1, "", AGENT_UNREACHABLE)
    assert tart("exec", macos, "true") == Result(0, "", "")
    stop(tart, macos, run)


def test_agent_absent(tart: Tart, macos: str) -> None:
    tart.plan.agent_absent(macos)
    run = tart.spawn("run", macos)
    assert tart("exec", macos, "true") == Result(1, "", AGENT_UNREACHABLE)
    assert tart("ip", macos, "--resolver", "agent").exit_code == 1
    assert tart("ip", macos).exit_code == 0  # DHCP does not need the agent
    stop(tart, macos, run)


def test_stale_control_socket_breaks_exec_until_removed(tart: Tart, macos: str) -> None:
    tart.plan.stale_control_socket(macos)
    run = tart.spawn("run", macos)
    assert tart("exec", macos, "true").exit_code == 0  # first run: a fresh socket
    stop(tart, macos, run)
    socket = tart.home / "vms" / macos / "control.sock"
    assert socket.exists()  # tart leaves it behind
    run = tart.spawn("run", macos)
    assert tart("exec", macos, "true") == Result(1, "", AGENT_UNREACHABLE)
    stop(tart, macos, run)
    socket.unlink()  # the workaround from tart#1220
    run = tart.spawn("run", macos)
    assert tart("exec", macos, "true").exit_code == 0
    stop(tart, macos, run)


def test_already_running_fault(tart: Tart, macos: str) -> None:
    tart.plan.already_running(macos)
    assert tart("run", macos) == Result(2, "", 'VM "vm" is already running!\n')
    assert tart.state(macos) == "stopped"


def test_vm_limit_fault(tart: Tart, macos: str) -> None:
    tart.plan.vm_limit_reached(macos)
    assert tart("run", macos) == Result(1, "", "The number of VMs exceeds the system limit\n")
    assert tart.state(macos) == "stopped"


def test_host_limit_counts_other_running_macos_vms(tart: Tart, macos: str) -> None:
    tart.clone(MACOS, "second")
    tart.clone(UBUNTU, "linux")
    tart.plan.limit_macos_vms(1)
    first = tart.spawn("run", macos)
    linux = tart.spawn("run", "linux")  # Linux guests do not count
    assert tart("run", "second") == Result(
        1, "", "The number of VMs exceeds the system limit (other running VMs: vm)\n"
    )
    stop(tart, macos, first)
    stop(tart, "linux", linux)


def test_no_ip_and_stale_ip(tart: Tart, macos: str) -> None:
    tart.plan.no_ip(macos)
    run = tart.spawn("run", macos)
    assert tart("ip", macos) == Result(1, "", "no IP address found\n")
    stop(tart, macos, run)
    tart.plan.stale_ip(macos, "192.168.65.4")
    assert tart("ip", macos) == Result(0, "192.168.65.4\n", "")


def test_snapshot_failure(tart: Tart, macos: str) -> None:
    tart.plan.fail_snapshot(macos, "disk full")
    run = tart.spawn("run", macos, "--suspendable")
    assert tart("suspend", macos).exit_code == 0
    assert run.wait() == 1
    assert run.stdout == "Failed to suspend the VM: disk full\n"
    assert tart.state(macos) == "stopped"


def test_restore_failure_keeps_the_snapshot(tart: Tart, macos: str) -> None:
    run = tart.spawn("run", macos, "--suspendable")
    tart("suspend", macos)
    run.wait()
    tart.plan.fail_restore(macos, "cannot restore")
    assert tart("run", macos) == Result(
        1, "restoring VM state from a snapshot...\n", "cannot restore\n"
    )
    assert tart.state(macos) == "suspended"


def test_guest_may_ignore_a_shutdown_request(tart: Tart, macos: str) -> None:
    tart.plan.ignore_shutdown_request(macos)
    run = tart.spawn("run", macos)
    run.signal(signal.SIGUSR2)
    assert run.read_line() == "Requesting guest OS to stop...\n"
    assert tart.state(macos) == "running"
    stop(tart, macos, run)
    assert run.stdout == "Requesting guest OS to stop...\nStopping VM...\n"


def test_boot_delay_holds_back_the_agent(tart: Tart, macos: str) -> None:
    tart.plan.boot_delay(macos, 0.3)
    started = time.monotonic()
    run = tart.spawn("run", macos)
    if tart.executable:
        wait_until(lambda: tart("exec", macos, "true").exit_code == 0)
        assert time.monotonic() - started >= 0.3
    else:
        assert tart("exec", macos, "true") == Result(1, "", AGENT_UNREACHABLE)
        assert tart.runner is not None
        tart.runner.sleep(0.3)
        assert tart("exec", macos, "true") == Result(0, "", "")
    stop(tart, macos, run)


def test_ip_delay(tart: Tart, macos: str) -> None:
    tart.plan.ip_delay(macos, 0.3)
    run = tart.spawn("run", macos)
    if not tart.executable:
        assert tart("ip", macos) == Result(1, "", "no IP address found\n")
    assert tart("ip", macos, "--wait", "5").exit_code == 0
    stop(tart, macos, run)


def test_plan_file_named_by_environment(executable: Tart) -> None:
    tart = executable
    path = tart.home.parent / "custom-faults.json"
    FaultPlan(path).fail_command("list", exit_code=7, stderr="from env\n")
    tart.env["FAKE_TART_FAULTS"] = str(path)
    assert tart("list") == Result(7, "", "from env\n")
    assert tart("list").exit_code == 0


def test_ip_failure_takes_a_real_second(executable: Tart) -> None:
    """Unshortened tart timing: one attempt, a 1 s pause, then the error."""
    executable.plan.set_timing(ip_poll_interval=1.0)
    executable.clone(MACOS, "vm")
    started = time.monotonic()
    assert executable("ip", "vm") == Result(1, "", "no IP address found, is your VM running?\n")
    assert time.monotonic() - started >= 1.0


def test_stop_falls_back_to_sigkill_when_the_vm_is_stuck(tart: Tart, macos: str) -> None:
    tart.plan.stuck_on_stop(macos)
    run = tart.spawn("run", macos)
    assert tart("stop", macos, "--timeout", "1") == Result(0, "", "")
    assert run.wait() == -signal.SIGKILL
    assert run.stdout == "Stopping VM...\n"
    assert tart.state(macos) == "stopped"


def test_run_command_faults(tart: Tart, macos: str) -> None:
    tart.plan.fail_command("run", exit_code=1, stderr="Softnet failed: injected\n")
    failed = tart.spawn("run", macos)
    assert failed.wait() == 1
    assert (failed.stdout, failed.stderr) == ("", "Softnet failed: injected\n")
    tart.plan.hang_command("run")
    hung = tart.spawn("run", macos, wait_for_lock=False)
    assert hung.poll() is None
    assert tart.state(macos) == "stopped"  # a hung run never took the lock
    hung.signal(signal.SIGKILL)
    assert hung.wait() == -signal.SIGKILL
