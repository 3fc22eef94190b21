"""Building the default guest: the initramfs writer, library discovery, errors, locking."""

from __future__ import annotations

import gzip
import shutil
import stat
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from vms_core.errors import BackendUnavailableError
from vms_qemu import guest
from vms_qemu.initramfs import Initramfs, read_cpio


def test_initramfs_round_trips_files_links_devices_and_parents(tmp_path: Path) -> None:
    root = Initramfs()
    root.file("init", b"#!/bin/sh\n", 0o755)
    root.file("/lib/x86_64-linux-gnu/libc.so.6", b"\x7fELF")
    root.symlink("bin/sh", "busybox")
    root.char_device("dev/console", 5, 1)
    target = tmp_path / "initrd.gz"
    root.write_gzip(str(target))
    entries = {
        name: (mode, data) for name, mode, data in read_cpio(gzip.decompress(target.read_bytes()))
    }
    assert entries["init"] == (stat.S_IFREG | 0o755, b"#!/bin/sh\n")
    assert entries["bin/sh"] == (stat.S_IFLNK | 0o777, b"busybox")
    assert stat.S_ISCHR(entries["dev/console"][0])
    assert stat.S_ISDIR(entries["lib/x86_64-linux-gnu"][0]) and stat.S_ISDIR(entries["lib"][0])
    names = list(entries)
    assert names.index("lib") < names.index("lib/x86_64-linux-gnu/libc.so.6")


@pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio not installed")
def test_initramfs_is_readable_by_gnu_cpio(tmp_path: Path) -> None:
    root = Initramfs()
    root.file("etc/hostname", b"guest\n")
    root.symlink("bin/ls", "busybox")
    listing = (
        subprocess.run(
            ["cpio", "-t", "--quiet"], input=root.cpio(), capture_output=True, check=True
        )
        .stdout.decode()
        .split()
    )
    assert sorted(listing) == ["bin", "bin/ls", "etc", "etc/hostname"]


def test_initramfs_rejects_escaping_paths() -> None:
    with pytest.raises(ValueError, match="invalid"):
        Initramfs().file("../etc/passwd", b"")


def test_ldd_output_gives_libraries_and_the_loader() -> None:
    output = (
        "\tlinux-vdso.so.1 (0x00007ffd)\n"
        "\tlibglib-2.0.so.0 => /lib/x86_64-linux-gnu/libglib-2.0.so.0 (0x00007f1)\n"
        "\t/lib64/ld-linux-x86-64.so.2 (0x00007f2)\n"
    )
    assert guest.parse_ldd(output) == [
        "/lib/x86_64-linux-gnu/libglib-2.0.so.0",
        "/lib64/ld-linux-x86-64.so.2",
    ]


def test_missing_libraries_name_the_package_to_install() -> None:
    with pytest.raises(BackendUnavailableError, match="qemu-system-x86") as caught:
        guest.parse_ldd("\tliburing.so.2 => not found\n")
    assert "liburing.so.2" in str(caught.value)


def test_missing_tools_map_to_debian_packages() -> None:
    present = {"apt-get", "apt-cache", "ldd", "qemu-img"}
    missing = guest.missing_build_tools(lambda tool: tool if tool in present else None)
    assert missing == {"dpkg-deb": "dpkg", "busybox": "busybox-static"}


def test_build_without_tools_says_which_packages_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(guest, "missing_build_tools", lambda: {"busybox": "busybox-static"})
    with pytest.raises(
        BackendUnavailableError, match="apt-get install --no-install-recommends busybox-static"
    ):
        guest.build_guest(tmp_path)
    assert list(tmp_path.glob("guest-*/*")) == []


def fake_build(
    calls: list[int],
    started: threading.Event | None = None,
    release: threading.Event | None = None,
) -> Callable[..., None]:
    def build_into(directory: Path, *, qemu_img: str) -> None:
        calls.append(1)
        if started is not None and release is not None:
            started.set()
            release.wait(10)
        for name in ("vmlinuz", "initrd.gz", "base.qcow2"):
            (directory / name).write_bytes(b"x")

    return build_into


def test_concurrent_first_uses_build_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    started, release = threading.Event(), threading.Event()
    monkeypatch.setattr(guest, "missing_build_tools", dict)
    monkeypatch.setattr(guest, "_build_into", fake_build(calls, started, release))
    results: list[guest.GuestFiles] = []
    first = threading.Thread(target=lambda: results.append(guest.ensure_guest(tmp_path)))
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=lambda: results.append(guest.ensure_guest(tmp_path)))
    second.start()  # blocks on the lock while the first build runs
    release.set()
    first.join(10)
    second.join(10)
    assert calls == [1]
    assert len(results) == 2 and all(files.complete for files in results)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".building")] == []


def test_a_cached_guest_is_reused_and_force_rebuilds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(guest, "missing_build_tools", dict)
    monkeypatch.setattr(guest, "_build_into", fake_build(calls))
    files = guest.ensure_guest(tmp_path)
    assert files.directory == tmp_path / f"guest-{guest.recipe_hash()}"
    guest.ensure_guest(tmp_path)
    assert calls == [1]
    guest.build_guest(tmp_path, force=True)
    assert calls == [1, 1]


def test_a_failed_build_leaves_no_partial_guest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(directory: Path, *, qemu_img: str) -> None:
        (directory / "vmlinuz").write_bytes(b"x")
        raise BackendUnavailableError("download failed")

    monkeypatch.setattr(guest, "missing_build_tools", dict)
    monkeypatch.setattr(guest, "_build_into", broken)
    with pytest.raises(BackendUnavailableError):
        guest.ensure_guest(tmp_path)
    assert not guest.guest_files(tmp_path).directory.exists()
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
