"""TartInstance against a scripted runner: exact commands, failure paths, legal states."""

from __future__ import annotations

import dataclasses
import signal

import pytest

from vms_core import (
    BackendCommandError,
    InvalidNameError,
    NotFoundError,
    NotRunningError,
    NotSupportedError,
    OperationTimeoutError,
    State,
    TransitionNotAllowedError,
    VMDiedError,
)
from vms_core.errors import AlreadyRunningError
from vms_tart.config import TartOptions
from vms_tart.errors import AgentUnreachableError, NoIPAddressError, VMExistsError, VMLimitError
from vms_tart.instance import TartInstance
from vms_tart.runner import CommandResult

from .doubles import ScriptedProcess, ScriptedRunner

SOURCE = "ghcr.io/cirruslabs/macos-sequoia-base:latest"
RUN = ("run", "vm1", "--no-graphics", "--no-audio", "--suspendable")


def make(runner: ScriptedRunner, **options: object) -> TartInstance:
    return TartInstance("vm1", SOURCE, runner, TartOptions(**options))  # type: ignore[arg-type]


def running(runner: ScriptedRunner, **options: object) -> TartInstance:
    instance = make(runner, **options)
    instance.clone()
    instance.start()
    runner.calls.clear()
    return instance


def test_happy_path_issues_exactly_the_minimal_commands() -> None:
    runner = ScriptedRunner()
    instance = make(runner)
    instance.clone()
    instance.start()
    result = instance.exec("uname", "-a")
    stop = instance.stop()
    instance.delete()
    nonce = runner.calls[3][3]
    assert runner.calls == [
        ("clone", SOURCE, "vm1"),
        RUN,
        ("list", "--format", "json"),
        ("exec", "vm1", "echo", nonce),
        ("exec", "vm1", "uname", "-a"),
        ("stop", "vm1", "--timeout", "30"),
        ("delete", "vm1"),
    ]
    assert result.stdout == "ran uname -a\n" and result.exit_code == 0
    assert stop.exit_status == 0 and stop.clean and not stop.exited_on_its_own
    assert instance.state() is State.DELETED


def test_clone_sets_resources_only_when_configured() -> None:
    runner = ScriptedRunner()
    make(runner, cpu=4, memory=8192, disk=80).clone()
    assert runner.calls[1] == ("set", "vm1", "--cpu", "4", "--memory", "8192", "--disk-size", "80")


def test_failed_set_leaves_the_clone_stopped_and_deletable() -> None:
    runner = ScriptedRunner()
    runner.script["set"] = [runner.result(("set",), 1, err="LessThanMinimalResourcesError")]
    instance = make(runner, cpu=1)
    with pytest.raises(BackendCommandError, match="setting the resources"):
        instance.clone()
    assert instance.state() is State.STOPPED
    instance.delete()
    assert instance.state() is State.DELETED


def test_failed_clone_reverts_and_keeps_argv_exit_code_and_stderr() -> None:
    runner = ScriptedRunner()
    runner.script["clone"] = [
        runner.result(("clone", "nope", "vm1"), 2, err='the specified VM "nope" does not exist\n')
    ]
    instance = make(runner)
    with pytest.raises(NotFoundError) as caught:
        instance.clone()
    assert caught.value.exit_code == 2  # type: ignore[attr-defined]
    assert "does not exist" in caught.value.stderr_tail  # type: ignore[attr-defined]
    assert instance.state() is State.INITIAL


def test_overwrite_false_refuses_an_existing_vm() -> None:
    runner = ScriptedRunner()
    runner.add_vm("vm1")
    instance = make(runner, overwrite=False)
    with pytest.raises(VMExistsError):
        instance.clone()
    assert runner.subcommands() == ["list"]
    assert instance.state() is State.INITIAL


@pytest.mark.parametrize("name", ["", "a/b", "-x", " x", "ghcr.io/x/y:latest"])
def test_bad_names_are_refused_before_any_command(name: str) -> None:
    runner = ScriptedRunner()
    with pytest.raises(InvalidNameError):
        TartInstance(name, SOURCE, runner)
    assert runner.calls == []


@pytest.mark.parametrize("source", ["", "-rf", "/abs", "host//x"])
def test_bad_sources_are_refused(source: str) -> None:
    with pytest.raises(InvalidNameError):
        TartInstance("vm1", source, ScriptedRunner())


def test_forbidden_transitions_run_nothing() -> None:
    runner = ScriptedRunner()
    instance = make(runner)
    for operation in (instance.start, instance.stop, instance.suspend):
        with pytest.raises(TransitionNotAllowedError):
            operation()
    instance.clone()
    instance.start()
    runner.calls.clear()
    with pytest.raises(TransitionNotAllowedError):
        instance.delete()
    with pytest.raises(TransitionNotAllowedError):
        instance.clone()
    assert runner.calls == []
    assert instance.state() is State.RUNNING


def test_run_exiting_early_ends_the_wait_at_once_with_status_and_tail() -> None:
    runner = ScriptedRunner()
    runner.on_spawn = lambda p: p.exit(1, "The number of VMs exceeds the system limit\n")
    instance = make(runner)
    instance.clone()
    with pytest.raises(VMLimitError) as caught:
        instance.start()
    assert caught.value.exit_status == 1
    assert "system limit" in caught.value.output_tail
    assert instance.state() is State.STOPPED
    assert "exec" not in runner.subcommands()
    assert instance.last_run_exit is not None and instance.last_run_exit.exit_status == 1


def test_vm_already_run_by_someone_else_is_reported_and_not_stopped() -> None:
    runner = ScriptedRunner()
    instance = make(runner)
    instance.clone()
    other = runner.spawn(RUN)  # another program runs the VM
    runner.calls.clear()
    with pytest.raises(AlreadyRunningError):
        instance.start()
    assert other.exit_status is None  # not ours to stop
    assert instance.state() is State.ERROR_UNKNOWN


def test_readiness_retries_failures_then_succeeds() -> None:
    runner = ScriptedRunner()
    failure = runner.result(
        ("exec",),
        1,
        err="Failed to connect to the VM using its control "
        "socket: x, is the Tart Guest Agent running?",
    )
    runner.script["exec"] = [failure, failure]
    instance = make(runner)
    instance.clone()
    instance.start()
    assert runner.subcommands().count("exec") == 3
    assert instance.state() is State.RUNNING


def test_readiness_with_wrong_output_aborts_and_stops_the_vm() -> None:
    runner = ScriptedRunner()
    runner.script["exec"] = [runner.result(("exec",), 0, out="garbage\n")]
    instance = make(runner)
    instance.clone()
    with pytest.raises(BackendCommandError, match="instead of"):
        instance.start()
    assert runner.processes[0].signals == [signal.SIGINT]
    assert instance.state() is State.STOPPED


def test_start_timeout_bounds_the_call_and_recovers() -> None:
    runner = ScriptedRunner()
    not_running = runner.result(("exec",), 2, err='VM "vm1" is not running')
    runner.script["exec"] = [not_running] * 1000
    instance = make(runner)
    instance.clone()
    with pytest.raises(OperationTimeoutError) as caught:
        instance.start(timeout=5)
    assert "is not running" in "".join(caught.value.__notes__)
    assert instance.state() is State.STOPPED
    assert runner.processes[0].exit_status == 0


def test_keyboard_interrupt_during_start_stops_the_vm_and_leaves_a_legal_state() -> None:
    runner = ScriptedRunner()

    def interrupt(args: object) -> None:
        raise KeyboardInterrupt

    runner.script["exec"] = [interrupt]
    instance = make(runner)
    instance.clone()
    with pytest.raises(KeyboardInterrupt):
        instance.start()
    assert runner.processes[0].exit_status is not None
    assert instance.state() is State.STOPPED


def test_a_run_process_ignoring_sigint_is_killed_during_recovery() -> None:
    runner = ScriptedRunner()
    runner.on_spawn = lambda p: p.ignore.add(signal.SIGINT)
    runner.script["exec"] = [runner.result(("exec",), 0, out="nope")]
    instance = make(runner)
    instance.clone()
    with pytest.raises(BackendCommandError):
        instance.start()
    assert runner.processes[0].signals == [signal.SIGINT, signal.SIGKILL]
    assert instance.last_run_exit is not None and instance.last_run_exit.forced
    assert instance.state() is State.STOPPED


def test_list_failures_while_waiting_are_retried() -> None:
    runner = ScriptedRunner()
    runner.script["list"] = [runner.result(("list",), 0, out="{not json")]
    instance = make(runner)
    instance.clone()
    instance.start()
    assert runner.subcommands().count("list") == 2
    assert instance.state() is State.RUNNING


def test_failed_resume_before_restore_reports_suspended() -> None:
    runner = ScriptedRunner()
    instance = running(runner)
    instance.suspend()

    # The host VM limit refuses the resume: tart keeps the snapshot.
    def refuse(process: ScriptedProcess) -> None:
        runner.vms["vm1"]["snapshot"] = True
        process.exit(1, "The number of VMs exceeds the system limit")

    runner.on_spawn = refuse
    with pytest.raises(VMDiedError):
        instance.start()
    assert instance.state() is State.SUSPENDED


def test_failed_resume_after_restore_reports_stopped() -> None:
    runner = ScriptedRunner()
    instance = running(runner)
    instance.suspend()
    runner.script["exec"] = [runner.result(("exec",), 0, out="wrong")]
    with pytest.raises(BackendCommandError):
        instance.start()
    assert instance.state() is State.STOPPED  # the snapshot was consumed by the restore


def test_stop_from_stopped_is_a_noop_without_commands() -> None:
    runner = ScriptedRunner()
    instance = make(runner)
    instance.clone()
    runner.calls.clear()
    result = instance.stop()
    assert result.noop and runner.calls == []


def test_state_notices_a_vm_that_exited_on_its_own() -> None:
    runner = ScriptedRunner()
    instance = running(runner)
    assert instance.state() is State.RUNNING
    assert runner.calls == []  # no command while the run process is alive
    runner.processes[0].exit(0, "guest has stopped the virtual machine\n")
    assert instance.state() is State.STOPPED
    assert runner.subcommands() == ["list"]
    result = instance.stop()  # a no-op now, but the exit status is not lost
    assert result.noop and result.exited_on_its_own and result.exit_status == 0
    assert "guest has stopped" in result.output_tail


def test_state_notices_an_external_suspend() -> None:
    runner = ScriptedRunner()
    instance = running(runner)
    runner.processes[0].send_signal(signal.SIGUSR1)
    assert instance.state() is State.SUSPENDED


def test_stop_after_a_crash_runs_no_tart_stop_and_reports_the_status() -> None:
    runner = ScriptedRunner()
    instance = running(runner)
    runner.processes[0].exit(-signal.SIGSEGV, "boom")
    result = instance.stop()
    assert "stop" not in runner.subcommands()
    assert result.exited_on_its_own and result.exit_status == -signal.SIGSEGV
    assert not result.clean
    assert instance.state() is State.STOPPED


@pytest.mark.parametrize("notice", ["state", "stop"])
def test_an_external_sigkill_is_an_exit_on_its_own_not_a_forced_stop(notice: str) -> None:
    runner = ScriptedRunner()
    instance = running(runner)
    runner.processes[0].exit(-signal.SIGKILL)
    if notice == "state":
        assert instance.state() is State.STOPPED
    result = instance.stop()
    assert result.exited_on_its_own and result.exit_status == -signal.SIGKILL
    assert not result.forced and not result.clean
    assert instance.last_run_exit == dataclasses.replace(result, noop=False)


def test_stop_of_an_externally_suspended_vm_discards_the_snapshot() -> None:
    runner = ScriptedRunner()
    instance = running(runner)
    runner.processes[0].send_signal(signal.SIGUSR1)
    instance.stop()
    assert instance.state() is State.STOPPED
    assert runner.tart_state("vm1") == "stopped"


def test_stop_kills_a_run_process_that_does_not_exit() -> None:
    runner = ScriptedRunner()
    instance = running(runner)
    process = runner.processes[0]
    process.ignore.add(signal.SIGINT)
    runner.script["stop"] = [runner.result(("stop",), 1, err="failed to forcefully terminate")]
    with pytest.raises(BackendCommandError, match="forcefully") as caught:
        instance.stop(timeout=1)
    assert "stopped anyway" in "".join(caught.value.__notes__)
    assert process.exit_status == -signal.SIGKILL
    assert instance.state() is State.STOPPED
    assert instance.last_run_exit is not None and instance.last_run_exit.forced


def test_stop_timeout_is_rounded_up_for_tart() -> None:
    runner = ScriptedRunner()
    instance = running(runner)
    instance.stop(timeout=0.2)
    assert runner.calls[0] == ("stop", "vm1", "--timeout", "1")


def test_suspend_waits_for_the_snapshot_and_is_idempotent() -> None:
    runner = ScriptedRunner()
    instance = running(runner)
    instance.suspend()
    assert runner.subcommands() == ["suspend", "list"]
    assert instance.state() is State.SUSPENDED
    runner.calls.clear()
    instance.suspend()
    assert runner.calls == []
    instance.start()  # resume
    assert instance.state() is State.RUNNING


def test_suspend_needs_suspendable_run_options() -> None:
    runner = ScriptedRunner()
    instance = running(runner, os="linux")
    assert not instance.suspendable and not instance.capabilities.suspend
    with pytest.raises(NotSupportedError):
        instance.suspend()
    assert runner.calls == [] and instance.state() is State.RUNNING


def test_snapshot_failure_reports_the_truth_stopped() -> None:
    runner = ScriptedRunner()
    # --suspendable given but the snapshot fails inside tart run (spec 8.6).
    instance = running(runner)
    runner.processes[0].argv = ("tart", "run", "vm1")
    with pytest.raises(VMDiedError, match="Failed to suspend") as caught:
        instance.suspend()
    assert caught.value.exit_status == 1
    assert instance.state() is State.STOPPED


def test_suspend_after_a_clean_exit_is_an_error_not_error_unknown() -> None:
    runner = ScriptedRunner()
    instance = running(runner)
    runner.processes[0].exit(0, "guest has stopped the virtual machine")
    with pytest.raises(VMDiedError, match="already exited"):
        instance.suspend()
    assert "suspend" not in runner.subcommands()
    assert instance.state() is State.STOPPED


def test_suspend_timeout_leaves_the_vm_running_and_state_catches_up() -> None:
    runner = ScriptedRunner()
    instance = running(runner)
    runner.processes[0].ignore.add(signal.SIGUSR1)  # the snapshot takes forever
    with pytest.raises(OperationTimeoutError):
        instance.suspend(timeout=3)
    assert instance.state() is State.RUNNING
    runner.vms["vm1"]["snapshot"] = True
    runner.processes[0].exit(0)
    assert instance.state() is State.SUSPENDED


def test_delete_from_initial_without_a_vm_is_not_found_and_stays_initial() -> None:
    runner = ScriptedRunner()
    instance = make(runner)
    with pytest.raises(NotFoundError):
        instance.delete()
    assert instance.state() is State.INITIAL


def test_delete_of_a_vm_deleted_elsewhere_reaches_deleted() -> None:
    runner = ScriptedRunner()
    instance = make(runner)
    instance.clone()
    del runner.vms["vm1"]
    instance.delete()
    assert instance.state() is State.DELETED


def test_delete_from_error_unknown_ends_our_run_process_first() -> None:
    runner = ScriptedRunner()
    instance = running(runner)
    process = runner.processes[0]
    process.ignore.add(signal.SIGINT)
    runner.script["stop"] = [runner.result(("stop",), 1, err="weird failure")]
    runner.script["list"] = [
        runner.result(
            ("list",),
            0,
            out='[{"Name": "vm1", "Source": "local", "State": "running", "Running": true}]',
        )
    ]
    with pytest.raises(BackendCommandError):
        instance.stop()
    assert instance.state() is State.ERROR_UNKNOWN
    instance.delete()
    assert process.exit_status is not None
    assert instance.state() is State.DELETED


def test_exec_results_errors_and_check() -> None:
    runner = ScriptedRunner()
    instance = running(runner)
    failed = instance.exec("false")
    assert failed.exit_code == 1 and not failed.ok
    with pytest.raises(BackendCommandError):
        instance.exec("false", check=True)
    runner.script["exec"] = [
        runner.result(
            ("exec",),
            1,
            err="Failed to connect to the VM using "
            "its control socket: x, is the Tart Guest Agent running?",
        )
    ]
    with pytest.raises(AgentUnreachableError):
        instance.exec("ls")
    instance.exec("cat", stdin="hello")
    assert runner.calls[-1] == ("exec", "-i", "vm1", "cat")


def test_exec_needs_a_running_vm() -> None:
    runner = ScriptedRunner()
    instance = make(runner)
    with pytest.raises(NotRunningError):
        instance.exec("ls")
    assert runner.calls == []


def test_ip_is_looked_up_lazily_once_and_cleared_by_stop() -> None:
    runner = ScriptedRunner()
    instance = make(runner)
    assert instance.properties().ip is None and runner.calls == []
    instance.clone()
    instance.start()
    runner.calls.clear()
    assert instance.properties().ip == "192.168.64.7"
    assert instance.properties().ip == "192.168.64.7"
    assert runner.calls == [("ip", "vm1", "--wait", "120")]
    props = instance.properties()
    assert props.clone_info.source == SOURCE and props.clone_info.name == "vm1"
    instance.stop()
    assert instance.properties().ip is None


def test_ip_at_start_with_resolver() -> None:
    runner = ScriptedRunner()
    instance = make(runner, obtain_ip_at_start=True, ip_resolver="agent")
    instance.clone()
    instance.start(timeout=60)
    ip_call = next(call for call in runner.calls if call[0] == "ip")
    assert ip_call[:3] == ("ip", "vm1", "--wait") and ip_call[-2:] == ("--resolver", "agent")
    runner.calls.clear()
    assert instance.properties().ip == "192.168.64.7" and runner.calls == []


def test_no_ip_is_a_typed_error() -> None:
    runner = ScriptedRunner()
    instance = running(runner)
    runner.script["ip"] = [
        runner.result(("ip",), 1, err="no IP address found, is your VM running?")
    ]
    with pytest.raises(NoIPAddressError):
        instance.properties()


def test_spawn_failure_reverts_the_state() -> None:
    from vms_core import BackendUnavailableError

    runner = ScriptedRunner()
    runner.spawn_error = BackendUnavailableError("tart binary 'tart' not found")
    instance = make(runner)
    instance.clone()
    with pytest.raises(BackendUnavailableError):
        instance.start()
    assert instance.state() is State.STOPPED


def test_tart_stop_racing_the_exit_with_timeout_zero_is_not_an_error() -> None:
    runner = ScriptedRunner()
    instance = running(runner)

    def sigint_then_kill_fails(args: object) -> CommandResult:
        runner.processes[0].send_signal(signal.SIGINT)
        return runner.result(
            ("stop",), 1, err='failed to forcefully terminate the VM "vm1": No such process'
        )

    runner.script["stop"] = [sigint_then_kill_fails]
    result = instance.stop(timeout=0)
    assert runner.calls == [("stop", "vm1", "--timeout", "0")]
    assert result.exit_status == 0 and instance.state() is State.STOPPED


def test_a_vm_missing_after_its_run_exits_is_worded_as_such(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner = ScriptedRunner()
    instance = running(runner)
    del runner.vms["vm1"]  # deleted behind our back
    runner.processes[0].exit(0)
    assert instance.state() is State.ERROR_UNKNOWN
    assert "vm1: tart no longer lists it after our tart run exited" in caplog.text
    assert "None" not in caplog.text
