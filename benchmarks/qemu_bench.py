"""QEMU start-to-ready through the ``qemu`` backend, against QEMU started by hand.

The library side is ``start()`` of a cloned instance: it returns when the guest
agent answers. The bare side runs the very argv the backend used (read back from
``/proc/<pid>/cmdline``, so kernel, initrd, accelerator and devices are the same),
with only the serial console moved from a file to a pipe, and stops the clock at
the guest's first ``GUEST-READY`` line (printed once its agent is started).
The pairs alternate which boots first.
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
import time
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


def _library_start(vm: Instance) -> float:
    started = time.perf_counter()
    vm.start(timeout=BOOT_LIMIT_SECONDS)
    elapsed = time.perf_counter() - started
    vm.stop()
    return elapsed


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
            accelerator = vm.properties().extras.get("accelerator")
            vm.stop()
        except (VMError, OSError, ValueError) as err:
            return [skipped(NAME, TARGET, f"the default guest cannot boot: {err}")]
        instance = vm
        pairs = interleaved(lambda: _library_start(instance), lambda: _bare_start(argv), rounds)
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
    }
    return [Metric(NAME, round(median_of_ratios(pairs), 3), TARGET, details=details)]
