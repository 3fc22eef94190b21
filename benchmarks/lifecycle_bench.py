"""The tart backend's lifecycle over the ``fake-tart`` executable, against a bare script.

Both sides run clone, start, one exec, stop and delete of a VM in the same
``TART_HOME``, alternately. The bare side is what a careful hand-written script
does with ``subprocess``: clone; spawn ``run``; ``list`` until the VM is running;
``exec echo`` until the guest answers; the user's ``exec``; ``stop``; wait for
``run`` to exit; ``delete``. It retries ``list`` and ``exec`` after a short pause
only while tart is not there yet, so it is as fast as polling can be.

The library side goes through :class:`vms_tart.backend.TartBackend` with its
default options and a recording runner that counts the tart commands it issues.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from report import Metric, interleaved, median_of_ratios

from vms_core.lifecycle import cleanup
from vms_tart.backend import TartBackend
from vms_tart.config import DEFAULT_MACOS_RUN_OPTIONS, DEFAULT_SOURCE
from vms_tart.recording import RecordingRunner

#: The fewest tart commands a lifecycle can take (see the module docstring).
MINIMUM_INVOCATIONS = 7
#: The bare script's pause before asking tart again (list, readiness exec).
BARE_RETRY_PAUSE = 0.02
#: How long the bare script waits for running and readiness before it gives up.
BARE_WAIT_LIMIT = 60.0
PHASES = ("clone", "start", "exec", "stop", "delete")


class Phases:
    """Wall time of each named phase of one lifecycle."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()
        self._first = self._last

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = now - self._last
        self._last = now

    @property
    def total(self) -> float:
        return self._last - self._first


class LifecycleBench:
    """One ``TART_HOME`` with the source image already pulled, shared by both sides."""

    def __init__(self, binary: str, source: str = DEFAULT_SOURCE) -> None:
        self.binary = binary
        self.source = source
        self.home = Path(tempfile.mkdtemp(prefix="vms-bench-tart-"))
        self.env = {**os.environ, "TART_HOME": str(self.home)}
        self._serial = 0
        # Both sides then clone from the local OCI cache, as a warm machine would.
        try:
            self._tart("pull", source, check=True)
        except BaseException:
            self.close()
            raise
        self.library_phases: list[dict[str, float]] = []
        self.bare_phases: list[dict[str, float]] = []
        self.library_commands: list[list[tuple[str, ...]]] = []
        self.bare_command_counts: list[int] = []

    def close(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)

    def _name(self, side: str) -> str:
        self._serial += 1
        return f"bench-{side}-{self._serial}"

    def _tart(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{self.binary} {' '.join(args)} failed: {result.stderr}")
        return result

    # -- the library -------------------------------------------------------------------

    def library(self) -> float:
        backend = TartBackend(binary=self.binary, home=str(self.home))
        recorder = RecordingRunner(backend.runner)
        backend.runner = recorder
        vm = backend.create_instance(self._name("lib"), self.source)
        try:
            phases = Phases()
            vm.clone()
            phases.mark("clone")
            vm.start()
            phases.mark("start")
            vm.exec("echo", "hello", check=True)
            phases.mark("exec")
            vm.stop()
            phases.mark("stop")
            vm.delete()
            phases.mark("delete")
        finally:
            cleanup(vm)
        self.library_phases.append(phases.seconds)
        self.library_commands.append(recorder.calls)
        return phases.total

    # -- the bare script ---------------------------------------------------------------

    def bare(self) -> float:
        name = self._name("bare")
        issued = 0

        def tart(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            nonlocal issued
            issued += 1
            return self._tart(*args, check=check)

        def until(ok: Callable[[], bool], what: str) -> None:
            deadline = time.monotonic() + BARE_WAIT_LIMIT
            while not ok():
                if run.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"bare script: {name} never {what} (run: {run.poll()})")
                time.sleep(BARE_RETRY_PAUSE)

        def running() -> bool:
            listed = json.loads(tart("list", "--source", "local", "--format", "json").stdout)
            return any(e["Name"] == name and e["State"] == "running" for e in listed)

        phases = Phases()
        tart("clone", self.source, name)
        phases.mark("clone")
        issued += 1  # the run below
        run = subprocess.Popen(
            [self.binary, "run", name, *DEFAULT_MACOS_RUN_OPTIONS],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            until(running, "listed as running")
            until(
                lambda: tart("exec", name, "echo", "ready", check=False).returncode == 0,
                "answered exec",
            )
            phases.mark("start")
            tart("exec", name, "echo", "hello")
            phases.mark("exec")
            tart("stop", name, "--timeout", "30")
            run.wait(timeout=60)
            phases.mark("stop")
            tart("delete", name)
            phases.mark("delete")
        finally:
            if run.poll() is None:
                run.send_signal(signal.SIGKILL)
                run.wait()
        self.bare_phases.append(phases.seconds)
        self.bare_command_counts.append(issued)
        return phases.total


def _phase_medians(samples: list[dict[str, float]]) -> dict[str, float]:
    return {
        phase: round(statistics.median(s[phase] for s in samples) * 1000.0, 1) for phase in PHASES
    }


def fake_tart_binary() -> str | None:
    """The ``fake-tart`` next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("fake-tart")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("fake-tart")


def measure(rounds: int) -> list[Metric]:
    """``lifecycle_overhead_ratio`` and ``tart_invocations_per_lifecycle``."""
    binary = fake_tart_binary()
    if binary is None:
        reason = "the fake-tart executable is not installed"
        return [
            Metric("lifecycle_overhead_ratio", None, 1.15, reason=reason),
            Metric("tart_invocations_per_lifecycle", None, MINIMUM_INVOCATIONS, reason=reason),
        ]
    bench = LifecycleBench(binary)
    try:
        bench.library()  # warm-up: page cache, first imports of the run path
        bench.bare()
        bench.library_phases.clear()
        bench.bare_phases.clear()
        bench.library_commands.clear()
        bench.bare_command_counts.clear()
        pairs = interleaved(bench.library, bench.bare, rounds)
    finally:
        bench.close()
    ratio = median_of_ratios(pairs)
    library_phases = _phase_medians(bench.library_phases)
    bare_phases = _phase_medians(bench.bare_phases)
    details: dict[str, Any] = {
        "rounds": rounds,
        "library_ms_median": round(statistics.median(p[0] for p in pairs) * 1000.0, 1),
        "bare_ms_median": round(statistics.median(p[1] for p in pairs) * 1000.0, 1),
        "phase_ms_median": {"library": library_phases, "bare": bare_phases},
        "bare_commands_median": statistics.median(bench.bare_command_counts),
        "ratios": [round(a / b, 3) for a, b in pairs],
    }
    counts = [len(commands) for commands in bench.library_commands]
    sequence = [" ".join(args[:1]) for args in bench.library_commands[-1]]
    return [
        Metric("lifecycle_overhead_ratio", round(ratio, 3), 1.15, details=details),
        Metric(
            "tart_invocations_per_lifecycle",
            statistics.median(counts),
            MINIMUM_INVOCATIONS,
            details={"per_round": counts, "max": max(counts), "sequence": sequence},
        ),
    ]
