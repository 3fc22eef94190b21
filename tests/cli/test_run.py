"""``vms run`` in-process against the memory backend: the lifecycle, statuses and cleanup."""

from __future__ import annotations

from typing import ClassVar

import pytest
from kit.memory_backend import MemoryBackend, MemoryInstance, RunProcess

from vms_core import OperationTimeoutError, State
from vms_core.cli.exit_status import ExitStatus

from .conftest import Vms


def test_run_passes_output_through_and_leaves_nothing(vms: Vms, memory: MemoryBackend) -> None:
    outcome = vms("run", "--backend", "memory", "--", "echo", "hello")
    assert outcome.status == 0
    assert outcome.out == "hello\n"
    assert memory.tool.vms == {}
    assert memory.tool.leftover_processes() == []
    # The whole lifecycle, in order, each step on its own line.
    steps = [line.split()[1] for line in outcome.err.splitlines()]
    assert steps == [
        "backend", "Cloning", "Stopped", "Starting", "Running", "exec", "command",
        "Stopping", "Stopped", "Deleting", "Deleted",
    ]  # fmt: skip


def test_exit_status_is_the_guest_commands(vms: Vms, memory: MemoryBackend) -> None:
    outcome = vms("run", "--backend", "memory", "--", "sh", "-c", "echo oops >&2; exit 3")
    assert outcome.status == 3
    assert "oops\n" in outcome.err
    assert "vms: command exited with 3" in outcome.err
    assert memory.tool.vms == {}


def test_options_after_the_separator_belong_to_the_guest(vms: Vms, memory: MemoryBackend) -> None:
    outcome = vms("run", "--backend", "memory", "--", "sh", "-c", 'echo "$@"', "sh", "--keep")
    assert outcome.out == "--keep\n"
    assert memory.tool.vms == {}


def test_quiet_prints_only_the_guest_output(vms: Vms, memory: MemoryBackend) -> None:
    outcome = vms("-q", "run", "--backend", "memory", "--", "echo", "hi")
    assert (outcome.status, outcome.out, outcome.err) == (0, "hi\n", "")
    # The flag is accepted after the subcommand too.
    assert vms("run", "--quiet", "--backend", "memory", "--", "true").err == ""


def test_a_missing_image_is_one_line_and_leaves_nothing(vms: Vms, memory: MemoryBackend) -> None:
    memory.tool.fail_next("clone", "mem-bad")
    outcome = vms(
        "run", "--backend", "memory", "--name", "mem-bad", "--image", "nope", "--", "true"
    )
    assert outcome.status == ExitStatus.VM_OPERATION_FAILED
    assert len(outcome.error_lines) == 1
    assert "injected failure of clone" in outcome.error_lines[0]
    assert "Traceback" not in outcome.err
    assert "nothing left behind" in outcome.err
    assert memory.tool.vms == {}


def test_a_failed_start_is_cleaned_up(vms: Vms, memory: MemoryBackend) -> None:
    memory.tool.fail_next("run", "mem-x")
    outcome = vms("run", "--backend", "memory", "--name", "mem-x", "--", "true")
    assert outcome.status == ExitStatus.VM_OPERATION_FAILED
    assert "failed during start" in outcome.err
    assert "deleted mem-x" in outcome.err
    assert memory.tool.vms == {}


def test_ctrl_c_during_start_cleans_up_and_says_so(
    vms: Vms, memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run = memory.tool.run

    def interrupted_run(name: str) -> RunProcess:
        real_run(name).exit(0)  # the VM process began, then the user pressed Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(memory.tool, "run", interrupted_run)
    outcome = vms("run", "--backend", "memory", "--name", "mem-int", "--", "true")
    assert outcome.status == ExitStatus.INTERRUPTED == 130
    assert "vms: interrupted during start" in outcome.err
    assert "deleted mem-int" in outcome.err
    assert outcome.error_lines == ["vms: error: interrupted"]
    assert memory.tool.vms == {}


def test_ctrl_c_during_the_command_stops_and_deletes(
    vms: Vms, memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted_exec(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(memory.tool, "exec", interrupted_exec)
    outcome = vms("run", "--backend", "memory", "--name", "mem-int", "--", "sleep", "60")
    assert outcome.status == 130
    assert "interrupted during the command (mem-int is Running)" in outcome.err
    assert "stopped and deleted mem-int" in outcome.err
    assert memory.tool.vms == {}
    assert memory.tool.leftover_processes() == []


def test_a_timeout_exits_124_after_cleanup(
    vms: Vms, memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow_exec(*_args: object) -> None:
        raise OperationTimeoutError("timed out after 5s waiting for the command")

    monkeypatch.setattr(memory.tool, "exec", slow_exec)
    outcome = vms("run", "--backend", "memory", "--timeout", "5", "--", "sleep", "60")
    assert outcome.status == ExitStatus.TIMEOUT == 124
    assert outcome.error_lines == ["vms: error: timed out after 5s waiting for the command"]
    assert memory.tool.vms == {}


def test_the_timeout_bounds_the_steps_together(vms: Vms, memory: MemoryBackend) -> None:
    # A timeout that has run out before a step starts fails that step without running it.
    outcome = vms("run", "--backend", "memory", "--timeout", "1e-9", "--", "true")
    assert outcome.status == 124
    assert "ran out before" in outcome.error_lines[0]
    assert memory.tool.vms == {}


def test_a_failed_cleanup_names_the_leftover_and_how_to_remove_it(
    vms: Vms, memory: MemoryBackend
) -> None:
    memory.tool.clone("memory-image", "mem-left-prod")  # a name the hint must not touch
    memory.tool.fail_next("delete", "mem-left")
    outcome = vms("run", "--backend", "memory", "--name", "mem-left", "--", "true")
    assert outcome.status == ExitStatus.CLEANUP_FAILED
    assert "remove it with: vms delete --backend memory mem-left\n" in outcome.err
    # The hint works, and deletes exactly the VM it names.
    assert vms("delete", "--backend", "memory", "mem-left").status == 0
    assert list(memory.tool.vms) == ["mem-left-prod"]


class DetachableInstance(MemoryInstance):
    """An instance whose VM can be let go to outlive the process, as tart's can."""

    detached: ClassVar[list[str]] = []

    def detach(self) -> None:
        self.detached.append(self.name)


def test_keep_detaches_the_vm_and_says_how_to_remove_it(
    vms: Vms, memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "instance_type", DetachableInstance)
    monkeypatch.setattr(DetachableInstance, "detached", [])
    outcome = vms("run", "--backend", "memory", "--keep", "--name", "mem-k", "--", "true")
    assert outcome.status == 0
    assert "kept mem-k running at 10.0.0.2" in outcome.err
    assert "remove it with: vms delete --backend memory mem-k\n" in outcome.err
    assert DetachableInstance.detached == ["mem-k"]
    assert memory.list_vms()[0].state is State.RUNNING
    vms("delete", "--backend", "memory", "mem-k")
    assert memory.tool.vms == {}


def test_keep_says_so_when_the_command_left_the_vm_stopped(
    vms: Vms, memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "instance_type", DetachableInstance)
    monkeypatch.setattr(DetachableInstance, "detached", [])
    real_exec = memory.tool.exec

    def exec_then_power_off(name: str, argv: tuple[str, ...], stdin: str | None) -> object:
        result = real_exec(name, argv, stdin)
        memory.tool.crash(name)  # e.g. the command was `poweroff`
        return result

    monkeypatch.setattr(memory.tool, "exec", exec_then_power_off)
    outcome = vms("run", "--backend", "memory", "--keep", "--name", "mem-k", "--", "true")
    assert outcome.status == 0
    assert "kept mem-k (Stopped); remove it with: " in outcome.err
    assert DetachableInstance.detached == []


def test_keep_without_detach_keeps_the_vm_stopped(vms: Vms, memory: MemoryBackend) -> None:
    # Such a backend stops its VMs at exit: "kept running" would be a lie.
    outcome = vms("run", "--backend", "memory", "--keep", "--name", "mem-k", "--", "true")
    assert outcome.status == 0
    assert "kept mem-k stopped: backend memory stops its VMs when the program" in outcome.err
    assert [(vm.name, vm.state) for vm in memory.list_vms()] == [("mem-k", State.STOPPED)]


def test_keep_on_an_in_process_backend_keeps_the_vm_stopped(
    vms: Vms, memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "instance_type", DetachableInstance)
    monkeypatch.setattr(memory, "vms_outlive_process", False, raising=False)
    outcome = vms("run", "--backend", "memory", "--keep", "--name", "mem-k", "--", "true")
    assert outcome.status == 0
    assert "kept mem-k stopped" in outcome.err
    assert "runs VMs inside this process, so they cannot outlive it" in outcome.err
    assert [(vm.name, vm.state) for vm in memory.list_vms()] == [("mem-k", State.STOPPED)]


def test_an_existing_name_is_refused_before_anything_runs(vms: Vms, memory: MemoryBackend) -> None:
    memory.tool.clone("memory-image", "mem-mine")
    commands = len(memory.tool.commands)
    outcome = vms("run", "--backend", "memory", "--name", "mem-mine", "--", "true")
    assert outcome.status == ExitStatus.USAGE
    assert "already exists" in outcome.error_lines[0]
    assert [c[0] for c in memory.tool.commands[commands:]] == ["list"]
    assert "mem-mine" in memory.tool.vms


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--backend", "memory"], "run needs a command"),
        (["run", "--backend", "memory", "--"], "run needs a command"),
        (["run", "--backend", "memory", "--timeout", "0", "--", "true"], "finite positive"),
        (["run", "--backend", "memory", "--timeout", "soon", "--", "true"], "not a number"),
    ],
)
def test_usage_errors_exit_2(
    vms: Vms, memory: MemoryBackend, argv: list[str], message: str
) -> None:
    outcome = vms(*argv)
    assert outcome.status == ExitStatus.USAGE
    assert message in outcome.err
    assert memory.tool.commands == []


def test_vms_backend_from_the_environment_is_used_and_said(
    vms: Vms, memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VMS_BACKEND", "memory")
    outcome = vms("run", "--", "true")
    assert outcome.status == 0
    assert outcome.err.splitlines()[0] == "vms: backend memory (VMS_BACKEND)"
    assert memory.tool.commands  # the memory backend did the work


def test_a_second_ctrl_c_during_cleanup_names_what_is_left(
    vms: Vms, memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(memory.tool, "exec", interrupted)  # the first Ctrl-C
    monkeypatch.setattr(memory.tool, "stop", interrupted)  # the second, while stopping
    outcome = vms("run", "--backend", "memory", "--name", "mem-x", "--", "sleep", "60")
    assert outcome.status == 130
    assert (
        "vms: could not clean up mem-x (interrupted); it may be left behind; "
        "remove it with: vms delete --backend memory mem-x"
    ) in outcome.err
    assert outcome.error_lines == ["vms: error: interrupted"]


class HungDeleteInstance(MemoryInstance):
    """An instance whose delete hangs (a hung ``tart delete``) until its timeout runs out."""

    def delete(self, *, timeout: float | None = None) -> None:
        if timeout is None:
            # Unbounded: a real tool would hang forever; fail the test instead of hanging it.
            raise AssertionError("cleanup's delete was not given a timeout")
        raise OperationTimeoutError(f"delete of {self.name} did not finish within {timeout:g}s")


def test_cleanup_after_ctrl_c_bounds_the_delete_and_says_what_is_left(
    vms: Vms, memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(memory, "instance_type", HungDeleteInstance)
    monkeypatch.setattr(memory.tool, "exec", interrupted)
    outcome = vms("run", "--backend", "memory", "--name", "mem-x", "--", "sleep", "60")
    assert outcome.status == ExitStatus.INTERRUPTED
    assert "vms: could not clean up mem-x (" in outcome.err
    assert "delete of mem-x did not finish within" in outcome.err
    assert "remove it with: vms delete --backend memory mem-x" in outcome.err
    assert outcome.error_lines == ["vms: error: interrupted"]


def test_ctrl_c_during_clone_does_not_claim_nothing_is_left_when_the_vm_exists(
    vms: Vms, memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_clone = memory.tool.clone

    def clone_then_interrupted(source: str, name: str) -> None:
        real_clone(source, name)  # the tool made the VM before the Ctrl-C landed
        raise KeyboardInterrupt

    monkeypatch.setattr(memory, "instance_type", HungDeleteInstance)
    monkeypatch.setattr(memory.tool, "clone", clone_then_interrupted)
    outcome = vms("run", "--backend", "memory", "--name", "mem-x", "--", "true")
    assert outcome.status == ExitStatus.INTERRUPTED
    assert "nothing left behind" not in outcome.err
    assert "remove it with: vms delete --backend memory mem-x" in outcome.err
    assert vms("delete", "--backend", "memory", "mem-x").status == 0
    assert memory.tool.vms == {}
