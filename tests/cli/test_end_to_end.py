"""The installed ``vms`` executable on the ``fake`` backend, as a user runs it.

Each test gets its own tart home (``TART_HOME``), a PATH without tart, and no VMS_*
variables; it runs ``vms`` in its own session so that nothing it started can outlive it
unnoticed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

pytest.importorskip("vms_fake.backend", reason="the fake backend is not installed")

BIN = Path(sys.executable).parent
#: The console script as installed; the module when the script is not beside the interpreter.
VMS = [str(BIN / "vms")] if (BIN / "vms").exists() else [sys.executable, "-m", "vms_core.cli"]
#: Generous: only a hang should ever reach it.
TIMEOUT = 60

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "tart-home"
    home.mkdir()
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("VMS_", "TART_", "FAKE_TART_"))
    }
    environ["TART_HOME"] = str(home)
    # fake-tart is installed beside the interpreter; tart must not be found.
    environ["PATH"] = os.pathsep.join([str(BIN), "/usr/bin", "/bin"])
    return environ


def vms(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VMS, *args], env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def leftover_vms(env: Mapping[str, str]) -> list[str]:
    listed = vms(env, "list", "--backend", "fake", "--prefix", "", "--json")
    assert listed.returncode == 0, listed.stderr
    return [vm["name"] for vm in json.loads(listed.stdout)]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("vms: error:")]


def session_processes(session: int) -> list[str]:
    """Processes still alive (or unreaped) in ``session``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[3]) == session:  # field 6 of stat: the session id
            found.append(f"{entry}: {stat[: stat.rfind(')') + 1]}")
    return found


@pytest.fixture
def spawn(env: dict[str, str]) -> Iterator[list[subprocess.Popen[str]]]:
    """Popen ``vms`` in a new session; afterwards assert the session is empty."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert session_processes(process.pid) == []


def start_vms(
    spawn: list[subprocess.Popen[str]], env: Mapping[str, str], *args: str
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [*VMS, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    spawn.append(process)
    return process


def read_until(process: subprocess.Popen[str], marker: str) -> str:
    """stderr lines up to and including the first that contains ``marker``."""
    assert process.stderr is not None
    seen = ""
    for line in process.stderr:
        seen += line
        if marker in line:
            return seen
    raise AssertionError(f"vms exited before printing {marker!r}:\n{seen}")


def test_echo_hello_on_a_fresh_machine(env: dict[str, str]) -> None:
    result = vms(env, "run", "--", "echo", "hello")
    assert (result.returncode, result.stdout) == (0, "hello\n"), result.stderr
    assert "vms: backend fake (" in result.stderr
    assert leftover_vms(env) == []


def test_the_guest_exit_status_is_ours(env: dict[str, str]) -> None:
    result = vms(env, "run", "--", "sh", "-c", "exit 3")
    assert result.returncode == 3, result.stderr
    assert error_lines(result.stderr) == []
    assert leftover_vms(env) == []


def test_a_bad_image_is_one_line_and_leaves_nothing(env: dict[str, str]) -> None:
    result = vms(env, "run", "--image", "ghcr.io/nobody/nothing:latest", "--", "true")
    assert result.returncode == 5, result.stderr
    assert len(error_lines(result.stderr)) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert leftover_vms(env) == []


def test_an_unknown_backend_is_one_line(env: dict[str, str]) -> None:
    result = vms(env, "run", "--backend", "nope", "--", "true")
    assert result.returncode == 3
    assert error_lines(result.stderr) == [
        "vms: error: no backend named 'nope'; installed backends: fake, qemu, tart"
    ]
    assert leftover_vms(env) == []


def test_a_missing_tart_binary_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "vms.toml"
    config.write_text('backend = "tart"\n[tart]\nbinary = "/nonexistent/tart"\n')
    result = vms(env, "run", "--config", str(config), "--", "true")
    assert result.returncode == 3, result.stderr
    [line] = error_lines(result.stderr)
    assert line.startswith("vms: error: backend tart cannot run here: ")
    assert "/nonexistent/tart" in line
    assert leftover_vms(env) == []


def slow_boot_config(tmp_path: Path) -> Path:
    """The fake with a boot that takes real time, so a Ctrl-C can land during start."""
    config = tmp_path / "slow.toml"
    config.write_text('backend = "fake"\n[fake]\nvirtual_time = false\nboot_delay = 60\n')
    return config


def test_ctrl_c_during_start_cleans_up_and_exits_130(
    env: dict[str, str], spawn: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    config = slow_boot_config(tmp_path)
    process = start_vms(spawn, env, "run", "--config", str(config), "--", "echo", "never")
    before = read_until(process, "vms: Starting ")
    process.send_signal(signal.SIGINT)
    out, after = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, before + after
    assert out == ""
    assert "vms: interrupted during start (" in after
    assert after.splitlines()[-1] == "vms: error: interrupted"
    assert "vms: deleted vms-" in after or "vms: stopped and deleted vms-" in after
    assert "Traceback" not in after
    assert leftover_vms(env) == []


def wait_for_file(path: Path, process: subprocess.Popen[str]) -> None:
    """Until ``path`` exists; fails if ``process`` exits first (no fixed sleep decides)."""
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        assert process.poll() is None, "vms exited before the guest command started"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_or_sighup_during_the_command_cleans_up(
    env: dict[str, str], spawn: list[subprocess.Popen[str]], tmp_path: Path, signum: signal.Signals
) -> None:
    # SIGHUP: the terminal or the SSH session closed; the VM must not be left behind.
    ready = tmp_path / "guest-started"
    marker = f"{os.getpid()}.5"  # a sleep no other process runs, to look for afterwards
    script = f'touch "{ready}"; exec sleep {marker}'
    process = start_vms(spawn, env, "run", "--", "sh", "-c", script)
    # Signal once the guest command runs: "during the command", not during its spawning.
    wait_for_file(ready, process)
    process.send_signal(signum)
    _, after = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, after
    assert "vms: interrupted during the command (" in after
    assert "vms: stopped and deleted vms-" in after
    assert after.splitlines()[-1] == f"vms: error: interrupted by {signum.name}"
    assert leftover_vms(env) == []
    assert processes_mentioning(f"sleep {marker}") == []


def test_a_timeout_cleans_up_and_exits_124(env: dict[str, str]) -> None:
    marker = f"{os.getpid()}.25"
    result = vms(env, "run", "--timeout", "1", "--", "sleep", marker)
    assert result.returncode == 124, result.stderr
    assert "vms: timed out during the command (" in result.stderr
    assert error_lines(result.stderr) == ["vms: error: --timeout 1s ran out during the command"]
    assert leftover_vms(env) == []
    assert processes_mentioning(f"sleep {marker}") == []


def test_keep_on_the_in_process_fake_keeps_the_vm_stopped(env: dict[str, str]) -> None:
    result = vms(env, "run", "--keep", "--name", "vms-kept", "--", "true")
    assert result.returncode == 0, result.stderr
    assert "kept vms-kept stopped: backend fake runs VMs inside this process" in result.stderr
    listed = json.loads(vms(env, "list", "--backend", "fake", "--json").stdout)
    assert [(vm["name"], vm["state"]) for vm in listed] == [("vms-kept", "Stopped")]
    removed = vms(env, "delete", "--backend", "fake", "vms-kept")
    assert (removed.returncode, removed.stdout) == (0, "deleted vms-kept\n")
    assert leftover_vms(env) == []


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(f"{entry}: {cmdline.decode(errors='replace')}")
    return found


def test_keep_over_the_fake_tart_executable_leaves_it_running(
    env: dict[str, str], tmp_path: Path
) -> None:
    # The tart backend driving the fake-tart executable: its `run` is a real process.
    config = tmp_path / "tart.toml"
    config.write_text('backend = "tart"\n[tart]\nbinary = "fake-tart"\n')
    name = f"vms-keep-{os.getpid()}"
    try:
        result = vms(env, "run", "--config", str(config), "--keep", "--name", name, "--", "true")
        assert result.returncode == 0, result.stderr
        assert f"kept {name} running at " in result.stderr
        # After vms exited, another vms sees it running, and the printed command removes it.
        listed = json.loads(vms(env, "list", "--config", str(config), "--json").stdout)
        assert [(vm["name"], vm["state"]) for vm in listed] == [(name, "Running")]
        hint = shlex.split(result.stderr.split("remove it with: ")[1].splitlines()[0])
        assert hint == ["vms", "delete", "--config", str(config), name]
        removed = vms(env, *hint[1:])
        assert (removed.returncode, removed.stdout) == (0, f"deleted {name}\n"), removed.stderr
    finally:
        vms(env, "delete", "--config", str(config), "--prefix", name)
    assert processes_mentioning(name) == []


@pytest.mark.qemu
@pytest.mark.skipif(
    shutil.which("qemu-system-x86_64") is None or shutil.which("qemu-img") is None,
    reason="qemu-system-x86_64/qemu-img not installed",
)
def test_the_same_words_drive_a_real_qemu_vm(
    env: dict[str, str], spawn: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    state = tmp_path / "qemu-state"
    config = tmp_path / "qemu.toml"
    config.write_text(f'backend = "qemu"\n[qemu]\nstate_dir = "{state}"\n')
    # The first run (boot, exec, cleanup), then a Ctrl-C during the second one's start.
    result = vms(env, "run", "--config", str(config), "--", "uname", "-s")
    assert (result.returncode, result.stdout) == (0, "Linux\n"), result.stderr
    process = start_vms(spawn, env, "run", "--config", str(config), "--", "true")
    read_until(process, "vms: Starting ")
    process.send_signal(signal.SIGINT)
    _, after = process.communicate(timeout=TIMEOUT)
    # A boot can win the race against the signal; either way nothing may be left.
    assert process.returncode in (0, 130), after
    if process.returncode == 130:
        assert "vms: interrupted during start (" in after
    assert json.loads(vms(env, "list", "--config", str(config), "--json").stdout) == []
    assert processes_mentioning(str(state)) == []


def fake_tart_config(tmp_path: Path) -> Path:
    """The tart backend driving the fake-tart executable (real processes, faults read each time)."""
    config = tmp_path / "ft.toml"
    config.write_text('backend = "tart"\n[tart]\nbinary = "fake-tart"\n')
    return config


def test_ctrl_c_during_delete_keeps_the_report_of_what_was_deleted(
    env: dict[str, str], spawn: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    from vms_fake.faults import FaultPlan

    config = fake_tart_config(tmp_path)
    for name in ("vms-a", "vms-b", "vms-c"):
        cloned = subprocess.run(
            [str(BIN / "fake-tart"), "clone", "ghcr.io/cirruslabs/macos-sequoia-base:latest", name],
            env=env, capture_output=True, timeout=TIMEOUT, check=False,
        )  # fmt: skip
        assert cloned.returncode == 0, cloned.stderr
    # A bounded hang: if this test fails, the fake-tart it leaves ends on its own.
    plan = FaultPlan.for_home(env["TART_HOME"]).hang_command("delete", vm="vms-b", seconds=TIMEOUT)
    report = tmp_path / "deleted.out"
    with report.open("w") as out:  # not a terminal: lines must be flushed as they go
        process = subprocess.Popen(
            [*VMS, "delete", "--config", str(config), "--prefix", "vms-"],
            env=env, stdout=out, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        spawn.append(process)
        deadline = time.monotonic() + TIMEOUT
        while report.read_text() != "deleted vms-a\n":
            assert process.poll() is None, "vms delete exited before deleting vms-a"
            assert time.monotonic() < deadline, "deleted vms-a never reached the file"
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, err
    assert report.read_text() == "deleted vms-a\n"
    assert "vms: interrupted: deleted vms-a; not deleted: vms-b, vms-c" in err
    plan.clear()
    assert sorted(leftover_vms(env)) == ["vms-b", "vms-c"]


def test_a_reader_that_goes_away_ends_the_run_with_141_and_cleans_up(
    env: dict[str, str], spawn: list[subprocess.Popen[str]]
) -> None:
    # `vms run -- seq 1 1000000 | head -1`: far more output than a pipe holds.
    process = start_vms(spawn, env, "run", "--", "seq", "1", "1000000")
    assert process.stdout is not None
    assert process.stdout.readline() == "1\n"
    process.stdout.close()  # as head does after its line
    assert process.stderr is not None
    err = process.stderr.read()
    assert process.wait(timeout=TIMEOUT) == 141, err
    assert error_lines(err) == []
    assert "vms: stdout closed during the command (" in err
    assert "deleted vms-" in err
    assert leftover_vms(env) == []


LINUX_IMAGE = "ghcr.io/cirruslabs/ubuntu:latest"


def test_a_linux_image_runs_with_os_linux(env: dict[str, str]) -> None:
    result = vms(env, "run", "--os", "linux", "--image", LINUX_IMAGE, "--", "echo", "hi")
    assert (result.returncode, result.stdout) == (0, "hi\n"), result.stderr
    assert leftover_vms(env) == []


def test_a_linux_image_without_os_linux_is_one_line_that_says_what_to_do(
    env: dict[str, str],
) -> None:
    result = vms(env, "run", "--image", LINUX_IMAGE, "--", "uname", "-s")
    assert result.returncode == 5, result.stderr
    # Every line is ours (the tool's usage text is not dumped), and one of them is the error.
    assert all(line.startswith("vms: ") for line in result.stderr.splitlines()), result.stderr
    [line] = error_lines(result.stderr)
    assert "--os linux" in line
    assert leftover_vms(env) == []


def test_guest_output_bytes_pass_through_unchanged(env: dict[str, str]) -> None:
    """Non-UTF-8 guest output reaches our stdout and stderr byte for byte."""
    done = subprocess.run(
        [*VMS, "-q", "run", "--", "sh", "-c", r"printf '\377\376ok\n'; printf '\377x' >&2"],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"\xff\xfeok\n"
    assert done.stderr == b"\xffx"


def test_os_for_a_backend_without_that_option_is_a_usage_error(env: dict[str, str]) -> None:
    """Regression: the error blamed an unknown config option instead of the --os flag."""
    result = vms(env, "run", "--backend", "qemu", "--os", "linux", "--", "true")
    assert result.returncode == 2
    assert "--os does not apply to backend 'qemu'" in result.stderr
