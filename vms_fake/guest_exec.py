"""Running a command "inside the guest": for real, in the VM's sandbox directory.

In-process mode may answer ``echo`` without a subprocess (readiness checks run it
thousands of times); the emulation covers only argument lists for which it is
byte-for-byte what GNU ``echo`` prints, and defers to the real one otherwise.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from vms_fake import guest_processes
from vms_fake.grammar import Outcome

#: The guest user's environment: nothing of the host's leaks in.
GUEST_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
_ECHO_NAMES = frozenset({"echo", "/bin/echo", "/usr/bin/echo"})


def guest_environment(sandbox: Path, *, tty: bool) -> dict[str, str]:
    env = {
        "PATH": GUEST_PATH,
        "HOME": str(sandbox),
        "USER": "admin",
        "LOGNAME": "admin",
        "LANG": "C.UTF-8",
    }
    if tty:
        env["TERM"] = "xterm-256color"
    return env


def emulated_echo(argv: Sequence[str]) -> str | None:
    """What GNU echo prints for ``argv``, or None where emulation would not be exact.

    Leading words made only of ``n``/``e``/``E`` after a dash are options; ``-e`` turns on
    escape processing, which is left to the real echo, as are ``--help``/``--version``.
    """
    if not argv or argv[0] not in _ECHO_NAMES:
        return None
    words = list(argv[1:])
    if len(words) == 1 and words[0] in ("--help", "--version"):
        return None
    newline = True
    while words and len(words[0]) > 1 and words[0][0] == "-" and set(words[0][1:]) <= set("neE"):
        if "e" in words[0]:
            return None
        if "n" in words[0]:
            newline = False
        words.pop(0)
    return " ".join(words) + ("\n" if newline else "")


def run_in_guest(
    argv: Sequence[str],
    vm_directory: Path,
    *,
    stdin: str | None,
    tty: bool,
    timeout: float | None,
    emulate_echo: bool,
    vm_alive: Callable[[], bool] = lambda: True,
) -> Outcome:
    """Run ``argv`` in the VM's sandbox and report its exit code and output.

    The command's process group is recorded in ``vm_directory``, so that the end of
    the VM ends it and whatever it left running (:mod:`vms_fake.guest_processes`).
    ``vm_alive`` is asked once the group is recorded: a VM that ended in between
    (and so missed the record) gets the command killed here instead.
    """
    if emulate_echo:
        echoed = emulated_echo(argv)
        if echoed is not None:
            return Outcome(0, echoed, "")
    sandbox = sandbox_for(vm_directory)
    sandbox.mkdir(parents=True, exist_ok=True)
    try:
        process = subprocess.Popen(
            list(argv),
            cwd=sandbox,
            env=guest_environment(sandbox, tty=tty),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError:
        return Outcome(1, "", f'exec: "{argv[0]}": executable file not found in $PATH\n')
    except PermissionError:
        return Outcome(1, "", f'exec: "{argv[0]}": permission denied\n')
    except OSError as error:  # e.g. an argument list the host cannot pass (E2BIG)
        return Outcome(1, "", f'exec: "{argv[0]}": {error.strerror}\n')
    try:
        guest_processes.remember(vm_directory, process.pid)
        if not vm_alive():
            _kill_session(process)
            return Outcome(128 + signal.SIGKILL, "", "")
        stdout, stderr = process.communicate(
            (stdin or "").encode("utf-8", "surrogateescape"), timeout=timeout
        )
    except BaseException:
        # Timeout, Ctrl-C or a signal turned exception: the guest command and
        # whatever it started must not outlive the exec (they are in their own session).
        _kill_session(process)
        raise
    finally:
        guest_processes.forget_if_done(vm_directory, process.pid)
    completed = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    status = completed.returncode
    # A command killed by a signal reports 128+N through the agent, like a shell would.
    exit_code = 128 - status if status < 0 else status
    return Outcome(
        exit_code,
        completed.stdout.decode("utf-8", "surrogateescape"),
        completed.stderr.decode("utf-8", "surrogateescape"),
    )


def _kill_session(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.returncode is None:
        process.kill()
        process.communicate()


def sandbox_for(vm_directory: Path) -> Path:
    return vm_directory / "guest-home"


def is_tty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False
