"""The tart backend against the simulator, in-process and as the ``fake-tart`` executable."""

from __future__ import annotations

import contextlib
import itertools
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from vms_core import ConfigError, State, VMError, load_backend, load_backend_from_config
from vms_tart.backend import TartBackend
from vms_tart.subprocess_runner import SubprocessRunner

from .conftest import FAKE_TART, World

pytestmark = pytest.mark.timeout(120)

SOURCE = "ghcr.io/cirruslabs/macos-sequoia-base:latest"
RUN_OPTIONS = ("--no-graphics", "--no-audio", "--suspendable")


def collapse_lists(calls: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Merge consecutive ``tart list`` calls.

    A separate ``fake-tart run`` process takes the VM's lock a moment after it is
    spawned; on a loaded machine the first look may come before that and a second
    one is needed. In-process the lock is taken before spawn returns.
    """
    return [key for key, _ in itertools.groupby(calls)]


def test_happy_path_issues_exactly_these_tart_commands(world: World) -> None:
    backend, runner = world.backend()
    vm = backend.create_instance("vm1")
    vm.clone()
    vm.start()
    result = vm.exec("echo", "hello", "world")
    stop = vm.stop()
    vm.delete()
    calls = runner.calls if world.mode == "in-process" else collapse_lists(runner.calls)
    nonce = calls[3][3]
    assert calls == [
        ("clone", SOURCE, "vm1"),
        ("run", "vm1", *RUN_OPTIONS),
        ("list", "--format", "json"),
        ("exec", "vm1", "echo", nonce),
        ("exec", "vm1", "echo", "hello", "world"),
        ("stop", "vm1", "--timeout", "30"),
        ("delete", "vm1"),
    ]
    assert result.stdout == "hello world\n" and result.exit_code == 0
    assert stop.exit_status == 0 and stop.clean
    assert "Stopping VM..." in stop.output_tail
    assert vm.state() is State.DELETED and world.tart_state("vm1") is None


def test_whole_lifecycle_agrees_with_tart_list(world: World) -> None:
    backend, _ = world.backend(cpu=8, memory=16384)
    vm = backend.create_instance("vm1")
    vm.clone()
    assert (vm.state(), world.tart_state("vm1")) == (State.STOPPED, "stopped")
    assert backend.get_vm("vm1").cpus == 8 and backend.get_vm("vm1").memory_mib == 16384
    vm.start()
    assert (vm.state(), world.tart_state("vm1")) == (State.RUNNING, "running")
    assert vm.exec("sh", "-c", "echo out; echo err >&2; exit 3").exit_code == 3
    assert vm.properties().ip
    vm.suspend()
    assert (vm.state(), world.tart_state("vm1")) == (State.SUSPENDED, "suspended")
    vm.suspend()  # idempotent
    vm.start()  # resume
    assert (vm.state(), world.tart_state("vm1")) == (State.RUNNING, "running")
    assert vm.exec("echo", "back").stdout == "back\n"
    vm.stop()
    assert vm.stop().noop
    assert (vm.state(), world.tart_state("vm1")) == (State.STOPPED, "stopped")
    vm.delete()
    assert (vm.state(), world.tart_state("vm1")) == (State.DELETED, None)


def test_ctrl_c_during_start_stops_the_vm_and_leaves_a_legal_state(world: World) -> None:
    backend, runner = world.backend()
    vm = backend.create_instance("vm1")
    vm.clone()

    def interrupt_readiness(args: tuple[str, ...]) -> None:
        if args[0] == "exec":
            raise KeyboardInterrupt

    runner.before = interrupt_readiness
    with pytest.raises(KeyboardInterrupt):
        vm.start()
    runner.before = None
    assert vm.state() is State.STOPPED
    assert world.tart_state("vm1") == "stopped"
    assert runner.spawned[0].poll() is not None
    vm.delete()


def test_the_vm_limit_ends_start_at_once_with_the_error(world: World) -> None:
    backend, runner = world.backend()
    vm = backend.create_instance("vm1")
    vm.clone()
    world.plan.vm_limit_reached("vm1")
    from vms_tart.errors import VMLimitError

    with pytest.raises(VMLimitError, match="exceeds the system limit") as caught:
        vm.start()
    assert caught.value.exit_status == 1
    assert "exec" not in runner.subcommands()
    assert vm.state() is State.STOPPED
    vm.delete()


def test_a_crash_is_noticed_by_state_and_reported_by_stop(world: World) -> None:
    backend, runner = world.backend()
    vm = backend.create_instance("vm1")
    vm.clone()
    vm.start()
    assert world.plan.crash_vm("vm1")
    assert runner.spawned[0].wait(30) == 1
    before = len(runner.calls)
    assert vm.state() is State.STOPPED
    assert runner.calls[before:] == [("list", "--format", "json")]
    result = vm.stop()
    assert result.noop and result.exited_on_its_own and result.exit_status == 1
    assert "stopped unexpectedly" in result.output_tail
    vm.delete()


def test_external_tart_stop_is_noticed(world: World) -> None:
    backend, runner = world.backend()
    vm = backend.create_instance("vm1")
    vm.clone()
    vm.start()
    other, _ = world.backend()
    other.runner.run(("stop", "vm1"))
    runner.spawned[0].wait(30)
    assert vm.state() is State.STOPPED
    vm.delete()


def test_loads_from_toml_and_drives_the_executable(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = tmp_path / "vms.toml"
    config.write_text(
        f'backend = "tart"\n[tart]\nbinary = "{FAKE_TART}"\nhome = "{home}"\n'
        'name_prefix = "toml-"\n'
    )
    backend = load_backend_from_config(config)
    assert isinstance(backend, TartBackend) and isinstance(backend.runner, SubprocessRunner)
    assert backend.availability()
    vm = backend.create_instance()
    assert vm.id.startswith("toml-")
    vm.clone()
    vm.start()
    assert vm.exec("echo", "from toml").stdout == "from toml\n"
    assert [info.name for info in backend.list_vms("toml-")] == [vm.id]
    vm.stop()
    vm.delete()
    assert backend.list_vms("toml-") == []


def test_binary_named_fake_tart_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(Path(FAKE_TART).parent), prepend=":")
    monkeypatch.setenv("TART_HOME", str(tmp_path / "home"))
    config = tmp_path / "vms.toml"
    config.write_text('backend = "tart"\n[tart]\nbinary = "fake-tart"\nos = "linux"\n')
    backend = load_backend_from_config(config)
    vm = backend.create_instance(source="ghcr.io/cirruslabs/ubuntu:latest")
    vm.clone()
    vm.start()
    assert not vm.suspendable
    assert vm.exec("echo", "linux").stdout == "linux\n"
    backend.delete_all(backend.name_prefix)
    assert backend.list_vms() == []


def test_fake_entry_point(tmp_path: Path) -> None:
    backend = load_backend("fake", home=str(tmp_path / "home"), name_prefix="f-")
    assert backend.availability()
    assert backend.capabilities.suspend
    vm = backend.create_instance()
    vm.clone()
    vm.start()
    assert vm.exec("echo", "fake").stdout == "fake\n"
    vm.suspend()
    # Another backend over the same home sees the VM (what `vms list` in another process does).
    other = load_backend("fake", home=str(tmp_path / "home"))
    assert [(i.name, i.state) for i in other.list_vms("f-")] == [(vm.id, State.SUSPENDED)]
    report = other.delete_all("f-")
    assert report.deleted == [vm.id] and report.ok


def test_a_vm_does_not_outlive_the_python_process_that_started_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    program = textwrap.dedent(
        f"""
        from vms_core import load_backend
        backend = load_backend("tart", binary={FAKE_TART!r}, home={str(home)!r})
        vm = backend.create_instance("left")
        vm.clone()
        vm.start()
        print(vm.exec("echo", "up").stdout, end="", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == "up\n"
    backend = load_backend("tart", binary=FAKE_TART, home=str(home))
    assert [(i.name, i.state) for i in backend.list_vms()] == [("left", State.STOPPED)]
    backend.delete_vm("left")


def test_a_detached_vm_keeps_running_after_python_exits(tmp_path: Path) -> None:
    home = tmp_path / "home"
    program = textwrap.dedent(
        f"""
        from vms_core import load_backend
        backend = load_backend("tart", binary={FAKE_TART!r}, home={str(home)!r})
        vm = backend.create_instance("kept")
        vm.clone()
        vm.start()
        vm.detach()
        """
    )
    subprocess.run([sys.executable, "-c", program], timeout=60, check=True)
    backend = load_backend("tart", binary=FAKE_TART, home=str(home))
    try:
        assert [(i.name, i.state) for i in backend.list_vms()] == [("kept", State.RUNNING)]
        report = backend.delete_all("kept", stop_timeout=5)
        assert report.ok and backend.list_vms() == []
    finally:  # the VM outlives its Python by design: it must not outlive a failed test
        with contextlib.suppress(VMError):
            backend.delete_vm("kept", stop_timeout=5)


def test_fake_backend_obeys_a_fault_plan_file(tmp_path: Path) -> None:
    from vms_fake.faults import FaultPlan
    from vms_tart.errors import VMLimitError

    plan_file = tmp_path / "faults.json"
    FaultPlan(plan_file).vm_limit_reached("limited")
    backend = load_backend("fake", home=str(tmp_path / "home"), faults_file=str(plan_file))
    vm = backend.create_instance("limited")
    vm.clone()
    with pytest.raises(VMLimitError):
        vm.start()
    assert vm.state() is State.STOPPED
    vm.delete()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"boot_delay": -1}, r"fake\.boot_delay must be a number >= 0"),
        ({"nope": 1}, "accepted: .*virtual_time"),
        ({"os": "windows"}, "macos"),
        ({"run_timeout": -1}, r"fake\.run_timeout must be a positive number"),
        ({"stop_timeout": float("nan")}, r"fake\.stop_timeout"),
        ({"ip_delay": float("inf")}, r"fake\.ip_delay"),
    ],
)
def test_fake_backend_option_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_backend("fake", **options)


def test_stop_with_no_graceful_period(world: World) -> None:
    backend, runner = world.backend()
    vm = backend.create_instance("vm1")
    vm.clone()
    vm.start()
    result = vm.stop(timeout=0)
    assert ("stop", "vm1", "--timeout", "0") in runner.calls
    assert result.exit_status is not None
    assert vm.state() is State.STOPPED and world.tart_state("vm1") == "stopped"
    vm.delete()


def test_a_real_ctrl_c_during_start_leaves_no_vm_running(tmp_path: Path) -> None:
    home = tmp_path / "home"
    from vms_fake.faults import FaultPlan

    FaultPlan.for_home(home).boot_delay("slow", 300)  # readiness never comes
    program = textwrap.dedent(
        f"""
        import sys
        from vms_core import load_backend
        backend = load_backend("tart", binary={FAKE_TART!r}, home={str(home)!r})
        vm = backend.create_instance("slow")
        vm.clone()
        print("starting", flush=True)
        try:
            vm.start()
        except KeyboardInterrupt:
            print(vm.state(), flush=True)
            sys.exit(130)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", program], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "starting\n"
        backend = load_backend("tart", binary=FAKE_TART, home=str(home))
        # Interrupt once the VM is up and start() is waiting for readiness.
        while [i.state for i in backend.list_vms()] != [State.RUNNING]:
            assert child.poll() is None
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, err
    assert out == "Stopped\n"
    assert [(i.name, i.state) for i in backend.list_vms()] == [("slow", State.STOPPED)]
    backend.delete_vm("slow")
