"""tart's world on disk: the home directory, local VMs, the OCI cache and DHCP leases.

Nothing here stores a VM's *state*: like tart, it is derived every time from whether a
live ``run`` holds the lock on ``config.json`` and whether ``state.vzvmsave`` exists.
The simulator's own bookkeeping (added images, leases, faults) lives in
``<home>/fake-tart/``, a directory real tart would never look at.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from vms_fake.clock import Clock
from vms_fake.grammar import TartFailure
from vms_fake.images import BUILTIN_IMAGES, GB, GUEST_HEADER_SIZE, MIB, Guest, Image
from vms_fake.locks import lock_holder
from vms_fake.names import RemoteName, is_usable_local_name, parse_remote

CONFIG = "config.json"
DISK = "disk.img"
NVRAM = "nvram.bin"
SNAPSHOT = "state.vzvmsave"
CONTROL_SOCKET = "control.sock"
#: Written by a ``run`` once it holds the lock: who it is and when the guest is ready.
RUN_INFO = ".fake-run.json"
#: A pending live guest event (crash, shutdown) for the ``run`` to act on.
GUEST_EVENT = ".fake-guest-event.json"
#: The per-VM directory ``exec`` runs commands in (the "guest's" home).
SANDBOX = "guest-home"
VM_FILES = (CONFIG, DISK, NVRAM)

RUNNING, SUSPENDED, STOPPED = "running", "suspended", "stopped"


class HomeError(Exception):
    """TART_HOME cannot be used (message is tart's text)."""


class VMMissing(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f'the specified VM "{name}" does not exist')


class VMIncomplete(Exception):
    def __init__(self) -> None:
        super().__init__("VM is missing some of its files (config.json, disk.img or nvram.bin)")


class LocalRun(Protocol):
    """An in-process ``run`` as the world sees it: something to deliver signals to."""

    @property
    def alive(self) -> bool: ...

    def tick(self) -> None: ...

    def deliver(self, signum: int) -> None: ...

    def guest_event(self, event: dict[str, str]) -> None: ...


# In-process runs, keyed by the (device, inode) of the config.json they lock: fcntl cannot
# tell us about our own process's locks in a way that leads back to the run object.
_local_runs: dict[tuple[int, int], LocalRun] = {}
_local_runs_lock = threading.Lock()


def _file_key(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def register_local_run(config_path: Path, run: LocalRun) -> None:
    key = _file_key(config_path)
    if key is not None:
        with _local_runs_lock:
            _local_runs[key] = run


def unregister_local_run(config_path: Path, run: LocalRun) -> None:
    with _local_runs_lock:
        for key, value in list(_local_runs.items()):
            if value is run:
                del _local_runs[key]


def local_run(config_path: Path) -> LocalRun | None:
    key = _file_key(config_path)
    if key is None:
        return None
    with _local_runs_lock:
        return _local_runs.get(key)


def default_home(environ: Mapping[str, str]) -> Path:
    """$TART_HOME, else a per-user cache directory (never the real ``~/.tart``)."""
    if environ.get("TART_HOME"):
        return Path(environ["TART_HOME"])
    cache = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "vms-fake" / "tart"


def random_mac(rng: random.Random | None = None) -> str:
    octets = bytearray((rng or random.SystemRandom()).randbytes(6))
    octets[0] = (octets[0] | 0x02) & 0xFE  # locally administered unicast, as tart makes
    return ":".join(f"{o:02x}" for o in octets)


def ip_for_mac(mac: str) -> str:
    """The address the simulated DHCP server hands ``mac``: stable, like a real lease."""
    digest = sum((i + 1) * int(octet, 16) for i, octet in enumerate(mac.split(":")))
    return f"192.168.64.{2 + digest % 252}"


def apple_json(value: Any) -> str:
    """JSON as Apple's pretty-printing JSONEncoder writes it (``"k" : v``, ``\\/``)."""
    if value == []:
        return "[\n\n]"
    text = json.dumps(value, indent=2, separators=(",", " : "), ensure_ascii=False)
    return text.replace("/", "\\/")


def new_config(
    os_name: str, cpu: int, memory_mib: int, mac: str, disk_format: str = "raw"
) -> dict[str, Any]:
    config: dict[str, Any] = {"version": 1, "os": os_name, "arch": "arm64"}
    if os_name == "darwin":
        config["ecid"] = "YmFzZTY0LWVjaWQ="
        config["hardwareModel"] = "YmFzZTY0LWhhcmR3YXJlLW1vZGVs"
    config.update(
        {
            "cpuCountMin": cpu,
            "cpuCount": cpu,
            "memorySizeMin": memory_mib * MIB,
            "memorySize": memory_mib * MIB,
            "macAddress": mac,
            "display": {"width": 1024, "height": 768},
            "diskFormat": disk_format,
        }
    )
    return config


def write_file(path: Path, data: bytes | str, *, size: int | None = None) -> None:
    """Write ``data`` (then extend to ``size``), replacing the file's contents in place.

    Never truncates to zero first: on ext4, a file truncated to zero is flushed to disk
    when closed (auto_da_alloc), which would make every simulated command cost
    milliseconds. The inode is kept, so a lock held on the file survives.
    """
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.pwrite(fd, raw, 0)
        wanted = len(raw) if size is None else size
        if os.fstat(fd).st_size != wanted:
            os.ftruncate(fd, wanted)
    finally:
        os.close(fd)


def write_disk(path: Path, size_bytes: int, guest: Guest | None) -> None:
    """A sparse disk of ``size_bytes`` whose first block names the installed guest."""
    write_file(path, guest.header() if guest is not None else b"", size=size_bytes)


def copy_sparse(source: Path, target: Path) -> None:
    """Copy only the data regions of ``source``; holes stay holes (disks are huge)."""
    if target.exists():
        os.truncate(target, 0)  # holes in the source must read as zeros in the copy
    else:
        write_file(target, b"")  # created, not truncated (see write_file)
    with open(source, "rb") as src, open(target, "r+b") as dst:
        size = os.fstat(src.fileno()).st_size
        position = 0
        while position < size:
            try:
                start = os.lseek(src.fileno(), position, os.SEEK_DATA)
            except OSError as error:
                if error.errno == errno.ENXIO:  # no data after position
                    break
                raise
            end = os.lseek(src.fileno(), start, os.SEEK_HOLE)
            src.seek(start)
            dst.seek(start)
            remaining = end - start
            while remaining > 0:
                chunk = src.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                dst.write(chunk)
                remaining -= len(chunk)
            position = end
        dst.truncate(size)


class TartHome:
    """One tart home directory (``$TART_HOME``) as the simulator models it."""

    def __init__(self, path: Path | str, clock: Clock) -> None:
        self.path = Path(os.path.abspath(path))
        self.clock = clock
        self._ensure_layout()

    def _ensure_layout(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise HomeError(
                f"TART_HOME is invalid: {self.path} does not exist, yet we can't create it: "
                f"{error.strerror}"
            ) from error
        for sub in (self.vms_dir, self.cache_dir, self.tmp_dir, self.fake_dir / "leases"):
            try:
                sub.mkdir(parents=True, exist_ok=True)
            except OSError as error:  # e.g. the home is a file, or not writable
                raise HomeError(
                    f"TART_HOME is invalid: cannot create {sub}: {error.strerror}"
                ) from error

    @property
    def vms_dir(self) -> Path:
        return self.path / "vms"

    @property
    def cache_dir(self) -> Path:
        return self.path / "cache"

    @property
    def oci_dir(self) -> Path:
        return self.cache_dir / "OCIs"

    @property
    def tmp_dir(self) -> Path:
        return self.path / "tmp"

    @property
    def fake_dir(self) -> Path:
        return self.path / "fake-tart"

    # -- local VMs ---------------------------------------------------------------------

    def vm_dir(self, name: str) -> Path:
        """``vms/<name>``; an unusable name (``.``, ``..``, NUL, too long) is a TartFailure.

        Never a path outside one VM's own directory: ``vms/.`` is every VM at once.
        """
        if not is_usable_local_name(name):
            raise TartFailure(f'the specified VM name "{name}" is not a valid file name')
        return self.vms_dir / name

    @staticmethod
    def is_complete(directory: Path) -> bool:
        return all((directory / f).is_file() for f in VM_FILES)

    def open_vm(self, name: str, *, touch: bool = True) -> Path:
        """The directory of local VM ``name``; raises VMMissing / VMIncomplete like tart."""
        if not is_usable_local_name(name):
            raise VMMissing(name)
        directory = self.vm_dir(name)
        if not directory.is_dir():
            raise VMMissing(name)
        if not self.is_complete(directory):
            raise VMIncomplete
        if touch:
            self.mark_accessed(directory)
        return directory

    def local_names(self) -> list[str]:
        try:
            entries = os.listdir(self.vms_dir)
        except FileNotFoundError:
            return []
        return sorted(n for n in entries if self.is_complete(self.vms_dir / n))

    def read_config(self, directory: Path) -> dict[str, Any]:
        result: dict[str, Any] = json.loads((directory / CONFIG).read_text())
        return result

    def write_config(self, directory: Path, config: dict[str, Any]) -> None:
        # In place, never by rename: a running VM's lock lives on this very inode.
        write_file(directory / CONFIG, apple_json(config) + "\n")

    @staticmethod
    def guest(directory: Path) -> Guest | None:
        try:
            with open(directory / DISK, "rb") as disk:
                return Guest.from_header(disk.read(GUEST_HEADER_SIZE))
        except OSError:
            return None

    @staticmethod
    def holder(directory: Path) -> int | None:
        """Who holds the VM's lock: a PID, ``-1`` for an in-process run, or None."""
        config = directory / CONFIG
        run = local_run(config)
        if run is not None:
            run.tick()  # a crash due by now (on a virtual clock) has happened
            if run.alive:
                return -1
        return lock_holder(config)

    def state(self, directory: Path) -> str:
        if self.holder(directory) is not None:
            return RUNNING
        if (directory / SNAPSHOT).exists():
            return SUSPENDED
        return STOPPED

    def mark_accessed(self, directory: Path) -> None:
        with contextlib.suppress(OSError):
            os.utime(directory, (self.clock.now(), os.stat(directory).st_mtime))

    @staticmethod
    def accessed(directory: Path) -> float:
        return os.stat(directory).st_atime

    @staticmethod
    def sizes(directory: Path) -> tuple[int, int]:
        """(apparent bytes, allocated bytes) of config.json + disk.img + nvram.bin."""
        apparent = allocated = 0
        for name in VM_FILES:
            with contextlib.suppress(OSError):
                info = os.stat(directory / name)
                apparent += info.st_size
                allocated += info.st_blocks * 512
        return apparent, allocated

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh ``tmp/<uuid>`` directory, removed unless moved away."""
        directory = self.tmp_dir / str(uuid.uuid4())
        directory.mkdir(parents=True)
        try:
            yield directory
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def install(self, staged: Path, name: str) -> Path:
        """Move a staged VM to ``vms/<name>``, silently replacing any VM of that name."""
        target = self.vm_dir(name)
        if target.exists():
            doomed = self.tmp_dir / f"replaced-{uuid.uuid4()}"
            target.rename(doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        staged.rename(target)
        self.mark_accessed(target)
        return target

    @staticmethod
    def copy_vm(source: Path, target: Path) -> None:
        """The files ``clone`` copies: config, NVRAM, disk and any snapshot."""
        for name in (CONFIG, NVRAM, SNAPSHOT):
            if (source / name).exists():
                write_file(target / name, (source / name).read_bytes())
        copy_sparse(source / DISK, target / DISK)

    def macs_in_use(self, *, exclude: str | None = None) -> dict[str, str]:
        """VM name -> MAC address for every local VM (except ``exclude``)."""
        macs: dict[str, str] = {}
        for name in self.local_names():
            if name == exclude:
                continue
            with contextlib.suppress(OSError, ValueError):
                macs[name] = str(self.read_config(self.vm_dir(name)).get("macAddress"))
        return macs

    # -- the simulated registry and the OCI cache --------------------------------------

    @property
    def _registry_file(self) -> Path:
        return self.fake_dir / "registry.json"

    def registry(self) -> dict[str, Image]:
        """Every image ``pull`` can fetch, by ``host/namespace:tag``."""
        images = {image.name: image for image in BUILTIN_IMAGES}
        with contextlib.suppress(FileNotFoundError, ValueError):
            for data in json.loads(self._registry_file.read_text()):
                image = Image.from_json(data)
                images[image.name] = image
        return images

    def add_image(self, image: Image) -> None:
        """Publish ``image`` in this home's simulated registry (replacing one of that name)."""
        remote = parse_remote(image.name)
        if remote is None or remote.digest is not None or str(remote) != image.name:
            raise ValueError(f"an image name must be host/namespace:tag, got {image.name!r}")
        added: list[dict[str, Any]] = []
        with contextlib.suppress(FileNotFoundError, ValueError):
            added = json.loads(self._registry_file.read_text())
        added = [d for d in added if d.get("name") != image.name] + [image.to_json()]
        temporary = self._registry_file.with_suffix(f".{uuid.uuid4()}.tmp")
        temporary.write_text(json.dumps(added, indent=2))
        temporary.replace(self._registry_file)

    def find_image(self, remote: RemoteName) -> Image | None:
        for image in self.registry().values():
            if remote.digest is not None:
                if image.digest == remote.digest and image.name.startswith(remote.repository):
                    return image
            elif image.name == str(remote):
                return image
        return None

    def repository_dir(self, remote: RemoteName) -> Path:
        host = remote.host.replace(":", "%3A")
        return self.oci_dir / host / remote.namespace

    def cached(self, remote: RemoteName) -> Path | None:
        """The cached image directory a remote name resolves to, if any."""
        entry = self.repository_dir(remote) / (remote.digest or remote.tag or "latest")
        if remote.digest is None and not entry.is_symlink():
            return None
        return entry.resolve() if entry.exists() and self.is_complete(entry) else None

    def store_image(self, image: Image, remote: RemoteName) -> Path:
        """Write ``image`` into the cache as its digest directory (the 'download')."""
        digest_dir = self.repository_dir(remote) / image.digest
        if digest_dir.is_dir() and self.is_complete(digest_dir):
            return digest_dir
        with self.staging() as staged:
            config = new_config(image.os, image.cpu, image.memory_mib, image.mac_address)
            self.write_config(staged, config)
            write_file(staged / NVRAM, b"\0" * 1024)
            write_disk(staged / DISK, image.disk_gb * GB, image.guest)
            manifest = json.dumps({"name": image.name, "digest": image.digest})
            write_file(staged / "manifest.json", manifest)
            digest_dir.parent.mkdir(parents=True, exist_ok=True)
            try:
                staged.rename(digest_dir)
            except OSError:
                # Another pull of the same digest won the race (tart serializes them
                # on a per-host lock); its copy is as good as ours.
                if not (digest_dir.is_dir() and self.is_complete(digest_dir)):
                    raise
        return digest_dir

    def link_tag(self, remote: RemoteName, digest: str) -> bool:
        """Point ``remote``'s tag at ``digest``; False if it already did."""
        link = self.repository_dir(remote) / (remote.tag or "latest")
        if link.is_symlink() and os.readlink(link) == digest:
            return False
        temporary = link.with_name(f".{link.name}.{uuid.uuid4()}")
        temporary.symlink_to(digest)
        temporary.replace(link)
        return True

    def oci_entries(self) -> list[tuple[str, Path]]:
        """(display name, directory) for every tag link and digest directory in the cache."""
        entries: list[tuple[str, Path]] = []

        def visit(directory: str, parts: tuple[str, ...]) -> None:
            try:
                items = list(os.scandir(directory))
            except OSError:
                return
            in_repository = len(parts) >= 2  # below <host>/<namespace...>
            repository = "/".join((parts[0].replace("%3A", ":"), *parts[1:])) if parts else ""
            for item in items:
                path = Path(item.path)
                if item.name.startswith("."):
                    continue
                if in_repository and item.is_symlink():
                    if self.is_complete(path):
                        entries.append((f"{repository}:{item.name}", path))
                elif in_repository and item.name.startswith("sha256:"):
                    if self.is_complete(path):
                        entries.append((f"{repository}@{item.name}", path))
                elif item.is_dir(follow_symlinks=False):
                    visit(item.path, (*parts, item.name))

        visit(str(self.oci_dir), ())
        return sorted(entries)

    def delete_cached(self, remote: RemoteName) -> bool:
        """Remove a cached tag or digest, then digests no tag points to."""
        entry = self.repository_dir(remote) / (remote.digest or remote.tag or "latest")
        if entry.is_symlink():
            entry.unlink()
        elif entry.is_dir():
            shutil.rmtree(entry)
        else:
            return False
        repository = entry.parent
        linked = {os.readlink(p) for p in repository.iterdir() if p.is_symlink()}
        for candidate in repository.iterdir():
            is_digest = candidate.name.startswith("sha256:") and not candidate.is_symlink()
            if is_digest and candidate.name not in linked and remote.digest is None:
                shutil.rmtree(candidate, ignore_errors=True)
        return True

    # -- DHCP leases ------------------------------------------------------------------

    def _lease_file(self, mac: str) -> Path:
        return self.fake_dir / "leases" / (mac.replace(":", "-") + ".json")

    def lease(self, mac: str) -> str | None:
        """The IP a valid lease gives ``mac`` now, as ``/var/db/dhcpd_leases`` would."""
        try:
            lease = json.loads(self._lease_file(mac).read_text())
        except (OSError, ValueError):
            return None
        now = self.clock.now()
        if lease["granted_at"] <= now < lease["expires_at"]:
            return str(lease["ip"])
        return None

    def grant_lease(self, mac: str, granted_at: float, duration: float) -> None:
        """Record the lease the guest will get at ``granted_at``; a valid one is kept."""
        now = self.clock.now()
        try:
            current = json.loads(self._lease_file(mac).read_text())
        except (OSError, ValueError):
            current = None
        if current is not None and current["granted_at"] <= now < current["expires_at"]:
            if current["expires_at"] - now >= duration / 2:
                return  # still comfortably valid: the DHCP server has nothing to renew
            granted_at = min(granted_at, now)
        data = {
            "ip": ip_for_mac(mac),
            "granted_at": granted_at,
            "expires_at": granted_at + duration,
        }
        path = self._lease_file(mac)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4()}.tmp")
        temporary.write_text(json.dumps(data))
        temporary.replace(path)
