"""What is installed and what exists: ``vms backends``, ``vms list`` and ``vms delete``."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import IO, Any

from vms_core.backend import Backend, VMInfo
from vms_core.cli.exit_status import ExitStatus
from vms_core.cli.progress import Progress
from vms_core.errors import InvalidNameError, NotFoundError, NotSupportedError, VMError
from vms_core.plugins import available_backends, load_backend

logger = logging.getLogger(__name__)


def describe_backend(name: str) -> dict[str, Any]:
    """One row of ``vms backends``; a plugin that fails in any way is reported, not fatal."""
    row: dict[str, Any] = {"name": name, "available": False, "reason": "", "default_source": None}
    try:
        backend = load_backend(name)
        availability = backend.availability()
        row["default_source"] = backend.default_source
    except Exception as error:  # a broken third-party plugin must not hide the others
        logger.debug("backend %s failed to load", name, exc_info=True)
        # Our own errors already say what went wrong; anything else is the plugin's bug.
        vms_error = isinstance(error, VMError)
        row["reason"] = str(error) if vms_error else f"failed: {type(error).__name__}: {error}"
        return row
    row["available"] = availability.available
    row["reason"] = availability.reason
    return row


def report_backends(
    names: Sequence[str], out: IO[str], *, as_json: bool, default: str | None
) -> int:
    """Print each backend (all installed ones when ``names`` is empty) and whether it runs here."""
    rows = [describe_backend(name) for name in (names or available_backends())]
    if as_json:
        json.dump(rows, out, indent=2)
        out.write("\n")
        return ExitStatus.OK
    width = max((len(row["name"]) for row in rows), default=0)
    for row in rows:
        if row["available"]:
            status = f"available (default image {row['default_source']})"
        else:
            status = f"unavailable: {row['reason'] or 'no reason given'}"
        out.write(f"{row['name']:<{width}}  {status}\n")
    if not rows:
        out.write("no backends installed\n")
    if default:
        out.write(f"default: {default}\n")
    return ExitStatus.OK


def vm_record(info: VMInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "state": str(info.state),
        "backend_state": info.backend_state,
        "running": info.running,
        "source": info.source,
        "accessed": info.accessed.isoformat() if info.accessed else None,
    }


def list_vms(backend: Backend, prefix: str, out: IO[str], *, as_json: bool) -> int:
    """Print the backend's VMs whose names start with ``prefix`` ('' lists all)."""
    vms = backend.list_vms(prefix or None)
    if as_json:
        json.dump([vm_record(info) for info in vms], out, indent=2)
        out.write("\n")
        return ExitStatus.OK
    if not vms:
        return ExitStatus.OK
    columns = ("NAME", "STATE", "SOURCE")
    rows = [(info.name, str(info.state), info.source or "-") for info in vms]
    widths = [max(len(cell) for cell in column) for column in zip(columns, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    out.write("".join(f"{line(cells).rstrip()}\n" for cells in [columns, *rows]))
    return ExitStatus.OK


def delete_vms(
    backend: Backend,
    progress: Progress,
    out: IO[str],
    err: IO[str],
    *,
    names: Sequence[str] = (),
    prefix: str | None = None,
) -> int:
    """Stop and delete the VMs named exactly ``names``, or every VM whose name starts
    with ``prefix``; carry on past failures.

    Each deleted name is printed (and flushed) as it goes, so an interruption loses
    nothing; a Ctrl-C says what was deleted and what was not.
    """
    if names:
        targets = list(names)
        what = ", ".join(names)
    else:
        if not prefix:
            # An empty prefix would sweep every VM the tool has, including the user's own images.
            raise InvalidNameError("vms delete needs a non-empty --prefix")
        targets = [info.name for info in backend.list_vms(prefix)]
        what = f"{prefix}*"
    deleted: list[str] = []
    failed: list[str] = []
    with progress.step(f"deleting {backend.name} VMs {what}") as step:
        for index, name in enumerate(targets):
            try:
                delete_one(backend, name)
            except VMError as error:
                failed.append(name)
                err.write(f"vms: failed to delete {name}: {error}\n")
                err.flush()
            except KeyboardInterrupt:
                left = ", ".join(targets[index:])
                done = ", ".join(deleted) or "nothing"
                err.write(f"vms: interrupted: deleted {done}; not deleted: {left}\n")
                err.flush()
                raise
            else:
                deleted.append(name)
                out.write(f"deleted {name}\n")
                out.flush()
    progress.say(f"deleted {len(deleted)}, failed {len(failed)} after {step.elapsed:.1f}s")
    return ExitStatus.VM_OPERATION_FAILED if failed else ExitStatus.OK


def delete_one(backend: Backend, name: str) -> None:
    """Stop (if running) and delete the VM named exactly ``name``."""
    delete_vm = getattr(backend, "delete_vm", None)  # BackendBase has it; the protocol does not
    if callable(delete_vm):
        delete_vm(name)
        return
    # A backend with only delete_all(prefix): safe only when no other VM shares the prefix.
    matching = [info.name for info in backend.list_vms(name)]
    if name not in matching:
        raise NotFoundError(f"no VM named {name!r} on backend {backend.name}")
    if matching != [name]:
        others = ", ".join(other for other in matching if other != name)
        raise NotSupportedError(
            f"backend {backend.name} can only delete by prefix, which would also delete {others}"
        )
    report = backend.delete_all(name)
    if name in report.failures:
        raise report.failures[name]
