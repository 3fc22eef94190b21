"""A scripted Instance for testing the core helpers: every step is under the test's control."""

from __future__ import annotations

import dataclasses
from typing import IO

from vms_core import (
    Action,
    BackendCommandError,
    Capabilities,
    CloneInfo,
    ExecResult,
    LifecycleGuard,
    NotFoundError,
    Properties,
    State,
    StopResult,
)


@dataclasses.dataclass
class Script:
    """Failures to inject: an exception to raise, and the state to leave behind."""

    stop_error: Exception | None = None
    stop_leaves: State | None = None
    delete_error: Exception | None = None
    delete_leaves: State | None = None
    start_error: BaseException | None = None
    start_leaves: State | None = None


class ScriptedInstance:
    def __init__(self, state: State = State.INITIAL, script: Script | None = None) -> None:
        self.guard = LifecycleGuard("scripted", state)
        self.script = script or Script()
        self.calls: list[str] = []
        self.cloned = state not in (State.INITIAL, State.DELETED)

    @property
    def id(self) -> str:
        return "scripted"

    @property
    def suspendable(self) -> bool:
        return True

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(suspend=True)

    def state(self) -> State:
        return self.guard.state

    def clone(self, *, timeout: float | None = None) -> None:
        with self.guard.operation(Action.CLONE):
            self.calls.append("clone")
            self.cloned = True

    def start(self, *, timeout: float | None = None) -> None:
        with self.guard.operation(Action.START) as op:
            self.calls.append("start")
            if self.script.start_error is not None:
                op.on_failure = self.script.start_leaves
                raise self.script.start_error

    def stop(self, *, timeout: float | None = None) -> StopResult:
        with self.guard.operation(Action.STOP) as op:
            if op.noop:
                return StopResult(noop=True)
            self.calls.append("stop")
            if self.script.stop_error is not None:
                op.on_failure = self.script.stop_leaves
                raise self.script.stop_error
            if self.script.stop_leaves is not None:
                op.on_success = self.script.stop_leaves
            return StopResult(exit_status=0)

    def suspend(self, *, timeout: float | None = None) -> None:
        with self.guard.operation(Action.SUSPEND) as op:
            if not op.noop:
                self.calls.append("suspend")

    def delete(self, *, timeout: float | None = None) -> None:
        with self.guard.operation(Action.DELETE) as op:
            self.calls.append("delete")
            if not self.cloned:
                raise NotFoundError("nothing to delete")
            if self.script.delete_error is not None:
                op.on_failure = self.script.delete_leaves
                raise self.script.delete_error
            self.cloned = False

    def exec(
        self,
        command: str,
        *args: str,
        timeout: float | None = None,
        check: bool = False,
        stdin: str | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> ExecResult:
        return ExecResult((command, *args), 0, "", "")

    def properties(self) -> Properties:
        return Properties(CloneInfo("src", "scripted"))


def command_failure(text: str = "boom") -> BackendCommandError:
    return BackendCommandError(["tool", "op"], 1, text)
