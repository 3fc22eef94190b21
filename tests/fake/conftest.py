"""Fixtures for the simulator's tests.

The ``tart`` fixture is parametrized over both modes, so every transcript asserts the
same stdout, stderr and exit code from a subprocess and from ``InProcessRunner``.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from vms_fake.faults import FaultPlan

from .driver import MACOS, Tart


def _fake_tart_children() -> list[int]:
    """PIDs of this process's children that run fake-tart."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me and b"fake-tart" in cmdline:
            found.append(int(entry.name))
    return found


def _guest_processes(tmp_path: Path) -> list[int]:
    """PIDs of live processes working in a directory of this test (guest commands):
    orphans reparented to init, which a children-only check cannot see."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if cwd.startswith(str(tmp_path)) and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def no_process_left_behind(tmp_path: Path) -> Iterator[None]:
    yield
    leftovers = _fake_tart_children()
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert not leftovers, f"fake-tart processes left behind: {leftovers}"
    guests = _guest_processes(tmp_path)
    for pid in guests:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not guests, f"guest commands left behind: {guests}"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "tart-home"


@pytest.fixture
def plan(home: Path) -> FaultPlan:
    """The plan both modes obey; quick polling so failures do not cost a second."""
    return FaultPlan.for_home(home).set_timing(
        boot_delay=0, ip_delay=0, ip_poll_interval=0.05, stop_poll_interval=0.02
    )


@pytest.fixture(params=["executable", "in-process"])
def tart(
    request: pytest.FixtureRequest, home: Path, plan: FaultPlan, tmp_path: Path
) -> Iterator[Tart]:
    driver = Tart(request.param, home, plan, tmp_path)
    yield driver
    driver.cleanup()


@pytest.fixture
def macos(tart: Tart) -> str:
    """A stopped macOS VM with the guest agent, named ``vm``."""
    tart.clone(MACOS, "vm")
    return "vm"


@pytest.fixture
def executable(home: Path, plan: FaultPlan, tmp_path: Path) -> Iterator[Tart]:
    """The ``fake-tart`` executable alone, for behaviour only a process has."""
    driver = Tart("executable", home, plan, tmp_path)
    yield driver
    driver.cleanup()


@pytest.fixture
def in_process(home: Path, plan: FaultPlan, tmp_path: Path) -> Iterator[Tart]:
    """``InProcessRunner`` alone (virtual time)."""
    driver = Tart("in-process", home, plan, tmp_path)
    yield driver
    driver.cleanup()
