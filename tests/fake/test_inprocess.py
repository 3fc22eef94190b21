"""What only the in-process mode promises: the runner interface, virtual time, threads."""

from __future__ import annotations

import io
import re
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vms_core.errors import OperationTimeoutError
from vms_fake.faults import FaultPlan
from vms_fake.guest_exec import emulated_echo
from vms_fake.inprocess import InProcessRunner
from vms_tart.runner import RunProcess, TartRunner

from .driver import MACOS, Result, Tart

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def runner(home: Path, plan: FaultPlan) -> InProcessRunner:
    return InProcessRunner(home, plan=plan)


def test_runner_implements_the_tart_runner_interface(runner: InProcessRunner) -> None:
    assert isinstance(runner, TartRunner)
    runner.run(["clone", MACOS, "vm"])
    process = runner.spawn(["run", "vm"])
    assert isinstance(process, RunProcess)
    assert process.argv == ("fake-tart", "run", "vm") and process.pid is None
    assert process.poll() is None
    process.send_signal(signal.SIGINT)
    assert process.wait(0) == 0
    assert process.output_tail() == "Stopping VM...\n"
    process.send_signal(signal.SIGINT)  # already exited: not an error
    assert runner.availability()


def test_failed_spawn_is_an_exited_process(runner: InProcessRunner) -> None:
    process = runner.spawn(["run", "ghost"])
    assert process.poll() == 1
    assert process.wait() == 1
    assert process.output_tail() == 'Error: the specified VM "ghost" does not exist\n'


def test_waits_cost_virtual_time_only(runner: InProcessRunner) -> None:
    runner.run(["clone", MACOS, "vm"])
    runner.plan.set_timing(ip_poll_interval=1.0)
    before = runner.monotonic()
    result = runner.run(["ip", "vm", "--wait", "3"])
    assert result.exit_code == 1
    assert runner.monotonic() - before == pytest.approx(3.0)
    before = runner.monotonic()
    runner.sleep(120)
    assert runner.monotonic() - before == pytest.approx(120)


def test_timeout_applies_on_the_virtual_clock(runner: InProcessRunner) -> None:
    runner.run(["clone", MACOS, "vm"])
    runner.plan.hang_command("get")
    before = runner.monotonic()
    with pytest.raises(OperationTimeoutError):
        runner.run(["get", "vm"], timeout=30)
    assert runner.monotonic() - before == pytest.approx(30)


def test_a_timeout_names_the_command_and_a_readable_duration(runner: InProcessRunner) -> None:
    runner.run(["clone", MACOS, "vm"])
    runner.plan.hang_command("get")
    with pytest.raises(OperationTimeoutError) as caught:
        runner.run(["get", "vm"], timeout=0.9856364879999546)
    assert str(caught.value).endswith("get vm did not finish within 0.986s")


def test_run_to_completion_ends_with_the_vm(runner: InProcessRunner) -> None:
    runner.run(["clone", MACOS, "vm"])
    runner.plan.crash_after("vm", 5, message="gone")
    result = runner.run(["run", "vm"])
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", "gone\n")
    runner.plan.clear("vm")
    with pytest.raises(OperationTimeoutError):
        runner.run(["run", "vm"], timeout=10)  # nothing ends this VM


def test_wait_advances_to_a_scheduled_crash(runner: InProcessRunner) -> None:
    runner.run(["clone", MACOS, "vm"])
    runner.plan.crash_after("vm", 50)
    process = runner.spawn(["run", "vm"])
    assert process.wait(10) is None
    assert process.wait(100) == 1


def test_hundred_vms_from_threads(runner: InProcessRunner) -> None:
    names = [f"vm{i:03}" for i in range(100)]
    runner.run(["pull", MACOS])

    def lifecycle(name: str) -> tuple[int, ...]:
        codes = [runner.run(["clone", MACOS, name]).exit_code]
        process = runner.spawn(["run", name, "--no-graphics"])
        codes.append(runner.run(["exec", name, "echo", name]).exit_code)
        codes.append(runner.run(["ip", name]).exit_code)
        return (*codes, process.poll() is None)

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(lifecycle, names))
    assert outcomes == [(0, 0, 0, True)] * 100
    listed = runner.run(["list", "--source", "local"]).stdout.splitlines()[1:]
    assert len(listed) == 100 and all(line.endswith("running") for line in listed)
    with ThreadPoolExecutor(max_workers=20) as pool:
        stops = list(pool.map(lambda n: runner.run(["stop", n]).exit_code, names))
    assert stops == [0] * 100
    assert "running" not in runner.run(["list"]).stdout


def test_in_process_vm_is_running_for_other_processes(in_process: Tart, executable: Tart) -> None:
    in_process.clone(MACOS, "vm")
    run = in_process.spawn("run", "vm")
    assert executable.state("vm") == "running"
    assert executable("run", "vm") == Result(2, "", 'VM "vm" is already running!\n')
    assert in_process("stop", "vm") == Result(0, "", "")
    assert run.wait() == 0
    assert executable.state("vm") == "stopped"


def test_in_process_commands_reach_an_executable_run(in_process: Tart, executable: Tart) -> None:
    executable.clone(MACOS, "vm")
    run = executable.spawn("run", "vm")
    assert in_process.state("vm") == "running"
    assert in_process("run", "vm") == Result(2, "", 'VM "vm" is already running!\n')
    assert in_process("stop", "vm") == Result(0, "", "")  # a real SIGINT to the process
    assert run.wait() == 0
    assert run.stdout == "Stopping VM...\n"


@pytest.mark.parametrize(
    "words",
    [
        [],
        ["hello", "world"],
        ["-n", "no newline"],
        ["-nE", "x"],
        ["-E", "-n", "x"],
        ["-"],
        ["--"],
        ["-x", "y"],
        ["-n"],
        ["a\\tb"],
        ["--help", "x"],
        ["", "", "gap"],
        ["\u00e9t\u00e9"],
    ],
)
def test_echo_emulation_is_byte_for_byte_gnu_echo(words: list[str]) -> None:
    emulated = emulated_echo(["echo", *words])
    assert emulated is not None
    real = subprocess.run(["/bin/echo", *words], capture_output=True, check=True)
    assert emulated.encode() == real.stdout


@pytest.mark.parametrize("words", [["-e", "a\\tb"], ["-ne", "x"], ["--help"], ["--version"]])
def test_echo_emulation_defers_what_it_cannot_match(words: list[str]) -> None:
    assert emulated_echo(["echo", *words]) is None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet="-neEx\\ a", max_size=5), max_size=4))
def test_echo_emulation_matches_real_echo_on_random_words(words: list[str]) -> None:
    emulated = emulated_echo(["/bin/echo", *words])
    if emulated is not None:
        real = subprocess.run(["/bin/echo", *words], capture_output=True, check=True)
        assert emulated.encode() == real.stdout


def test_scheduled_crash_shows_in_state_once_its_time_has_come(runner: InProcessRunner) -> None:
    runner.run(["clone", MACOS, "vm"])
    runner.plan.crash_after("vm", 30)
    process = runner.spawn(["run", "vm"])
    runner.sleep(10)
    assert '"State" : "running"' in runner.run(["get", "vm", "--format", "json"]).stdout
    runner.sleep(30)  # nobody polls the run: looking at the VM is enough
    assert '"State" : "stopped"' in runner.run(["get", "vm", "--format", "json"]).stdout
    assert process.poll() == 1


def test_accessed_reads_like_foundations_relative_formatter(runner: InProcessRunner) -> None:
    runner.run(["clone", MACOS, "vm"])
    seen = []
    for seconds in (1, 89, 2 * 3600, 3 * 86400):
        runner.sleep(seconds)
        row = runner.run(["list", "--source", "local"]).stdout.splitlines()[1]
        match = re.search(r"\d+ \w+ ago", row)
        seen.append(match[0] if match else row)
    assert seen == ["1 second ago", "1 minute ago", "2 hours ago", "3 days ago"]
    runner.run(["get", "vm"])  # opening a VM marks it accessed; list does not
    assert "in 0 seconds" in runner.run(["list", "--source", "local"]).stdout


def test_output_is_copied_to_the_given_streams(runner: InProcessRunner) -> None:
    runner.run(["clone", MACOS, "vm"])
    runner.plan.crash_after("vm", 1, message="gone")
    out, err = io.StringIO(), io.StringIO()
    result = runner.run(["run", "vm"], stdout=out, stderr=err)
    assert (result.stdout, result.stderr) == ("", "gone\n")
    assert (out.getvalue(), err.getvalue()) == ("", "gone\n")
    result = runner.run(["get", "ghost"], stdout=out, stderr=err)
    assert err.getvalue() == 'gone\nthe specified VM "ghost" does not exist\n'


def test_real_time_mode_waits_for_real_events(home: Path, plan: FaultPlan) -> None:
    runner = InProcessRunner(home, plan=plan, virtual_time=False)
    runner.run(["clone", MACOS, "vm"])
    plan.crash_after("vm", 0.05, message="gone")
    process = runner.spawn(["run", "vm"])
    assert process.wait(30) == 1  # woken by the crash deadline, not by the timeout
    assert process.output_tail() == "gone\n"


def test_spawn_of_another_command_is_a_finished_process(runner: InProcessRunner) -> None:
    process = runner.spawn(["get", "ghost"])
    assert process.poll() == 2
    assert process.output_tail() == 'the specified VM "ghost" does not exist\n'


def test_concurrent_clones_of_an_uncached_image_all_succeed(runner: InProcessRunner) -> None:
    """Regression: threads racing to 'download' one image failed with ENOTEMPTY."""
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: runner.run(["clone", MACOS, f"vm{i}"]), range(8)))
    assert [(r.exit_code, r.stderr) for r in results] == [(0, "")] * 8
    listed = runner.run(["list", "--source", "local", "-q"]).stdout.split()
    assert listed == sorted(f"vm{i}" for i in range(8))


def _processes_with_argument(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if entry.name.isdigit() and marker in argv:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.timeout(30)
def test_a_timed_out_guest_command_takes_what_it_started_with_it(runner: InProcessRunner) -> None:
    """Regression: a guest command cut short left its background children running."""
    runner.run(["clone", MACOS, "vm"])
    vm = runner.spawn(["run", "vm"])
    try:
        marker = "31.4159"
        with pytest.raises(OperationTimeoutError):
            runner.run(["exec", "vm", "sh", "-c", f"sleep {marker} & sleep {marker}"], timeout=0.5)
        assert _processes_with_argument(f"sleep {marker}") == []
    finally:
        vm.send_signal(signal.SIGINT)
        vm.wait(10)
