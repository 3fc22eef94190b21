"""The ``fake-tart`` executable: tart's command line over the simulator.

Every command but ``run`` is :func:`vms_fake.commands.execute`; ``run`` becomes a
long-lived process that holds a real fcntl lock and answers real signals.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence

from vms_fake.clock import RealClock
from vms_fake.commands import Session, apply_command_faults, execute, prepare_run
from vms_fake.faults import EXECUTABLE_TIMING, FaultPlan, FaultPlanError
from vms_fake.grammar import SPECS, Outcome, TartFailure
from vms_fake.guest_exec import is_tty
from vms_fake.vmrun import serve
from vms_fake.world import HomeError, TartHome, default_home


def _write(stream: str, text: str) -> None:
    target = sys.stdout if stream == "stdout" else sys.stderr
    # A reader that went away must not turn a clean exit into a traceback.
    with contextlib.suppress(BrokenPipeError):
        target.buffer.write(text.encode("utf-8", "surrogateescape"))
        target.buffer.flush()


def _finish(outcome: Outcome) -> int:
    _write("stdout", outcome.stdout)
    _write("stderr", outcome.stderr)
    if outcome.exit_code < 0:  # die by the signal, as the real process would
        signum = -outcome.exit_code
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    return outcome.exit_code


def _wants_stdin(args: Sequence[str]) -> bool:
    if not args or args[0] != "exec":
        return False
    try:
        return bool(SPECS["exec"].parse(args[1:]).get("interactive"))
    except TartFailure:
        return False


def _run(args: Sequence[str], session: Session) -> int:
    _, failed = apply_command_faults("run", args, session)
    if failed is not None:
        return _finish(failed)
    try:
        run = prepare_run(args, session, _write)
        return serve(run)
    except TartFailure as failure:
        return _finish(failure.outcome())


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        home = TartHome(default_home(os.environ), RealClock())
    except HomeError as error:
        prefix = "Error: " if args[:1] == ["run"] else ""
        return _finish(Outcome(1, "", f"{prefix}{error}\n"))
    try:
        plan = FaultPlan.from_environment(home.path)
    except FaultPlanError as error:
        return _finish(Outcome(1, "", f"Error: {error}\n"))
    session = Session(
        home=home,
        plan=plan,
        base_timing=EXECUTABLE_TIMING,
        in_process=False,
        # Bytes that are not UTF-8 pass through unchanged (surrogateescape both ways).
        stdin=sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
        if _wants_stdin(args)
        else None,
        stdout_is_tty=is_tty(1),
        environ=dict(os.environ),
    )
    if args[:1] == ["run"]:
        return _run(args[1:], session)
    try:
        return _finish(execute(args, session))
    except KeyboardInterrupt:  # Ctrl-C cancels tart's task; the text is tart's best guess
        return _finish(Outcome(1, "", "Error: CancellationError()\n"))


if __name__ == "__main__":
    sys.exit(main())
