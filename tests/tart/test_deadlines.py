"""A hanging tart command never holds the caller past the timeout it gave (virtual time)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from vms_core import OperationTimeoutError, State
from vms_fake.backend import FakeBackend
from vms_fake.inprocess import InProcessRunner
from vms_tart.instance import VERIFY_FLOOR_SECONDS
from vms_tart.runner import CommandResult

SOURCE = "ghcr.io/cirruslabs/macos-sequoia-base:latest"


def _backend(tmp_path: Path) -> tuple[FakeBackend, InProcessRunner]:
    backend = FakeBackend(home=str(tmp_path / "home"), state_timeout=10.0)
    assert isinstance(backend.runner, InProcessRunner)
    return backend, backend.runner


@pytest.mark.timeout(30)
def test_start_with_hanging_list_ends_by_its_timeout(tmp_path: Path) -> None:
    backend, runner = _backend(tmp_path)
    vm = backend.create_instance("vm")
    vm.clone()
    runner.plan.hang_command("list", times=None)
    began = runner.monotonic()
    with pytest.raises(OperationTimeoutError):
        vm.start(timeout=2.0)
    # The recovery's verification gets what is left (nothing) plus the floor, never
    # state_timeout (10 s): the caller's deadline bounds the whole call.
    assert runner.monotonic() - began <= 2.0 + VERIFY_FLOOR_SECONDS + 0.01
    assert vm.state() in (State.STOPPED, State.ERROR_UNKNOWN)
    runner.plan.commands.clear()
    vm.delete()


@pytest.mark.timeout(30)
def test_ctrl_c_during_a_hanging_list_recovers_quickly(tmp_path: Path) -> None:
    backend, runner = _backend(tmp_path)
    vm = backend.create_instance("vm")
    vm.clone()
    runner.plan.hang_command("list", times=None)
    original_sleep = runner.clock.sleep
    interrupted = False

    def interrupting_sleep(seconds: float) -> None:
        nonlocal interrupted
        if seconds > 5 and not interrupted:  # the hanging list, not a backoff delay
            interrupted = True
            original_sleep(1.0)
            raise KeyboardInterrupt
        original_sleep(seconds)

    runner.clock.sleep = interrupting_sleep  # type: ignore[method-assign]
    began = runner.monotonic()
    with pytest.raises(KeyboardInterrupt):
        vm.start(timeout=60.0)
    runner.clock.sleep = original_sleep  # type: ignore[method-assign]
    assert interrupted
    # After Ctrl-C the recovery is short, not another state_timeout (10 s).
    assert runner.monotonic() - began <= 1.0 + VERIFY_FLOOR_SECONDS + 1.0
    runner.plan.commands.clear()
    vm.delete()


@pytest.mark.timeout(30)
def test_listing_and_getting_are_bounded_by_state_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, runner = _backend(tmp_path)
    backend.create_instance("vm").clone()
    timeouts: list[float | None] = []
    run = runner.run

    def recording_run(args: Sequence[str], **kwargs: Any) -> CommandResult:
        timeouts.append(kwargs.get("timeout"))
        return run(args, **kwargs)

    monkeypatch.setattr(runner, "run", recording_run)
    backend.list_vms()
    backend.get_vm("vm")
    assert timeouts == [10.0, 10.0]
