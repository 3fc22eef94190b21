"""One driver for the simulator's two modes: the ``fake-tart`` executable and in-process."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from vms_fake.faults import FaultPlan
from vms_fake.inprocess import InProcessRun, InProcessRunner
from vms_fake.locks import lock_holder

FAKE_TART = shutil.which("fake-tart", path=os.path.dirname(sys.executable)) or "fake-tart"
MACOS = "ghcr.io/cirruslabs/macos-sequoia-base:latest"
VANILLA = "ghcr.io/cirruslabs/macos-sequoia-vanilla:latest"
UBUNTU = "ghcr.io/cirruslabs/ubuntu:latest"


@dataclasses.dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: str
    stderr: str


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` (a state other processes change) until true; fail after timeout."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


class RunHandle:
    """A ``run`` in either mode: signal it, wait for it, read what it printed."""

    def __init__(self, process: subprocess.Popen[bytes] | InProcessRun) -> None:
        self.process = process
        self._output: tuple[str, str] | None = None
        self._read = ""  # stdout already consumed by read_line()

    def read_line(self) -> str:
        """The next line the run prints on stdout (blocks for the executable)."""
        if isinstance(self.process, InProcessRun):
            line = self.process.stdout[len(self._read) :].partition("\n")
            text = line[0] + line[1]
        else:
            assert self.process.stdout is not None
            text = self.process.stdout.readline().decode()
        self._read += text
        return text

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 10.0) -> int:
        if isinstance(self.process, InProcessRun):
            status = self.process.wait(timeout)
            assert status is not None, "in-process run did not end"
            return status
        out, err = self.process.communicate(timeout=timeout)
        self._output = (self._read + out.decode(), err.decode())
        return self.process.returncode

    def poll(self) -> int | None:
        return self.process.poll()

    @property
    def stdout(self) -> str:
        if isinstance(self.process, InProcessRun):
            return self.process.stdout
        assert self._output is not None, "wait() first"
        return self._output[0]

    @property
    def stderr(self) -> str:
        if isinstance(self.process, InProcessRun):
            return self.process.stderr
        assert self._output is not None, "wait() first"
        return self._output[1]


class Tart:
    """``tart(*args)`` runs one command; ``spawn("run", ...)`` starts a VM."""

    def __init__(self, mode: str, home: Path, plan: FaultPlan, tmp: Path) -> None:
        self.mode = mode
        self.home = home
        self.plan = plan
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "TART_HOME": str(home),
            "HOME": str(tmp),
        }
        self.runner = InProcessRunner(home, plan=plan) if mode == "in-process" else None
        self.runs: list[RunHandle] = []

    @property
    def executable(self) -> bool:
        return self.runner is None

    def __call__(self, *args: str, stdin: str = "", timeout: float = 30.0) -> Result:
        if self.runner is not None:
            result = self.runner.run(list(args), stdin=stdin, timeout=timeout)
            return Result(result.exit_code, result.stdout, result.stderr)
        completed = subprocess.run(
            [FAKE_TART, *args],
            input=stdin.encode(),
            capture_output=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        return Result(completed.returncode, completed.stdout.decode(), completed.stderr.decode())

    def spawn(self, *args: str, wait_for_lock: bool = True) -> RunHandle:
        """Start ``args`` (``run <name> ...``); by default return once the VM is running."""
        if self.runner is not None:
            handle = RunHandle(self.runner.spawn(list(args)))
        else:
            process = subprocess.Popen(
                [FAKE_TART, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
            )
            handle = RunHandle(process)
            if wait_for_lock:
                config = self.home / "vms" / args[1] / "config.json"
                wait_until(lambda: lock_holder(config) is not None or process.poll() is not None)
        self.runs.append(handle)
        return handle

    def clone(self, image: str, name: str) -> None:
        assert self("clone", image, name).exit_code == 0

    def state(self, name: str) -> str:
        result = self("get", name, "--format", "json")
        assert result.exit_code == 0, result
        return result.stdout.split('"State" : "')[1].split('"')[0]

    def cleanup(self) -> None:
        for handle in self.runs:
            if handle.poll() is None:
                handle.signal(signal.SIGKILL)
                handle.wait()
