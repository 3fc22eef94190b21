"""The ``vms`` command line: parsing, dispatch, logging and error reporting.

Errors end a command with one ``vms: error: ...`` line on stderr (a traceback only
with ``--debug``) and the exit status :mod:`vms_core.cli.exit_status` assigns.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import logging
import math
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from vms_core.backend import Backend
from vms_core.cli.exit_status import ExitStatus, exit_status_for
from vms_core.cli.inventory import delete_vms, list_vms, report_backends
from vms_core.cli.progress import Progress
from vms_core.cli.run import HINT, RunRequest, RunSession
from vms_core.cli.selection import (
    BACKEND_ENV,
    CONFIG_ENV,
    BackendChoice,
    choose_backend,
    load_available,
)
from vms_core.errors import VMError
from vms_core.instance import GUEST_TEXT_ERRORS
from vms_core.options import option_names
from vms_core.plugins import available_backends, load_backend_class
from vms_core.render import FORMATS, render

DESCRIPTION = "Drive virtual machines through one lifecycle: clone, start, exec, stop, delete."

EPILOG = f"""\
backend choice: --backend, else --config or ${CONFIG_ENV}, else ${BACKEND_ENV},
else tart when a tart binary is on PATH, else fake (a tart simulator).
exit statuses: 0 ok, 1 internal error, 2 usage, 3 backend not installed or unavailable,
4 config error, 5 VM operation failed, 6 cleanup failed, 124 timeout, 130 interrupted,
141 stdout closed; vms run otherwise exits with the guest command's status.
"""


def _version() -> str:
    from vms_core import __version__

    return __version__


def _progress(args: argparse.Namespace) -> Progress:
    return Progress(sys.stderr, quiet=args.quiet)


def _backend(args: argparse.Namespace, progress: Progress) -> tuple[Backend, BackendChoice]:
    choice = choose_backend(args.backend, args.config, os.environ)
    guest_os = getattr(args, "os", None)
    if guest_os:
        # --os is the backend option of the same name (tart, fake), over a config file's.
        accepted = _option_names(choice.name)
        if accepted is not None and "os" not in accepted:
            args.parser.error(
                f"--os does not apply to backend {choice.name!r} (it has no os option)"
            )
        options = {**choice.options, "os": guest_os}
        choice = dataclasses.replace(choice, options=options, reason=f"{choice.reason}, --os")
    progress.say(choice.describe())
    return load_available(choice), choice


def _option_names(backend_name: str) -> list[str] | None:
    """The options a backend declares, or None when it cannot tell (or cannot load)."""
    try:
        backend_class = load_backend_class(backend_name)
    except VMError:
        return None  # loading it properly below reports why
    options_type = getattr(backend_class, "Options", None)
    if not isinstance(options_type, type) or not dataclasses.is_dataclass(options_type):
        return None
    return option_names(options_type)


def _cmd_states(args: argparse.Namespace) -> int:
    sys.stdout.write(render(args.format))
    return ExitStatus.OK


def _cmd_backends(args: argparse.Namespace) -> int:
    return report_backends(args.names, sys.stdout, as_json=args.json, default=_default_backend())


def _default_backend() -> str:
    """What ``vms run`` would choose, or why it could not choose."""
    try:
        choice = choose_backend(None, None, os.environ)
    except VMError as error:
        return f"none ({error})"
    if choice.name not in available_backends():
        return f"none (backend {choice.name!r}, chosen by {choice.reason}, is not installed)"
    return choice.describe()


def _cmd_run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        args.parser.error("run needs a command, e.g. vms run -- echo hello")
    if not command[0]:
        args.parser.error("the command to run is empty ('')")
    progress = _progress(args)
    backend, choice = _backend(args, progress)
    request = RunRequest(
        command=tuple(command),
        image=args.image,
        name=args.name,
        keep=args.keep,
        timeout=args.timeout,
    )
    session = RunSession(
        backend,
        request,
        progress,
        backend_options=choice.command_line(),
        out=sys.stdout,
        err=sys.stderr,
    )
    return session.run()


#: SIGTERM: a CI job's timeout, ``kill``. SIGHUP: the terminal or the SSH session closed.
INTERRUPTING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM and SIGHUP like Ctrl-C, so VMs are cleaned up and the user is told."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (e.g. main() called from a test thread)
        return
    previous = {signum: signal.signal(signum, interrupt) for signum in INTERRUPTING_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _cmd_list(args: argparse.Namespace) -> int:
    progress = _progress(args)
    backend, _ = _backend(args, progress)
    prefix = backend.name_prefix if args.prefix is None else args.prefix
    return list_vms(backend, prefix, sys.stdout, as_json=args.json)


def _cmd_delete(args: argparse.Namespace) -> int:
    if args.names and args.prefix is not None:
        args.parser.error("give VM names or --prefix, not both")
    if not args.names and not args.prefix:
        args.parser.error(
            "delete needs VM names (deleted exactly) or a non-empty --prefix "
            "(sweeps every VM whose name starts with it)"
        )
    progress = _progress(args)
    backend, _ = _backend(args, progress)
    return delete_vms(
        backend, progress, sys.stdout, sys.stderr, names=args.names, prefix=args.prefix
    )


def _common_options(*, suppress_defaults: bool) -> argparse.ArgumentParser:
    """--debug and --quiet, accepted before or after the subcommand."""
    # In subcommands the defaults are suppressed, so they do not undo a flag given before.
    default: object = argparse.SUPPRESS if suppress_defaults else False
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=default, help="log to stderr, show tracebacks"
    )
    common.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="no progress lines"
    )
    return common


def _backend_name(text: str) -> str:
    if not text:
        # '' would otherwise read as "not given" and silently choose a backend.
        raise argparse.ArgumentTypeError("must not be empty (see: vms backends)")
    return text


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite positive number of seconds, not {text}")
    return seconds


def _backend_options(parser: argparse.ArgumentParser, *, config: bool) -> None:
    parser.add_argument(
        "--backend", metavar="NAME", type=_backend_name, help="backend to use (see: vms backends)"
    )
    if config:
        parser.add_argument(
            "--config", metavar="FILE", help=f"TOML backend config (default ${CONFIG_ENV})"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vms",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common_options(suppress_defaults=False)],
    )
    parser.add_argument("--version", action="version", version=f"vms {_version()}")
    common = [_common_options(suppress_defaults=True)]
    sub = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> Any:
        command = sub.add_parser(name, help=help_text, description=help_text, parents=common)
        command.set_defaults(func=func, parser=command)
        return command

    states = add("states", _cmd_states, "print the lifecycle transition table")
    states.add_argument("--format", choices=FORMATS, default="text")

    backends = add("backends", _cmd_backends, "list installed backends and whether they run here")
    backends.add_argument("names", nargs="*", metavar="NAME", help="only these backends")
    backends.add_argument("--json", action="store_true", help="machine-readable output")

    run = add("run", _cmd_run, "run one command in a fresh VM, then remove the VM")
    _backend_options(run, config=True)
    run.add_argument("--image", metavar="SOURCE", help="image to clone (default: the backend's)")
    run.add_argument("--name", metavar="NAME", help="VM name (default: generated)")
    run.add_argument(
        "--os",
        choices=("macos", "linux"),
        help="the image's guest OS, for backends that need to know (tart, fake; default macos)",
    )
    run.add_argument(
        "--keep", action="store_true", help="keep the VM after the command instead of deleting it"
    )
    run.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="limit for clone, start and the command together (cleanup is extra)",
    )
    run.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]", help="guest command"
    )

    listing = add("list", _cmd_list, "list the backend's VMs")
    _backend_options(listing, config=True)
    listing.add_argument(
        "--prefix",
        metavar="P",
        help="only VMs whose names start with P (default: the backend's name prefix; '' for all)",
    )
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    delete = add(
        "delete", _cmd_delete, "stop and delete the VMs named, or every VM whose name starts with P"
    )
    _backend_options(delete, config=True)
    delete.add_argument("names", nargs="*", metavar="NAME", help="VMs to delete (exact names)")
    delete.add_argument(
        "--prefix", metavar="P", help="instead of names: sweep every VM whose name starts with P"
    )
    return parser


class _OwnRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith("vms_")


@contextlib.contextmanager
def _logging_to_stderr(*, debug: bool, quiet: bool) -> Iterator[None]:
    """Send log records to stderr while a command runs; restore the root logger after."""
    # The application, not the library, decides where log records go.
    level = logging.DEBUG if debug else logging.ERROR if quiet else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    fmt = "vms: %(levelname)s %(name)s: %(message)s" if debug else "vms: %(levelname)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    if not debug:
        # Without --debug only our own warnings show; a library's (stevedore's "Could not
        # load") would repeat, less clearly, the one error line we print.
        handler.addFilter(_OwnRecords())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)


def _report(error: BaseException, *, debug: bool) -> int:
    status = exit_status_for(error)
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    if isinstance(error, KeyboardInterrupt):
        message = f"interrupted by {error}" if str(error) else "interrupted"
    elif status is ExitStatus.INTERNAL_ERROR:
        hint = "" if debug else " (run with --debug for the traceback)"
        message = f"internal error: {type(error).__name__}: {error}{hint}"
    else:
        # One line: a tool's usage text after its error adds nothing (--debug shows it all).
        message = (str(error) or type(error).__name__).strip().splitlines()[0]
        hints = [note for note in getattr(error, "__notes__", ()) if note.startswith(HINT)]
        message += "".join(f"; {hint.removeprefix(HINT)}" for hint in hints)
    with contextlib.suppress(OSError, ValueError):  # stderr may be gone (a closed terminal)
        sys.stderr.write(f"vms: error: {message}\n")
        sys.stderr.flush()
    return int(status)


def _pass_guest_bytes_through() -> None:
    """Write guest output byte for byte: backends keep undecodable bytes as surrogates."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors=GUEST_TEXT_ERRORS)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _pass_guest_bytes_through()
    with _logging_to_stderr(debug=args.debug, quiet=args.quiet):
        try:
            with _signals_as_interrupt():
                return int(args.func(args))
        except BrokenPipeError:
            # The reader went away (`vms list | head -1`): stop quietly, as a shell tool does,
            # and keep the interpreter from complaining when it flushes stdout at exit.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return ExitStatus.BROKEN_PIPE
        except (Exception, KeyboardInterrupt) as error:
            return _report(error, debug=args.debug)
