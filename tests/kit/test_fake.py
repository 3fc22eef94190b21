"""The kit against the simulator: in-process with many programs, the executable with a few."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from vms_core import Action, OperationTimeoutError, State
from vms_core.testing import HangInjector, Harness, InstanceStateMachine
from vms_core.testing.conformance import conformance_tests
from vms_core.testing.profiles import examples
from vms_fake.testing import executable_harness, in_process_harness

# exec runs real commands even in-process; the executable's runs are real processes.
pytestmark = pytest.mark.timeout(300)

FAKE_TART = shutil.which("fake-tart", path=str(Path(sys.executable).parent)) or "fake-tart"


def fake_tart_harness() -> Harness:
    return executable_harness(binary=FAKE_TART)


# --- in-process: fast, so many programs ------------------------------------------------

TestInProcessConformance = conformance_tests(in_process_harness, "TestInProcessConformance")

# One home for all programs: each cleans up after itself (teardown checks), and a
# fresh home per program would cost more than the program itself.
SHARED_HOME = tempfile.TemporaryDirectory(prefix="vms-kit-fake-")

TestInProcessMachine = InstanceStateMachine.configure(
    lambda: in_process_harness(home=SHARED_HOME.name), name="InProcessFakeMachine"
).TestCase

TestInProcessLinuxMachine = InstanceStateMachine.configure(
    lambda: in_process_harness(os="linux", source="ghcr.io/cirruslabs/ubuntu:latest"),
    name="InProcessLinuxFakeMachine",
    max_examples=examples(0.1),
).TestCase


# --- the fake-tart executable: real processes, signals and locks, so few programs -------

TestExecutableConformance = pytest.mark.timeout(120)(
    conformance_tests(fake_tart_harness, "TestExecutableConformance")
)

TestExecutableMachine = pytest.mark.timeout(180)(
    InstanceStateMachine.configure(
        fake_tart_harness,
        name="FakeTartMachine",
        max_examples=examples(0.01),
        stateful_step_count=10,
    ).TestCase
)


# --- the hooks themselves -----------------------------------------------------------------


def test_faults_reach_the_simulator_and_clear() -> None:
    harness = in_process_harness()
    try:
        assert harness.faults is not None and harness.observe is not None
        vm = harness.backend.create_instance()
        vm.clone()
        vm.start()
        harness.faults.kill_vm(vm.id)
        assert harness.observe(vm.id) is State.STOPPED
        assert vm.state() is State.STOPPED
        harness.faults.fail_next(vm.id, Action.START)
        with pytest.raises(Exception, match="limit"):
            vm.start()
        harness.faults.clear(vm.id)
        before = harness.commands_issued()
        vm.start()
        assert harness.commands_issued() > before  # type: ignore[operator]
        vm.stop()
        vm.delete()
        assert harness.leftover_processes is not None and harness.leftover_processes() == []
    finally:
        harness.close()


def test_a_leaked_in_process_run_is_reported() -> None:
    harness = in_process_harness()
    try:
        vm = harness.backend.create_instance()
        vm.clone()
        vm.start()
        assert harness.leftover_processes is not None
        assert any(vm.id in line for line in harness.leftover_processes())
        vm.stop()
        assert harness.leftover_processes() == []
    finally:
        harness.close()


def test_the_machine_catches_a_broken_backend_over_the_simulator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A tart backend whose state() never notices the VM died (the Go tartvm's bug).
    from vms_tart.instance import TartInstance

    monkeypatch.setattr(TartInstance, "state", lambda self: self._guard.state)
    machine = InstanceStateMachine.configure(in_process_harness, name="DeafTart")
    quick = settings(
        max_examples=100,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
    )
    with pytest.raises(AssertionError, match="died on its own but the backend reports Running"):
        run_state_machine_as_test(machine, settings=quick)


@pytest.mark.timeout(120)
def test_executable_faults_crash_a_real_run_process_and_fail_commands() -> None:
    harness = fake_tart_harness()
    try:
        assert harness.faults is not None and harness.observe is not None
        vm = harness.backend.create_instance()
        vm.clone()
        vm.start()
        harness.faults.kill_vm(vm.id)  # returns once the process has exited
        assert vm.state() is State.STOPPED
        assert harness.observe(vm.id) is State.STOPPED
        harness.faults.fail_next(vm.id, Action.DELETE)
        with pytest.raises(Exception, match="injected by the vms testing kit"):
            vm.delete()
        harness.faults.clear(vm.id)
        assert vm.state() is State.STOPPED
        vm.delete()
        assert harness.observe(vm.id) is None
        assert harness.leftover_processes is not None and harness.leftover_processes() == []
    finally:
        harness.close()


def test_a_hung_command_is_cut_off_by_the_operations_timeout_in_virtual_time() -> None:
    harness = in_process_harness()
    try:
        assert isinstance(harness.faults, HangInjector)
        vm = harness.backend.create_instance()
        vm.clone()
        harness.faults.hang_next(vm.id, Action.START)  # the guest never boots
        with pytest.raises(OperationTimeoutError):
            vm.start(timeout=harness.hang_timeout)
        harness.faults.clear(vm.id)
        assert vm.state() is State.STOPPED
        assert harness.leftover_processes is not None and harness.leftover_processes() == []
        harness.faults.hang_next(vm.id, Action.DELETE)
        with pytest.raises(OperationTimeoutError):
            vm.delete(timeout=harness.hang_timeout)
        harness.faults.clear(vm.id)
        assert vm.state() is State.STOPPED
        vm.delete()
    finally:
        harness.close()
