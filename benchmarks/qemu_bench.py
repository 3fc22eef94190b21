"""QEMU start-to-ready through the ``qemu`` backend, against QEMU started by hand.

The library side is ``start()`` of a cloned instance: it returns when the guest
agent answers. The bare side runs the very argv the backend used (read back from
``/proc/<pid>/cmdline``, so kernel, initrd, accelerator and devices are the same),
with only the serial console moved from a file to a pipe, and stops the clock at
the guest's first ``GUEST-READY`` line (printed once its agent is started).
The pairs alternate which boots first.

Boot time varies far more between boots than the library costs (TCG on busy cores),
so each library boot is also compared with itself: a thread notes when the ready
line lands in the VM's serial log, and ``details`` report how long after it
``start()`` returned (``library_lag_after_ready_line_ms``, ``same_boot_ratio``).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from report import Metric, interleaved, median_of_ratios, skipped

from vms_core.errors import VMError
from vms_core.instance import Instance
from vms_core.lifecycle import cleanup
from vms_core.plugins import load_backend

NAME = "qemu_start_ratio"
TARGET = 1.10
READY_MARKER = b"GUEST-READY"
#: A boot that takes longer than this is a failure, not a figure (TCG boots take ~5 s).
BOOT_LIMIT_SECONDS = 120.0


#: How often the serial log is looked at for the ready line during a library boot.
SERIAL_WATCH_INTERVAL = 0.005
#: How long after start() returns the ready line may still come (it can trail the agent).
READY_LINE_GRACE_SECONDS = 5.0


class ReadyLineWatch:
    """Notes when a new ``GUEST-READY`` line lands in a serial log.

    QEMU's file chardev truncates the log when it starts (an appending one would not),
    so only bytes past what was there before count, and all of them once the file was
    seen replaced or cut (which is long before the guest prints anything).
    """

    def __init__(self, serial_log: Path) -> None:
        self._log = serial_log
        self._identity, self._offset = self._stat()
        self.seen_at: float | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ready-line-watch", daemon=True)
        self._thread.start()

    def _stat(self) -> tuple[int | None, int]:
        try:
            status = self._log.stat()
        except FileNotFoundError:
            return None, 0
        return status.st_ino, status.st_size

    def _new_output(self) -> bytes:
        identity, size = self._stat()
        if identity is None:
            return b""
        if identity != self._identity or size < self._offset:
            self._identity, self._offset = identity, 0  # a fresh log: all of it is new
        with self._log.open("rb") as log:
            log.seek(self._offset)
            return log.read()

    def _watch(self) -> None:
        while not self._done.is_set():
            if READY_MARKER in self._new_output():
                self.seen_at = time.perf_counter()
                return
            self._done.wait(SERIAL_WATCH_INTERVAL)

    def finish(self) -> float | None:
        """The time the line was seen (waiting a little if it trails), else None."""
        self._thread.join(READY_LINE_GRACE_SECONDS)
        self._done.set()
        self._thread.join()
        return self.seen_at


def _library_start(vm: Instance, serial_log: Path, same_boot: list[tuple[float, float]]) -> float:
    """Seconds of ``start()``; also (start-to-ready, start-to-ready-line) of this boot."""
    watch = ReadyLineWatch(serial_log)
    started = time.perf_counter()
    vm.start(timeout=BOOT_LIMIT_SECONDS)
    ready = time.perf_counter()
    line_seen = watch.finish()
    if line_seen is not None:
        same_boot.append((ready - started, line_seen - started))
    vm.stop()
    return ready - started


def _backend_argv(vm: Instance) -> list[str]:
    """The argv of the QEMU the backend is running for ``vm``."""
    pid = vm.properties().extras["pid"]
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        return [arg.decode() for arg in cmdline.read().split(b"\0") if arg]


def bare_argv(backend_argv: list[str]) -> list[str]:
    """The backend's argv with the serial console on stdout instead of its log file."""
    argv = list(backend_argv)
    for index, arg in enumerate(argv):
        if arg.startswith("file,id=serial0,"):
            argv[index] = "stdio,id=serial0,signal=off"
            return argv
    raise ValueError("the backend's QEMU command line has no serial0 file chardev")


def _bare_start(argv: list[str]) -> float:
    started = time.perf_counter()
    qemu = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert qemu.stdout is not None
        seen = b""
        with selectors.DefaultSelector() as selector:
            selector.register(qemu.stdout, selectors.EVENT_READ)
            while READY_MARKER not in seen:
                left = started + BOOT_LIMIT_SECONDS - time.perf_counter()
                if left <= 0 or not selector.select(left):
                    raise TimeoutError(f"no {READY_MARKER!r} within {BOOT_LIMIT_SECONDS}s")
                chunk = os.read(qemu.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError(f"QEMU exited ({qemu.wait()}) before the guest was ready")
                seen = seen[-len(READY_MARKER) :] + chunk
        return time.perf_counter() - started
    finally:
        with contextlib.suppress(ProcessLookupError):
            qemu.send_signal(signal.SIGKILL)
        qemu.wait()
        if qemu.stdout is not None:
            qemu.stdout.close()


def measure(rounds: int) -> list[Metric]:
    """``qemu_start_ratio``, or a skip naming what is missing."""
    if shutil.which("qemu-system-x86_64") is None:
        return [skipped(NAME, TARGET, "qemu-system-x86_64 is not installed")]
    state_dir = tempfile.mkdtemp(prefix="vms-bench-qemu-")
    vm: Instance | None = None
    try:
        backend = load_backend("qemu", state_dir=state_dir)
        availability = backend.availability()
        if not availability.available:
            return [skipped(NAME, TARGET, f"qemu backend unavailable: {availability.reason}")]
        vm = backend.create_instance()
        try:
            vm.clone()  # builds the default guest on first use
            vm.start(timeout=BOOT_LIMIT_SECONDS)
            argv = bare_argv(_backend_argv(vm))
            extras = vm.properties().extras
            accelerator = extras.get("accelerator")
            serial_log = Path(extras["serial_log"])
            vm.stop()
        except (VMError, OSError, ValueError, KeyError) as err:
            return [skipped(NAME, TARGET, f"the default guest cannot boot: {err}")]
        instance = vm
        same_boot: list[tuple[float, float]] = []
        pairs = interleaved(
            lambda: _library_start(instance, serial_log, same_boot),
            lambda: _bare_start(argv),
            rounds,
        )
    finally:
        if vm is not None:
            cleanup(vm)
        shutil.rmtree(state_dir, ignore_errors=True)
    details: dict[str, Any] = {
        "boots_each": rounds,
        "accelerator": accelerator,
        "library_s_median": round(statistics.median(p[0] for p in pairs), 3),
        "bare_s_median": round(statistics.median(p[1] for p in pairs), 3),
        "ratios": [round(a / b, 3) for a, b in pairs],
        # Within each library boot: start() returning minus the guest's ready line landing
        # in the serial log. Free of boot-to-boot noise (which dominates the ratio above
        # on a busy machine); negative when the agent answered before the line came.
        "library_lag_after_ready_line_ms": [round((a - b) * 1000.0, 1) for a, b in same_boot],
        "same_boot_ratio": round(median_of_ratios(same_boot), 4) if same_boot else None,
    }
    return [Metric(NAME, round(median_of_ratios(pairs), 3), TARGET, details=details)]
