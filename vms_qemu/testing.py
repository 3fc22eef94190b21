"""Hooks for running the vms_core testing kit (conformance, state machine) against QEMU."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

from vms_core.errors import VMError
from vms_core.states import Action
from vms_core.testing.harness import DIE, Harness
from vms_qemu.backend import QemuBackend
from vms_qemu.process import wait_until_ended
from vms_qemu.vmdir import VMDirectory


class QemuFaults:
    """Crashes a VM's QEMU (SIGKILL); the only fault a real QEMU can be given on cue."""

    def __init__(self, backend: QemuBackend) -> None:
        self._backend = backend

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset({DIE})

    def kill_vm(self, name: str) -> None:
        vmdir = VMDirectory(self._backend.options.state_path, name)
        pid = vmdir.running_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        if not wait_until_ended(pid, timeout=30):
            raise VMError(f"QEMU pid {pid} of {name} survived SIGKILL")

    def fail_next(self, name: str, action: Action) -> None:
        raise NotImplementedError("QemuFaults only supports DIE")

    def delay(self, name: str, seconds: float) -> None:
        raise NotImplementedError("QemuFaults only supports DIE")

    def clear(self, name: str) -> None:
        """Nothing stays armed: a kill happens at once."""


def qemu_harness(state_dir: str | os.PathLike[str] | None = None, **options: Any) -> Harness:
    """A harness around a fresh ``QemuBackend`` in its own state directory.

    Without ``state_dir`` a temporary one is made and removed by ``Harness.close``.
    """
    owned = state_dir is None
    directory = (
        Path(state_dir) if state_dir is not None else Path(tempfile.mkdtemp(prefix="vms-qemu-kit-"))
    )
    backend = QemuBackend(state_dir=directory, **options)

    def close() -> None:
        if owned:
            shutil.rmtree(directory, ignore_errors=True)

    return Harness(backend=backend, faults=QemuFaults(backend), close=close)
