from __future__ import annotations

import signal
from pathlib import Path

import pytest

from vms_fake.inprocess import InProcessRunner
from vms_tart.recording import RecordingRunner
from vms_tart.runner import TartRunner

MACOS = "ghcr.io/cirruslabs/macos-sequoia-base:latest"


def test_records_every_command_in_order_and_finds_runs(tmp_path: Path) -> None:
    recorder = RecordingRunner(InProcessRunner(tmp_path))
    assert isinstance(recorder, TartRunner)
    recorder.run(["clone", MACOS, "vm"])
    run = recorder.spawn(["run", "vm", "--no-graphics"])
    assert recorder.run(["exec", "vm", "echo", "hi"]).stdout == "hi\n"
    run.send_signal(signal.SIGINT)
    assert run.wait(10) == 0
    assert recorder.subcommands() == ["clone", "run", "exec"]
    assert recorder.calls[1] == ("run", "vm", "--no-graphics")
    assert recorder.count == 3
    assert recorder.latest_run("vm") is run
    assert recorder.latest_run("other") is None


def test_before_hook_sees_each_command_first_and_may_stop_it(tmp_path: Path) -> None:
    def refuse_delete(call: tuple[str, ...]) -> None:
        if call[0] == "delete":
            raise KeyboardInterrupt

    inner = InProcessRunner(tmp_path)
    recorder = RecordingRunner(inner, before=refuse_delete)
    recorder.run(["clone", MACOS, "vm"])
    with pytest.raises(KeyboardInterrupt):
        recorder.run(["delete", "vm"])
    assert inner.run(["list", "-q"]).stdout.split()[0] == "vm"  # the delete never ran
