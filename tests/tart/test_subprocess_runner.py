"""SubprocessRunner with real processes (``sh`` stands in for the tart binary)."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vms_core import BackendUnavailableError, OperationTimeoutError
from vms_tart.errors import SpawnError
from vms_tart.subprocess_runner import OUTPUT_TAIL_BYTES, SubprocessRunner

pytestmark = pytest.mark.timeout(60)


def gone(pid: int) -> bool:
    """True when ``pid`` no longer exists at all: dead and reaped (no zombie)."""
    return not Path(f"/proc/{pid}").exists()


def dead(pid: int) -> bool:
    """True when ``pid`` is not running (a zombie left to init counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


def test_run_captures_output_exit_code_and_tees_live() -> None:
    runner = SubprocessRunner("sh")
    tee_out, tee_err = io.StringIO(), io.StringIO()
    result = runner.run(["-c", "echo out; echo err >&2; exit 3"], stdout=tee_out, stderr=tee_err)
    assert result.argv == ("sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert tee_out.getvalue() == "out\n" and tee_err.getvalue() == "err\n"


def test_run_feeds_stdin_and_otherwise_gives_devnull() -> None:
    runner = SubprocessRunner("sh")
    assert runner.run(["-c", "cat"], stdin="hello").stdout == "hello"
    assert runner.run(["-c", "cat"]).stdout == ""  # no inherited terminal to block on


def test_environment_additions_reach_the_command(tmp_path: Path) -> None:
    runner = SubprocessRunner("sh", env={"TART_HOME": str(tmp_path)})
    assert runner.run(["-c", "echo $TART_HOME"]).stdout.strip() == str(tmp_path)


def test_missing_binary_is_unavailable_and_names_it() -> None:
    runner = SubprocessRunner("no-such-tart-binary")
    availability = runner.availability()
    assert not availability and "no-such-tart-binary" in availability.reason
    with pytest.raises(BackendUnavailableError, match="no-such-tart-binary"):
        runner.run(["list"])
    with pytest.raises(BackendUnavailableError, match="no-such-tart-binary"):
        runner.spawn(["run", "vm"])


def test_path_binary_availability(tmp_path: Path) -> None:
    script = tmp_path / "tart"
    script.write_text("#!/bin/sh\n")
    assert not SubprocessRunner(str(script)).availability()
    script.chmod(0o755)
    assert SubprocessRunner(str(script)).availability()


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    runner = SubprocessRunner("sh")
    with pytest.raises(OperationTimeoutError, match="did not finish"):
        runner.run(["-c", f"sleep 60 & echo $! > {pid_file}; wait"], timeout=0.5)
    grandchild = int(pid_file.read_text())
    # The grandchild was SIGKILLed with its group; init reaps it.
    for _ in range(200):
        if dead(grandchild):
            break
        subprocess.run(["true"], check=True)
    assert dead(grandchild)


def test_spawn_keeps_a_bounded_tail_and_reaps_the_child() -> None:
    runner = SubprocessRunner("sh", kill_on_exit=False)
    # One pipe keeps order: stdout and stderr are drained by separate threads, so which
    # of the two lands last in the combined tail is not defined.
    process = runner.spawn(["-c", "head -c 5000 /dev/zero | tr '\\0' x; echo END; exit 7"])
    assert process.wait(30) == 7
    assert process.poll() == 7
    tail = process.output_tail()
    assert len(tail) <= OUTPUT_TAIL_BYTES and tail.endswith("xEND\n")
    assert process.pid is not None and gone(process.pid)  # no zombie
    complaining = runner.spawn(["-c", "echo 'VM limit reached' >&2; exit 1"])
    assert complaining.wait(30) == 1
    assert complaining.output_tail() == "VM limit reached\n"


def test_spawned_process_signals_and_event_driven_wait() -> None:
    runner = SubprocessRunner("sh", kill_on_exit=False)
    process = runner.spawn(["-c", "trap 'exit 0' INT; while :; do sleep 0.05; done"])
    stubborn = runner.spawn(["-c", "trap '' INT; sleep 60"])
    try:
        assert process.wait(0.01) is None and process.poll() is None
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
        process.send_signal(signal.SIGINT)  # after exit: not an error
        stubborn.kill()
        assert stubborn.poll() == -signal.SIGKILL
        assert stubborn.pid is not None and gone(stubborn.pid)
    finally:  # kill_on_exit is off here: a failed assertion must not leave them running
        process.kill()
        stubborn.kill()


def test_children_are_stopped_when_python_exits(tmp_path: Path) -> None:
    program = textwrap.dedent(
        """
        from vms_tart.subprocess_runner import SubprocessRunner
        process = SubprocessRunner("sleep").spawn(["60"])
        print(process.pid, flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=True
    )
    pid = int(done.stdout.strip())
    for _ in range(200):
        if dead(pid):
            break
        subprocess.run(["true"], check=True)
    assert dead(pid)
    assert "stopping sleep 60 at interpreter exit" in done.stderr


def test_a_grandchild_holding_the_pipes_neither_blocks_nor_survives(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    runner = SubprocessRunner("sh")
    result = runner.run(["-c", f"sleep 60 & echo $! > {pid_file}; echo done"], timeout=30)
    assert (result.exit_code, result.stdout) == (0, "done\n")
    grandchild = int(pid_file.read_text())
    for _ in range(200):
        if dead(grandchild):
            break
        subprocess.run(["true"], check=True)
    assert dead(grandchild)


def test_non_utf8_output_keeps_its_bytes_live_and_captured() -> None:
    runner = SubprocessRunner("sh")
    tee = io.StringIO()
    # A two-byte character split across two writes, then bytes that are not UTF-8.
    script = r"printf '\303'; sleep 0.1; printf '\251\377\376abc\n'; printf '\377x' >&2"
    result = runner.run(["-c", script], stdout=tee)
    raw = b"\xc3\xa9\xff\xfeabc\n"
    assert result.stdout.encode("utf-8", "surrogateescape") == raw
    assert result.stderr.encode("utf-8", "surrogateescape") == b"\xffx"
    assert tee.getvalue() == result.stdout


def test_bytes_given_as_input_reach_the_command_unchanged() -> None:
    runner = SubprocessRunner("sh")
    stdin = b"\xff\xfe\x00abc".decode("utf-8", "surrogateescape")
    result = runner.run(["-c", "od -An -tx1"], stdin=stdin)
    assert result.stdout.split() == ["ff", "fe", "00", "61", "62", "63"]


def test_commands_the_host_cannot_start_are_typed_errors() -> None:
    runner = SubprocessRunner("sh")
    with pytest.raises(SpawnError, match="Argument list too long"):
        runner.run(["-c", "true", "x" * 200_000])
    with pytest.raises(SpawnError, match="null"):
        runner.run(["-c", "true", "a\0b"])
