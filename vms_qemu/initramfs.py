"""Write a Linux initramfs: a gzip-compressed cpio archive in the "newc" format.

Written in Python so building the default guest needs neither ``cpio`` nor root
(device nodes are plain archive entries).
"""

from __future__ import annotations

import dataclasses
import gzip
import stat
from collections.abc import Iterator
from pathlib import PurePosixPath

_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"


@dataclasses.dataclass(frozen=True)
class Entry:
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


class Initramfs:
    """An in-memory file tree; parent directories are created implicitly."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def __contains__(self, path: str) -> bool:
        return _normalize(path) in self._entries

    def directory(self, path: str, mode: int = 0o755) -> None:
        self._put(path, Entry(stat.S_IFDIR | mode))

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._put(path, Entry(stat.S_IFREG | mode, data))

    def symlink(self, path: str, target: str) -> None:
        self._put(path, Entry(stat.S_IFLNK | 0o777, target.encode()))

    def char_device(self, path: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._put(path, Entry(stat.S_IFCHR | mode, rdev=(major, minor)))

    def _put(self, path: str, entry: Entry) -> None:
        name = _normalize(path)
        for parent in reversed(PurePosixPath(name).parents):
            key = str(parent)
            if key != "." and key not in self._entries:
                self._entries[key] = Entry(stat.S_IFDIR | 0o755)
        self._entries[name] = entry

    def paths(self) -> list[str]:
        return sorted(self._entries)

    def cpio(self) -> bytes:
        """The uncompressed newc archive (parents sort before their children)."""
        chunks = [
            _record(inode, name, entry)
            for inode, (name, entry) in enumerate(sorted(self._entries.items()), start=1)
        ]
        chunks.append(_record(0, _TRAILER, Entry(0)))
        return b"".join(chunks)

    def write_gzip(self, path: str) -> None:
        # Level 1: the kernel decompresses it under TCG, where speed matters more than size.
        with (
            open(path, "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as packed,
        ):
            packed.write(self.cpio())


def _normalize(path: str) -> str:
    name = str(PurePosixPath("/", path).relative_to("/"))
    if name in ("", ".") or ".." in PurePosixPath(name).parts:
        raise ValueError(f"invalid initramfs path {path!r}")
    return name


def _record(inode: int, name: str, entry: Entry) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (
        inode,
        entry.mode,
        0,  # uid
        0,  # gid
        2 if stat.S_ISDIR(entry.mode) else 1,
        0,  # mtime: fixed, so the same inputs give the same archive
        len(entry.data),
        0,
        0,
        entry.rdev[0],
        entry.rdev[1],
        len(encoded),
        0,
    )
    header = _MAGIC + b"".join(b"%08x" % value for value in fields)
    return header + encoded + _pad(len(header) + len(encoded)) + entry.data + _pad(len(entry.data))


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def read_cpio(archive: bytes) -> Iterator[tuple[str, int, bytes]]:
    """Yield (name, mode, data) from a newc archive; used to inspect what was built."""
    offset = 0
    while True:
        if archive[offset : offset + 6] != _MAGIC:
            raise ValueError(f"bad cpio magic at offset {offset}")
        fields = [int(archive[offset + 6 + 8 * i : offset + 14 + 8 * i], 16) for i in range(13)]
        mode, size, name_size = fields[1], fields[6], fields[11]
        offset += 110
        name = archive[offset : offset + name_size - 1].decode()
        offset += name_size + (-(110 + name_size) % 4)
        data = archive[offset : offset + size]
        offset += size + (-size % 4)
        if name == _TRAILER:
            return
        yield name, mode, data
