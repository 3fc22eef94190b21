"""One VM's directory: its files, its JSON metadata, and its state as seen from disk.

Everything another process needs to list, inspect, stop or delete a VM is here:
``vm.json`` (how it was cloned and how to boot it), ``qemu.pid`` (QEMU's ``-pidfile``)
and ``suspend.state`` (present exactly while the VM is suspended).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from vms_core.errors import InvalidNameError, NotFoundError, VMError
from vms_core.states import State

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: sun_path holds 108 bytes; longer socket paths go to a short directory under /tmp.
_SOCKET_PATH_LIMIT = 100


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidNameError(
            f"invalid VM name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


class MetadataError(VMError):
    """A VM directory's ``vm.json`` is missing or unreadable."""


@dataclasses.dataclass(frozen=True)
class VMMetadata:
    """How a VM was cloned and how to boot it; written once by clone."""

    name: str
    source: str
    disk: str
    backing: str
    kernel: str | None
    initrd: str | None
    kernel_args: str | None
    memory: int
    cpus: int
    forwards: tuple[str, ...] = ()
    created: str = ""

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["forwards"] = list(self.forwards)
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> VMMetadata:
        """Parse and check ``vm.json``; ValueError names what is wrong."""
        data: Any = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        values: dict[str, Any] = {}
        for name, kinds in _METADATA_TYPES.items():
            if name not in data:
                if name in _METADATA_OPTIONAL:
                    continue
                raise ValueError(f"{name!r} is missing")
            value = data[name]
            if not isinstance(value, kinds) or isinstance(value, bool):
                raise ValueError(f"{name!r} has the wrong type: {value!r}")
            values[name] = value
        forwards = values.get("forwards", [])
        if not all(isinstance(forward, str) for forward in forwards):
            raise ValueError(f"'forwards' must be a list of strings: {forwards!r}")
        values["forwards"] = tuple(forwards)
        return cls(**values)


_METADATA_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "source": str,
    "disk": str,
    "backing": str,
    "kernel": (str, type(None)),
    "initrd": (str, type(None)),
    "kernel_args": (str, type(None)),
    "memory": int,
    "cpus": int,
    "forwards": list,
    "created": str,
}
_METADATA_OPTIONAL = frozenset({"forwards", "created"})


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class VMDirectory:
    """Paths and on-disk facts of the VM ``name`` under ``root``."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = validate_name(name)
        self.path = root / name

    @property
    def metadata_file(self) -> Path:
        return self.path / "vm.json"

    @property
    def disk(self) -> Path:
        return self.path / "disk.qcow2"

    @property
    def pidfile(self) -> Path:
        return self.path / "qemu.pid"

    @property
    def qemu_log(self) -> Path:
        return self.path / "qemu.log"

    @property
    def serial_log(self) -> Path:
        return self.path / "serial.log"

    @property
    def suspend_state(self) -> Path:
        return self.path / "suspend.state"

    @property
    def partial_suspend_state(self) -> Path:
        return self.path / "suspend.state.partial"

    @property
    def socket_dir(self) -> Path:
        if len(str(self.path / "qmp.sock")) <= _SOCKET_PATH_LIMIT:
            return self.path
        digest = hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"vms-qemu-{os.getuid()}" / digest

    @property
    def qmp_socket(self) -> Path:
        return self.socket_dir / "qmp.sock"

    @property
    def agent_socket(self) -> Path:
        return self.socket_dir / "qga.sock"

    def exists(self) -> bool:
        return self.path.is_dir()

    def create(self) -> None:
        """Make the directory; an existing VM of that name is an error."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.path.mkdir()
        except FileExistsError:
            raise InvalidNameError(
                f"a QEMU VM named {self.name!r} already exists in {self.root}"
            ) from None

    def prepare_sockets(self) -> None:
        """Make the socket directory; a fallback under the shared temp directory is made
        private (0700) and refused if it is a symlink or belongs to another user."""
        if self.socket_dir != self.path:
            for directory in (self.socket_dir.parent, self.socket_dir):
                _private_directory(directory, create=True)
        for socket_path in (self.qmp_socket, self.agent_socket):
            socket_path.unlink(missing_ok=True)

    def _remove_socket_dir(self) -> None:
        """Remove a fallback socket directory, and the per-user one once it is empty."""
        if self.socket_dir == self.path:
            return
        try:
            _private_directory(self.socket_dir.parent, create=False)
        except (VMError, FileNotFoundError):
            return  # not ours (or gone): never delete through someone else's directory
        shutil.rmtree(self.socket_dir, ignore_errors=True)  # refuses a symlink itself
        with contextlib.suppress(OSError):  # other VMs' sockets are still there
            self.socket_dir.parent.rmdir()

    def write_metadata(self, metadata: VMMetadata) -> None:
        staging = self.metadata_file.with_suffix(".json.tmp")
        staging.write_text(metadata.to_json())
        staging.replace(self.metadata_file)  # atomic: readers see all of it or nothing

    def read_metadata(self) -> VMMetadata:
        """The VM's ``vm.json``. A directory without one is not a VM of ours (NotFoundError);
        one that cannot be parsed raises MetadataError."""
        try:
            metadata = VMMetadata.from_json(self.metadata_file.read_text())
        except (FileNotFoundError, NotADirectoryError):
            if not self.exists():
                raise NotFoundError(f"no QEMU VM named {self.name!r} in {self.root}") from None
            raise NotFoundError(
                f"{self.path} has no vm.json: not a QEMU VM of this backend"
            ) from None
        except (OSError, ValueError) as err:  # UnicodeDecodeError is a ValueError
            raise MetadataError(f"{self.metadata_file} is unreadable: {err}") from err
        if metadata.name != self.name:
            raise MetadataError(
                f"{self.metadata_file} names the VM {metadata.name!r}, not {self.name!r}"
            )
        return metadata

    def running_pid(self) -> int | None:
        """QEMU's pid if a QEMU process of this VM is alive (verified by its command line)."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self.owns_process(pid) else None

    def owns_process(self, pid: int) -> bool:
        """True when ``pid`` is a live QEMU started with this VM's pidfile (not a recycled pid)."""
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            status = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        if status.rpartition(")")[2].split()[:1] == ["Z"]:  # a zombie is not running
            return False
        wanted = os.fsencode(self.pidfile)
        return any(a == b"-pidfile" and b == wanted for a, b in itertools.pairwise(argv))

    @staticmethod
    def process_ended(pid: int) -> bool:
        """True once ``pid`` has exited (gone, or a reapable zombie awaiting its parent).

        Not the same as "no longer owned": while a process exits its command line is
        already empty but its parent cannot reap it yet.
        """
        try:
            status = Path(f"/proc/{pid}/stat").read_text()
            if status.rpartition(")")[2].split()[:1] not in (["Z"], ["X"]):
                return False
            # A multi-threaded process shows Z for its leader while other threads still
            # exit; its parent can reap it only when they are all gone.
            return len(os.listdir(f"/proc/{pid}/task")) <= 1
        except OSError:
            return True

    def on_disk_state(self) -> tuple[State, str]:
        """(state, word) as any process can derive it: running, suspended, stopped.

        Clone writes ``vm.json`` first and the disk last, so a VM without its disk is
        a clone that was cut short: ``incomplete``.
        """
        if not self.disk.is_file():
            return State.ERROR_UNKNOWN, "incomplete"
        if self.running_pid() is not None:
            return State.RUNNING, "running"
        if self.suspend_state.is_file():
            return State.SUSPENDED, "suspended"
        return State.STOPPED, "stopped"

    def clear_runtime_files(self) -> None:
        """Files of a QEMU run that has ended (QEMU removes most itself on a clean exit)."""
        for stale in (self.pidfile, self.qmp_socket, self.agent_socket, self.partial_suspend_state):
            stale.unlink(missing_ok=True)
        self._remove_socket_dir()

    def remove(self) -> None:
        """Delete every file of this VM."""
        self._remove_socket_dir()
        shutil.rmtree(self.path, ignore_errors=True)
        if self.path.exists():
            raise VMError(f"could not remove {self.path}")


def _private_directory(path: Path, *, create: bool) -> None:
    """Check (after making it, if ``create``) that ``path`` is a real directory of ours
    that only we can use; VMError if it is a symlink or another user's."""
    if create:
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise VMError(
            f"{path} is a symlink or not a directory; refusing to use it for "
            "QEMU sockets (remove it, or use a shorter state_dir)"
        )
    if info.st_uid != os.getuid():
        raise VMError(
            f"{path} belongs to uid {info.st_uid}, not to this user; refusing to "
            "use it for QEMU sockets (remove it, or use a shorter state_dir)"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)


@dataclasses.dataclass
class Scan:
    """What :func:`scan` found: our VMs, and directories whose ``vm.json`` is unreadable."""

    vms: list[VMDirectory] = dataclasses.field(default_factory=list)
    broken: dict[str, MetadataError] = dataclasses.field(default_factory=dict)


def scan(root: Path, prefix: str | None = None) -> Scan:
    """The VM directories under ``root`` whose names start with ``prefix``, sorted by name.

    Only a directory with a ``vm.json`` is a VM of ours: anything else under ``root``
    is never listed, so never deleted.
    """
    found = Scan()
    if not root.is_dir():
        return found
    for entry in sorted(root.iterdir()):
        if (prefix and not entry.name.startswith(prefix)) or not entry.is_dir():
            continue
        try:
            vmdir = VMDirectory(root, entry.name)
            vmdir.read_metadata()
        except (InvalidNameError, NotFoundError):
            continue  # not one of ours
        except MetadataError as err:
            found.broken[entry.name] = err
            continue
        found.vms.append(vmdir)
    return found


def list_directories(root: Path, prefix: str | None = None) -> list[VMDirectory]:
    """The directories of our VMs under ``root`` (see :func:`scan`)."""
    return scan(root, prefix).vms
