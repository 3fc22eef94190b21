"""The locks tart uses to tell who owns a VM, with Linux fcntl/flock.

A VM is running exactly while some process holds a write lock on its ``config.json``.
The ``fake-tart run`` executable takes a classic POSIX record lock, like tart, so any
process can learn the holder's PID with ``F_GETLK``. In-process runs take an *open file
description* (OFD) lock instead: classic locks belong to the whole process and vanish
when any descriptor of the file is closed, which in-process commands do all the time.
Other processes still see an OFD lock, but ``F_GETLK`` reports its holder as ``-1``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
from collections.abc import Iterator
from pathlib import Path

# struct flock on Linux: short l_type, short l_whence, off_t l_start, off_t l_len,
# pid_t l_pid, padded to the alignment of off_t.
_FLOCK = struct.Struct("@hhqqi4x")

#: What ``F_GETLK`` reports as the holder of an OFD lock.
OFD_HOLDER = -1


def _flock_struct(lock_type: int) -> bytes:
    return _FLOCK.pack(lock_type, os.SEEK_SET, 0, 0, 0)


def lock_holder(path: Path) -> int | None:
    """The PID holding a write-conflicting lock on ``path`` (-1 for an OFD lock), or None.

    A file that cannot be opened (e.g. deleted concurrently) counts as unlocked, as in tart.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, _flock_struct(fcntl.F_WRLCK))
    except OSError:
        return None
    finally:
        os.close(fd)
    lock_type, _whence, _start, _len, pid = _FLOCK.unpack(answer)
    if lock_type == fcntl.F_UNLCK:
        return None
    return int(pid)


class PidLock:
    """A held write lock on a VM's ``config.json``; released by :meth:`release` or exit."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def try_acquire(cls, path: Path, *, per_descriptor: bool) -> PidLock | None:
        """Take the lock without waiting; None if someone else holds it.

        ``per_descriptor`` selects an OFD lock (in-process runs) over a classic one.
        """
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        command = fcntl.F_OFD_SETLK if per_descriptor else fcntl.F_SETLK
        try:
            fcntl.fcntl(fd, command, _flock_struct(fcntl.F_WRLCK))
        except OSError:
            os.close(fd)
            return None
        return cls(fd, path)

    def fileno(self) -> int:
        """The descriptor holding the lock: the only safe way to read the file meanwhile."""
        if self._fd is None:
            raise ValueError("lock already released")
        return self._fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


@contextlib.contextmanager
def home_lock(home: Path) -> Iterator[None]:
    """tart's global lock: a blocking flock on the home directory itself.

    flock locks belong to the open file description, so threads of one process
    serialize on it just like separate processes do.
    """
    fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
