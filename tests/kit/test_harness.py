"""The harness helpers: the process census, the derived observer, profiles."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import settings

from vms_core import ConfigError, State
from vms_core.testing import ChildCensus, Harness, as_harness, child_processes
from vms_core.testing.profiles import PROFILE_ENV, examples, load_profile, loaded_profile

from .memory_backend import MemoryBackend


@pytest.mark.timeout(30)
def test_child_processes_sees_a_child_until_it_is_reaped() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # Wait for the exit without reaping: the child is now a zombie.
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        mine = [line for line in child_processes() if line.startswith(f"pid {child.pid} ")]
        assert len(mine) == 1 and "state Z" in mine[0]
    finally:
        child.wait(timeout=20)
    assert not any(line.startswith(f"pid {child.pid} ") for line in child_processes())


def test_a_bare_backend_gets_an_observer_from_its_listing() -> None:
    backend = MemoryBackend()
    harness = as_harness(backend)
    assert isinstance(harness, Harness) and harness.commands_issued() is None
    vm = backend.create_instance()
    assert harness.observe is not None
    assert harness.observe(vm.id) is None
    vm.clone()
    vm.start()
    assert harness.observe(vm.id) is State.RUNNING
    assert as_harness(harness) is harness


def test_profiles_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    current, current_name = settings.default, loaded_profile()
    try:
        monkeypatch.setenv(PROFILE_ENV, "quick")
        assert load_profile() == "quick"
        assert loaded_profile() == "quick"
        assert examples(1.0) == 30 and examples(0.001) == 1
        monkeypatch.setenv(PROFILE_ENV, "nightly")
        with pytest.raises(ConfigError, match="choose one of ci, quick, thorough"):
            load_profile()
    finally:
        settings.register_profile("restored", current)
        settings.load_profile("restored")
        if current_name is not None:
            load_profile(current_name)


@pytest.mark.timeout(30)
def test_a_census_reports_only_children_born_after_it() -> None:
    older = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        census = ChildCensus()
        assert census() == []
        younger = subprocess.Popen([sys.executable, "-c", "pass"])
        younger.wait(timeout=20)
        assert census() == []
        younger = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
        )
        try:
            assert [line.split()[1] for line in census()] == [str(younger.pid)]
        finally:
            younger.communicate(timeout=20)
        assert census() == []
    finally:
        older.communicate(timeout=20)
