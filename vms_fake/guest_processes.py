"""The host processes a simulated VM's guest commands started, so they end with the VM.

Every guest command runs in a session of its own (its process group is its PID); the
group is recorded as a file ``guest-pgids/<pgid>`` in the VM directory. The record is
on disk, not in memory, because the ``exec`` that starts a command and the ``run`` that
must end it are different processes in the executable's mode. Whoever ends the VM
(its ``run`` exiting for any reason, ``stop``'s SIGKILL fallback, ``delete``, or the
next ``run`` after one that was killed) ends every recorded group: a command
backgrounded inside the guest (``sleep 91 &``) shares its shell's group and goes too.

A command that daemonizes with ``setsid`` escapes, as it would escape a real guest's
agent session. A group is forgotten as soon as it is empty, so a recorded PGID is a
live group; it can only be reused after it empties, between that moment and the
next check, which the PID allocator makes rare.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

logger = logging.getLogger(__name__)

GUEST_PGIDS = "guest-pgids"


def _records(vm_directory: Path) -> Path:
    return vm_directory / GUEST_PGIDS


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's group now: not ours to end
        return False
    return True


def remember(vm_directory: Path, pgid: int) -> None:
    """Record the guest process group ``pgid`` of the VM in ``vm_directory``."""
    records = _records(vm_directory)
    records.mkdir(exist_ok=True)
    (records / str(pgid)).touch()


def forget_if_done(vm_directory: Path, pgid: int) -> None:
    """Drop the record of ``pgid`` unless something in the group still runs."""
    if not _group_alive(pgid):
        with contextlib.suppress(FileNotFoundError):
            (_records(vm_directory) / str(pgid)).unlink()


def end_all(vm_directory: Path) -> int:
    """SIGKILL every recorded guest process group of the VM; how many were alive."""
    try:
        entries = os.listdir(_records(vm_directory))
    except FileNotFoundError:
        return 0
    ended = 0
    for entry in entries:
        if not entry.isdigit():
            continue
        pgid = int(entry)
        if pgid > 1 and _group_alive(pgid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
                ended += 1
        with contextlib.suppress(FileNotFoundError):
            (_records(vm_directory) / entry).unlink()
    if ended:
        logger.debug("ended %d guest process group(s) of %s", ended, vm_directory.name)
    return ended
