"""Shared fixtures for tests that boot real QEMU guests (marked ``qemu``)."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from vms_qemu.guest import GuestFiles, ensure_guest

QEMU_MISSING = shutil.which("qemu-system-x86_64") is None or shutil.which("qemu-img") is None
requires_qemu = pytest.mark.skipif(
    QEMU_MISSING,
    reason="qemu-system-x86_64/qemu-img not installed "
    "(apt-get install --no-install-recommends qemu-system-x86 qemu-utils busybox-static)",
)


def qemu_processes_under(path: Path) -> list[int]:
    """Pids of live (non-zombie) QEMU processes whose command line contains ``path``."""
    needle = str(path).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if (
                b"qemu-system" in cmdline
                and needle in cmdline
                and " Z " not in (proc / "stat").read_text().rpartition(")")[2][:3]
            ):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="session")
def default_guest() -> GuestFiles:
    """The per-user cached default guest (built here on first use, ~5 s)."""
    if QEMU_MISSING:
        pytest.skip("qemu not installed")
    return ensure_guest()


@pytest.fixture(scope="module")
def vm_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A state directory that must be empty, with no QEMU using it, when the module ends."""
    directory = tmp_path_factory.mktemp("vms-qemu-state")
    yield directory
    leftovers = qemu_processes_under(directory)
    names = sorted(p.name for p in directory.iterdir())
    for pid in leftovers:  # do not leak them into the rest of the run, then fail
        os.kill(pid, signal.SIGKILL)
    assert leftovers == [], f"QEMU processes left behind: {leftovers}"
    assert names == [], f"VM directories left behind: {names}"
