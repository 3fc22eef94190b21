"""The default guest: a Debian cloud kernel plus a busybox + qemu-guest-agent initramfs.

Built from Debian packages on this machine (``apt-get download``; no disk image is
downloaded), cached per user under ``~/.cache/vms-qemu/guest-<hash>`` and built on
first use or with ``python -m vms_qemu.guest build``. A file lock makes concurrent
first uses build it once.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import hashlib
import logging
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from vms_core.errors import BackendCommandError, BackendUnavailableError
from vms_qemu.initramfs import Initramfs

logger = logging.getLogger(__name__)

#: Bump when the recipe changes in a way the hash below would not see.
RECIPE_VERSION = 1
KERNEL_METAPACKAGE = "linux-image-cloud-amd64"
AGENT_PACKAGE = "qemu-guest-agent"
#: Size of the blank disk every clone of the default guest overlays.
BASE_DISK_SIZE = "1G"

#: Loaded with insmod in this order: there is no depmod, and virtio_ring must precede virtio.
MODULES = (
    "virtio_ring",
    "virtio",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "virtio_console",
    "virtio_blk",
    "failover",
    "net_failover",
    "virtio_net",
    "button",
    "evdev",
)

#: PID 1 of the guest. Without /var/run and /var/log qemu-ga and acpid die silently.
INIT_SCRIPT = """#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
for module in {modules}; do insmod /lib/modules/$module.ko 2>/dev/null; done
hostname guest
# The ACPI power button (QMP system_powerdown) runs /etc/acpi/PWRF/00000080.
acpid -c /etc/acpi -l /tmp/acpid.log
# User-mode networking: QEMU's slirp answers at 10.0.2.2 and forwards host ports here.
ip link set lo up
ip link set eth0 up 2>/dev/null && ip addr add 10.0.2.15/24 dev eth0 \\
  && ip route add default via 10.0.2.2
for attempt in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  for port in /sys/class/virtio-ports/*; do
    [ "$(cat $port/name 2>/dev/null)" = org.qemu.guest_agent.0 ] && AGENT=/dev/${{port##*/}}
  done
  [ -n "${{AGENT:-}}" ] && break
  sleep 0.1
done
[ -n "${{AGENT:-}}" ] && qemu-ga -m virtio-serial -p "$AGENT" -d -f /run/qga.pid -l /tmp/qga.log
echo "GUEST-READY $(cut -d' ' -f1 /proc/uptime)"
exec sh -c 'while true; do sleep 3600; done'
"""

#: qemu-ga's guest-shutdown runs "/sbin/shutdown -h -P +0"; busybox has no such applet.
SHUTDOWN_SHIM = """#!/bin/sh
sync
case "$*" in *-r*) reboot -f ;; *) poweroff -f ;; esac
"""

POWER_BUTTON_SCRIPT = "#!/bin/sh\nsync\npoweroff -f\n"

KERNEL_COMMAND_LINE = "console=ttyS0 quiet panic=-1"

#: Host tools the build runs, and the Debian package that provides each.
BUILD_TOOLS = {
    "apt-get": "apt",
    "apt-cache": "apt",
    "dpkg-deb": "dpkg",
    "ldd": "libc-bin",
    "busybox": "busybox-static",
    "qemu-img": "qemu-utils",
}


@dataclasses.dataclass(frozen=True)
class GuestFiles:
    """A built guest: direct-boot kernel, initramfs and the blank base disk clones overlay."""

    directory: Path
    kernel: Path
    initrd: Path
    base_disk: Path
    command_line: str = KERNEL_COMMAND_LINE

    @classmethod
    def in_directory(cls, directory: Path) -> GuestFiles:
        return cls(
            directory, directory / "vmlinuz", directory / "initrd.gz", directory / "base.qcow2"
        )

    @property
    def complete(self) -> bool:
        return all(path.is_file() for path in (self.kernel, self.initrd, self.base_disk))


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vms-qemu"


def recipe_hash() -> str:
    """Identifies the recipe, so a changed init script or module list builds a new guest."""
    recipe = "\n".join(
        [
            str(RECIPE_VERSION),
            KERNEL_METAPACKAGE,
            AGENT_PACKAGE,
            *MODULES,
            INIT_SCRIPT,
            SHUTDOWN_SHIM,
            POWER_BUTTON_SCRIPT,
            BASE_DISK_SIZE,
        ]
    )
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def guest_files(cache_dir: Path | None = None) -> GuestFiles:
    """Where the default guest lives (built or not)."""
    return GuestFiles.in_directory((cache_dir or default_cache_dir()) / f"guest-{recipe_hash()}")


def missing_build_tools(which: Callable[[str], str | None] = shutil.which) -> dict[str, str]:
    """Tools the build needs but cannot find, mapped to the Debian package to install."""
    return {tool: package for tool, package in BUILD_TOOLS.items() if which(tool) is None}


def ensure_guest(cache_dir: Path | None = None, *, qemu_img: str = "qemu-img") -> GuestFiles:
    """The default guest, built first if this user's cache does not have it yet."""
    files = guest_files(cache_dir)
    if files.complete:
        return files
    return build_guest(cache_dir, qemu_img=qemu_img)


def build_guest(
    cache_dir: Path | None = None, *, force: bool = False, qemu_img: str = "qemu-img"
) -> GuestFiles:
    """Build the default guest into the cache (under a lock) and return its files."""
    files = guest_files(cache_dir)
    files.directory.parent.mkdir(parents=True, exist_ok=True)
    lock_path = files.directory.with_name(files.directory.name + ".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent builder finishes first, then we reuse
        if files.complete and not force:
            return files
        missing = missing_build_tools()
        if shutil.which(qemu_img):
            missing.pop("qemu-img", None)
        if missing:
            packages = " ".join(sorted(set(missing.values())))
            raise BackendUnavailableError(
                f"cannot build the default QEMU guest: {', '.join(sorted(missing))} not found; "
                f"install them with: apt-get install --no-install-recommends {packages}"
            )
        staging = Path(tempfile.mkdtemp(prefix=".building-", dir=files.directory.parent))
        try:
            _build_into(staging, qemu_img=qemu_img)
            if files.directory.exists():
                shutil.rmtree(files.directory)
            staging.rename(files.directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("built the default QEMU guest in %s", files.directory)
    return files


def _build_into(directory: Path, *, qemu_img: str) -> None:
    kernel_package = _kernel_package()
    downloads = directory / "debs"
    downloads.mkdir()
    _run(
        ["apt-get", "download", kernel_package, AGENT_PACKAGE],
        cwd=downloads,
        hint=f"is the Debian package index current? run apt-get update (needs {kernel_package} "
        f"and {AGENT_PACKAGE})",
    )
    kernel_deb = _one(downloads, f"{kernel_package}_*.deb")
    agent_deb = _one(downloads, f"{AGENT_PACKAGE}_*.deb")

    root = Initramfs()
    wanted_modules = {f"{name}.ko" for name in MODULES} | {f"{name}.ko.xz" for name in MODULES}
    kernel_members = _deb_members(
        kernel_deb,
        lambda path: (
            path.startswith("boot/vmlinuz-")
            or ("/modules/" in path and Path(path).name in wanted_modules)
        ),
    )
    kernels = [data for path, data in kernel_members.items() if path.startswith("boot/vmlinuz-")]
    if not kernels:
        raise BackendUnavailableError(f"{kernel_deb.name} contains no boot/vmlinuz-*")
    (directory / "vmlinuz").write_bytes(kernels[0])
    modules = {
        Path(path).name.split(".ko")[0]: (path, data)
        for path, data in kernel_members.items()
        if "/modules/" in path
    }
    absent = [name for name in MODULES if name not in modules]
    if absent:
        raise BackendUnavailableError(f"{kernel_deb.name} lacks modules: {', '.join(absent)}")
    for name, (path, data) in modules.items():
        root.file(f"lib/modules/{name}.ko", lzma.decompress(data) if path.endswith(".xz") else data)

    agent = _deb_members(agent_deb, lambda path: path == "usr/sbin/qemu-ga")
    if "usr/sbin/qemu-ga" not in agent:
        raise BackendUnavailableError(f"{agent_deb.name} contains no usr/sbin/qemu-ga")
    agent_binary = directory / "qemu-ga"
    agent_binary.write_bytes(agent["usr/sbin/qemu-ga"])
    root.file("usr/sbin/qemu-ga", agent["usr/sbin/qemu-ga"], 0o755)
    _add_libraries(root, agent_binary)

    busybox = Path(shutil.which("busybox") or "/bin/busybox").resolve()
    root.file("bin/busybox", busybox.read_bytes(), 0o755)
    _add_libraries(root, busybox)  # nothing for busybox-static, libc for the dynamic busybox
    applets = _run([str(busybox), "--list"]).split()
    for applet in applets:
        if applet != "busybox" and f"bin/{applet}" not in root:
            root.symlink(f"bin/{applet}", "busybox")

    for path in ("proc", "sys", "dev", "tmp", "run", "var/run", "var/log", "root", "mnt"):
        root.directory(path)
    root.char_device("dev/console", 5, 1)
    root.char_device("dev/null", 1, 3, 0o666)
    root.file("init", INIT_SCRIPT.format(modules=" ".join(MODULES)).encode(), 0o755)
    root.file("sbin/shutdown", SHUTDOWN_SHIM.encode(), 0o755)
    root.file("etc/acpi/PWRF/00000080", POWER_BUTTON_SCRIPT.encode(), 0o755)
    root.file("etc/hostname", b"guest\n")
    root.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    root.file("etc/group", b"root:x:0:\n")
    root.write_gzip(str(directory / "initrd.gz"))

    _run([qemu_img, "create", "-q", "-f", "qcow2", str(directory / "base.qcow2"), BASE_DISK_SIZE])
    shutil.rmtree(downloads)
    agent_binary.unlink()


def _kernel_package() -> str:
    output = _run(
        ["apt-cache", "depends", KERNEL_METAPACKAGE],
        hint="run apt-get update so the Debian package index is available",
    )
    match = re.search(r"Depends:\s*(linux-image-\S+)", output)
    if not match:
        raise BackendUnavailableError(
            f"apt-cache does not know {KERNEL_METAPACKAGE}; run apt-get update "
            "(a Debian amd64 package index is needed to build the default guest)"
        )
    return match.group(1)


def _deb_members(deb: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """Regular files of a .deb's data archive whose path matches, streamed (no full unpack)."""
    argv = ["dpkg-deb", "--fsys-tarfile", str(deb)]
    found: dict[str, bytes] = {}
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None
        with tarfile.open(fileobj=process.stdout, mode="r|") as archive:
            for member in archive:
                path = member.name.removeprefix("./")
                if member.isfile() and wanted(path):
                    extracted = archive.extractfile(member)
                    if extracted is not None:
                        found[path] = extracted.read()
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.returncode != 0:
        raise BackendCommandError(argv, process.returncode, stderr, message="cannot read package")
    return found


_LDD_PATH = re.compile(r"(/\S+)\s+\(0x")


def parse_ldd(output: str) -> list[str]:
    """Absolute library paths (including the dynamic loader) from ``ldd`` output."""
    missing = [line.split()[0] for line in output.splitlines() if "not found" in line]
    if missing:
        raise BackendUnavailableError(
            f"libraries not found on this host: {', '.join(missing)}; they come with "
            "qemu-system-x86 (apt-get install --no-install-recommends qemu-system-x86)"
        )
    return [match.group(1) for match in _LDD_PATH.finditer(output)]


def _add_libraries(root: Initramfs, binary: Path) -> None:
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
    if result.returncode != 0:  # "not a dynamic executable": a static binary needs nothing
        return
    for library in parse_ldd(result.stdout):
        if library not in root:
            root.file(library, Path(library).read_bytes(), 0o755)


def _one(directory: Path, pattern: str) -> Path:
    matches = sorted(directory.glob(pattern))
    if not matches:
        raise BackendUnavailableError(f"apt-get download produced no {pattern} in {directory}")
    return matches[-1]


def _run(argv: Sequence[str], *, cwd: Path | None = None, hint: str = "") -> str:
    try:
        result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise BackendUnavailableError(f"{argv[0]} not found: {err}") from err
    if result.returncode != 0:
        message = f"building the default guest failed{'; ' + hint if hint else ''}"
        raise BackendCommandError(argv, result.returncode, result.stderr, message=message)
    return result.stdout


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vms_qemu.guest", description="Build the default QEMU guest."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build (or reuse) the cached guest and print its paths")
    build.add_argument("--cache-dir", type=Path, default=None)
    build.add_argument("--force", action="store_true", help="rebuild even when cached")
    sub.add_parser("path", help="print where the guest is cached and whether it is built")
    args = parser.parse_args(argv)
    if args.command == "path":
        files = guest_files()
        sys.stdout.write(f"{files.directory} {'built' if files.complete else 'not built'}\n")
        return 0
    try:
        files = build_guest(args.cache_dir, force=args.force)
    except (BackendUnavailableError, BackendCommandError) as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
    sys.stdout.write(f"kernel {files.kernel}\ninitrd {files.initrd}\nbase disk {files.base_disk}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
