"""Deliberately broken backends: each breaks one promise the state machine must check.

Every mutant is the correct ``MemoryInstance`` with one bug, as small as the bug
it stands for. ``MUTANTS`` maps a name to the mutant backend and to a fragment of
the failure message that proves the right check caught it.
"""

from __future__ import annotations

import contextlib
import dataclasses

from vms_core import Action, BackendCommandError, State, StopResult

from .memory_backend import MemoryBackend, MemoryInstance


class ForgetsToRestoreStateWhenCloneFails(MemoryInstance):
    """Sets Cloning by hand and never reverts it when the clone command fails."""

    def clone(self, *, timeout: float | None = None) -> None:
        self.guard.check(Action.CLONE)
        self.guard.set(State.CLONING)
        self.tool.clone(self.source, self.name)
        self.guard.set(State.STOPPED)


class RevertsFailedCloneToInitial(MemoryInstance):
    """A failed re-clone goes to Initial (the Go docs' promise) instead of back to Deleted."""

    def clone(self, *, timeout: float | None = None) -> None:
        with self.guard.operation(Action.CLONE) as op:
            op.on_failure = State.INITIAL
            self.tool.clone(self.source, self.name)


class AllowsDeleteWhileRunning(MemoryInstance):
    """Deletes a running VM (stopping it first) instead of refusing."""

    def delete(self, *, timeout: float | None = None) -> None:
        if self.guard.state is State.RUNNING:
            self.tool.stop(self.name)
            self._reap()
            self.tool.delete(self.name)
            self.guard.set(State.DELETED)
            return
        super().delete(timeout=timeout)


class ReportsRunningAfterTheVMDied(MemoryInstance):
    """``state()`` trusts its own bookkeeping and never notices the VM exited."""

    def state(self) -> State:
        return self.guard.state


class LeaksTheRunProcess(MemoryInstance):
    """Stop forgets the run process without reaping it (a zombie left behind)."""

    def stop(self, *, timeout: float | None = None) -> StopResult:
        with self.guard.operation(Action.STOP) as op:
            if op.noop:
                return StopResult(noop=True)
            self.tool.stop(self.name)
            self.process = None
            return StopResult(exit_status=0)


class LeavesTheVMRunningWhenStartTimesOut(MemoryInstance):
    """A start whose guest never boots gives up but leaves its run process going."""

    def start(self, *, timeout: float | None = None) -> None:
        with self.guard.operation(Action.START):
            process = self.tool.run(self.name)
            self.tool.wait_ready(self.name)
            self.process = process


class StopFromStoppedRunsACommand(MemoryInstance):
    """The idempotent stop still asks the tool (and ignores "not running")."""

    def stop(self, *, timeout: float | None = None) -> StopResult:
        if self.guard.state is State.STOPPED:
            with contextlib.suppress(BackendCommandError):
                self.tool.stop(self.name)
        return super().stop(timeout=timeout)


class AsksTheToolBeforeCheckingTheTable(MemoryInstance):
    """Start lists VMs before the guard refuses it: a refusal that runs a command."""

    def start(self, *, timeout: float | None = None) -> None:
        self.tool.list_vms()
        super().start(timeout=timeout)


class SwallowsAFailedSuspend(MemoryInstance):
    """Reports Suspended although the suspend command failed and the VM still runs."""

    def suspend(self, *, timeout: float | None = None) -> None:
        with self.guard.operation(Action.SUSPEND) as op:
            if op.noop:
                return
            try:
                self.tool.suspend(self.name)
            except BackendCommandError:
                return
            self._reap()


class DeleteSkipsSuspendedVMs(MemoryInstance):
    """Reports Deleted for a suspended VM but never deletes it from the tool."""

    def delete(self, *, timeout: float | None = None) -> None:
        with self.guard.operation(Action.DELETE) as op:
            if op.previous is not State.SUSPENDED:
                self.tool.delete(self.name)


@dataclasses.dataclass(frozen=True)
class Mutant:
    backend: type[MemoryBackend]
    #: A fragment of the failure message the state machine must produce.
    caught_by: str


def _backend(instance_type: type[MemoryInstance]) -> type[MemoryBackend]:
    name = f"{instance_type.__name__}Backend"
    return type(name, (MemoryBackend,), {"instance_type": instance_type})


MUTANTS: dict[str, Mutant] = {
    "forgets_to_restore_state_when_clone_fails": Mutant(
        _backend(ForgetsToRestoreStateWhenCloneFails), "left the transient state Cloning"
    ),
    "reverts_failed_clone_to_initial": Mutant(
        _backend(RevertsFailedCloneToInitial), "Clone from Deleted failed"
    ),
    "allows_delete_while_running": Mutant(
        _backend(AllowsDeleteWhileRunning), "Delete from Running must be refused"
    ),
    "reports_running_after_the_vm_died": Mutant(
        _backend(ReportsRunningAfterTheVMDied), "died on its own but the backend reports Running"
    ),
    "leaks_the_run_process": Mutant(_backend(LeaksTheRunProcess), "exited but never reaped"),
    "leaves_the_vm_running_when_start_times_out": Mutant(
        _backend(LeavesTheVMRunningWhenStartTimesOut), "but the tool says Running"
    ),
    "stop_from_stopped_runs_a_command": Mutant(
        _backend(StopFromStoppedRunsACommand), "no-op Stop from Stopped ran 1 command"
    ),
    "asks_the_tool_before_checking_the_table": Mutant(
        _backend(AsksTheToolBeforeCheckingTheTable), "refused Start from"
    ),
    "swallows_a_failed_suspend": Mutant(
        _backend(SwallowsAFailedSuspend), "is reported Suspended but the tool says Running"
    ),
    "delete_skips_suspended_vms": Mutant(
        _backend(DeleteSkipsSuspendedVMs), "is Deleted but the tool still lists it"
    ),
}
